//! Byte-order collation for key columns.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// `column` compared by bytes (`COLLATE "C"` on PostgreSQL; SQLite's default `BINARY`
/// already is): ids then sort the same on every backend and in memory, whatever the
/// database's locale, and ULIDs sort by time.
pub(crate) fn bytewise(manager: &SchemaManager<'_>, mut column: ColumnDef) -> ColumnDef {
    if manager.get_database_backend() == DbBackend::Postgres {
        column.extra("COLLATE \"C\"");
    }
    column
}

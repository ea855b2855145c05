//! Drops `dlq_items`, `logs` and `payloads`: no code ever wrote them. Dead letters live in the
//! queue backend, payloads are resolved before history is written, and executions log through
//! `tracing`. Undoing this migration creates the three tables again, as migration 3 did.

use sea_orm_migration::prelude::*;

use crate::m20261125_000003_operations;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        m20261125_000003_operations::Migration.down(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        m20261125_000003_operations::Migration.up(manager).await
    }
}

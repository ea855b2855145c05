//! The parent's node of a sub-workflow's execution.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_null;

use crate::m20261125_000002_executions::Executions;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Added {
    ParentNodeId,
}

// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Executions::Table)
                    .add_column(string_null(Added::ParentNodeId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Executions::Table)
                    .drop_column(Added::ParentNodeId)
                    .to_owned(),
            )
            .await
    }
}

//! `node_results.claims`: how many times each node was handed to a worker, beside `attempts`
//! (the attempts counted against `maxAttempts`). Rows written before it read 0.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum NodeResults {
    Table,
    Claims,
}

// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(NodeResults::Table)
                    .add_column(big_integer(NodeResults::Claims).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(NodeResults::Table)
                    .drop_column(NodeResults::Claims)
                    .to_owned(),
            )
            .await
    }
}

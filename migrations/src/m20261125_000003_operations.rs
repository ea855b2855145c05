//! Dead-letter items, logs and payloads (claim check).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, string, string_null, text, text_null,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum DlqItems {
    Table,
    Id,
    ExecutionId,
    WorkflowId,
    WorkflowVersion,
    NodeId,
    Reason,
    Error,
    Attempts,
    FailedAt,
    RetriedAt,
}

#[derive(DeriveIden)]
enum Logs {
    Table,
    Id,
    ExecutionId,
    NodeId,
    Level,
    Message,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Payloads {
    Table,
    Id,
    ExecutionId,
    Data,
    Size,
    CreatedAt,
}

#[async_trait::async_trait]
// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DlqItems::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DlqItems::Id))
                    .col(string(DlqItems::ExecutionId))
                    .col(string(DlqItems::WorkflowId))
                    .col(big_integer(DlqItems::WorkflowVersion))
                    .col(string(DlqItems::NodeId))
                    // `failed` or `stalled`.
                    .col(string(DlqItems::Reason))
                    .col(text(DlqItems::Error))
                    .col(big_integer(DlqItems::Attempts))
                    .col(big_integer(DlqItems::FailedAt))
                    .col(big_integer_null(DlqItems::RetriedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_dlq_items_execution_node")
                    .table(DlqItems::Table)
                    .col(DlqItems::ExecutionId)
                    .col(DlqItems::NodeId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_dlq_items_failed_at")
                    .table(DlqItems::Table)
                    .col(DlqItems::FailedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Logs::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Logs::Id))
                    .col(string(Logs::ExecutionId))
                    .col(string_null(Logs::NodeId))
                    .col(string(Logs::Level))
                    .col(text(Logs::Message))
                    .col(text_null(Logs::Data))
                    .col(big_integer(Logs::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_logs_execution_created")
                    .table(Logs::Table)
                    .col(Logs::ExecutionId)
                    .col(Logs::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Payloads::Table)
                    .if_not_exists()
                    .col(string(Payloads::Id).primary_key())
                    .col(string(Payloads::ExecutionId))
                    // The JSON text of the value stored aside.
                    .col(text(Payloads::Data))
                    // Its length in bytes.
                    .col(big_integer(Payloads::Size))
                    .col(big_integer(Payloads::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Payloads are deleted with their execution.
        manager
            .create_index(
                Index::create()
                    .name("ix_payloads_execution")
                    .table(Payloads::Table)
                    .col(Payloads::ExecutionId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Payloads::Table.into_iden(),
            Logs::Table.into_iden(),
            DlqItems::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

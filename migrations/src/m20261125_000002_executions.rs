//! Executions and their node results.

use sea_orm_migration::prelude::*;

use crate::collate::bytewise;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, boolean, string, string_null, text, text_null,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Executions {
    Table,
    Id,
    WorkflowId,
    WorkflowVersion,
    Status,
    ParentExecutionId,
    Depth,
    InitialData,
    Metadata,
    Error,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum NodeResults {
    Table,
    Id,
    ExecutionId,
    NodeId,
    Status,
    Data,
    Error,
    Attempts,
    Continued,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Executions::Table)
                    .if_not_exists()
                    // The ULID, as text (26 characters, sorts by creation time).
                    .col(bytewise(
                        manager,
                        string(Executions::Id).primary_key().take(),
                    ))
                    .col(bytewise(manager, string(Executions::WorkflowId)))
                    .col(big_integer(Executions::WorkflowVersion))
                    .col(string(Executions::Status))
                    .col(bytewise(
                        manager,
                        string_null(Executions::ParentExecutionId),
                    ))
                    .col(big_integer(Executions::Depth))
                    .col(text(Executions::InitialData))
                    .col(text_null(Executions::Metadata))
                    .col(text_null(Executions::Error))
                    .col(big_integer(Executions::CreatedAt))
                    .col(big_integer_null(Executions::FinishedAt))
                    .to_owned(),
            )
            .await?;
        // History queries: by workflow and status over a time range, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_executions_workflow_status_created")
                    .table(Executions::Table)
                    .col(Executions::WorkflowId)
                    .col(Executions::Status)
                    .col(Executions::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Listing every execution newest first (the keyset of the cursor).
        manager
            .create_index(
                Index::create()
                    .name("ix_executions_created_id")
                    .table(Executions::Table)
                    .col(Executions::CreatedAt)
                    .col(Executions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_executions_parent")
                    .table(Executions::Table)
                    .col(Executions::ParentExecutionId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        create_node_results(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(NodeResults::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(Executions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// The `node_results` table as this migration made it (migration 7 drops it, and its `down`
/// makes it again through this).
pub(crate) async fn create_node_results(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(NodeResults::Table)
                .if_not_exists()
                .col(big_pk_auto(NodeResults::Id))
                .col(bytewise(manager, string(NodeResults::ExecutionId)))
                .col(bytewise(manager, string(NodeResults::NodeId)))
                .col(string(NodeResults::Status))
                // JSON text; SQL NULL = no data, the text `null` = the JSON value null.
                .col(text_null(NodeResults::Data))
                .col(text_null(NodeResults::Error))
                .col(big_integer(NodeResults::Attempts))
                .col(boolean(NodeResults::Continued).default(false))
                .col(big_integer_null(NodeResults::StartedAt))
                .col(big_integer_null(NodeResults::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_node_results_execution")
                        .from(NodeResults::Table, NodeResults::ExecutionId)
                        .to(Executions::Table, Executions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // One result per node of an execution: every write is an upsert on this key.
    manager
        .create_index(
            Index::create()
                .name("ux_node_results_execution_node")
                .table(NodeResults::Table)
                .col(NodeResults::ExecutionId)
                .col(NodeResults::NodeId)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await
}

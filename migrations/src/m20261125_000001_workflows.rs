//! Workflows and their definition versions.

use sea_orm_migration::prelude::*;

use crate::collate::bytewise;
use sea_orm_migration::schema::{big_integer, big_pk_auto, boolean, string, text};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Workflows {
    Table,
    Id,
    Name,
    Active,
    LatestVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WorkflowVersions {
    Table,
    Id,
    WorkflowId,
    Version,
    Definition,
    ContentHash,
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
                    .table(Workflows::Table)
                    .if_not_exists()
                    .col(bytewise(
                        manager,
                        string(Workflows::Id).primary_key().take(),
                    ))
                    .col(string(Workflows::Name))
                    .col(boolean(Workflows::Active).default(true))
                    .col(big_integer(Workflows::LatestVersion))
                    .col(big_integer(Workflows::CreatedAt))
                    .col(big_integer(Workflows::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkflowVersions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WorkflowVersions::Id))
                    .col(bytewise(manager, string(WorkflowVersions::WorkflowId)))
                    .col(big_integer(WorkflowVersions::Version))
                    // The definition as JSON text, as it was saved (key order kept).
                    .col(text(WorkflowVersions::Definition))
                    // SHA-256 (hex) of the canonical JSON (object keys sorted).
                    .col(string(WorkflowVersions::ContentHash))
                    .col(big_integer(WorkflowVersions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_workflow_versions_workflow")
                            .from(WorkflowVersions::Table, WorkflowVersions::WorkflowId)
                            .to(Workflows::Table, Workflows::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Concurrent savers of one workflow race on this key: the loser retries with the
        // next version number, so no version is ever written twice.
        manager
            .create_index(
                Index::create()
                    .name("ux_workflow_versions_workflow_version")
                    .table(WorkflowVersions::Table)
                    .col(WorkflowVersions::WorkflowId)
                    .col(WorkflowVersions::Version)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(WorkflowVersions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Workflows::Table).if_exists().to_owned())
            .await
    }
}

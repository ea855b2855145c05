//! Versioned definitions and the workflow catalog on SQL.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait, TransactionTrait,
};
use spane_core::{WorkflowDefinition, now_millis};

use super::convert::{parse_json, to_u32};
use super::entity::{workflow, workflow_version};
use super::{SqlStore, db_error, is_unique_violation};
use crate::{
    StoreError, StoredWorkflow, WorkflowCatalog, WorkflowPage, WorkflowStore, WorkflowSummary,
    content_hash,
};

/// How many times a saver retries after losing the race for a version number. Each loss means
/// another saver wrote a version meanwhile, so this bounds a pathological stampede only.
const SAVE_TRIES: usize = 64;

fn stored(row: workflow_version::Model) -> Result<StoredWorkflow, StoreError> {
    let value = parse_json(&row.definition, || {
        format!(
            "workflow_versions({}, {}).definition",
            row.workflow_id, row.version
        )
    })?;
    let definition = serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        reason: format!(
            "workflow_versions({}, {}).definition: {e}",
            row.workflow_id, row.version
        ),
    })?;
    Ok(StoredWorkflow {
        definition,
        version: to_u32(row.version, "workflow_versions.version")?,
        created_at: row.created_at,
    })
}

fn summary(row: workflow::Model) -> Result<WorkflowSummary, StoreError> {
    Ok(WorkflowSummary {
        latest_version: to_u32(row.latest_version, "workflows.latest_version")?,
        id: row.id,
        name: row.name,
        active: row.active,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

impl SqlStore {
    /// Writes `version` of `definition` in one transaction; fails with a unique violation
    /// when another saver wrote that version first.
    async fn insert_version(
        &self,
        definition: &WorkflowDefinition,
        version: i64,
        hash: &str,
    ) -> Result<(), DbErr> {
        let now = now_millis();
        let text = serde_json::to_string(definition).map_err(|e| DbErr::Json(e.to_string()))?;
        let txn = self.db.begin().await?;
        let result = async {
            workflow::Entity::insert(workflow::ActiveModel {
                id: Set(definition.id.clone()),
                name: Set(definition.name.clone()),
                active: Set(true),
                latest_version: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .on_conflict_do_nothing_on([workflow::Column::Id])
            .exec_without_returning(&txn)
            .await?;
            workflow_version::Entity::insert(workflow_version::ActiveModel {
                id: NotSet,
                workflow_id: Set(definition.id.clone()),
                version: Set(version),
                definition: Set(text),
                content_hash: Set(hash.to_owned()),
                created_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
            workflow::Entity::update_many()
                .col_expr(workflow::Column::Name, Expr::value(definition.name.clone()))
                .col_expr(workflow::Column::LatestVersion, Expr::value(version))
                .col_expr(workflow::Column::UpdatedAt, Expr::value(now))
                .filter(workflow::Column::Id.eq(definition.id.clone()))
                .filter(workflow::Column::LatestVersion.lt(version))
                .exec(&txn)
                .await?;
            Ok::<_, DbErr>(())
        }
        .await;
        match result {
            Ok(()) => txn.commit().await,
            Err(e) => {
                // The original error matters more than a failed rollback (which the server
                // performs anyway when the connection goes).
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    async fn latest_version(
        &self,
        db: &impl ConnectionTrait,
        id: &str,
    ) -> Result<Option<workflow_version::Model>, StoreError> {
        workflow_version::Entity::find()
            .filter(workflow_version::Column::WorkflowId.eq(id))
            .order_by_desc(workflow_version::Column::Version)
            .one(db)
            .await
            .map_err(db_error)
    }

    async fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError> {
        let changed = workflow::Entity::update_many()
            .col_expr(workflow::Column::Active, Expr::value(active))
            .col_expr(workflow::Column::UpdatedAt, Expr::value(now_millis()))
            .filter(workflow::Column::Id.eq(id))
            .filter(workflow::Column::Active.ne(active))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        if changed.rows_affected > 0 {
            return Ok(true);
        }
        let exists = workflow::Entity::find_by_id(id.to_owned())
            .count(&self.db)
            .await
            .map_err(db_error)?;
        Ok(exists > 0)
    }
}

#[async_trait]
impl WorkflowStore for SqlStore {
    async fn save_workflow(&self, definition: &WorkflowDefinition) -> Result<u32, StoreError> {
        let hash = content_hash(definition);
        for _ in 0..SAVE_TRIES {
            let latest = self.latest_version(&self.db, &definition.id).await?;
            if let Some(latest) = &latest
                && latest.content_hash == hash
            {
                return to_u32(latest.version, "workflow_versions.version");
            }
            let next = latest.map_or(1, |l| l.version + 1);
            match self.insert_version(definition, next, &hash).await {
                Ok(()) => return to_u32(next, "workflow_versions.version"),
                // Another saver wrote this version first: read again.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(db_error(e)),
            }
        }
        Err(StoreError::Unavailable {
            reason: format!(
                "workflow {:?}: gave up after {SAVE_TRIES} conflicting concurrent saves",
                definition.id
            ),
            source: None,
        })
    }

    async fn get_workflow(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        let row = match version {
            None => self.latest_version(&self.db, id).await?,
            Some(v) => workflow_version::Entity::find()
                .filter(workflow_version::Column::WorkflowId.eq(id))
                .filter(workflow_version::Column::Version.eq(i64::from(v)))
                .one(&self.db)
                .await
                .map_err(db_error)?,
        };
        row.map(stored).transpose()
    }

    async fn latest_version(&self, id: &str) -> Result<Option<u32>, StoreError> {
        // One small row: the version column of `workflows`, not the definition.
        let row = workflow::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        row.map(|w| super::convert::to_u32(w.latest_version, "workflows.latest_version"))
            .transpose()
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>, StoreError> {
        workflow_version::Entity::find()
            .join(
                sea_orm::JoinType::InnerJoin,
                workflow_version::Relation::Workflow.def(),
            )
            .filter(
                Expr::col((workflow::Entity, workflow::Column::LatestVersion))
                    .equals((workflow_version::Entity, workflow_version::Column::Version)),
            )
            .order_by_asc(workflow_version::Column::WorkflowId)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(stored)
            .collect()
    }

    fn catalog(&self) -> Option<&dyn WorkflowCatalog> {
        Some(self)
    }
}

#[async_trait]
impl WorkflowCatalog for SqlStore {
    async fn list_workflows_page(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<WorkflowPage, StoreError> {
        let rows = workflow::Entity::find()
            .order_by_asc(workflow::Column::Id)
            .offset(super::clamp(offset))
            .limit(super::clamp(limit))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let total = workflow::Entity::find()
            .count(&self.db)
            .await
            .map_err(db_error)?;
        Ok(WorkflowPage {
            items: rows.into_iter().map(summary).collect::<Result<_, _>>()?,
            total,
        })
    }

    async fn workflow_summary(&self, id: &str) -> Result<Option<WorkflowSummary>, StoreError> {
        workflow::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(summary)
            .transpose()
    }

    async fn deactivate_workflow(&self, id: &str) -> Result<bool, StoreError> {
        self.set_active(id, false).await
    }

    async fn activate_workflow(&self, id: &str) -> Result<bool, StoreError> {
        self.set_active(id, true).await
    }
}

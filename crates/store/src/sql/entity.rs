//! sea-orm entities of the tables of `spane-migrations` that the store reads and writes.
//!
//! The derives generate public items without docs; these modules stay private to the crate.
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

pub(crate) mod workflow {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub active: bool,
        pub latest_version: i64,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod workflow_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_versions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_id: String,
        pub version: i64,
        pub definition: String,
        pub content_hash: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::workflow::Entity",
            from = "Column::WorkflowId",
            to = "super::workflow::Column::Id"
        )]
        Workflow,
    }

    impl Related<super::workflow::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Workflow.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod execution {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "executions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workflow_id: String,
        pub workflow_version: i64,
        pub status: String,
        pub parent_execution_id: Option<String>,
        pub depth: i64,
        pub parent_node_id: Option<String>,
        pub initial_data: String,
        pub metadata: Option<String>,
        pub error: Option<String>,
        pub created_at: i64,
        pub finished_at: Option<i64>,
        /// The node results: a JSON object from node id to entry (`convert::nodes_text`).
        pub nodes: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

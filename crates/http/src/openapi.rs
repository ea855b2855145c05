//! The OpenAPI document (utoipa, from the handlers' annotations and types) and the JSON
//! Schema of the workflow definition format (schemars, from spane-core's types).

use axum::Json;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::{api, error, sse};

/// The API's OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(title = "SPANE HTTP API", description = "Workflows, executions and their sub-workflows, control, the dead-letter queue, schedules, webhooks, circuit breakers, events (SSE) and metrics of a SPANE engine. Errors are RFC 9457 problem details with a stable `code`."),
    paths(
        api::workflows::register, api::workflows::list, api::workflows::get_latest,
        api::workflows::get_by_version, api::workflows::deactivate, api::workflows::activate,
        api::executions::execute, api::executions::get, api::executions::list,
        api::control::pause, api::control::resume, api::control::cancel,
        api::control::pause_many, api::control::resume_many, api::control::cancel_many,
        api::dlq::list, api::dlq::get, api::dlq::retry, api::dlq::retry_execution, api::dlq::purge,
        api::executions::children,
        api::operate::explain, api::operate::rerun, api::operate::retry_failed,
        api::schedules::list, api::schedules::get, api::schedules::upsert, api::schedules::remove,
        api::schedules::remove_workflow, api::schedules::schedule_once,
        api::webhooks::deliver,
        api::breakers::list, api::breakers::reset,
        api::system::health, api::system::ready, api::system::queue_stats, api::system::metrics,
        sse::execution_events, sse::events,
        workflow_schema,
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth),
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// The JSON Schema of a workflow definition (the body of `POST /workflows`).
pub fn workflow_definition_schema() -> Value {
    let schema = schemars::schema_for!(spane::WorkflowDefinition);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

pub(crate) async fn openapi() -> Json<Value> {
    Json(openapi_json())
}

/// The JSON Schema of the workflow definition format.
#[utoipa::path(get, path = "/schemas/workflow-definition.json", tag = "system",
    responses((status = 200, body = Object, description = "JSON Schema (2020-12)")))]
pub(crate) async fn workflow_schema() -> Json<Value> {
    Json(workflow_definition_schema())
}

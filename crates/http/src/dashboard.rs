//! The dashboard: static files embedded in the binary, served at `/`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::AppState;

const INDEX: &str = include_str!("../assets/index.html");

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(index))
}

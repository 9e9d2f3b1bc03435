//! Health, readiness and plugin status endpoints.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::json::PluginStatusJson;
use super::{ApiError, AppState};

/// `GET /healthz`: 200 while the hub process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once every plugin has completed its handshake at least
/// once and the database takes writes; else 503 naming the plugins still
/// waited for, or saying the database is unavailable (since when; its error
/// stays in the hub's log).
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(outage) = state
        .ingest
        .as_ref()
        .and_then(|ingest| ingest.store.health().outage())
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "database_unavailable",
                "reason": "the database is unavailable: webhooks are refused and polls and deliveries are paused until it is back",
                "database": {
                    "backend": match state.ingest.as_ref().map(|ingest| ingest.store.backend()) {
                        Some(crate::store::Backend::Postgres) => "postgres",
                        _ => "sqlite",
                    },
                    "available": false,
                    "since": outage.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                },
            })),
        )
            .into_response();
    }
    let waiting_for: Vec<String> = state
        .plugin_list()
        .iter()
        .map(|plugin| plugin.status())
        .filter(|status| !status.ever_ready && !status.on_demand)
        .map(|status| status.name)
        .collect();
    if waiting_for.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting", "waiting_for": waiting_for })),
        )
            .into_response()
    }
}

/// `GET /api/v1/plugins`: every plugin, in config order.
pub async fn list_plugins(State(state): State<AppState>) -> Json<Vec<PluginStatusJson>> {
    Json(
        state
            .plugin_list()
            .iter()
            .map(|plugin| state.status_json(plugin))
            .collect(),
    )
}

/// `GET /api/v1/plugins/NAME`: one plugin, or 404.
pub async fn get_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatusJson>, ApiError> {
    Ok(Json(state.status_json(&state.plugin(&name)?)))
}

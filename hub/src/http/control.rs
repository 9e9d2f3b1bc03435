//! `POST /api/v1/plugins/NAME/{restart,stop,start}`: an operator's commands
//! to a plugin's supervisor, each answered with the plugin's status once
//! carried out, and `GET /metrics`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;

use super::json::PluginStatusJson;
use super::{ApiError, AppState};

/// `restart`: stops the plugin if it runs, clears `failed` and its restart
/// history, and starts it again; answers once the new start is under way.
pub async fn restart(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatusJson>, ApiError> {
    let plugin = state.plugin(&name)?;
    tracing::info!(plugin = %name, "Restart requested through the API.");
    plugin.restart().await;
    Ok(Json(PluginStatusJson::of(plugin)))
}

/// `stop`: stops the plugin (Shutdown, then signals) and keeps it stopped,
/// with no automatic restart; answers once its process is gone.
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatusJson>, ApiError> {
    let plugin = state.plugin(&name)?;
    tracing::info!(plugin = %name, "Stop requested through the API.");
    plugin.stop().await;
    Ok(Json(PluginStatusJson::of(plugin)))
}

/// `start`: starts a stopped, failed or backing-off plugin at once (a
/// running one is left alone); answers once the start is under way.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatusJson>, ApiError> {
    let plugin = state.plugin(&name)?;
    tracing::info!(plugin = %name, "Start requested through the API.");
    plugin.start().await;
    Ok(Json(PluginStatusJson::of(plugin)))
}

/// `GET /metrics`: every metric in the OpenMetrics text format, which
/// Prometheus scrapes.
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::global().encode(),
    )
}

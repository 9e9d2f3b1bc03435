//! `POST /api/v1/plugins/NAME/{restart,stop,start}`: an operator's commands
//! to a plugin's supervisor, each answered with the plugin's status once
//! carried out, and `GET /metrics` (in the format the scraper asks for).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::json::PluginStatusJson;
use super::metrics_text::{self, Format};
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
    Ok(Json(state.status_json(&plugin)))
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
    Ok(Json(state.status_json(&plugin)))
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
    Ok(Json(state.status_json(&plugin)))
}

/// `GET /metrics`: every metric, in OpenMetrics when the `Accept` header
/// asks for it, else in the classic Prometheus text format 0.0.4
/// ([`Format::negotiate`]).
pub async fn metrics(headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(&headers);
    let openmetrics = crate::metrics::global().encode();
    let body = match format {
        Format::OpenMetrics => openmetrics,
        Format::Classic => metrics_text::to_classic(&openmetrics),
    };
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        body,
    )
}

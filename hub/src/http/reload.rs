//! `POST /api/v1/reload`: re-read the config file and apply it (see
//! [`crate::reload`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ErrorCode, error_response, error_response_listing};
use crate::reload::ReloadError;

/// Answers 200 with the plan applied (`started`, `restarted`, `stopped`,
/// `unchanged`, `pipeline_changed`); 400 `invalid_config` with `errors`
/// (file:line:column each) when the file is invalid; 409
/// `restart_required` naming the `[hub]` keys that only a restart can
/// change; 503 while the hub shuts down. Nothing changes unless 200.
pub async fn reload(State(state): State<AppState>) -> Response {
    let Some(reloader) = &state.reloader else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "this hub cannot reload",
        );
    };
    match reloader.reload().await {
        Ok(plan) => (StatusCode::OK, Json(plan)).into_response(),
        Err(ReloadError::Invalid(errors)) => {
            let problems: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            error_response_listing(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidConfig,
                &format!(
                    "the config file has {} error{}; nothing changed",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
                &problems,
            )
        }
        Err(err @ ReloadError::RestartRequired(_)) => error_response(
            StatusCode::CONFLICT,
            ErrorCode::RestartRequired,
            &err.to_string(),
        ),
        Err(err @ ReloadError::ShuttingDown) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            &err.to_string(),
        ),
    }
}

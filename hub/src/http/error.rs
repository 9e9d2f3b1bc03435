//! The API's one error type and its mapping to HTTP status codes (in one
//! place, as `docs/admin-api.md` specifies). Bodies are `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::retry::{AttemptFailure, GiveUp};
use crate::rpc::CallError;

/// Everything an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No plugin of that name is configured.
    #[error("there is no plugin named `{0}`")]
    UnknownPlugin(String),
    /// The plugin exists but is not running.
    #[error("plugin `{name}` is not running (it is {state})")]
    NotRunning {
        /// The instance name.
        name: String,
        /// Its current state.
        state: &'static str,
    },
    /// The plugin is running but does not serve the role the call needs.
    #[error("plugin `{name}` does not serve the {role} role (it serves: {served})")]
    RoleNotServed {
        /// The instance name.
        name: String,
        /// The role the call needs.
        role: &'static str,
        /// The roles it serves.
        served: String,
    },
    /// The request body is not what the endpoint expects.
    #[error("malformed request body: {0}")]
    BadRequest(String),
    /// The plugin answered INVALID_ARGUMENT.
    #[error("plugin `{name}` rejected the input: {message}")]
    Rejected {
        /// The instance name.
        name: String,
        /// The plugin's message.
        message: String,
    },
    /// The call failed.
    #[error("plugin `{name}`: {error}")]
    CallFailed {
        /// The instance name.
        name: String,
        /// What failed.
        error: CallError,
    },
    /// Every attempt the plugin's retry policy allows failed.
    #[error("plugin `{name}`: gave up after {attempts} attempts; the last one failed: {last}")]
    GaveUp {
        /// The instance name.
        name: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        last: AttemptFailure,
    },
    /// The call did not finish in time.
    #[error("plugin `{name}` did not answer the {call} call within {seconds}s")]
    Timeout {
        /// The instance name.
        name: String,
        /// The call.
        call: &'static str,
        /// The limit, in seconds.
        seconds: u64,
    },
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
            ApiError::NotRunning { .. } | ApiError::RoleNotServed { .. } => StatusCode::CONFLICT,
            ApiError::BadRequest(_) | ApiError::Rejected { .. } => StatusCode::BAD_REQUEST,
            ApiError::CallFailed { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::GaveUp { last, .. } => match last {
                AttemptFailure::Call(_) => StatusCode::BAD_GATEWAY,
                AttemptFailure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                AttemptFailure::NotRunning { .. }
                | AttemptFailure::NotServing
                | AttemptFailure::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// Maps a call that failed under the retry policy: a stopped or failed
    /// plugin or a role it does not serve is 409, a permanent error is
    /// classified like [`ApiError::from_call`], and exhausted retries are
    /// 502 (the plugin's error), 504 (timed out) or 503 (the plugin was not
    /// running, not serving, or its circuit breaker was open).
    pub fn from_give_up(name: &str, give_up: GiveUp) -> Self {
        match give_up {
            GiveUp::Stopped { state } => ApiError::NotRunning {
                name: name.to_owned(),
                state,
            },
            GiveUp::RoleNotServed { role, served } => ApiError::RoleNotServed {
                name: name.to_owned(),
                role,
                served,
            },
            GiveUp::Permanent(error) => ApiError::from_call(name, error),
            GiveUp::Exhausted { attempts, last, .. } => ApiError::GaveUp {
                name: name.to_owned(),
                attempts,
                last,
            },
            GiveUp::Cancelled => ApiError::NotRunning {
                name: name.to_owned(),
                state: "stopping",
            },
            GiveUp::Local(error) => ApiError::CallFailed {
                name: name.to_owned(),
                error: CallError::Protocol(error.to_string()),
            },
        }
    }

    /// Classifies a failed call: INVALID_ARGUMENT is the caller's fault (400),
    /// anything else the plugin's (502).
    pub fn from_call(name: &str, error: CallError) -> Self {
        match error {
            CallError::Rejected(message) => ApiError::Rejected {
                name: name.to_owned(),
                message,
            },
            error => ApiError::CallFailed {
                name: name.to_owned(),
                error,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %message, "API request failed.");
        } else {
            tracing::debug!(status = status.as_u16(), error = %message, "API request refused.");
        }
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_errors_to_the_documented_status_codes() {
        let failed = CallError::Failed {
            code: tonic::Code::Unavailable,
            message: "gone".into(),
            retry_after: None,
        };
        let cases = [
            (ApiError::UnknownPlugin("x".into()), 404),
            (
                ApiError::NotRunning {
                    name: "x".into(),
                    state: "stopped",
                },
                409,
            ),
            (ApiError::BadRequest("x".into()), 400),
            (
                ApiError::from_call("x", CallError::Rejected("bad".into())),
                400,
            ),
            (ApiError::from_call("x", failed), 502),
            (
                ApiError::Timeout {
                    name: "x".into(),
                    call: "enrich",
                    seconds: 30,
                },
                504,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }
}

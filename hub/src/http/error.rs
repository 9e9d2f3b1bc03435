//! The API's one error type, its mapping to HTTP status codes and stable
//! error codes, and the one function that builds an error body (as
//! `docs/admin-api.md` specifies): `{"error": "<sentence>", "code": "<code>"}`.
//!
//! Every error the hub answers goes through [`error_response`]: the
//! handlers' [`ApiError`]s, the 404 and 405 fallbacks ([`no_route`],
//! [`method_not_allowed`]), and, through the [`json_errors`] middleware,
//! axum's own rejections (a path that is not UTF-8, a body over axum's
//! limit, ...), which would otherwise answer plain text. Only a synchronous
//! webhook plugin's own reply ([`PluginReply`]) passes through untouched.
//!
//! Store errors are logged in full (with the SQL error) but answered with a
//! generic sentence: database details never leave the hub.

use std::sync::LazyLock;
use std::time::Instant;

use axum::Json;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::retry::{AttemptFailure, GiveUp};
use crate::rpc::CallError;
use crate::store::{Stage, StoreError};
use crate::webhook::WebhookError;

use super::log_throttle::{self, LogThrottle};

/// Which full-inbox refusals are logged (see [`log_throttle`]).
static INBOX_FULL_LOG: LazyLock<LogThrottle> = LazyLock::new(LogThrottle::default);

/// A stable, machine-readable error code: the `code` of every error body.
/// Clients branch on these; the sentence in `error` may change. The table
/// in `docs/admin-api.md` lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 404: no route matches the path.
    RouteNotFound,
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 404: no plugin (or webhook endpoint) of that name.
    UnknownPlugin,
    /// 404: no record or dead letter with that id.
    NotFound,
    /// 400: a malformed request body, query string or path.
    BadRequest,
    /// 413: the request body is larger than allowed.
    BodyTooLarge,
    /// 409: the plugin is not running (stopped or failed).
    NotRunning,
    /// 409: the plugin does not serve the role the endpoint needs.
    RoleNotServed,
    /// 400: the plugin rejected the input (INVALID_ARGUMENT).
    Rejected,
    /// 502: the plugin's call failed or broke the protocol.
    CallFailed,
    /// 504: the plugin (or the enrichment chain) did not answer in time.
    Timeout,
    /// 503: the plugin could not take the call (being restarted, not
    /// serving, or not running).
    PluginUnavailable,
    /// 503: the plugin's circuit breaker is open.
    CircuitOpen,
    /// 502 or 503: the enrichment chain could not run.
    EnrichmentFailed,
    /// 503: the hub runs without a store.
    StoreUnavailable,
    /// 409: a dead letter cannot be replayed (its output is gone, the
    /// delivery is no longer held, or its stage cannot be replayed).
    NotReplayable,
    /// 401: the admin token (`[hub] admin_token_env`), or a webhook's key
    /// or signature, is missing or wrong.
    Unauthorized,
    /// 429: a webhook plugin's inbox is full.
    InboxFull,
    /// 502: a synchronous webhook plugin's reply is not valid HTTP.
    BadPluginReply,
    /// 500 (or 503 on webhooks): the hub failed (a store error); the hub's
    /// log has the details.
    Internal,
    /// 400: a reload found the config file invalid (nothing changed); the
    /// body's `errors` lists each problem with its file:line:column.
    InvalidConfig,
    /// 409: a reload would change a `[hub]` key that only a restart can
    /// change (nothing changed).
    RestartRequired,
    /// 503: the hub is shutting down.
    ShuttingDown,
    /// 404: the plugin has no `[plugins.NAME.poll]` (no poller, no
    /// checkpoint).
    NotPolled,
    /// 503: a poll of the plugin is still running; try again.
    PollInProgress,
    /// 409: another hub sharing the database runs this work now.
    OwnedElsewhere,
}

impl ErrorCode {
    /// The code as it appears in the body: snake_case, stable.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnknownPlugin => "unknown_plugin",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::RoleNotServed => "role_not_served",
            ErrorCode::Rejected => "rejected",
            ErrorCode::CallFailed => "call_failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::PluginUnavailable => "plugin_unavailable",
            ErrorCode::CircuitOpen => "circuit_open",
            ErrorCode::EnrichmentFailed => "enrichment_failed",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::NotReplayable => "not_replayable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InboxFull => "inbox_full",
            ErrorCode::BadPluginReply => "bad_plugin_reply",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::RestartRequired => "restart_required",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::NotPolled => "not_polled",
            ErrorCode::PollInProgress => "poll_in_progress",
            ErrorCode::OwnedElsewhere => "owned_elsewhere",
        }
    }

    /// The code for an error response that did not come from an
    /// [`ApiError`] (axum's own rejections), by status.
    fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ErrorCode::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Timeout,
            status if status.is_client_error() => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

/// The sentence answered for a store error (the error itself is logged).
pub const INTERNAL_MESSAGE: &str = "internal error, see the hub's log";

/// The sentence answered while the database is unavailable (its error is
/// in the hub's log, logged once per outage).
pub const UNAVAILABLE_MESSAGE: &str =
    "the database is unavailable; nothing was stored, retry later";

/// Marks a response whose body is already an error body, so the
/// [`json_errors`] middleware leaves it alone.
#[derive(Debug, Clone, Copy)]
struct ErrorBody;

/// Marks a synchronous webhook plugin's own reply: whatever its status and
/// body, it is passed to the client untouched.
#[derive(Debug, Clone, Copy)]
pub struct PluginReply;

/// The one function that builds an error answer: `status` with
/// `{"error": message, "code": code}`.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    error_response_listing(status, code, message, &[])
}

/// [`error_response`] with an `errors` array of one sentence per problem
/// when `problems` is not empty (an invalid config file's errors).
pub fn error_response_listing(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    problems: &[String],
) -> Response {
    let mut body = serde_json::json!({ "error": message, "code": code.as_str() });
    if !problems.is_empty() {
        body["errors"] = serde_json::json!(problems);
    }
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(ErrorBody);
    response
}

/// Everything an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path.
    #[error("there is no route {method} {path}")]
    NoRoute {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
    /// The route exists, but not for this method.
    #[error("{path} does not accept {method}")]
    MethodNotAllowed {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
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
    /// The query string or a path parameter is not what the endpoint
    /// expects (the message says what).
    #[error("{0}")]
    BadQuery(String),
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
    /// No record or dead letter has that id (`what` is "record 7",
    /// "dead letter \"x\"", ...).
    #[error("there is no {0}")]
    NotFound(String),
    /// The hub runs without a store.
    #[error("the store is not available")]
    StoreUnavailable,
    /// The store failed: logged in full, answered as [`INTERNAL_MESSAGE`].
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The enrichment chain of a replayed dead letter could not run.
    #[error("{0}")]
    Enrichment(String),
    /// The enrichment chain of a replayed dead letter did not finish in time.
    #[error("the enrichment chain did not finish within {seconds}s")]
    ChainTimeout {
        /// The limit, in seconds.
        seconds: u64,
    },
    /// The output of a dead letter is no longer configured.
    #[error("output `{0}` is no longer configured")]
    OutputGone(String),
    /// The webhook delivery of a dead letter is no longer held.
    #[error("the webhook delivery of dead letter {id} is no longer held for `{plugin}`")]
    DeliveryGone {
        /// The dead letter.
        id: i64,
        /// Its plugin.
        plugin: String,
    },
    /// Dead letters of this stage cannot be replayed.
    #[error("dead letters of the {0} stage cannot be replayed here")]
    NotReplayable(Stage),
    /// A webhook request was refused (`POST /webhooks/NAME`).
    #[error("{0}")]
    Webhook(WebhookError),
    /// A synchronous webhook plugin replied with a status that is not HTTP.
    #[error("plugin `{plugin}` replied to the webhook with the invalid status {status}")]
    BadPluginReply {
        /// The plugin.
        plugin: String,
        /// The status it sent.
        status: u16,
    },
    /// The plugin is not polled (no `[plugins.NAME.poll]`).
    #[error(
        "plugin `{0}` is not polled (it has no [plugins.{0}.poll] table), so it has no checkpoint"
    )]
    NotPolled(String),
    /// A poll of the plugin did not end within the wait.
    #[error("a poll of plugin `{name}` is still running after {seconds}s; try again once it ended")]
    PollInProgress {
        /// The instance name.
        name: String,
        /// How long the request waited, in seconds.
        seconds: u64,
    },
    /// The plugin's poller is gone (the hub is stopping).
    #[error("plugin `{0}`: its poller is not running (the hub is stopping)")]
    PollerGone(String),
    /// Another hub holds the plugin's polling lease now.
    #[error(
        "plugin `{0}` is polled by another hub sharing the database now; ask that hub (see GET /api/v1/cluster)"
    )]
    PolledElsewhere(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoRoute { .. }
            | ApiError::UnknownPlugin(_)
            | ApiError::NotFound(_)
            | ApiError::NotPolled(_) => StatusCode::NOT_FOUND,
            ApiError::PollInProgress { .. } | ApiError::PollerGone(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::PolledElsewhere(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotRunning { .. }
            | ApiError::RoleNotServed { .. }
            | ApiError::OutputGone(_)
            | ApiError::DeliveryGone { .. }
            | ApiError::NotReplayable(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) | ApiError::BadQuery(_) | ApiError::Rejected { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::CallFailed { .. }
            | ApiError::Enrichment(_)
            | ApiError::BadPluginReply { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Timeout { .. } | ApiError::ChainTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::GaveUp { last, .. } => match last {
                AttemptFailure::Call(_) => StatusCode::BAD_GATEWAY,
                AttemptFailure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                AttemptFailure::NotRunning { .. }
                | AttemptFailure::NotServing
                | AttemptFailure::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(error) if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Webhook(error) => webhook_status(error),
        }
    }

    /// The stable code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::NoRoute { .. } => ErrorCode::RouteNotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::UnknownPlugin(_) => ErrorCode::UnknownPlugin,
            ApiError::NotRunning { .. } => ErrorCode::NotRunning,
            ApiError::RoleNotServed { .. } => ErrorCode::RoleNotServed,
            ApiError::BadRequest(_) | ApiError::BadQuery(_) => ErrorCode::BadRequest,
            ApiError::Rejected { .. } => ErrorCode::Rejected,
            ApiError::CallFailed { .. } => ErrorCode::CallFailed,
            ApiError::GaveUp { last, .. } => match last {
                AttemptFailure::Call(_) => ErrorCode::CallFailed,
                AttemptFailure::Timeout(_) => ErrorCode::Timeout,
                AttemptFailure::NotRunning { .. } | AttemptFailure::NotServing => {
                    ErrorCode::PluginUnavailable
                }
                AttemptFailure::CircuitOpen => ErrorCode::CircuitOpen,
            },
            ApiError::Timeout { .. } | ApiError::ChainTimeout { .. } => ErrorCode::Timeout,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::StoreUnavailable => ErrorCode::StoreUnavailable,
            ApiError::Store(error) if error.is_unavailable() => ErrorCode::StoreUnavailable,
            ApiError::Store(_) => ErrorCode::Internal,
            ApiError::Enrichment(_) => ErrorCode::EnrichmentFailed,
            ApiError::OutputGone(_)
            | ApiError::DeliveryGone { .. }
            | ApiError::NotReplayable(_) => ErrorCode::NotReplayable,
            ApiError::Webhook(error) => webhook_code(error),
            ApiError::BadPluginReply { .. } => ErrorCode::BadPluginReply,
            ApiError::NotPolled(_) => ErrorCode::NotPolled,
            ApiError::PollInProgress { .. } => ErrorCode::PollInProgress,
            ApiError::PollerGone(_) => ErrorCode::PluginUnavailable,
            ApiError::PolledElsewhere(_) => ErrorCode::OwnedElsewhere,
        }
    }

    /// The sentence answered in `error`: the error's text, except for
    /// store errors, whose details (SQL, table names) stay in the log.
    fn public_message(&self) -> String {
        match self {
            ApiError::Store(error) | ApiError::Webhook(WebhookError::Store { error, .. })
                if error.is_unavailable() =>
            {
                UNAVAILABLE_MESSAGE.to_owned()
            }
            ApiError::Store(_) | ApiError::Webhook(WebhookError::Store { .. }) => {
                INTERNAL_MESSAGE.to_owned()
            }
            error => error.to_string(),
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

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        ApiError::Webhook(error)
    }
}

/// The status of each webhook refusal (`docs/webhooks.md`).
fn webhook_status(error: &WebhookError) -> StatusCode {
    match error {
        WebhookError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
        WebhookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        WebhookError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        WebhookError::InboxFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        WebhookError::Rejected { .. } => StatusCode::BAD_REQUEST,
        WebhookError::NotRunning(_)
        | WebhookError::Enrichment { .. }
        | WebhookError::Store { .. } => StatusCode::SERVICE_UNAVAILABLE,
        WebhookError::CallFailed { .. } => StatusCode::BAD_GATEWAY,
        WebhookError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// The code of each webhook refusal.
fn webhook_code(error: &WebhookError) -> ErrorCode {
    match error {
        WebhookError::UnknownPlugin(_) => ErrorCode::UnknownPlugin,
        WebhookError::TooLarge { .. } => ErrorCode::BodyTooLarge,
        WebhookError::Unauthorized { .. } => ErrorCode::Unauthorized,
        WebhookError::InboxFull { .. } => ErrorCode::InboxFull,
        WebhookError::Rejected { .. } => ErrorCode::Rejected,
        WebhookError::NotRunning(_) => ErrorCode::PluginUnavailable,
        WebhookError::CallFailed { .. } => ErrorCode::CallFailed,
        WebhookError::Timeout { .. } => ErrorCode::Timeout,
        WebhookError::Enrichment { .. } => ErrorCode::EnrichmentFailed,
        WebhookError::Store { error, .. } if error.is_unavailable() => ErrorCode::StoreUnavailable,
        WebhookError::Store { .. } => ErrorCode::Internal,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        match &self {
            ApiError::Store(error) | ApiError::Webhook(WebhookError::Store { error, .. })
                if error.is_unavailable() =>
            {
                // The outage is logged once, by the store's health.
                tracing::debug!(status = status.as_u16(), code = code.as_str(), error = %self, "API request refused: the database is unavailable.");
            }
            ApiError::Store(_) | ApiError::Webhook(WebhookError::Store { .. }) => {
                // The full error, SQL included, for the operator only.
                tracing::error!(status = status.as_u16(), code = code.as_str(), error = %self, "API request failed: store error.");
            }
            ApiError::Webhook(WebhookError::InboxFull { plugin, .. }) => {
                // Overload: one line per plugin and interval, not one per
                // request (`/metrics` counts each).
                if let Some(left_out) = INBOX_FULL_LOG.admit(plugin, Instant::now()) {
                    tracing::info!(status = status.as_u16(), code = code.as_str(), error = %self, refused_since_last_line = left_out, "Webhook refused; further refusals for a full inbox are logged at most once every {} s.", log_throttle::INTERVAL.as_secs());
                }
            }
            ApiError::Webhook(_) if !status.is_server_error() => {
                tracing::info!(status = status.as_u16(), code = code.as_str(), error = %self, "Webhook refused.");
            }
            _ if status.is_server_error() => {
                tracing::warn!(status = status.as_u16(), code = code.as_str(), error = %self, "API request failed.");
            }
            _ => {
                tracing::debug!(status = status.as_u16(), code = code.as_str(), error = %self, "API request refused.");
            }
        }
        let mut response = error_response(status, code, &self.public_message());
        if matches!(self, ApiError::Webhook(_) | ApiError::Store(_))
            && (status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE)
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The router's fallback: 404 for a path no route matches.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method,
        path: uri.path().to_owned(),
    }
}

/// The fallback of every route for methods it does not accept: 405 (axum
/// adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}

/// The most of a plain-text rejection body kept as the error sentence.
const MAX_REJECTION_TEXT: usize = 4096;

/// Middleware: any error response that is not JSON (axum's plain-text
/// rejections) is rewritten into an error body, keeping its status and
/// headers such as `Allow`; a webhook plugin's own reply is left alone.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    // Errors built here, JSON answers of their own (`/readyz`'s 503) and a
    // plugin's reply pass as they are.
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.extensions().get::<ErrorBody>().is_some()
        || response.extensions().get::<PluginReply>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_TEXT).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    tracing::debug!(status = status.as_u16(), error = %text, "API request rejected.");
    let mut response = error_response(status, ErrorCode::for_status(status), &text);
    for name in [header::ALLOW, header::RETRY_AFTER] {
        for value in parts.headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::webhook::verify::VerifyError;

    #[test]
    fn maps_errors_to_the_documented_status_codes() {
        let failed = CallError::Protocol("gone".into());
        let cases = [
            (ApiError::UnknownPlugin("x".into()), 404, "unknown_plugin"),
            (
                ApiError::NotRunning {
                    name: "x".into(),
                    state: "stopped",
                },
                409,
                "not_running",
            ),
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (
                ApiError::from_call("x", CallError::Rejected("bad".into())),
                400,
                "rejected",
            ),
            (ApiError::from_call("x", failed), 502, "call_failed"),
            (
                ApiError::Timeout {
                    name: "x".into(),
                    call: "enrich",
                    seconds: 30,
                },
                504,
                "timeout",
            ),
            (
                ApiError::GaveUp {
                    name: "x".into(),
                    attempts: 3,
                    last: AttemptFailure::CircuitOpen,
                },
                503,
                "circuit_open",
            ),
            (ApiError::NotFound("record 7".into()), 404, "not_found"),
            (ApiError::StoreUnavailable, 503, "store_unavailable"),
            (ApiError::Store(StoreError::WriterGone), 500, "internal"),
            (
                ApiError::NotReplayable(Stage::Webhook),
                409,
                "not_replayable",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code().as_str(), code, "{error}");
        }
    }

    #[test]
    fn maps_webhook_refusals_to_the_documented_status_codes() {
        let cases = [
            (
                WebhookError::UnknownPlugin("x".into()),
                404,
                "unknown_plugin",
            ),
            (
                WebhookError::TooLarge {
                    plugin: "x".into(),
                    limit: 1,
                },
                413,
                "body_too_large",
            ),
            (
                WebhookError::Unauthorized {
                    plugin: "x".into(),
                    error: VerifyError::BadSignature,
                },
                401,
                "unauthorized",
            ),
            (
                WebhookError::InboxFull {
                    plugin: "x".into(),
                    pending: 2,
                    limit: 2,
                },
                429,
                "inbox_full",
            ),
            (
                WebhookError::Rejected {
                    plugin: "x".into(),
                    message: "not JSON".into(),
                },
                400,
                "rejected",
            ),
            (
                WebhookError::NotRunning("x".into()),
                503,
                "plugin_unavailable",
            ),
            (
                WebhookError::Store {
                    plugin: "x".into(),
                    error: StoreError::WriterGone,
                },
                503,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            let error = ApiError::from(error);
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code().as_str(), code, "{error}");
        }
    }

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn store_errors_are_answered_without_their_details() {
        let error = ApiError::Store(StoreError::Corrupt {
            table: "records",
            message: "SELECT secret FROM records".into(),
        });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(
            body,
            serde_json::json!({"error": INTERNAL_MESSAGE, "code": "internal"})
        );
    }

    #[tokio::test]
    async fn plain_rejections_become_error_bodies_and_plugin_replies_do_not() {
        let mut rejection = (StatusCode::METHOD_NOT_ALLOWED, "nope").into_response();
        rejection
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        let response = json_errors(rejection).await;
        assert_eq!(response.headers()[header::ALLOW], "GET");
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"error": "nope", "code": "method_not_allowed"})
        );

        let mut reply = (StatusCode::FORBIDDEN, "plugin says no").into_response();
        reply.extensions_mut().insert(PluginReply);
        let response = json_errors(reply).await;
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"plugin says no");

        let starting = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "starting"})),
        )
            .into_response();
        let response = json_errors(starting).await;
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"status": "starting"})
        );
    }
}

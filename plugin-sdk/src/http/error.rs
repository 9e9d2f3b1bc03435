//! [`HttpError`]: why an outbound call failed, classified for the retry loop,
//! the connector's health and the hub (through `From<HttpError> for PluginError`).

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::PluginError;

/// What kind of failure an [`HttpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// No connection could be made, or it broke before an answer (retryable).
    Connect,
    /// No complete answer within the configured `timeout` (retryable).
    Timeout,
    /// The upstream answered with a non-success status.
    Status,
    /// The answer's body is not what was expected (permanent).
    Decode,
    /// Getting or refreshing a credential failed (a token endpoint's answer,
    /// or signing a JWT).
    Auth,
    /// Pagination cannot go on: a repeated cursor, a missing records array,
    /// a bad `Link` header (permanent).
    Pagination,
    /// The request itself is invalid (a bad URL, a body that cannot be
    /// re-sent) (permanent).
    InvalidRequest,
}

/// Why an outbound HTTP call failed.
///
/// Its message names the method, the URL's path (never its query string,
/// which may carry a key) and the status; it never contains a secret.
/// Convert it into a [`PluginError`] with `?` or `.into()`: retryable kinds
/// become retryable errors (with the upstream's `Retry-After` as the hint),
/// the others permanent, each with a short code (see [`HttpError::code`]).
#[derive(Debug, Clone)]
pub struct HttpError {
    kind: HttpErrorKind,
    message: String,
    status: Option<StatusCode>,
    retryable: bool,
    retry_after: Option<Duration>,
    /// A rate limit answered with another status than 429 (GitHub's 403).
    rate_limited: bool,
}

impl HttpError {
    pub(crate) fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, HttpErrorKind::Connect | HttpErrorKind::Timeout);
        HttpError {
            kind,
            message: message.into(),
            status: None,
            retryable,
            retry_after: None,
            rate_limited: false,
        }
    }

    /// An upstream's non-success answer; retryable for 429, 502, 503, 504.
    pub(crate) fn status(
        method: &reqwest::Method,
        path: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut error = HttpError::new(
            HttpErrorKind::Status,
            format!("{method} {path} answered {status}"),
        );
        error.status = Some(status);
        error.retryable = is_retryable_status(status);
        error.retry_after = retry_after;
        error
    }

    /// Marks a non-429 answer as a rate limit (a 403 with `Retry-After` or a
    /// spent quota, as GitHub answers): retryable, code `rate_limited`.
    pub(crate) fn into_rate_limit(mut self) -> Self {
        self.rate_limited = true;
        self.retryable = true;
        self
    }

    /// Marks this error retryable or not (for token endpoint failures).
    pub(crate) fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Attaches the HTTP status this error is about.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Replaces the retry hint.
    pub(crate) fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }

    /// The upstream's status, when it answered.
    pub fn status_code(&self) -> Option<StatusCode> {
        self.status
    }

    /// True when trying again later may succeed: connect errors, timeouts,
    /// 429, 502, 503, 504 (and the same from a token endpoint).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// True when the upstream could not be reached or said it is unavailable:
    /// a connect error, a timeout, or 502/503/504. What a connector reports
    /// as "upstream unreachable" in its health.
    pub fn is_upstream_unreachable(&self) -> bool {
        match self.kind {
            HttpErrorKind::Connect | HttpErrorKind::Timeout => true,
            HttpErrorKind::Status => self.status.is_some_and(|status| {
                matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                )
            }),
            _ => false,
        }
    }

    /// How long the upstream asked us to wait (`Retry-After`, capped by
    /// `retry.max_retry_after`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// A short stable code for this failure: `upstream_unreachable`,
    /// `upstream_timeout`, `rate_limited`, `auth_failed`, `upstream_unavailable`,
    /// `upstream_rejected`, `bad_response`, `pagination` or `invalid_request`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            HttpErrorKind::Connect => "upstream_unreachable",
            HttpErrorKind::Timeout => "upstream_timeout",
            HttpErrorKind::Auth => "auth_failed",
            HttpErrorKind::Decode => "bad_response",
            HttpErrorKind::Pagination => "pagination",
            HttpErrorKind::InvalidRequest => "invalid_request",
            HttpErrorKind::Status if self.rate_limited => "rate_limited",
            HttpErrorKind::Status => match self.status {
                Some(StatusCode::TOO_MANY_REQUESTS) => "rate_limited",
                Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => "auth_failed",
                Some(status) if is_retryable_status(status) => "upstream_unavailable",
                Some(status) if status.is_server_error() && self.retryable => {
                    "upstream_unavailable"
                }
                _ => "upstream_rejected",
            },
        }
    }

    /// The human-readable description (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The statuses worth retrying: 429, 502, 503, 504. Other 4xx and 5xx
/// (500 included) are permanent.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(after) = self.retry_after {
            write!(f, " (retry after {})", humantime::format_duration(after))?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> Self {
        let message = error.to_string();
        let plugin_error = if error.retryable {
            PluginError::retryable(message)
        } else {
            PluginError::permanent(message)
        };
        let plugin_error = plugin_error.with_code(error.code());
        match error.retry_after {
            Some(after) => plugin_error.with_retry_after(after),
            None => plugin_error,
        }
    }
}

/// Classifies a failed exchange (no status to look at): timeouts, connect
/// errors and broken connections are retryable, an invalid request is not.
pub(crate) fn classify_transport(
    method: &reqwest::Method,
    path: &str,
    error: reqwest::Error,
) -> HttpError {
    let (timeout, connect, builder) = (error.is_timeout(), error.is_connect(), error.is_builder());
    let detail = describe_transport(error);
    if timeout {
        HttpError::new(
            HttpErrorKind::Timeout,
            format!("{method} {path}: no answer in time ({detail})"),
        )
    } else if builder {
        HttpError::new(
            HttpErrorKind::InvalidRequest,
            format!("{method} {path}: invalid request ({detail})"),
        )
    } else if connect {
        HttpError::new(
            HttpErrorKind::Connect,
            format!("{method} {path}: could not connect to the upstream ({detail})"),
        )
    } else {
        HttpError::new(
            HttpErrorKind::Connect,
            format!("{method} {path}: the connection failed ({detail})"),
        )
    }
}

/// Describes a reqwest error without its URL (whose query may carry a key),
/// with the chain of causes.
pub(crate) fn describe_transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_per_the_list() {
        let get = reqwest::Method::GET;
        for (status, retryable, code) in [
            (429, true, "rate_limited"),
            (502, true, "upstream_unavailable"),
            (503, true, "upstream_unavailable"),
            (504, true, "upstream_unavailable"),
            (500, false, "upstream_rejected"),
            (404, false, "upstream_rejected"),
            (401, false, "auth_failed"),
            (403, false, "auth_failed"),
        ] {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let error = HttpError::status(&get, "/v1/x", status, None);
            assert_eq!(error.is_retryable(), retryable, "{status}");
            assert_eq!(error.code(), code, "{status}");
        }
    }

    #[test]
    fn converts_to_a_plugin_error_with_the_hint() {
        let error = HttpError::status(
            &reqwest::Method::GET,
            "/v1/items",
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
        );
        let plugin_error = PluginError::from(error);
        assert!(plugin_error.is_retryable());
        assert_eq!(plugin_error.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(plugin_error.code(), Some("rate_limited"));
        assert!(
            plugin_error
                .message()
                .contains("GET /v1/items answered 429")
        );
        let connect = HttpError::new(HttpErrorKind::Connect, "GET /x: refused");
        assert!(connect.is_upstream_unreachable());
        assert!(PluginError::from(connect).is_retryable());
    }
}

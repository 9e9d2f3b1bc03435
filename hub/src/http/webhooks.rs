//! `POST /webhooks/NAME`: reads the body within the plugin's `max_body`
//! (never more), hands the request to [`crate::webhook`] and turns its
//! answer into HTTP: 202 accepted (or a replay), the plugin's own reply for
//! synchronous plugins, or 401/404/413/429/400/502/503/504 with
//! `{"error": ...}`. See `docs/webhooks.md`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::AppState;
use crate::domain::HttpReply;
use crate::webhook::{Answer, Incoming, WebhookError};

/// The status of each refusal.
pub fn status_of(error: &WebhookError) -> StatusCode {
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

fn refusal(error: &WebhookError) -> Response {
    let status = status_of(error);
    let message = error.to_string();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), error = %message, "Webhook not accepted.");
    } else {
        tracing::info!(status = status.as_u16(), error = %message, "Webhook refused.");
    }
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// The plugin's reply as an HTTP response; headers that are not valid HTTP
/// are dropped (and logged), an invalid status becomes 502.
fn plugin_reply(plugin: &str, reply: HttpReply) -> Response {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        tracing::warn!(plugin = %plugin, status = reply.status, "The plugin's webhook reply has an invalid status.");
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::new(Body::from(Bytes::from(reply.body)));
    *response.status_mut() = status;
    for (name, value) in reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => {
                tracing::warn!(plugin = %plugin, header = %name, "The plugin's webhook reply has an invalid header; dropped.");
            }
        }
    }
    response
}

fn accepted(delivery_id: &str, duplicate: bool) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "status": if duplicate { "duplicate" } else { "accepted" },
            "delivery_id": delivery_id,
        })),
    )
        .into_response()
}

/// `POST /webhooks/NAME`.
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = Utc::now();
    let Some(endpoint) = state
        .webhooks
        .as_ref()
        .and_then(|webhooks| webhooks.endpoint(&name))
    else {
        return refusal(&WebhookError::UnknownPlugin(name));
    };
    let limit = endpoint.config().max_body;
    let too_large = || WebhookError::TooLarge {
        plugin: name.clone(),
        limit,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return refusal(&too_large());
    }
    // `to_bytes` stops reading as soon as the limit is passed.
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(err) => {
            // The limit error is `http_body_util::LengthLimitError`, which
            // axum wraps; any other error is the client going away.
            if err.to_string().contains("length limit") {
                return refusal(&too_large());
            }
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("cannot read the request body: {err}") })),
            )
                .into_response();
        }
    };
    let incoming = Incoming {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        received_at,
    };
    let Some(webhooks) = state.webhooks.as_ref() else {
        return refusal(&WebhookError::UnknownPlugin(name));
    };
    match webhooks.receive(&name, incoming).await {
        Ok(
            Answer::Accepted { delivery_id }
            | Answer::Reply {
                delivery_id,
                reply: None,
            },
        ) => accepted(&delivery_id, false),
        Ok(Answer::Duplicate {
            delivery_id,
            reply: None,
        }) => accepted(&delivery_id, true),
        Ok(Answer::Duplicate {
            reply: Some(reply), ..
        })
        | Ok(Answer::Reply {
            reply: Some(reply), ..
        }) => plugin_reply(&name, reply),
        Err(error) => refusal(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::verify::VerifyError;

    #[test]
    fn maps_refusals_to_the_documented_status_codes() {
        let cases = [
            (WebhookError::UnknownPlugin("x".into()), 404),
            (
                WebhookError::TooLarge {
                    plugin: "x".into(),
                    limit: 1,
                },
                413,
            ),
            (
                WebhookError::Unauthorized {
                    plugin: "x".into(),
                    error: VerifyError::BadSignature,
                },
                401,
            ),
            (
                WebhookError::InboxFull {
                    plugin: "x".into(),
                    pending: 2,
                    limit: 2,
                },
                429,
            ),
            (
                WebhookError::Rejected {
                    plugin: "x".into(),
                    message: "not JSON".into(),
                },
                400,
            ),
            (WebhookError::NotRunning("x".into()), 503),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error).as_u16(), status, "{error}");
        }
    }

    #[test]
    fn a_plugin_reply_keeps_its_status_headers_and_body() {
        let response = plugin_reply(
            "x",
            HttpReply {
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/plain".into()),
                    ("bad header".into(), "v".into()),
                ],
                body: b"challenge".to_vec(),
            },
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers().len(), 1, "{:?}", response.headers());
    }
}

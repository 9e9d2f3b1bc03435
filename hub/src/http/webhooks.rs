//! `POST /webhooks/NAME`: reads the body within the plugin's `max_body`
//! (never more), hands the request to [`crate::webhook`] and turns its
//! answer into HTTP: 202 accepted (or a replay), the plugin's own reply for
//! synchronous plugins, or 401/404/413/429/400/502/503/504 with
//! `{"error": ..., "code": ...}` ([`ApiError::Webhook`]). See
//! `docs/webhooks.md`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, PluginReply};
use crate::domain::HttpReply;
use crate::webhook::{Answer, Incoming, WebhookError};

fn refusal(error: WebhookError) -> Response {
    ApiError::Webhook(error).into_response()
}

/// The plugin's reply as an HTTP response; headers that are not valid HTTP
/// are dropped (and logged), an invalid status becomes 502.
fn plugin_reply(plugin: &str, reply: HttpReply) -> Response {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return ApiError::BadPluginReply {
            plugin: plugin.to_owned(),
            status: reply.status,
        }
        .into_response();
    };
    let mut response = Response::new(Body::from(Bytes::from(reply.body)));
    *response.status_mut() = status;
    // The plugin's own answer: not rewritten into an error body.
    response.extensions_mut().insert(PluginReply);
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
        return refusal(WebhookError::UnknownPlugin(name));
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
        return refusal(too_large());
    }
    // `to_bytes` stops reading as soon as the limit is passed.
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(err) => {
            // The limit error is `http_body_util::LengthLimitError`, which
            // axum wraps; any other error is the client going away.
            if err.to_string().contains("length limit") {
                return refusal(too_large());
            }
            return ApiError::BadRequest(format!("cannot read the request body: {err}"))
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
        return refusal(WebhookError::UnknownPlugin(name));
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
        Err(error) => refusal(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

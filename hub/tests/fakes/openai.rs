//! A fake OpenAI Chat Completions server speaking the real wire format, for
//! the `llm-enrich` plugin's tests (`hub/tests/example_formbricks.rs`, and
//! `tests/llm_enrich.rs` through `#[path]`): `POST /v1/chat/completions`
//! behind `Authorization: Bearer KEY`, checking the request's model,
//! messages and `response_format` (`json_schema`, `strict`), answering a
//! `chat.completion` whose content is the sentiment schema's JSON, and
//! OpenAI's error bodies (`{"error": {"message", "type", "param", "code"}}`).
//!
//! What it answers depends on the user message: text containing `love` is
//! `positive`, `hate` is `negative`, `garbage` gets a non-JSON answer,
//! `rate-limit-once` is answered 429 with `Retry-After: 1` the first time,
//! `slow` waits 150 ms (counting the calls in flight); anything else is
//! `neutral`.
//!
//! Wire format: <https://platform.openai.com/docs/api-reference/chat/create>,
//! <https://platform.openai.com/docs/guides/structured-outputs>,
//! <https://platform.openai.com/docs/guides/error-codes>.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake saw.
#[derive(Default)]
pub struct Seen {
    /// (user text, when) of every well-formed, authorized request.
    pub calls: Vec<(String, Instant)>,
    /// Requests that did not match the wire format, with why.
    pub malformed: Vec<String>,
    /// Requests refused for their key.
    pub unauthorized: usize,
    /// `GET /v1/models` requests answered with the list.
    pub models_listed: usize,
    /// `GET /v1/models` requests refused for their key.
    pub models_unauthorized: usize,
    /// Texts already answered 429 once.
    pub limited: Vec<String>,
    /// Calls being answered now.
    pub in_flight: usize,
    /// The most calls answered at once.
    pub max_in_flight: usize,
}

/// The fake's configuration and what it saw.
struct Inner {
    key: String,
    model: String,
    seen: Mutex<Seen>,
}

/// A running fake; stopped when dropped.
pub struct FakeOpenAi {
    /// `http://127.0.0.1:PORT`; configure `base_url = "{base}/v1"`.
    pub base: String,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeOpenAi {
    /// Starts the fake on an ephemeral port, accepting `Bearer {key}` and
    /// requests for `model` only.
    pub fn start(key: &str, model: &str) -> FakeOpenAi {
        let inner = Arc::new(Inner {
            key: key.to_owned(),
            model: model.to_owned(),
            seen: Mutex::new(Seen::default()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&inner);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new()
                    .route("/v1/chat/completions", post(completions))
                    .route("/v1/models", axum::routing::get(models))
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FakeOpenAi {
            base,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What the fake saw so far (locked: drop the guard before waiting).
    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.seen.lock().unwrap()
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An OpenAI-style error body.
fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

/// What is wrong with a request body, if anything, per OpenAI's reference.
fn malformed(body: &Value, model: &str) -> Option<String> {
    if body["model"] != model {
        return Some(format!("model is {}", body["model"]));
    }
    let Some(messages) = body["messages"].as_array() else {
        return Some(format!("messages are {}", body["messages"]));
    };
    if messages.len() != 2
        || messages[0]["role"] != "system"
        || messages[1]["role"] != "user"
        || !messages.iter().all(|m| m["content"].is_string())
    {
        return Some(format!("messages are {}", body["messages"]));
    }
    let format = &body["response_format"];
    let schema = &format["json_schema"];
    if format["type"] != "json_schema"
        || !schema["name"].is_string()
        || schema["strict"] != true
        || schema["schema"]["type"] != "object"
    {
        return Some(format!("response_format is {format}"));
    }
    None
}

/// `GET /v1/models`, answering like OpenAI's "List models"
/// (<https://platform.openai.com/docs/api-reference/models/list>).
async fn models(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let expected = format!("Bearer {}", inner.key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        inner.seen.lock().unwrap().models_unauthorized += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    inner.seen.lock().unwrap().models_listed += 1;
    Json(json!({
        "object": "list",
        "data": [{"id": inner.model, "object": "model", "created": 1_686_935_002, "owned_by": "openai"}],
    }))
    .into_response()
}

/// `POST /v1/chat/completions`, answering like OpenAI.
async fn completions(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let expected = format!("Bearer {}", inner.key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        inner.seen.lock().unwrap().unauthorized += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    if let Some(why) = malformed(&body, &inner.model) {
        inner.seen.lock().unwrap().malformed.push(why.clone());
        return error(StatusCode::BAD_REQUEST, &why, "invalid_request_error", "");
    }
    let text = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    {
        let mut seen = inner.seen.lock().unwrap();
        seen.calls.push((text.clone(), Instant::now()));
        if text.contains("rate-limit-once") && !seen.limited.contains(&text) {
            seen.limited.push(text);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                "requests",
                "rate_limit_exceeded",
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            return response;
        }
    }
    if text.contains("slow") {
        {
            let mut seen = inner.seen.lock().unwrap();
            seen.in_flight += 1;
            seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        inner.seen.lock().unwrap().in_flight -= 1;
    }
    let content = if text.contains("garbage") {
        "Sure! I think this text is quite positive.".to_owned()
    } else if text.contains("love") {
        json!({"label": "positive", "score": 0.9}).to_string()
    } else if text.contains("hate") {
        json!({"label": "negative", "score": -0.8}).to_string()
    } else {
        json!({"label": "neutral", "score": 0.0}).to_string()
    };
    Json(json!({
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": 1_764_000_000,
        "model": inner.model, "system_fingerprint": "fp_e2e", "service_tier": "default",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": null,
                                 "annotations": []}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
    }))
    .into_response()
}

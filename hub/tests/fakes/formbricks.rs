//! A fake Formbricks Management API (v1) speaking the real wire format, for
//! the `formbricks` plugin's tests: `GET /api/v1/management/responses`
//! (`surveyId`, `limit`, `skip`; newest first; `{"data": [...]}`) and
//! `GET /api/v1/management/surveys` and `GET /api/v1/management/me`, behind
//! `x-api-key`. It can answer
//! one 429 with `Retry-After`, and slow every page down.
//!
//! Wire format: <https://formbricks.com/docs/api-reference/management-api--response/get-survey-responses>,
//! and formbricks/formbricks `apps/web/app/api/v1/management/responses/route.ts`.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Default)]
struct Inner {
    key: String,
    /// Survey id to its responses, newest first (as the API orders them).
    surveys: BTreeMap<String, Vec<Value>>,
    /// Seconds of `Retry-After` for the next responses request, answered 429.
    rate_limit_next: Option<u64>,
    /// Added before every responses page.
    delay: Duration,
    /// Every responses request: (surveyId, skip, status).
    requests: Vec<(String, u64, u16)>,
}

/// A running fake; stopped when dropped.
pub struct FakeFormbricks {
    /// `http://127.0.0.1:PORT`, the `base_url` to configure.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A response object as the Management API returns it.
pub fn response(survey: &str, id: &str, updated_at: &str, answer: &str) -> Value {
    json!({
        "id": id,
        "createdAt": "2024-04-23T08:00:00.000Z",
        "updatedAt": updated_at,
        "surveyId": survey,
        "finished": true,
        "data": {"hs8yd14l9h8u353tjmv6rzaw": answer},
        "meta": {"userAgent": {}},
        "person": null,
        "personAttributes": null,
        "singleUseId": null,
        "language": null,
        "tags": [],
        "ttc": {},
        "variables": {},
    })
}

impl FakeFormbricks {
    /// Starts the fake on an ephemeral port, accepting `api_key`.
    pub fn start(api_key: &str) -> FakeFormbricks {
        let inner = Arc::new(Mutex::new(Inner {
            key: api_key.to_owned(),
            ..Inner::default()
        }));
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
                    .route("/api/v1/management/responses", get(responses))
                    .route("/api/v1/management/surveys", get(surveys))
                    .route("/api/v1/management/me", get(me))
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
        FakeFormbricks {
            base,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Replaces survey `id`'s responses (newest first).
    pub fn set_survey(&self, id: &str, responses: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .surveys
            .insert(id.to_owned(), responses);
    }

    /// Replaces the response `id` (wherever it is) by `response`.
    pub fn replace(&self, id: &str, response: Value) {
        let mut inner = self.inner.lock().unwrap();
        for responses in inner.surveys.values_mut() {
            for slot in responses.iter_mut() {
                if slot["id"] == id {
                    *slot = response.clone();
                }
            }
        }
    }

    /// The next responses request is answered 429 with `Retry-After: SECS`.
    pub fn rate_limit_next(&self, secs: u64) {
        self.inner.lock().unwrap().rate_limit_next = Some(secs);
    }

    /// Slows every responses page by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Every responses request so far: (surveyId, skip, status).
    pub fn requests(&self) -> Vec<(String, u64, u16)> {
        self.inner.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeFormbricks {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

/// The v1 API's 401 body.
fn not_authenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "code": "not_authenticated",
            "message": "Not authenticated",
            "details": {"x-Api-Key": "Header not provided or API Key invalid"},
        })),
    )
        .into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|key| key == inner.key)
}

async fn responses(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let survey = query.get("surveyId").cloned().unwrap_or_default();
    let skip: u64 = query.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: Option<u64> = query.get("limit").and_then(|s| s.parse().ok());
    let delay = state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = state.lock().unwrap();
    if !authorized(&inner, &headers) {
        inner.requests.push((survey, skip, 401));
        return not_authenticated();
    }
    if let Some(secs) = inner.rate_limit_next.take() {
        inner.requests.push((survey, skip, 429));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            Json(json!({"code": "too_many_requests", "message": "Too many requests"})),
        )
            .into_response();
    }
    inner.requests.push((survey.clone(), skip, 200));
    let all = inner.surveys.get(&survey).cloned().unwrap_or_default();
    let page: Vec<Value> = all
        .into_iter()
        .skip(usize::try_from(skip).unwrap())
        .take(limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap()))
        .collect();
    Json(json!({"data": page})).into_response()
}

/// `GET /api/v1/management/surveys`, with `limit` and `offset`
/// (formbricks/formbricks `apps/web/app/api/v1/management/surveys/route.ts`).
async fn surveys(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let inner = state.lock().unwrap();
    if !authorized(&inner, &headers) {
        return not_authenticated();
    }
    let offset: usize = query
        .get("offset")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let data: Vec<Value> = inner
        .surveys
        .keys()
        .skip(offset)
        .take(limit)
        .map(|id| json!({"id": id, "name": format!("Survey {id}"), "status": "inProgress"}))
        .collect();
    Json(json!({"data": data})).into_response()
}

/// `GET /api/v1/management/me` with an API key: the key's environment.
async fn me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let inner = state.lock().unwrap();
    if !authorized(&inner, &headers) {
        return not_authenticated();
    }
    Json(json!({
        "id": "clurwouax000azffxt7n5unn3",
        "type": "production",
        "createdAt": "2024-04-01T00:00:00.000Z",
        "updatedAt": "2024-04-01T00:00:00.000Z",
        "appSetupCompleted": false,
    }))
    .into_response()
}

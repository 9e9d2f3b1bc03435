//! The client's retry, error and rate-limit paths against a local server.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::test_server::{Counter, config, serve, wait_for};
use super::{Client, HttpConfig, HttpErrorKind};
use crate::PluginError;

/// Serves `/v1/items`, answering the n-th request (1-based) with `answer(n)`.
async fn scripted(
    answer: impl Fn(usize) -> (StatusCode, Vec<(&'static str, String)>, String)
    + Clone
    + Send
    + Sync
    + 'static,
) -> (String, Counter) {
    let counter = Counter::default();
    let router = Router::new()
        .route(
            "/v1/items",
            get(move |State(counter): State<Counter>| {
                let answer = answer.clone();
                async move {
                    let (status, headers, body) = answer(counter.hit());
                    let mut map = HeaderMap::new();
                    map.insert("content-type", HeaderValue::from_static("application/json"));
                    for (name, value) in headers {
                        map.insert(name, HeaderValue::from_str(&value).unwrap());
                    }
                    (status, map, body).into_response()
                }
            }),
        )
        .with_state(counter.clone());
    (serve(router).await.url, counter)
}

fn client(url: &str, extra: Value) -> Client {
    let mut json = json!({
        "base_url": format!("{url}/v1"),
        "retry": {"max_attempts": 4, "initial_backoff": "1ms", "max_backoff": "5ms"},
    });
    if let (Some(json), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            json.insert(key.clone(), value.clone());
        }
    }
    let config: HttpConfig = config(json);
    Client::new(&config).unwrap_or_else(|errors| panic!("{errors}"))
}

fn ok() -> (StatusCode, Vec<(&'static str, String)>, String) {
    (StatusCode::OK, vec![], r#"{"items": [1, 2]}"#.to_owned())
}

fn status(
    code: u16,
    headers: Vec<(&'static str, String)>,
) -> (StatusCode, Vec<(&'static str, String)>, String) {
    (
        StatusCode::from_u16(code).unwrap(),
        headers,
        "{}".to_owned(),
    )
}

#[tokio::test]
async fn a_429_then_success_is_retried() {
    let (url, hits) = scripted(|n| {
        if n == 1 {
            status(429, vec![("retry-after", "0".to_owned())])
        } else {
            ok()
        }
    })
    .await;
    let body: Value = client(&url, json!({})).get_json("items").await.unwrap();
    assert_eq!(body, json!({"items": [1, 2]}));
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn gateway_errors_are_retried_until_max_attempts() {
    let (url, hits) = scripted(|n| match n {
        1 => status(502, vec![]),
        2 => status(503, vec![]),
        3 => status(504, vec![]),
        _ => ok(),
    })
    .await;
    client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap();
    assert_eq!(hits.get(), 4);

    let (url, hits) = scripted(|_| status(503, vec![])).await;
    let error = client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert_eq!(hits.get(), 4, "max_attempts = 4");
    assert!(error.is_retryable());
    assert!(error.is_upstream_unreachable());
    assert_eq!(error.code(), "upstream_unavailable");
}

#[tokio::test]
async fn retry_after_seconds_becomes_the_errors_hint() {
    let (url, hits) = scripted(|_| status(429, vec![("retry-after", "120".to_owned())])).await;
    let client = client(&url, json!({"retry": {"max_attempts": 1}}));
    let error = client
        .get_json::<Value>("items?secret=zzz")
        .await
        .unwrap_err();
    assert_eq!(hits.get(), 1);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    let plugin_error = PluginError::from(error);
    assert!(plugin_error.is_retryable());
    assert_eq!(plugin_error.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(plugin_error.code(), Some("rate_limited"));
    assert!(
        plugin_error
            .message()
            .contains("GET /v1/items answered 429"),
        "{plugin_error}"
    );
    assert!(
        !plugin_error.message().contains("zzz"),
        "no query string in messages"
    );
}

#[tokio::test]
async fn retry_after_http_date_is_read_and_capped() {
    let (url, _) = scripted(|_| {
        let when = SystemTime::now() + Duration::from_secs(120);
        status(429, vec![("retry-after", httpdate::fmt_http_date(when))])
    })
    .await;
    let error = client(&url, json!({"retry": {"max_attempts": 1}}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    let hint = error.retry_after().unwrap();
    // HTTP dates have whole seconds and the clock moved on a little.
    assert!(
        hint > Duration::from_secs(100) && hint <= Duration::from_secs(120),
        "{hint:?}"
    );

    let capped = client(
        &url,
        json!({"retry": {"max_attempts": 1, "max_retry_after": "5s"}}),
    )
    .get_json::<Value>("items")
    .await
    .unwrap_err();
    assert_eq!(capped.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_500_and_other_4xx_are_permanent_and_not_retried() {
    for code in [500, 400, 403, 404, 422] {
        let (url, hits) = scripted(move |_| status(code, vec![])).await;
        let error = client(&url, json!({}))
            .get_json::<Value>("items")
            .await
            .unwrap_err();
        assert_eq!(hits.get(), 1, "{code} is not retried");
        assert!(!error.is_retryable(), "{code}");
        assert_eq!(error.kind(), HttpErrorKind::Status);
        assert_eq!(error.status_code().map(|s| s.as_u16()), Some(code));
        assert!(!PluginError::from(error).is_retryable());
    }
}

#[tokio::test]
async fn retry_server_errors_retries_a_500_but_not_a_4xx() {
    let retry = json!({"retry": {"max_attempts": 3, "initial_backoff": "1ms",
                                 "max_backoff": "5ms", "server_errors": true}});
    let (url, hits) = scripted(|n| if n == 1 { status(500, vec![]) } else { ok() }).await;
    let body: Value = client(&url, retry.clone()).get_json("items").await.unwrap();
    assert_eq!(body, json!({"items": [1, 2]}));
    assert_eq!(hits.get(), 2, "the 500 was retried once");

    let (url, hits) = scripted(|_| status(500, vec![])).await;
    let error = client(&url, retry.clone())
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert_eq!(hits.get(), 3, "max_attempts = 3");
    assert!(error.is_retryable());
    assert_eq!(error.code(), "upstream_unavailable");
    assert!(PluginError::from(error).is_retryable());

    let (url, hits) = scripted(|_| status(400, vec![])).await;
    let error = client(&url, retry)
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert_eq!(hits.get(), 1, "a 400 stays permanent");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_undecodable_body_is_permanent() {
    let (url, hits) = scripted(|_| (StatusCode::OK, vec![], "<html>oops</html>".to_owned())).await;
    let error = client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert_eq!(hits.get(), 1);
    assert_eq!(error.kind(), HttpErrorKind::Decode);
    assert_eq!(error.code(), "bad_response");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("/v1/items"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Connect, "{error}");
    assert!(error.is_retryable());
    assert!(error.is_upstream_unreachable());
    assert_eq!(
        PluginError::from(error).code(),
        Some("upstream_unreachable")
    );
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let router = Router::new().route(
        "/v1/items",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}"
        }),
    );
    let url = serve(router).await.url;
    let client = client(
        &url,
        json!({"timeout": "100ms", "retry": {"max_attempts": 1}}),
    );
    let error = client.get_json::<Value>("items").await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
    assert!(error.is_upstream_unreachable());
}

#[tokio::test]
async fn a_spent_quota_header_holds_the_next_call() {
    let (url, hits) = scripted(|n| {
        if n == 1 {
            (
                StatusCode::OK,
                vec![
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", "3600".to_owned()),
                ],
                "{}".to_owned(),
            )
        } else {
            ok()
        }
    })
    .await;
    let client = client(&url, json!({"retry": {"max_retry_after": "1h"}}));
    client.get_json::<Value>("items").await.unwrap();
    let next = tokio::spawn({
        let client = client.clone();
        async move { client.get_json::<Value>("items").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.get(),
        1,
        "the second call waits for the reset instead of collecting a 429"
    );
    assert!(!next.is_finished());
    next.abort();
}

#[tokio::test]
async fn the_bucket_admits_only_the_burst_at_once_across_clones() {
    let (url, hits) = scripted(|_| ok()).await;
    // One request every 1000 s after a burst of 3.
    let client = client(
        &url,
        json!({"rate_limit": {"per_second": 0.001, "burst": 3}}),
    );
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_json::<Value>("items").await })
        })
        .collect();
    let finished = || calls.iter().filter(|call| call.is_finished()).count();
    wait_for("the burst to be answered", || finished() >= 3).await;
    // The others wait for a token that comes in 1000 s.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hits.get(), 3, "no more than the burst went through");
    assert_eq!(finished(), 3);
    for call in calls {
        call.abort();
    }
}

#[tokio::test]
async fn redirects_are_followed_only_within_the_origin() {
    let (elsewhere, elsewhere_hits) = scripted(|_| ok()).await;
    let target = format!("{elsewhere}/v1/items");
    let router = Router::new()
        .route(
            "/v1/old",
            get(|| async { axum::response::Redirect::temporary("/v1/new") }),
        )
        .route(
            "/v1/new",
            get(|| async { axum::Json(json!({"moved": true})) }),
        )
        .route(
            "/v1/away",
            get(move || {
                let target = target.clone();
                async move { axum::response::Redirect::temporary(&target) }
            }),
        );
    let url = serve(router).await.url;
    let client = client(&url, json!({}));
    let body: Value = client.get_json("old").await.unwrap();
    assert_eq!(body, json!({"moved": true}));
    let error = client.get_json::<Value>("away").await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(StatusCode::TEMPORARY_REDIRECT),
        "{error}"
    );
    assert_eq!(
        elsewhere_hits.get(),
        0,
        "nothing was sent to the other origin"
    );
}

#[test]
fn config_errors_name_their_keys() {
    let config: HttpConfig = config(json!({
        "base_url": "ftp://x",
        "timeout": "0s",
        "retry": {"max_attempts": 0},
        "rate_limit": {"per_second": -1.0},
    }));
    let errors = Client::new(&config).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "base_url",
            "timeout",
            "rate_limit.per_second",
            "retry.max_attempts"
        ],
        "{errors}"
    );
}

#[test]
fn relative_paths_join_the_base_url_and_absolute_urls_pass() {
    let client = Client::new(&HttpConfig::new("https://api.example.com/v1/")).unwrap();
    for (path, url) in [
        ("items", "https://api.example.com/v1/items"),
        ("/items?x=1", "https://api.example.com/v1/items?x=1"),
        ("https://other.example.com/a", "https://other.example.com/a"),
    ] {
        let request = client.get(path).build().unwrap();
        assert_eq!(request.url().as_str(), url);
    }
}

/// The SDK turns on reqwest's rustls backend, and Cargo features unify: a
/// plugin (or a test) that also builds a plain `reqwest::Client` must not
/// panic for want of a rustls crypto provider.
#[test]
fn a_plain_reqwest_client_builds_beside_the_toolkit() {
    let built = std::panic::catch_unwind(reqwest::Client::new);
    assert!(built.is_ok(), "reqwest::Client::new() panicked");
}

#[tokio::test]
async fn a_403_with_retry_after_or_a_spent_quota_is_a_rate_limit_and_retried() {
    for headers in [
        vec![("retry-after", "0".to_owned())],
        vec![
            ("x-ratelimit-remaining", "0".to_owned()),
            ("x-ratelimit-reset", "0".to_owned()),
        ],
    ] {
        let (url, hits) = scripted(move |n| {
            if n == 1 {
                status(403, headers.clone())
            } else {
                ok()
            }
        })
        .await;
        let client = client(&url, json!({}));
        client.get_json::<Value>("items").await.unwrap();
        assert_eq!(hits.get(), 2, "the 403 rate limit was retried");
    }
    // Every attempt limited: a retryable `rate_limited` error.
    let (url, _) = scripted(|_| status(403, vec![("retry-after", "0".to_owned())])).await;
    let error = client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.code(), "rate_limited");
    // A 403 without either header stays a permanent refusal.
    let (url, hits) = scripted(|_| status(403, vec![])).await;
    let error = client(&url, json!({}))
        .get_json::<Value>("items")
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(error.code(), "auth_failed");
    assert_eq!(hits.get(), 1);
}

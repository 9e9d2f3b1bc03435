//! Each strategy against a local server that checks exactly what it expects.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::http::secret::test_env;
use crate::http::test_server::{Counter, config, serve};
use crate::http::{Client, HttpConfig};

/// The forms a token endpoint received.
type Forms = Arc<Mutex<Vec<HashMap<String, String>>>>;

const PRIVATE_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/test-only-rsa-private-key.pem"
);
const PUBLIC_KEY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/test-only-rsa-public-key.pem"
));

fn client(json: Value) -> Client {
    let config: HttpConfig = config(json);
    Client::new(&config).unwrap_or_else(|errors| panic!("{errors}"))
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// An API at `/v1/me` that answers 200 `{"ok": true}` when `check` accepts
/// the request's headers and query, else 401.
async fn api(
    check: impl Fn(&HeaderMap, &HashMap<String, String>) -> bool + Clone + Send + Sync + 'static,
) -> String {
    let router = Router::new().route(
        "/v1/me",
        get(
            move |headers: HeaderMap, Query(query): Query<HashMap<String, String>>| {
                let check = check.clone();
                async move {
                    if check(&headers, &query) {
                        (StatusCode::OK, axum::Json(json!({"ok": true})))
                    } else {
                        (StatusCode::UNAUTHORIZED, axum::Json(json!({"ok": false})))
                    }
                }
            },
        ),
    );
    serve(router).await.url
}

async fn call(client: &Client) -> Result<Value, crate::http::HttpError> {
    client.get_json::<Value>("me").await
}

#[tokio::test]
async fn api_key_in_a_header() {
    test_env::set("T_API_KEY_HEADER", "k-123");
    let url = api(|headers, _| header(headers, "x-api-key") == "k-123").await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "api_key", "header": "x-api-key", "key_env": "T_API_KEY_HEADER"},
    }));
    assert_eq!(call(&client).await.unwrap(), json!({"ok": true}));
    assert!(!format!("{client:?}").contains("k-123"), "{client:?}");
}

#[tokio::test]
async fn api_key_configs_built_in_code() {
    test_env::set("T_API_KEY_CODE", "k-456");
    let url = api(|headers, query| {
        header(headers, "x-api-key") == "k-456" || query.get("key").is_some_and(|k| k == "k-456")
    })
    .await;
    for auth in [
        crate::http::ApiKeyConfig::in_header("x-api-key", "T_API_KEY_CODE"),
        crate::http::ApiKeyConfig::in_query("key", "T_API_KEY_CODE"),
    ] {
        let config =
            HttpConfig::new(format!("{url}/v1")).with_auth(crate::http::AuthConfig::ApiKey(auth));
        let client = Client::new(&config).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(call(&client).await.unwrap(), json!({"ok": true}));
    }
}

#[tokio::test]
async fn api_key_in_the_query_never_reaches_an_error_message() {
    test_env::set("T_API_KEY_QUERY", "q-secret-456");
    let url = api(|_, query| query.get("api_key").map(String::as_str) == Some("nope")).await;
    let refused = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "api_key", "query": "api_key", "key_env": "T_API_KEY_QUERY"},
    }));
    let error = call(&refused).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("GET /v1/me answered 401"), "{text}");
    assert!(!text.contains("q-secret-456"), "{text}");
    // And the key was sent: the server accepts it when it matches.
    let url =
        api(|_, query| query.get("api_key").map(String::as_str) == Some("q-secret-456")).await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "api_key", "query": "api_key", "key_env": "T_API_KEY_QUERY"},
    }));
    call(&client).await.unwrap();
}

#[tokio::test]
async fn bearer() {
    test_env::set("T_BEARER", "b-789");
    let url = api(|headers, _| header(headers, "authorization") == "Bearer b-789").await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "bearer", "token_env": "T_BEARER"},
    }));
    call(&client).await.unwrap();
}

#[tokio::test]
async fn basic() {
    test_env::set("T_BASIC_PASSWORD", "p@ss word");
    // base64("alice:p@ss word")
    let url =
        api(|headers, _| header(headers, "authorization") == "Basic YWxpY2U6cEBzcyB3b3Jk").await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "basic", "username": "alice", "password_env": "T_BASIC_PASSWORD"},
    }));
    call(&client).await.unwrap();
}

/// A token endpoint at `/token` that records each form it receives and
/// answers with `answer(n, form)` for the n-th request (1-based).
async fn token_server(
    answer: impl Fn(usize, &HashMap<String, String>) -> (StatusCode, Value)
    + Clone
    + Send
    + Sync
    + 'static,
) -> (String, Counter, Forms) {
    let counter = Counter::default();
    let forms = Arc::new(Mutex::new(Vec::new()));
    let state = (counter.clone(), forms.clone());
    let router = Router::new()
        .route(
            "/token",
            post(
                move |State((counter, forms)): State<(Counter, Forms)>,
                      Form(form): Form<HashMap<String, String>>| {
                    let answer = answer.clone();
                    async move {
                        let n = counter.hit();
                        // Slow enough that concurrent callers queue behind the first.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let reply = answer(n, &form);
                        forms.lock().unwrap().push(form);
                        (reply.0, axum::Json(reply.1))
                    }
                },
            ),
        )
        .with_state(state);
    (serve(router).await.url, counter, forms)
}

#[tokio::test]
async fn client_credentials_posts_the_form_and_caches_the_token() {
    test_env::set("T_CC_SECRET", "cc-secret");
    let (token_url, tokens, forms) = token_server(|n, _| {
        (
            StatusCode::OK,
            json!({"access_token": format!("cc-{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
    })
    .await;
    let url = api(|headers, _| header(headers, "authorization") == "Bearer cc-1").await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {
            "kind": "oauth2_client_credentials",
            "token_url": format!("{token_url}/token"),
            "client_id": "my-client",
            "client_secret_env": "T_CC_SECRET",
            "scopes": ["read", "write"],
            "audience": "https://api.example.com",
        },
    }));
    call(&client).await.unwrap();
    call(&client.clone()).await.unwrap();
    assert_eq!(
        tokens.get(),
        1,
        "the token is cached across calls and clones"
    );
    let form = forms.lock().unwrap()[0].clone();
    let expected: HashMap<String, String> = [
        ("grant_type", "client_credentials"),
        ("client_id", "my-client"),
        ("client_secret", "cc-secret"),
        ("scope", "read write"),
        ("audience", "https://api.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    test_env::set("T_CC_FLIGHT", "s");
    let (token_url, tokens, _) = token_server(|n, _| {
        // A lifetime so short that the token is renewed at once after 100 ms.
        (
            StatusCode::OK,
            json!({"access_token": format!("t-{n}"), "expires_in": 0.2}),
        )
    })
    .await;
    let url = api(|headers, _| header(headers, "authorization").starts_with("Bearer t-")).await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "oauth2_client_credentials", "token_url": format!("{token_url}/token"),
                 "client_id": "c", "client_secret_env": "T_CC_FLIGHT"},
    }));
    let burst = |client: Client| async move {
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { call(&client).await })
            })
            .collect();
        for task in calls {
            task.await.unwrap().unwrap();
        }
    };
    burst(client.clone()).await;
    assert_eq!(
        tokens.get(),
        1,
        "16 calls without a token: one token request"
    );
    // Let the token pass its renewal time (half of 200 ms), then again.
    tokio::time::sleep(Duration::from_millis(150)).await;
    burst(client).await;
    assert_eq!(
        tokens.get(),
        2,
        "16 calls with an expired token: one more token request"
    );
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_a_rotated_refresh_token_is_kept() {
    test_env::set("T_RT_REFRESH", "r-1");
    test_env::set("T_RT_SECRET", "rt-secret");
    let (token_url, tokens, forms) = token_server(|n, form| {
        let expected = if n == 1 { "r-1" } else { "r-2" };
        if form.get("refresh_token").map(String::as_str) != Some(expected) {
            return (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
        }
        (
            StatusCode::OK,
            json!({"access_token": format!("at-{n}"), "expires_in": 3600, "refresh_token": "r-2"}),
        )
    })
    .await;
    // The API has revoked at-1 (say, a password change): only at-2 works.
    let url = api(|headers, _| header(headers, "authorization") == "Bearer at-2").await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "oauth2_refresh_token", "token_url": format!("{token_url}/token"),
                 "client_id": "app", "client_secret_env": "T_RT_SECRET",
                 "refresh_token_env": "T_RT_REFRESH", "scopes": ["mail.read"]},
    }));
    call(&client).await.unwrap();
    assert_eq!(tokens.get(), 2, "one token, a 401, one renewal");
    let forms = forms.lock().unwrap().clone();
    assert_eq!(forms[0]["grant_type"], "refresh_token");
    assert_eq!(forms[0]["client_id"], "app");
    assert_eq!(forms[0]["client_secret"], "rt-secret");
    assert_eq!(forms[0]["scope"], "mail.read");
    assert_eq!(
        forms[1]["refresh_token"], "r-2",
        "the rotated refresh token is used"
    );
}

#[tokio::test]
async fn a_401_that_renewal_does_not_fix_is_permanent() {
    test_env::set("T_CC_401", "s");
    let (token_url, tokens, _) =
        token_server(|n, _| (StatusCode::OK, json!({"access_token": format!("x-{n}")}))).await;
    let url = api(|_, _| false).await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "oauth2_client_credentials", "token_url": format!("{token_url}/token"),
                 "client_id": "c", "client_secret_env": "T_CC_401"},
    }));
    let error = call(&client).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(error.code(), "auth_failed");
    assert_eq!(tokens.get(), 2, "renewed once, not in a loop");
}

#[tokio::test]
async fn a_refused_token_request_is_a_permanent_auth_error() {
    test_env::set("T_CC_REFUSED", "wrong-secret");
    let (token_url, _, _) = token_server(|_, _| {
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "bad"}),
        )
    })
    .await;
    let client = client(json!({
        "base_url": "http://127.0.0.1:9/v1",
        "auth": {"kind": "oauth2_client_credentials", "token_url": format!("{token_url}/token"),
                 "client_id": "c", "client_secret_env": "T_CC_REFUSED"},
    }));
    let error = call(&client).await.unwrap_err();
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("POST /token answered 401"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("wrong-secret"), "{text}");
}

#[tokio::test]
async fn jwt_hs256_is_signed_with_the_secret() {
    test_env::set("T_JWT_SECRET", "shared-hmac-secret");
    let url = api(|headers, _| {
        let auth = header(headers, "authorization");
        let Some(token) = auth.strip_prefix("Bearer ") else {
            return false;
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["svc"]);
        validation.set_issuer(&["me"]);
        let Ok(data) = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(b"shared-hmac-secret").unwrap(),
            &validation,
        ) else {
            return false;
        };
        let claims = data.claims;
        data.header.kid.as_deref() == Some("k1")
            && claims["sub"] == "robot"
            && claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() == 600
    })
    .await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "jwt", "algorithm": "HS256", "secret_env": "T_JWT_SECRET",
                 "issuer": "me", "audience": "svc", "subject": "robot", "lifetime": "10m", "key_id": "k1"},
    }));
    call(&client).await.unwrap();
}

#[tokio::test]
async fn jwt_rs256_is_signed_with_the_private_key() {
    let url = api(|headers, _| {
        let auth = header(headers, "authorization");
        let Some(token) = auth.strip_prefix("Bearer ") else {
            return false;
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["svc"]);
        validation.set_issuer(&["me"]);
        jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
            &validation,
        )
        .is_ok()
    })
    .await;
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "jwt", "algorithm": "RS256", "private_key_file": PRIVATE_KEY,
                 "issuer": "me", "audience": "svc"},
    }));
    call(&client).await.unwrap();
}

#[tokio::test]
async fn service_account_exchanges_a_signed_assertion() {
    let pem = std::fs::read_to_string(PRIVATE_KEY).unwrap();
    test_env::set("T_SA_KEY", &pem);
    let assertions: Arc<Mutex<Vec<(jsonwebtoken::Header, Value)>>> = Arc::default();
    let seen = assertions.clone();
    let (token_url, tokens, _) = token_server(move |_, form| {
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            );
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        match jsonwebtoken::decode::<Value>(&form["assertion"], &key, &validation) {
            Ok(data) => {
                seen.lock().unwrap().push((data.header, data.claims));
                (
                    StatusCode::OK,
                    json!({"access_token": "sa-token", "expires_in": 3600}),
                )
            }
            Err(_) => (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})),
        }
    })
    .await;
    let url = api(|headers, _| header(headers, "authorization") == "Bearer sa-token").await;
    let token_endpoint = format!("{token_url}/token");
    let client = client(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "service_account", "token_url": token_endpoint,
                 "issuer": "robot@project.iam.example.com", "subject": "admin@example.com",
                 "scopes": ["https://example.com/auth/a", "https://example.com/auth/b"],
                 "private_key_env": "T_SA_KEY", "key_id": "kid-7", "lifetime": "30m"},
    }));
    call(&client).await.unwrap();
    assert_eq!(tokens.get(), 1);
    let (header, claims) = assertions.lock().unwrap()[0].clone();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("kid-7"));
    assert_eq!(claims["iss"], "robot@project.iam.example.com");
    assert_eq!(claims["sub"], "admin@example.com");
    assert_eq!(claims["aud"], token_endpoint, "aud defaults to token_url");
    assert_eq!(
        claims["scope"],
        "https://example.com/auth/a https://example.com/auth/b"
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        1800
    );
}

fn config_errors(json: Value) -> crate::ConfigErrors {
    let config: HttpConfig = config(json);
    Client::new(&config).unwrap_err()
}

#[test]
fn a_missing_secret_names_the_key_and_the_variable_only() {
    let errors = config_errors(json!({
        "auth": {"kind": "bearer", "token_env": "T_SURELY_NOT_SET_ANYWHERE"},
    }));
    assert_eq!(errors.problems().len(), 1, "{errors}");
    assert_eq!(errors.problems()[0].field, "auth.token_env");
    assert!(
        errors.problems()[0]
            .message
            .contains("`T_SURELY_NOT_SET_ANYWHERE` is not set")
    );
}

#[test]
fn strategies_reject_incomplete_or_contradictory_keys() {
    test_env::set("T_CFG_KEY", "k");
    let errors = config_errors(json!({"auth": {"kind": "api_key", "key_env": "T_CFG_KEY"}}));
    assert_eq!(errors.problems()[0].field, "auth.header", "{errors}");
    let errors = config_errors(json!({
        "auth": {"kind": "api_key", "key_env": "T_CFG_KEY", "header": "x", "query": "y"},
    }));
    assert!(
        errors.problems()[0].message.contains("not both"),
        "{errors}"
    );
    let errors = config_errors(json!({
        "auth": {"kind": "jwt", "algorithm": "RS256", "issuer": "i", "audience": "a"},
    }));
    assert_eq!(
        errors.problems()[0].field,
        "auth.private_key_file",
        "{errors}"
    );
    let errors = config_errors(json!({
        "auth": {"kind": "jwt", "algorithm": "HS256", "secret_env": "T_CFG_KEY",
                 "issuer": "i", "audience": "a", "lifetime": "0s"},
    }));
    assert_eq!(errors.problems()[0].field, "auth.lifetime", "{errors}");
    let errors = config_errors(json!({
        "auth": {"kind": "service_account", "token_url": "not a url", "issuer": "i",
                 "private_key_file": "/surely/missing.pem"},
    }));
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["auth.token_url", "auth.private_key_file"],
        "{errors}"
    );
    let errors = config_errors(json!({
        "auth": {"kind": "jwt", "algorithm": "RS256", "issuer": "i", "audience": "a",
                 "private_key_env": "T_CFG_KEY"},
    }));
    assert_eq!(
        errors.problems()[0].field,
        "auth.private_key_env",
        "{errors}"
    );
    assert!(
        errors.problems()[0]
            .message
            .contains("not an RSA private key"),
        "{errors}"
    );
}

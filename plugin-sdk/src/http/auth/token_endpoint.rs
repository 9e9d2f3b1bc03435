//! One request to an OAuth2 token endpoint (RFC 6749 §5): a form POST
//! whose JSON answer carries `access_token`, maybe `expires_in` and a
//! rotated `refresh_token`.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::Value;

use crate::http::error::{HttpError, HttpErrorKind, classify_transport, is_retryable_status};
use crate::http::retry::retry_after;
use crate::http::secret::Secret;

/// What a token endpoint answered.
pub(super) struct TokenAnswer {
    pub(super) access_token: Secret,
    pub(super) expires_in: Option<Duration>,
    pub(super) refresh_token: Option<Secret>,
}

/// POSTs `form` to `url` and reads the token. Errors name the endpoint's
/// path and the OAuth2 `error` code, never a credential.
pub(super) async fn request_token(
    http: &reqwest::Client,
    url: &reqwest::Url,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, HttpError> {
    let path = url.path();
    let response = http
        .post(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|err| classify_transport(&Method::POST, path, err))?;
    let status = response.status();
    let hint = retry_after(response.headers(), SystemTime::now());
    let body = response
        .bytes()
        .await
        .map_err(|err| classify_transport(&Method::POST, path, err))?;
    if !status.is_success() {
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|body| body.get("error").and_then(Value::as_str).map(oauth_code))
            .map(|code| format!(" ({code})"))
            .unwrap_or_default();
        return Err(HttpError::new(
            HttpErrorKind::Auth,
            format!("the token endpoint POST {path} answered {status}{code}"),
        )
        .with_status(status)
        .with_retryable(is_retryable_status(status))
        .with_retry_after(hint));
    }
    let body: Value = serde_json::from_slice(&body).map_err(|_| {
        HttpError::new(
            HttpErrorKind::Auth,
            format!("the token endpoint POST {path} answered with a body that is not JSON"),
        )
    })?;
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            HttpError::new(
                HttpErrorKind::Auth,
                format!("the token endpoint POST {path} answered without an `access_token`"),
            )
        })?;
    let expires_in = match body.get("expires_in") {
        Some(Value::Number(seconds)) => seconds.as_f64(),
        Some(Value::String(seconds)) => seconds.trim().parse().ok(),
        _ => None,
    }
    .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
    .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    let refresh_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(Secret::new);
    Ok(TokenAnswer {
        access_token: Secret::new(access_token),
        expires_in,
        refresh_token,
    })
}

/// An OAuth2 error code, kept only if it looks like one (RFC 6749 codes
/// are short ASCII words), so nothing else from the body reaches a message.
fn oauth_code(code: &str) -> String {
    if code.len() <= 64 && code.bytes().all(|byte| byte.is_ascii_graphic()) {
        code.to_owned()
    } else {
        "unreadable error code".to_owned()
    }
}

//! [`Client`]: one upstream API's HTTP client, with its timeout, auth,
//! retries and rate limit applied to every call.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::Auth;
use super::config::HttpConfig;
use super::error::{HttpError, HttpErrorKind, classify_transport};
use super::rate_limit::{RateLimiter, quota_reset_wait, quota_spent};
use super::retry::{RetryPolicy, retry_after};
use crate::error::{ConfigError, ConfigErrors};

/// An HTTP client for one upstream API. Cheap to clone; clones share the
/// connection pool, the cached token and the rate limit.
///
/// Build requests with [`Client::request`] (or [`Client::get`],
/// [`Client::post`]), which resolves a relative path against `base_url`,
/// and send them with [`Client::send`] or [`Client::send_json`]: each
/// attempt waits for the rate limit, carries the credential, and is retried
/// per `[retry]`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Option<String>,
    auth: Auth,
    retry: RetryPolicy,
    limiter: RateLimiter,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// A successful answer (2xx), read whole. Its `Debug` shows the URL's
/// path only (the query may carry a key).
#[derive(Clone)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    body: Bytes,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("path", &self.url.path())
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The status (always a success).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body's bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Decodes the body as JSON into `T`.
    ///
    /// # Errors
    /// A permanent [`HttpError`] (`bad_response`) naming the path when the
    /// body is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            HttpError::new(
                HttpErrorKind::Decode,
                format!(
                    "the answer to {} is not the expected JSON: {err}",
                    self.url.path()
                ),
            )
        })
    }
}

impl Client {
    /// Builds the client `config` describes: loads the secrets its `*_env`
    /// keys name and validates the rest.
    ///
    /// # Errors
    /// Every problem found, each naming its key relative to the
    /// [`HttpConfig`] (`auth.key_env`, `rate_limit.burst`, …) and, for a
    /// missing secret, the environment variable (never its value). Return
    /// them from your plugin's factory with `?`.
    pub fn new(config: &HttpConfig) -> Result<Client, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let base_url = match &config.base_url {
            Some(base) => match Url::parse(base) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
                    Some(base.trim_end_matches('/').to_owned())
                }
                Ok(_) => {
                    errors.push("base_url", format!("`{base}` is not an http(s) URL"));
                    None
                }
                Err(err) => {
                    errors.push("base_url", format!("`{base}` is not a URL: {err}"));
                    None
                }
            },
            None => None,
        };
        if config.timeout.is_zero() {
            errors.push("timeout", "must be longer than 0s");
        }
        let auth = Auth::new(config.auth.as_ref())
            .map_err(|auth_errors| errors.problems.extend(auth_errors.problems))
            .ok();
        let limiter = RateLimiter::new(config.rate_limit.as_ref(), config.retry.max_retry_after)
            .map_err(|err| errors.problems.push(err))
            .ok();
        if config.retry.max_attempts == 0 {
            errors.push("retry.max_attempts", "must be at least 1");
        }
        let http = build_http_client(config)
            .map_err(|err| errors.problems.push(err))
            .ok();
        errors.into_result()?;
        let (Some(auth), Some(limiter), Some(http)) = (auth, limiter, http) else {
            return Err(ConfigErrors::new());
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
                retry: RetryPolicy::new(&config.retry),
                limiter,
            }),
        })
    }

    /// A request to `path_or_url`: a relative path is appended to
    /// `base_url` (`"users"` or `"/users"` under `https://api.example.com/v1`
    /// is `https://api.example.com/v1/users`); an absolute `http(s)://` URL
    /// is used as it is. Add query, headers and body with reqwest's builder
    /// methods, then [`Client::send`] it.
    pub fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        let url = self.resolve(path_or_url);
        self.inner.http.request(method, url)
    }

    /// A GET request (see [`Client::request`]).
    pub fn get(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::GET, path_or_url)
    }

    /// A POST request (see [`Client::request`]).
    pub fn post(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::POST, path_or_url)
    }

    /// GETs `path_or_url` and decodes its JSON answer.
    ///
    /// # Errors
    /// As [`Client::send`], and a permanent error for an undecodable body.
    pub async fn get_json<T: DeserializeOwned>(&self, path_or_url: &str) -> Result<T, HttpError> {
        self.send_json(self.get(path_or_url)).await
    }

    /// POSTs `body` as JSON to `path_or_url` and decodes its JSON answer.
    ///
    /// # Errors
    /// As [`Client::send`], and a permanent error for an undecodable body.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path_or_url: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        self.send_json(self.post(path_or_url).json(body)).await
    }

    /// Sends `request` (see [`Client::send`]) and decodes its JSON answer.
    ///
    /// # Errors
    /// As [`Client::send`], and a permanent error for an undecodable body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, HttpError> {
        self.send(request).await?.json()
    }

    /// Sends `request` until it succeeds or fails for good: each attempt
    /// waits for the rate limit and carries the credential; connect errors,
    /// timeouts, 429, 502, 503 and 504 are retried (after `Retry-After`
    /// when the upstream sends one, else with backoff), up to
    /// `retry.max_attempts`. A 401 with a token-based strategy renews the
    /// token and retries once.
    ///
    /// # Errors
    /// The last failure: retryable (with the upstream's `Retry-After` as
    /// hint) or permanent (other 4xx and 5xx, an invalid request).
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        let request = request.build().map_err(|err| {
            HttpError::new(
                HttpErrorKind::InvalidRequest,
                format!("invalid request: {}", super::error::describe_transport(err)),
            )
        })?;
        self.execute(request).await
    }

    /// The retry loop around one request.
    pub(crate) async fn execute(&self, template: reqwest::Request) -> Result<Response, HttpError> {
        let inner = &self.inner;
        let method = template.method().clone();
        let path = template.url().path().to_owned();
        let mut attempt: u32 = 1;
        let mut renewed_token = false;
        loop {
            inner.limiter.acquire().await;
            let mut request = template.try_clone().ok_or_else(|| {
                HttpError::new(
                    HttpErrorKind::InvalidRequest,
                    format!("{method} {path}: a streamed body cannot be retried"),
                )
            })?;
            let error = match inner.auth.apply(&mut request, &inner.http).await {
                Err(error) => error,
                Ok(token) => match inner.http.execute(request).await {
                    Err(error) => classify_transport(&method, &path, error),
                    Ok(response) => {
                        inner.limiter.observe(response.headers());
                        let status = response.status();
                        if status == StatusCode::UNAUTHORIZED
                            && !renewed_token
                            && inner.auth.invalidate(token.as_ref()).await
                        {
                            tracing::debug!(%method, %path, "401: renewing the token and retrying once.");
                            renewed_token = true;
                            continue;
                        }
                        if !status.is_success() {
                            let now = SystemTime::now();
                            let headers = response.headers();
                            let hint = retry_after(headers, now);
                            // GitHub answers its rate limits with 403 too, with
                            // Retry-After or a spent quota: that 403 is a limit.
                            let limited = status == StatusCode::FORBIDDEN
                                && (hint.is_some() || quota_spent(headers));
                            let hint = if limited {
                                hint.or_else(|| quota_reset_wait(headers, now))
                            } else {
                                hint
                            }
                            .map(|after| after.min(inner.retry.max_retry_after));
                            let error = HttpError::status(&method, &path, status, hint);
                            if limited {
                                error.into_rate_limit()
                            } else if inner.retry.server_errors && status.is_server_error() {
                                error.with_retryable(true)
                            } else {
                                error
                            }
                        } else {
                            let headers = response.headers().clone();
                            let url = response.url().clone();
                            match response.bytes().await {
                                Ok(body) => {
                                    return Ok(Response {
                                        status,
                                        headers,
                                        url,
                                        body,
                                    });
                                }
                                Err(error) => classify_transport(&method, &path, error),
                            }
                        }
                    }
                },
            };
            if !error.is_retryable() || attempt >= inner.retry.max_attempts {
                return Err(error);
            }
            let delay = inner.retry.delay(attempt, error.retry_after());
            tracing::debug!(
                %method, %path, attempt, delay_ms = delay.as_millis() as u64, error = %error,
                "Retrying an upstream call."
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Removes the query parameter that carries the API key (`api_key`
    /// auth with `query`), so a URL the upstream gave back (a next-page
    /// link) can be stored in a checkpoint without the key.
    pub(crate) fn strip_credential(&self, url: &mut Url) {
        if let Auth::Query { name, .. } = &self.inner.auth
            && url.query_pairs().any(|(key, _)| key == name.as_str())
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(key, _)| key != name.as_str())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
    }

    /// The URL for `path_or_url` (see [`Client::request`]).
    fn resolve(&self, path_or_url: &str) -> String {
        let absolute = path_or_url.starts_with("http://") || path_or_url.starts_with("https://");
        match &self.inner.base_url {
            Some(base) if !absolute => {
                format!("{base}/{}", path_or_url.trim_start_matches('/'))
            }
            _ => path_or_url.to_owned(),
        }
    }
}

/// Follows up to 10 redirects, within the request's origin only: a
/// credential in a custom header or the query would otherwise go to another
/// host (reqwest drops only `Authorization` and cookies on such a hop). A
/// redirect elsewhere is returned as it is, so the call fails with its 3xx.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else if origin.is_some_and(|origin| origin != attempt.url().origin()) {
            tracing::warn!(
                to = %attempt.url().origin().ascii_serialization(),
                "Not following a redirect to another origin with our credentials."
            );
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// reqwest over rustls with the aws-lc-rs provider and the system's root
/// certificates; the timeout covers each attempt whole.
fn build_http_client(config: &HttpConfig) -> Result<reqwest::Client, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "Could not load some of the system's root certificates.");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("No system root certificates found; https calls will fail to verify.");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ConfigError::new("", format!("cannot set up TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(same_origin_redirects())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(concat!("switchyard-plugin-sdk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| {
            ConfigError::new(
                "",
                format!(
                    "cannot build the HTTP client: {}",
                    super::error::describe_transport(err)
                ),
            )
        })
}

//! The configuration a plugin embeds for its upstream API: [`HttpConfig`]
//! with its `[retry]` and `[rate_limit]` tables. `[auth]` is
//! [`AuthConfig`](super::AuthConfig), `[pagination]`
//! [`PaginationConfig`](super::PaginationConfig).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::AuthConfig;
use super::duration;
use super::pagination::PaginationConfig;

/// How to call one upstream API: where it is, how long to wait, how to
/// authenticate, retry, rate-limit and page. Every key but `base_url` has a
/// default; unknown keys are rejected.
///
/// ```toml
/// base_url = "https://api.example.com/v1"
/// timeout = "30s"
/// [auth]
/// kind = "bearer"
/// token_env = "EXAMPLE_TOKEN"
/// [retry]
/// max_attempts = 5
/// [rate_limit]
/// per_second = 10.0
/// burst = 20
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The API's base URL; relative request paths are appended to it
    /// (`"users"` with `https://api.example.com/v1` is `…/v1/users`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The longest one attempt (connect, send, read the whole answer) may take.
    #[serde(
        default = "default_timeout",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How to authenticate; no table means no authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// When and how often to retry.
    #[serde(default)]
    pub retry: RetryConfig,
    /// A client-side token bucket; no table means no client-side limit
    /// (the upstream's rate-limit headers are honoured either way).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// How the API pages its lists, for a [`Paginator`](super::Paginator).
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            base_url: None,
            timeout: default_timeout(),
            auth: None,
            retry: RetryConfig::default(),
            rate_limit: None,
            pagination: None,
        }
    }
}

impl HttpConfig {
    /// A config for `base_url` with every default.
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: Some(base_url.into()),
            ..HttpConfig::default()
        }
    }

    /// Sets the authentication.
    pub fn with_auth(mut self, auth: AuthConfig) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the client-side rate limit.
    pub fn with_rate_limit(mut self, rate_limit: RateLimitConfig) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// Sets how the API pages its lists.
    pub fn with_pagination(mut self, pagination: PaginationConfig) -> Self {
        self.pagination = Some(pagination);
        self
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The `[retry]` table: retryable failures (connect errors, timeouts, 429,
/// 502, 503, 504) are tried again with exponential backoff and jitter, or
/// after the upstream's `Retry-After`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first included (1 = never retry).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles after each.
    #[serde(
        default = "default_initial_backoff",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,
    /// The longest backoff between two attempts.
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// The longest wait an upstream's `Retry-After` or rate-limit reset
    /// header can impose; longer ones are cut to this.
    #[serde(
        default = "default_max_retry_after",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub max_retry_after: Duration,
    /// Also retry 500 and every other 5xx, not only 502, 503 and 504 (for
    /// APIs that document a 500 as transient, as OpenAI does).
    #[serde(default)]
    pub server_errors: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_retry_after: default_max_retry_after(),
            server_errors: false,
        }
    }
}

impl RetryConfig {
    /// Sets the number of attempts (the first included).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Retries every 5xx (500 included), not only 502, 503 and 504.
    pub fn with_server_errors(mut self, retry: bool) -> Self {
        self.server_errors = retry;
        self
    }

    /// Sets the first backoff and the longest one.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_backoff() -> Duration {
    Duration::from_millis(500)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

fn default_max_retry_after() -> Duration {
    Duration::from_secs(300)
}

/// The `[rate_limit]` table: a token bucket shared by every call of one
/// client (and its clones).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Sustained requests per second (may be fractional: 0.5 is one every 2 s).
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell; defaults to
    /// `per_second` rounded up (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimitConfig {
            per_second,
            burst: Some(burst),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decode_config;
    use crate::error::ConfigError;

    fn error(json: &str) -> ConfigError {
        let errors = decode_config::<HttpConfig>(json.as_bytes()).unwrap_err();
        errors.problems.into_iter().next().unwrap()
    }

    #[test]
    fn decodes_every_table_with_defaults() {
        let config: HttpConfig = decode_config(
            br#"{"base_url": "https://api.example.com/v1", "timeout": "10s",
                 "auth": {"kind": "api_key", "header": "x-api-key", "key_env": "K"},
                 "retry": {"max_attempts": 3, "initial_backoff": "250ms"},
                 "rate_limit": {"per_second": 10.0, "burst": 20},
                 "pagination": {"kind": "offset", "page_size": 50, "records_path": "/data"}}"#,
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.retry.initial_backoff, Duration::from_millis(250));
        assert_eq!(config.retry.max_backoff, Duration::from_secs(30));
        assert_eq!(config.retry.max_retry_after, Duration::from_secs(300));
        assert!(matches!(config.auth, Some(AuthConfig::ApiKey(_))));
        let defaults: HttpConfig = decode_config(b"{}").unwrap();
        assert_eq!(defaults.timeout, Duration::from_secs(30));
        assert_eq!(defaults.retry.max_attempts, 5);
        assert!(defaults.auth.is_none() && defaults.rate_limit.is_none());
    }

    #[test]
    fn unknown_keys_are_named_even_inside_tagged_tables() {
        let err = error(r#"{"timeot": "1s"}"#);
        assert_eq!(err.field, "timeot");
        let err = error(r#"{"retry": {"max_attempt": 1}}"#);
        assert_eq!(err.field, "retry.max_attempt");
        let err = error(r#"{"auth": {"kind": "bearer", "token_env": "T", "tokn_env": "U"}}"#);
        assert_eq!(err.field, "auth.tokn_env", "{err}");
        let err = error(r#"{"auth": {"kind": "magic"}}"#);
        assert_eq!(err.field, "auth.kind");
        assert!(err.message.contains("magic"), "{err}");
        let err = error(r#"{"timeout": "soon"}"#);
        assert_eq!(err.field, "timeout");
    }

    #[test]
    fn the_schema_lists_the_strategies() {
        let schema = crate::schema_json::<HttpConfig>();
        for kind in [
            "api_key",
            "oauth2_client_credentials",
            "service_account",
            "page_token",
        ] {
            assert!(schema.contains(kind), "{kind}");
        }
    }
}

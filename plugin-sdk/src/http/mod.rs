//! Calling an upstream API: auth, retries, rate limiting and pagination,
//! configured from the plugin's `config` table.
//!
//! Embed [`HttpConfig`] in your plugin's config, build a [`Client`] in the
//! factory (secrets come from the environment variables the config names;
//! a missing one is a config error naming the key and the variable), and
//! call the API with it. Every call:
//!
//! - waits for the client's token bucket (`[rate_limit]`, shared by all
//!   clones) and for the reset the upstream announced when its
//!   `X-RateLimit-Remaining` / `RateLimit-Remaining` reached 0;
//! - carries the credential (`[auth]`: `api_key`, `bearer`, `basic`,
//!   `oauth2_client_credentials`, `oauth2_refresh_token`, `jwt`,
//!   `service_account`); tokens are cached and renewed before they expire,
//!   one renewal at a time, and a 401 renews the token and retries once;
//! - has a timeout (`timeout`, default 30 s) and is retried on connect
//!   errors, timeouts, 429, 502, 503 and 504 (and a 403 that carries
//!   `Retry-After` or a spent quota: a rate limit) with exponential backoff
//!   and jitter, or after the upstream's `Retry-After` (`[retry]`);
//! - fails with an [`HttpError`] that names the method, the URL path and
//!   the status, converts into a retryable or permanent [`PluginError`]
//!   with `?`, and tells whether the upstream is unreachable
//!   ([`HttpError::is_upstream_unreachable`]).
//!
//! [`Paginator`] walks paged lists (`[pagination]`: `cursor`, `offset`,
//! `page`, `page_token`, `link`) one page at a time; the [`PagePosition`]
//! of the next page is serializable, for your poll checkpoint.
//!
//! [`PluginError`]: crate::PluginError
//!
//! # Example: a polling input that pages through an API
//!
//! ```no_run
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//! use switchyard_plugin_sdk::http::{Client, HttpConfig, PagePosition, Paginator};
//! use switchyard_plugin_sdk::{
//!     ConfigError, ConfigErrors, Emitter, Plugin, PluginError, PollRequest, PollingInput, Record,
//!     serve,
//! };
//!
//! /// The plugin's `config` table; the API's settings are its `api` table:
//! /// `[plugins.issues.config.api]`, `[plugins.issues.config.api.auth]`, …
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct IssuesConfig {
//!     api: HttpConfig,
//!     project: String,
//! }
//!
//! struct Issues {
//!     client: Client,
//!     paginator: Paginator,
//!     project: String,
//! }
//!
//! impl Issues {
//!     fn new(config: IssuesConfig) -> Result<Issues, ConfigErrors> {
//!         // Errors name keys relative to the HttpConfig: put them under `api`.
//!         let client = Client::new(&config.api).map_err(|errors| errors.within("api"))?;
//!         let pagination = config.api.pagination.as_ref().ok_or_else(|| {
//!             ConfigErrors::from(ConfigError::new("api.pagination", "is required"))
//!         })?;
//!         let paginator = Paginator::new(pagination).map_err(|errors| errors.within("api"))?;
//!         Ok(Issues { client, paginator, project: config.project })
//!     }
//! }
//!
//! impl PollingInput for Issues {
//!     async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
//!         // The checkpoint is the position of the next page: a backfill
//!         // interrupted by a crash resumes at the page it reached.
//!         let mut position: Option<PagePosition> = match &request.checkpoint {
//!             Some(bytes) => serde_json::from_slice(bytes)
//!                 .map_err(|err| PluginError::permanent(format!("bad checkpoint: {err}")))?,
//!             None => None,
//!         };
//!         loop {
//!             let request = self.client.get("issues").query(&[("project", &self.project)]);
//!             // `?` turns an HttpError into a retryable or permanent PluginError.
//!             let page = self.paginator.next_page(&self.client, request, position.as_ref()).await?;
//!             let records = page
//!                 .records
//!                 .iter()
//!                 .map(|issue| Record::new(issue["id"].to_string(), "issue").with_payload(issue))
//!                 .collect::<Result<Vec<_>, _>>()?;
//!             let checkpoint = serde_json::to_vec(&page.next)
//!                 .map_err(|err| PluginError::permanent(err.to_string()))?;
//!             emitter.emit_with_checkpoint(records, checkpoint).await?;
//!             match page.next {
//!                 Some(next) => position = Some(next),
//!                 None => return Ok(()),
//!             }
//!         }
//!     }
//! }
//!
//! fn main() {
//!     let plugin = Plugin::new("issues", "0.1.0")
//!         .polling_input(|config: IssuesConfig| async move { Issues::new(config) });
//!     serve(plugin)
//! }
//! ```
//!
//! with, in `plugins.toml`:
//!
//! ```toml
//! [plugins.issues.config]
//! project = "demo"
//!
//! [plugins.issues.config.api]
//! base_url = "https://api.example.com/v1"
//! timeout = "10s"
//! auth = { kind = "bearer", token_env = "EXAMPLE_TOKEN" }
//! retry = { max_attempts = 4 }
//! rate_limit = { per_second = 5.0, burst = 10 }
//! pagination = { kind = "cursor", cursor_param = "cursor", cursor_path = "/next_cursor", records_path = "/data" }
//! ```

mod auth;
mod client;
mod config;
mod duration;
mod error;
mod pagination;
mod rate_limit;
mod retry;
mod secret;

pub use auth::{
    ApiKeyConfig, AuthConfig, BasicConfig, BearerConfig, ClientCredentialsConfig, JwtAlgorithm,
    JwtConfig, RefreshTokenConfig, ServiceAccountConfig,
};
pub use client::{Client, Response};
pub use config::{HttpConfig, RateLimitConfig, RetryConfig};
pub use error::{HttpError, HttpErrorKind};
pub use pagination::{
    CursorConfig, LinkConfig, OffsetConfig, Page, PageConfig, PagePosition, PageTokenConfig,
    PaginationConfig, Paginator,
};
/// reqwest's request builder, method, status and headers, as the client uses them.
pub use reqwest::{Method, RequestBuilder, StatusCode, Url, header};

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod test_server;

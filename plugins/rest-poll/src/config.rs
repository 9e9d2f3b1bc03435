//! The `config` table and its validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use switchyard_plugin_sdk::ConfigErrors;
use switchyard_plugin_sdk::http::{
    AuthConfig, Client, HttpConfig, Method, PaginationConfig, Paginator, RateLimitConfig,
    RetryConfig, Url,
};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestPollConfig {
    /// The list's absolute URL (`https://api.example.com/v1/items`).
    pub url: String,
    /// `GET` (default) or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The JSON body of a `POST` (a table or any JSON value).
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub body: Option<Value>,
    /// Extra query parameters sent with every page.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// How to authenticate (the SDK toolkit's `[auth]`, any `kind`).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// How the API pages (the SDK toolkit's `[pagination]`, any `kind`);
    /// none means the URL answers with every item at once.
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
    /// JSON Pointer to the items array in each answer (`""`: the whole
    /// body); used when `pagination` sets no `records_path` of its own.
    #[serde(default)]
    pub records_path: String,
    /// The item's id: a top-level key (`id`) or a JSON Pointer (`/data/id`).
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// The record type of every item.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The item's last-modified value, a key or JSON Pointer, for
    /// incremental sync (RFC 3339 times, numbers, or sortable text).
    #[serde(default)]
    pub updated_field: Option<String>,
    /// The query parameter that sends the high-water mark upstream
    /// (`updated_since`); items at or below the mark are skipped anyway.
    #[serde(default)]
    pub updated_param: Option<String>,
    /// Call the API once when the plugin starts, so a wrong URL or key is a
    /// configuration error at once rather than at the first poll.
    #[serde(default = "default_true")]
    pub check_on_start: bool,
    /// The longest one request may take (`"30s"`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Retries (the SDK toolkit's `[retry]`).
    #[serde(default)]
    pub retry: RetryConfig,
    /// A client-side token bucket (the SDK toolkit's `[rate_limit]`).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_id_field() -> String {
    "id".into()
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> String {
    "30s".into()
}

/// A key or JSON Pointer into an item.
#[derive(Debug, Clone)]
pub enum Field {
    /// A top-level key.
    Key(String),
    /// A JSON Pointer (RFC 6901).
    Pointer(String),
}

impl Field {
    fn parse(text: &str) -> Option<Field> {
        if text.is_empty() {
            None
        } else if text.starts_with('/') {
            Some(Field::Pointer(text.to_owned()))
        } else {
            Some(Field::Key(text.to_owned()))
        }
    }

    /// The value in `item`, if there.
    pub fn get<'a>(&self, item: &'a Value) -> Option<&'a Value> {
        match self {
            Field::Key(key) => item.get(key),
            Field::Pointer(pointer) => item.pointer(pointer),
        }
    }

    /// As configured.
    pub fn name(&self) -> &str {
        match self {
            Field::Key(text) | Field::Pointer(text) => text,
        }
    }
}

/// The validated pieces.
pub(crate) struct Checked {
    pub(crate) client: Client,
    pub(crate) method: Method,
    pub(crate) paginator: Option<Paginator>,
    pub(crate) id_field: Field,
    pub(crate) updated_field: Option<Field>,
}

impl RestPollConfig {
    /// Validates every key and builds the client and paginator.
    pub(crate) fn check(&self) -> Result<Checked, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        match Url::parse(&self.url) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
            Ok(_) => errors.push("url", format!("`{}` is not an http(s) URL", self.url)),
            Err(err) => errors.push("url", format!("`{}` is not a URL: {err}", self.url)),
        }
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            other => {
                errors.push("method", format!("`{other}` is not GET or POST"));
                Method::GET
            }
        };
        if self.body.is_some() && method != Method::POST {
            errors.push("body", "is only sent with method = \"POST\"");
        }
        if !self.records_path.is_empty() && !self.records_path.starts_with('/') {
            errors.push(
                "records_path",
                format!(
                    "`{}` is not a JSON Pointer (it starts with `/`)",
                    self.records_path
                ),
            );
        }
        if self.record_type.is_empty() {
            errors.push("type", "must not be empty");
        }
        let id_field = Field::parse(&self.id_field).unwrap_or_else(|| {
            errors.push("id_field", "must not be empty");
            Field::Key(String::new())
        });
        let updated_field = match &self.updated_field {
            None => None,
            Some(text) => Field::parse(text).or_else(|| {
                errors.push("updated_field", "must not be empty");
                None
            }),
        };
        if self.updated_param.is_some() && self.updated_field.is_none() {
            errors.push(
                "updated_param",
                "needs `updated_field`, whose mark it sends",
            );
        }
        let timeout = humantime::parse_duration(&self.timeout).unwrap_or_else(|err| {
            errors.push(
                "timeout",
                format!("{:?} is not a duration: {err}", self.timeout),
            );
            std::time::Duration::from_secs(30)
        });
        let paginator = self.pagination.as_ref().and_then(|pagination| {
            let pagination = with_records_path(pagination.clone(), &self.records_path);
            Paginator::new(&pagination)
                .map_err(|found| copy(&mut errors, found))
                .ok()
        });
        let mut http = HttpConfig::default()
            .with_timeout(timeout)
            .with_retry(self.retry.clone());
        if let Some(auth) = &self.auth {
            http = http.with_auth(auth.clone());
        }
        if let Some(rate_limit) = &self.rate_limit {
            http = http.with_rate_limit(rate_limit.clone());
        }
        let client = Client::new(&http).map_err(|found| copy(&mut errors, found));
        errors.into_result()?;
        let Ok(client) = client else {
            return Err(ConfigErrors::new());
        };
        Ok(Checked {
            client,
            method,
            paginator,
            id_field,
            updated_field,
        })
    }
}

/// Adds `found`'s problems to `errors`.
fn copy(errors: &mut ConfigErrors, found: ConfigErrors) {
    for problem in found.iter() {
        errors.push(problem.field.clone(), problem.message.clone());
    }
}

/// `pagination` with the top-level `records_path` where it sets none.
fn with_records_path(mut pagination: PaginationConfig, records_path: &str) -> PaginationConfig {
    let own = match &mut pagination {
        PaginationConfig::Cursor(config) => &mut config.records_path,
        PaginationConfig::Offset(config) => &mut config.records_path,
        PaginationConfig::Page(config) => &mut config.records_path,
        PaginationConfig::PageToken(config) => &mut config.records_path,
        PaginationConfig::Link(config) => &mut config.records_path,
        _ => return pagination,
    };
    if own.is_empty() {
        records_path.clone_into(own);
    }
    pagination
}

//! `kind = "api_key"`: a static key in a header or a query parameter.

use reqwest::header::HeaderName;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Auth, header_value, required_env};
use crate::error::ConfigErrors;

/// `kind = "api_key"`: give `header` (for example `"x-api-key"`) or `query`
/// (for example `"api_key"`), and `key_env`, the environment variable that
/// holds the key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// The header that carries the key.
    #[serde(default)]
    pub header: Option<String>,
    /// The query parameter that carries the key (prefer a header: query
    /// strings end up in proxies' logs).
    #[serde(default)]
    pub query: Option<String>,
    /// The environment variable holding the key.
    pub key_env: String,
}

impl ApiKeyConfig {
    /// The key from the environment variable `key_env`, sent in the header
    /// `header` (`ApiKeyConfig::in_header("x-api-key", "FORMBRICKS_API_KEY")`),
    /// for a plugin whose own config names the variable.
    pub fn in_header(header: impl Into<String>, key_env: impl Into<String>) -> Self {
        ApiKeyConfig {
            header: Some(header.into()),
            query: None,
            key_env: key_env.into(),
        }
    }

    /// The key from `key_env`, sent as the query parameter `query` (prefer
    /// [`ApiKeyConfig::in_header`]).
    pub fn in_query(query: impl Into<String>, key_env: impl Into<String>) -> Self {
        ApiKeyConfig {
            header: None,
            query: Some(query.into()),
            key_env: key_env.into(),
        }
    }

    pub(super) fn build(&self) -> Result<Auth, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let key = required_env(&mut errors, "key_env", &self.key_env);
        let auth = match (&self.header, &self.query) {
            (Some(header), None) => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    errors.push("auth.header", format!("`{header}` is not a header name"));
                });
                match (name, key) {
                    (Ok(name), Some(key)) => {
                        match header_value(key.expose(), "auth.key_env", &self.key_env) {
                            Ok(value) => Some(Auth::Header { name, value }),
                            Err(err) => {
                                errors.problems.push(err);
                                None
                            }
                        }
                    }
                    _ => None,
                }
            }
            (None, Some(query)) if !query.is_empty() => key.map(|value| Auth::Query {
                name: query.clone(),
                value,
            }),
            (None, Some(_)) => {
                errors.push("auth.query", "must not be empty");
                None
            }
            (Some(_), Some(_)) => {
                errors.push("auth.header", "give either `header` or `query`, not both");
                None
            }
            (None, None) => {
                errors.push("auth.header", "is required (or `query`)");
                None
            }
        };
        errors.into_result()?;
        auth.ok_or_else(ConfigErrors::new)
    }
}

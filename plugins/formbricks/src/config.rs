//! The `config` table and the toolkit settings it becomes.

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::ConfigErrors;
use switchyard_plugin_sdk::http::{
    ApiKeyConfig, AuthConfig, HttpConfig, OffsetConfig, PaginationConfig,
};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormbricksConfig {
    /// The Formbricks instance, without `/api`: `https://app.formbricks.com`
    /// or your self-hosted URL.
    pub base_url: String,
    /// The environment variable holding the Management API key (sent as
    /// `x-api-key`).
    pub api_key_env: String,
    /// The surveys whose responses are polled; absent: every survey the key
    /// can read (`GET /api/v1/management/surveys`, listed again at each poll).
    #[serde(default)]
    pub survey_ids: Option<Vec<String>>,
    /// Responses per page (`limit`).
    #[serde(default = "default_page_size")]
    pub page_size: u64,
}

fn default_page_size() -> u64 {
    100
}

impl FormbricksConfig {
    /// Validates the keys and builds the toolkit's config: the API at
    /// `{base_url}/api/v1` with the key in `x-api-key`, and offset
    /// pagination with `skip` and `limit` over `{"data": [...]}`.
    ///
    /// # Errors
    /// Every bad key.
    pub fn http(&self) -> Result<(HttpConfig, PaginationConfig), ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            errors.push(
                "base_url",
                format!("{:?} is not an http:// or https:// URL", self.base_url),
            );
        }
        if self.api_key_env.is_empty() {
            errors.push("api_key_env", "must name an environment variable");
        }
        if self.page_size == 0 {
            errors.push("page_size", "must be at least 1");
        }
        if let Some(ids) = &self.survey_ids {
            for (index, id) in ids.iter().enumerate() {
                if id.trim().is_empty() {
                    errors.push(format!("survey_ids.{index}"), "must not be empty");
                }
            }
        }
        errors.into_result()?;
        let pagination = PaginationConfig::Offset(
            OffsetConfig::new(self.page_size)
                .with_params("skip", "limit")
                .with_records_path("/data"),
        );
        let http = HttpConfig::new(format!("{base}/api/v1"))
            .with_auth(AuthConfig::ApiKey(ApiKeyConfig::in_header(
                "x-api-key",
                self.api_key_env.clone(),
            )))
            .with_pagination(pagination.clone());
        Ok((http, pagination))
    }
}

/// Renames the toolkit's keys (`auth.key_env`, `pagination.page_size`) to
/// this plugin's (`api_key_env`, `page_size`).
pub(crate) fn rename_http_errors(errors: ConfigErrors) -> ConfigErrors {
    let mut renamed = ConfigErrors::new();
    for problem in errors.iter() {
        let field = match problem.field.as_str() {
            "auth.key_env" | "key_env" => "api_key_env",
            "pagination.page_size" => "page_size",
            other => other,
        };
        renamed.push(field, problem.message.clone());
    }
    renamed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(base_url: &str, page_size: u64) -> FormbricksConfig {
        FormbricksConfig {
            base_url: base_url.to_owned(),
            api_key_env: "FB_KEY".to_owned(),
            survey_ids: Some(vec!["s1".to_owned(), " ".to_owned()]),
            page_size,
        }
    }

    #[test]
    fn bad_keys_are_named() {
        let errors = config("ftp://x", 0).http().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["base_url", "page_size", "survey_ids.1"]);
    }

    #[test]
    fn the_api_is_under_api_v1() {
        let mut good = config("https://fb.example.com/", 7);
        good.survey_ids = None;
        let (http, pagination) = good.http().unwrap();
        assert_eq!(
            http.base_url.as_deref(),
            Some("https://fb.example.com/api/v1")
        );
        assert!(matches!(pagination, PaginationConfig::Offset(_)));
    }
}

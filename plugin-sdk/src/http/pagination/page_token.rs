//! `kind = "page_token"`: a page token read from the body at `token_path`
//! (`/nextPageToken`) and sent back as the query parameter `token_param`.

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{PagePosition, set_query, token_at, validate_pointer};
use crate::error::ConfigErrors;
use crate::http::error::HttpError;

/// `kind = "page_token"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PageTokenConfig {
    /// The query parameter that sends the token (`pageToken`).
    pub token_param: String,
    /// The JSON Pointer to the next token in the body (`/nextPageToken`);
    /// missing, null or `""` ends the walk.
    pub token_path: String,
    /// The JSON Pointer to the records array (`""`: the whole body).
    #[serde(default)]
    pub records_path: String,
}

impl PageTokenConfig {
    pub(super) fn validate(&self, errors: &mut ConfigErrors) {
        validate_pointer(errors, "token_path", &self.token_path);
        validate_pointer(errors, "records_path", &self.records_path);
    }

    pub(super) fn prepare(&self, url: &mut Url, position: Option<&PagePosition>) {
        if let Some(PagePosition::PageToken { token }) = position {
            set_query(url, &self.token_param, token);
        }
    }

    pub(super) fn next(&self, body: &Value, what: &str) -> Result<Option<PagePosition>, HttpError> {
        Ok(token_at(body, &self.token_path, "token_path", what)?
            .map(|token| PagePosition::PageToken { token }))
    }
}

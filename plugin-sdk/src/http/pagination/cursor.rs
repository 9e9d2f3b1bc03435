//! `kind = "cursor"`: an opaque cursor read from the body at `cursor_path`
//! and sent back as the query parameter `cursor_param`.

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{PagePosition, set_query, token_at, validate_pointer, validate_size};
use crate::error::ConfigErrors;
use crate::http::error::HttpError;

/// `kind = "cursor"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CursorConfig {
    /// The query parameter that sends the cursor (`cursor`, `starting_after`).
    pub cursor_param: String,
    /// The JSON Pointer to the next cursor in the body
    /// (`/response_metadata/next_cursor`); missing, null or `""` ends the walk.
    pub cursor_path: String,
    /// The query parameter that sends `page_size`, if the API takes one.
    #[serde(default)]
    pub limit_param: Option<String>,
    /// Records per page to ask for (with `limit_param`).
    #[serde(default)]
    pub page_size: Option<u64>,
    /// The JSON Pointer to the records array (`""`: the whole body).
    #[serde(default)]
    pub records_path: String,
}

impl CursorConfig {
    pub(super) fn validate(&self, errors: &mut ConfigErrors) {
        validate_pointer(errors, "cursor_path", &self.cursor_path);
        validate_pointer(errors, "records_path", &self.records_path);
        validate_size(
            errors,
            "limit_param",
            self.limit_param.as_ref(),
            self.page_size,
        );
    }

    pub(super) fn prepare(&self, url: &mut Url, position: Option<&PagePosition>) {
        if let (Some(param), Some(size)) = (&self.limit_param, self.page_size) {
            set_query(url, param, &size.to_string());
        }
        if let Some(PagePosition::Cursor { cursor }) = position {
            set_query(url, &self.cursor_param, cursor);
        }
    }

    pub(super) fn next(&self, body: &Value, what: &str) -> Result<Option<PagePosition>, HttpError> {
        Ok(token_at(body, &self.cursor_path, "cursor_path", what)?
            .map(|cursor| PagePosition::Cursor { cursor }))
    }
}

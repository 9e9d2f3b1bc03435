//! `kind = "offset"`: `offset` and `limit` query parameters; a page shorter
//! than `page_size` is the last.

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{PagePosition, set_query, validate_pointer};
use crate::error::ConfigErrors;

/// `kind = "offset"`. Items that shift while you page (inserted or deleted
/// upstream) make pages overlap or skip: deduplicate records by id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OffsetConfig {
    /// The query parameter that sends the offset (`skip`, `startAt`).
    #[serde(default = "default_offset_param")]
    pub offset_param: String,
    /// The query parameter that sends the page size (`maxResults`).
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// Records per page to ask for.
    #[serde(default = "default_page_size")]
    pub page_size: u64,
    /// The JSON Pointer to the records array (`""`: the whole body).
    #[serde(default)]
    pub records_path: String,
}

fn default_offset_param() -> String {
    "offset".to_owned()
}

fn default_limit_param() -> String {
    "limit".to_owned()
}

fn default_page_size() -> u64 {
    100
}

impl OffsetConfig {
    pub(super) fn validate(&self, errors: &mut ConfigErrors) {
        validate_pointer(errors, "records_path", &self.records_path);
        if self.page_size == 0 {
            errors.push("pagination.page_size", "must be at least 1");
        }
    }

    pub(super) fn prepare(&self, url: &mut Url, position: Option<&PagePosition>) {
        let offset = match position {
            Some(PagePosition::Offset { offset }) => *offset,
            _ => 0,
        };
        set_query(url, &self.offset_param, &offset.to_string());
        set_query(url, &self.limit_param, &self.page_size.to_string());
    }

    pub(super) fn next(
        &self,
        position: Option<&PagePosition>,
        fetched: usize,
    ) -> Option<PagePosition> {
        let offset = match position {
            Some(PagePosition::Offset { offset }) => *offset,
            _ => 0,
        };
        let fetched = u64::try_from(fetched).unwrap_or(u64::MAX);
        (fetched >= self.page_size).then(|| PagePosition::Offset {
            offset: offset.saturating_add(fetched),
        })
    }
}

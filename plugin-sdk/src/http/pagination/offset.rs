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
    /// Pages of `page_size` with the default parameters (`offset`,
    /// `limit`) and the whole body as the records array; change them with
    /// [`OffsetConfig::with_params`] and [`OffsetConfig::with_records_path`].
    pub fn new(page_size: u64) -> Self {
        OffsetConfig {
            offset_param: default_offset_param(),
            limit_param: default_limit_param(),
            page_size,
            records_path: String::new(),
        }
    }

    /// Sets the query parameters that carry the offset and the page size
    /// (`with_params("skip", "limit")`).
    pub fn with_params(
        mut self,
        offset_param: impl Into<String>,
        limit_param: impl Into<String>,
    ) -> Self {
        self.offset_param = offset_param.into();
        self.limit_param = limit_param.into();
        self
    }

    /// Sets the JSON Pointer to the records array (`"/data"`).
    pub fn with_records_path(mut self, records_path: impl Into<String>) -> Self {
        self.records_path = records_path.into();
        self
    }

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

//! `kind = "page"`: a page number query parameter; an empty page (or, with
//! `page_size`, a short one) is the last.

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{PagePosition, set_query, validate_pointer, validate_size};
use crate::error::ConfigErrors;

/// `kind = "page"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PageConfig {
    /// The query parameter that sends the page number.
    #[serde(default = "default_page_param")]
    pub page_param: String,
    /// The number of the first page (1 for most APIs, 0 for some).
    #[serde(default = "default_first_page")]
    pub first_page: u64,
    /// The query parameter that sends `page_size`, if the API takes one.
    #[serde(default)]
    pub size_param: Option<String>,
    /// Records per page to ask for (with `size_param`); a shorter page is the last.
    #[serde(default)]
    pub page_size: Option<u64>,
    /// The JSON Pointer to the records array (`""`: the whole body).
    #[serde(default)]
    pub records_path: String,
}

fn default_page_param() -> String {
    "page".to_owned()
}

fn default_first_page() -> u64 {
    1
}

impl PageConfig {
    pub(super) fn validate(&self, errors: &mut ConfigErrors) {
        validate_pointer(errors, "records_path", &self.records_path);
        validate_size(
            errors,
            "size_param",
            self.size_param.as_ref(),
            self.page_size,
        );
    }

    fn current(&self, position: Option<&PagePosition>) -> u64 {
        match position {
            Some(PagePosition::Page { page }) => *page,
            _ => self.first_page,
        }
    }

    pub(super) fn prepare(&self, url: &mut Url, position: Option<&PagePosition>) {
        set_query(url, &self.page_param, &self.current(position).to_string());
        if let (Some(param), Some(size)) = (&self.size_param, self.page_size) {
            set_query(url, param, &size.to_string());
        }
    }

    pub(super) fn next(
        &self,
        position: Option<&PagePosition>,
        fetched: usize,
    ) -> Option<PagePosition> {
        let fetched = u64::try_from(fetched).unwrap_or(u64::MAX);
        let short = self.page_size.is_some_and(|size| fetched < size);
        (fetched > 0 && !short).then(|| PagePosition::Page {
            page: self.current(position).saturating_add(1),
        })
    }
}

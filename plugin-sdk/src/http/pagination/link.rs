//! `kind = "link"`: the next page's URL comes from the RFC 8288 `Link`
//! header's `rel="next"` entry (GitHub, GitLab).

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};
use schemars::JsonSchema;
use serde::Deserialize;

use super::link_header::parse_link_header;
use super::{PagePosition, pagination_error, validate_pointer};
use crate::error::ConfigErrors;
use crate::http::error::{HttpError, HttpErrorKind};

/// `kind = "link"`: only `records_path`; the rest comes from the headers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LinkConfig {
    /// The JSON Pointer to the records array (`""`, the default: the whole
    /// body, as GitHub answers).
    #[serde(default)]
    pub records_path: String,
}

impl LinkConfig {
    pub(super) fn validate(&self, errors: &mut ConfigErrors) {
        validate_pointer(errors, "records_path", &self.records_path);
    }
}

/// Points the request at the stored next URL. It must have the request's
/// origin: the credential goes with it, and a link to another host would
/// hand it over.
pub(super) fn prepare(url: &mut Url, position: Option<&PagePosition>) -> Result<(), HttpError> {
    let Some(PagePosition::Link { url: next }) = position else {
        return Ok(());
    };
    let next = Url::parse(next)
        .map_err(|_| pagination_error("the stored next-page link is not a URL".to_owned()))?;
    if next.origin() != url.origin() {
        return Err(pagination_error(format!(
            "the next-page link leads to another origin ({}) than the request's ({}); not following it with our credentials",
            next.origin().ascii_serialization(),
            url.origin().ascii_serialization()
        )));
    }
    *url = next;
    Ok(())
}

/// The `rel="next"` link of an answer, resolved against the request's URL.
pub(super) fn next(
    headers: &HeaderMap,
    request_url: &Url,
    what: &str,
) -> Result<Option<Url>, HttpError> {
    for value in headers.get_all(LINK) {
        let text = value.to_str().map_err(|_| {
            HttpError::new(
                HttpErrorKind::Decode,
                format!("the `Link` header of the answer to {what} is not text"),
            )
        })?;
        let links = parse_link_header(text).map_err(|problem| {
            HttpError::new(
                HttpErrorKind::Decode,
                format!("the `Link` header of the answer to {what} is malformed: {problem}"),
            )
        })?;
        if let Some(link) = links.iter().find(|link| link.has_rel("next")) {
            let url = request_url.join(&link.target).map_err(|_| {
                HttpError::new(
                    HttpErrorKind::Decode,
                    format!("the next link in the answer to {what} is not a URL"),
                )
            })?;
            return Ok(Some(url));
        }
    }
    Ok(None)
}

//! Pagination: the `[pagination]` table ([`PaginationConfig`], one variant
//! per style, one file each), and [`Paginator`], which fetches one page at
//! a time and says where the next one starts ([`PagePosition`], which a
//! polling plugin stores in its checkpoint so an interrupted backfill
//! resumes at the page it reached).

mod cursor;
mod link;
mod link_header;
mod offset;
mod page;
mod page_token;

use reqwest::{RequestBuilder, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cursor::CursorConfig;
pub use link::LinkConfig;
pub use offset::OffsetConfig;
pub use page::PageConfig;
pub use page_token::PageTokenConfig;

use super::client::Client;
use super::error::{HttpError, HttpErrorKind, describe_transport};
use crate::error::ConfigErrors;

/// The `[pagination]` table: `kind` picks how the API pages, the other keys
/// are that kind's; every kind has `records_path`, the JSON Pointer
/// (RFC 6901) to the array of records in each answer (`""`, the default,
/// is the whole body).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum PaginationConfig {
    /// An opaque cursor read from the body and sent back as a query
    /// parameter (Slack, Notion, Stripe-like).
    #[serde(rename = "cursor")]
    Cursor(CursorConfig),
    /// `offset` and `limit` query parameters; stops on a short page.
    #[serde(rename = "offset")]
    Offset(OffsetConfig),
    /// A page number query parameter; stops on an empty or short page.
    #[serde(rename = "page")]
    Page(PageConfig),
    /// A page token read from the body (`nextPageToken`, Google APIs).
    #[serde(rename = "page_token")]
    PageToken(PageTokenConfig),
    /// The RFC 8288 `Link: <…>; rel="next"` header (GitHub, GitLab).
    #[serde(rename = "link")]
    Link(LinkConfig),
}

/// Where the next page starts. Serializable: store it in your poll
/// checkpoint and hand it back to [`Paginator::next_page`] to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PagePosition {
    /// The cursor to send.
    Cursor {
        /// The cursor, as the API gave it.
        cursor: String,
    },
    /// The offset to send.
    Offset {
        /// Records to skip.
        offset: u64,
    },
    /// The page number to send.
    Page {
        /// The page number.
        page: u64,
    },
    /// The page token to send.
    PageToken {
        /// The token, as the API gave it.
        token: String,
    },
    /// The URL of the next page, from the `Link` header.
    Link {
        /// The absolute URL.
        url: String,
    },
}

impl PagePosition {
    fn kind(&self) -> &'static str {
        match self {
            PagePosition::Cursor { .. } => "cursor",
            PagePosition::Offset { .. } => "offset",
            PagePosition::Page { .. } => "page",
            PagePosition::PageToken { .. } => "page_token",
            PagePosition::Link { .. } => "link",
        }
    }
}

/// One page: its records, and where the next one starts (`None`: this was
/// the last page).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The records, taken from the answer at `records_path`.
    pub records: Vec<Value>,
    /// The position of the next page, or `None` at the end.
    pub next: Option<PagePosition>,
}

/// Walks a paged list one page at a time. Holds no state between pages:
/// the position is yours to keep (and checkpoint).
#[derive(Debug, Clone)]
pub struct Paginator {
    config: PaginationConfig,
}

impl Paginator {
    /// A paginator for `config`, validated.
    ///
    /// # Errors
    /// Each bad key, named under `pagination.` (a JSON Pointer that does not
    /// start with `/`, a zero `page_size`, a `limit_param` without
    /// `page_size`).
    pub fn new(config: &PaginationConfig) -> Result<Paginator, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        match config {
            PaginationConfig::Cursor(config) => config.validate(&mut errors),
            PaginationConfig::Offset(config) => config.validate(&mut errors),
            PaginationConfig::Page(config) => config.validate(&mut errors),
            PaginationConfig::PageToken(config) => config.validate(&mut errors),
            PaginationConfig::Link(config) => config.validate(&mut errors),
        }
        errors.into_result()?;
        Ok(Paginator {
            config: config.clone(),
        })
    }

    /// Fetches the page at `position` (`None`: the first page) with
    /// `request`, the request of the first page (path, filters, headers),
    /// to which the paginator adds its query parameters (or, for `link`,
    /// whose URL it replaces by the stored next URL).
    ///
    /// # Errors
    /// The call's [`HttpError`]; a permanent `pagination` error when the
    /// page gives back the position it was fetched at (a repeated cursor,
    /// token or next link: stopping beats looping forever), when `position`
    /// is of another kind than the config, or when a `link` points to
    /// another origin; a permanent `bad_response` error when the body is
    /// not JSON or has no array at `records_path`.
    pub async fn next_page(
        &self,
        client: &Client,
        request: RequestBuilder,
        position: Option<&PagePosition>,
    ) -> Result<Page, HttpError> {
        let mut request = request.build().map_err(|err| {
            HttpError::new(
                HttpErrorKind::InvalidRequest,
                format!("invalid request: {}", describe_transport(err)),
            )
        })?;
        if let Some(position) = position
            && position.kind() != self.kind()
        {
            return Err(pagination_error(format!(
                "the stored page position is a `{}` position but `pagination.kind` is `{}`",
                position.kind(),
                self.kind()
            )));
        }
        match &self.config {
            PaginationConfig::Cursor(config) => config.prepare(request.url_mut(), position),
            PaginationConfig::Offset(config) => config.prepare(request.url_mut(), position),
            PaginationConfig::Page(config) => config.prepare(request.url_mut(), position),
            PaginationConfig::PageToken(config) => config.prepare(request.url_mut(), position),
            PaginationConfig::Link(_) => link::prepare(request.url_mut(), position)?,
        }
        let what = format!("{} {}", request.method(), request.url().path());
        let request_url = request.url().clone();
        let response = client.execute(request).await?;
        let mut body: Value = response.json()?;
        // The cursor or token is read before the records are moved out.
        let token_next = match &self.config {
            PaginationConfig::Cursor(config) => config.next(&body, &what)?,
            PaginationConfig::PageToken(config) => config.next(&body, &what)?,
            _ => None,
        };
        let records = take_records(&mut body, self.records_path(), &what)?;
        let fetched = records.len();
        let next = match &self.config {
            PaginationConfig::Cursor(_) | PaginationConfig::PageToken(_) => token_next,
            PaginationConfig::Offset(config) => config.next(position, fetched),
            PaginationConfig::Page(config) => config.next(position, fetched),
            PaginationConfig::Link(_) => {
                link::next(response.headers(), &request_url, &what)?.map(|mut url| {
                    client.strip_credential(&mut url);
                    PagePosition::Link {
                        url: url.to_string(),
                    }
                })
            }
        };
        if let (Some(next), Some(position)) = (&next, position)
            && next == position
        {
            return Err(pagination_error(format!(
                "{what} gave back the position it was fetched at ({}); stopping rather than looping forever",
                next.kind()
            )));
        }
        Ok(Page { records, next })
    }

    fn kind(&self) -> &'static str {
        match &self.config {
            PaginationConfig::Cursor(_) => "cursor",
            PaginationConfig::Offset(_) => "offset",
            PaginationConfig::Page(_) => "page",
            PaginationConfig::PageToken(_) => "page_token",
            PaginationConfig::Link(_) => "link",
        }
    }

    fn records_path(&self) -> &str {
        match &self.config {
            PaginationConfig::Cursor(config) => &config.records_path,
            PaginationConfig::Offset(config) => &config.records_path,
            PaginationConfig::Page(config) => &config.records_path,
            PaginationConfig::PageToken(config) => &config.records_path,
            PaginationConfig::Link(config) => &config.records_path,
        }
    }
}

fn pagination_error(message: String) -> HttpError {
    HttpError::new(HttpErrorKind::Pagination, message)
}

/// The array at `pointer` in `body`, moved out.
fn take_records(body: &mut Value, pointer: &str, what: &str) -> Result<Vec<Value>, HttpError> {
    match body.pointer_mut(pointer) {
        Some(Value::Array(records)) => Ok(std::mem::take(records)),
        Some(_) => Err(HttpError::new(
            HttpErrorKind::Decode,
            format!("the answer to {what} has no array at `records_path` `{pointer}`"),
        )),
        None => Err(HttpError::new(
            HttpErrorKind::Decode,
            format!("the answer to {what} has nothing at `records_path` `{pointer}`"),
        )),
    }
}

/// Reads an opaque cursor or token at `pointer`: a string or a number;
/// missing, null or empty means "no more pages".
fn token_at(
    body: &Value,
    pointer: &str,
    key: &str,
    what: &str,
) -> Result<Option<String>, HttpError> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(HttpError::new(
            HttpErrorKind::Decode,
            format!(
                "the answer to {what} has neither a string nor a number at `{key}` `{pointer}`"
            ),
        )),
    }
}

/// Sets the query parameter `name` to `value`, replacing any it had.
fn set_query(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (key, value) in &kept {
        pairs.append_pair(key, value);
    }
    pairs.append_pair(name, value);
}

/// Checks that `pointer` (the key `key`) is a JSON Pointer.
fn validate_pointer(errors: &mut ConfigErrors, key: &str, pointer: &str) {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        errors.push(
            format!("pagination.{key}"),
            format!("`{pointer}` is not a JSON Pointer: write `/{pointer}` (or `\"\"` for the whole body)"),
        );
    }
}

/// Checks an optional `page_size` and the parameter that sends it: both or neither.
fn validate_size(
    errors: &mut ConfigErrors,
    param_key: &str,
    param: Option<&String>,
    page_size: Option<u64>,
) {
    match (param, page_size) {
        (_, Some(0)) => errors.push("pagination.page_size", "must be at least 1"),
        (Some(_), None) => errors.push(
            "pagination.page_size",
            format!("is required with `{param_key}`"),
        ),
        (None, Some(_)) => errors.push(
            format!("pagination.{param_key}"),
            "is required with `page_size`",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

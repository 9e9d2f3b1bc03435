//! `rest-poll`: a polling input that turns any paginated JSON API into
//! records, configured entirely in TOML (URL, auth, pagination, where the
//! items and their ids are), with incremental sync on a high-water mark.
//! See README.md.

mod config;
pub mod watermark;

use serde_json::Value;
use switchyard_plugin_sdk::http::{
    Client, HttpError, Method, PagePosition, Paginator, RequestBuilder, StatusCode,
};
use switchyard_plugin_sdk::{
    ConfigErrors, Emitter, Plugin, PluginError, PollRequest, PollingInput, Record,
};
use tracing::Instrument as _;

pub use config::{Field, RestPollConfig};
pub use watermark::Checkpoint;

/// The configured input.
#[derive(Debug)]
pub struct RestPoll {
    config: RestPollConfig,
    client: Client,
    method: Method,
    paginator: Option<Paginator>,
    id_field: Field,
    updated_field: Option<Field>,
}

/// The plugin definition.
pub fn plugin() -> Plugin<RestPoll> {
    Plugin::new("rest-poll", env!("CARGO_PKG_VERSION"))
        .description("Polls any paginated JSON API into records, configured in TOML")
        .polling_input(|config: RestPollConfig| async move { RestPoll::start(config).await })
}

impl RestPoll {
    /// Validates the configuration, and, with `check_on_start`, fetches the
    /// first page once so a wrong URL or credential fails the start.
    ///
    /// # Errors
    /// Every bad key; a 401 or 403 (naming `auth` and the strategy), an
    /// unreachable or overloaded upstream: a retryable start failure.
    pub async fn start(config: RestPollConfig) -> Result<Self, ConfigErrors> {
        let checked = config.check()?;
        let input = RestPoll {
            client: checked.client,
            method: checked.method,
            paginator: checked.paginator,
            id_field: checked.id_field,
            updated_field: checked.updated_field,
            config,
        };
        if input.config.check_on_start {
            input.check_upstream().await?;
        }
        Ok(input)
    }

    /// Fetches the first page and classifies a failure for the hub.
    async fn check_upstream(&self) -> Result<(), ConfigErrors> {
        let error = match self.fetch(None, None).await {
            Ok(_) => return Ok(()),
            Err(FetchError::Http(error)) => error,
            Err(FetchError::Shape(why)) => {
                let mut errors = ConfigErrors::new();
                errors.push("records_path", why);
                return Err(errors);
            }
        };
        let status = error.status_code();
        if matches!(
            status,
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        ) {
            // Retryable, not a config error: a key can be rotated or its
            // grant fixed upstream without touching plugins.toml, so the hub
            // retries the start under the plugin's restart policy and marks
            // it `failed` (with this message) only once that gives up.
            let kind = self.config.auth.as_ref().map_or("none", |auth| auth.kind());
            return Err(ConfigErrors::unavailable(PluginError::retryable(format!(
                "auth: the API refused the credential (auth kind `{kind}`): {error}"
            ))));
        }
        if error.is_retryable() {
            return Err(ConfigErrors::unavailable(PluginError::from(error)));
        }
        let mut errors = ConfigErrors::new();
        errors.push("url", format!("the first page could not be read: {error}"));
        Err(errors)
    }

    /// The first page's request: method, URL, query, the mark, the body.
    fn request(&self, mark: Option<&Value>) -> RequestBuilder {
        let mut request = self.client.request(self.method.clone(), &self.config.url);
        if !self.config.query.is_empty() {
            request = request.query(&self.config.query);
        }
        if let (Some(param), Some(mark)) = (&self.config.updated_param, mark) {
            request = request.query(&[(param.as_str(), watermark::as_param(mark))]);
        }
        if let Some(body) = &self.config.body {
            request = request.json(body);
        }
        request
    }

    /// One page at `position`, or the whole list without pagination.
    async fn fetch(
        &self,
        mark: Option<&Value>,
        position: Option<&PagePosition>,
    ) -> Result<(Vec<Value>, Option<PagePosition>), FetchError> {
        let request = self.request(mark);
        match &self.paginator {
            Some(paginator) => {
                let page = paginator
                    .next_page(&self.client, request, position)
                    .await
                    .map_err(FetchError::Http)?;
                Ok((page.records, page.next))
            }
            None => {
                let mut body: Value = self
                    .client
                    .send_json(request)
                    .await
                    .map_err(FetchError::Http)?;
                match take_items(&mut body, &self.config.records_path) {
                    Some(records) => Ok((records, None)),
                    None => Err(FetchError::Shape(format!(
                        "the answer to {} {} has no array at records_path `{}`",
                        self.method,
                        url_path(&self.config.url),
                        self.config.records_path
                    ))),
                }
            }
        }
    }

    /// The page's items as records, skipping those at or below `mark`;
    /// returns them and the walk's new maximum.
    fn records(
        &self,
        items: Vec<Value>,
        mark: Option<&Value>,
        mut walk_max: Option<Value>,
    ) -> Result<(Vec<Record>, Option<Value>), PluginError> {
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let updated = self
                .updated_field
                .as_ref()
                .and_then(|field| field.get(&item))
                .filter(|value| !value.is_null())
                .cloned();
            if !watermark::is_newer(updated.as_ref(), mark) {
                continue;
            }
            let id = match self.id_field.get(&item) {
                Some(Value::String(id)) if !id.is_empty() => id.clone(),
                Some(Value::Number(id)) => id.to_string(),
                _ => {
                    return Err(PluginError::permanent(format!(
                        "an item has no usable id at `{}` (a non-empty string or a number): {}",
                        self.id_field.name(),
                        preview(&item)
                    ))
                    .with_code("bad_item"));
                }
            };
            walk_max = watermark::max(walk_max, updated);
            records.push(Record::new(id, self.config.record_type.clone()).with_payload(&item)?);
        }
        Ok((records, walk_max))
    }
}

impl PollingInput for RestPoll {
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let mut checkpoint = Checkpoint::read(request.checkpoint.as_deref())?;
        let mut emitted: u64 = 0;
        loop {
            let span = tracing::info_span!("page", position = ?checkpoint.position);
            let (items, next_page) = self
                .fetch(checkpoint.mark.as_ref(), checkpoint.position.as_ref())
                .instrument(span)
                .await?;
            let (records, walk_max) =
                self.records(items, checkpoint.mark.as_ref(), checkpoint.walk_max.clone())?;
            emitted += records.len() as u64;
            let next = checkpoint.after_page(walk_max, next_page);
            emitter
                .emit_with_checkpoint(records, next.to_bytes()?)
                .await?;
            let done = next.position.is_none();
            checkpoint = next;
            if done || (request.max_records > 0 && emitted >= u64::from(request.max_records)) {
                tracing::debug!(records = emitted, walk_done = done, "Poll finished.");
                return Ok(());
            }
        }
    }
}

/// Why a page could not be read.
enum FetchError {
    /// The call failed (classified by the toolkit).
    Http(HttpError),
    /// The answer has no items array where `records_path` says.
    Shape(String),
}

impl From<FetchError> for PluginError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Http(error) => error.into(),
            FetchError::Shape(why) => PluginError::permanent(why).with_code("bad_response"),
        }
    }
}

/// Moves the array at JSON Pointer `path` (`""`: the whole body) out of `body`.
fn take_items(body: &mut Value, path: &str) -> Option<Vec<Value>> {
    match body.pointer_mut(path)?.take() {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// The URL's path, without its query (which may carry a key).
fn url_path(url: &str) -> String {
    switchyard_plugin_sdk::http::Url::parse(url)
        .map(|url| url.path().to_owned())
        .unwrap_or_default()
}

/// The start of an item's JSON, for error messages.
fn preview(item: &Value) -> String {
    let text = item.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

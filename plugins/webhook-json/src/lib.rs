//! `webhook-json`: a webhook input that maps JSON bodies to records, with
//! configurable id, type and time fields. See README.md.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use switchyard_plugin_sdk::{
    ConfigError, ConfigErrors, Plugin, PluginError, Record, WebhookInput, WebhookRequest,
    WebhookResponse,
};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookJsonConfig {
    /// Dotted path to each item's id (a string or a number), for example `data.id`.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Dotted path to each item's type (a string); `default_type` when absent.
    #[serde(default)]
    pub type_field: Option<String>,
    /// The record type when `type_field` is unset or missing from the item.
    #[serde(default = "default_type")]
    pub default_type: String,
    /// Dotted path to when the event happened: RFC 3339 text or unix seconds.
    #[serde(default)]
    pub time_field: Option<String>,
    /// Dotted path to an array of items, when one delivery carries several.
    #[serde(default)]
    pub items_field: Option<String>,
    /// Request headers copied into each record's metadata (lower-cased names).
    #[serde(default = "default_header_metadata")]
    pub header_metadata: Vec<String>,
}

fn default_id_field() -> String {
    "id".into()
}
fn default_type() -> String {
    "webhook".into()
}
fn default_header_metadata() -> Vec<String> {
    vec!["content-type".into(), "user-agent".into()]
}

/// A dotted path split into its keys.
#[derive(Debug, Clone)]
struct FieldPath {
    text: String,
    keys: Vec<String>,
}

impl FieldPath {
    fn parse(field: &str, text: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let keys: Vec<String> = text.split('.').map(str::to_owned).collect();
        if keys.iter().any(String::is_empty) {
            errors.push(
                field,
                format!("{text:?} is not a dotted path like \"data.id\""),
            );
            return None;
        }
        Some(FieldPath {
            text: text.to_owned(),
            keys,
        })
    }

    /// The value at this path; array elements are addressed by index.
    fn lookup<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.keys.iter().try_fold(value, |value, key| match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|index| items.get(index)),
            _ => None,
        })
    }
}

/// The configured plugin.
#[derive(Debug)]
pub struct WebhookJson {
    id: FieldPath,
    record_type: Option<FieldPath>,
    default_type: String,
    time: Option<FieldPath>,
    items: Option<FieldPath>,
    headers: Vec<String>,
}

impl WebhookJson {
    /// Validates the configuration.
    ///
    /// # Errors
    /// Every malformed path and an empty `default_type`.
    pub fn new(config: WebhookJsonConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let id = FieldPath::parse("id_field", &config.id_field, &mut errors);
        let record_type = config
            .type_field
            .as_deref()
            .and_then(|text| FieldPath::parse("type_field", text, &mut errors));
        let time = config
            .time_field
            .as_deref()
            .and_then(|text| FieldPath::parse("time_field", text, &mut errors));
        let items = config
            .items_field
            .as_deref()
            .and_then(|text| FieldPath::parse("items_field", text, &mut errors));
        if config.default_type.is_empty() {
            errors.push("default_type", "must not be empty");
        }
        for (index, header) in config.header_metadata.iter().enumerate() {
            if header.is_empty() || header.contains(char::is_whitespace) {
                errors.push(
                    format!("header_metadata.{index}"),
                    format!("{header:?} is not a header name"),
                );
            }
        }
        errors.into_result()?;
        let Some(id) = id else {
            return Err(ConfigError::new("id_field", "is not a dotted path").into());
        };
        Ok(WebhookJson {
            id,
            record_type,
            default_type: config.default_type,
            time,
            items,
            headers: config
                .header_metadata
                .iter()
                .map(|header| header.to_ascii_lowercase())
                .collect(),
        })
    }

    fn item_to_record(
        &self,
        item: &Value,
        place: &str,
        request: &WebhookRequest,
    ) -> Result<Record, PluginError> {
        let id = match self.id.lookup(item) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            Some(other) => {
                return Err(invalid(format!(
                    "{place}: the id field `{}` is {}, not a non-empty string or a number",
                    self.id.text,
                    describe(other)
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{place} has no id field `{}`",
                    self.id.text
                )));
            }
        };
        let record_type = match &self.record_type {
            None => self.default_type.clone(),
            Some(path) => match path.lookup(item) {
                None | Some(Value::Null) => self.default_type.clone(),
                Some(Value::String(text)) if !text.is_empty() => text.clone(),
                Some(other) => {
                    return Err(invalid(format!(
                        "{place}: the type field `{}` is {}, not a non-empty string",
                        path.text,
                        describe(other)
                    )));
                }
            },
        };
        let mut record = Record::new(id, record_type).with_payload(item)?;
        if let Some(path) = &self.time {
            record.occurred_at = match path.lookup(item) {
                None | Some(Value::Null) => None,
                Some(value) => Some(parse_time(value).ok_or_else(|| {
                    invalid(format!(
                        "{place}: the time field `{}` is {}, not RFC 3339 text or unix seconds",
                        path.text,
                        describe(value)
                    ))
                })?),
            };
        }
        for wanted in &self.headers {
            if let Some(value) = request.header(wanted) {
                record.metadata.insert(wanted.clone(), value.to_owned());
            }
        }
        Ok(record)
    }
}

fn invalid(message: String) -> PluginError {
    PluginError::permanent(message).with_code("invalid_body")
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) if text.is_empty() => "an empty string".into(),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// RFC 3339 text, or unix seconds (integer or fractional).
fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
        Value::Number(number) => {
            if let Some(seconds) = number.as_i64() {
                DateTime::from_timestamp(seconds, 0)
            } else {
                let seconds = number.as_f64()?;
                if !seconds.is_finite() {
                    return None;
                }
                let whole = seconds.floor();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
                #[allow(clippy::cast_possible_truncation)]
                DateTime::from_timestamp(whole as i64, nanos)
            }
        }
        _ => None,
    }
}

/// The plugin definition.
pub fn plugin() -> Plugin<WebhookJson> {
    Plugin::new("webhook-json", env!("CARGO_PKG_VERSION"))
        .description(
            "Maps JSON webhook bodies to records (configurable id, type, time and item fields)",
        )
        .webhook_input(|config: WebhookJsonConfig| async move { WebhookJson::new(config) })
}

impl WebhookInput for WebhookJson {
    async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, PluginError> {
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|err| invalid(format!("the request body is not valid JSON: {err}")))?;
        let items: Vec<(String, &Value)> = match (&self.items, &body) {
            (Some(path), _) => match path.lookup(&body) {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| (format!("item {index} of `{}`", path.text), item))
                    .collect(),
                Some(other) => {
                    return Err(invalid(format!(
                        "the items field `{}` is {}, not an array",
                        path.text,
                        describe(other)
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "the body has no items field `{}`",
                        path.text
                    )));
                }
            },
            (None, Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (format!("item {index}"), item))
                .collect(),
            (None, _) => vec![("the body".to_owned(), &body)],
        };
        let records = items
            .into_iter()
            .map(|(place, item)| self.item_to_record(item, &place, &request))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WebhookResponse::records(records))
    }
}

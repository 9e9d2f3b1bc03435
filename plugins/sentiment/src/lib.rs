//! `sentiment`: an enricher that scores the sentiment of text fields with an
//! embedded lexicon (no network), handling negation ("not good"). See README.md.

mod lexicon;
pub mod score;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use switchyard_plugin_sdk::payload_path::{kind, lookup, set_path, split_path};
use switchyard_plugin_sdk::{ConfigErrors, Enricher, Plugin, PluginError, Record};

pub use score::{Score, score_text};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentimentConfig {
    /// Dotted paths to the payload's text fields; their texts are scored together.
    #[serde(default = "default_text_fields")]
    pub text_fields: Vec<String>,
    /// Dotted path of the payload key that receives the result object.
    #[serde(default = "default_output_field")]
    pub output_field: String,
}

fn default_text_fields() -> Vec<String> {
    vec!["text".into()]
}
fn default_output_field() -> String {
    "sentiment".into()
}

/// The configured enricher.
#[derive(Debug)]
pub struct Sentiment {
    text_fields: Vec<(String, Vec<String>)>,
    output: Vec<String>,
}

impl Sentiment {
    /// Validates the configuration.
    ///
    /// # Errors
    /// Every malformed path, and an empty `text_fields`.
    pub fn new(config: SentimentConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if config.text_fields.is_empty() {
            errors.push("text_fields", "must name at least one field");
        }
        let mut text_fields = Vec::new();
        for (index, field) in config.text_fields.iter().enumerate() {
            match split_path(field) {
                Some(keys) => text_fields.push((field.clone(), keys)),
                None => errors.push(
                    format!("text_fields.{index}"),
                    format!("{field:?} is not a dotted path like \"body.text\""),
                ),
            }
        }
        let output = split_path(&config.output_field);
        if output.is_none() {
            errors.push(
                "output_field",
                format!(
                    "{:?} is not a dotted path like \"analysis.sentiment\"",
                    config.output_field
                ),
            );
        }
        errors.into_result()?;
        Ok(Sentiment {
            text_fields,
            output: output.unwrap_or_default(),
        })
    }

    /// Scores `payload` and writes the result into it.
    fn apply(&self, payload: &mut Value, id: &str) -> Result<(), PluginError> {
        if !payload.is_object() {
            return Err(PluginError::permanent(format!(
                "the payload of record {id:?} is not a JSON object, so there is nowhere to write `{}`",
                self.output.join(".")
            ))
            .with_code("payload_not_object"));
        }
        let mut text = String::new();
        for (name, keys) in &self.text_fields {
            match lookup(payload, keys) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => {
                    text.push_str(value);
                    text.push('\n');
                }
                Some(other) => {
                    return Err(PluginError::permanent(format!(
                        "the text field `{name}` of record {id:?} is not a string but {}",
                        kind(other)
                    ))
                    .with_code("text_not_string"));
                }
            }
        }
        let score = score_text(&text);
        let result = serde_json::json!({
            "score": score.score,
            "comparative": score.comparative,
            "label": score.label(),
        });
        set_path(payload, &self.output, result).map_err(|at| {
            PluginError::permanent(format!(
                "cannot write `{}` into record {id:?}: `{at}` is not an object",
                self.output.join(".")
            ))
            .with_code("output_not_object")
        })
    }
}

/// The plugin definition.
pub fn plugin() -> Plugin<Sentiment> {
    Plugin::new("sentiment", env!("CARGO_PKG_VERSION"))
        .description("Scores the sentiment of text fields with an embedded lexicon")
        .enricher(|config: SentimentConfig| async move { Sentiment::new(config) })
}

impl Enricher for Sentiment {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        let mut payload = record.payload_json()?;
        self.apply(&mut payload, &record.id)?;
        record.set_payload(&payload)?;
        Ok(record)
    }
}

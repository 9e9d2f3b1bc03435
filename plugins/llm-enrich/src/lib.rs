//! `llm-enrich`: an enricher that asks any OpenAI-compatible Chat Completions
//! API (OpenAI, Ollama, vLLM, LM Studio) about each record's text, with the
//! answer constrained by a JSON Schema (`response_format` `json_schema`),
//! and writes the parsed answer into the record's payload. See README.md.

pub mod chat;
mod config;
pub mod schema;

use std::sync::Arc;

use serde_json::Value;
use switchyard_plugin_sdk::http::{Client, HttpError, StatusCode};
use switchyard_plugin_sdk::payload_path;
use switchyard_plugin_sdk::{ConfigErrors, Enricher, Plugin, PluginError, Record};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

pub use config::LlmEnrichConfig;

/// The configured enricher.
#[derive(Debug)]
pub struct LlmEnrich {
    client: Client,
    model: String,
    system_prompt: String,
    schema_name: String,
    schema: Value,
    temperature: Option<f64>,
    text_fields: Vec<(String, Vec<String>)>,
    output: Vec<String>,
    api_key_env: Option<String>,
    /// Bounds the model calls in flight, across every batch and stream.
    limit: Arc<Semaphore>,
}

/// The plugin definition.
pub fn plugin() -> Plugin<LlmEnrich> {
    Plugin::new("llm-enrich", env!("CARGO_PKG_VERSION"))
        .description(
            "Enriches records through an OpenAI-compatible Chat Completions API, \
             with answers constrained by a JSON Schema",
        )
        .enricher(|config: LlmEnrichConfig| async move {
            let check = config.check_on_start;
            let enricher = LlmEnrich::new(config)?;
            if check {
                enricher.check_key().await?;
            }
            Ok(enricher)
        })
}

impl LlmEnrich {
    /// Validates the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// Every bad key, each named (a missing API key variable as `api_key_env`).
    pub fn new(config: LlmEnrichConfig) -> Result<Self, ConfigErrors> {
        let checked = config.check()?;
        Ok(LlmEnrich {
            client: checked.client,
            model: config.model,
            system_prompt: config.system_prompt,
            schema_name: config.schema_name,
            schema: checked.schema,
            temperature: config.temperature,
            text_fields: checked.text_fields,
            output: checked.output,
            api_key_env: config.api_key_env,
            limit: Arc::new(Semaphore::new(config.concurrency)),
        })
    }

    /// Lists the server's models once (`GET {base_url}/models`, which OpenAI,
    /// Ollama and vLLM serve): a 401 or 403 fails the start, naming the key's
    /// variable, as a retryable failure, so the hub retries the start under
    /// the plugin's restart policy and marks it `failed` only once that gives
    /// up. A server that does not list models (404, 405) is not checked; an
    /// unreachable or overloaded one fails the start in the same retryable
    /// way.
    ///
    /// # Errors
    /// The retryable start failure described above.
    pub async fn check_key(&self) -> Result<(), ConfigErrors> {
        let error = match self.client.get_json::<Value>("models").await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.status_code() {
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                let why = match &self.api_key_env {
                    Some(env) => format!(
                        "api_key_env: the model server refused the API key in `{env}` ({error}): check the key"
                    ),
                    None => format!(
                        "api_key_env: the model server wants an API key ({error}): set `api_key_env` to the variable that holds it"
                    ),
                };
                Err(ConfigErrors::unavailable(
                    PluginError::retryable(why).with_code("auth_failed"),
                ))
            }
            Some(StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) => {
                tracing::debug!(
                    "The model server does not list its models; the key is not checked at start."
                );
                Ok(())
            }
            _ if error.is_retryable() => Err(ConfigErrors::unavailable(PluginError::from(error))),
            _ => {
                tracing::warn!(%error, "Could not list the model server's models at start; going on.");
                Ok(())
            }
        }
    }

    /// The text sent for `payload`: the one text field's value, or each
    /// present field as `name: text` on its own line.
    fn text(&self, payload: &Value, id: &str) -> Result<String, PluginError> {
        let mut parts = Vec::new();
        for (name, keys) in &self.text_fields {
            match payload_path::lookup(payload, keys) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => parts.push((name, text.as_str())),
                Some(_) => {
                    return Err(PluginError::permanent(format!(
                        "the text field `{name}` of record {id:?} is not a string"
                    ))
                    .with_code("text_not_string"));
                }
            }
        }
        match parts.as_slice() {
            [] => Err(PluginError::permanent(format!(
                "record {id:?} has none of the text fields {:?}",
                self.text_fields
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
            ))
            .with_code("no_text")),
            [(_, text)] if self.text_fields.len() == 1 => Ok((*text).to_owned()),
            parts => Ok(parts
                .iter()
                .map(|(name, text)| format!("{name}: {text}"))
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    /// One Chat Completions call for `text`, and its checked answer.
    async fn ask(&self, text: &str, id: &str) -> Result<Value, PluginError> {
        let body = chat::request_body(
            &self.model,
            &self.system_prompt,
            text,
            &self.schema_name,
            &self.schema,
            self.temperature,
        );
        let response: Value = self
            .client
            .post_json("chat/completions", &body)
            .await
            .map_err(|error| self.call_failed(error, id))?;
        let answer = chat::parse_answer(&response).map_err(|error| {
            PluginError::permanent(format!(
                "the model's answer for record {id:?} is unusable: {error}"
            ))
            .with_code(error.code())
        })?;
        schema::check(&self.schema, &answer).map_err(|why| {
            PluginError::permanent(format!(
                "the model's answer for record {id:?} does not match the schema: {why}"
            ))
            .with_code("bad_model_answer")
        })?;
        Ok(answer)
    }

    /// Turns a failed call into the record's error: a 401 says which key
    /// (or that one is needed); the rest keep the toolkit's classification
    /// (429 and 5xx retryable, with `Retry-After`), naming the record.
    fn call_failed(&self, error: HttpError, id: &str) -> PluginError {
        if error.status_code() == Some(StatusCode::UNAUTHORIZED) {
            let why = match &self.api_key_env {
                Some(env) => format!(
                    "the model server refused the API key in `{env}` (api_key_env) with 401 Unauthorized: check the key"
                ),
                None => "the model server wants an API key (401 Unauthorized): set `api_key_env` to the variable that holds it".to_owned(),
            };
            return PluginError::permanent(format!("record {id:?}: {why}"))
                .with_code("auth_failed");
        }
        let plugin_error = PluginError::from(error);
        let message = format!("record {id:?}: {}", plugin_error.message());
        let mut rewritten = if plugin_error.is_retryable() {
            PluginError::retryable(message)
        } else {
            PluginError::permanent(message)
        };
        if let Some(code) = plugin_error.code() {
            rewritten = rewritten.with_code(code.to_owned());
        }
        match plugin_error.retry_after() {
            Some(after) => rewritten.with_retry_after(after),
            None => rewritten,
        }
    }
}

impl Enricher for LlmEnrich {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        let mut payload = record.payload_json()?;
        let text = self.text(&payload, &record.id)?;
        let span = tracing::info_span!("chat_completion", record = %record.id, model = %self.model);
        let answer = async {
            let _permit = self
                .limit
                .acquire()
                .await
                .map_err(|_| PluginError::retryable("the plugin is shutting down"))?;
            self.ask(&text, &record.id).await
        }
        .instrument(span)
        .await?;
        payload_path::set_path(&mut payload, &self.output, answer).map_err(|at| {
            PluginError::permanent(format!(
                "cannot write `{}` into record {:?}: `{at}` is not an object",
                self.output.join("."),
                record.id
            ))
            .with_code("output_not_object")
        })?;
        record.set_payload(&payload)?;
        Ok(record)
    }
}

//! The `config` table and its validation into the pieces the enricher uses.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_plugin_sdk::http::{AuthConfig, Client, HttpConfig, RateLimitConfig, RetryConfig};
use switchyard_plugin_sdk::{ConfigError, ConfigErrors};

use crate::schema;
use switchyard_plugin_sdk::payload_path;

/// The default system prompt, for the default (sentiment) schema.
const DEFAULT_PROMPT: &str = "You classify the sentiment of the user's text. \
Answer with a JSON object: `label` is \"positive\", \"negative\" or \"neutral\"; \
`score` is a number from -1 (most negative) to 1 (most positive).";

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmEnrichConfig {
    /// The API's base URL, up to and including the version
    /// (`https://api.openai.com/v1`, `http://localhost:11434/v1`);
    /// the plugin POSTs to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The environment variable holding the API key, sent as
    /// `Authorization: Bearer <key>`; unset for servers without auth.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The model (`gpt-4o-mini`, `llama3.1`, …).
    pub model: String,
    /// Dotted paths to the payload's text fields sent to the model.
    #[serde(default = "default_text_fields")]
    pub text_fields: Vec<String>,
    /// Dotted path of the payload key that receives the parsed answer.
    #[serde(default = "default_output_field")]
    pub output_field: String,
    /// The system message.
    #[serde(default = "default_prompt")]
    pub system_prompt: String,
    /// The JSON Schema of the answer: a table, or a string of JSON.
    /// Default: `{label: positive|negative|neutral, score: number}`.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub schema: Option<Value>,
    /// The schema's name in `response_format.json_schema.name`.
    #[serde(default = "default_schema_name")]
    pub schema_name: String,
    /// Sampling temperature; unset leaves the server's default.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The most model calls in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The longest one call may take (`"60s"`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Retries of 429, 5xx, timeouts and connect errors (the SDK's `[retry]`
    /// table; 500 is always retried, as OpenAI documents).
    #[serde(default)]
    pub retry: RetryConfig,
    /// A client-side token bucket (the SDK's `[rate_limit]` table).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// At start, list the server's models (`GET {base_url}/models`) once, so
    /// that a refused API key fails the start (retried under the plugin's
    /// restart policy) instead of every record (default true).
    #[serde(default = "default_true")]
    pub check_on_start: bool,
}

fn default_text_fields() -> Vec<String> {
    vec!["text".into()]
}
fn default_output_field() -> String {
    "llm".into()
}
fn default_prompt() -> String {
    DEFAULT_PROMPT.into()
}
fn default_schema_name() -> String {
    "enrichment".into()
}
fn default_true() -> bool {
    true
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> String {
    "60s".into()
}

/// The most calls in flight `concurrency` may ask for.
const MAX_CONCURRENCY: usize = 256;

/// What [`LlmEnrichConfig::check`] builds.
pub(crate) struct Checked {
    pub(crate) client: Client,
    pub(crate) schema: Value,
    pub(crate) text_fields: Vec<(String, Vec<String>)>,
    pub(crate) output: Vec<String>,
}

impl LlmEnrichConfig {
    /// Validates every key and builds the client.
    pub(crate) fn check(&self) -> Result<Checked, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if self.model.trim().is_empty() {
            errors.push("model", "must name a model");
        }
        if self.text_fields.is_empty() {
            errors.push("text_fields", "must name at least one field");
        }
        let mut text_fields = Vec::new();
        for (index, field) in self.text_fields.iter().enumerate() {
            match payload_path::split_path(field) {
                Some(keys) => text_fields.push((field.clone(), keys)),
                None => errors.push(
                    format!("text_fields.{index}"),
                    format!("{field:?} is not a dotted path like \"body.text\""),
                ),
            }
        }
        let output = payload_path::split_path(&self.output_field).unwrap_or_else(|| {
            errors.push(
                "output_field",
                format!(
                    "{:?} is not a dotted path like \"analysis.llm\"",
                    self.output_field
                ),
            );
            Vec::new()
        });
        let schema = match &self.schema {
            None => schema::default_schema(),
            Some(value) => schema::from_config(value).unwrap_or_else(|why| {
                errors.push("schema", why);
                Value::Null
            }),
        };
        let name_ok = !self.schema_name.is_empty()
            && self.schema_name.len() <= 64
            && self
                .schema_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            errors.push(
                "schema_name",
                "must be 1 to 64 of a-z, A-Z, 0-9, `_` and `-` (OpenAI's rule)",
            );
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            errors.push("concurrency", format!("must be 1 to {MAX_CONCURRENCY}"));
        }
        let timeout = humantime::parse_duration(&self.timeout).unwrap_or_else(|err| {
            errors.push(
                "timeout",
                format!("{:?} is not a duration: {err}", self.timeout),
            );
            std::time::Duration::from_secs(60)
        });
        let client = self.client(timeout).map_err(|found| {
            for problem in found.iter() {
                errors.push(problem.field.clone(), problem.message.clone());
            }
        });
        errors.into_result()?;
        let Ok(client) = client else {
            return Err(ConfigErrors::new());
        };
        Ok(Checked {
            client,
            schema,
            text_fields,
            output,
        })
    }

    /// The toolkit client: bearer auth from `api_key_env`, every 5xx retried.
    fn client(&self, timeout: std::time::Duration) -> Result<Client, ConfigErrors> {
        let mut http = HttpConfig::new(self.base_url.clone())
            .with_timeout(timeout)
            .with_retry(self.retry.clone().with_server_errors(true));
        if let Some(rate_limit) = &self.rate_limit {
            http = http.with_rate_limit(rate_limit.clone());
        }
        if let Some(env) = &self.api_key_env {
            let auth: AuthConfig = serde_json::from_value(
                json!({"kind": "bearer", "token_env": env}),
            )
            .map_err(|err| ConfigErrors::from(ConfigError::new("api_key_env", err.to_string())))?;
            http = http.with_auth(auth);
        }
        Client::new(&http).map_err(|errors| {
            let mut renamed = ConfigErrors::new();
            for problem in errors.iter() {
                let field = match problem.field.as_str() {
                    "auth.token_env" => "api_key_env",
                    other => other,
                };
                renamed.push(field, problem.message.clone());
            }
            renamed
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors(json: Value) -> Vec<(String, String)> {
        let config: LlmEnrichConfig = serde_json::from_value(json).unwrap();
        match config.check() {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|error| (error.field.clone(), error.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_missing_key_variable_is_named_as_api_key_env() {
        let found = errors(json!({
            "base_url": "http://127.0.0.1:9/v1", "model": "m",
            "api_key_env": "LLM_ENRICH_TEST_SURELY_UNSET",
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "api_key_env");
        assert!(
            found[0].1.contains("LLM_ENRICH_TEST_SURELY_UNSET"),
            "{found:?}"
        );
    }

    #[test]
    fn every_bad_key_is_named() {
        let found = errors(json!({
            "base_url": "ftp://example.com", "model": " ", "text_fields": ["a..b"],
            "output_field": "", "schema": "{not json", "schema_name": "no spaces",
            "concurrency": 0, "timeout": "soon",
        }));
        let fields: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
        for field in [
            "base_url",
            "model",
            "text_fields.0",
            "output_field",
            "schema",
            "schema_name",
            "concurrency",
            "timeout",
        ] {
            assert!(fields.contains(&field), "{field} in {found:?}");
        }
    }

    #[test]
    fn defaults_are_the_sentiment_schema_without_auth() {
        let found = errors(json!({"base_url": "http://localhost:11434/v1", "model": "llama3.1"}));
        assert!(found.is_empty(), "{found:?}");
    }
}

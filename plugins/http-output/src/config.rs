//! The `config` table, validated, and the signing secret.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use switchyard_plugin_sdk::ConfigErrors;

/// The largest `batch`: the batch's delivery ids make up `webhook-id`.
pub const MAX_BATCH: usize = 256;

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOutputConfig {
    /// Where to POST: an `http://` or `https://` URL.
    pub url: String,
    /// The environment variable holding the signing secret, `whsec_`
    /// followed by base64 (the Standard Webhooks format; the prefix may be
    /// left out).
    pub secret_env: String,
    /// The most events per POST.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Extra static headers sent with every POST.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The longest one POST may take (connect, send, read the answer);
    /// a timeout is retried.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn default_batch() -> usize {
    100
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({err}); write it like \"30s\" or \"500ms\""
        ))
    })
}

impl HttpOutputConfig {
    /// Checks every key and reads the secret from `secret_env`.
    ///
    /// # Errors
    /// Every bad key; an unset, empty or non-base64 secret (named by its
    /// variable, never shown).
    pub fn validate(&self) -> Result<Vec<u8>, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            errors.push(
                "url",
                format!("{:?} is not an http:// or https:// URL", self.url),
            );
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            errors.push("batch", format!("must be between 1 and {MAX_BATCH}"));
        }
        if self.timeout.is_zero() {
            errors.push("timeout", "must be more than 0s");
        }
        for name in self.headers.keys() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                errors.push(
                    format!("headers.{name}"),
                    format!("{name:?} is not a header name"),
                );
            } else if name.to_ascii_lowercase().starts_with("webhook-") {
                errors.push(
                    format!("headers.{name}"),
                    "the webhook-* headers are the signature's",
                );
            }
        }
        let secret = match std::env::var(&self.secret_env) {
            Ok(value) if !value.is_empty() => match decode_secret(&value) {
                Some(key) => Some(key),
                None => {
                    errors.push(
                        "secret_env",
                        format!(
                            "the environment variable `{}` does not hold `whsec_` followed by base64",
                            self.secret_env
                        ),
                    );
                    None
                }
            },
            _ => {
                errors.push(
                    "secret_env",
                    format!(
                        "the environment variable `{}` is not set or empty",
                        self.secret_env
                    ),
                );
                None
            }
        };
        errors.into_result()?;
        secret.ok_or_else(|| {
            ConfigErrors::from(switchyard_plugin_sdk::ConfigError::new(
                "secret_env",
                "is missing",
            ))
        })
    }
}

/// The HMAC key of a Standard Webhooks secret: the base64 after an
/// optional `whsec_` prefix, decoded. `None` when it is not base64 or empty.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secrets_are_whsec_base64() {
        assert_eq!(decode_secret("whsec_aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_secret("aGVsbG8=").unwrap(), b"hello");
        assert!(decode_secret("whsec_not base64!").is_none());
        assert!(decode_secret("whsec_").is_none());
    }

    #[test]
    fn bad_keys_are_named() {
        let config: HttpOutputConfig = serde_json::from_value(serde_json::json!({
            "url": "ftp://x",
            "secret_env": "HTTP_OUTPUT_TEST_UNSET_SECRET",
            "batch": 0,
            "headers": {"bad name": "x", "webhook-id": "y"},
        }))
        .unwrap();
        let errors = config.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "url",
                "batch",
                "headers.bad name",
                "headers.webhook-id",
                "secret_env"
            ]
        );
        assert!(errors.iter().all(|e| !e.message.contains("aGVs")));
    }
}

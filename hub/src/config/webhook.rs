//! The `[plugins.NAME.webhook]` section: how `POST /webhooks/NAME` is
//! authenticated and bounded (see `docs/configuration.md`).
//!
//! The secret named by `secret_env` is read from the hub's environment when
//! the file is loaded, so a missing or malformed secret is a config error
//! (naming the variable, never showing its value) rather than a surprise at
//! the first delivery.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use toml::de::DeValue;

use super::reader::{Context, Section};

/// The default replay window of the timestamped schemes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The default largest accepted body, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The default most deliveries a plugin may have waiting in its inbox.
pub const DEFAULT_MAX_PENDING: u64 = 10_000;
/// The largest `max_body` accepted (64 MiB): bodies are held in memory.
pub const MAX_MAX_BODY: usize = 64 * 1024 * 1024;
/// The default number of deliveries the inbox worker hands to the plugin at
/// once. A delivery in hand spends most of its time waiting: for the plugin's
/// call and the enrichers', then for its commit (the group commit's pace and
/// a disk flush), 4-13 ms in all on a loaded 2-core machine, so keeping up
/// with R deliveries/s takes R times that in hand. With 32, README's example
/// drained its inbox at 7,100-8,600/s and refused part of 10,000 webhooks/s
/// offered; with 128 it took them all (issue #15). The former default of 4
/// drained about 1,000/s.
pub const DEFAULT_CONCURRENCY: usize = 128;
/// The largest `concurrency` accepted.
pub const MAX_CONCURRENCY: usize = 256;

const WEBHOOK_KEYS: &[&str] = &[
    "auth",
    "secret_env",
    "tolerance",
    "max_body",
    "max_pending",
    "concurrency",
];

/// How `POST /webhooks/NAME` authenticates a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAuth {
    /// No authentication (must be chosen explicitly).
    None,
    /// A shared key in the `X-API-Key` header or the `apiKey` query parameter.
    ApiKey,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github,
    /// Stripe's `Stripe-Signature: t=<unix>,v1=<hex>`.
    Stripe,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

impl WebhookAuth {
    /// Every accepted value of `auth`, in the order the docs list them.
    pub const ALL: [WebhookAuth; 5] = [
        WebhookAuth::ApiKey,
        WebhookAuth::Github,
        WebhookAuth::Stripe,
        WebhookAuth::StandardWebhooks,
        WebhookAuth::None,
    ];

    /// The value of `auth` that selects this scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookAuth::None => "none",
            WebhookAuth::ApiKey => "api_key",
            WebhookAuth::Github => "github",
            WebhookAuth::Stripe => "stripe",
            WebhookAuth::StandardWebhooks => "standard_webhooks",
        }
    }

    /// Whether the scheme signs a timestamp (so `tolerance` applies).
    pub fn is_timestamped(self) -> bool {
        matches!(self, WebhookAuth::Stripe | WebhookAuth::StandardWebhooks)
    }
}

impl fmt::Display for WebhookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key material read from the environment. Its `Debug` never shows the
/// bytes, so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The key bytes, for the verifier only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

/// One `[plugins.NAME.webhook]` table, validated, with its secret loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The authentication scheme.
    pub auth: WebhookAuth,
    /// The environment variable the secret came from (`None` for `none`).
    pub secret_env: Option<String>,
    /// The key: the API key's bytes, the HMAC key for `github` and `stripe`
    /// (the whole secret text), or the decoded `whsec_` bytes for
    /// `standard_webhooks`. `None` for `none`.
    pub secret: Option<Secret>,
    /// How far a signed timestamp may be from the hub's clock, either way.
    pub tolerance: Duration,
    /// The largest accepted body, in bytes.
    pub max_body: usize,
    /// The most accepted deliveries waiting for the plugin; past it, 429.
    pub max_pending: u64,
    /// How many deliveries the inbox worker hands to the plugin at once
    /// (each with its own retries); 1 keeps strict inbox order.
    pub concurrency: usize,
}

/// Reads `[plugins.NAME.webhook]`, taking the secret from the hub's
/// environment.
pub(crate) fn read(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    plugin: &str,
) -> Option<WebhookConfig> {
    read_with_env(context, section, plugin, &|name| std::env::var_os(name))
}

/// [`read`] with the environment lookup supplied (tests cannot set
/// variables in-process safely).
pub(crate) fn read_with_env(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    plugin: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<WebhookConfig> {
    let errors_before = context.errors.len();
    section.deny_unknown_keys(context, WEBHOOK_KEYS);
    let label = &section.label;
    let choices = WebhookAuth::ALL
        .iter()
        .map(|auth| format!("\"{auth}\""))
        .collect::<Vec<_>>()
        .join(", ");

    let auth = match section.string(context, "auth") {
        Some((text, span)) => {
            let found = WebhookAuth::ALL
                .iter()
                .copied()
                .find(|auth| auth.as_str() == text);
            if found.is_none() {
                context.error(
                    span,
                    format!("invalid `auth` {text:?} in {label}: expected one of {choices}"),
                );
            }
            found
        }
        None => {
            if section.get("auth").is_none() {
                section.missing(
                    context,
                    "auth",
                    &format!(
                        "one of {choices}; write auth = \"none\" to accept unauthenticated webhooks"
                    ),
                );
            }
            None
        }
    };

    let secret_env = section.string(context, "secret_env");
    let mut secret = None;
    match (auth, &secret_env) {
        (Some(WebhookAuth::None), Some((_, span))) => context.error(
            span.clone(),
            format!("`secret_env` in {label} makes no sense with auth = \"none\"; remove it or choose a scheme"),
        ),
        (Some(auth), None) if auth != WebhookAuth::None && section.get("secret_env").is_none() => {
            section.missing(
                context,
                "secret_env",
                if auth == WebhookAuth::ApiKey {
                    "the environment variable holding the API key"
                } else {
                    "the environment variable holding the signing secret"
                },
            );
        }
        (Some(auth), Some((variable, span))) => {
            match load_secret(auth, variable, env) {
                Ok(loaded) => secret = Some(loaded),
                Err(reason) => context.error(
                    span.clone(),
                    format!("the environment variable `{variable}` named by `secret_env` in {label} (plugin `{plugin}`) {reason}"),
                ),
            }
        }
        _ => {}
    }

    let tolerance = section
        .duration(context, "tolerance")
        .unwrap_or(DEFAULT_TOLERANCE);
    let max_body = read_max_body(context, section).unwrap_or(DEFAULT_MAX_BODY);
    let max_pending = section
        .integer(context, "max_pending", 1, u64::MAX)
        .unwrap_or(DEFAULT_MAX_PENDING);
    let concurrency = section
        .integer(context, "concurrency", 1, MAX_CONCURRENCY as u64)
        .and_then(|value| usize::try_from(value).ok())
        .unwrap_or(DEFAULT_CONCURRENCY);

    if context.errors.len() > errors_before {
        return None;
    }
    Some(WebhookConfig {
        auth: auth?,
        secret_env: secret_env.map(|(variable, _)| variable),
        secret,
        tolerance,
        max_body,
        max_pending,
        concurrency,
    })
}

/// The value of the environment variable `variable` named by a `*_env`
/// key (`secret_env`, `admin_token_env`), trimmed: an invalid name, an
/// unset, non-UTF-8 or empty variable is an error whose reason (to follow
/// "the environment variable `X` named by …") never includes the value.
pub(super) fn read_secret_text(
    variable: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<String, String> {
    if variable.is_empty() || variable.contains('=') || variable.contains('\0') {
        return Err("is not a valid variable name".to_owned());
    }
    let value = env(variable).ok_or_else(|| "is not set".to_owned())?;
    let text = value
        .into_string()
        .map_err(|_| "is not valid UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    Ok(text.to_owned())
}

/// Reads and checks the secret in `variable`; the reason never includes
/// the value.
fn load_secret(
    auth: WebhookAuth,
    variable: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Secret, String> {
    let text = read_secret_text(variable, env)?;
    let text = text.as_str();
    match auth {
        WebhookAuth::StandardWebhooks => {
            let encoded = text.strip_prefix("whsec_").unwrap_or(text);
            let key = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    "is not a Standard Webhooks secret (`whsec_` followed by base64)".to_owned()
                })?;
            if key.is_empty() {
                return Err("holds an empty key".to_owned());
            }
            Ok(Secret::new(key))
        }
        _ => Ok(Secret::new(text.as_bytes())),
    }
}

/// `max_body`: a byte count, or a size such as `"1MiB"` or `"512 KiB"`.
fn read_max_body(context: &mut Context<'_>, section: &Section<'_, '_>) -> Option<usize> {
    let value = section.get("max_body")?;
    let label = &section.label;
    let bytes = match value.get_ref() {
        DeValue::Integer(_) => section.integer(context, "max_body", 1, u64::MAX)?,
        DeValue::String(text) => match text.trim().parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() > 0 => size.as_u64(),
            _ => {
                context.error(
                    value.span(),
                    format!(
                        "invalid size {text:?} for `max_body` in {label}: expected a byte count or a size such as \"1MiB\" or \"512KiB\", greater than zero"
                    ),
                );
                return None;
            }
        },
        other => {
            context.error(
                value.span(),
                format!(
                    "`max_body` in {label} must be a size such as \"1MiB\" or a byte count, found {}",
                    other.type_str()
                ),
            );
            return None;
        }
    };
    match usize::try_from(bytes) {
        Ok(bytes) if bytes <= MAX_MAX_BODY => Some(bytes),
        _ => {
            context.error(
                value.span(),
                format!(
                    "`max_body` in {label} is {bytes} bytes; the most allowed is {MAX_MAX_BODY} (64 MiB)"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use toml::de::DeTable;

    use super::*;

    /// Reads `[webhook]` from `text` with `env` as the environment; returns
    /// the config or the error messages.
    fn read_text(text: &str, env: &[(&str, &str)]) -> Result<WebhookConfig, Vec<String>> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let document = DeTable::parse(text).unwrap();
        let mut context = Context {
            path: Path::new("plugins.toml"),
            source: text,
            errors: Vec::new(),
        };
        let top = Section {
            label: "[plugins.hook]".to_owned(),
            table: document.get_ref(),
            span: document.span(),
        };
        let section = top.table(&mut context, "webhook").unwrap();
        let lookup = |name: &str| env.get(name).map(OsString::from);
        let config = read_with_env(&mut context, &section, "hook", &lookup);
        match config {
            Some(config) if context.errors.is_empty() => Ok(config),
            _ => Err(context.errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn applies_the_documented_defaults() {
        let config = read_text(
            "[webhook]\nauth = \"github\"\nsecret_env = \"GH\"\n",
            &[("GH", "It's a Secret to Everybody")],
        )
        .unwrap();
        assert_eq!(config.auth, WebhookAuth::Github);
        assert_eq!(config.tolerance, Duration::from_secs(300));
        assert_eq!(config.max_body, 1024 * 1024);
        assert_eq!(config.max_pending, 10_000);
        assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(
            config.secret.unwrap().expose(),
            b"It's a Secret to Everybody"
        );
    }

    #[test]
    fn reads_every_key() {
        let config = read_text(
            "[webhook]\nauth = \"standard_webhooks\"\nsecret_env = \"SW\"\ntolerance = \"1m\"\nmax_body = \"64KiB\"\nmax_pending = 5\nconcurrency = 1\n",
            &[("SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        )
        .unwrap();
        assert_eq!(config.tolerance, Duration::from_secs(60));
        assert_eq!(config.max_body, 64 * 1024);
        assert_eq!(config.max_pending, 5);
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.secret.unwrap().expose().len(), 24);
        let bytes = read_text("[webhook]\nauth = \"none\"\nmax_body = 100\n", &[]).unwrap();
        assert_eq!(bytes.max_body, 100);
        assert_eq!(bytes.secret, None);
    }

    #[test]
    fn auth_is_required_and_none_must_be_explicit() {
        let errors = read_text("[webhook]\nmax_body = 10\n", &[]).unwrap_err();
        assert!(
            errors[0].contains("missing the required key `auth`")
                && errors[0].contains("auth = \"none\""),
            "{errors:?}"
        );
        let errors = read_text("[webhook]\nauth = \"hmac\"\n", &[]).unwrap_err();
        assert!(errors[0].contains("invalid `auth` \"hmac\""), "{errors:?}");
        assert!(errors[0].contains("plugins.toml:2:8"), "{errors:?}");
    }

    #[test]
    fn a_missing_secret_names_the_variable_and_never_the_value() {
        let errors = read_text("[webhook]\nauth = \"api_key\"\n", &[]).unwrap_err();
        assert!(
            errors[0].contains("missing the required key `secret_env`"),
            "{errors:?}"
        );
        let errors = read_text(
            "[webhook]\nauth = \"stripe\"\nsecret_env = \"STRIPE_SECRET\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            errors[0].contains("`STRIPE_SECRET`") && errors[0].contains("is not set"),
            "{errors:?}"
        );
        let errors = read_text(
            "[webhook]\nauth = \"standard_webhooks\"\nsecret_env = \"SW\"\n",
            &[("SW", "whsec_not*base64*value")],
        )
        .unwrap_err();
        assert!(errors[0].contains("`SW`"), "{errors:?}");
        assert!(
            !errors[0].contains("not*base64"),
            "the value leaked: {errors:?}"
        );
        let errors = read_text(
            "[webhook]\nauth = \"none\"\nsecret_env = \"X\"\n",
            &[("X", "y")],
        )
        .unwrap_err();
        assert!(errors[0].contains("makes no sense"), "{errors:?}");
    }

    #[test]
    fn rejects_bad_limits_and_unknown_keys() {
        let errors = read_text(
            "[webhook]\nauth = \"none\"\nmax_body = \"lots\"\nmax_pending = 0\ntolerence = \"5m\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("unknown key `tolerence`")));
        assert!(errors.iter().any(|e| e.contains("invalid size \"lots\"")));
        assert!(errors.iter().any(|e| e.contains("`max_pending`")));
        let errors =
            read_text("[webhook]\nauth = \"none\"\nmax_body = \"1GiB\"\n", &[]).unwrap_err();
        assert!(errors[0].contains("the most allowed"), "{errors:?}");
    }

    #[test]
    fn concurrency_is_a_bounded_whole_number() {
        for (value, column) in [("0", 15), ("257", 15), ("\"4\"", 15), ("1.5", 15)] {
            let errors = read_text(
                &format!("[webhook]\nauth = \"none\"\nconcurrency = {value}\n"),
                &[],
            )
            .unwrap_err();
            assert_eq!(errors.len(), 1, "{value}: {errors:?}");
            assert!(
                errors[0].contains(&format!("plugins.toml:3:{column}"))
                    && errors[0].contains("`concurrency` in [plugins.hook.webhook]"),
                "{value}: {errors:?}"
            );
        }
        let errors = read_text("[webhook]\nauth = \"none\"\nconcurrency = 0\n", &[]).unwrap_err();
        assert!(errors[0].contains("between 1 and 256"), "{errors:?}");
        let most = read_text("[webhook]\nauth = \"none\"\nconcurrency = 256\n", &[]).unwrap();
        assert_eq!(most.concurrency, 256);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(7 bytes, redacted)");
    }
}

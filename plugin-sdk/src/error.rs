//! Errors a plugin reports: [`PluginError`] for a failed call or item, and
//! [`ConfigError`] / [`ConfigErrors`] for a rejected configuration.

use std::any::Any;
use std::fmt;
use std::time::Duration;

/// Why a call, or one item of a streamed call, failed.
///
/// Say whether trying again may help: [`PluginError::retryable`] for timeouts,
/// upstream 5xx or 429; [`PluginError::permanent`] for input that will always
/// fail (malformed data, an upstream 4xx). A permanent failure of a webhook
/// makes the hub answer 400; a permanent nack of an event dead-letters it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginError {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
    code: Option<String>,
}

impl PluginError {
    /// A failure that may succeed if tried again later.
    pub fn retryable(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retryable: true,
            retry_after: None,
            code: None,
        }
    }

    /// A failure that will happen again with the same input.
    pub fn permanent(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retryable: false,
            retry_after: None,
            code: None,
        }
    }

    /// Asks the hub to wait at least this long before the next attempt
    /// (for example an upstream's `Retry-After`).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Attaches a short machine-readable code (for example `"rate_limited"`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The human-readable description.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// How long the plugin asked the hub to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// A caught panic in plugin code, as a permanent failure with code
    /// `panic` (logged at error level).
    pub(crate) fn from_panic(panic: &Box<dyn Any + Send>) -> Self {
        let message = panic_message(panic);
        tracing::error!(panic = %message, "Plugin code panicked while handling an item.");
        PluginError::permanent(format!("the plugin panicked: {message}")).with_code("panic")
    }
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        write!(f, "{kind} failure: {}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}

/// One problem with a plugin's configuration, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// A dotted path to the key inside `config` (for example `"fields.id"`),
    /// empty when the problem concerns the table as a whole.
    pub field: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

impl ConfigError {
    /// A problem with the key at `field` (a dotted path; empty for the whole table).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a plugin's factory did not build the plugin from its configuration:
/// what the factory returns. `?` converts a single [`ConfigError`], and a
/// [`PluginError`] (so a factory can call its upstream with `?`).
///
/// Two kinds of refusal reach the hub differently:
/// - problems with the configuration ([`ConfigErrors::push`]): `Configure`
///   reports them by key and the hub marks the plugin `failed`, because the
///   same configuration will be refused again;
/// - [`ConfigErrors::unavailable`]: something the configuration depends on
///   (an upstream API, a database) cannot be reached now. `Configure` fails
///   with UNAVAILABLE and the hub restarts the plugin with backoff instead.
///   A retryable [`PluginError`] converts into this; a permanent one into a
///   problem with the table as a whole.
///
/// Build it with [`ConfigErrors::new`] and [`ConfigErrors::push`], or from a
/// single [`ConfigError`] or a `Vec` of them with `.into()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigErrors {
    pub(crate) problems: Vec<ConfigError>,
    unavailable: Option<PluginError>,
}

impl ConfigErrors {
    /// No problems yet; add them with [`ConfigErrors::push`].
    pub fn new() -> Self {
        ConfigErrors::default()
    }

    /// The configuration may be right, but what it points at cannot be
    /// reached now: the hub retries the start with backoff.
    pub fn unavailable(error: PluginError) -> Self {
        ConfigErrors {
            problems: Vec::new(),
            unavailable: Some(error),
        }
    }

    /// Records one problem.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigError::new(field, message));
    }

    /// The problems recorded so far, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.problems.iter()
    }

    /// The problems recorded so far, in order.
    pub fn problems(&self) -> &[ConfigError] {
        &self.problems
    }

    /// Why the configuration could not be applied now, if that is the refusal.
    pub fn unavailable_reason(&self) -> Option<&PluginError> {
        self.unavailable.as_ref()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty() && self.unavailable.is_none()
    }

    /// Puts every field under `key` (`auth.token_env` becomes
    /// `api.auth.token_env`): for errors from a part of the configuration
    /// that sits under a key of yours, such as
    /// [`http::Client::new`](crate::http::Client::new)'s.
    pub fn within(mut self, key: &str) -> Self {
        for error in &mut self.problems {
            error.field = if error.field.is_empty() {
                key.to_owned()
            } else {
                format!("{key}.{}", error.field)
            };
        }
        self
    }

    /// `Ok(())` when empty, otherwise `Err(self)`: ends a validation function.
    ///
    /// # Errors
    /// Returns `self` when at least one problem was recorded.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<PluginError> for ConfigErrors {
    fn from(error: PluginError) -> Self {
        if error.is_retryable() {
            ConfigErrors::unavailable(error)
        } else {
            ConfigError::new("", error.message().to_owned()).into()
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            problems: vec![error],
            unavailable: None,
        }
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(problems: Vec<ConfigError>) -> Self {
        ConfigErrors {
            problems,
            unavailable: None,
        }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.problems.into_iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut texts: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        if let Some(error) = &self.unavailable {
            texts.push(format!("unavailable: {error}"));
        }
        write!(f, "{}", texts.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_puts_every_field_under_the_key() {
        let mut errors = ConfigErrors::new();
        errors.push("auth.token_env", "the environment variable `T` is not set");
        errors.push("", "cannot set up TLS");
        let fields: Vec<String> = errors.within("api").into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["api.auth.token_env", "api"]);
    }
}

//! Secrets read from environment variables, and a value type whose `Debug`
//! never shows them.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;

/// A secret value (a key, token, password or private key). Its `Debug`
/// prints `Secret(***)`; read it only where it is sent, with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value obtained at run time (a fetched access token).
    pub(crate) fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads the secret in the environment variable `var`, which the config key
/// `field` names. A missing, empty or non-UTF-8 variable is a [`ConfigError`]
/// on `field` that names the variable, never its value.
pub(crate) fn from_env(field: &str, var: &str) -> Result<Secret, ConfigError> {
    #[cfg(test)]
    if let Some(value) = test_env::get(var) {
        return Ok(Secret::new(value));
    }
    match std::env::var(var) {
        Ok(value) if value.trim().is_empty() => Err(ConfigError::new(
            field,
            format!("the environment variable `{var}` is empty"),
        )),
        Ok(value) => Ok(Secret::new(value)),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::new(
            field,
            format!("the environment variable `{var}` is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(
            field,
            format!("the environment variable `{var}` is not valid UTF-8"),
        )),
    }
}

/// Variables tests "set" without touching the process environment
/// (`std::env::set_var` is unsafe in a multi-threaded test binary).
#[cfg(test)]
pub(crate) mod test_env {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn vars() -> &'static Mutex<HashMap<String, String>> {
        static VARS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
        VARS.get_or_init(Mutex::default)
    }

    /// Makes `from_env(_, name)` return `value` (use a name unique to the test).
    pub(crate) fn set(name: &str, value: &str) {
        vars()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), value.to_owned());
    }

    pub(super) fn get(name: &str) -> Option<String> {
        vars()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_missing_variable_names_the_key_and_the_variable() {
        let err = from_env("auth.key_env", "SWITCHYARD_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert_eq!(err.field, "auth.key_env");
        assert!(
            err.message
                .contains("`SWITCHYARD_TEST_SURELY_UNSET_VAR` is not set"),
            "{}",
            err.message
        );
    }
}

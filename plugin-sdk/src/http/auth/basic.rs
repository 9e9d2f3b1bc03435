//! `kind = "basic"`: HTTP Basic authentication.

use base64::Engine;
use reqwest::header::AUTHORIZATION;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Auth, header_value, inline_or_env, required_env};
use crate::error::ConfigErrors;

/// `kind = "basic"`: `username` (or `username_env`) and `password_env`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BasicConfig {
    /// The user name.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the user name (instead of `username`).
    #[serde(default)]
    pub username_env: Option<String>,
    /// The environment variable holding the password (or API token).
    pub password_env: String,
}

impl BasicConfig {
    pub(super) fn build(&self) -> Result<Auth, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let username = inline_or_env(
            &mut errors,
            "username",
            self.username.as_ref(),
            self.username_env.as_ref(),
        );
        let password = required_env(&mut errors, "password_env", &self.password_env);
        if let Some(username) = &username
            && username.expose().contains(':')
        {
            errors.push(
                "auth.username",
                "must not contain `:` (HTTP Basic forbids it)",
            );
        }
        errors.into_result()?;
        let (Some(username), Some(password)) = (username, password) else {
            return Err(ConfigErrors::new());
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            username.expose(),
            password.expose()
        ));
        let value = header_value(
            &format!("Basic {encoded}"),
            "auth.password_env",
            &self.password_env,
        )?;
        Ok(Auth::Header {
            name: AUTHORIZATION,
            value,
        })
    }
}

//! `kind = "bearer"`: a static token as `Authorization: Bearer <token>`.

use reqwest::header::AUTHORIZATION;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Auth, header_value, required_env};
use crate::error::ConfigErrors;

/// `kind = "bearer"`: `token_env` names the environment variable that holds
/// the token.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BearerConfig {
    /// The environment variable holding the token.
    pub token_env: String,
}

impl BearerConfig {
    pub(super) fn build(&self) -> Result<Auth, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let token = required_env(&mut errors, "token_env", &self.token_env);
        errors.into_result()?;
        let token = token.ok_or_else(ConfigErrors::new)?;
        let value = header_value(
            &format!("Bearer {}", token.expose()),
            "auth.token_env",
            &self.token_env,
        )?;
        Ok(Auth::Header {
            name: AUTHORIZATION,
            value,
        })
    }
}

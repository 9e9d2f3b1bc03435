//! `kind = "oauth2_refresh_token"`: the OAuth2 refresh token grant
//! (RFC 6749 §6), as Google and Microsoft APIs use it. When the provider
//! rotates the refresh token, the new one is kept (in memory: the process
//! cannot write back to its environment, so log in again after a restart if
//! your provider invalidates the old one).

use std::sync::Mutex;

use schemars::JsonSchema;
use serde::Deserialize;

use super::token_cache::FetchedToken;
use super::token_endpoint::request_token;
use super::{parse_url, required_env};
use crate::error::ConfigErrors;
use crate::http::error::HttpError;
use crate::http::secret::Secret;

/// `kind = "oauth2_refresh_token"`: POSTs `grant_type=refresh_token` with
/// the refresh token, `client_id`, `client_secret` (when given) and `scope`
/// (space-separated, when given).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RefreshTokenConfig {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The environment variable holding the client secret, for confidential clients.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The environment variable holding the refresh token.
    pub refresh_token_env: String,
    /// The scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Exchanges the refresh token for access tokens.
pub(crate) struct RefreshToken {
    token_url: reqwest::Url,
    client_id: String,
    client_secret: Option<Secret>,
    /// Replaced when the provider rotates it. Only the token cache calls
    /// `fetch`, one at a time, so this lock is never contended.
    refresh_token: Mutex<Secret>,
    scope: Option<String>,
}

impl RefreshTokenConfig {
    pub(super) fn build(&self) -> Result<RefreshToken, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let token_url = parse_url("auth.token_url", &self.token_url)
            .map_err(|err| errors.problems.push(err))
            .ok();
        let client_secret = self
            .client_secret_env
            .as_ref()
            .and_then(|var| required_env(&mut errors, "client_secret_env", var));
        let refresh_token = required_env(&mut errors, "refresh_token_env", &self.refresh_token_env);
        errors.into_result()?;
        let (Some(token_url), Some(refresh_token)) = (token_url, refresh_token) else {
            return Err(ConfigErrors::new());
        };
        Ok(RefreshToken {
            token_url,
            client_id: self.client_id.clone(),
            client_secret,
            refresh_token: Mutex::new(refresh_token),
            scope: (!self.scopes.is_empty()).then(|| self.scopes.join(" ")),
        })
    }
}

impl RefreshToken {
    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<FetchedToken, HttpError> {
        let refresh_token = self.current_refresh_token();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.client_id.as_str()),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let answer = request_token(http, &self.token_url, &form).await?;
        if let Some(rotated) = answer.refresh_token
            && rotated != refresh_token
        {
            tracing::info!(
                "The provider rotated the refresh token; using the new one from now on."
            );
            *self
                .refresh_token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = rotated;
        }
        Ok(FetchedToken {
            value: answer.access_token,
            lifetime: answer.expires_in,
        })
    }

    fn current_refresh_token(&self) -> Secret {
        self.refresh_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

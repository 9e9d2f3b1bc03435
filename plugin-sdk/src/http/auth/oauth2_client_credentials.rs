//! `kind = "oauth2_client_credentials"`: the OAuth2 client credentials
//! grant (RFC 6749 §4.4), for machine-to-machine APIs.

use schemars::JsonSchema;
use serde::Deserialize;

use super::token_cache::FetchedToken;
use super::token_endpoint::request_token;
use super::{inline_or_env, parse_url, required_env};
use crate::error::ConfigErrors;
use crate::http::error::HttpError;
use crate::http::secret::Secret;

/// `kind = "oauth2_client_credentials"`: POSTs `grant_type=client_credentials`
/// with `client_id` and `client_secret` in the form body, plus `scope`
/// (space-separated) and `audience` when given.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientCredentialsConfig {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The environment variable holding the client id (instead of `client_id`).
    #[serde(default)]
    pub client_id_env: Option<String>,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
    /// The scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The `audience` parameter some providers (Auth0) require.
    #[serde(default)]
    pub audience: Option<String>,
}

/// Fetches tokens with the client's credentials.
pub(crate) struct ClientCredentials {
    token_url: reqwest::Url,
    client_id: Secret,
    client_secret: Secret,
    scope: Option<String>,
    audience: Option<String>,
}

impl ClientCredentialsConfig {
    pub(super) fn build(&self) -> Result<ClientCredentials, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let token_url = parse_url("auth.token_url", &self.token_url)
            .map_err(|err| errors.problems.push(err))
            .ok();
        let client_id = inline_or_env(
            &mut errors,
            "client_id",
            self.client_id.as_ref(),
            self.client_id_env.as_ref(),
        );
        let client_secret = required_env(&mut errors, "client_secret_env", &self.client_secret_env);
        errors.into_result()?;
        let (Some(token_url), Some(client_id), Some(client_secret)) =
            (token_url, client_id, client_secret)
        else {
            return Err(ConfigErrors::new());
        };
        Ok(ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope: (!self.scopes.is_empty()).then(|| self.scopes.join(" ")),
            audience: self.audience.clone(),
        })
    }
}

impl ClientCredentials {
    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<FetchedToken, HttpError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.expose()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        let answer = request_token(http, &self.token_url, &form).await?;
        Ok(FetchedToken {
            value: answer.access_token,
            lifetime: answer.expires_in,
        })
    }
}

//! `kind = "service_account"`: the RFC 7523 JWT-bearer grant. A JWT
//! assertion signed RS256 with the account's private key is exchanged at
//! `token_url` for an access token (how Google service accounts work).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::parse_url;
use super::signing::{Signer, unix_now, validate_lifetime};
use super::token_cache::FetchedToken;
use super::token_endpoint::request_token;
use crate::error::ConfigErrors;
use crate::http::duration;
use crate::http::error::HttpError;

/// The grant type of RFC 7523 §2.1.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `kind = "service_account"`: the assertion carries `iss` (the account's
/// email), `sub` (optional: a user to act for), `aud` (default
/// `token_url`), `scope` (the scopes, space-separated, as Google expects),
/// `iat` and `exp`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceAccountConfig {
    /// The token endpoint.
    pub token_url: String,
    /// The `iss` claim: the service account (for Google, its email).
    pub issuer: String,
    /// The `sub` claim: a user to impersonate, if any.
    #[serde(default)]
    pub subject: Option<String>,
    /// The `aud` claim; defaults to `token_url`.
    #[serde(default)]
    pub audience: Option<String>,
    /// The scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The file holding the PEM private key.
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The environment variable holding the PEM private key.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// The `kid` header (for Google, the key's `private_key_id`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// How long each assertion is valid.
    #[serde(
        default = "default_lifetime",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub lifetime: Duration,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(300)
}

/// Signs an assertion and exchanges it whenever the cache asks.
pub(crate) struct ServiceAccount {
    signer: Signer,
    token_url: reqwest::Url,
    issuer: String,
    subject: Option<String>,
    audience: String,
    scope: Option<String>,
    lifetime: Duration,
}

impl ServiceAccountConfig {
    pub(super) fn build(&self) -> Result<ServiceAccount, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        validate_lifetime(&mut errors, self.lifetime);
        let token_url = parse_url("auth.token_url", &self.token_url)
            .map_err(|err| errors.problems.push(err))
            .ok();
        let signer = Signer::rs256(
            &mut errors,
            self.private_key_env.as_ref(),
            self.private_key_file.as_ref(),
            self.key_id.as_ref(),
        );
        errors.into_result()?;
        let (Some(token_url), Some(signer)) = (token_url, signer) else {
            return Err(ConfigErrors::new());
        };
        Ok(ServiceAccount {
            signer,
            token_url,
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            audience: self
                .audience
                .clone()
                .unwrap_or_else(|| self.token_url.clone()),
            scope: (!self.scopes.is_empty()).then(|| self.scopes.join(" ")),
            lifetime: self.lifetime,
        })
    }
}

impl ServiceAccount {
    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<FetchedToken, HttpError> {
        let iat = unix_now();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "iat": iat,
            "exp": iat + self.lifetime.as_secs(),
        });
        if let Some(subject) = &self.subject {
            claims["sub"] = json!(subject);
        }
        if let Some(scope) = &self.scope {
            claims["scope"] = json!(scope);
        }
        let assertion = self.signer.sign(&claims)?;
        let answer = request_token(
            http,
            &self.token_url,
            &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
        )
        .await?;
        Ok(FetchedToken {
            value: answer.access_token,
            lifetime: answer.expires_in,
        })
    }
}

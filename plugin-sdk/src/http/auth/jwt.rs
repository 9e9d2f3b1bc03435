//! `kind = "jwt"`: a self-signed JWT (HS256 or RS256) sent as
//! `Authorization: Bearer <jwt>`, renewed before it expires.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::signing::{Signer, unix_now, validate_lifetime};
use super::token_cache::FetchedToken;
use crate::error::ConfigErrors;
use crate::http::duration;
use crate::http::error::HttpError;
use crate::http::secret::Secret;

/// The signature algorithm of a self-signed JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (`secret_env`).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256 and a private key (`private_key_env` or
    /// `private_key_file`, PEM).
    RS256,
}

/// `kind = "jwt"`: the claims `iss`, `aud`, `sub` (optional), `iat` and
/// `exp` (`iat` + `lifetime`), signed with `algorithm`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// `"HS256"` or `"RS256"`.
    pub algorithm: JwtAlgorithm,
    /// HS256: the environment variable holding the shared secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// RS256: the environment variable holding the PEM private key.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// RS256: the file holding the PEM private key.
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// The `sub` claim, if any.
    #[serde(default)]
    pub subject: Option<String>,
    /// How long each token is valid (`exp` - `iat`).
    #[serde(
        default = "default_lifetime",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "String")]
    pub lifetime: Duration,
    /// The `kid` header, if the verifier needs it.
    #[serde(default)]
    pub key_id: Option<String>,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(300)
}

/// Signs a fresh JWT whenever the cache asks.
pub(crate) struct SelfSignedJwt {
    signer: Signer,
    issuer: String,
    audience: String,
    subject: Option<String>,
    lifetime: Duration,
}

impl JwtConfig {
    pub(super) fn build(&self) -> Result<SelfSignedJwt, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        validate_lifetime(&mut errors, self.lifetime);
        let signer = match self.algorithm {
            JwtAlgorithm::HS256 => {
                if self.private_key_env.is_some() || self.private_key_file.is_some() {
                    errors.push(
                        "auth.algorithm",
                        "HS256 takes `secret_env`; `private_key_env` and `private_key_file` are for RS256",
                    );
                }
                match &self.secret_env {
                    Some(var) => Signer::hs256(&mut errors, var, self.key_id.as_ref()),
                    None => {
                        errors.push("auth.secret_env", "is required for HS256");
                        None
                    }
                }
            }
            JwtAlgorithm::RS256 => {
                if self.secret_env.is_some() {
                    errors.push("auth.secret_env", "is for HS256; RS256 takes a private key");
                }
                Signer::rs256(
                    &mut errors,
                    self.private_key_env.as_ref(),
                    self.private_key_file.as_ref(),
                    self.key_id.as_ref(),
                )
            }
        };
        errors.into_result()?;
        let signer = signer.ok_or_else(ConfigErrors::new)?;
        Ok(SelfSignedJwt {
            signer,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            subject: self.subject.clone(),
            lifetime: self.lifetime,
        })
    }
}

impl SelfSignedJwt {
    pub(super) fn sign(&self) -> Result<FetchedToken, HttpError> {
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
        Ok(FetchedToken {
            value: Secret::new(self.signer.sign(&claims)?),
            lifetime: Some(self.lifetime),
        })
    }
}

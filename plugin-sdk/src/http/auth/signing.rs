//! Signing JWTs for the `jwt` and `service_account` strategies, with the
//! `jsonwebtoken` crate (aws-lc-rs backend).

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::required_env;
use crate::error::ConfigErrors;
use crate::http::error::{HttpError, HttpErrorKind};

/// A key and the JWT header to sign with. No `Debug`: it holds the key.
pub(super) struct Signer {
    key: EncodingKey,
    header: Header,
}

impl Signer {
    /// HS256 with the secret in the environment variable `secret_env`.
    pub(super) fn hs256(
        errors: &mut ConfigErrors,
        secret_env: &str,
        key_id: Option<&String>,
    ) -> Option<Signer> {
        let secret = required_env(errors, "secret_env", secret_env)?;
        match EncodingKey::from_secret(secret.expose().as_bytes()) {
            Ok(key) => Some(Signer::with(key, Algorithm::HS256, key_id)),
            Err(_) => {
                errors.push(
                    "auth.secret_env",
                    format!("`{secret_env}` is not a usable HMAC key"),
                );
                None
            }
        }
    }

    /// RS256 with a PEM private key (PKCS#1 or PKCS#8) from the environment
    /// variable `private_key_env` or the file `private_key_file`: exactly one.
    pub(super) fn rs256(
        errors: &mut ConfigErrors,
        private_key_env: Option<&String>,
        private_key_file: Option<&String>,
        key_id: Option<&String>,
    ) -> Option<Signer> {
        let (field, pem) = match (private_key_env, private_key_file) {
            (Some(var), None) => (
                "auth.private_key_env",
                required_env(errors, "private_key_env", var)?
                    .expose()
                    .as_bytes()
                    .to_vec(),
            ),
            (None, Some(path)) => match std::fs::read(path) {
                Ok(pem) => ("auth.private_key_file", pem),
                Err(err) => {
                    errors.push(
                        "auth.private_key_file",
                        format!("cannot read `{path}`: {err}"),
                    );
                    return None;
                }
            },
            (Some(_), Some(_)) => {
                errors.push(
                    "auth.private_key_env",
                    "give either `private_key_env` or `private_key_file`, not both",
                );
                return None;
            }
            (None, None) => {
                errors.push(
                    "auth.private_key_file",
                    "is required for RS256 (or `private_key_env`)",
                );
                return None;
            }
        };
        match EncodingKey::from_rsa_pem(&pem) {
            Ok(key) => Some(Signer::with(key, Algorithm::RS256, key_id)),
            Err(_) => {
                errors.push(field, "is not an RSA private key in PEM form");
                None
            }
        }
    }

    fn with(key: EncodingKey, algorithm: Algorithm, key_id: Option<&String>) -> Signer {
        let mut header = Header::new(algorithm);
        header.kid = key_id.cloned();
        Signer { key, header }
    }

    /// Signs `claims` into a compact JWT.
    pub(super) fn sign(&self, claims: &serde_json::Value) -> Result<String, HttpError> {
        jsonwebtoken::encode(&self.header, claims, &self.key).map_err(|err| {
            HttpError::new(
                HttpErrorKind::Auth,
                format!("could not sign a JWT: {}", err.kind_name()),
            )
        })
    }
}

/// Seconds since the unix epoch, for `iat` and `exp`.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// A JWT lifetime from config: at least one second.
pub(super) fn validate_lifetime(errors: &mut ConfigErrors, lifetime: Duration) {
    if lifetime < Duration::from_secs(1) {
        errors.push("auth.lifetime", "must be at least 1s");
    }
}

/// The name of a jsonwebtoken error's kind, without any key material.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

//! Outbound authentication: the `[auth]` table ([`AuthConfig`], one variant
//! per strategy, one file each) and the runtime that puts credentials on
//! each request ([`Auth`]). Token-based strategies share [`TokenCache`].

mod api_key;
mod basic;
mod bearer;
mod jwt;
mod oauth2_client_credentials;
mod oauth2_refresh_token;
mod service_account;
mod signing;
mod token_cache;
mod token_endpoint;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

pub use api_key::ApiKeyConfig;
pub use basic::BasicConfig;
pub use bearer::BearerConfig;
pub use jwt::{JwtAlgorithm, JwtConfig};
pub use oauth2_client_credentials::ClientCredentialsConfig;
pub use oauth2_refresh_token::RefreshTokenConfig;
pub use service_account::ServiceAccountConfig;
pub(crate) use token_cache::TokenCache;

use super::error::{HttpError, HttpErrorKind};
use super::secret::Secret;
use crate::error::{ConfigError, ConfigErrors};

/// The `[auth]` table: `kind` picks the strategy, the other keys are that
/// strategy's. Secrets are never written here: each `*_env` key names the
/// environment variable that holds one.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum AuthConfig {
    /// A static key in a header or a query parameter.
    #[serde(rename = "api_key")]
    ApiKey(ApiKeyConfig),
    /// A static token as `Authorization: Bearer <token>`.
    #[serde(rename = "bearer")]
    Bearer(BearerConfig),
    /// HTTP Basic: `Authorization: Basic base64(user:password)`.
    #[serde(rename = "basic")]
    Basic(BasicConfig),
    /// OAuth2 client credentials grant; the access token is cached until
    /// shortly before it expires.
    #[serde(rename = "oauth2_client_credentials")]
    Oauth2ClientCredentials(ClientCredentialsConfig),
    /// OAuth2 refresh token grant; a rotated refresh token is kept.
    #[serde(rename = "oauth2_refresh_token")]
    Oauth2RefreshToken(RefreshTokenConfig),
    /// A self-signed JWT (HS256 or RS256) sent as a bearer token.
    #[serde(rename = "jwt")]
    Jwt(JwtConfig),
    /// RFC 7523 JWT-bearer grant: a signed assertion exchanged for an
    /// access token (Google-style service accounts).
    #[serde(rename = "service_account")]
    ServiceAccount(ServiceAccountConfig),
}

impl AuthConfig {
    /// The strategy's name, as written in `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthConfig::ApiKey(_) => "api_key",
            AuthConfig::Bearer(_) => "bearer",
            AuthConfig::Basic(_) => "basic",
            AuthConfig::Oauth2ClientCredentials(_) => "oauth2_client_credentials",
            AuthConfig::Oauth2RefreshToken(_) => "oauth2_refresh_token",
            AuthConfig::Jwt(_) => "jwt",
            AuthConfig::ServiceAccount(_) => "service_account",
        }
    }
}

/// How one client authenticates, with its secrets loaded.
pub(crate) enum Auth {
    None,
    /// A fixed header (api_key in a header, bearer, basic); the value is
    /// marked sensitive.
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    /// A fixed query parameter (api_key in the query).
    Query {
        name: String,
        value: Secret,
    },
    /// A token fetched or signed at run time, cached.
    Token(Box<TokenCache>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Header { name, .. } => write!(f, "Header({name}: ***)"),
            Auth::Query { name, .. } => write!(f, "Query({name}=***)"),
            Auth::Token(_) => f.write_str("Token(***)"),
        }
    }
}

impl Auth {
    /// Loads the secrets `config` names and validates it; errors name keys
    /// under `auth.`.
    pub(crate) fn new(config: Option<&AuthConfig>) -> Result<Auth, ConfigErrors> {
        let Some(config) = config else {
            return Ok(Auth::None);
        };
        match config {
            AuthConfig::ApiKey(config) => config.build(),
            AuthConfig::Bearer(config) => config.build(),
            AuthConfig::Basic(config) => config.build(),
            AuthConfig::Oauth2ClientCredentials(config) => {
                Ok(Auth::Token(Box::new(TokenCache::new(config.build()?))))
            }
            AuthConfig::Oauth2RefreshToken(config) => {
                Ok(Auth::Token(Box::new(TokenCache::new(config.build()?))))
            }
            AuthConfig::Jwt(config) => Ok(Auth::Token(Box::new(TokenCache::new(config.build()?)))),
            AuthConfig::ServiceAccount(config) => {
                Ok(Auth::Token(Box::new(TokenCache::new(config.build()?))))
            }
        }
    }

    /// Puts the credential on `request`; returns the token used, when the
    /// strategy is token-based, so a 401 can invalidate exactly that one.
    pub(crate) async fn apply(
        &self,
        request: &mut reqwest::Request,
        http: &reqwest::Client,
    ) -> Result<Option<Secret>, HttpError> {
        match self {
            Auth::None => Ok(None),
            Auth::Header { name, value } => {
                request.headers_mut().insert(name.clone(), value.clone());
                Ok(None)
            }
            Auth::Query { name, value } => {
                request
                    .url_mut()
                    .query_pairs_mut()
                    .append_pair(name, value.expose());
                Ok(None)
            }
            Auth::Token(cache) => {
                let token = cache.token(http).await?;
                let value = bearer_value(&token).map_err(|()| {
                    HttpError::new(
                        HttpErrorKind::Auth,
                        "the access token has characters an HTTP header cannot carry",
                    )
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
                Ok(Some(token))
            }
        }
    }

    /// After a 401 answered a request made with `used`: forget that token
    /// so the next call gets a fresh one. True when the strategy has a token
    /// to refresh (a retry may help).
    pub(crate) async fn invalidate(&self, used: Option<&Secret>) -> bool {
        match (self, used) {
            (Auth::Token(cache), Some(used)) => {
                cache.invalidate(used).await;
                true
            }
            _ => false,
        }
    }
}

/// `Bearer <token>` as a sensitive header value.
fn bearer_value(token: &Secret) -> Result<HeaderValue, ()> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| ())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A sensitive header value from a configured secret; the error names the
/// key and the variable, never the value.
fn header_value(text: &str, field: &str, var: &str) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        ConfigError::new(
            field,
            format!("the value of `{var}` has characters an HTTP header cannot carry"),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Parses a URL from config, naming the key when it is not one.
fn parse_url(field: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    reqwest::Url::parse(text)
        .map_err(|err| ConfigError::new(field, format!("`{text}` is not a URL: {err}")))
}

/// A value given either inline (`key`) or through an environment variable
/// (`key_env`): exactly one of them.
fn inline_or_env(
    errors: &mut ConfigErrors,
    key: &str,
    inline: Option<&String>,
    env: Option<&String>,
) -> Option<Secret> {
    match (inline, env) {
        (Some(value), None) => Some(Secret::new(value.as_str())),
        (None, Some(var)) => {
            let field = format!("auth.{key}_env");
            match super::secret::from_env(&field, var) {
                Ok(value) => Some(value),
                Err(err) => {
                    errors.problems.push(err);
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            errors.push(
                format!("auth.{key}"),
                format!("give either `{key}` or `{key}_env`, not both"),
            );
            None
        }
        (None, None) => {
            errors.push(
                format!("auth.{key}"),
                format!("is required (or `{key}_env`)"),
            );
            None
        }
    }
}

/// A required secret from the environment variable `var` named by `auth.<key>`.
fn required_env(errors: &mut ConfigErrors, key: &str, var: &str) -> Option<Secret> {
    match super::secret::from_env(&format!("auth.{key}"), var) {
        Ok(value) => Some(value),
        Err(err) => {
            errors.problems.push(err);
            None
        }
    }
}

#[cfg(test)]
mod tests;

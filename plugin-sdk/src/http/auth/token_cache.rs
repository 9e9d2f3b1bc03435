//! The access-token cache shared by the token-based strategies: one token
//! at a time, refreshed shortly before it expires, with at most one refresh
//! in flight however many calls wait for it.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::jwt::SelfSignedJwt;
use super::oauth2_client_credentials::ClientCredentials;
use super::oauth2_refresh_token::RefreshToken;
use super::service_account::ServiceAccount;
use crate::http::error::HttpError;
use crate::http::secret::Secret;

/// The longest margin before expiry at which a token is renewed (the
/// providers' usual advice); shorter tokens are renewed at half-life.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Where tokens come from.
pub(crate) enum TokenSource {
    ClientCredentials(ClientCredentials),
    RefreshToken(RefreshToken),
    Jwt(SelfSignedJwt),
    ServiceAccount(ServiceAccount),
}

/// A token just obtained, and how long it is valid (unknown: until a 401).
pub(crate) struct FetchedToken {
    pub(crate) value: Secret,
    pub(crate) lifetime: Option<Duration>,
}

impl TokenSource {
    async fn fetch(&self, http: &reqwest::Client) -> Result<FetchedToken, HttpError> {
        match self {
            TokenSource::ClientCredentials(source) => source.fetch(http).await,
            TokenSource::RefreshToken(source) => source.fetch(http).await,
            TokenSource::Jwt(source) => source.sign(),
            TokenSource::ServiceAccount(source) => source.fetch(http).await,
        }
    }
}

struct CachedToken {
    value: Secret,
    /// When to renew it; `None` when the server gave no lifetime.
    renew_at: Option<Instant>,
}

/// The cached token of one client (and its clones).
pub(crate) struct TokenCache {
    source: TokenSource,
    /// Held across the fetch: that is the single flight. Calls that find
    /// the token stale queue on the lock and, once the first has fetched,
    /// find a fresh one.
    current: Mutex<Option<CachedToken>>,
}

impl TokenCache {
    pub(crate) fn new(source: impl Into<TokenSource>) -> Self {
        TokenCache {
            source: source.into(),
            current: Mutex::new(None),
        }
    }

    /// A valid token: the cached one, or a new one fetched now.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Secret, HttpError> {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref()
            && cached.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(cached.value.clone());
        }
        let fetched = self.source.fetch(http).await?;
        let renew_at = fetched
            .lifetime
            .map(|lifetime| Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime)));
        tracing::debug!(
            lifetime_s = fetched.lifetime.map(|lifetime| lifetime.as_secs()),
            "Obtained a new access token."
        );
        *current = Some(CachedToken {
            value: fetched.value.clone(),
            renew_at,
        });
        Ok(fetched.value)
    }

    /// Forgets `used` if it is still the cached token (a 401 answered it);
    /// calls that already refreshed it leave the new one alone.
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|cached| cached.value == *used) {
            tracing::debug!("The upstream refused the access token; it will be renewed.");
            *current = None;
        }
    }
}

/// How long before expiry a token is renewed.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 2).min(MAX_REFRESH_MARGIN)
}

impl From<ClientCredentials> for TokenSource {
    fn from(source: ClientCredentials) -> Self {
        TokenSource::ClientCredentials(source)
    }
}

impl From<RefreshToken> for TokenSource {
    fn from(source: RefreshToken) -> Self {
        TokenSource::RefreshToken(source)
    }
}

impl From<SelfSignedJwt> for TokenSource {
    fn from(source: SelfSignedJwt) -> Self {
        TokenSource::Jwt(source)
    }
}

impl From<ServiceAccount> for TokenSource {
    fn from(source: ServiceAccount) -> Self {
        TokenSource::ServiceAccount(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_before_expiry() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }
}

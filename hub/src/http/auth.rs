//! The admin API's bearer token (`[hub] admin_token_env`): the middleware
//! in front of every [`super::routes::Access::Admin`] route.
//!
//! The token is kept only as its SHA-256 digest, and a request's token is
//! hashed and compared with it in constant time (`subtle`), so neither the
//! comparison's timing nor the token's length leaks. Neither the token nor
//! the request's `Authorization` header is ever logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::{ErrorCode, error_response};
use crate::config::Secret;

/// The admin token, as its digest. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

impl AdminToken {
    /// Keeps the digest of `secret`.
    pub fn new(secret: &Secret) -> Self {
        AdminToken(Arc::new(Sha256::digest(secret.expose()).into()))
    }

    /// Whether `presented` is the token, in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.0[..]).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(redacted)")
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    NotBearer,
    Wrong,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "this route needs the admin token: send `Authorization: Bearer <token>`"
            }
            Refusal::NotBearer => {
                "the Authorization header must be `Bearer <token>` (the admin token)"
            }
            Refusal::Wrong => "the admin token is wrong",
        }
    }
}

/// Checks `headers`' `Authorization: Bearer TOKEN` against `token`. The
/// scheme is case-insensitive (RFC 9110 section 11.1).
fn check(token: &AdminToken, headers: &HeaderMap) -> Result<(), Refusal> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Refusal::Missing)?
        .as_bytes();
    let presented = match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => return Err(Refusal::NotBearer),
    };
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

/// The middleware: the request goes on with the right token, else 401 with
/// the JSON error shape and `WWW-Authenticate: Bearer`.
pub async fn require_token(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    match check(&token, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // The method and path only: never the header's value.
            tracing::info!(method = %request.method(), path = request.uri().path(), reason = ?refusal, "Admin request refused: no valid admin token.");
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                refusal.message(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("x")),
            );
        }
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = AdminToken::new(&Secret::new("s3cret"));
        assert_eq!(check(&token, &headers(Some("Bearer s3cret"))), Ok(()));
        assert_eq!(check(&token, &headers(Some("bearer  s3cret "))), Ok(()));
        assert_eq!(check(&token, &headers(None)), Err(Refusal::Missing));
        assert_eq!(
            check(&token, &headers(Some("Basic czNjcmV0"))),
            Err(Refusal::NotBearer)
        );
        assert_eq!(
            check(&token, &headers(Some("Bearer"))),
            Err(Refusal::NotBearer)
        );
        assert_eq!(
            check(&token, &headers(Some("Bearer s3cre"))),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            check(&token, &headers(Some("Bearer s3crett"))),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            check(&token, &headers(Some("Bearer "))),
            Err(Refusal::Wrong)
        );
        assert_eq!(format!("{token:?}"), "AdminToken(redacted)");
    }
}

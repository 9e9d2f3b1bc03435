//! Authenticating one webhook request: a pure function of the configured
//! scheme, the secret, the request (headers, query, raw body) and the
//! current time. No I/O, so every scheme is tested against published test
//! vectors.
//!
//! Every comparison of a secret or a signature is constant time: HMACs are
//! checked with `hmac`'s `verify_slice`, API keys by comparing their SHA-256
//! digests with `subtle`. Signatures are computed over the raw body bytes,
//! never a re-serialisation.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::{Secret, WebhookAuth, WebhookConfig};

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the key for `api_key`.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The query parameter carrying the key for `api_key`.
pub const API_KEY_PARAMETER: &str = "apiKey";
/// GitHub's signature header.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// GitHub's delivery GUID header (the deduplication key).
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// Stripe's signature header.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// Standard Webhooks' message id header (the deduplication key).
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks' timestamp header.
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks' signature list header.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// The header a caller of an `api_key` or `none` webhook may send to make
/// retries of one delivery idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Why a request was not authenticated (all of these answer 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header (or the API key) is absent.
    #[error("the {0} is missing")]
    Missing(&'static str),
    /// A header is present but not in the scheme's format.
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The API key does not match.
    #[error("the API key is wrong")]
    WrongKey,
    /// No signature matches the body.
    #[error("no signature matches the body")]
    BadSignature,
    /// The signed timestamp is outside the tolerance.
    #[error(
        "the signed timestamp is {seconds}s {direction} the hub's clock (tolerance {tolerance}s)"
    )]
    Timestamp {
        /// How far off it is, in whole seconds.
        seconds: u64,
        /// `behind` (a replay or a slow retry) or `ahead of` (clock skew).
        direction: &'static str,
        /// The configured tolerance in seconds.
        tolerance: u64,
    },
}

/// What a verified request tells the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's id for this delivery, stable across its retries
    /// (`webhook-id`, `X-GitHub-Delivery`, the Stripe event id, or an
    /// `Idempotency-Key`), or `None` when the request carries none.
    pub delivery_id: Option<String>,
}

/// One request as the verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The headers, names in any case.
    pub headers: &'a [(String, String)],
    /// The raw query string without `?`.
    pub query: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Checks requests for one plugin's webhook.
#[derive(Debug, Clone)]
pub struct Verifier {
    auth: WebhookAuth,
    secret: Option<Secret>,
    tolerance_seconds: u64,
}

impl Verifier {
    /// A verifier for a loaded `[plugins.NAME.webhook]` section.
    pub fn new(config: &WebhookConfig) -> Self {
        Verifier {
            auth: config.auth,
            secret: config.secret.clone(),
            tolerance_seconds: config.tolerance.as_secs(),
        }
    }

    /// The scheme this verifier checks.
    pub fn auth(&self) -> WebhookAuth {
        self.auth
    }

    /// Authenticates `request` at `now` (unix seconds).
    pub fn verify(&self, request: &Request<'_>, now: i64) -> Result<Verified, VerifyError> {
        let key = self.secret.as_ref().map_or(&[][..], Secret::expose);
        match self.auth {
            WebhookAuth::None => Ok(Verified {
                delivery_id: request.header(IDEMPOTENCY_KEY_HEADER).map(str::to_owned),
            }),
            WebhookAuth::ApiKey => verify_api_key(key, request),
            WebhookAuth::Github => verify_github(key, request),
            WebhookAuth::Stripe => verify_stripe(key, request, now, self.tolerance_seconds),
            WebhookAuth::StandardWebhooks => {
                verify_standard(key, request, now, self.tolerance_seconds)
            }
        }
    }
}

/// An HMAC-SHA256 keyed with `key` (any length is valid for HMAC).
fn hmac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of every length; this arm is unreachable, and
        // an empty key still yields a MAC no attacker-free request matches.
        Err(_) => HmacSha256::new(&Default::default()),
    }
}

/// Whether any of `candidates` is the HMAC of `message` under `key`,
/// compared in constant time.
fn any_signature_matches<'a>(
    key: &[u8],
    message: &[&[u8]],
    candidates: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    let mut mac = hmac(key);
    for part in message {
        mac.update(part);
    }
    // Check every candidate (no early exit), so timing does not reveal
    // which one matched.
    candidates.into_iter().fold(false, |matched, candidate| {
        mac.clone().verify_slice(candidate).is_ok() | matched
    })
}

/// `api_key`: the `X-API-Key` header, else the `apiKey` query parameter.
fn verify_api_key(key: &[u8], request: &Request<'_>) -> Result<Verified, VerifyError> {
    let given = match request.header(API_KEY_HEADER) {
        Some(value) => value.as_bytes().to_vec(),
        None => query_parameter(request.query, API_KEY_PARAMETER).ok_or(VerifyError::Missing(
            "API key (X-API-Key header or apiKey parameter)",
        ))?,
    };
    // Comparing fixed-size digests hides the key's length too.
    let given = Sha256::digest(&given);
    let expected = Sha256::digest(key);
    if bool::from(given[..].ct_eq(&expected[..])) && !key.is_empty() {
        Ok(Verified {
            delivery_id: request.header(IDEMPOTENCY_KEY_HEADER).map(str::to_owned),
        })
    } else {
        Err(VerifyError::WrongKey)
    }
}

/// `github`: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
fn verify_github(key: &[u8], request: &Request<'_>) -> Result<Verified, VerifyError> {
    let header = request
        .header(GITHUB_SIGNATURE_HEADER)
        .ok_or(VerifyError::Missing("X-Hub-Signature-256 header"))?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed {
            header: "X-Hub-Signature-256",
            reason: "expected sha256=<hex>",
        })?;
    let signature = hex::decode(hex_digest).map_err(|_| VerifyError::Malformed {
        header: "X-Hub-Signature-256",
        reason: "the digest is not hex",
    })?;
    if !any_signature_matches(key, &[request.body], [signature.as_slice()]) {
        return Err(VerifyError::BadSignature);
    }
    Ok(Verified {
        delivery_id: request
            .header(GITHUB_DELIVERY_HEADER)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
    })
}

/// `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over
/// `"{t}.{body}"`; the delivery id is the event's `id` from the body.
fn verify_stripe(
    key: &[u8],
    request: &Request<'_>,
    now: i64,
    tolerance: u64,
) -> Result<Verified, VerifyError> {
    const HEADER: &str = "Stripe-Signature";
    let header = request
        .header(STRIPE_SIGNATURE_HEADER)
        .ok_or(VerifyError::Missing("Stripe-Signature header"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((name, value)) = item.trim().split_once('=') else {
            return Err(VerifyError::Malformed {
                header: HEADER,
                reason: "expected comma-separated key=value items",
            });
        };
        match name {
            "t" if timestamp.is_some() => {
                return Err(VerifyError::Malformed {
                    header: HEADER,
                    reason: "the timestamp t appears twice",
                });
            }
            "t" => timestamp = Some(value),
            // Undecodable candidates cannot match; keep looking at the rest.
            "v1" => signatures.extend(hex::decode(value).ok()),
            // v0 (test mode) and future schemes are ignored, as Stripe's
            // libraries do.
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(VerifyError::Malformed {
        header: HEADER,
        reason: "no timestamp t",
    })?;
    let timestamp = parse_unix_seconds(timestamp_text).ok_or(VerifyError::Malformed {
        header: HEADER,
        reason: "the timestamp t is not unix seconds",
    })?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed {
            header: HEADER,
            reason: "no v1 signature",
        });
    }
    let matched = any_signature_matches(
        key,
        &[timestamp_text.as_bytes(), b".", request.body],
        signatures.iter().map(Vec::as_slice),
    );
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    check_timestamp(timestamp, now, tolerance)?;
    Ok(Verified {
        delivery_id: stripe_event_id(request.body),
    })
}

/// The `id` of a Stripe event body (`evt_…`), Stripe's documented
/// deduplication key.
fn stripe_event_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        id: Option<String>,
    }
    serde_json::from_slice::<Event>(body)
        .ok()
        .and_then(|event| event.id)
        .filter(|id| !id.is_empty())
}

/// `standard_webhooks`: `webhook-signature: v1,<base64> [v1,<base64> …]`
/// over `"{webhook-id}.{webhook-timestamp}.{body}"`. The Svix names
/// (`svix-id`, …) are accepted when the standard ones are absent.
fn verify_standard(
    key: &[u8],
    request: &Request<'_>,
    now: i64,
    tolerance: u64,
) -> Result<Verified, VerifyError> {
    let header =
        |standard: &str, svix: &str| request.header(standard).or_else(|| request.header(svix));
    let id =
        header(STANDARD_ID_HEADER, "svix-id").ok_or(VerifyError::Missing("webhook-id header"))?;
    let timestamp_text = header(STANDARD_TIMESTAMP_HEADER, "svix-timestamp")
        .ok_or(VerifyError::Missing("webhook-timestamp header"))?;
    let signature_list = header(STANDARD_SIGNATURE_HEADER, "svix-signature")
        .ok_or(VerifyError::Missing("webhook-signature header"))?;
    if id.is_empty() || id.contains('.') {
        return Err(VerifyError::Malformed {
            header: "webhook-id",
            reason: "it must be non-empty and contain no `.`",
        });
    }
    let timestamp = parse_unix_seconds(timestamp_text).ok_or(VerifyError::Malformed {
        header: "webhook-timestamp",
        reason: "expected unix seconds",
    })?;
    let signatures: Vec<Vec<u8>> = signature_list
        .split(' ')
        .filter_map(|item| item.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::Malformed {
            header: "webhook-signature",
            reason: "no v1,<base64> signature",
        });
    }
    let matched = any_signature_matches(
        key,
        &[
            id.as_bytes(),
            b".",
            timestamp_text.as_bytes(),
            b".",
            request.body,
        ],
        signatures.iter().map(Vec::as_slice),
    );
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    check_timestamp(timestamp, now, tolerance)?;
    Ok(Verified {
        delivery_id: Some(id.to_owned()),
    })
}

/// Decimal unix seconds (ASCII digits only: no sign, no spaces).
fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Refuses timestamps more than `tolerance` seconds from `now`, either way.
fn check_timestamp(timestamp: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
    let offset = i128::from(now) - i128::from(timestamp);
    let seconds = u64::try_from(offset.unsigned_abs()).unwrap_or(u64::MAX);
    if seconds <= tolerance {
        return Ok(());
    }
    Err(VerifyError::Timestamp {
        seconds,
        direction: if offset > 0 { "behind" } else { "ahead of" },
        tolerance,
    })
}

/// The percent-decoded value of the first `name=` parameter in `query`.
pub fn query_parameter(query: &str, name: &str) -> Option<Vec<u8>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| percent_decode(key) == name.as_bytes())
        .map(|(_, value)| percent_decode(value))
}

/// `query` without any `name` parameter (other parameters kept verbatim,
/// in order), so the key never reaches the plugin or the inbox.
pub fn strip_query_parameter(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
            !pair.is_empty() && percent_decode(key) != name.as_bytes()
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space; a
/// malformed `%` escape is kept literally).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escape = bytes
                    .get(index + 1..index + 3)
                    .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|digits| std::str::from_utf8(digits).ok())
                    .and_then(|digits| u8::from_str_radix(digits, 16).ok());
                if let Some(byte) = escape {
                    decoded.push(byte);
                    index += 2;
                } else {
                    decoded.push(b'%');
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    decoded
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

//! Verification against published test vectors, vectors computed
//! independently (Python's `hmac`), and the official Standard Webhooks
//! library (`standardwebhooks` crate).

use std::time::Duration;

use super::*;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
/// GitHub's documented example ("Validating webhook deliveries").
const GITHUB_PAYLOAD: &[u8] = b"Hello, World!";
const GITHUB_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

const STRIPE_SECRET: &str = "whsec_test_secret";
const STRIPE_OLD_SECRET: &str = "whsec_old_secret";
const STRIPE_BODY: &[u8] = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
const STRIPE_TIME: i64 = 1_700_000_000;
/// HMAC-SHA256("whsec_test_secret", "1700000000." + STRIPE_BODY), computed
/// with Python's `hmac` module, independently of this code.
const STRIPE_V1: &str = "4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150";
/// The same with "whsec_old_secret" (a rotated-out secret).
const STRIPE_V1_OLD: &str = "a3b06bfb0b8377ba0caf8f23f529d1856777dfc0a6148447aafcf3ae77adc5e4";

/// The Standard Webhooks reference libraries' own test vector.
const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const STANDARD_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const STANDARD_TIME: i64 = 1_649_367_553;
const STANDARD_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const STANDARD_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

fn verifier(auth: WebhookAuth, secret: &[u8]) -> Verifier {
    Verifier::new(&WebhookConfig {
        auth,
        secret_env: Some("TEST".into()),
        secret: Some(Secret::new(secret)),
        tolerance: Duration::from_secs(300),
        max_body: 1024,
        max_pending: 10,
        concurrency: 1,
    })
}

fn standard_key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn check(
    verifier: &Verifier,
    pairs: &[(&str, &str)],
    query: &str,
    body: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    let headers = headers(pairs);
    verifier.verify(
        &Request {
            headers: &headers,
            query,
            body,
        },
        now,
    )
}

#[test]
fn github_accepts_its_documented_example() {
    let github = verifier(WebhookAuth::Github, GITHUB_SECRET.as_bytes());
    let verified = check(
        &github,
        &[
            ("X-Hub-Signature-256", GITHUB_SIGNATURE),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ],
        "",
        GITHUB_PAYLOAD,
        0,
    )
    .unwrap();
    assert_eq!(
        verified.delivery_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
}

#[test]
fn github_rejects_a_changed_body_a_wrong_secret_and_bad_headers() {
    let github = verifier(WebhookAuth::Github, GITHUB_SECRET.as_bytes());
    let signed = [("X-Hub-Signature-256", GITHUB_SIGNATURE)];
    assert_eq!(
        check(&github, &signed, "", b"Hello, World?", 0),
        Err(VerifyError::BadSignature)
    );
    let other = verifier(WebhookAuth::Github, b"another secret");
    assert_eq!(
        check(&other, &signed, "", GITHUB_PAYLOAD, 0),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        check(&github, &[], "", GITHUB_PAYLOAD, 0),
        Err(VerifyError::Missing("X-Hub-Signature-256 header"))
    );
    for bad in [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea",
        "sha256=not-hex",
    ] {
        assert!(
            matches!(
                check(
                    &github,
                    &[("X-Hub-Signature-256", bad)],
                    "",
                    GITHUB_PAYLOAD,
                    0
                ),
                Err(VerifyError::Malformed { .. })
            ),
            "{bad}"
        );
    }
    // A truncated digest is hex but must not match.
    assert_eq!(
        check(
            &github,
            &[("x-hub-signature-256", "sha256=757107ea")],
            "",
            GITHUB_PAYLOAD,
            0
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn stripe_accepts_an_independently_computed_signature() {
    let stripe = verifier(WebhookAuth::Stripe, STRIPE_SECRET.as_bytes());
    let header = format!("t={STRIPE_TIME},v1={STRIPE_V1}");
    let verified = check(
        &stripe,
        &[("Stripe-Signature", &header)],
        "",
        STRIPE_BODY,
        STRIPE_TIME + 10,
    )
    .unwrap();
    assert_eq!(verified.delivery_id.as_deref(), Some("evt_test_webhook"));
}

#[test]
fn stripe_accepts_any_of_several_v1_signatures_during_rotation() {
    let stripe = verifier(WebhookAuth::Stripe, STRIPE_SECRET.as_bytes());
    let old = verifier(WebhookAuth::Stripe, STRIPE_OLD_SECRET.as_bytes());
    let header = format!("t={STRIPE_TIME},v1={STRIPE_V1_OLD},v1={STRIPE_V1},v0=00ff");
    for verifier in [&stripe, &old] {
        check(
            verifier,
            &[("Stripe-Signature", &header)],
            "",
            STRIPE_BODY,
            STRIPE_TIME,
        )
        .unwrap();
    }
    let unrelated = verifier(WebhookAuth::Stripe, b"whsec_unrelated");
    assert_eq!(
        check(
            &unrelated,
            &[("Stripe-Signature", &header)],
            "",
            STRIPE_BODY,
            STRIPE_TIME
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn stripe_rejects_stale_future_and_tampered_deliveries() {
    let stripe = verifier(WebhookAuth::Stripe, STRIPE_SECRET.as_bytes());
    let header = format!("t={STRIPE_TIME},v1={STRIPE_V1}");
    let signed = [("Stripe-Signature", header.as_str())];
    assert_eq!(
        check(&stripe, &signed, "", STRIPE_BODY, STRIPE_TIME + 301),
        Err(VerifyError::Timestamp {
            seconds: 301,
            direction: "behind",
            tolerance: 300
        })
    );
    assert!(check(&stripe, &signed, "", STRIPE_BODY, STRIPE_TIME + 300).is_ok());
    assert!(matches!(
        check(&stripe, &signed, "", STRIPE_BODY, STRIPE_TIME - 301),
        Err(VerifyError::Timestamp {
            direction: "ahead of",
            ..
        })
    ));
    // The timestamp is signed: moving it breaks the signature.
    let moved = format!("t={},v1={STRIPE_V1}", STRIPE_TIME + 1);
    assert_eq!(
        check(
            &stripe,
            &[("Stripe-Signature", &moved)],
            "",
            STRIPE_BODY,
            STRIPE_TIME
        ),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        check(&stripe, &signed, "", b"{}", STRIPE_TIME),
        Err(VerifyError::BadSignature)
    );
    for bad in [
        format!("v1={STRIPE_V1}"),
        format!("t=soon,v1={STRIPE_V1}"),
        format!("t={STRIPE_TIME}"),
        format!("t={STRIPE_TIME},t={STRIPE_TIME},v1={STRIPE_V1}"),
        "garbage".to_owned(),
    ] {
        assert!(
            matches!(
                check(
                    &stripe,
                    &[("Stripe-Signature", &bad)],
                    "",
                    STRIPE_BODY,
                    STRIPE_TIME
                ),
                Err(VerifyError::Malformed { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        check(&stripe, &[], "", STRIPE_BODY, STRIPE_TIME),
        Err(VerifyError::Missing("Stripe-Signature header"))
    );
}

#[test]
fn standard_webhooks_accepts_the_reference_libraries_vector() {
    let standard = verifier(WebhookAuth::StandardWebhooks, &standard_key());
    let time = STANDARD_TIME.to_string();
    let verified = check(
        &standard,
        &[
            ("webhook-id", STANDARD_ID),
            ("webhook-timestamp", &time),
            ("webhook-signature", STANDARD_SIGNATURE),
        ],
        "",
        STANDARD_BODY,
        STANDARD_TIME,
    )
    .unwrap();
    assert_eq!(verified.delivery_id.as_deref(), Some(STANDARD_ID));
    // Svix's pre-standard header names carry the same scheme.
    check(
        &standard,
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", &time),
            ("svix-signature", STANDARD_SIGNATURE),
        ],
        "",
        STANDARD_BODY,
        STANDARD_TIME,
    )
    .unwrap();
}

#[test]
fn standard_webhooks_accepts_a_rotated_list_and_rejects_everything_else() {
    let standard = verifier(WebhookAuth::StandardWebhooks, &standard_key());
    let time = STANDARD_TIME.to_string();
    let with = |signature: &str, now: i64| {
        check(
            &standard,
            &[
                ("webhook-id", STANDARD_ID),
                ("webhook-timestamp", &time),
                ("webhook-signature", signature),
            ],
            "",
            STANDARD_BODY,
            now,
        )
    };
    let rotated = format!(
        "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU= v1a,ZWQyNTUxOQ== {STANDARD_SIGNATURE}"
    );
    assert!(with(&rotated, STANDARD_TIME).is_ok());
    assert_eq!(
        with(
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
            STANDARD_TIME
        ),
        Err(VerifyError::BadSignature)
    );
    assert!(matches!(
        with(
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            STANDARD_TIME
        ),
        Err(VerifyError::Malformed { .. })
    ));
    assert!(matches!(
        with(STANDARD_SIGNATURE, STANDARD_TIME + 301),
        Err(VerifyError::Timestamp {
            direction: "behind",
            ..
        })
    ));
    assert!(matches!(
        with(STANDARD_SIGNATURE, STANDARD_TIME - 301),
        Err(VerifyError::Timestamp {
            direction: "ahead of",
            ..
        })
    ));
    assert_eq!(
        check(
            &standard,
            &[
                ("webhook-id", STANDARD_ID),
                ("webhook-signature", STANDARD_SIGNATURE)
            ],
            "",
            STANDARD_BODY,
            STANDARD_TIME
        ),
        Err(VerifyError::Missing("webhook-timestamp header"))
    );
    let wrong_key = verifier(WebhookAuth::StandardWebhooks, b"another key");
    assert_eq!(
        check(
            &wrong_key,
            &[
                ("webhook-id", STANDARD_ID),
                ("webhook-timestamp", &time),
                ("webhook-signature", STANDARD_SIGNATURE),
            ],
            "",
            STANDARD_BODY,
            STANDARD_TIME
        ),
        Err(VerifyError::BadSignature)
    );
}

/// Signs with the official library at the current time; our verifier must
/// agree with the official verifier on the genuine and a tampered request.
#[test]
fn standard_webhooks_agrees_with_the_official_library() {
    let official = standardwebhooks::Webhook::new(STANDARD_SECRET).unwrap();
    let ours = verifier(WebhookAuth::StandardWebhooks, &standard_key());
    let now = chrono::Utc::now().timestamp();
    let id = "msg_2Lb9Xq5rWz";
    let body = br#"{"type":"invoice.paid","data":{"id":7}}"#;
    let signature = official.sign(id, now, body).unwrap();
    let time = now.to_string();
    let pairs = [
        ("webhook-id", id),
        ("webhook-timestamp", time.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    let mut official_headers = http_headers(&pairs);
    official.verify(body, &official_headers).unwrap();
    assert_eq!(
        check(&ours, &pairs, "", body, now)
            .unwrap()
            .delivery_id
            .as_deref(),
        Some(id)
    );
    let tampered = br#"{"type":"invoice.paid","data":{"id":8}}"#;
    assert!(official.verify(tampered, &official_headers).is_err());
    assert_eq!(
        check(&ours, &pairs, "", tampered, now),
        Err(VerifyError::BadSignature)
    );
    // A stale but genuine signature: both refuse it.
    let stale = now - 600;
    let stale_signature = official.sign(id, stale, body).unwrap();
    let stale_time = stale.to_string();
    let stale_pairs = [
        ("webhook-id", id),
        ("webhook-timestamp", stale_time.as_str()),
        ("webhook-signature", stale_signature.as_str()),
    ];
    official_headers = http_headers(&stale_pairs);
    assert!(official.verify(body, &official_headers).is_err());
    assert!(matches!(
        check(&ours, &stale_pairs, "", body, now),
        Err(VerifyError::Timestamp { .. })
    ));
}

/// The official library takes an `http::HeaderMap` (reached through
/// tonic's re-export: only `http/` may name axum).
fn http_headers(pairs: &[(&str, &str)]) -> tonic::codegen::http::HeaderMap {
    let mut map = tonic::codegen::http::HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            tonic::codegen::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            tonic::codegen::http::HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn api_key_reads_the_header_or_the_query_parameter() {
    let api = verifier(WebhookAuth::ApiKey, b"s3cret key");
    check(&api, &[("X-API-Key", "s3cret key")], "", b"{}", 0).unwrap();
    check(&api, &[], "a=1&apiKey=s3cret+key&b=2", b"{}", 0).unwrap();
    check(&api, &[], "apiKey=s3cret%20key", b"{}", 0).unwrap();
    assert_eq!(
        check(&api, &[("x-api-key", "s3cret")], "", b"{}", 0),
        Err(VerifyError::WrongKey)
    );
    assert_eq!(
        check(&api, &[], "apiKey=wrong", b"{}", 0),
        Err(VerifyError::WrongKey)
    );
    assert!(matches!(
        check(&api, &[], "apikey=s3cret+key", b"{}", 0),
        Err(VerifyError::Missing(_))
    ));
    let verified = check(
        &api,
        &[("X-API-Key", "s3cret key"), ("Idempotency-Key", "order-7")],
        "",
        b"{}",
        0,
    )
    .unwrap();
    assert_eq!(verified.delivery_id.as_deref(), Some("order-7"));
}

#[test]
fn none_accepts_anything() {
    let none = Verifier::new(&WebhookConfig {
        auth: WebhookAuth::None,
        secret_env: None,
        secret: None,
        tolerance: Duration::from_secs(300),
        max_body: 1024,
        max_pending: 10,
        concurrency: 1,
    });
    assert_eq!(
        check(&none, &[], "", b"anything", 0).unwrap().delivery_id,
        None
    );
}

#[test]
fn the_api_key_parameter_is_stripped_from_the_query() {
    assert_eq!(
        strip_query_parameter("a=1&apiKey=x&b=2", "apiKey"),
        "a=1&b=2"
    );
    assert_eq!(strip_query_parameter("apiKey=x", "apiKey"), "");
    assert_eq!(strip_query_parameter("api%4Bey=x&c", "apiKey"), "c");
    assert_eq!(strip_query_parameter("a=%zz&&b", "apiKey"), "a=%zz&b");
    assert_eq!(query_parameter("a=%zz", "a").unwrap(), b"%zz");
    assert_eq!(query_parameter("a=%+1", "a").unwrap(), b"% 1");
}

/// The comparisons must be the constant-time ones: an HMAC is checked with
/// `verify_slice` (constant time in `hmac`), a key by digest with `subtle`.
/// Verifies the source uses them and never compares secrets with `==`.
#[test]
fn secrets_are_compared_in_constant_time() {
    let source = include_str!("../verify.rs");
    let production = source.split("#[cfg(test)]").next().unwrap();
    assert!(production.contains(".verify_slice(candidate)"));
    assert!(production.contains(".ct_eq(&expected[..])"));
    assert!(!production.contains("== expected"));
    assert!(!production.contains("== signature"));
}

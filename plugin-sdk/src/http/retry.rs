//! The retry policy: how long to wait before the next attempt, from the
//! backoff curve or the upstream's `Retry-After`.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::config::RetryConfig;

/// The retry settings of one client, validated.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    /// Retry every 5xx, not only 502, 503 and 504.
    pub(crate) server_errors: bool,
}

impl RetryPolicy {
    pub(crate) fn new(config: &RetryConfig) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff.max(config.initial_backoff),
            max_retry_after: config.max_retry_after,
            server_errors: config.server_errors,
        }
    }

    /// The backoff after failed attempt number `attempt` (1-based):
    /// `initial * 2^(attempt-1)`, capped, with "equal jitter" (half fixed,
    /// half random) so clients that failed together do not retry together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// The wait before the next attempt: the upstream's hint, capped by
    /// `max_retry_after`, or else the backoff.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => after.min(self.max_retry_after),
            None => self.backoff(attempt),
        }
    }
}

/// Reads `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3)
/// relative to `now`; a date in the past means "now". Unreadable values are
/// ignored (the backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            &RetryConfig::default()
                .with_backoff(Duration::from_millis(100), Duration::from_secs(1)),
        )
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_bounds() {
        let policy = policy();
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let full = Duration::from_millis(full);
            for _ in 0..20 {
                let delay = policy.backoff(attempt);
                assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_capped() {
        let policy = policy();
        let cap = RetryConfig::default().max_retry_after;
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600))), cap);
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        // 1_445_412_480 is Wed, 21 Oct 2015 07:28:00 GMT.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:29:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}

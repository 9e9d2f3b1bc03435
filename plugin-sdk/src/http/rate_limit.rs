//! Client-side rate limiting: a token bucket shared by every call of one
//! client, and a gate that holds calls back when the upstream's rate-limit
//! headers say the quota is spent.
//!
//! Hand-written rather than `governor`: governor keeps its own clock, so
//! tests could not drive it with `tokio::time::pause`, and the header gate
//! has to sit in the same wait anyway; the bucket is a dozen lines.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use tokio::time::Instant;

use super::config::RateLimitConfig;
use crate::error::ConfigError;

/// The bucket and the header gate of one client.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bucket: Option<Mutex<Bucket>>,
    /// No call may start before this instant (from rate-limit headers).
    blocked_until: Mutex<Option<Instant>>,
    /// The longest wait a reset header can impose.
    max_wait: Duration,
}

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// A limiter for `config` (none: only the header gate), whose header
    /// waits are capped at `max_wait`.
    pub(crate) fn new(
        config: Option<&RateLimitConfig>,
        max_wait: Duration,
    ) -> Result<Self, ConfigError> {
        let bucket = match config {
            None => None,
            Some(config) => {
                if !(config.per_second.is_finite() && config.per_second > 0.0) {
                    return Err(ConfigError::new(
                        "rate_limit.per_second",
                        "must be a number greater than 0",
                    ));
                }
                let burst = match config.burst {
                    Some(0) => {
                        return Err(ConfigError::new("rate_limit.burst", "must be at least 1"));
                    }
                    Some(burst) => f64::from(burst),
                    None => config.per_second.ceil().max(1.0),
                };
                Some(Mutex::new(Bucket {
                    per_second: config.per_second,
                    capacity: burst,
                    tokens: burst,
                    refilled_at: Instant::now(),
                }))
            }
        };
        Ok(RateLimiter {
            bucket,
            blocked_until: Mutex::new(None),
            max_wait,
        })
    }

    /// Waits until a call may start: past any header-imposed pause, then
    /// for a token from the bucket.
    pub(crate) async fn acquire(&self) {
        let blocked_until = *lock(&self.blocked_until);
        if let Some(until) = blocked_until
            && until > Instant::now()
        {
            tracing::debug!(
                wait_ms = (until - Instant::now()).as_millis() as u64,
                "The upstream's rate-limit quota is spent; waiting for its reset."
            );
            tokio::time::sleep_until(until).await;
        }
        let Some(bucket) = &self.bucket else {
            return;
        };
        loop {
            let wait = {
                let mut bucket = lock(bucket);
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(bucket.refilled_at);
                bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * bucket.per_second)
                    .min(bucket.capacity);
                bucket.refilled_at = now;
                if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - bucket.tokens) / bucket.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Looks at an answer's rate-limit headers: when `X-RateLimit-Remaining`
    /// or `RateLimit-Remaining` is 0, later calls wait until
    /// `X-RateLimit-Reset` / `RateLimit-Reset` (a unix time when above 1e9,
    /// else seconds from now; capped).
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        if !quota_spent(headers) {
            return;
        }
        let Some(wait) = quota_reset_wait(headers, SystemTime::now()) else {
            tracing::debug!("The upstream says its quota is spent but gives no reset time.");
            return;
        };
        let until = Instant::now() + wait.min(self.max_wait);
        let mut blocked_until = lock(&self.blocked_until);
        if blocked_until.is_none_or(|current| current < until) {
            *blocked_until = Some(until);
        }
    }
}

/// True when the answer says the quota is spent: `X-RateLimit-Remaining`
/// (or `RateLimit-Remaining`) is 0.
pub(crate) fn quota_spent(headers: &HeaderMap) -> bool {
    let remaining = header_number(headers, "x-ratelimit-remaining")
        .or_else(|| header_number(headers, "ratelimit-remaining"));
    remaining == Some(0.0)
}

/// How long until the quota resets, from `X-RateLimit-Reset` /
/// `RateLimit-Reset`, if the answer says.
pub(crate) fn quota_reset_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset = header_number(headers, "x-ratelimit-reset")
        .or_else(|| header_number(headers, "ratelimit-reset"))?;
    Some(reset_wait(reset, now))
}

/// The wait a reset header's value means: a unix time when above 1e9,
/// otherwise seconds from now.
fn reset_wait(reset: f64, now: SystemTime) -> Duration {
    let seconds = if reset > 1e9 {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        reset - now
    } else {
        reset
    };
    if seconds.is_finite() && seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Locks a mutex that is never held across an await or a panic-prone call;
/// a poisoned one is still consistent (plain numbers), so take it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_admits_burst_at_once_then_per_second() {
        let limiter = Arc::new(
            RateLimiter::new(Some(&RateLimitConfig::new(2.0, 3)), Duration::from_secs(60)).unwrap(),
        );
        let admitted = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let limiter = limiter.clone();
            let admitted = admitted.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                admitted.fetch_add(1, Ordering::SeqCst);
            });
        }
        settle().await;
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            3,
            "only the burst goes at once"
        );
        // Two tokens a second: one more every 500 ms.
        tokio::time::advance(Duration::from_millis(500)).await;
        settle().await;
        assert_eq!(admitted.load(Ordering::SeqCst), 4);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(admitted.load(Ordering::SeqCst), 6);
        // A long quiet spell refills the bucket only up to the burst.
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(admitted.load(Ordering::SeqCst), 9);
        tokio::time::advance(Duration::from_millis(500)).await;
        settle().await;
        assert_eq!(admitted.load(Ordering::SeqCst), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_quota_holds_calls_until_the_reset() {
        let limiter = Arc::new(RateLimiter::new(None, Duration::from_secs(60)).unwrap());
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "5".parse().unwrap());
        limiter.observe(&headers);
        let done = Arc::new(AtomicUsize::new(0));
        let task = {
            let (limiter, done) = (limiter.clone(), done.clone());
            tokio::spawn(async move {
                limiter.acquire().await;
                done.fetch_add(1, Ordering::SeqCst);
            })
        };
        settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 0);
        tokio::time::advance(Duration::from_secs(4)).await;
        settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        task.await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn reset_values_are_seconds_or_unix_times_and_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(reset_wait(30.0, now), Duration::from_secs(30));
        assert_eq!(reset_wait(1_700_000_042.0, now), Duration::from_secs(42));
        assert_eq!(reset_wait(1_600_000_000.0, now), Duration::ZERO);
        let limiter = RateLimiter::new(None, Duration::from_secs(60)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-remaining", "0".parse().unwrap());
        headers.insert("ratelimit-reset", "100000".parse().unwrap());
        limiter.observe(&headers);
        let until = lock(&limiter.blocked_until).unwrap();
        assert!(until <= Instant::now() + Duration::from_secs(60));
    }

    #[test]
    fn rejects_a_zero_rate_or_burst() {
        let err =
            RateLimiter::new(Some(&RateLimitConfig::new(0.0, 1)), Duration::ZERO).unwrap_err();
        assert_eq!(err.field, "rate_limit.per_second");
        let err =
            RateLimiter::new(Some(&RateLimitConfig::new(1.0, 0)), Duration::ZERO).unwrap_err();
        assert_eq!(err.field, "rate_limit.burst");
    }
}

//! A per-plugin circuit breaker, as a pure state machine (a leaf module:
//! the supervisor keeps one per plugin in its handle, the call path in
//! `retry` drives it) with the clock
//! passed in: after `failures` consecutive failed calls it opens and refuses
//! calls for `cooldown`; then it lets one call through (half-open) to probe
//! the plugin: a success closes it, a failure opens it again.

use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; consecutive failures are counted.
    Closed,
    /// Calls are refused until `until`.
    Open {
        /// When the cool-down ends.
        until: Instant,
    },
    /// One probe call is (or may be) in flight.
    HalfOpen {
        /// When the probe was let through, if one was.
        probe_since: Option<Instant>,
    },
}

impl BreakerState {
    /// The name shown in the API and in metrics: `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half-open",
        }
    }
}

/// Every state name, for metrics.
pub const STATE_NAMES: [&str; 3] = ["closed", "open", "half-open"];

/// A circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    state: BreakerState,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures
    /// (at least 1) and stays open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            consecutive_failures: 0,
            state: BreakerState::Closed,
        }
    }

    /// The state as of `now` (an open breaker whose cool-down is over shows
    /// as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                BreakerState::HalfOpen { probe_since: None }
            }
            state => state,
        }
    }

    /// Asks to make a call at `now`. `Ok` lets it through; `Err(wait)` says
    /// how long until the breaker may let one through.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state(now) {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until } => Err(until.saturating_duration_since(now)),
            BreakerState::HalfOpen { probe_since: None } => {
                self.state = BreakerState::HalfOpen {
                    probe_since: Some(now),
                };
                Ok(())
            }
            BreakerState::HalfOpen {
                probe_since: Some(since),
            } => {
                // A probe whose outcome never came (its caller gave up) must
                // not keep the breaker shut for ever.
                let probe_deadline = since + self.cooldown;
                if now >= probe_deadline {
                    self.state = BreakerState::HalfOpen {
                        probe_since: Some(now),
                    };
                    Ok(())
                } else {
                    Err(probe_deadline.saturating_duration_since(now))
                }
            }
        }
    }

    /// Records a successful call: the breaker closes.
    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.state = BreakerState::Closed;
    }

    /// Records a call abandoned by its caller before the plugin answered
    /// (the hub is shutting down): a half-open probe is given back, so the
    /// next call may probe at once.
    pub fn on_abandoned(&mut self) {
        if let BreakerState::HalfOpen {
            probe_since: Some(_),
        } = self.state
        {
            self.state = BreakerState::HalfOpen { probe_since: None };
        }
    }

    /// Records a failed call at `now`. Returns true when this failure opened
    /// the breaker.
    pub fn on_failure(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state(now) {
            BreakerState::Closed if self.consecutive_failures >= self.threshold => {
                self.state = BreakerState::Open {
                    until: now + self.cooldown,
                };
                true
            }
            BreakerState::Closed | BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { .. } => {
                self.state = BreakerState::Open {
                    until: now + self.cooldown,
                };
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(10);

    #[test]
    fn an_abandoned_probe_is_given_back() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        assert!(breaker.on_failure(t0));
        let later = t0 + COOLDOWN;
        assert!(breaker.try_acquire(later).is_ok());
        assert!(breaker.try_acquire(later).is_err());
        breaker.on_abandoned();
        assert!(breaker.try_acquire(later).is_ok());
        breaker.on_success();
        breaker.on_abandoned();
        assert_eq!(breaker.state(later), BreakerState::Closed);
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(3, COOLDOWN);
        assert!(!breaker.on_failure(t0));
        assert!(!breaker.on_failure(t0));
        assert_eq!(breaker.try_acquire(t0), Ok(()));
        assert!(breaker.on_failure(t0));
        assert_eq!(breaker.state(t0).as_str(), "open");
        assert_eq!(breaker.try_acquire(t0), Err(COOLDOWN));
        let later = t0 + Duration::from_secs(4);
        assert_eq!(breaker.try_acquire(later), Err(Duration::from_secs(6)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(2, COOLDOWN);
        breaker.on_failure(t0);
        breaker.on_success();
        assert!(!breaker.on_failure(t0));
        assert_eq!(breaker.state(t0), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.on_failure(t0);
        let after = t0 + COOLDOWN;
        assert_eq!(breaker.state(after).as_str(), "half-open");
        assert_eq!(breaker.try_acquire(after), Ok(()));
        assert_eq!(breaker.try_acquire(after), Err(COOLDOWN));
        // The probe succeeds: closed again.
        breaker.on_success();
        assert_eq!(breaker.try_acquire(after), Ok(()));
        assert_eq!(breaker.state(after), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cooldown() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.on_failure(t0);
        let after = t0 + COOLDOWN;
        assert_eq!(breaker.try_acquire(after), Ok(()));
        assert!(breaker.on_failure(after));
        assert_eq!(breaker.try_acquire(after), Err(COOLDOWN));
        assert_eq!(breaker.try_acquire(after + COOLDOWN), Ok(()));
    }

    #[test]
    fn an_abandoned_probe_is_replaced_after_a_cooldown() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.on_failure(t0);
        let probe = t0 + COOLDOWN;
        assert_eq!(breaker.try_acquire(probe), Ok(()));
        assert!(breaker.try_acquire(probe + COOLDOWN / 2).is_err());
        assert_eq!(breaker.try_acquire(probe + COOLDOWN), Ok(()));
    }

    #[test]
    fn failures_while_open_do_not_extend_the_cooldown() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.on_failure(t0);
        assert!(!breaker.on_failure(t0 + Duration::from_secs(5)));
        assert_eq!(breaker.try_acquire(t0 + COOLDOWN), Ok(()));
    }

    #[test]
    fn a_zero_threshold_behaves_as_one() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(0, COOLDOWN);
        assert_eq!(breaker.try_acquire(t0), Ok(()));
        assert!(breaker.on_failure(t0));
    }
}

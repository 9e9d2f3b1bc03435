//! The restart policy as a pure state machine with the clock passed in:
//! exponential backoff (reset after a healthy run of `reset_after`) and an
//! intensity cap (`max_restarts` within a sliding `window`, as OTP's
//! MaxR/MaxT or systemd's StartLimitBurst/IntervalSec). Past the cap the
//! plugin is `failed` until an operator restarts it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backoff;
use crate::config::{RestartConfig, RestartMode};

/// How a process ended, as far as the restart policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with status 0 on its own.
    CleanExit,
    /// It crashed, was killed, exited non-zero, failed to start, or failed
    /// its liveness probe.
    Failure,
    /// It failed in a way a restart cannot fix (it rejected its
    /// configuration).
    Unrecoverable,
}

/// What to do after a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait `delay`, then start it again.
    Restart {
        /// The backoff delay.
        delay: Duration,
    },
    /// The policy says not to restart (`never`, or `on-failure` after a
    /// clean exit): stay stopped.
    StayStopped,
    /// A restart cannot help: give up (`failed`) at once.
    Unrecoverable,
    /// Too many restarts within the window: give up (`failed`).
    GiveUp {
        /// The restarts counted in the window.
        restarts: u32,
        /// The window.
        window: Duration,
    },
}

/// The restart history of one plugin.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    config: RestartConfig,
    /// Restarts since the backoff was last reset.
    step: u32,
    /// When each restart within the window was decided.
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// A fresh tracker.
    pub fn new(config: RestartConfig) -> Self {
        RestartTracker {
            config,
            step: 0,
            recent: VecDeque::new(),
        }
    }

    /// Forgets the history (an operator restart clears `failed`).
    pub fn reset(&mut self) {
        self.step = 0;
        self.recent.clear();
    }

    /// Decides what follows a process that ended at `now` after running
    /// (serving, past its handshake) for `ran_for` (`None` if it never got
    /// that far). `random` is uniform in `[0, 1)`, for jitter.
    pub fn on_end(
        &mut self,
        now: Instant,
        ending: Ending,
        ran_for: Option<Duration>,
        random: f64,
    ) -> Decision {
        match (self.config.policy, ending) {
            (RestartMode::Never, _) | (RestartMode::OnFailure, Ending::CleanExit) => {
                return Decision::StayStopped;
            }
            (_, Ending::Unrecoverable) => return Decision::Unrecoverable,
            _ => {}
        }
        if ran_for.is_some_and(|ran| ran >= self.config.reset_after) {
            self.step = 0;
        }
        while let Some(oldest) = self.recent.front() {
            if now.saturating_duration_since(*oldest) >= self.config.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let in_window = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if in_window >= self.config.max_restarts {
            return Decision::GiveUp {
                restarts: in_window,
                window: self.config.window,
            };
        }
        self.recent.push_back(now);
        let delay = backoff::delay(&self.config.backoff, self.step, random);
        self.step = self.step.saturating_add(1);
        Decision::Restart { delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackoffConfig;

    fn config(policy: RestartMode) -> RestartConfig {
        RestartConfig {
            policy,
            backoff: BackoffConfig {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
                multiplier: 2.0,
                jitter: false,
            },
            reset_after: Duration::from_secs(60),
            max_restarts: 5,
            window: Duration::from_secs(300),
        }
    }

    fn delay_of(decision: Decision) -> u128 {
        match decision {
            Decision::Restart { delay } => delay.as_millis(),
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn backoff_grows_then_caps() {
        let mut tracker = RestartTracker::new(RestartConfig {
            max_restarts: 100,
            ..config(RestartMode::Always)
        });
        let t0 = Instant::now();
        let delays: Vec<u128> = (0..6)
            .map(|n| {
                delay_of(tracker.on_end(
                    t0 + Duration::from_secs(n),
                    Ending::Failure,
                    Some(Duration::from_secs(1)),
                    0.5,
                ))
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn a_healthy_run_resets_the_backoff() {
        let mut tracker = RestartTracker::new(config(RestartMode::Always));
        let t0 = Instant::now();
        assert_eq!(
            delay_of(tracker.on_end(t0, Ending::Failure, None, 0.0)),
            100
        );
        assert_eq!(
            delay_of(tracker.on_end(t0, Ending::Failure, None, 0.0)),
            200
        );
        let ran = Some(Duration::from_secs(59));
        assert_eq!(delay_of(tracker.on_end(t0, Ending::Failure, ran, 0.0)), 400);
        let ran = Some(Duration::from_secs(60));
        assert_eq!(delay_of(tracker.on_end(t0, Ending::Failure, ran, 0.0)), 100);
        assert_eq!(
            delay_of(tracker.on_end(t0, Ending::Failure, None, 0.0)),
            200
        );
    }

    #[test]
    fn gives_up_past_the_intensity_cap_within_the_window() {
        let mut tracker = RestartTracker::new(config(RestartMode::Always));
        let t0 = Instant::now();
        for n in 0..5 {
            let now = t0 + Duration::from_secs(n);
            assert!(matches!(
                tracker.on_end(now, Ending::Failure, None, 0.0),
                Decision::Restart { .. }
            ));
        }
        assert_eq!(
            tracker.on_end(t0 + Duration::from_secs(5), Ending::Failure, None, 0.0),
            Decision::GiveUp {
                restarts: 5,
                window: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let mut tracker = RestartTracker::new(config(RestartMode::Always));
        let t0 = Instant::now();
        for _ in 0..5 {
            tracker.on_end(t0, Ending::Failure, None, 0.0);
        }
        // Just inside the window: still capped.
        let inside = t0 + Duration::from_secs(299);
        assert!(matches!(
            tracker.on_end(inside, Ending::Failure, None, 0.0),
            Decision::GiveUp { .. }
        ));
        // Once the window has passed, restarts are allowed again.
        let outside = t0 + Duration::from_secs(300);
        assert!(matches!(
            tracker.on_end(outside, Ending::Failure, None, 0.0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn reset_clears_failed_and_the_backoff() {
        let mut tracker = RestartTracker::new(config(RestartMode::Always));
        let t0 = Instant::now();
        for _ in 0..5 {
            tracker.on_end(t0, Ending::Failure, None, 0.0);
        }
        assert!(matches!(
            tracker.on_end(t0, Ending::Failure, None, 0.0),
            Decision::GiveUp { .. }
        ));
        tracker.reset();
        assert_eq!(
            delay_of(tracker.on_end(t0, Ending::Failure, None, 0.0)),
            100
        );
    }

    #[test]
    fn policies_decide_which_endings_restart() {
        let t0 = Instant::now();
        let mut never = RestartTracker::new(config(RestartMode::Never));
        assert_eq!(
            never.on_end(t0, Ending::Failure, None, 0.0),
            Decision::StayStopped
        );
        let mut on_failure = RestartTracker::new(config(RestartMode::OnFailure));
        assert_eq!(
            on_failure.on_end(t0, Ending::CleanExit, None, 0.0),
            Decision::StayStopped
        );
        assert!(matches!(
            on_failure.on_end(t0, Ending::Failure, None, 0.0),
            Decision::Restart { .. }
        ));
        let mut always = RestartTracker::new(config(RestartMode::Always));
        assert!(matches!(
            always.on_end(t0, Ending::CleanExit, None, 0.0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn an_unrecoverable_ending_is_never_restarted() {
        let t0 = Instant::now();
        let mut always = RestartTracker::new(config(RestartMode::Always));
        assert_eq!(
            always.on_end(t0, Ending::Unrecoverable, None, 0.0),
            Decision::Unrecoverable
        );
        let mut never = RestartTracker::new(config(RestartMode::Never));
        assert_eq!(
            never.on_end(t0, Ending::Unrecoverable, None, 0.0),
            Decision::StayStopped
        );
    }

    #[test]
    fn a_cap_of_one_allows_exactly_one_restart() {
        let mut tracker = RestartTracker::new(RestartConfig {
            max_restarts: 1,
            ..config(RestartMode::Always)
        });
        let t0 = Instant::now();
        assert!(matches!(
            tracker.on_end(t0, Ending::Failure, None, 0.0),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            tracker.on_end(t0, Ending::Failure, None, 0.0),
            Decision::GiveUp { restarts: 1, .. }
        ));
    }
}

//! At most one log line per key and interval for refusals that come in
//! floods: a hub past its webhook inbox's `max_pending` answers every
//! further request with 429, and one log line for each of them (tens of
//! thousands a second under overload) is work and disk the hub spends on
//! the overload itself. The `/metrics` counters still count every refusal
//! (`switchyard_webhook_requests_total{outcome="inbox_full"}`); the log
//! gets the first one of each interval, with how many it left out since
//! the line before.
//!
//! Hand-written: the crates that rate-limit (`governor`) answer "may this
//! go?" but do not count what they turned away, which is what the line
//! reports.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each key may write a line.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Keys kept before the windows that have ended are dropped (plugins
/// removed by a reload leave theirs behind until then).
const PRUNE_ABOVE: usize = 64;

/// One key's current window.
#[derive(Debug)]
struct Window {
    opened: Instant,
    left_out: u64,
}

/// Decides, per key, which events are logged: the first of each
/// [`INTERVAL`], carrying the count of those left out since the previous
/// line.
#[derive(Debug, Default)]
pub struct LogThrottle {
    windows: Mutex<HashMap<String, Window>>,
}

impl LogThrottle {
    /// Whether an event of `key` at `now` gets a log line: `Some(n)` with
    /// the `n` events of that key left out since its previous line, or
    /// `None` when it is one of them.
    pub fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked while
        // counting; the counts are still usable.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(window) = windows.get_mut(key) {
            if now.saturating_duration_since(window.opened) < INTERVAL {
                window.left_out += 1;
                return None;
            }
            let left_out = window.left_out;
            *window = Window {
                opened: now,
                left_out: 0,
            };
            return Some(left_out);
        }
        if windows.len() >= PRUNE_ABOVE {
            windows.retain(|_, window| {
                now.saturating_duration_since(window.opened) < INTERVAL || window.left_out > 0
            });
        }
        windows.insert(
            key.to_owned(),
            Window {
                opened: now,
                left_out: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_of_each_interval_is_logged_with_the_count_left_out() {
        let throttle = LogThrottle::default();
        let start = Instant::now();
        assert_eq!(throttle.admit("webhooks", start), Some(0));
        for i in 1..=5 {
            assert_eq!(
                throttle.admit("webhooks", start + Duration::from_millis(i)),
                None
            );
        }
        assert_eq!(throttle.admit("webhooks", start + INTERVAL), Some(5));
        assert_eq!(
            throttle.admit("webhooks", start + INTERVAL + Duration::from_secs(1)),
            None
        );
        assert_eq!(throttle.admit("webhooks", start + INTERVAL * 3), Some(1));
    }

    #[test]
    fn keys_are_throttled_apart() {
        let throttle = LogThrottle::default();
        let now = Instant::now();
        assert_eq!(throttle.admit("a", now), Some(0));
        assert_eq!(throttle.admit("b", now), Some(0));
        assert_eq!(throttle.admit("a", now), None);
        assert_eq!(throttle.admit("b", now), None);
    }

    #[test]
    fn ended_windows_with_nothing_left_out_are_pruned_past_the_limit() {
        let throttle = LogThrottle::default();
        let start = Instant::now();
        for i in 0..PRUNE_ABOVE {
            assert_eq!(throttle.admit(&format!("old-{i}"), start), Some(0));
        }
        // One old key still owes a count: it stays until it is reported.
        assert_eq!(throttle.admit("old-0", start), None);
        let later = start + INTERVAL;
        assert_eq!(throttle.admit("new", later), Some(0));
        let windows = throttle
            .windows
            .lock()
            .expect("no test panics while holding the lock");
        assert_eq!(windows.len(), 2, "{:?}", windows.keys().collect::<Vec<_>>());
        assert!(windows.contains_key("old-0") && windows.contains_key("new"));
    }
}

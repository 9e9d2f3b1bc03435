//! Waiting for a condition with a deadline instead of sleeping.

use std::time::{Duration, Instant};

/// How often conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `condition` until it returns true or `timeout` has passed; returns
/// whether it became true. The condition is always checked once more at the
/// deadline, so a slow machine never fails a test that was about to pass.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || condition().then_some(())).is_some()
}

/// Polls `probe` until it returns `Some` or `timeout` has passed.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

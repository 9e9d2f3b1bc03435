//! Exponential backoff with jitter, as a pure function of the step number
//! and a random number (so it is unit-tested without a clock or an RNG).
//! Used by the restart policy and by the call retry policy.

use std::time::Duration;

use crate::config::BackoffConfig;

/// The delay before retry number `step` (0 for the first): `initial *
/// multiplier^step`, capped at `max`. With jitter, the delay is drawn between
/// half and all of that (`random` is uniform in `[0, 1)`), so successive
/// delays still grow while retries from many callers spread out.
pub fn delay(config: &BackoffConfig, step: u32, random: f64) -> Duration {
    let initial = config.initial.as_secs_f64();
    let max = config.max.as_secs_f64();
    // Past ~1000 steps the power overflows to infinity; min() caps it.
    let exponent = i32::try_from(step.min(1000)).unwrap_or(1000);
    let base = (initial * config.multiplier.max(1.0).powi(exponent)).min(max);
    let seconds = if config.jitter {
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        base * (0.5 + 0.5 * random)
    } else {
        base
    };
    Duration::try_from_secs_f64(seconds).unwrap_or(config.max)
}

/// A uniform random number in `[0, 1)` for [`delay`].
pub fn random() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jitter: bool) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_geometrically_up_to_the_cap() {
        let config = config(false);
        let delays: Vec<u128> = (0..12)
            .map(|step| delay(&config, step, 0.3).as_millis())
            .collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(delay(&config, u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn a_zero_backoff_means_at_once() {
        let config = BackoffConfig {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 2.0,
            jitter: true,
        };
        for step in [0, 1, 10, u32::MAX] {
            assert_eq!(delay(&config, step, random()), Duration::ZERO);
        }
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let config = config(true);
        assert_eq!(delay(&config, 3, 0.0), Duration::from_millis(400));
        assert_eq!(delay(&config, 3, 1.0), Duration::from_millis(800));
        for _ in 0..1000 {
            let value = delay(&config, 3, random());
            assert!(value >= Duration::from_millis(400) && value <= Duration::from_millis(800));
        }
        // Out-of-range randoms are clamped, never a panic or a negative delay.
        assert_eq!(delay(&config, 0, -5.0), Duration::from_millis(50));
        assert_eq!(delay(&config, 0, f64::NAN), Duration::from_millis(50));
    }

    #[test]
    fn with_jitter_successive_delays_never_shrink_at_multiplier_two() {
        let config = config(true);
        // Below the cap (at the cap, jitter spreads delays over [max/2, max]).
        for step in 0..7 {
            assert!(delay(&config, step, 0.999) <= delay(&config, step + 1, 0.0));
        }
    }

    #[test]
    fn a_multiplier_of_one_is_a_constant_delay() {
        let config = BackoffConfig {
            multiplier: 1.0,
            ..config(false)
        };
        assert_eq!(delay(&config, 0, 0.5), delay(&config, 50, 0.5));
    }
}

//! `[plugins.NAME.output] lag_alert`: an output is *lagging* while its
//! oldest unfinished event is older than the threshold.
//!
//! The decision is the pure [`assess`]; [`LagAlerts`] keeps each output's
//! state, fed by every lag measurement ([`super::metrics::PipelineMetrics::lag`],
//! made by the delivery loop at each round, each retry and each idle check),
//! and publishes it three ways: the gauge `switchyard_output_lag_alert{plugin}`
//! (1 while lagging, else 0), the `lagging` flag of the plugin's status
//! ([`LagAlerts::lagging`]), and one warning when the lag crosses the
//! threshold, one info line when it recovers (never one per measurement).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::Config;

/// A change of an output's lagging state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// The lag went past the threshold.
    Lagging,
    /// The lag came back to the threshold or below.
    Recovered,
}

/// Whether an output that was `lagging` is lagging now that its lag is
/// `lag`, and whether that is a change: lagging while `lag > threshold`.
pub fn assess(lagging: bool, threshold: Duration, lag: Duration) -> (bool, Option<Crossing>) {
    let now = lag > threshold;
    let crossing = match (lagging, now) {
        (false, true) => Some(Crossing::Lagging),
        (true, false) => Some(Crossing::Recovered),
        _ => None,
    };
    (now, crossing)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

/// One output's alert.
#[derive(Debug)]
struct Watch {
    /// `lag_alert`, or `None` (never lagging).
    threshold: Option<Duration>,
    lagging: Mutex<bool>,
    gauge: Gauge,
}

/// Every output's lag alert (process-wide, like the metrics: [`global`]).
#[derive(Debug, Default)]
pub struct LagAlerts {
    family: Family<PluginLabels, Gauge>,
    watches: RwLock<HashMap<String, Arc<Watch>>>,
}

/// The process-wide instance; its gauge family is registered on first use.
pub fn global() -> &'static LagAlerts {
    static ALERTS: OnceLock<LagAlerts> = OnceLock::new();
    ALERTS.get_or_init(|| {
        let alerts = LagAlerts::default();
        let family = alerts.family.clone();
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_output_lag_alert",
                "1 while the output's lag is past its lag_alert threshold, else 0",
                family,
            );
        });
        alerts
    })
}

/// Watches every configured output with its `lag_alert` (a series at 0 for
/// each, so the family is listed from the start). Calling it again (a
/// reload) takes the new thresholds and keeps the state of outputs whose
/// threshold did not change.
pub fn init(config: &Config) {
    let alerts = global();
    for plugin in &config.plugins {
        if let Some(output) = &plugin.output {
            alerts.watch(&plugin.name, output.lag_alert);
        }
    }
}

impl LagAlerts {
    /// Starts watching output `plugin` with `threshold` (not lagging).
    pub fn watch(&self, plugin: &str, threshold: Option<Duration>) {
        let mut watches = match self.watches.write() {
            Ok(watches) => watches,
            Err(poisoned) => poisoned.into_inner(),
        };
        if watches
            .get(plugin)
            .is_some_and(|watch| watch.threshold == threshold)
        {
            return;
        }
        let gauge = self
            .family
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .clone();
        gauge.set(0);
        watches.insert(
            plugin.to_owned(),
            Arc::new(Watch {
                threshold,
                lagging: Mutex::new(false),
                gauge,
            }),
        );
    }

    fn get(&self, plugin: &str) -> Option<Arc<Watch>> {
        let watches = match self.watches.read() {
            Ok(watches) => watches,
            Err(poisoned) => poisoned.into_inner(),
        };
        watches.get(plugin).cloned()
    }

    /// Output `plugin`'s oldest unfinished event is `lag` old: updates its
    /// state, its gauge, and logs a crossing. Outputs not watched, or
    /// without a threshold, are ignored.
    pub fn observe(&self, plugin: &str, lag: Duration) {
        let Some(watch) = self.get(plugin) else {
            return;
        };
        let Some(threshold) = watch.threshold else {
            return;
        };
        let mut lagging = match watch.lagging.lock() {
            Ok(lagging) => lagging,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (now, crossing) = assess(*lagging, threshold, lag);
        *lagging = now;
        watch.gauge.set(i64::from(now));
        let lag_text = humantime::format_duration(Duration::from_millis(
            u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
        ));
        let threshold_text = humantime::format_duration(threshold);
        match crossing {
            Some(Crossing::Lagging) => tracing::warn!(
                plugin,
                lag = %lag_text,
                lag_alert = %threshold_text,
                "Output `{plugin}` is lagging: its oldest unfinished event is {lag_text} old, past its lag_alert of {threshold_text}."
            ),
            Some(Crossing::Recovered) => tracing::info!(
                plugin,
                lag = %lag_text,
                lag_alert = %threshold_text,
                "Output `{plugin}` caught up: its lag is back within its lag_alert of {threshold_text}."
            ),
            None => {}
        }
    }

    /// Whether output `plugin` is lagging now: `None` when it is not an
    /// output, `Some(false)` for an output without `lag_alert`.
    pub fn lagging(&self, plugin: &str) -> Option<bool> {
        let watch = self.get(plugin)?;
        let lagging = match watch.lagging.lock() {
            Ok(lagging) => *lagging,
            Err(poisoned) => *poisoned.into_inner(),
        };
        Some(lagging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn crossing_the_threshold_is_reported_once_each_way() {
        let threshold = 5 * SECOND;
        // Under or at the threshold: not lagging, nothing to report.
        assert_eq!(assess(false, threshold, Duration::ZERO), (false, None));
        assert_eq!(assess(false, threshold, threshold), (false, None));
        // Past it: lagging, reported once.
        assert_eq!(
            assess(false, threshold, threshold + Duration::from_millis(1)),
            (true, Some(Crossing::Lagging))
        );
        assert_eq!(assess(true, threshold, 60 * SECOND), (true, None));
        // Back at or under it: recovered, reported once.
        assert_eq!(
            assess(true, threshold, threshold),
            (false, Some(Crossing::Recovered))
        );
        assert_eq!(assess(false, threshold, SECOND), (false, None));
    }

    #[test]
    fn a_sequence_of_measurements_reports_each_crossing_once() {
        let lags = [0, 2, 6, 7, 30, 4, 0, 0, 9, 1];
        let mut lagging = false;
        let mut crossings = Vec::new();
        for seconds in lags {
            let (now, crossing) = assess(lagging, 5 * SECOND, seconds * SECOND);
            lagging = now;
            crossings.extend(crossing.map(|crossing| (seconds, crossing)));
        }
        assert_eq!(
            crossings,
            [
                (6, Crossing::Lagging),
                (4, Crossing::Recovered),
                (9, Crossing::Lagging),
                (1, Crossing::Recovered)
            ]
        );
    }

    #[test]
    fn the_state_and_gauge_follow_the_measurements() {
        let alerts = global();
        alerts.watch("lag-alert-unit", Some(SECOND));
        alerts.watch("lag-alert-none", None);
        assert_eq!(alerts.lagging("lag-alert-unit"), Some(false));
        alerts.observe("lag-alert-unit", 3 * SECOND);
        alerts.observe("lag-alert-none", 3 * SECOND);
        assert_eq!(alerts.lagging("lag-alert-unit"), Some(true));
        assert_eq!(alerts.lagging("lag-alert-none"), Some(false));
        assert_eq!(alerts.lagging("not-an-output"), None);
        let text = crate::metrics::global().encode();
        assert!(
            text.contains("switchyard_output_lag_alert{plugin=\"lag-alert-unit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_output_lag_alert{plugin=\"lag-alert-none\"} 0"),
            "{text}"
        );
        alerts.observe("lag-alert-unit", Duration::ZERO);
        assert_eq!(alerts.lagging("lag-alert-unit"), Some(false));
        let text = crate::metrics::global().encode();
        assert!(
            text.contains("switchyard_output_lag_alert{plugin=\"lag-alert-unit\"} 0"),
            "{text}"
        );
    }
}

//! The supervisor's Prometheus metrics, registered once into the hub's
//! registry ([`crate::metrics::register`]) when the hub starts
//! ([`register`]):
//!
//! * `switchyard_plugin_state{plugin,state}`: 1 for the plugin's current
//!   state, 0 for the others.
//! * `switchyard_plugin_restarts_total{plugin}`: restarts (automatic and on
//!   request).
//! * `switchyard_plugin_give_ups_total{plugin}`: times the hub gave up
//!   restarting the plugin (state `failed`).
//! * `switchyard_plugin_healthy{plugin}`: 1 while the plugin runs and its
//!   last health check said SERVING.
//! * `switchyard_plugin_health_check_failures_total{plugin}`: failed (or
//!   timed-out) liveness checks.
//!
//! None of these is on a per-record path.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::PluginState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    plugin: String,
    state: &'static str,
}

/// The supervisor's gauges and counters.
#[derive(Debug)]
pub struct SupervisorMetrics {
    state: Family<StateLabels, Gauge>,
    restarts: Family<PluginLabels, Counter>,
    give_ups: Family<PluginLabels, Counter>,
    healthy: Family<PluginLabels, Gauge>,
    health_failures: Family<PluginLabels, Counter>,
}

/// The process-wide instance (registered by [`register`]).
pub fn global() -> &'static SupervisorMetrics {
    static METRICS: OnceLock<SupervisorMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = SupervisorMetrics {
            state: Family::default(),
            restarts: Family::default(),
            give_ups: Family::default(),
            healthy: Family::default(),
            health_failures: Family::default(),
        };
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_plugin_state",
                "1 for the plugin's current state (starting, running, stopping, stopped, backoff, failed), 0 for the others",
                metrics.state.clone(),
            );
            registry.register(
                "switchyard_plugin_restarts",
                "Restarts of the plugin (automatic and on request)",
                metrics.restarts.clone(),
            );
            registry.register(
                "switchyard_plugin_give_ups",
                "Times the hub gave up restarting the plugin (restart intensity exceeded; state failed)",
                metrics.give_ups.clone(),
            );
            registry.register(
                "switchyard_plugin_healthy",
                "1 while the plugin runs and its last health check said SERVING",
                metrics.healthy.clone(),
            );
            registry.register(
                "switchyard_plugin_health_check_failures",
                "Failed (or timed-out) liveness health checks",
                metrics.health_failures.clone(),
            );
        });
        metrics
    })
}

/// Registers the supervisor's metric families (once, at start), so they
/// show on `/metrics` before any plugin changes state.
pub fn register() {
    global();
}

fn plugin(name: &str) -> PluginLabels {
    PluginLabels {
        plugin: name.to_owned(),
    }
}

impl SupervisorMetrics {
    /// Sets the plugin's state gauge.
    pub fn set_state(&self, name: &str, state: PluginState) {
        for each in PluginState::ALL {
            self.state
                .get_or_create(&StateLabels {
                    plugin: name.to_owned(),
                    state: each.as_str(),
                })
                .set(i64::from(each == state));
        }
    }

    /// Counts a restart.
    pub fn restarted(&self, name: &str) {
        self.restarts.get_or_create(&plugin(name)).inc();
    }

    /// Counts the hub giving up on a plugin (state `failed`).
    pub fn gave_up(&self, name: &str) {
        self.give_ups.get_or_create(&plugin(name)).inc();
    }

    /// Sets the plugin's health gauge.
    pub fn set_healthy(&self, name: &str, healthy: bool) {
        self.healthy
            .get_or_create(&plugin(name))
            .set(i64::from(healthy));
    }

    /// Counts a failed liveness check.
    pub fn health_check_failed(&self, name: &str) {
        self.health_failures.get_or_create(&plugin(name)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_metrics_are_encoded_with_their_labels() {
        let metrics = global();
        metrics.set_state("supervisor-metrics-unit", PluginState::Backoff);
        metrics.restarted("supervisor-metrics-unit");
        metrics.gave_up("supervisor-metrics-unit");
        let text = crate::metrics::global().encode();
        assert!(
            text.contains(
                r#"switchyard_plugin_state{plugin="supervisor-metrics-unit",state="backoff"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"switchyard_plugin_state{plugin="supervisor-metrics-unit",state="running"} 0"#
        ));
        assert!(
            text.contains(
                r#"switchyard_plugin_restarts_total{plugin="supervisor-metrics-unit"} 1"#
            )
        );
        assert!(
            text.contains(
                r#"switchyard_plugin_give_ups_total{plugin="supervisor-metrics-unit"} 1"#
            )
        );
    }
}

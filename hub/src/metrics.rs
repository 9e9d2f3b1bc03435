//! The hub's Prometheus metrics: one process-wide registry (crate
//! `prometheus-client`), served as OpenMetrics text on `GET /metrics`.
//!
//! The supervisor and the retry layer record through the typed methods of
//! [`Metrics`] (`global().restarted("tagger")`). Other modules register their
//! own metrics into the same registry with [`register`], once, at start-up:
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//!
//! let stored: Counter = Counter::default();
//! switchyard_hub::metrics::register(|registry| {
//!     registry.register("switchyard_records_stored", "Records stored", stored.clone());
//! });
//! stored.inc();
//! assert!(switchyard_hub::metrics::global().encode().contains("switchyard_records_stored_total 1"));
//! ```
//!
//! Every metric about a plugin carries the label `plugin` (the instance
//! name); call metrics add `rpc` (`poll`, `webhook`, `enrich`, `events`).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::retry::breaker::STATE_NAMES;
use crate::supervisor::PluginState;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    plugin: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    plugin: String,
    rpc: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    rpc: String,
    outcome: String,
}

type HistogramFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The hub's metrics and the registry they live in.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    state: Family<StateLabels, Gauge>,
    restarts: Family<PluginLabels, Counter>,
    give_ups: Family<PluginLabels, Counter>,
    healthy: Family<PluginLabels, Gauge>,
    health_failures: Family<PluginLabels, Counter>,
    calls: Family<OutcomeLabels, Counter>,
    latency: HistogramFamily,
    retries: Family<RpcLabels, Counter>,
    call_give_ups: Family<RpcLabels, Counter>,
    breaker: Family<StateLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics {
            state: Family::default(),
            restarts: Family::default(),
            give_ups: Family::default(),
            healthy: Family::default(),
            health_failures: Family::default(),
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            call_give_ups: Family::default(),
            breaker: Family::default(),
            registry: Mutex::new(Registry::default()),
        };
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
            "switchyard_plugin_failed",
            "Times the hub gave up restarting the plugin (restart intensity exceeded)",
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
        registry.register(
            "switchyard_plugin_calls",
            "Call attempts to the plugin by RPC and outcome",
            metrics.calls.clone(),
        );
        registry.register(
            "switchyard_plugin_call_duration_seconds",
            "Duration of call attempts to the plugin by RPC",
            metrics.latency.clone(),
        );
        registry.register(
            "switchyard_plugin_call_retries",
            "Call attempts that were retries",
            metrics.retries.clone(),
        );
        registry.register(
            "switchyard_plugin_call_give_ups",
            "Calls that failed for good (retries exhausted or a permanent error)",
            metrics.call_give_ups.clone(),
        );
        registry.register(
            "switchyard_plugin_circuit_breaker_state",
            "1 for the circuit breaker's current state (closed, open, half-open), 0 for the others",
            metrics.breaker.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            ..metrics
        }
    }

    fn plugin(plugin: &str) -> PluginLabels {
        PluginLabels {
            plugin: plugin.to_owned(),
        }
    }

    fn rpc(plugin: &str, rpc: &str) -> RpcLabels {
        RpcLabels {
            plugin: plugin.to_owned(),
            rpc: rpc.to_owned(),
        }
    }

    /// Sets the plugin's state gauge.
    pub fn set_state(&self, plugin: &str, state: PluginState) {
        for each in PluginState::ALL {
            let labels = StateLabels {
                plugin: plugin.to_owned(),
                state: each.as_str().to_owned(),
            };
            self.state
                .get_or_create(&labels)
                .set(i64::from(each == state));
        }
    }

    /// Counts a restart.
    pub fn restarted(&self, plugin: &str) {
        self.restarts.get_or_create(&Self::plugin(plugin)).inc();
    }

    /// Counts the hub giving up on a plugin (state `failed`).
    pub fn gave_up(&self, plugin: &str) {
        self.give_ups.get_or_create(&Self::plugin(plugin)).inc();
    }

    /// Sets the plugin's health gauge.
    pub fn set_healthy(&self, plugin: &str, healthy: bool) {
        self.healthy
            .get_or_create(&Self::plugin(plugin))
            .set(i64::from(healthy));
    }

    /// Counts a failed liveness check.
    pub fn health_check_failed(&self, plugin: &str) {
        self.health_failures
            .get_or_create(&Self::plugin(plugin))
            .inc();
    }

    /// Records one call attempt: its outcome (`ok`, `rejected`, `failed`,
    /// `timeout`, `unavailable`, `circuit_open`, ...) and how long it took.
    pub fn call(&self, plugin: &str, rpc: &str, outcome: &str, took: Duration) {
        self.calls
            .get_or_create(&OutcomeLabels {
                plugin: plugin.to_owned(),
                rpc: rpc.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&Self::rpc(plugin, rpc))
            .observe(took.as_secs_f64());
    }

    /// Counts a retry.
    pub fn retried(&self, plugin: &str, rpc: &str) {
        self.retries.get_or_create(&Self::rpc(plugin, rpc)).inc();
    }

    /// Counts a call that failed for good.
    pub fn call_gave_up(&self, plugin: &str, rpc: &str) {
        self.call_give_ups
            .get_or_create(&Self::rpc(plugin, rpc))
            .inc();
    }

    /// Sets the circuit breaker gauge (`closed`, `open`, `half-open`).
    pub fn set_breaker(&self, plugin: &str, state: &str) {
        for each in STATE_NAMES {
            let labels = StateLabels {
                plugin: plugin.to_owned(),
                state: each.to_owned(),
            };
            self.breaker
                .get_or_create(&labels)
                .set(i64::from(each == state));
        }
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = match self.registry.lock() {
            Ok(registry) => registry,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %err, "Cannot encode the metrics.");
        }
        text
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Registers metrics of another module into the hub's registry (see the
/// module documentation for an example). Register each metric once.
pub fn register(add: impl FnOnce(&mut Registry)) {
    let mut registry = match global().registry.lock() {
        Ok(registry) => registry,
        Err(poisoned) => poisoned.into_inner(),
    };
    add(&mut registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_metrics_are_encoded_with_their_labels() {
        let metrics = global();
        metrics.set_state("metrics-unit", PluginState::Backoff);
        metrics.restarted("metrics-unit");
        metrics.call("metrics-unit", "enrich", "ok", Duration::from_millis(3));
        metrics.set_breaker("metrics-unit", "open");
        let text = metrics.encode();
        assert!(
            text.contains(r#"switchyard_plugin_state{plugin="metrics-unit",state="backoff"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"switchyard_plugin_state{plugin="metrics-unit",state="running"} 0"#),
            "{text}"
        );
        assert!(text.contains(r#"switchyard_plugin_restarts_total{plugin="metrics-unit"} 1"#));
        assert!(text.contains(
            r#"switchyard_plugin_calls_total{plugin="metrics-unit",rpc="enrich",outcome="ok"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_plugin_call_duration_seconds_count{plugin="metrics-unit",rpc="enrich"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_plugin_circuit_breaker_state{plugin="metrics-unit",state="open"} 1"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }
}

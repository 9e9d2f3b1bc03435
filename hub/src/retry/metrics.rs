//! The call path's Prometheus metrics, registered once into the hub's
//! registry ([`crate::metrics::register`]) when the hub starts
//! ([`register`]):
//!
//! * `switchyard_plugin_calls_total{plugin,rpc,outcome}`: call attempts by
//!   outcome (`ok`, `rejected`, `failed`, `protocol_error`, `timeout`,
//!   `plugin_died`, `not_running`, `not_serving`, `circuit_open`,
//!   `aborted`).
//! * `switchyard_plugin_call_duration_seconds{plugin,rpc}`: attempt
//!   durations.
//! * `switchyard_plugin_call_retries_total{plugin,rpc}`: attempts that were
//!   retries.
//! * `switchyard_plugin_call_give_ups_total{plugin,rpc}`: calls that failed
//!   for good.
//! * `switchyard_plugin_circuit_breaker_state{plugin,state}`: 1 for the
//!   breaker's current state.
//!
//! Labels hold the plugin name as a shared `Arc<str>` and the RPC and
//! outcome as `&'static str`, so recording a call allocates nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Rpc;
use crate::breaker::{BreakerState, STATE_NAMES};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    plugin: Arc<str>,
    rpc: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: Arc<str>,
    rpc: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    plugin: Arc<str>,
    state: &'static str,
}

type HistogramFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 52 s, then +Inf.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// The call path's counters, histogram and gauge.
#[derive(Debug)]
pub struct CallMetrics {
    calls: Family<OutcomeLabels, Counter>,
    latency: HistogramFamily,
    retries: Family<RpcLabels, Counter>,
    give_ups: Family<RpcLabels, Counter>,
    breaker: Family<BreakerLabels, Gauge>,
}

/// The process-wide instance (registered by [`register`]).
pub fn global() -> &'static CallMetrics {
    static METRICS: OnceLock<CallMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = CallMetrics {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            give_ups: Family::default(),
            breaker: Family::default(),
        };
        crate::metrics::register(|registry| {
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
                metrics.give_ups.clone(),
            );
            registry.register(
                "switchyard_plugin_circuit_breaker_state",
                "1 for the circuit breaker's current state (closed, open, half-open), 0 for the others",
                metrics.breaker.clone(),
            );
        });
        metrics
    })
}

/// Registers the call path's metric families (once, at start), so they show
/// on `/metrics` before the first call.
pub fn register() {
    global();
}

impl CallMetrics {
    /// Records one attempt: its outcome and how long it took.
    pub fn attempt(&self, plugin: &Arc<str>, rpc: Rpc, outcome: &'static str, took: Duration) {
        self.calls
            .get_or_create(&OutcomeLabels {
                plugin: plugin.clone(),
                rpc: rpc.as_str(),
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&RpcLabels {
                plugin: plugin.clone(),
                rpc: rpc.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts an attempt that is a retry.
    pub fn retried(&self, plugin: &Arc<str>, rpc: Rpc) {
        self.retries
            .get_or_create(&RpcLabels {
                plugin: plugin.clone(),
                rpc: rpc.as_str(),
            })
            .inc();
    }

    /// Counts a call that failed for good.
    pub fn gave_up(&self, plugin: &Arc<str>, rpc: Rpc) {
        self.give_ups
            .get_or_create(&RpcLabels {
                plugin: plugin.clone(),
                rpc: rpc.as_str(),
            })
            .inc();
    }

    /// Sets the circuit breaker gauge.
    pub fn breaker(&self, plugin: &Arc<str>, state: BreakerState) {
        for each in STATE_NAMES {
            self.breaker
                .get_or_create(&BreakerLabels {
                    plugin: plugin.clone(),
                    state: each,
                })
                .set(i64::from(each == state.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_metrics_are_encoded_with_their_labels() {
        let metrics = global();
        let plugin: Arc<str> = Arc::from("call-metrics-unit");
        metrics.attempt(&plugin, Rpc::Poll, "ok", Duration::from_millis(3));
        metrics.breaker(&plugin, BreakerState::Closed);
        let text = crate::metrics::global().encode();
        assert!(
            text.contains(
                r#"switchyard_plugin_calls_total{plugin="call-metrics-unit",rpc="poll",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"switchyard_plugin_call_duration_seconds_count{plugin="call-metrics-unit",rpc="poll"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_plugin_circuit_breaker_state{plugin="call-metrics-unit",state="closed"} 1"#
        ));
    }
}

//! The data path's Prometheus metrics, one family per stage, registered once
//! into the hub's registry ([`crate::metrics::register`]):
//!
//! * `switchyard_records_in_total{plugin}`: records received from an input.
//! * `switchyard_records_enriched_total{plugin}` and
//!   `switchyard_records_enrich_failures_total{plugin}`: per enricher.
//! * `switchyard_records_stored_total{source,outcome}`: upserts by outcome
//!   (`created`, `updated`, `unchanged`).
//! * `switchyard_events_delivered_total{plugin}`: events an output acked.
//! * `switchyard_output_lag_seconds{plugin}`: age of the oldest event the
//!   output has not finished (0 when caught up).
//! * `switchyard_dead_letters_total{plugin,stage}`: records or events
//!   moved to the dead letters.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::store::{Stage, Upserted};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    source: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    plugin: String,
    stage: String,
}

/// The data path's counters and gauges.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    records_in: Family<PluginLabels, Counter>,
    enriched: Family<PluginLabels, Counter>,
    enrich_failures: Family<PluginLabels, Counter>,
    stored: Family<StoredLabels, Counter>,
    delivered: Family<PluginLabels, Counter>,
    lag: Family<PluginLabels, Gauge<f64, AtomicU64>>,
    dead_letters: Family<DeadLetterLabels, Counter>,
}

/// The process-wide instance, registered on first use.
pub fn global() -> &'static std::sync::Arc<PipelineMetrics> {
    static METRICS: OnceLock<std::sync::Arc<PipelineMetrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = std::sync::Arc::new(PipelineMetrics::default());
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_records_in",
                "Records received from input plugins",
                metrics.records_in.clone(),
            );
            registry.register(
                "switchyard_records_enriched",
                "Records an enricher enriched",
                metrics.enriched.clone(),
            );
            registry.register(
                "switchyard_records_enrich_failures",
                "Records an enricher failed for good (skipped or dead-lettered)",
                metrics.enrich_failures.clone(),
            );
            registry.register(
                "switchyard_records_stored",
                "Record upserts by source and outcome (created, updated, unchanged)",
                metrics.stored.clone(),
            );
            registry.register(
                "switchyard_events_delivered",
                "Events an output plugin acknowledged",
                metrics.delivered.clone(),
            );
            registry.register(
                "switchyard_output_lag_seconds",
                "Age of the oldest event the output has not finished (0 when caught up)",
                metrics.lag.clone(),
            );
            registry.register(
                "switchyard_dead_letters",
                "Records or events moved to the dead letters, by plugin and stage",
                metrics.dead_letters.clone(),
            );
        });
        metrics
    })
}

impl PipelineMetrics {
    /// `count` records arrived from input `plugin`.
    pub fn records_in(&self, plugin: &str, count: usize) {
        self.records_in
            .get_or_create(&plugin_labels(plugin))
            .inc_by(count as u64);
    }

    /// Enricher `plugin` enriched one record.
    pub fn enriched(&self, plugin: &str) {
        self.enriched.get_or_create(&plugin_labels(plugin)).inc();
    }

    /// Enricher `plugin` failed one record for good.
    pub fn enrich_failed(&self, plugin: &str) {
        self.enrich_failures
            .get_or_create(&plugin_labels(plugin))
            .inc();
    }

    /// Records of `source` were upserted with these outcomes.
    pub fn stored(&self, source: &str, outcomes: &[Upserted]) {
        for outcome in outcomes {
            let outcome = match outcome {
                Upserted::Created { .. } => "created",
                Upserted::Updated { .. } => "updated",
                Upserted::Unchanged { .. } => "unchanged",
            };
            self.stored
                .get_or_create(&StoredLabels {
                    source: source.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc();
        }
    }

    /// Output `plugin` acknowledged `count` events.
    pub fn delivered(&self, plugin: &str, count: usize) {
        self.delivered
            .get_or_create(&plugin_labels(plugin))
            .inc_by(count as u64);
    }

    /// Output `plugin`'s oldest unfinished event is `seconds` old.
    pub fn lag(&self, plugin: &str, seconds: f64) {
        self.lag.get_or_create(&plugin_labels(plugin)).set(seconds);
    }

    /// One record or event of `plugin` went to the dead letters.
    pub fn dead_lettered(&self, plugin: &str, stage: Stage) {
        self.dead_letters
            .get_or_create(&DeadLetterLabels {
                plugin: plugin.to_owned(),
                stage: stage.as_str().to_owned(),
            })
            .inc();
    }
}

fn plugin_labels(plugin: &str) -> PluginLabels {
    PluginLabels {
        plugin: plugin.to_owned(),
    }
}

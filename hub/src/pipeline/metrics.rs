//! The data path's Prometheus metrics, one family per stage, registered
//! into the hub's registry ([`crate::metrics::register`]) by [`init`] when
//! the hub starts, with every configured plugin's series at zero, so
//! `/metrics` lists them before their first sample:
//!
//! * `switchyard_records_in_total{plugin}`: records received from an input.
//! * `switchyard_records_enriched_total{plugin}` and
//!   `switchyard_records_enrich_failures_total{plugin}`: per enricher.
//! * `switchyard_records_stored_total{plugin,outcome}`: upserts by input
//!   plugin (the instance name, never a `source` a plugin chose) and
//!   outcome (`created`, `updated`, `unchanged`).
//! * `switchyard_events_delivered_total{plugin}`: events an output acked.
//! * `switchyard_output_lag_seconds{plugin}`: age of the oldest event the
//!   output has not finished (0 when caught up).
//! * `switchyard_dead_letters_total{plugin,stage}`: records or events
//!   moved to the dead letters.
//! * `switchyard_output_lag_alert{plugin}`: 1 while the output lags past
//!   its `lag_alert` (kept by [`super::lag_alert`]).
//!
//! Recording allocates nothing once a plugin has been seen: each series'
//! handle is looked up in the family once per plugin and kept
//! ([`PerPlugin`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;

use crate::config::Config;
use crate::store::{Stage, Upserted};

/// Per-plugin handles of one or more series, looked up by the plugin's
/// instance name without allocating; each plugin's handles are made once,
/// on its first use. Handles are cheap clones (an `Arc` each).
#[derive(Debug)]
pub(crate) struct PerPlugin<H> {
    handles: RwLock<HashMap<String, H>>,
}

impl<H> Default for PerPlugin<H> {
    fn default() -> Self {
        PerPlugin {
            handles: RwLock::new(HashMap::new()),
        }
    }
}

impl<H: Clone> PerPlugin<H> {
    /// The handles of `plugin`, made by `make` the first time.
    pub(crate) fn get(&self, plugin: &str, make: impl FnOnce(&str) -> H) -> H {
        {
            let handles = match self.handles.read() {
                Ok(handles) => handles,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(found) = handles.get(plugin) {
                return found.clone();
            }
        }
        let mut handles = match self.handles.write() {
            Ok(handles) => handles,
            Err(poisoned) => poisoned.into_inner(),
        };
        handles
            .entry(plugin.to_owned())
            .or_insert_with(|| make(plugin))
            .clone()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    plugin: String,
    stage: &'static str,
}

type LagGauge = Gauge<f64, AtomicU64>;

/// One plugin's `records_stored` series, by outcome.
#[derive(Debug, Clone)]
struct StoredSeries {
    created: Counter,
    updated: Counter,
    unchanged: Counter,
}

/// The data path's counters and gauges.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    records_in: Family<PluginLabels, Counter>,
    enriched: Family<PluginLabels, Counter>,
    enrich_failures: Family<PluginLabels, Counter>,
    stored: Family<StoredLabels, Counter>,
    delivered: Family<PluginLabels, Counter>,
    lag: Family<PluginLabels, LagGauge>,
    dead_letters: Family<DeadLetterLabels, Counter>,
    records_in_by_plugin: PerPlugin<Counter>,
    enriched_by_plugin: PerPlugin<Counter>,
    enrich_failures_by_plugin: PerPlugin<Counter>,
    stored_by_plugin: PerPlugin<StoredSeries>,
    delivered_by_plugin: PerPlugin<Counter>,
    lag_by_plugin: PerPlugin<LagGauge>,
    /// By stage: enrich, output, webhook.
    dead_letters_by_plugin: [PerPlugin<Counter>; 3],
}

/// Registers the data path's metrics (once) and creates, at zero, the
/// series of every configured plugin by what it does (inputs: records in
/// and stored; enrichers; outputs: delivered, lag, dead letters), so
/// `/metrics` lists them before their first sample. The metrics crate leaves
/// a family with no series out of the answer, as the Go client does. The
/// hub calls it at start; calling it again only adds missing series.
pub fn init(config: &Config) {
    super::lag_alert::init(config);
    let metrics = global();
    for plugin in &config.plugins {
        let name = plugin.name.as_str();
        if plugin.poll.is_some() || plugin.webhook.is_some() {
            metrics.records_in_counter(name);
            metrics.stored_series(name);
        }
        if plugin.webhook.is_some() {
            metrics.dead_letters_counter(name, Stage::Webhook);
        }
        if plugin.output.is_some() {
            metrics.delivered_counter(name);
            metrics.lag_gauge(name);
            metrics.dead_letters_counter(name, Stage::Output);
        }
    }
    for enricher in config.pipeline.enrichers() {
        metrics.enriched_counter(&enricher);
        metrics.enrich_failures_counter(&enricher);
        metrics.dead_letters_counter(&enricher, Stage::Enrich);
    }
}

/// The process-wide instance (registered by the first call, normally
/// [`init`]).
pub fn global() -> &'static Arc<PipelineMetrics> {
    static METRICS: OnceLock<Arc<PipelineMetrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = Arc::new(PipelineMetrics::default());
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
                "Record upserts by input plugin and outcome (created, updated, unchanged)",
                metrics.stored.clone(),
            );
            registry.register(
                "switchyard_events_delivered",
                "Events an output plugin acknowledged",
                metrics.delivered.clone(),
            );
            registry.register_with_unit(
                "switchyard_output_lag",
                "Age of the oldest event the output has not finished (0 when caught up)",
                Unit::Seconds,
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

fn plugin_labels(plugin: &str) -> PluginLabels {
    PluginLabels {
        plugin: plugin.to_owned(),
    }
}

impl PipelineMetrics {
    /// `count` records arrived from input `plugin`.
    pub fn records_in(&self, plugin: &str, count: usize) {
        self.records_in_counter(plugin).inc_by(count as u64);
    }

    /// Enricher `plugin` enriched one record.
    pub fn enriched(&self, plugin: &str) {
        self.enriched_counter(plugin).inc();
    }

    /// Enricher `plugin` failed one record for good.
    pub fn enrich_failed(&self, plugin: &str) {
        self.enrich_failures_counter(plugin).inc();
    }

    /// Records from input `plugin` (its instance name) were upserted with
    /// these outcomes.
    pub fn stored(&self, plugin: &str, outcomes: &[Upserted]) {
        let (mut created, mut updated, mut unchanged) = (0u64, 0u64, 0u64);
        for outcome in outcomes {
            match outcome {
                Upserted::Created { .. } => created += 1,
                Upserted::Updated { .. } => updated += 1,
                Upserted::Unchanged { .. } => unchanged += 1,
            }
        }
        let series = self.stored_series(plugin);
        series.created.inc_by(created);
        series.updated.inc_by(updated);
        series.unchanged.inc_by(unchanged);
    }

    /// Output `plugin` acknowledged `count` events.
    pub fn delivered(&self, plugin: &str, count: usize) {
        self.delivered_counter(plugin).inc_by(count as u64);
    }

    /// Output `plugin`'s oldest unfinished event is `seconds` old (its
    /// `lag_alert` is assessed too, [`super::lag_alert`]).
    pub fn lag(&self, plugin: &str, seconds: f64) {
        self.lag_gauge(plugin).set(seconds);
        super::lag_alert::global().observe(
            plugin,
            std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default(),
        );
    }

    /// One record or event of `plugin` went to the dead letters.
    pub fn dead_lettered(&self, plugin: &str, stage: Stage) {
        self.dead_letters_counter(plugin, stage).inc();
    }

    fn records_in_counter(&self, plugin: &str) -> Counter {
        self.records_in_by_plugin.get(plugin, |plugin| {
            self.records_in
                .get_or_create(&plugin_labels(plugin))
                .clone()
        })
    }

    fn enriched_counter(&self, plugin: &str) -> Counter {
        self.enriched_by_plugin.get(plugin, |plugin| {
            self.enriched.get_or_create(&plugin_labels(plugin)).clone()
        })
    }

    fn enrich_failures_counter(&self, plugin: &str) -> Counter {
        self.enrich_failures_by_plugin.get(plugin, |plugin| {
            self.enrich_failures
                .get_or_create(&plugin_labels(plugin))
                .clone()
        })
    }

    fn stored_series(&self, plugin: &str) -> StoredSeries {
        self.stored_by_plugin.get(plugin, |plugin| {
            let counter = |outcome| {
                self.stored
                    .get_or_create(&StoredLabels {
                        plugin: plugin.to_owned(),
                        outcome,
                    })
                    .clone()
            };
            StoredSeries {
                created: counter("created"),
                updated: counter("updated"),
                unchanged: counter("unchanged"),
            }
        })
    }

    fn delivered_counter(&self, plugin: &str) -> Counter {
        self.delivered_by_plugin.get(plugin, |plugin| {
            self.delivered.get_or_create(&plugin_labels(plugin)).clone()
        })
    }

    fn lag_gauge(&self, plugin: &str) -> LagGauge {
        self.lag_by_plugin.get(plugin, |plugin| {
            self.lag.get_or_create(&plugin_labels(plugin)).clone()
        })
    }

    fn dead_letters_counter(&self, plugin: &str, stage: Stage) -> Counter {
        let by_stage = match stage {
            Stage::Enrich => &self.dead_letters_by_plugin[0],
            Stage::Output => &self.dead_letters_by_plugin[1],
            Stage::Webhook => &self.dead_letters_by_plugin[2],
        };
        by_stage.get(plugin, |plugin| {
            self.dead_letters
                .get_or_create(&DeadLetterLabels {
                    plugin: plugin.to_owned(),
                    stage: stage.as_str(),
                })
                .clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_records_are_counted_by_plugin_and_outcome() {
        let metrics = global();
        metrics.stored(
            "pipeline-unit",
            &[
                Upserted::Created {
                    record_id: 1,
                    event_id: 1,
                },
                Upserted::Created {
                    record_id: 2,
                    event_id: 2,
                },
                Upserted::Unchanged { record_id: 3 },
            ],
        );
        metrics.dead_lettered("pipeline-unit", Stage::Output);
        metrics.lag("pipeline-unit", 1.5);
        let text = crate::metrics::global().encode();
        for expected in [
            r#"switchyard_records_stored_total{plugin="pipeline-unit",outcome="created"} 2"#,
            r#"switchyard_records_stored_total{plugin="pipeline-unit",outcome="updated"} 0"#,
            r#"switchyard_records_stored_total{plugin="pipeline-unit",outcome="unchanged"} 1"#,
            r#"switchyard_dead_letters_total{plugin="pipeline-unit",stage="output"} 1"#,
            r#"switchyard_output_lag_seconds{plugin="pipeline-unit"} 1.5"#,
            "# UNIT switchyard_output_lag_seconds seconds",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}

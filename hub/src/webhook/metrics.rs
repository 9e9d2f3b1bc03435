//! Webhook metrics, registered into the hub's registry by [`init`] when the
//! hub starts: `switchyard_webhook_requests_total{plugin,outcome}` (every
//! answer: `accepted`, `duplicate`, `replied`, `unauthorized`, `too_large`,
//! `inbox_full`, ...), `switchyard_webhook_inbox_pending{plugin}` and
//! `switchyard_webhook_deliveries_total{plugin,outcome}` (`done`, `dead`).
//!
//! Recording allocates nothing once a (plugin, outcome) pair has been seen:
//! its counter handle is looked up in the family once and kept.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{Answer, WebhookError};
use crate::config::Config;
use crate::pipeline::metrics::PerPlugin;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

/// A counter family by plugin and outcome, with each series' handle kept
/// after its first use.
#[derive(Debug, Default)]
struct ByOutcome {
    family: Family<OutcomeLabels, Counter>,
    handles: RwLock<HashMap<String, HashMap<&'static str, Counter>>>,
}

impl ByOutcome {
    /// Counts one `outcome` of `plugin`.
    fn inc(&self, plugin: &str, outcome: &'static str) {
        self.inc_by(plugin, outcome, 1);
    }

    /// Counts `count` `outcome`s of `plugin` (0 creates the series).
    fn inc_by(&self, plugin: &str, outcome: &'static str, count: u64) {
        {
            let handles = match self.handles.read() {
                Ok(handles) => handles,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(counter) = handles
                .get(plugin)
                .and_then(|outcomes| outcomes.get(outcome))
            {
                counter.inc_by(count);
                return;
            }
        }
        let mut handles = match self.handles.write() {
            Ok(handles) => handles,
            Err(poisoned) => poisoned.into_inner(),
        };
        handles
            .entry(plugin.to_owned())
            .or_default()
            .entry(outcome)
            .or_insert_with(|| {
                self.family
                    .get_or_create(&OutcomeLabels {
                        plugin: plugin.to_owned(),
                        outcome,
                    })
                    .clone()
            })
            .inc_by(count);
    }
}

#[derive(Debug, Default)]
struct WebhookMetrics {
    requests: ByOutcome,
    pending: Family<PluginLabels, Gauge>,
    pending_by_plugin: PerPlugin<Gauge>,
    deliveries: ByOutcome,
}

/// Registers the webhook metrics (once) and creates, at zero, the series of
/// every plugin with a `[plugins.NAME.webhook]` section (inbox pending,
/// requests accepted, deliveries done and dead), so `/metrics` lists the
/// families before their first sample (the metrics crate leaves a family
/// with no series out). The hub calls it at start.
pub fn init(config: &Config) {
    let metrics = metrics();
    for plugin in config
        .plugins
        .iter()
        .filter(|plugin| plugin.webhook.is_some())
    {
        metrics.requests.inc_by(&plugin.name, "accepted", 0);
        metrics.deliveries.inc_by(&plugin.name, "done", 0);
        metrics.deliveries.inc_by(&plugin.name, "dead", 0);
        set_pending(&plugin.name, 0);
    }
}

fn metrics() -> &'static WebhookMetrics {
    static METRICS: OnceLock<WebhookMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = WebhookMetrics::default();
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_webhook_requests",
                "Webhook requests answered, by outcome",
                metrics.requests.family.clone(),
            );
            registry.register(
                "switchyard_webhook_inbox_pending",
                "Accepted webhook deliveries waiting for the plugin",
                metrics.pending.clone(),
            );
            registry.register(
                "switchyard_webhook_deliveries",
                "Webhook deliveries finished by the inbox worker: done or dead-lettered",
                metrics.deliveries.family.clone(),
            );
        });
        metrics
    })
}

/// Counts one answered request.
pub fn request(plugin: &str, result: &Result<Answer, WebhookError>) {
    let outcome = match result {
        Ok(Answer::Accepted { .. }) => "accepted",
        Ok(Answer::Duplicate { .. }) => "duplicate",
        Ok(Answer::Reply { .. }) => "replied",
        Err(error) => error.label(),
    };
    metrics().requests.inc(plugin, outcome);
}

/// Sets the pending gauge.
pub fn set_pending(plugin: &str, pending: u64) {
    let metrics = metrics();
    metrics
        .pending_by_plugin
        .get(plugin, |plugin| {
            metrics
                .pending
                .get_or_create(&PluginLabels {
                    plugin: plugin.to_owned(),
                })
                .clone()
        })
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
}

/// Counts a delivery the worker finished (`done` or `dead`).
pub fn handled(plugin: &str, outcome: &'static str) {
    metrics().deliveries.inc(plugin, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_deliveries_are_counted_by_plugin_and_outcome() {
        let accepted = Ok(Answer::Accepted {
            delivery_id: "d".into(),
        });
        request("webhook-unit", &accepted);
        request("webhook-unit", &accepted);
        request(
            "webhook-unit",
            &Err(WebhookError::NotRunning("webhook-unit".into())),
        );
        handled("webhook-unit", "dead");
        set_pending("webhook-unit", 3);
        let text = crate::metrics::global().encode();
        for expected in [
            r#"switchyard_webhook_requests_total{plugin="webhook-unit",outcome="accepted"} 2"#,
            r#"switchyard_webhook_requests_total{plugin="webhook-unit",outcome="not_running"} 1"#,
            r#"switchyard_webhook_deliveries_total{plugin="webhook-unit",outcome="dead"} 1"#,
            r#"switchyard_webhook_inbox_pending{plugin="webhook-unit"} 3"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}

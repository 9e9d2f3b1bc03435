//! Webhook metrics, registered into the hub's registry on first use:
//! `switchyard_webhook_requests_total{plugin,outcome}` (every answer:
//! `accepted`, `duplicate`, `replied`, `unauthorized`, `too_large`,
//! `inbox_full`, ...), `switchyard_webhook_inbox_pending{plugin}` and
//! `switchyard_webhook_deliveries_total{plugin,outcome}` (`done`, `dead`).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{Answer, WebhookError};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

struct WebhookMetrics {
    requests: Family<OutcomeLabels, Counter>,
    pending: Family<PluginLabels, Gauge>,
    deliveries: Family<OutcomeLabels, Counter>,
}

fn metrics() -> &'static WebhookMetrics {
    static METRICS: OnceLock<WebhookMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = WebhookMetrics {
            requests: Family::default(),
            pending: Family::default(),
            deliveries: Family::default(),
        };
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_webhook_requests",
                "Webhook requests answered, by outcome",
                metrics.requests.clone(),
            );
            registry.register(
                "switchyard_webhook_inbox_pending",
                "Accepted webhook deliveries waiting for the plugin",
                metrics.pending.clone(),
            );
            registry.register(
                "switchyard_webhook_deliveries",
                "Webhook deliveries finished by the inbox worker: done or dead-lettered",
                metrics.deliveries.clone(),
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
    metrics()
        .requests
        .get_or_create(&OutcomeLabels {
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// Sets the pending gauge.
pub fn set_pending(plugin: &str, pending: u64) {
    metrics()
        .pending
        .get_or_create(&PluginLabels {
            plugin: plugin.to_owned(),
        })
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
}

/// Counts a delivery the worker finished (`done` or `dead`).
pub fn handled(plugin: &str, outcome: &str) {
    metrics()
        .deliveries
        .get_or_create(&OutcomeLabels {
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

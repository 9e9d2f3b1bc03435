//! The hub's Prometheus registry: one process-wide registry (crate
//! `prometheus-client`), encoded as OpenMetrics text for `GET /metrics`.
//!
//! This module holds only the registry. Each concern owns its metrics in its
//! own `metrics` module (`supervisor::metrics`, `retry::metrics`,
//! `pipeline::metrics`, `webhook::metrics`, `store::metrics`) and registers
//! them here once, at start-up, with [`register`]:
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//!
//! let stored: Counter = Counter::default();
//! switchyard_hub::metrics::register(|registry| {
//!     registry.register("switchyard_doc_example", "An example", stored.clone());
//! });
//! stored.inc();
//! assert!(switchyard_hub::metrics::global().encode().contains("switchyard_doc_example_total 1"));
//! ```
//!
//! Every metric about a plugin carries the label `plugin` (the instance
//! name); call metrics add `rpc` (`poll`, `webhook`, `enrich`, `events`).

use std::sync::{Mutex, OnceLock};

use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry every module's metrics live in.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
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

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Registers metrics of a module into the hub's registry (see the module
/// documentation for an example). Register each metric once.
pub fn register(add: impl FnOnce(&mut Registry)) {
    let mut registry = match global().registry.lock() {
        Ok(registry) => registry,
        Err(poisoned) => poisoned.into_inner(),
    };
    add(&mut registry);
}

//! Store metrics, registered into the hub's registry on first use:
//! `switchyard_store_group_commits_total{outcome}` (`committed`, `failed`),
//! `switchyard_store_group_commit_jobs` (writes per group commit),
//! `switchyard_store_group_commit_weight` (rows, roughly, per group commit)
//! and `switchyard_store_group_commit_seconds` (from begin to commit).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The store's metrics.
pub(crate) struct StoreMetrics {
    commits: Family<OutcomeLabels, Counter>,
    jobs: Histogram,
    weight: Histogram,
    seconds: Histogram,
}

impl StoreMetrics {
    /// Counts one group commit of `jobs` writes weighing `weight` that took
    /// `elapsed`.
    pub(crate) fn batch(&self, jobs: usize, weight: usize, committed: bool, elapsed: Duration) {
        let outcome = if committed { "committed" } else { "failed" };
        self.commits.get_or_create(&OutcomeLabels { outcome }).inc();
        self.jobs.observe(jobs as f64);
        self.weight.observe(weight as f64);
        self.seconds.observe(elapsed.as_secs_f64());
    }
}

/// The process-wide store metrics.
pub(crate) fn global() -> &'static StoreMetrics {
    static METRICS: OnceLock<StoreMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = StoreMetrics {
            commits: Family::default(),
            jobs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            weight: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        };
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_store_group_commits",
                "Group commits of the store's writer, by outcome",
                metrics.commits.clone(),
            );
            registry.register(
                "switchyard_store_group_commit_jobs",
                "Writes per group commit",
                metrics.jobs.clone(),
            );
            registry.register(
                "switchyard_store_group_commit_weight",
                "Rows (roughly) per group commit",
                metrics.weight.clone(),
            );
            registry.register(
                "switchyard_store_group_commit_seconds",
                "Time from a group commit's begin to its commit",
                metrics.seconds.clone(),
            );
        });
        metrics
    })
}

//! Store metrics, registered into the hub's registry by [`init`] when the
//! hub starts:
//!
//! * `switchyard_store_group_commits_total{outcome}` (`committed`, `failed`);
//! * `switchyard_store_group_commit_jobs`: writes per group commit (a
//!   histogram);
//! * `switchyard_store_group_commit_rows`: rows, roughly, per group commit
//!   (a histogram; the writes' own estimate of their size);
//! * `switchyard_store_group_commit_runs`: runs per committed group commit
//!   (a histogram): the groups of a grouped write type and the lone writes
//!   its transaction ran, each with statements of its own
//!   (`WriteJob::GROUPED`);
//! * `switchyard_store_group_commit_duration_seconds`: from a group
//!   commit's begin to its commit (a histogram);
//! * `switchyard_store_patient_waits_total{outcome}`: group commits of
//!   patient writes alone that waited for company (`WriteJob::patient`),
//!   by whether another write came to share the commit (`joined`) or the
//!   patience ran out (`alone`);
//! * `switchyard_store_available`: 1 while the database takes writes, 0
//!   during an outage (`health.rs`);
//! * `switchyard_store_outages_total`: outages begun;
//! * `switchyard_store_fenced_writes_total`: writes of leased work refused
//!   because another hub had taken the lease over (`leases.rs`).
//!
//! The outcome counters are looked up once, at registration.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The store's metrics.
pub(crate) struct StoreMetrics {
    committed: Counter,
    failed: Counter,
    joined: Counter,
    alone: Counter,
    jobs: Histogram,
    rows: Histogram,
    runs: Histogram,
    seconds: Histogram,
    available: Gauge,
    outages: Counter,
    fenced: Counter,
}

impl StoreMetrics {
    /// Records that the database became unavailable (`false`) or
    /// available again (`true`).
    pub(crate) fn availability(&self, available: bool) {
        self.available.set(i64::from(available));
        if !available {
            self.outages.inc();
        }
    }

    /// Counts one write refused by its fence.
    pub(crate) fn fenced(&self) {
        self.fenced.inc();
    }

    /// Counts one group commit that waited for company for its patient
    /// writes: `joined` when another write came to share it.
    pub(crate) fn patient_wait(&self, joined: bool) {
        if joined {
            self.joined.inc();
        } else {
            self.alone.inc();
        }
    }

    /// Counts one group commit of `jobs` writes weighing `weight` (rows,
    /// roughly) that took `elapsed`: `runs` is the runs of its transaction
    /// if it committed, `None` if it failed.
    pub(crate) fn batch(&self, jobs: usize, weight: usize, runs: Option<usize>, elapsed: Duration) {
        match runs {
            Some(runs) => {
                self.committed.inc();
                self.runs.observe(runs as f64);
            }
            None => {
                self.failed.inc();
            }
        }
        self.jobs.observe(jobs as f64);
        self.rows.observe(weight as f64);
        self.seconds.observe(elapsed.as_secs_f64());
    }
}

/// Registers the store's metrics (once; later calls do nothing). The hub
/// calls it at start so every family is listed before its first sample.
pub fn init() {
    global();
}

/// The process-wide store metrics (registered by the first call, normally
/// [`init`]).
pub(crate) fn global() -> &'static StoreMetrics {
    static METRICS: OnceLock<StoreMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let commits: Family<OutcomeLabels, Counter> = Family::default();
        // One statement each: `get_or_create`'s guard holds the family's
        // read lock until the end of the statement.
        let committed = commits
            .get_or_create(&OutcomeLabels {
                outcome: "committed",
            })
            .clone();
        let failed = commits
            .get_or_create(&OutcomeLabels { outcome: "failed" })
            .clone();
        let waits: Family<OutcomeLabels, Counter> = Family::default();
        let joined = waits
            .get_or_create(&OutcomeLabels { outcome: "joined" })
            .clone();
        let alone = waits
            .get_or_create(&OutcomeLabels { outcome: "alone" })
            .clone();
        let metrics = StoreMetrics {
            committed,
            failed,
            joined,
            alone,
            jobs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            rows: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            runs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            available: Gauge::default(),
            outages: Counter::default(),
            fenced: Counter::default(),
        };
        // Every store starts up.
        metrics.available.set(1);
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_store_group_commits",
                "Group commits of the store's writer, by outcome",
                commits,
            );
            registry.register(
                "switchyard_store_patient_waits",
                "Group commits of patient writes alone that waited for another write to share them, by whether one came (joined) or not (alone)",
                waits,
            );
            registry.register(
                "switchyard_store_group_commit_jobs",
                "Writes per group commit",
                metrics.jobs.clone(),
            );
            registry.register(
                "switchyard_store_group_commit_rows",
                "Rows (roughly) written per group commit",
                metrics.rows.clone(),
            );
            registry.register(
                "switchyard_store_group_commit_runs",
                "Runs (groups of a grouped write type, and lone writes) per committed group commit, each with statements of its own",
                metrics.runs.clone(),
            );
            registry.register_with_unit(
                "switchyard_store_group_commit_duration",
                "Time from a group commit's begin to its commit",
                Unit::Seconds,
                metrics.seconds.clone(),
            );
            registry.register(
                "switchyard_store_available",
                "1 while the database takes writes, 0 while it is unavailable (down, unreachable or full)",
                metrics.available.clone(),
            );
            registry.register(
                "switchyard_store_outages",
                "Database outages begun (the store marked unavailable)",
                metrics.outages.clone(),
            );
            registry.register(
                "switchyard_store_fenced_writes",
                "Writes of leased work refused because another hub had taken the lease over",
                metrics.fenced.clone(),
            );
        });
        metrics
    })
}

//! Cluster metrics, registered by [`init`] when the hub starts:
//!
//! * `switchyard_cluster_lease_changes_total{work, change}`: leases this hub
//!   `acquired`, `released` (handed to another hub) or `lost` (taken over,
//!   or not renewed in time);
//! * `switchyard_cluster_lease_held{work}`: 1 while this hub holds the
//!   work's lease;
//! * `switchyard_cluster_hubs_alive`: hubs with a fresh heartbeat, this one
//!   included, at the last heartbeat.
//!
//! Labels are work names from `plugins.toml` and fixed words.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This hub took it.
    Acquired,
    /// This hub gave it up for another hub.
    Released,
    /// Another hub took it over, or it ran out before this hub could renew it.
    Lost,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Acquired => "acquired",
            Change::Released => "released",
            Change::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    work: String,
    change: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkLabels {
    work: String,
}

/// The cluster's metric families.
pub(crate) struct ClusterMetrics {
    changes: Family<ChangeLabels, Counter>,
    held: Family<WorkLabels, Gauge>,
    alive: Gauge,
}

impl ClusterMetrics {
    /// Counts a change of `work`'s lease and sets its `held` gauge.
    pub(crate) fn change(&self, work: &str, change: Change) {
        self.changes
            .get_or_create(&ChangeLabels {
                work: work.to_owned(),
                change: change.as_str(),
            })
            .inc();
        let held = i64::from(change == Change::Acquired);
        self.held
            .get_or_create(&WorkLabels {
                work: work.to_owned(),
            })
            .set(held);
    }

    /// Creates `work`'s series at zero.
    pub(crate) fn known(&self, work: &str) {
        for change in [Change::Acquired, Change::Released, Change::Lost] {
            let _ = self.changes.get_or_create(&ChangeLabels {
                work: work.to_owned(),
                change: change.as_str(),
            });
        }
        let _ = self.held.get_or_create(&WorkLabels {
            work: work.to_owned(),
        });
    }

    /// Sets the number of hubs alive.
    pub(crate) fn alive(&self, hubs: usize) {
        self.alive.set(i64::try_from(hubs).unwrap_or(i64::MAX));
    }
}

/// Registers the cluster metrics (once; later calls do nothing).
pub fn init() {
    global();
}

/// The process-wide cluster metrics.
pub(crate) fn global() -> &'static ClusterMetrics {
    static METRICS: OnceLock<ClusterMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = ClusterMetrics {
            changes: Family::default(),
            held: Family::default(),
            alive: Gauge::default(),
        };
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_cluster_lease_changes",
                "Changes of this hub's work leases, by work and change (acquired, released, lost)",
                metrics.changes.clone(),
            );
            registry.register(
                "switchyard_cluster_lease_held",
                "1 while this hub holds the work's lease",
                metrics.held.clone(),
            );
            registry.register(
                "switchyard_cluster_hubs_alive",
                "Hubs with a fresh heartbeat in the shared database, this one included",
                metrics.alive.clone(),
            );
        });
        metrics
    })
}

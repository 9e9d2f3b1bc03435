//! Many hubs as one on a shared PostgreSQL database (see
//! `docs/scaling.md`).
//!
//! Three kinds of work each belong to one hub at a time: a polling input's
//! schedule (`poll:NAME`), an output's delivery (`output:NAME`) and the
//! processing of a webhook plugin's inbox (`inbox:NAME`). Ownership is a
//! lease row in the database ([`crate::store::leases`]):
//!
//! * [`manager`]: each hub's heartbeat, every quarter of `lease_ttl`; it
//!   renews the leases it holds, gives up those [`assign`] now gives to
//!   another live hub, and takes those [`assign`] gives to it once they are
//!   free or have expired. A lease is written for three quarters of
//!   `lease_ttl`, so a dead hub's work is taken over within `lease_ttl`.
//! * [`gate`]: runs a piece of work only while its lease is held, and stops
//!   it (waiting for it to end) before the lease is given up.
//! * [`demand`]: starts the plugin processes that only leased work needs
//!   when that work is taken, and stops them when it is given up.
//!
//! Every commit of leased work carries its [`Fence`] and checks it in its
//! own transaction ([`crate::store::StoreTx::check_fence`]), so a hub that
//! lost its lease (paused, cut off) commits nothing afterwards.
//!
//! With SQLite the hub is alone ([`Cluster::solo`]): every lease is granted
//! at once, for good, with no fence.

pub mod assign;
pub mod demand;
pub mod gate;
mod manager;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{Fence, Store};
pub use demand::Demand;
pub use gate::run_while_owned;

/// The kinds of leased work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkKind {
    /// A polling input's schedule.
    Poll,
    /// An output's delivery.
    Output,
    /// The processing of a webhook plugin's inbox.
    Inbox,
}

impl WorkKind {
    /// The lease name of this kind of work for plugin `plugin`.
    pub fn work(self, plugin: &str) -> String {
        let prefix = match self {
            WorkKind::Poll => "poll",
            WorkKind::Output => "output",
            WorkKind::Inbox => "inbox",
        };
        format!("{prefix}:{plugin}")
    }
}

/// Permission to run a piece of work: granted with the lease's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The epoch (0 for a hub alone on SQLite).
    pub epoch: i64,
    /// What the work's commits must check (`None` for a hub alone).
    pub fence: Option<Fence>,
}

/// The lease on one piece of work, as this hub sees it: [`Lease::grants`]
/// is `Some` while the hub holds it. Dropping it gives the work up.
#[derive(Debug)]
pub struct Lease {
    work: Arc<str>,
    grants: watch::Receiver<Option<Grant>>,
    /// The manager, or `None` for a hub alone (whose sender lives here).
    shared: Option<Arc<manager::Shared>>,
    /// A hub alone: the grant's sender, and the hub's set of works.
    solo: Option<(watch::Sender<Option<Grant>>, SoloWorks)>,
}

/// The heartbeat task and the token that stops it.
type Heartbeat = (CancellationToken, JoinHandle<()>);

/// The works a hub alone runs (all it is given), by name, with how many
/// leases name each.
type SoloWorks = Arc<Mutex<BTreeMap<String, usize>>>;

impl Lease {
    /// The work's name.
    pub fn work(&self) -> &str {
        &self.work
    }

    /// The grants as they change.
    pub fn grants(&self) -> watch::Receiver<Option<Grant>> {
        self.grants.clone()
    }

    /// Tells the manager the work granted at `epoch` has stopped (it may
    /// give the lease up now, if it was giving it up).
    pub(crate) fn stopped(&self, epoch: i64) {
        if let Some(shared) = &self.shared {
            shared.stopped(&self.work, epoch);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.forget(&self.work);
        }
        if let Some((_, works)) = &self.solo {
            let mut works = lock(works);
            if let Some(count) = works.get_mut(&*self.work) {
                *count -= 1;
                if *count == 0 {
                    works.remove(&*self.work);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This hub's place among the hubs sharing its database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    id: Arc<str>,
    shared: Option<Arc<manager::Shared>>,
    task: Arc<Mutex<Option<Heartbeat>>>,
    solo_works: SoloWorks,
}

impl Cluster {
    /// A hub alone (SQLite): every lease is granted at once.
    pub fn solo(id: &str) -> Cluster {
        Cluster {
            id: Arc::from(id),
            shared: None,
            task: Arc::default(),
            solo_works: SoloWorks::default(),
        }
    }

    /// Joins the hubs on `store` (PostgreSQL) as `id`, listening on
    /// `listen`, with leases of `lease_ttl`: starts the heartbeat.
    pub fn join(store: Store, id: &str, listen: String, lease_ttl: Duration) -> Cluster {
        metrics::init();
        let shared = Arc::new(manager::Shared::new(store, id, listen, lease_ttl));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(manager::run(shared.clone(), cancel.clone()));
        tracing::info!(hub = %id, lease_ttl = ?lease_ttl, "Joined the hubs sharing the database.");
        Cluster {
            id: Arc::from(id),
            shared: Some(shared),
            task: Arc::new(Mutex::new(Some((cancel, task)))),
            solo_works: SoloWorks::default(),
        }
    }

    /// This hub's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this hub shares its database with others (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// `lease_ttl`, for a shared hub.
    pub fn lease_ttl(&self) -> Option<Duration> {
        self.shared.as_ref().map(|shared| shared.ttl)
    }

    /// The lease on `work`, registered with the manager (which takes it when
    /// it is this hub's to take).
    pub fn lease(&self, work: String) -> Lease {
        match &self.shared {
            None => {
                let (sender, grants) = watch::channel(Some(Grant {
                    epoch: 0,
                    fence: None,
                }));
                *lock(&self.solo_works).entry(work.clone()).or_default() += 1;
                Lease {
                    work: Arc::from(work),
                    grants,
                    shared: None,
                    solo: Some((sender, self.solo_works.clone())),
                }
            }
            Some(shared) => {
                let grants = shared.register(&work);
                Lease {
                    work: Arc::from(work),
                    grants,
                    shared: Some(shared.clone()),
                    solo: None,
                }
            }
        }
    }

    /// The works this hub holds now, with their epochs (all of them, at
    /// epoch 0, for a hub alone).
    pub fn held(&self) -> BTreeMap<String, i64> {
        match &self.shared {
            Some(shared) => shared.held(),
            None => lock(&self.solo_works)
                .keys()
                .map(|work| (work.clone(), 0))
                .collect(),
        }
    }

    /// How long after its last heartbeat a hub counts as alive (three
    /// quarters of `lease_ttl`), for a shared hub.
    pub fn alive_for(&self) -> Option<Duration> {
        self.shared.as_ref().map(|shared| shared.period())
    }

    /// Stops the heartbeat, gives up every lease still held and removes
    /// this hub's row, so the others take its work over at once. Call it
    /// after the leased work has stopped.
    pub async fn leave(&self) {
        let task = match self.task.lock() {
            Ok(mut task) => task.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((cancel, task)) = task {
            cancel.cancel();
            let _ = task.await;
        }
        if let Some(shared) = &self.shared {
            shared.leave().await;
        }
    }
}

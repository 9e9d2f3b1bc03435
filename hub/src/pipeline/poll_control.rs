//! What the admin API can do to a running poller, in one small type owned by
//! the poller and found by plugin name ([`PollControls`]):
//!
//! * [`PollControl::exclusive`]: the per-plugin lock the poller holds for
//!   the whole of each poll, so a checkpoint set or reset by an operator
//!   never lands in the middle of a poll (whose last commit would overwrite
//!   it);
//! * [`PollControl::poll_now`]: asks the poller's loop to poll now, through
//!   the scheduled poll's own code path, and waits for the outcome; the
//!   interval then counts from that poll;
//! * [`PollControl::last_poll`]: when the last poll ended, how many records
//!   it committed and why it failed, if it did (`last_poll_*` in the status;
//!   the actor owns the plugin's status, so these facts live here).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::retry::GiveUp;

/// What a poll did: records received from the plugin and committed (stored
/// or dead-lettered), and transactions committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Records committed.
    pub records: usize,
    /// Commits (batches that carried a checkpoint, or the final batch).
    pub commits: usize,
}

/// How a poll ended: its summary, or why it failed for good.
pub type PollResult = Result<PollSummary, GiveUp>;

/// The facts of the last poll that ran to an end (not one cut short by the
/// hub shutting down).
#[derive(Debug, Clone, PartialEq)]
pub struct LastPoll {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Records it committed (a failed poll keeps what it committed before
    /// failing).
    pub records: usize,
    /// Why it failed, or `None` when it succeeded.
    pub error: Option<String>,
}

/// A request to poll now, answered once the poll ended.
pub type Trigger = oneshot::Sender<PollResult>;

/// Why [`PollControl::poll_now`] got no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its poller is not running (the hub is stopping)")]
pub struct PollerGone;

/// The handle on one plugin's poller. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PollControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    lock: tokio::sync::Mutex<()>,
    triggers: mpsc::Sender<Trigger>,
    last: Mutex<Option<LastPoll>>,
    /// Whether this hub runs the poller now (it holds the polling lease).
    active: AtomicBool,
}

/// How many poll-now requests may wait for one poller.
const TRIGGER_QUEUE: usize = 16;

impl PollControl {
    /// A control and the receiver of its poll-now requests, for the poller.
    pub fn new() -> (PollControl, mpsc::Receiver<Trigger>) {
        let (triggers, receiver) = mpsc::channel(TRIGGER_QUEUE);
        let control = PollControl {
            inner: Arc::new(Inner {
                lock: tokio::sync::Mutex::new(()),
                triggers,
                last: Mutex::new(None),
                active: AtomicBool::new(false),
            }),
        };
        (control, receiver)
    }

    /// Takes the poller's lock: no poll runs (and none commits) while the
    /// guard lives. Waits at most `limit` for a running poll to end;
    /// `None` if it did not.
    pub async fn exclusive(&self, limit: Duration) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(limit, self.inner.lock.lock())
            .await
            .ok()
    }

    /// The poller's side of [`PollControl::exclusive`], held for a whole poll.
    pub(crate) async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.lock.lock().await
    }

    /// Asks the poller to poll now (after the poll under way, if any) and
    /// waits until that poll ended.
    pub async fn poll_now(&self) -> Result<PollResult, PollerGone> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .triggers
            .send(reply)
            .await
            .map_err(|_| PollerGone)?;
        answer.await.map_err(|_| PollerGone)
    }

    /// Whether this hub runs the poller now: `false` while another hub
    /// sharing the database holds its polling lease.
    pub fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Marks the poller as run here or not (its lease was granted or
    /// withdrawn).
    pub(crate) fn set_active(&self, active: bool) {
        self.inner.active.store(active, Ordering::Release);
    }

    /// The last poll's facts, or `None` before the first ended.
    pub fn last_poll(&self) -> Option<LastPoll> {
        match self.inner.last.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records how a poll ended (the poller only). A poll cancelled by the
    /// hub's shutdown is not recorded.
    pub(crate) fn record(&self, result: &PollResult, committed: usize) {
        let error = match result {
            Ok(_) => None,
            Err(GiveUp::Cancelled) => return,
            Err(reason) => Some(reason.to_string()),
        };
        let fact = LastPoll {
            at: Utc::now(),
            records: committed,
            error,
        };
        match self.inner.last.lock() {
            Ok(mut last) => *last = Some(fact),
            Err(poisoned) => *poisoned.into_inner() = Some(fact),
        }
    }
}

/// The poll controls of the plugins polled now, by instance name. Cheap to
/// clone (every clone sees the same map); a reload can insert and remove.
#[derive(Debug, Clone, Default)]
pub struct PollControls {
    controls: Arc<RwLock<HashMap<String, PollControl>>>,
}

impl PollControls {
    /// The control of plugin `name`'s poller, if it is polled.
    pub fn get(&self, name: &str) -> Option<PollControl> {
        match self.controls.read() {
            Ok(controls) => controls.get(name).cloned(),
            Err(poisoned) => poisoned.into_inner().get(name).cloned(),
        }
    }

    /// Registers (or replaces) the control of plugin `name`'s poller.
    pub fn insert(&self, name: &str, control: PollControl) {
        match self.controls.write() {
            Ok(mut controls) => controls.insert(name.to_owned(), control),
            Err(poisoned) => poisoned.into_inner().insert(name.to_owned(), control),
        };
    }

    /// Forgets plugin `name`'s poller (it is no longer polled).
    pub fn remove(&self, name: &str) {
        match self.controls.write() {
            Ok(mut controls) => controls.remove(name),
            Err(poisoned) => poisoned.into_inner().remove(name),
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_now_is_answered_by_the_poller_and_fails_once_it_is_gone() {
        let (control, mut triggers) = PollControl::new();
        let poller = tokio::spawn(async move {
            let reply = triggers.recv().await.unwrap();
            let _ = reply.send(Ok(PollSummary {
                records: 3,
                commits: 1,
            }));
        });
        let answer = control.poll_now().await.unwrap().unwrap();
        assert_eq!(answer.records, 3);
        poller.await.unwrap();
        assert_eq!(control.poll_now().await.unwrap_err(), PollerGone);
    }

    #[tokio::test]
    async fn exclusive_waits_for_the_poll_under_way() {
        let (control, _triggers) = PollControl::new();
        let guard = control.hold().await;
        assert!(control.exclusive(Duration::from_millis(20)).await.is_none());
        drop(guard);
        assert!(control.exclusive(Duration::from_millis(20)).await.is_some());
    }

    #[test]
    fn records_failures_and_successes_but_not_shutdowns() {
        let (control, _triggers) = PollControl::new();
        assert_eq!(control.last_poll(), None);
        control.record(&Err(GiveUp::Cancelled), 0);
        assert_eq!(control.last_poll(), None);
        control.record(&Err(GiveUp::Stopped { state: "stopped" }), 2);
        let last = control.last_poll().unwrap();
        assert_eq!(last.records, 2);
        assert_eq!(
            last.error.as_deref(),
            Some("it is not running (it is stopped)")
        );
        control.record(&Ok(PollSummary::default()), 0);
        assert_eq!(control.last_poll().unwrap().error, None);
    }
}

//! The heartbeat: every quarter of `lease_ttl`, write this hub's heartbeat,
//! renew the leases it holds, and take or give up work as [`super::assign`]
//! says. A lease is written for three quarters of `lease_ttl` and a hub
//! counts as alive for as long after its heartbeat, so when a hub dies its
//! work is free within three quarters of `lease_ttl` and taken at the next
//! heartbeat of its new owner: within `lease_ttl`.
//!
//! A lease this hub could not renew is given up locally at its deadline
//! (three quarters of `lease_ttl` after the start of its last successful
//! renewal) even while the database is unreachable; the fence catches any
//! commit that races that deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::Grant;
use super::metrics::{Change, global as metrics};
use crate::store::{Fence, Store};

/// How long a hub that stopped sending heartbeats stays listed in
/// `/api/v1/cluster` before its row is removed.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not held.
    Free,
    /// Held and granted to the work.
    Held { epoch: i64, deadline: Instant },
    /// Held, but withdrawn from the work: released once the work stopped.
    Releasing { epoch: i64, deadline: Instant },
}

#[derive(Debug)]
struct Slot {
    grants: watch::Sender<Option<Grant>>,
    state: State,
}

/// What the manager task and the leases share.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Store,
    id: Arc<str>,
    listen: String,
    pub(crate) ttl: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Shared {
    pub(crate) fn new(store: Store, id: &str, listen: String, ttl: Duration) -> Self {
        Shared {
            store,
            id: Arc::from(id),
            listen,
            ttl,
            slots: Mutex::default(),
        }
    }

    /// How long a lease and a heartbeat last.
    pub(crate) fn period(&self) -> Duration {
        self.ttl * 3 / 4
    }

    /// How often the heartbeat runs.
    fn tick(&self) -> Duration {
        self.ttl / 4
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers `work` (not held yet) and returns its grants.
    pub(crate) fn register(&self, work: &str) -> watch::Receiver<Option<Grant>> {
        metrics().known(work);
        let (grants, receiver) = watch::channel(None);
        let old = self.slots().insert(
            work.to_owned(),
            Slot {
                grants,
                state: State::Free,
            },
        );
        if let Some(old) = old {
            // Registered twice: give the old registration's lease up.
            self.give_up(work, old.state);
        }
        receiver
    }

    /// The work is no longer wanted here: give its lease up if held.
    pub(crate) fn forget(&self, work: &str) {
        let slot = self.slots().remove(work);
        if let Some(slot) = slot {
            self.give_up(work, slot.state);
        }
    }

    /// The work granted at `epoch` has stopped.
    pub(crate) fn stopped(&self, work: &str, epoch: i64) {
        let release = {
            let mut slots = self.slots();
            match slots.get_mut(work) {
                Some(slot) if slot.state_epoch() == Some(epoch) => {
                    if matches!(slot.state, State::Releasing { .. }) {
                        slot.state = State::Free;
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            }
        };
        if release {
            self.spawn_release(work, epoch);
        }
    }

    fn give_up(&self, work: &str, state: State) {
        if let State::Held { epoch, .. } | State::Releasing { epoch, .. } = state {
            self.spawn_release(work, epoch);
        }
    }

    fn spawn_release(&self, work: &str, epoch: i64) {
        let store = self.store.clone();
        let id = self.id.clone();
        let work = work.to_owned();
        tokio::spawn(async move {
            match store.release_lease(&work, &id, epoch).await {
                Ok(_) => {
                    metrics().change(&work, Change::Released);
                    tracing::info!(work = %work, epoch, "Lease given up for another hub.");
                }
                Err(err) => {
                    tracing::warn!(work = %work, error = %err, "Cannot give the lease up; it expires on its own.");
                }
            }
        });
    }

    /// The works held, with their epochs.
    pub(crate) fn held(&self) -> BTreeMap<String, i64> {
        self.slots()
            .iter()
            .filter_map(|(work, slot)| match slot.state {
                State::Held { epoch, .. } => Some((work.clone(), epoch)),
                _ => None,
            })
            .collect()
    }

    fn fence(&self, work: &str, epoch: i64) -> Fence {
        Fence {
            work: Arc::from(work),
            owner: self.id.clone(),
            epoch,
        }
    }

    /// One heartbeat (see the module's doc). `started` is when it began:
    /// a renewed lease lasts until `started` + the period.
    async fn beat(&self, started: Instant) -> Result<(), crate::store::StoreError> {
        let period = self.period();
        let alive = self
            .store
            .heartbeat(&self.id, &self.listen, period, FORGET_AFTER)
            .await?;
        metrics().alive(alive.len());
        // Renew.
        let held: Vec<(String, i64)> = self
            .slots()
            .iter()
            .filter_map(|(work, slot)| slot.state_epoch().map(|epoch| (work.clone(), epoch)))
            .collect();
        for (work, epoch) in held {
            let renewed = self
                .store
                .renew_lease(&work, &self.id, epoch, period)
                .await?;
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&work) else {
                continue;
            };
            if slot.state_epoch() != Some(epoch) {
                continue;
            }
            if renewed {
                slot.set_deadline(started + period);
            } else {
                tracing::warn!(work = %work, epoch, "Lease lost: another hub took it over.");
                slot.lose(&work);
            }
        }
        // Take and give up.
        let mut works: Vec<String> = self.slots().keys().cloned().collect();
        works.sort();
        for work in &works {
            let mine = super::assign::owner_of(work, &works, &alive) == Some(&*self.id);
            let state = match self.slots().get(work) {
                Some(slot) => slot.state,
                None => continue,
            };
            match state {
                State::Free if mine => {
                    let Some(epoch) = self.store.acquire_lease(work, &self.id, period).await?
                    else {
                        continue;
                    };
                    let mut slots = self.slots();
                    match slots.get_mut(work) {
                        Some(slot) if slot.state == State::Free => {
                            slot.state = State::Held {
                                epoch,
                                deadline: started + period,
                            };
                            metrics().change(work, Change::Acquired);
                            tracing::info!(work = %work, epoch, "Lease acquired.");
                            let grant = Grant {
                                epoch,
                                fence: Some(self.fence(work, epoch)),
                            };
                            slot.grants.send_replace(Some(grant));
                        }
                        _ => {
                            // Forgotten meanwhile: give it back.
                            drop(slots);
                            self.spawn_release(work, epoch);
                        }
                    }
                }
                State::Held { epoch, deadline } if !mine => {
                    let mut slots = self.slots();
                    if let Some(slot) = slots.get_mut(work) {
                        tracing::info!(work = %work, epoch, "Handing the work to another hub.");
                        slot.state = State::Releasing { epoch, deadline };
                        slot.grants.send_replace(None);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Withdraws every lease whose deadline has passed.
    fn expire(&self, now: Instant) {
        for (work, slot) in self.slots().iter_mut() {
            if let State::Held { deadline, epoch } | State::Releasing { deadline, epoch } =
                slot.state
                && deadline <= now
            {
                tracing::warn!(work = %work, epoch, "Lease ran out before it could be renewed; stopping the work.");
                slot.lose(work);
            }
        }
    }

    /// Gives every lease up and removes this hub's row.
    pub(crate) async fn leave(&self) {
        let held: Vec<(String, i64)> = self
            .slots()
            .iter_mut()
            .filter_map(|(work, slot)| {
                let epoch = slot.state_epoch()?;
                slot.state = State::Free;
                slot.grants.send_replace(None);
                Some((work.clone(), epoch))
            })
            .collect();
        for (work, epoch) in held {
            if let Err(err) = self.store.release_lease(&work, &self.id, epoch).await {
                tracing::warn!(work = %work, error = %err, "Cannot give the lease up; it expires on its own.");
            } else {
                metrics().change(&work, Change::Released);
            }
        }
        if let Err(err) = self.store.leave_cluster(&self.id, FORGET_AFTER).await {
            tracing::warn!(error = %err, "Cannot remove this hub's heartbeat row; it goes stale on its own.");
        }
    }
}

impl Slot {
    fn state_epoch(&self) -> Option<i64> {
        match self.state {
            State::Held { epoch, .. } | State::Releasing { epoch, .. } => Some(epoch),
            State::Free => None,
        }
    }

    fn set_deadline(&mut self, new: Instant) {
        if let State::Held { deadline, .. } | State::Releasing { deadline, .. } = &mut self.state {
            *deadline = new;
        }
    }

    fn lose(&mut self, work: &str) {
        self.state = State::Free;
        self.grants.send_replace(None);
        metrics().change(work, Change::Lost);
    }
}

/// The heartbeat loop, until `cancel` fires.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let span = tracing::info_span!("cluster", hub = %shared.id);
    let tick = shared.tick();
    let mut failing = false;
    async {
        loop {
            let started = Instant::now();
            match tokio::time::timeout(tick, shared.beat(started)).await {
                Ok(Ok(())) => {
                    if failing {
                        tracing::info!("Heartbeat written again.");
                    }
                    failing = false;
                }
                Ok(Err(err)) => {
                    if !failing {
                        tracing::warn!(error = %err, "Cannot write the heartbeat or renew the leases; retrying.");
                    }
                    failing = true;
                }
                Err(_) => {
                    if !failing {
                        tracing::warn!(timeout = ?tick, "The heartbeat timed out; retrying.");
                    }
                    failing = true;
                }
            }
            shared.expire(Instant::now());
            let next = started + tick;
            // Wake at the next heartbeat or the first deadline, whichever
            // comes first.
            let deadline = shared
                .slots()
                .values()
                .filter_map(|slot| match slot.state {
                    State::Held { deadline, .. } | State::Releasing { deadline, .. } => {
                        Some(deadline)
                    }
                    State::Free => None,
                })
                .min();
            let wake = deadline.map_or(next, |deadline| deadline.min(next));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() < next {
                shared.expire(Instant::now());
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep_until(next) => {}
                }
            }
        }
    }
    .instrument(span)
    .await;
}

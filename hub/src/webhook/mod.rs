//! Webhook ingestion: `POST /webhooks/NAME` authenticates the request,
//! writes it to the plugin's durable inbox and answers 202; a worker per
//! plugin then feeds the inbox to the plugin's `HandleWebhook` with retries
//! and stores the records it returns through the enrichment chain (in the
//! transaction that marks the delivery done). A plugin whose metadata asks for synchronous replies is
//! called while the client waits, and its records are stored before the
//! reply is sent.
//!
//! * [`verify`]: the signature schemes (pure, tested against published
//!   vectors and the official Standard Webhooks library).
//! * [`ingest`]: one request -> an [`Answer`] or a [`WebhookError`] (no
//!   axum here: `http::webhooks` adapts it).
//! * [`worker`]: the per-plugin inbox worker.
//! * [`metrics`]: request and inbox metrics.
//!
//! Architecture invariants: nothing is answered 2xx before the delivery (or,
//! for synchronous plugins, its records) is committed; a request that is
//! refused writes nothing; secrets never reach a log line, the inbox or the
//! plugin (the `api_key` header and parameter are removed first).

pub mod ingest;
pub mod metrics;
pub mod verify;
pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use ingest::{Answer, Incoming, WebhookError};

use crate::cluster::{Cluster, WorkKind, run_while_owned};
use crate::config::{PluginConfig, WebhookConfig};
use crate::pipeline::Ingest;
use crate::store::{DeadLetter, Stage, StoreError};
use crate::supervisor::PluginHandle;

/// How long a finished delivery stays in the inbox, so a replay of its
/// delivery id is recognised (7 days; longer than any sender's retry
/// schedule, such as Standard Webhooks' ~3 days).
pub const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// One plugin's webhook endpoint: its config, verifier, inbox counter and
/// the signal that wakes its worker.
#[derive(Debug)]
pub struct Endpoint {
    name: String,
    config: WebhookConfig,
    verifier: verify::Verifier,
    plugin: PluginHandle,
    /// Deliveries accepted and not yet done or dead (mirrors the inbox).
    pending: AtomicU64,
    /// Wakes the worker when a delivery is accepted.
    wake: Notify,
    /// Whether other hubs accept into (and process) the same inbox, so
    /// `pending` is only this hub's view and is read again from the store
    /// before a delivery is refused as over the limit.
    shared: bool,
}

impl Endpoint {
    /// The plugin's instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `[plugins.NAME.webhook]` section.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Deliveries waiting for the plugin.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Reads the inbox's pending count from `store` again (hubs sharing
    /// the inbox: the others' accepts and completions are not counted
    /// here); `true` when it did.
    async fn recount(&self, store: &crate::store::Store) -> bool {
        if !self.shared {
            return false;
        }
        match store.count_pending_inbox(&self.name).await {
            Ok(count) => {
                self.set_pending(count);
                true
            }
            Err(err) => {
                tracing::warn!(plugin = %self.name, error = %err, "Cannot count the inbox's pending deliveries.");
                false
            }
        }
    }

    fn set_pending(&self, value: u64) {
        self.pending.store(value, Ordering::Release);
        metrics::set_pending(&self.name, value);
    }

    /// Takes one of the `max_pending` places, or returns how many are
    /// taken. The place is given back when the reservation is dropped
    /// without [`Reservation::keep`].
    fn reserve(&self) -> Result<Reservation<'_>, u64> {
        let limit = self.config.max_pending;
        match self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |value| {
                (value < limit).then_some(value + 1)
            }) {
            Ok(before) => {
                metrics::set_pending(&self.name, before + 1);
                Ok(Reservation {
                    endpoint: self,
                    kept: false,
                })
            }
            Err(pending) => Err(pending),
        }
    }

    fn remove_pending(&self) {
        let before = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |value| {
                Some(value.saturating_sub(1))
            })
            .unwrap_or(0);
        metrics::set_pending(&self.name, before.saturating_sub(1));
    }
}

/// A place in an endpoint's inbox, held while a delivery is being written.
struct Reservation<'a> {
    endpoint: &'a Endpoint,
    kept: bool,
}

impl Reservation<'_> {
    /// The delivery was committed: the place stays taken until the worker
    /// finishes it.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.endpoint.remove_pending();
        }
    }
}

/// Every webhook endpoint of the hub. Cheap to clone. A reload opens and
/// closes endpoints one plugin at a time ([`Webhooks::open`],
/// [`Webhooks::close`]).
#[derive(Debug, Clone)]
pub struct Webhooks {
    endpoints: Arc<RwLock<HashMap<String, Arc<Endpoint>>>>,
    ingest: Ingest,
    cluster: Cluster,
}

/// One endpoint's running worker (while this hub holds its inbox's lease).
#[derive(Debug)]
struct Worker {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Worker {
    /// The worker finishes (or abandons, leaving it pending) the delivery in
    /// hand, then exits.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The running workers, one per endpoint; [`Workers::stop`] ends them.
#[derive(Debug, Default)]
pub struct Workers {
    workers: HashMap<String, Worker>,
}

impl Workers {
    /// Stops every worker (in parallel): each finishes (or abandons, leaving
    /// it pending) the delivery in hand, then exits.
    pub async fn stop(self) {
        let stops: Vec<_> = self
            .workers
            .into_values()
            .map(|worker| tokio::spawn(worker.stop()))
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
    }

    /// Stops the worker of plugin `name`, if it has one; its endpoint keeps
    /// accepting deliveries into the inbox.
    pub async fn stop_one(&mut self, name: &str) {
        if let Some(worker) = self.workers.remove(name) {
            worker.stop().await;
        }
    }
}

impl Webhooks {
    /// Sets up an endpoint for every plugin with a `[plugins.NAME.webhook]`
    /// section (`handles` in config order, as the supervisor returns them),
    /// counts what the inbox already holds, and starts one worker per
    /// endpoint. Records go through `ingest` (the enrichment chain, then the
    /// store). Each worker runs only while this hub holds its inbox's lease
    /// from `cluster`; every endpoint accepts deliveries all the time.
    pub async fn start(
        plugins: &[PluginConfig],
        handles: &[PluginHandle],
        ingest: Ingest,
        cluster: Cluster,
    ) -> Result<(Webhooks, Workers), StoreError> {
        let webhooks = Webhooks {
            endpoints: Arc::default(),
            ingest,
            cluster,
        };
        let mut workers = Workers::default();
        for plugin in plugins {
            if let Some(handle) = handles.iter().find(|handle| handle.name() == plugin.name) {
                webhooks.open(&mut workers, plugin, handle).await?;
            }
        }
        Ok((webhooks, workers))
    }

    /// Opens (or replaces) the endpoint of `plugin` if it has a
    /// `[plugins.NAME.webhook]` section, or closes it if it has none, and
    /// starts its worker. Stop the plugin's previous worker first
    /// ([`Workers::stop_one`]): two workers on one inbox would hand a
    /// delivery over twice.
    pub async fn open(
        &self,
        workers: &mut Workers,
        plugin: &PluginConfig,
        handle: &PluginHandle,
    ) -> Result<(), StoreError> {
        let Some(config) = &plugin.webhook else {
            self.close(workers, &plugin.name).await;
            return Ok(());
        };
        let endpoint = Arc::new(Endpoint {
            name: plugin.name.clone(),
            verifier: verify::Verifier::new(config),
            config: config.clone(),
            plugin: handle.clone(),
            pending: AtomicU64::new(0),
            wake: Notify::new(),
            shared: self.cluster.is_shared(),
        });
        endpoint.set_pending(self.ingest.store.count_pending_inbox(&plugin.name).await?);
        tracing::info!(
            plugin = %plugin.name,
            auth = %config.auth,
            pending = endpoint.pending(),
            "Webhook endpoint ready at /webhooks/{}.",
            plugin.name
        );
        match self.endpoints.write() {
            Ok(mut endpoints) => endpoints.insert(plugin.name.clone(), endpoint.clone()),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(plugin.name.clone(), endpoint.clone()),
        };
        let stop = CancellationToken::new();
        let lease = self.cluster.lease(WorkKind::Inbox.work(&plugin.name));
        let ingest = self.ingest.clone();
        let task = tokio::spawn(run_while_owned(
            lease,
            stop.clone(),
            move |grant, cancel| {
                let (endpoint, ingest) = (endpoint.clone(), ingest.clone());
                async move {
                    // The recount is the lease holder's view: fresh.
                    let _ = endpoint.recount(&ingest.store).await;
                    let (stop, stopped) = watch::channel(false);
                    let stopper = async move {
                        cancel.cancelled().await;
                        let _ = stop.send(true);
                    };
                    tokio::join!(worker::run(endpoint, ingest, grant.fence, stopped), stopper);
                }
            },
        ));
        workers
            .workers
            .insert(plugin.name.clone(), Worker { stop, task });
        Ok(())
    }

    /// Stops the worker of plugin `name` and removes its endpoint
    /// (`/webhooks/NAME` then answers 404); its inbox stays in the store.
    pub async fn close(&self, workers: &mut Workers, name: &str) {
        workers.stop_one(name).await;
        match self.endpoints.write() {
            Ok(mut endpoints) => endpoints.remove(name),
            Err(poisoned) => poisoned.into_inner().remove(name),
        };
    }

    /// The endpoint of plugin `name`, if it has a webhook section.
    pub fn endpoint(&self, name: &str) -> Option<Arc<Endpoint>> {
        match self.endpoints.read() {
            Ok(endpoints) => endpoints.get(name).cloned(),
            Err(poisoned) => poisoned.into_inner().get(name).cloned(),
        }
    }

    /// Replays a dead letter of the `webhook` stage: its delivery goes back
    /// to pending (the worker hands it to the plugin again) and the dead
    /// letter is deleted, in one transaction. Returns false when the letter
    /// is not a webhook delivery this hub still holds.
    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<bool, StoreError> {
        let Some(endpoint) = self.endpoint(&letter.plugin) else {
            return Ok(false);
        };
        let Some(inbox_id) = letter
            .record
            .metadata
            .get("inbox_id")
            .and_then(|id| id.parse::<i64>().ok())
        else {
            return Ok(false);
        };
        if letter.stage != Stage::Webhook {
            return Ok(false);
        }
        let mut tx = self.ingest.store.begin().await?;
        if !tx.requeue_inbox(inbox_id).await? {
            return Ok(false);
        }
        tx.delete_dead_letter(letter.id).await?;
        tx.commit().await?;
        let pending = endpoint.pending.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::set_pending(endpoint.name(), pending);
        endpoint.wake.notify_one();
        tracing::info!(plugin = %letter.plugin, dead_letter = letter.id, inbox_id, "Webhook dead letter replayed: the delivery is pending again.");
        Ok(true)
    }

    /// Handles one request to `/webhooks/NAME` (see [`ingest::receive`]).
    pub async fn receive(&self, name: &str, incoming: Incoming) -> Result<Answer, WebhookError> {
        let endpoint = self
            .endpoint(name)
            .ok_or_else(|| WebhookError::UnknownPlugin(name.to_owned()))?;
        let result = ingest::receive(&endpoint, &self.ingest, incoming).await;
        metrics::request(name, &result);
        result
    }
}

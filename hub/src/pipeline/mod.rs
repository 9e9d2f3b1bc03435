//! The data path: polling inputs feed records through the enrichment chain
//! into the store; output workers deliver the outbox's events to output
//! plugins, each at its own durable position.
//!
//! * [`poller`]: one loop per `[plugins.NAME.poll]`.
//! * [`poll_control`]: what the admin API can do to a poller (lock it, poll
//!   now, read its last poll).
//! * [`enrich`]: the `[pipeline]` enrichment chains.
//! * [`output`]: one delivery loop per `[plugins.NAME.output]`.
//! * [`metrics`]: the per-stage Prometheus metrics.
//! * [`lag_alert`]: `lag_alert`, whether an output lags past its threshold.
//!
//! Every call to a plugin goes through [`crate::retry::Call`], the hub's one
//! call path.
//!
//! [`Ingest`] is the one way records enter the store: chain, then one
//! transaction with the records, their events, any dead letters and (for
//! polls) the checkpoint, committed by the store's group-commit writer
//! ([`IngestJob`]) together with whatever else is being written at that
//! moment. Webhook deliveries use it too ([`Ingest::prepare`] then
//! [`Ingest::write`] inside their own write job).

pub mod enrich;
pub mod lag_alert;
pub mod metrics;
pub mod output;
pub mod poll_control;
pub mod poller;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use crate::cluster::{Cluster, Demand, WorkKind, run_while_owned};
use crate::config::{Config, PluginConfig};
use crate::domain::Record;
use crate::store::{Fence, Pending, Store, StoreError, StoreTx, Upserted, WriteJob};
use crate::supervisor::{PluginHandle, Registry};
pub use enrich::{Chain, ChainOutput, EnrichFailure};
pub use metrics::PipelineMetrics;
pub use poll_control::{PollControl, PollControls};

/// Why records could not be ingested (nothing was committed).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An enricher could not be reached (retries gave up) or the hub is
    /// shutting down.
    #[error(transparent)]
    Enrich(#[from] EnrichFailure),
    /// The store failed.
    #[error("cannot store the records: {0}")]
    Store(#[from] StoreError),
}

/// Stores records the way every input must: through the enrichment chain,
/// then in one transaction. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// The store written to.
    pub store: Store,
    /// The enrichment chains.
    pub chain: Arc<Chain>,
    /// The per-stage metrics.
    pub metrics: Arc<PipelineMetrics>,
}

impl Ingest {
    /// Runs `records` from input `plugin` through their enrichment chain
    /// (records with an empty source get `plugin` as their source).
    pub async fn prepare(
        &self,
        plugin: &str,
        records: Vec<Record>,
    ) -> Result<ChainOutput, EnrichFailure> {
        self.chain.run(plugin, records).await
    }

    /// Writes prepared records and dead letters in `tx` (the caller commits,
    /// then calls [`Ingest::count`]).
    pub async fn write(
        &self,
        tx: &mut StoreTx,
        plugin: &str,
        prepared: &ChainOutput,
    ) -> Result<Vec<Upserted>, StoreError> {
        write_prepared(tx, plugin, prepared).await
    }

    /// Counts stored records in the metrics (after the commit).
    pub fn count(&self, plugin: &str, outcomes: &[Upserted]) {
        self.metrics.stored(plugin, outcomes);
    }

    /// Enriches and commits `records` from input `plugin`, with
    /// `checkpoint` (if any) saved in the same transaction.
    pub async fn commit(
        &self,
        plugin: &str,
        records: Vec<Record>,
        checkpoint: Option<&[u8]>,
    ) -> Result<Vec<Upserted>, IngestError> {
        let prepared = self.prepare(plugin, records).await?;
        let outcomes = self
            .submit(plugin, prepared, checkpoint.map(<[u8]>::to_vec))
            .await?
            .wait()
            .await?;
        self.count(plugin, &outcomes);
        Ok(outcomes)
    }

    /// Queues prepared records (and `checkpoint`) from input `plugin` for
    /// the next group commit and returns at once; [`Pending::wait`] gives
    /// the outcome once committed (then call [`Ingest::count`]). Submissions
    /// of one caller commit in order.
    pub async fn submit(
        &self,
        plugin: &str,
        prepared: ChainOutput,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<Pending<Vec<Upserted>>, StoreError> {
        self.submit_fenced(plugin, prepared, checkpoint, None).await
    }

    /// [`Ingest::submit`] for leased work: the commit fails with
    /// [`StoreError::Fenced`] (and writes nothing) once `fence` no longer
    /// holds.
    pub async fn submit_fenced(
        &self,
        plugin: &str,
        prepared: ChainOutput,
        checkpoint: Option<Vec<u8>>,
        fence: Option<Fence>,
    ) -> Result<Pending<Vec<Upserted>>, StoreError> {
        self.store
            .submit(IngestJob {
                plugin: plugin.to_owned(),
                prepared,
                checkpoint,
                fence,
            })
            .await
    }
}

/// Writes prepared records from input `plugin` and their dead letters in
/// `tx` (for write jobs; the caller commits).
pub async fn write_prepared(
    tx: &mut StoreTx,
    plugin: &str,
    prepared: &ChainOutput,
) -> Result<Vec<Upserted>, StoreError> {
    let mut written = write_prepared_many(tx, &[(plugin, prepared)]).await?;
    Ok(written.pop().unwrap_or_default())
}

/// [`write_prepared`] for several inputs' prepared records at once (a
/// group commit's webhook deliveries): the same effect as writing each in
/// turn, with their records upserted through shared statements. Returns
/// each one's outcomes.
pub async fn write_prepared_many(
    tx: &mut StoreTx,
    prepared: &[(&str, &ChainOutput)],
) -> Result<Vec<Vec<Upserted>>, StoreError> {
    for (_, output) in prepared {
        for letter in &output.dead_letters {
            tx.add_dead_letter(letter).await?;
        }
    }
    let lists: Vec<(&str, &[Record])> = prepared
        .iter()
        .map(|(plugin, output)| (*plugin, output.records.as_slice()))
        .collect();
    tx.upsert_records_many(&lists).await
}

/// A write job: an input's prepared records, their dead letters and the
/// checkpoint that covers them, all in one transaction.
#[derive(Debug)]
pub struct IngestJob {
    /// The input plugin (the default source).
    pub plugin: String,
    /// What the enrichment chain made of its records.
    pub prepared: ChainOutput,
    /// The checkpoint to save with them.
    pub checkpoint: Option<Vec<u8>>,
    /// The lease the commit must still hold (leased work on a hub sharing
    /// its database).
    pub fence: Option<Fence>,
}

impl WriteJob for IngestJob {
    type Output = Vec<Upserted>;

    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<Vec<Upserted>, StoreError>> {
        Box::pin(async move {
            if let Some(fence) = &self.fence {
                tx.check_fence(fence).await?;
            }
            let outcomes = write_prepared(tx, &self.plugin, &self.prepared).await?;
            if let Some(checkpoint) = &self.checkpoint {
                tx.save_checkpoint(&self.plugin, checkpoint).await?;
            }
            Ok(outcomes)
        })
    }

    fn weight(&self) -> usize {
        self.prepared.records.len() + self.prepared.dead_letters.len()
    }
}

/// How often finished events are pruned from the outbox.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes outbox events every configured output has finished, every
/// [`PRUNE_EVERY`], until `cancel` fires. `outputs` is the set configured
/// now (a reload changes it).
async fn prune_outbox(store: Store, outputs: Arc<RwLock<Vec<String>>>, cancel: CancellationToken) {
    loop {
        if !crate::retry::sleep(PRUNE_EVERY, Some(&cancel)).await {
            return;
        }
        let outputs = match outputs.read() {
            Ok(outputs) => outputs.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match store.prune_outbox(&outputs).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "Pruned finished events from the outbox."),
            Err(err) => {
                tracing::warn!(error = %err, "Cannot prune the outbox; trying again later.")
            }
        }
    }
}

/// The data-path tasks of one plugin: its poller and its delivery loop.
#[derive(Debug)]
struct PluginWork {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl PluginWork {
    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "A pipeline task ended abnormally.");
            }
        }
    }
}

/// The running data path: the ingest path, and each plugin's poller and
/// output worker, which a reload starts and stops plugin by plugin.
#[derive(Debug)]
pub struct Pipeline {
    ingest: Ingest,
    polls: PollControls,
    cancel: CancellationToken,
    work: HashMap<String, PluginWork>,
    outputs: Arc<RwLock<Vec<String>>>,
    prune: JoinHandle<()>,
    cluster: Cluster,
    demand: Demand,
}

impl Pipeline {
    /// Starts a poller for every plugin with `[plugins.NAME.poll]` and a
    /// delivery loop for every plugin with `[plugins.NAME.output]`;
    /// enrichers are looked up in `plugins` by name.
    ///
    /// Each poller and delivery loop runs only while this hub holds its
    /// lease from `cluster` (at once and for good on a hub alone), and
    /// `demand` starts the plugin it needs while it runs.
    pub fn start(
        config: &Config,
        store: Store,
        plugins: Registry,
        cluster: Cluster,
        demand: Demand,
    ) -> Pipeline {
        let cancel = CancellationToken::new();
        let metrics = metrics::global().clone();
        let handles = plugins.snapshot();
        let chain = Arc::new(Chain::new(
            config.pipeline.clone(),
            plugins,
            metrics.clone(),
            cancel.clone(),
        ));
        let ingest = Ingest {
            store: store.clone(),
            chain,
            metrics,
        };
        let outputs = Arc::new(RwLock::new(output_names(config)));
        let prune = tokio::spawn(prune_outbox(store, outputs.clone(), cancel.clone()));
        let mut pipeline = Pipeline {
            ingest,
            polls: PollControls::default(),
            cancel,
            work: HashMap::new(),
            outputs,
            prune,
            cluster,
            demand,
        };
        for plugin_config in &config.plugins {
            if let Some(plugin) = handles.iter().find(|p| p.name() == plugin_config.name) {
                pipeline.start_plugin(plugin_config, plugin);
            }
        }
        pipeline
    }

    /// Starts the poller and the delivery loop of one plugin (whichever of
    /// `[poll]` and `[output]` it has), replacing none: stop the old ones
    /// first with [`Pipeline::stop_plugin`].
    pub fn start_plugin(&mut self, config: &PluginConfig, plugin: &PluginHandle) {
        let cancel = self.cancel.child_token();
        let mut tasks = Vec::new();
        if let Some(poll) = &config.poll {
            let lease = self.cluster.lease(WorkKind::Poll.work(&config.name));
            let (plugin, poll, ingest) = (plugin.clone(), poll.clone(), self.ingest.clone());
            let demand = self.demand.clone();
            // Registered at once, so the API finds it (and answers 409 while
            // another hub runs it); active while the lease is held here.
            let (control, triggers) = PollControl::new();
            // A hub alone runs it from the start: no window of 409s.
            control.set_active(!self.cluster.is_shared());
            self.polls.insert(plugin.name(), control.clone());
            let triggers = Arc::new(tokio::sync::Mutex::new(triggers));
            tasks.push(tokio::spawn(run_while_owned(
                lease,
                cancel.clone(),
                move |grant, cancel| {
                    let (plugin, poll, ingest) = (plugin.clone(), poll.clone(), ingest.clone());
                    let (control, triggers, demand) =
                        (control.clone(), triggers.clone(), demand.clone());
                    async move {
                        let name = plugin.shared_name().clone();
                        demand.need(&name).await;
                        control.set_active(true);
                        let mut triggers = triggers.lock().await;
                        poller::run(
                            plugin,
                            poll,
                            ingest,
                            control.clone(),
                            &mut triggers,
                            grant.fence,
                            cancel,
                        )
                        .await;
                        control.set_active(false);
                        demand.release(&name);
                    }
                },
            )));
        }
        if let Some(output) = &config.output {
            let lease = self.cluster.lease(WorkKind::Output.work(&config.name));
            let (plugin, output) = (plugin.clone(), output.clone());
            let (store, metrics) = (self.ingest.store.clone(), self.ingest.metrics.clone());
            let demand = self.demand.clone();
            tasks.push(tokio::spawn(run_while_owned(
                lease,
                cancel.clone(),
                move |grant, cancel| {
                    let worker = output::OutputWorker {
                        plugin: plugin.clone(),
                        config: output.clone(),
                        store: store.clone(),
                        metrics: metrics.clone(),
                        cancel,
                        fence: grant.fence,
                    };
                    let demand = demand.clone();
                    async move {
                        let name = worker.plugin.shared_name().clone();
                        demand.need(&name).await;
                        worker.run().await;
                        demand.release(&name);
                    }
                },
            )));
        }
        if !tasks.is_empty() {
            self.work
                .insert(config.name.clone(), PluginWork { cancel, tasks });
        }
    }

    /// Stops the poller and delivery loop of plugin `name` (if it has them)
    /// and waits for them; what they had not committed is fetched or
    /// delivered again when they start again.
    pub async fn stop_plugin(&mut self, name: &str) {
        self.polls.remove(name);
        if let Some(work) = self.work.remove(name) {
            work.stop().await;
        }
    }

    /// Applies a reloaded file's `[pipeline]` table (the next batch uses
    /// it) and its set of outputs (for pruning the outbox).
    pub fn set_config(&self, config: &Config) {
        self.ingest.chain.set_config(config.pipeline.clone());
        let names = output_names(config);
        match self.outputs.write() {
            Ok(mut outputs) => *outputs = names,
            Err(poisoned) => *poisoned.into_inner() = names,
        }
    }

    /// The ingest path, for the HTTP API and webhook deliveries.
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// The controls of the pollers, by plugin name, for the HTTP API.
    pub fn polls(&self) -> &PollControls {
        &self.polls
    }

    /// Stops every poller and output worker and waits for them. Work not
    /// committed is dropped; it is fetched or delivered again next time.
    pub async fn stop(self) {
        self.cancel.cancel();
        for (_, work) in self.work {
            work.stop().await;
        }
        if let Err(err) = self.prune.await {
            tracing::error!(error = %err, "The outbox pruner ended abnormally.");
        }
    }
}

/// The names of the plugins with an `[output]` section.
fn output_names(config: &Config) -> Vec<String> {
    config
        .plugins
        .iter()
        .filter(|plugin| plugin.output.is_some())
        .map(|plugin| plugin.name.clone())
        .collect()
}

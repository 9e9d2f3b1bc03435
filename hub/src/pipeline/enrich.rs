//! The enrichment chain: records pass through the configured enrichers in
//! order before they are stored. Each enricher gets a whole batch on one
//! pipelined `Enrich` stream (many records in flight). Per record, a
//! retryable failure is retried under the enricher's retry policy; a
//! permanent one (or retries exhausted) follows the enricher's `on_error`:
//! `skip` stores the record without that enricher's changes, noting
//! `enrich_error.NAME` in its metadata; `dead-letter` parks the original
//! record. A call that cannot get through (the plugin is down) is retried;
//! when retries give up the whole batch fails, so the caller keeps it (an
//! uncommitted poll is fetched again; a webhook stays in its inbox).

use std::sync::{Arc, RwLock};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::metrics::PipelineMetrics;
use crate::config::{OnError, PipelineConfig};
use crate::domain::{EnrichOutcome, Record};
use crate::retry::{self, AttemptError, Call, GiveUp, Rpc};
use crate::store::{NewDeadLetter, Stage};
use crate::supervisor::Registry;

/// What the chain made of a batch.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// The records to store, enriched, in input order.
    pub records: Vec<Record>,
    /// Records parked by an enricher with `on_error = "dead-letter"`.
    pub dead_letters: Vec<NewDeadLetter>,
}

/// Why a batch could not pass an enricher (nothing of it is stored).
#[derive(Debug, Clone, thiserror::Error)]
#[error("enricher `{enricher}`: {reason}")]
pub struct EnrichFailure {
    /// The enricher's instance name.
    pub enricher: String,
    /// Why its call failed for good.
    pub reason: GiveUp,
}

impl EnrichFailure {
    /// Whether the hub is shutting down (rather than the enricher failing).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.reason, GiveUp::Cancelled)
    }
}

/// The configured chains and the enricher plugins they call. A reload
/// swaps the `[pipeline]` table ([`Chain::set_config`]) and the plugin set
/// (the [`Registry`]); a batch already in the chain finishes under the
/// table it started with.
#[derive(Debug)]
pub struct Chain {
    config: RwLock<Arc<PipelineConfig>>,
    plugins: Registry,
    metrics: Arc<PipelineMetrics>,
    cancel: CancellationToken,
}

impl Chain {
    /// A chain over the plugins of `plugins` (the enrichers are looked up
    /// by name at each call, so a restarted enricher is found).
    pub fn new(
        config: PipelineConfig,
        plugins: Registry,
        metrics: Arc<PipelineMetrics>,
        cancel: CancellationToken,
    ) -> Self {
        Chain {
            config: RwLock::new(Arc::new(config)),
            plugins,
            metrics,
            cancel,
        }
    }

    /// The `[pipeline]` table now.
    pub fn config(&self) -> Arc<PipelineConfig> {
        match self.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the `[pipeline]` table (a reload): the next batch uses it.
    pub fn set_config(&self, config: PipelineConfig) {
        let config = Arc::new(config);
        match self.config.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Runs `records` through their source's chain. Records with an empty
    /// source get `default_source` first (so the right chain applies).
    pub async fn run(
        &self,
        default_source: &str,
        mut records: Vec<Record>,
    ) -> Result<ChainOutput, EnrichFailure> {
        for record in &mut records {
            if record.source.is_empty() {
                record.source = default_source.to_owned();
            }
        }
        let config = self.config();
        // Group by chain, keeping each record's position.
        let mut groups: Vec<(&[String], Vec<usize>)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let chain = config.chain_for(&record.source);
            match groups.iter_mut().find(|(known, _)| *known == chain) {
                Some((_, indexes)) => indexes.push(index),
                None => groups.push((chain, vec![index])),
            }
        }
        let mut results: Vec<Option<Record>> = vec![None; records.len()];
        let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
        let mut dead_letters = Vec::new();
        for (chain, indexes) in groups {
            // `alive[k]` is the current form of the group's k-th record, or
            // None once parked. Records move through the chain: the batch an
            // enricher is called with is taken out of `alive`, and a record
            // it fails comes back from that batch, not from a copy.
            let mut alive: Vec<Option<Record>> =
                indexes.iter().map(|&i| records[i].take()).collect();
            // A dead letter keeps the record as it entered the chain: past the
            // first enricher that is a copy taken now, made only when a later
            // enricher may park records.
            let mut originals: Option<Vec<Option<Record>>> = chain
                .iter()
                .skip(1)
                .any(|enricher| config.on_error(enricher) == OnError::DeadLetter)
                .then(|| alive.clone());
            for (step, enricher) in chain.iter().enumerate() {
                let positions: Vec<usize> =
                    (0..alive.len()).filter(|&k| alive[k].is_some()).collect();
                if positions.is_empty() {
                    break;
                }
                let batch: Arc<Vec<Record>> =
                    Arc::new(positions.iter().filter_map(|&k| alive[k].take()).collect());
                let outcomes = self.enrich_with_retry(enricher, &batch).await?;
                // The call's attempts are over, so the batch is ours again
                // (a copy only if something still holds it).
                let inputs =
                    Arc::try_unwrap(batch).unwrap_or_else(|shared| shared.as_ref().clone());
                for ((&k, outcome), input) in positions.iter().zip(outcomes).zip(inputs) {
                    match outcome {
                        Ok(record) => {
                            self.metrics.enriched(enricher);
                            alive[k] = Some(record);
                        }
                        Err((message, attempts)) => match config.on_error(enricher) {
                            OnError::Skip => {
                                self.metrics.enrich_failed(enricher);
                                tracing::warn!(plugin = %enricher, record = %input.id, error = %message, "An enricher failed a record; storing it without this enricher's changes.");
                                let mut record = input;
                                record
                                    .metadata
                                    .insert(format!("enrich_error.{enricher}"), message);
                                alive[k] = Some(record);
                            }
                            OnError::DeadLetter => {
                                self.metrics.enrich_failed(enricher);
                                self.metrics.dead_lettered(enricher, Stage::Enrich);
                                tracing::warn!(plugin = %enricher, record = %input.id, error = %message, "An enricher failed a record; moving it to the dead letters.");
                                let original = match originals.as_mut() {
                                    Some(originals) if step > 0 => originals[k].take(),
                                    _ => None,
                                };
                                dead_letters.push(NewDeadLetter {
                                    plugin: enricher.clone(),
                                    stage: Stage::Enrich,
                                    record: original.unwrap_or(input),
                                    event: None,
                                    error: message,
                                    attempts,
                                    first_failed_at: Utc::now(),
                                });
                            }
                        },
                    }
                }
            }
            for (k, record) in alive.into_iter().enumerate() {
                results[indexes[k]] = record;
            }
        }
        Ok(ChainOutput {
            records: results.into_iter().flatten().collect(),
            dead_letters,
        })
    }

    /// Enriches `records` with `enricher`, retrying retryable failures (of
    /// the call, or of single records) under its retry policy. Each record
    /// ends enriched, or failed with a message and the attempts made.
    async fn enrich_with_retry(
        &self,
        enricher: &str,
        records: &Arc<Vec<Record>>,
    ) -> Result<Vec<Result<Record, (String, u32)>>, EnrichFailure> {
        let failure = |reason| EnrichFailure {
            enricher: enricher.to_owned(),
            reason,
        };
        let plugin = self.plugins.get(enricher).ok_or_else(|| {
            failure(GiveUp::Stopped {
                state: "not configured",
            })
        })?;
        let policy = plugin.retry_config().clone();
        let max_attempts = policy.max_attempts.max(1);
        let mut results: Vec<Option<Result<Record, (String, u32)>>> = vec![None; records.len()];
        let mut attempts = vec![0_u32; records.len()];
        loop {
            let pending: Vec<usize> = (0..records.len())
                .filter(|&i| results[i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            // The first attempt sends the whole batch as it is; a retry
            // copies only the records still pending.
            let batch: Arc<Vec<Record>> = if pending.len() == records.len() {
                records.clone()
            } else {
                Arc::new(pending.iter().map(|&i| records[i].clone()).collect())
            };
            let outcomes = Call::new(&plugin, Rpc::Enrich)
                .cancel(&self.cancel)
                .run(|running| {
                    let batch = batch.clone();
                    async move { Ok::<_, AttemptError>(running.roles.enrich(&batch).await?) }
                })
                .await
                .map_err(failure)?;
            let mut wait_for: Option<std::time::Duration> = None;
            for (&i, outcome) in pending.iter().zip(outcomes) {
                attempts[i] += 1;
                match outcome {
                    EnrichOutcome::Enriched(record) => results[i] = Some(Ok(record)),
                    EnrichOutcome::Failed(failure)
                        if failure.retryable && attempts[i] < max_attempts =>
                    {
                        let delay = retry::delay(&policy, attempts[i], failure.retry_after);
                        wait_for = Some(wait_for.map_or(delay, |known| known.max(delay)));
                    }
                    EnrichOutcome::Failed(failure) => {
                        results[i] = Some(Err((failure.message, attempts[i])));
                    }
                }
            }
            if let Some(delay) = wait_for
                && !retry::sleep(delay, Some(&self.cancel)).await
            {
                return Err(failure(GiveUp::Cancelled));
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

//! `nats-input`: a durable pull consumer on a NATS JetStream stream. Each
//! poll fetches batches of messages and emits them as records, one
//! checkpoint per batch; a message is acked to JetStream only once the hub
//! committed the batch that carried it, which the next poll learns from the
//! checkpoint it starts from. A message the hub never committed is
//! redelivered by JetStream, and records are keyed by stream sequence, so a
//! redelivery is an upsert, never a duplicate. See README.md.

pub mod checkpoint;
mod held;
pub mod message;

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures_util::StreamExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use switchyard_plugin_sdk::{
    ConfigErrors, Emitter, Health, Plugin, PluginError, PollRequest, PollingInput,
};
use tokio::sync::Mutex;

pub use checkpoint::Checkpoint;
use held::Held;
pub use nats_connect::ConnectConfig;

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsInputConfig {
    /// The server, `nats://HOST:PORT` (several may be given, comma-separated).
    pub url: String,
    /// The environment variable holding a token (token authentication).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The user name (user/password authentication, with `password_env`).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password for `user`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The JetStream stream to consume (it must exist).
    pub stream: String,
    /// The durable consumer's name; created with the settings below when
    /// missing, used as it is when it exists.
    pub consumer: String,
    /// Only messages on subjects matching this filter (wildcards allowed);
    /// empty: every subject of the stream.
    #[serde(default)]
    pub filter_subject: String,
    /// The most messages per fetch (one batch, one checkpoint).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// How long one fetch waits for messages when fewer than `batch` are there.
    #[serde(default = "default_fetch_wait", deserialize_with = "duration")]
    #[schemars(with = "String")]
    pub fetch_wait: Duration,
    /// JetStream's redelivery delay for a message not acked: it must exceed
    /// the poll `interval` plus a poll's duration, since a batch is acked at
    /// the start of the poll after the one that emitted it.
    #[serde(default = "default_ack_wait", deserialize_with = "duration")]
    #[schemars(with = "String")]
    pub ack_wait: Duration,
    /// The record type; empty: the message's subject.
    #[serde(default)]
    pub record_type: String,
}

fn default_batch() -> usize {
    100
}

fn default_fetch_wait() -> Duration {
    Duration::from_secs(1)
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(60)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({err}); write it like \"30s\" or \"500ms\""
        ))
    })
}

/// How much longer than `fetch_wait` a fetch, or the flush of acks, may take.
pub const FETCH_GRACE: Duration = Duration::from_secs(5);

/// The largest `batch`.
pub const MAX_BATCH: usize = 10_000;

/// The configured input: its consumer and the batches the hub holds.
#[derive(Debug)]
pub struct NatsInput {
    client: async_nats::Client,
    consumer: PullConsumer,
    batch: usize,
    fetch_wait: Duration,
    record_type: String,
    held: Mutex<Held>,
}

impl NatsInput {
    /// Validates the configuration, connects, and gets or creates the
    /// durable consumer; `health` follows the connection.
    ///
    /// # Errors
    /// Every bad key; an unreachable server or a missing stream as a
    /// retryable start failure.
    pub async fn start(config: NatsInputConfig, health: Health) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if config.stream.is_empty() || config.stream.contains(['.', '*', '>', ' ']) {
            errors.push(
                "stream",
                "must be a stream name (no `.`, `*`, `>` or space)",
            );
        }
        if config.consumer.is_empty() || config.consumer.contains(['.', '*', '>', ' ']) {
            errors.push(
                "consumer",
                "must be a consumer name (no `.`, `*`, `>` or space)",
            );
        }
        if config.batch == 0 || config.batch > MAX_BATCH {
            errors.push("batch", format!("must be between 1 and {MAX_BATCH}"));
        }
        if config.fetch_wait.is_zero() {
            errors.push("fetch_wait", "must be more than 0s");
        }
        if config.ack_wait < Duration::from_secs(1) {
            errors.push("ack_wait", "must be at least 1s");
        }
        errors.into_result()?;
        let connect = ConnectConfig {
            url: config.url.clone(),
            token_env: config.token_env.clone(),
            user: config.user.clone(),
            password_env: config.password_env.clone(),
        };
        let client = connect.connect("nats-input", &health).await?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let stream = jetstream.get_stream(&config.stream).await.map_err(|err| {
            ConfigErrors::unavailable(PluginError::retryable(format!(
                "nats-input: stream `{}` is not available: {err}",
                config.stream
            )))
        })?;
        let consumer = stream
            .get_or_create_consumer(
                &config.consumer,
                pull::Config {
                    durable_name: Some(config.consumer.clone()),
                    filter_subject: config.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|err| {
                ConfigErrors::unavailable(PluginError::retryable(format!(
                    "nats-input: consumer `{}` on stream `{}` is not available: {err}",
                    config.consumer, config.stream
                )))
            })?;
        Ok(NatsInput {
            client,
            consumer,
            batch: config.batch,
            fetch_wait: config.fetch_wait,
            record_type: config.record_type,
            held: Mutex::new(Held::default()),
        })
    }

    /// Acks the held batches the hub committed, naks the others.
    async fn settle(&self, held: &mut Held, committed: u64) {
        if held.is_empty() {
            return;
        }
        let count = held.len();
        let failed = held.settle(committed).send().await;
        match tokio::time::timeout(FETCH_GRACE, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "Could not flush acks; JetStream will redeliver those messages.");
            }
            Err(_) => {
                tracing::warn!(
                    "Acks not flushed in time; JetStream will redeliver those messages."
                );
            }
        }
        tracing::debug!(
            messages = count,
            failed,
            committed,
            "Settled held messages."
        );
    }

    /// Fetches one batch: up to `batch` messages, waiting at most
    /// `fetch_wait` for the server and [`FETCH_GRACE`] more for its answer
    /// (a connection lost mid-fetch fails the poll instead of hanging it).
    async fn fetch(
        &self,
        limit: usize,
    ) -> Result<Vec<async_nats::jetstream::Message>, PluginError> {
        let fetch = async {
            let mut batch = self
                .consumer
                .batch()
                .max_messages(limit)
                .expires(self.fetch_wait)
                .messages()
                .await
                .map_err(|err| unreachable_error("fetching", &err))?;
            let mut messages = Vec::with_capacity(limit);
            while let Some(message) = batch.next().await {
                messages.push(message.map_err(|err| unreachable_error("fetching", &err))?);
            }
            Ok(messages)
        };
        tokio::time::timeout(self.fetch_wait + FETCH_GRACE, fetch)
            .await
            .map_err(|_| {
                unreachable_error(
                    "fetching",
                    &format!("no answer within fetch_wait + {}s", FETCH_GRACE.as_secs()),
                )
            })?
    }
}

/// A failed JetStream call: retryable (a server restarting heals).
fn unreachable_error(what: &str, err: &dyn std::fmt::Display) -> PluginError {
    PluginError::retryable(format!("nats-input: {what} failed: {err}"))
        .with_code("nats_unavailable")
}

/// The plugin definition.
pub fn plugin() -> Plugin<NatsInput> {
    let health = Health::new();
    Plugin::new("nats-input", env!("CARGO_PKG_VERSION"))
        .description(
            "Consumes a NATS JetStream stream with a durable pull consumer, acking after commit",
        )
        .health(health.clone())
        .polling_input(move |config: NatsInputConfig| {
            let health = health.clone();
            async move { NatsInput::start(config, health).await }
        })
}

impl PollingInput for NatsInput {
    #[tracing::instrument(name = "nats_input.poll", skip_all)]
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let committed = Checkpoint::read(request.checkpoint.as_deref())?;
        // One poll at a time (the hub never overlaps them); the lock makes
        // the held set this poll's alone.
        let mut held = self.held.lock().await;
        self.settle(&mut held, committed.batch).await;
        let mut number = committed.batch;
        loop {
            let limit = match request.max_records {
                0 => self.batch,
                max => self
                    .batch
                    .min((u64::from(max).saturating_sub(emitter.emitted())) as usize),
            };
            if limit == 0 {
                return Ok(());
            }
            let fetched = self.fetch(limit).await?;
            if fetched.is_empty() {
                return Ok(());
            }
            let full = fetched.len() == limit;
            let mut records = Vec::with_capacity(fetched.len());
            let mut ackers = Vec::with_capacity(fetched.len());
            for received in fetched {
                let (record, acker) = message::into_record(received, &self.record_type)?;
                records.push(record);
                ackers.push(acker);
            }
            number += 1;
            let count = records.len();
            // Held before it is sent: if the send fails, the next poll naks it.
            held.hold(number, ackers);
            emitter
                .emit_with_checkpoint(records, Checkpoint { batch: number }.to_bytes())
                .await?;
            tracing::debug!(batch = number, messages = count, "Emitted a batch.");
            if !full {
                return Ok(());
            }
        }
    }
}

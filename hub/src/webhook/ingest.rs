//! One request to `/webhooks/NAME`, after the body was read within
//! `max_body`: authenticate, deduplicate, check the inbox limit, then either
//! store it in the inbox (asynchronous plugins: 202) or call the plugin and
//! store its records before sending its reply (synchronous plugins).
//!
//! Order of the checks, so a refused request writes nothing: authentication
//! (401), replay (202 again, nothing new), inbox limit (429), then the write.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tracing::Instrument as _;

use super::Endpoint;
use super::verify::{self, Request, VerifyError};
use crate::config::WebhookAuth;
use crate::domain::{HttpReply, WebhookDelivery};
use crate::pipeline::{ChainOutput, EnrichFailure, Ingest, write_prepared_many};
use crate::retry::{AttemptFailure, Call, GiveUp, Rpc};
use crate::rpc::CallError;
use crate::store::{
    InboxInsert, InboxStatus, NewInboxRow, Store, StoreError, StoreTx, Upserted, WriteJob,
};

/// A request as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The raw query string without `?`.
    pub query: String,
    /// The headers, in order (values that are not UTF-8 are replaced
    /// lossily; no scheme signs them).
    pub headers: Vec<(String, String)>,
    /// The raw body, at most `max_body` bytes.
    pub body: Vec<u8>,
    /// When the hub received it.
    pub received_at: DateTime<Utc>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Stored in the inbox (202).
    Accepted {
        /// The delivery id.
        delivery_id: String,
    },
    /// A delivery id already received: nothing new stored (202, or the
    /// stored reply of a synchronous delivery).
    Duplicate {
        /// The delivery id.
        delivery_id: String,
        /// The reply first sent, for a synchronous delivery.
        reply: Option<HttpReply>,
    },
    /// A synchronous plugin's reply, sent after its records were stored.
    Reply {
        /// The delivery id.
        delivery_id: String,
        /// The plugin's reply; `None` when it gave none (202).
        reply: Option<HttpReply>,
    },
}

/// Why a request was refused. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No plugin of that name has a `[plugins.NAME.webhook]` section (404).
    #[error("there is no webhook endpoint for `{0}`")]
    UnknownPlugin(String),
    /// The body is larger than `max_body` (413).
    #[error("the body is larger than the {limit} bytes allowed for `{plugin}`")]
    TooLarge {
        /// The plugin.
        plugin: String,
        /// `max_body`.
        limit: usize,
    },
    /// Authentication failed (401).
    #[error("webhook for `{plugin}` not authenticated: {error}")]
    Unauthorized {
        /// The plugin.
        plugin: String,
        /// Why.
        error: VerifyError,
    },
    /// The inbox holds `max_pending` deliveries already (429).
    #[error(
        "the inbox of `{plugin}` is full ({pending} deliveries waiting, limit {limit}); retry later"
    )]
    InboxFull {
        /// The plugin.
        plugin: String,
        /// Deliveries waiting.
        pending: u64,
        /// `max_pending`.
        limit: u64,
    },
    /// A synchronous plugin rejected the body as malformed (400).
    #[error("plugin `{plugin}` rejected the webhook: {message}")]
    Rejected {
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// A synchronous plugin is not running (503).
    #[error("plugin `{0}` is not running; retry later")]
    NotRunning(String),
    /// A synchronous plugin's call failed (502).
    #[error("plugin `{plugin}`: {error}")]
    CallFailed {
        /// The plugin.
        plugin: String,
        /// What failed.
        error: CallError,
    },
    /// A synchronous plugin did not answer in time (504).
    #[error("plugin `{plugin}` did not answer the webhook within {seconds}s")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The limit.
        seconds: u64,
    },
    /// The enrichment chain could not run on a synchronous delivery's
    /// records (an enricher is down): nothing was stored (503).
    #[error("cannot enrich the records of the webhook for `{plugin}`: {error}")]
    Enrichment {
        /// The plugin.
        plugin: String,
        /// What failed.
        error: EnrichFailure,
    },
    /// The store failed: nothing was acknowledged (503).
    #[error("cannot store the webhook for `{plugin}`: {error}")]
    Store {
        /// The plugin.
        plugin: String,
        /// What failed.
        error: StoreError,
    },
}

impl WebhookError {
    /// A short label for metrics: `unauthorized`, `too_large`, ...
    pub fn label(&self) -> &'static str {
        match self {
            WebhookError::UnknownPlugin(_) => "unknown_plugin",
            WebhookError::TooLarge { .. } => "too_large",
            WebhookError::Unauthorized { .. } => "unauthorized",
            WebhookError::InboxFull { .. } => "inbox_full",
            WebhookError::Rejected { .. } => "rejected",
            WebhookError::NotRunning(_) => "not_running",
            WebhookError::CallFailed { .. } => "call_failed",
            WebhookError::Timeout { .. } => "timeout",
            WebhookError::Enrichment { .. } => "enrichment_failed",
            WebhookError::Store { .. } => "store_failed",
        }
    }
}

/// A delivery id for a request that carries none: unique across restarts
/// (time, process id, counter, random).
fn generated_delivery_id(received_at: DateTime<Utc>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "hub-{}-{}-{}-{:08x}",
        received_at.timestamp_micros(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// Authenticates and handles one request for `endpoint`.
pub async fn receive(
    endpoint: &Endpoint,
    ingest: &Ingest,
    incoming: Incoming,
) -> Result<Answer, WebhookError> {
    let name = endpoint.name();
    let store = &ingest.store;
    if incoming.body.len() > endpoint.config.max_body {
        return Err(WebhookError::TooLarge {
            plugin: name.to_owned(),
            limit: endpoint.config.max_body,
        });
    }
    let verified = endpoint
        .verifier
        .verify(
            &Request {
                headers: &incoming.headers,
                query: &incoming.query,
                body: &incoming.body,
            },
            incoming.received_at.timestamp(),
        )
        .map_err(|error| WebhookError::Unauthorized {
            plugin: name.to_owned(),
            error,
        })?;
    // A generated id cannot be a replay: only a sender's id is looked up.
    let sender_id = verified.delivery_id.is_some();
    let delivery = to_delivery(endpoint, incoming, verified.delivery_id);
    let store_error = |error| WebhookError::Store {
        plugin: name.to_owned(),
        error,
    };
    let full = |pending| WebhookError::InboxFull {
        plugin: name.to_owned(),
        pending,
        limit: endpoint.config.max_pending,
    };
    let sync = endpoint
        .plugin
        .running()
        .is_some_and(|running| running.metadata.webhook_sync_reply);
    if sync {
        // A replay is answered before the limit (it adds nothing), and
        // without calling the plugin again.
        if sender_id
            && let Some(answer) = replayed(store, name, &delivery.delivery_id)
                .await
                .map_err(store_error)?
        {
            return Ok(answer);
        }
        let mut pending = endpoint.pending();
        if pending >= endpoint.config.max_pending && endpoint.recount(store).await {
            pending = endpoint.pending();
        }
        if pending >= endpoint.config.max_pending {
            return Err(full(pending));
        }
        return receive_sync(endpoint, ingest, delivery).await;
    }

    // The place is taken before the write, so concurrent requests cannot
    // overshoot `max_pending`; it is given back if nothing is stored.
    let mut reserved = endpoint.reserve();
    if reserved.is_err() && endpoint.recount(store).await {
        reserved = endpoint.reserve();
    }
    let reservation = match reserved {
        Ok(reservation) => reservation,
        Err(pending) => {
            // A replay is answered before the limit: it adds nothing.
            if sender_id
                && let Some(answer) = replayed(store, name, &delivery.delivery_id)
                    .await
                    .map_err(store_error)?
            {
                return Ok(answer);
            }
            return Err(full(pending));
        }
    };
    let delivery_id = delivery.delivery_id.clone();
    let inserted = store
        .write(AcceptJob {
            plugin: name.to_owned(),
            delivery,
        })
        .await
        .map_err(store_error)?;
    match inserted {
        InboxInsert::Inserted(id) => {
            reservation.keep();
            // Where the inbox feed brought the delivery to the worker, a
            // wake-up would only make it read the table for nothing.
            if !store.feeds_inbox() {
                endpoint.wake.notify_one();
            }
            tracing::debug!(plugin = %name, delivery_id = %delivery_id, inbox_id = id, "Webhook delivery accepted.");
            Ok(Answer::Accepted { delivery_id })
        }
        // A replay (or the same delivery twice at once): the inbox holds it.
        InboxInsert::Duplicate => {
            drop(reservation);
            Ok(replayed(store, name, &delivery_id)
                .await
                .map_err(store_error)?
                .unwrap_or(Answer::Duplicate {
                    delivery_id,
                    reply: None,
                }))
        }
    }
}

/// The answer to a replay of `delivery_id`, when the inbox holds it.
async fn replayed(
    store: &Store,
    name: &str,
    delivery_id: &str,
) -> Result<Option<Answer>, StoreError> {
    let Some(existing) = store.inbox_delivery(name, delivery_id).await? else {
        return Ok(None);
    };
    tracing::info!(plugin = %name, delivery_id = %delivery_id, "Replayed webhook delivery ignored.");
    Ok(Some(Answer::Duplicate {
        delivery_id: delivery_id.to_owned(),
        reply: existing.reply,
    }))
}

/// A write job: an accepted delivery into the inbox, pending.
struct AcceptJob {
    plugin: String,
    delivery: WebhookDelivery,
}

impl AcceptJob {
    fn row(&self) -> NewInboxRow<'_> {
        NewInboxRow {
            plugin: &self.plugin,
            delivery: &self.delivery,
            status: InboxStatus::Pending,
            reply: None,
        }
    }
}

impl WriteJob for AcceptJob {
    type Output = InboxInsert;

    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<InboxInsert, StoreError>> {
        Box::pin(tx.insert_inbox(&self.plugin, &self.delivery, InboxStatus::Pending, None))
    }

    /// Deliveries accepted together go into the inbox in one insert.
    const GROUPED: bool = true;

    fn run_group<'a>(
        jobs: &'a [&'a Self],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<Vec<InboxInsert>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<NewInboxRow<'_>> = jobs.iter().map(|job| job.row()).collect();
            tx.insert_inbox_many(&rows).await
        })
    }
}

/// A write job: a synchronous delivery, done, with the plugin's reply and
/// the records it made; `None` when the inbox already held the delivery
/// (then nothing is written).
struct SyncJob {
    plugin: String,
    delivery: WebhookDelivery,
    reply: Option<HttpReply>,
    prepared: ChainOutput,
}

impl WriteJob for SyncJob {
    type Output = Option<Vec<Upserted>>;

    fn run<'a>(
        &'a self,
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<Option<Vec<Upserted>>, StoreError>> {
        Box::pin(async move {
            let mut outputs = Self::run_group(&[self], tx).await?;
            // No result must not pass for a duplicate (`None`), which
            // answers a delivery never stored.
            outputs.pop().ok_or(StoreError::GroupMismatch(
                "a group of one delivery gave no result",
            ))
        })
    }

    fn weight(&self) -> usize {
        1 + self.prepared.records.len()
    }

    /// Deliveries answered together share their statements: one insert of
    /// their inbox rows, then one upsert of all their records (each
    /// statement is a round trip to sqlx's worker thread on SQLite).
    const GROUPED: bool = true;

    fn run_group<'a>(
        jobs: &'a [&'a Self],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<Upserted>>>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<NewInboxRow<'_>> = jobs
                .iter()
                .map(|job| NewInboxRow {
                    plugin: &job.plugin,
                    delivery: &job.delivery,
                    status: InboxStatus::Done,
                    reply: job.reply.as_ref(),
                })
                .collect();
            let inserted = tx.insert_inbox_many(&rows).await?;
            // A duplicate delivery writes nothing more.
            let fresh: Vec<(&str, &ChainOutput)> = jobs
                .iter()
                .zip(&inserted)
                .filter(|(_, inserted)| **inserted != InboxInsert::Duplicate)
                .map(|(job, _)| (job.plugin.as_str(), &job.prepared))
                .collect();
            let mut written = write_prepared_many(tx, &fresh).await?.into_iter();
            Ok(inserted
                .iter()
                .map(|inserted| match inserted {
                    InboxInsert::Duplicate => None,
                    InboxInsert::Inserted(_) => written.next(),
                })
                .collect())
        })
    }
}

/// The delivery to store and hand to the plugin: the API key (header and
/// query parameter) removed.
fn to_delivery(endpoint: &Endpoint, incoming: Incoming, id: Option<String>) -> WebhookDelivery {
    let (headers, query) = if endpoint.config.auth == WebhookAuth::ApiKey {
        (
            incoming
                .headers
                .into_iter()
                .filter(|(header, _)| !header.eq_ignore_ascii_case(verify::API_KEY_HEADER))
                .collect(),
            verify::strip_query_parameter(&incoming.query, verify::API_KEY_PARAMETER),
        )
    } else {
        (incoming.headers, incoming.query)
    };
    WebhookDelivery {
        method: incoming.method,
        path: incoming.path,
        query,
        headers,
        body: incoming.body,
        delivery_id: id.unwrap_or_else(|| generated_delivery_id(incoming.received_at)),
        received_at: incoming.received_at,
    }
}

/// The answer to a synchronous delivery whose call failed.
fn sync_failure(name: &str, timeout: std::time::Duration, reason: GiveUp) -> WebhookError {
    let plugin = name.to_owned();
    match reason {
        GiveUp::Permanent(CallError::Rejected(message)) => {
            WebhookError::Rejected { plugin, message }
        }
        GiveUp::Permanent(error)
        | GiveUp::Exhausted {
            last: AttemptFailure::Call(error),
            ..
        } => WebhookError::CallFailed { plugin, error },
        GiveUp::Exhausted {
            last: AttemptFailure::Timeout(_),
            ..
        } => WebhookError::Timeout {
            plugin,
            seconds: timeout.as_secs(),
        },
        GiveUp::Local(error) => WebhookError::CallFailed {
            plugin,
            error: CallError::Protocol(error.to_string()),
        },
        GiveUp::Cancelled
        | GiveUp::Stopped { .. }
        | GiveUp::RoleNotServed { .. }
        | GiveUp::Exhausted { .. } => WebhookError::NotRunning(plugin),
    }
}

/// Synchronous handling: call the plugin now; store the delivery (done, with
/// the reply) and its records in one transaction; then answer.
async fn receive_sync(
    endpoint: &Endpoint,
    ingest: &Ingest,
    delivery: WebhookDelivery,
) -> Result<Answer, WebhookError> {
    let name = endpoint.name();
    let store = &ingest.store;
    // One attempt: the sender waits for the answer, and retries itself.
    let span = tracing::info_span!("webhook", delivery_id = %delivery.delivery_id);
    let outcome = Call::new(&endpoint.plugin, Rpc::Webhook)
        .once()
        .run(|running| {
            let delivery = delivery.clone();
            async move { running.roles.webhook(delivery).await }
        })
        .instrument(span)
        .await
        .map_err(|reason| sync_failure(name, endpoint.plugin.retry_config().timeout, reason))?;
    let prepared = ingest
        .prepare(name, outcome.records)
        .await
        .map_err(|error| WebhookError::Enrichment {
            plugin: name.to_owned(),
            error,
        })?;
    let delivery_id = delivery.delivery_id.clone();
    let written = store
        .write(SyncJob {
            plugin: name.to_owned(),
            delivery,
            reply: outcome.reply.clone(),
            prepared,
        })
        .await
        .map_err(|error| WebhookError::Store {
            plugin: name.to_owned(),
            error,
        })?;
    let Some(upserted) = written else {
        // A concurrent copy of this delivery won; its records stand.
        return Ok(Answer::Duplicate {
            delivery_id,
            reply: outcome.reply,
        });
    };
    ingest.count(name, &upserted);
    tracing::debug!(plugin = %name, delivery_id = %delivery_id, records = upserted.len(), "Synchronous webhook delivery stored.");
    Ok(Answer::Reply {
        delivery_id,
        reply: outcome.reply,
    })
}

//! The `webhook_inbox` table: every accepted webhook delivery, made durable
//! before the hub answers 202, until the records the plugin made of it are
//! stored (`done`, in the same transaction) or it is dead-lettered (`dead`).
//!
//! `(plugin, delivery_id)` is unique: inserting a delivery id that is already
//! there changes nothing and reports the duplicate, so a replayed delivery is
//! accepted once. A synchronous delivery keeps the plugin's reply, so a
//! replay of it gets the same answer.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::bounded::{BoundedSelect, Direction, byte_budget, rows_left_out};
use super::inbox_feed::InboxSubscription;
use super::{Placeholders, Store, StoreError, StoreTx, ms_to_time, now_ms};
use crate::domain::{HttpReply, WebhookDelivery};

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    /// Accepted, waiting for the plugin.
    Pending,
    /// The plugin's records are stored.
    Done,
    /// Failed permanently; a dead letter holds it.
    Dead,
}

impl InboxStatus {
    /// `pending`, `done` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Done => "done",
            InboxStatus::Dead => "dead",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "pending" => Ok(InboxStatus::Pending),
            "done" => Ok(InboxStatus::Done),
            "dead" => Ok(InboxStatus::Dead),
            other => Err(StoreError::corrupt(
                "webhook_inbox",
                format!("unknown status {other:?}"),
            )),
        }
    }
}

/// One read of an endpoint's pending deliveries ([`Store::pending_inbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInbox {
    /// The oldest pending deliveries, in arrival order.
    pub entries: Vec<InboxEntry>,
    /// Whether these are every pending delivery there was (none was left
    /// out by the count or the bytes).
    pub complete: bool,
}

/// A delivery read back from the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The inbox row id.
    pub id: i64,
    /// The webhook plugin's instance name.
    pub plugin: String,
    /// The delivery as received (API keys already removed).
    pub delivery: WebhookDelivery,
    /// Where it is.
    pub status: InboxStatus,
    /// How many `HandleWebhook` attempts failed so far.
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The reply sent for a synchronous delivery.
    pub reply: Option<HttpReply>,
}

/// The result of [`StoreTx::insert_inbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxInsert {
    /// Stored with this row id.
    Inserted(i64),
    /// The delivery id was already in the inbox: nothing written.
    Duplicate,
}

/// A delivery to store with [`StoreTx::insert_inbox_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewInboxRow<'a> {
    /// The webhook plugin's instance name.
    pub plugin: &'a str,
    /// The delivery as received (API keys already removed).
    pub delivery: &'a WebhookDelivery,
    /// `Pending` for the worker, `Done` for a synchronous delivery handled.
    pub status: InboxStatus,
    /// The reply sent for a synchronous delivery.
    pub reply: Option<&'a HttpReply>,
}

impl NewInboxRow<'_> {
    /// What the inbox keeps unique: (plugin, delivery id).
    fn key(&self) -> (&str, &str) {
        (self.plugin, &self.delivery.delivery_id)
    }
}

/// Deliveries per multi-row inbox insert: 13 parameters each, so 3,328 per
/// statement, well within SQLite's and PostgreSQL's limits.
const INBOX_INSERT_CHUNK: usize = 256;

/// Rows per `UPDATE` of [`StoreTx::complete_inbox_many`].
const INBOX_UPDATE_CHUNK: usize = 1000;

/// The JSON form of a stored reply.
#[derive(Debug, Serialize, Deserialize)]
struct ReplySnapshot {
    status: u16,
    headers: Vec<(String, String)>,
    body_base64: String,
}

fn encode_reply(reply: &HttpReply) -> String {
    let snapshot = ReplySnapshot {
        status: reply.status,
        headers: reply.headers.clone(),
        body_base64: base64::engine::general_purpose::STANDARD.encode(&reply.body),
    };
    serde_json::to_string(&snapshot).unwrap_or_else(|_| "null".to_owned())
}

fn decode_reply(text: &str) -> Result<HttpReply, StoreError> {
    let snapshot: ReplySnapshot = serde_json::from_str(text)
        .map_err(|err| StoreError::corrupt("webhook_inbox", format!("bad reply JSON: {err}")))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(&snapshot.body_base64)
        .map_err(|err| StoreError::corrupt("webhook_inbox", format!("bad reply body: {err}")))?;
    Ok(HttpReply {
        status: snapshot.status,
        headers: snapshot.headers,
        body,
    })
}

const INBOX_COLUMNS: &str = "id, plugin, delivery_id, method, path, query, headers, body, received_at, status, attempts, last_error, reply";

fn entry_from_row(row: &AnyRow) -> Result<InboxEntry, StoreError> {
    let headers: String = row.try_get("headers")?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers)
        .map_err(|err| StoreError::corrupt("webhook_inbox", format!("bad headers JSON: {err}")))?;
    let received_ms: i64 = row.try_get("received_at")?;
    let received_at: DateTime<Utc> = ms_to_time(received_ms).ok_or_else(|| {
        StoreError::corrupt(
            "webhook_inbox",
            format!("received_at {received_ms} out of range"),
        )
    })?;
    let status: String = row.try_get("status")?;
    let reply: Option<String> = row.try_get("reply")?;
    Ok(InboxEntry {
        id: row.try_get("id")?,
        plugin: row.try_get("plugin")?,
        delivery: WebhookDelivery {
            method: row.try_get("method")?,
            path: row.try_get("path")?,
            query: row.try_get("query")?,
            headers,
            body: row.try_get("body")?,
            delivery_id: row.try_get("delivery_id")?,
            received_at,
        },
        status: InboxStatus::parse(&status)?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        reply: reply.as_deref().map(decode_reply).transpose()?,
    })
}

/// When a delivery was received, as the inbox stores it (milliseconds).
fn received_ms(row: &NewInboxRow<'_>) -> i64 {
    row.delivery.received_at.timestamp_millis()
}

/// The entry a pending row just inserted as `id` is, as a read of the
/// table would give it back (`received_at` to the millisecond).
fn pending_entry(id: i64, row: &NewInboxRow<'_>) -> InboxEntry {
    let mut delivery = row.delivery.clone();
    if let Some(stored) = ms_to_time(received_ms(row)) {
        delivery.received_at = stored;
    }
    InboxEntry {
        id,
        plugin: row.plugin.to_owned(),
        delivery,
        status: InboxStatus::Pending,
        attempts: 0,
        last_error: None,
        reply: None,
    }
}

impl StoreTx {
    /// Stores `delivery` for `plugin` with `status` (`Pending` for the
    /// worker, `Done` for a synchronous delivery already handled, with its
    /// `reply`). A delivery id already in the inbox writes nothing and
    /// returns [`InboxInsert::Duplicate`].
    pub async fn insert_inbox(
        &mut self,
        plugin: &str,
        delivery: &WebhookDelivery,
        status: InboxStatus,
        reply: Option<&HttpReply>,
    ) -> Result<InboxInsert, StoreError> {
        let row = NewInboxRow {
            plugin,
            delivery,
            status,
            reply,
        };
        let mut inserted = self.insert_inbox_many(&[row]).await?;
        // One row in, one result out; anything else is a bug, and must not
        // pass for a duplicate (that answers a delivery never stored).
        inserted.pop().ok_or(StoreError::GroupMismatch(
            "an insert of one delivery gave no result",
        ))
    }

    /// [`StoreTx::insert_inbox`] for several deliveries, in multi-row
    /// inserts: the same effect as inserting each in turn (a delivery id
    /// repeated among them is a duplicate of its first). Returns what
    /// happened to each, in order.
    pub async fn insert_inbox_many(
        &mut self,
        rows: &[NewInboxRow<'_>],
    ) -> Result<Vec<InboxInsert>, StoreError> {
        let mut results = vec![InboxInsert::Duplicate; rows.len()];
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        let firsts: Vec<usize> = (0..rows.len())
            .filter(|&index| seen.insert(rows[index].key()))
            .collect();
        let now = now_ms();
        for chunk in firsts.chunks(INBOX_INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO webhook_inbox (plugin, delivery_id, method, path, query, headers, body, received_at, status, attempts, last_error, reply, updated_at) VALUES ",
            );
            Placeholders::new(self.backend).push_rows(&mut sql, chunk.len(), 13);
            sql.push_str(
                " ON CONFLICT (plugin, delivery_id) DO NOTHING RETURNING id, plugin, delivery_id",
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for &index in chunk {
                let row = &rows[index];
                let headers = serde_json::to_string(&row.delivery.headers)
                    .map_err(|err| StoreError::corrupt("webhook_inbox", err))?;
                query = query
                    .bind(row.plugin.to_owned())
                    .bind(row.delivery.delivery_id.clone())
                    .bind(row.delivery.method.clone())
                    .bind(row.delivery.path.clone())
                    .bind(row.delivery.query.clone())
                    .bind(headers)
                    .bind(row.delivery.body.clone())
                    .bind(received_ms(row))
                    .bind(row.status.as_str())
                    .bind(0_i64)
                    .bind(None::<String>)
                    .bind(row.reply.map(encode_reply))
                    .bind(now);
            }
            let by_key: std::collections::HashMap<(&str, &str), usize> = chunk
                .iter()
                .map(|&index| (rows[index].key(), index))
                .collect();
            for stored in query.fetch_all(self.conn()).await? {
                let plugin: String = stored.try_get("plugin")?;
                let delivery_id: String = stored.try_get("delivery_id")?;
                let Some(&index) = by_key.get(&(plugin.as_str(), delivery_id.as_str())) else {
                    return Err(StoreError::corrupt(
                        "webhook_inbox",
                        format!(
                            "an insert returned delivery {delivery_id:?} of {plugin:?}, which it did not insert"
                        ),
                    ));
                };
                let id: i64 = stored.try_get("id")?;
                results[index] = InboxInsert::Inserted(id);
                let row = &rows[index];
                if row.status == InboxStatus::Pending {
                    self.wrote_inbox = true;
                    if self.inbox_feed.wanted(row.plugin) {
                        self.fed_inbox.push(pending_entry(id, row));
                    }
                }
            }
        }
        Ok(results)
    }

    /// Marks inbox row `id` done (commit it with the records it produced).
    /// Returns false when the row is not pending (already handled).
    pub async fn complete_inbox(&mut self, id: i64, attempts: u32) -> Result<bool, StoreError> {
        Ok(self.complete_inbox_many(&[(id, attempts)]).await? == 1)
    }

    /// Marks each inbox row `(id, attempts)` done, in one `UPDATE` per
    /// distinct attempt count (rows of many deliveries handled at the first
    /// attempt take one statement). Returns how many rows were pending.
    pub async fn complete_inbox_many(&mut self, rows: &[(i64, u32)]) -> Result<u64, StoreError> {
        let mut by_attempts: std::collections::BTreeMap<u32, Vec<i64>> =
            std::collections::BTreeMap::new();
        for &(id, attempts) in rows {
            by_attempts.entry(attempts).or_default().push(id);
        }
        let now = now_ms();
        let mut completed = 0;
        for (attempts, ids) in by_attempts {
            for chunk in ids.chunks(INBOX_UPDATE_CHUNK) {
                let mut placeholders = Placeholders::new(self.backend);
                let mut sql = String::from("UPDATE webhook_inbox SET status = 'done', attempts = ");
                placeholders.push(&mut sql);
                sql.push_str(", updated_at = ");
                placeholders.push(&mut sql);
                sql.push_str(" WHERE status = 'pending' AND id IN ");
                placeholders.push_tuple(&mut sql, chunk.len());
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(i64::from(attempts))
                    .bind(now);
                for &id in chunk {
                    query = query.bind(id);
                }
                completed += query.execute(self.conn()).await?.rows_affected();
            }
        }
        Ok(completed)
    }

    /// Marks inbox row `id` dead with the last error (commit it with the
    /// dead letter). Returns false when the row is not pending.
    pub async fn fail_inbox(
        &mut self,
        id: i64,
        attempts: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhook_inbox SET status = 'dead', attempts = $2, last_error = $3, updated_at = $4 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Puts a dead delivery back to pending, for a replay of its dead
    /// letter. Returns false when there is no such dead delivery.
    pub async fn requeue_inbox(&mut self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhook_inbox SET status = 'pending', attempts = 0, last_error = NULL, updated_at = $2 WHERE id = $1 AND status = 'dead'",
        )
        .bind(id)
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        let requeued = result.rows_affected() == 1;
        self.wrote_inbox |= requeued;
        Ok(requeued)
    }
}

impl Store {
    /// A receiver that changes whenever another hub sharing this
    /// PostgreSQL database commits pending inbox rows (inbox workers wait
    /// on it beside their own endpoint's wake-up).
    pub fn subscribe_inbox(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inbox.subscribe()
    }

    /// Subscribes the inbox worker of `plugin` to the pending deliveries
    /// this hub commits for it ([`super::inbox_feed`]), replacing any
    /// earlier subscription of that plugin. `None` on PostgreSQL, where
    /// other hubs may write the inbox too: there the worker reads it.
    pub fn subscribe_inbox_feed(&self, plugin: &str) -> Option<InboxSubscription> {
        self.feeds_inbox()
            .then(|| self.inbox_feed.subscribe(plugin))
    }

    /// Whether an inbox worker learns of this hub's pending deliveries from
    /// the inbox feed ([`Store::subscribe_inbox_feed`]) rather than from a
    /// wake-up and a read.
    pub fn feeds_inbox(&self) -> bool {
        self.backend == super::Backend::Sqlite
    }

    /// The oldest `limit` pending deliveries of `plugin` but those in
    /// `skip` (the ones in hand), in arrival order; past the first, none
    /// starts once those before it reach `max_bytes` of bodies and headers
    /// (a few large bodies are read at a time). `complete` when these are
    /// all the pending deliveries there are (but those in `skip`).
    pub async fn pending_inbox(
        &self,
        plugin: &str,
        limit: u32,
        max_bytes: usize,
        skip: &[i64],
    ) -> Result<PendingInbox, StoreError> {
        let mut filter = String::from("plugin = $1 AND status = 'pending'");
        if !skip.is_empty() {
            let placeholders: Vec<String> = (0..skip.len())
                .map(|index| format!("${}", index + 4))
                .collect();
            filter.push_str(&format!(" AND id NOT IN ({})", placeholders.join(", ")));
        }
        let query = BoundedSelect {
            columns: INBOX_COLUMNS,
            from: "webhook_inbox",
            filter: &filter,
            join_filter: "TRUE",
            key: "id",
            order: &[("id", Direction::Asc)],
            size: "octet_length(body) + octet_length(headers)",
            scan: "$2",
            take: "$2",
            max_bytes: "$3",
        }
        .sql();
        let limit = limit.max(1);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(plugin)
            .bind(i64::from(limit))
            .bind(byte_budget(max_bytes));
        for id in skip {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let entries = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PendingInbox {
            complete: !rows_left_out(&rows)? && u32::try_from(rows.len()).is_ok_and(|n| n < limit),
            entries,
        })
    }

    /// The delivery `delivery_id` of `plugin`, if the inbox holds it.
    pub async fn inbox_delivery(
        &self,
        plugin: &str,
        delivery_id: &str,
    ) -> Result<Option<InboxEntry>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM webhook_inbox WHERE plugin = $1 AND delivery_id = $2"
        )))
        .bind(plugin)
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// How many deliveries of `plugin` are pending.
    pub async fn count_pending_inbox(&self, plugin: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_inbox WHERE plugin = $1 AND status = 'pending'",
        )
        .bind(plugin)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes the `done` deliveries of `plugin` received before `before`
    /// (their delivery ids are then no longer recognised as replays);
    /// returns how many. Pending and dead deliveries are kept.
    pub async fn prune_inbox(
        &self,
        plugin: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let result = sqlx::query(
            "DELETE FROM webhook_inbox WHERE plugin = $1 AND status = 'done' AND received_at < $2",
        )
        .bind(plugin)
        .bind(before.timestamp_millis())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// Records a failed attempt on a pending delivery (so the count
    /// survives a restart).
    pub async fn note_inbox_attempt(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_inbox SET attempts = $2, last_error = $3, updated_at = $4 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::Record;
    use crate::store::testing;

    fn delivery(id: &str) -> WebhookDelivery {
        WebhookDelivery {
            method: "POST".into(),
            path: "/webhooks/hook".into(),
            query: "a=1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"id\":1}\xff".to_vec(),
            delivery_id: id.into(),
            received_at: ms_to_time(1_700_000_000_123).unwrap(),
        }
    }

    async fn exercise(store: Store) {
        let mut tx = store.begin().await.unwrap();
        let first = tx
            .insert_inbox("hook", &delivery("d1"), InboxStatus::Pending, None)
            .await
            .unwrap();
        let InboxInsert::Inserted(id) = first else {
            panic!("not inserted: {first:?}");
        };
        assert_eq!(
            tx.insert_inbox("hook", &delivery("d1"), InboxStatus::Pending, None)
                .await
                .unwrap(),
            InboxInsert::Duplicate
        );
        // Another plugin may use the same delivery id.
        assert!(matches!(
            tx.insert_inbox("other", &delivery("d1"), InboxStatus::Pending, None)
                .await
                .unwrap(),
            InboxInsert::Inserted(_)
        ));
        tx.commit().await.unwrap();
        assert_eq!(store.count_pending_inbox("hook").await.unwrap(), 1);
        let pending = store
            .pending_inbox("hook", 10, usize::MAX, &[])
            .await
            .unwrap()
            .entries;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].delivery, delivery("d1"));
        assert_eq!(pending[0].status, InboxStatus::Pending);

        store
            .note_inbox_attempt(id, 1, "unavailable")
            .await
            .unwrap();
        // Done together with the records, in one transaction.
        let mut tx = store.begin().await.unwrap();
        let record = Record {
            id: "r1".into(),
            source: String::new(),
            record_type: "webhook".into(),
            occurred_at: None,
            payload: serde_json::json!({"a": 1}).into(),
            metadata: Default::default(),
            idempotency_key: None,
        };
        tx.upsert_records("hook", &[record]).await.unwrap();
        assert!(tx.complete_inbox(id, 2).await.unwrap());
        tx.commit().await.unwrap();
        assert!(
            !store
                .begin()
                .await
                .unwrap()
                .complete_inbox(id, 2)
                .await
                .unwrap()
        );
        let done = store.inbox_delivery("hook", "d1").await.unwrap().unwrap();
        assert_eq!((done.status, done.attempts), (InboxStatus::Done, 2));
        assert_eq!(done.last_error.as_deref(), Some("unavailable"));
        assert_eq!(store.count_pending_inbox("hook").await.unwrap(), 0);

        // A synchronous delivery stored done with its reply.
        let reply = HttpReply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"challenge-accepted".to_vec(),
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_inbox("hook", &delivery("d2"), InboxStatus::Done, Some(&reply))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let stored = store.inbox_delivery("hook", "d2").await.unwrap().unwrap();
        assert_eq!(stored.reply, Some(reply));

        // Dead, then requeued by a replay.
        let mut tx = store.begin().await.unwrap();
        let InboxInsert::Inserted(dead) = tx
            .insert_inbox("hook", &delivery("d3"), InboxStatus::Pending, None)
            .await
            .unwrap()
        else {
            panic!("not inserted");
        };
        assert!(tx.fail_inbox(dead, 3, "rejected").await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(store.count_pending_inbox("hook").await.unwrap(), 0);
        let mut tx = store.begin().await.unwrap();
        assert!(tx.requeue_inbox(dead).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(
            store
                .pending_inbox("hook", 10, usize::MAX, &[])
                .await
                .unwrap()
                .entries[0]
                .id,
            dead
        );

        // Pruning removes old done deliveries only.
        let later = ms_to_time(1_700_000_000_124).unwrap();
        assert_eq!(store.prune_inbox("hook", later).await.unwrap(), 2);
        assert!(store.inbox_delivery("hook", "d1").await.unwrap().is_none());
        assert!(store.inbox_delivery("hook", "d3").await.unwrap().is_some());
        assert!(store.inbox_delivery("other", "d1").await.unwrap().is_some());

        // A rolled-back insert leaves nothing behind.
        let mut tx = store.begin().await.unwrap();
        tx.insert_inbox("hook", &delivery("d4"), InboxStatus::Pending, None)
            .await
            .unwrap();
        drop(tx);
        assert!(store.inbox_delivery("hook", "d4").await.unwrap().is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn inbox_round_trip_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        exercise(store).await;
    }

    #[tokio::test]
    async fn the_feed_brings_committed_pending_deliveries_as_the_table_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let feed = store.subscribe_inbox_feed("hook").unwrap();
        let deliveries = [delivery("a"), delivery("b"), delivery("c"), delivery("a")];
        let rows: Vec<NewInboxRow<'_>> = deliveries
            .iter()
            .enumerate()
            .map(|(index, delivery)| NewInboxRow {
                // One for a plugin that did not subscribe, one done (a
                // synchronous delivery), one a duplicate: none is fed.
                plugin: if index == 1 { "other" } else { "hook" },
                delivery,
                status: if index == 2 {
                    InboxStatus::Done
                } else {
                    InboxStatus::Pending
                },
                reply: None,
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        tx.insert_inbox_many(&rows).await.unwrap();
        assert!(feed.take().entries.is_empty(), "nothing before the commit");
        tx.commit().await.unwrap();
        let fed = feed.take();
        let read = store
            .pending_inbox("hook", 10, usize::MAX, &[])
            .await
            .unwrap()
            .entries;
        assert_eq!(fed.entries, read);
        assert_eq!(read.len(), 1);
        assert!(!fed.overflowed);

        // A rolled-back insert feeds nothing.
        let mut tx = store.begin().await.unwrap();
        tx.insert_inbox("hook", &delivery("d"), InboxStatus::Pending, None)
            .await
            .unwrap();
        drop(tx);
        assert!(feed.take().entries.is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn inbox_round_trip_on_postgres() {
        let Some(url) = testing::postgres_url("inbox_round_trip_on_postgres").await else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        // Other hubs may write this inbox: its workers read it.
        assert!(store.subscribe_inbox_feed("hook").is_none());
        exercise(store).await;
    }

    /// Several deliveries in one insert: each gets what inserting it on its
    /// own would have given, a repeated id among them included; then one
    /// update marks the pending ones done.
    async fn many_at_once(store: Store) {
        let mut tx = store.begin().await.unwrap();
        let InboxInsert::Inserted(stored) = tx
            .insert_inbox("hook", &delivery("stored"), InboxStatus::Pending, None)
            .await
            .unwrap()
        else {
            panic!("not inserted");
        };
        let reply = HttpReply {
            status: 201,
            headers: Vec::new(),
            body: b"made".to_vec(),
        };
        let deliveries = [
            delivery("a"),
            delivery("stored"),
            delivery("b"),
            delivery("a"),
        ];
        let rows: Vec<NewInboxRow<'_>> = deliveries
            .iter()
            .enumerate()
            .map(|(index, delivery)| NewInboxRow {
                plugin: if index == 2 { "other" } else { "hook" },
                delivery,
                status: if index == 2 {
                    InboxStatus::Done
                } else {
                    InboxStatus::Pending
                },
                reply: (index == 2).then_some(&reply),
            })
            .collect();
        let inserted = tx.insert_inbox_many(&rows).await.unwrap();
        let ids: Vec<Option<i64>> = inserted
            .iter()
            .map(|outcome| match outcome {
                InboxInsert::Inserted(id) => Some(*id),
                InboxInsert::Duplicate => None,
            })
            .collect();
        assert!(ids[0].is_some() && ids[2].is_some(), "{inserted:?}");
        assert_eq!((ids[1], ids[3]), (None, None), "{inserted:?}");
        assert!(ids[0] < ids[2], "ids in input order: {inserted:?}");
        let a = ids[0].unwrap();
        assert_eq!(
            tx.complete_inbox_many(&[(stored, 1), (a, 2), (a, 2)])
                .await
                .unwrap(),
            2
        );
        tx.commit().await.unwrap();
        let a = store.inbox_delivery("hook", "a").await.unwrap().unwrap();
        assert_eq!(a.delivery, delivery("a"));
        assert_eq!((a.status, a.attempts), (InboxStatus::Done, 2));
        let stored = store
            .inbox_delivery("hook", "stored")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.status, stored.attempts), (InboxStatus::Done, 1));
        let b = store.inbox_delivery("other", "b").await.unwrap().unwrap();
        assert_eq!((b.status, b.reply), (InboxStatus::Done, Some(reply)));
        assert!(store.inbox_delivery("hook", "b").await.unwrap().is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn many_deliveries_at_once_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        many_at_once(store).await;
    }

    #[tokio::test]
    async fn many_deliveries_at_once_on_postgres() {
        let Some(url) = testing::postgres_url("many_deliveries_at_once_on_postgres").await else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        many_at_once(store).await;
    }

    /// Five pending deliveries with bodies of 1,000 bytes: a read ahead
    /// stops at its bytes, says it is not complete, and a read of every one
    /// says it is.
    async fn reads_stop_at_their_bytes(store: Store) {
        let mut tx = store.begin().await.unwrap();
        for n in 0..5 {
            let delivery = WebhookDelivery {
                body: vec![b'x'; 1_000],
                ..delivery(&format!("large-{n}"))
            };
            tx.insert_inbox("hook", &delivery, InboxStatus::Pending, None)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let ids = |pending: &PendingInbox| {
            pending
                .entries
                .iter()
                .map(|entry| entry.delivery.delivery_id.clone())
                .collect::<Vec<_>>()
        };
        let cut = store.pending_inbox("hook", 100, 2_500, &[]).await.unwrap();
        assert_eq!(ids(&cut), ["large-0", "large-1", "large-2"]);
        assert!(!cut.complete, "a read cut by its bytes left deliveries out");
        let first = store.pending_inbox("hook", 100, 0, &[]).await.unwrap();
        assert_eq!(ids(&first), ["large-0"]);
        let all = store
            .pending_inbox("hook", 100, usize::MAX, &[])
            .await
            .unwrap();
        assert_eq!(all.entries.len(), 5);
        assert!(all.complete);
        // The ones in hand are skipped, so they take none of the bytes.
        let in_hand = [all.entries[0].id, all.entries[1].id];
        let past_hand = store
            .pending_inbox("hook", 100, 2_500, &in_hand)
            .await
            .unwrap();
        assert_eq!(ids(&past_hand), ["large-2", "large-3", "large-4"]);
        assert!(past_hand.complete);
        let counted = store
            .pending_inbox("hook", 5, usize::MAX, &[])
            .await
            .unwrap();
        assert_eq!(counted.entries.len(), 5);
        assert!(
            !counted.complete,
            "a read that reached its count may have left some out"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn inbox_reads_stop_at_their_bytes_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        reads_stop_at_their_bytes(store).await;
    }

    #[tokio::test]
    async fn inbox_reads_stop_at_their_bytes_on_postgres() {
        let Some(url) = testing::postgres_url("inbox_reads_stop_at_their_bytes").await else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        reads_stop_at_their_bytes(store).await;
    }
}

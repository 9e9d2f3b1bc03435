//! The event outbox and per-output delivery progress.
//!
//! Every created or updated record writes one `outbox` row (with a snapshot
//! of the record) in the transaction that stores it. Each output has a
//! durable `position` (every event id at or below it is done for that
//! output: acknowledged, dead-lettered, or not subscribed) and, above the
//! position, `output_done` rows for events finished out of order, so a crash
//! redelivers only what was not acknowledged. `output_replays` holds
//! dead-lettered events an operator asked to deliver again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::bounded::{BoundedSelect, Direction, byte_budget, rows_left_out};
use super::records::{RecordSnapshot, returns_rows};
use super::{
    Backend, FeedReader, Placeholders, SQLITE_INSERT_COUNTS, Store, StoreError, StoreTx,
    inserted_ids, ms_to_time, now_ms,
};

/// Events marked done per statement.
const MARK_CHUNK: usize = 200;
use crate::domain::{EventKind, Record};

/// One read of the events after an output's position
/// ([`Store::events_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventScan {
    /// The events, in id order.
    pub events: Vec<OutboxEvent>,
    /// Whether these were every event after the position not yet done when
    /// the read ran (none was left out by the count or the bytes).
    pub complete: bool,
}

/// One event from the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The outbox id: increasing, and the delivery id outputs see (stable
    /// across redeliveries).
    pub id: i64,
    /// Created or updated.
    pub kind: EventKind,
    /// The hub id of the record.
    pub record_id: i64,
    /// The record as it was stored by this change (shared: the feed, the
    /// output's stream and its retries hold the same one).
    pub record: Arc<Record>,
    /// When the event was written.
    pub created_at: DateTime<Utc>,
}

/// Which events an output subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFilter {
    /// The kinds of event delivered (`created`, `updated`).
    pub kinds: Vec<EventKind>,
    /// Only records from these sources; empty means every source.
    pub sources: Vec<String>,
    /// Only records of these types; empty means every type.
    pub types: Vec<String>,
}

impl Default for OutputFilter {
    fn default() -> Self {
        OutputFilter {
            kinds: vec![EventKind::Created, EventKind::Updated],
            sources: Vec::new(),
            types: Vec::new(),
        }
    }
}

impl OutputFilter {
    /// Whether `event` is for this output.
    pub fn matches(&self, event: &OutboxEvent) -> bool {
        self.kinds.contains(&event.kind)
            && (self.sources.is_empty() || self.sources.contains(&event.record.source))
            && (self.types.is_empty() || self.types.contains(&event.record.record_type))
    }
}

/// `created` / `updated`, as stored.
pub(crate) fn kind_to_str(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "created",
        EventKind::Updated => "updated",
    }
}

pub(crate) fn kind_from_str(text: &str, table: &'static str) -> Result<EventKind, StoreError> {
    match text {
        "created" => Ok(EventKind::Created),
        "updated" => Ok(EventKind::Updated),
        other => Err(StoreError::corrupt(
            table,
            format!("unknown event kind {other:?}"),
        )),
    }
}

fn event_from_row(row: &AnyRow) -> Result<OutboxEvent, StoreError> {
    let created_at: i64 = row.try_get("created_at")?;
    Ok(OutboxEvent {
        id: row.try_get("id")?,
        kind: kind_from_str(&row.try_get::<String, _>("kind")?, "outbox")?,
        record_id: row.try_get("record_pk")?,
        record: RecordSnapshot::decode(&row.try_get::<String, _>("record")?, "outbox")?.into(),
        created_at: ms_to_time(created_at).ok_or_else(|| {
            StoreError::corrupt("outbox", format!("created_at {created_at} out of range"))
        })?,
    })
}

impl StoreTx {
    /// Writes one outbox event per `(record id, kind, record)`, in one
    /// statement; returns their ids in input order.
    ///
    /// Each event's id is the one the database gave the row of its
    /// position in the statement. On SQLite new ids ascend in the order of
    /// the `VALUES` (see [`StoreTx::inserted_ids`]), so the ids returned,
    /// sorted, are the events' in input order. On PostgreSQL the order of
    /// `RETURNING` is not promised: events of distinct records are matched
    /// to the returned ids by record id; when a record has more than one
    /// event here (a key repeated in an upsert, or webhook deliveries that
    /// update one record in one commit), the rows are inserted from
    /// `SELECT ... ORDER BY` their position, which draws their ids from the
    /// sequence in that order, and the ids are sorted.
    pub(crate) async fn insert_events(
        &mut self,
        events: &[(i64, EventKind, &Record)],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sqlite = self.backend() == Backend::Sqlite;
        let by_position = !sqlite && {
            let mut records = std::collections::HashSet::with_capacity(events.len());
            !events
                .iter()
                .all(|(record_id, _, _)| records.insert(*record_id))
        };
        let mut sql = String::from(
            "INSERT INTO outbox (record_pk, kind, source, record_type, record, created_at) ",
        );
        let mut placeholders = Placeholders::new(self.backend);
        if by_position {
            sql.push_str("SELECT c0, c1, c2, c3, c4, c5 FROM (VALUES ");
            placeholders.push_numbered_rows(&mut sql, events.len(), 6);
            sql.push_str(") AS v (c0, c1, c2, c3, c4, c5, pos) ORDER BY pos");
        } else {
            sql.push_str("VALUES ");
            placeholders.push_rows(&mut sql, events.len(), 6);
        }
        // Many rows on SQLite: no rows back (each would be a message from
        // sqlx's worker thread); the ids follow from AUTOINCREMENT, see
        // `inserted_ids`.
        let worked_out = !returns_rows(self.backend(), events.len());
        let sorted_ids = sqlite || by_position;
        if worked_out {
            sql.push_str(SQLITE_INSERT_COUNTS);
        } else {
            sql.push_str(if sorted_ids {
                " RETURNING id"
            } else {
                " RETURNING id, record_pk"
            });
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (record_id, kind, record) in events {
            query = query
                .bind(*record_id)
                .bind(kind_to_str(*kind))
                .bind(record.source.clone())
                .bind(record.record_type.clone())
                .bind(RecordSnapshot::encode(record))
                .bind(now);
        }
        let ids: Vec<i64> = if worked_out {
            // `fetch_all`: sqlx's `fetch_one` on SQLite stops at the first
            // result, which is the insert's (it has no row).
            let rows = query.fetch_all(self.conn()).await?;
            let [counts] = rows.as_slice() else {
                return Err(StoreError::corrupt(
                    "outbox",
                    format!("an insert's query gave {} rows instead of 1", rows.len()),
                ));
            };
            inserted_ids("outbox", counts, events.len())?.collect()
        } else if sorted_ids {
            let mut ids = query
                .fetch_all(self.conn())
                .await?
                .iter()
                .map(|row| row.try_get::<i64, _>("id"))
                .collect::<Result<Vec<i64>, _>>()?;
            if ids.len() != events.len() {
                return Err(StoreError::corrupt(
                    "outbox",
                    format!("{} of {} events were inserted", ids.len(), events.len()),
                ));
            }
            ids.sort_unstable();
            ids
        } else {
            let mut ids = std::collections::HashMap::new();
            for row in query.fetch_all(self.conn()).await? {
                ids.insert(
                    row.try_get::<i64, _>("record_pk")?,
                    row.try_get::<i64, _>("id")?,
                );
            }
            events
                .iter()
                .map(|(record_id, _, _)| {
                    ids.get(record_id).copied().ok_or_else(|| {
                        StoreError::corrupt("outbox", "an inserted event's id was not returned")
                    })
                })
                .collect::<Result<Vec<i64>, StoreError>>()?
        };
        // An error above ends the transaction uncommitted, so the flag is
        // set only once every id is known.
        self.wrote_events = true;
        self.feed_outputs(events, &ids, now);
        Ok(ids)
    }

    /// Keeps the events just inserted (with their `ids`), as the table
    /// holds them, for the outbox feed to get on commit, when it has
    /// readers.
    fn feed_outputs(&mut self, events: &[(i64, EventKind, &Record)], ids: &[i64], now: i64) {
        if !self.feed.wanted() {
            return;
        }
        // `now` is the clock's time: always in range. Were it not, the
        // events would stay out of the feed and outputs read the table.
        let Some(created_at) = ms_to_time(now) else {
            return;
        };
        self.published.extend(
            events
                .iter()
                .zip(ids)
                .map(|((record_id, kind, record), &id)| OutboxEvent {
                    id,
                    kind: *kind,
                    record_id: *record_id,
                    record: Arc::new(RecordSnapshot::as_stored(record)),
                    created_at,
                }),
        );
    }

    /// Marks events finished for `output` (acknowledged or dead-lettered)
    /// above its position.
    pub async fn mark_done(&mut self, output: &str, event_ids: &[i64]) -> Result<(), StoreError> {
        for chunk in event_ids.chunks(MARK_CHUNK) {
            let mut sql = String::from("INSERT INTO output_done (output, event_id) VALUES ");
            let mut placeholders = Placeholders::new(self.backend);
            placeholders.push_rows(&mut sql, chunk.len(), 2);
            sql.push_str(" ON CONFLICT DO NOTHING");
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for event_id in chunk {
                query = query.bind(output).bind(*event_id);
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Moves `output`'s position to `position` (every event at or below it is
    /// done) and forgets the per-event marks it now covers.
    pub async fn set_position(&mut self, output: &str, position: i64) -> Result<(), StoreError> {
        self.move_position(output, position).await?;
        sqlx::query("DELETE FROM output_done WHERE output = $1 AND event_id <= $2")
            .bind(output)
            .bind(position)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Moves `output`'s position to `position`, for a caller that knows no
    /// event of `output` is marked done (an ordered output that found none
    /// marked): [`StoreTx::set_position`] without its statement that
    /// forgets the marks.
    pub async fn move_position(&mut self, output: &str, position: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO output_positions (output, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (output) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(output)
        .bind(position)
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Asks `output` to deliver event `event_id` again (a dead-letter replay).
    pub async fn enqueue_replay(&mut self, output: &str, event_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO output_replays (output, event_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(output)
        .bind(event_id)
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        self.wrote_replays = true;
        Ok(())
    }

    /// Removes a replay request once it is delivered or dead-lettered again.
    pub async fn finish_replay(&mut self, output: &str, event_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM output_replays WHERE output = $1 AND event_id = $2")
            .bind(output)
            .bind(event_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

const EVENT_COLUMNS: &str = "o.id, o.kind, o.record_pk, o.record, o.created_at";

impl Store {
    /// `output`'s durable position (0 before its first delivery).
    pub async fn output_position(&self, output: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT position FROM output_positions WHERE output = $1")
                .bind(output)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Whether `output` has events marked done out of order (above its
    /// position; [`StoreTx::set_position`] forgets those below).
    pub async fn output_has_marks(&self, output: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM output_done WHERE output = $1 LIMIT 1")
                .bind(output)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Up to `limit` events after `after` that are not yet done for
    /// `output`, in id order (filters are applied by the caller). Past the
    /// first event, none starts once the records before it reach
    /// `max_bytes` (their stored JSON: a little more than
    /// [`Record::byte_len`]), so a run of large records is read a few at a
    /// time instead of `limit` at once (see `bounded.rs`). The scan also
    /// says whether those were every such event when the read ran.
    pub async fn events_after(
        &self,
        output: &str,
        after: i64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventScan, StoreError> {
        let query = BoundedSelect {
            columns: EVENT_COLUMNS,
            from: "outbox o",
            filter: "o.id > $1 AND NOT EXISTS \
                     (SELECT 1 FROM output_done d WHERE d.output = $2 AND d.event_id = o.id)",
            join_filter: "TRUE",
            key: "o.id",
            order: &[("o.id", Direction::Asc)],
            size: "octet_length(o.record)",
            scan: "$3",
            take: "$3",
            max_bytes: "$4",
        }
        .sql();
        let limit = limit.max(1);
        let rows = sqlx::query(AssertSqlSafe(query))
            .bind(after)
            .bind(output)
            .bind(i64::from(limit))
            .bind(byte_budget(max_bytes))
            .fetch_all(&self.pool)
            .await?;
        Ok(EventScan {
            complete: !rows_left_out(&rows)? && u32::try_from(rows.len()).is_ok_and(|n| n < limit),
            events: rows.iter().map(event_from_row).collect::<Result<_, _>>()?,
        })
    }

    /// Events an operator asked `output` to deliver again, oldest first: up
    /// to `limit`, and past the first only while their records stay under
    /// `max_bytes` (as [`Store::events_after`]).
    pub async fn pending_replays(
        &self,
        output: &str,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let query = BoundedSelect {
            columns: EVENT_COLUMNS,
            from: "output_replays r JOIN outbox o ON o.id = r.event_id",
            filter: "r.output = $1",
            join_filter: "r.output = $1",
            key: "o.id",
            order: &[("r.created_at", Direction::Asc), ("o.id", Direction::Asc)],
            size: "octet_length(o.record)",
            scan: "$2",
            take: "$2",
            max_bytes: "$3",
        }
        .sql();
        let rows = sqlx::query(AssertSqlSafe(query))
            .bind(output)
            .bind(i64::from(limit.max(1)))
            .bind(byte_budget(max_bytes))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The outbox event `event_id`.
    pub async fn event(&self, event_id: i64) -> Result<Option<OutboxEvent>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.id = $1"
        )))
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// The id of the newest event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM outbox")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Deletes the events every output in `outputs` has finished (all of
    /// them when there is no output), except those a dead letter or a
    /// pending replay still refers to. Returns how many were deleted.
    pub async fn prune_outbox(&self, outputs: &[String]) -> Result<u64, StoreError> {
        let mut through = i64::MAX;
        for output in outputs {
            through = through.min(self.output_position(output).await?);
        }
        if through == i64::MAX {
            through = self.last_event_id().await?;
        }
        let mut tx = self.begin().await?;
        let result = sqlx::query(
            "DELETE FROM outbox WHERE id <= $1 \
             AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = outbox.id) \
             AND NOT EXISTS (SELECT 1 FROM output_replays r WHERE r.event_id = outbox.id)",
        )
        .bind(through)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// How many events the outbox holds, by kind (`created`, `updated`).
    pub async fn count_events(&self) -> Result<(i64, i64), StoreError> {
        let count = |kind: &'static str| async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE kind = $1")
                .bind(kind)
                .fetch_one(&self.pool)
                .await
        };
        Ok((count("created").await?, count("updated").await?))
    }

    /// A handle on the events this hub committed last ([`super::feed`]),
    /// for an output worker to read them without a table read.
    pub fn outbox_reader(&self) -> FeedReader {
        self.feed.reader()
    }

    /// A number that grows whenever a transaction of this hub that queued
    /// a replay ([`StoreTx::enqueue_replay`]) commits, after the commit.
    /// An output worker whose read of its replays found none reads them
    /// again only once this has changed (or, for those another hub sharing
    /// the database may queue, after a while).
    pub fn replay_generation(&self) -> u64 {
        self.replays.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever a transaction that wrote outbox
    /// events commits, on this hub or (PostgreSQL) another hub sharing the
    /// database (output workers wait on it instead of polling).
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }
}

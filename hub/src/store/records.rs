//! The `records` table: upserts keyed by (source, idempotency key or id) that
//! write their outbox event in the same transaction, and the reads behind
//! `GET /api/v1/records`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::bounded::{BoundedSelect, Direction, byte_budget, rows_left_out};
use super::{
    Backend, Placeholders, SQLITE_INSERT_COUNTS, Store, StoreError, StoreTx, inserted_ids,
    ms_to_time, now_ms,
};
use crate::domain::{EventKind, Payload, Record};

/// What an upsert did to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new record; its `created` event has this outbox id.
    Created {
        /// The record's hub id.
        record_id: i64,
        /// The outbox event written.
        event_id: i64,
    },
    /// The record changed; its `updated` event has this outbox id.
    Updated {
        /// The record's hub id.
        record_id: i64,
        /// The outbox event written.
        event_id: i64,
    },
    /// Same type, time, payload and metadata as stored: nothing written.
    Unchanged {
        /// The record's hub id.
        record_id: i64,
    },
}

impl Upserted {
    /// The record's hub id.
    pub fn record_id(&self) -> i64 {
        match *self {
            Upserted::Created { record_id, .. }
            | Upserted::Updated { record_id, .. }
            | Upserted::Unchanged { record_id } => record_id,
        }
    }

    /// The event written, if any.
    pub fn event(&self) -> Option<(EventKind, i64)> {
        match *self {
            Upserted::Created { event_id, .. } => Some((EventKind::Created, event_id)),
            Upserted::Updated { event_id, .. } => Some((EventKind::Updated, event_id)),
            Upserted::Unchanged { .. } => None,
        }
    }
}

/// A record as stored, with the hub's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The hub's id for the record (stable; used in the API).
    pub id: i64,
    /// The record as the pipeline stored it (after enrichment).
    pub record: Record,
    /// 1 when created, +1 on each change.
    pub version: i64,
    /// When the hub first stored it.
    pub created_at: DateTime<Utc>,
    /// When the hub last changed it.
    pub updated_at: DateTime<Utc>,
}

/// Filters for [`Store::list_records`]; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this type.
    pub record_type: Option<String>,
    /// Only records created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only records created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Newest first: a page holds the records just before the cursor (the
    /// newest ones for cursor 0) instead of those just after it.
    pub newest_first: bool,
}

/// One page of records, oldest first (newest first with
/// [`RecordFilter::newest_first`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    /// The records.
    pub records: Vec<StoredRecord>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<i64>,
}

/// The JSON form of a record inside the store (outbox snapshots, dead
/// letters).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecordSnapshot {
    id: String,
    source: String,
    #[serde(rename = "type")]
    record_type: String,
    occurred_at_ms: Option<i64>,
    payload: Payload,
    metadata: BTreeMap<String, String>,
    idempotency_key: Option<String>,
}

impl RecordSnapshot {
    pub(crate) fn encode(record: &Record) -> String {
        /// The same fields, borrowed: encoding copies nothing.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            id: &'a str,
            source: &'a str,
            #[serde(rename = "type")]
            record_type: &'a str,
            occurred_at_ms: Option<i64>,
            payload: &'a Payload,
            metadata: &'a BTreeMap<String, String>,
            idempotency_key: Option<&'a str>,
        }
        let snapshot = Borrowed {
            id: &record.id,
            source: &record.source,
            record_type: &record.record_type,
            occurred_at_ms: record.occurred_at.map(|time| time.timestamp_millis()),
            payload: &record.payload,
            metadata: &record.metadata,
            idempotency_key: record.idempotency_key.as_deref(),
        };
        // A Record's fields are all JSON-representable: this cannot fail.
        serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".to_owned())
    }

    /// `record` as [`RecordSnapshot::decode`] gives it back from
    /// [`RecordSnapshot::encode`]'s text: its time kept to the millisecond.
    pub(crate) fn as_stored(record: &Record) -> Record {
        let mut stored = record.clone();
        stored.occurred_at = record
            .occurred_at
            .and_then(|time| ms_to_time(time.timestamp_millis()));
        stored
    }

    pub(crate) fn decode(text: &str, table: &'static str) -> Result<Record, StoreError> {
        let snapshot: RecordSnapshot = serde_json::from_str(text)
            .map_err(|err| StoreError::corrupt(table, format!("bad record JSON: {err}")))?;
        Ok(Record {
            id: snapshot.id,
            source: snapshot.source,
            record_type: snapshot.record_type,
            occurred_at: snapshot.occurred_at_ms.and_then(ms_to_time),
            payload: snapshot.payload,
            metadata: snapshot.metadata,
            idempotency_key: snapshot.idempotency_key,
        })
    }
}

/// The key a record is deduplicated by within its source.
fn record_key(record: &Record) -> &str {
    match &record.idempotency_key {
        Some(key) if !key.is_empty() => key,
        _ => &record.id,
    }
}

impl StoreTx {
    /// Inserts or updates each record, keyed by (source, idempotency key or
    /// id), and writes a `created` or `updated` outbox event for each one
    /// that is new or changed (same type, time, payload and metadata as
    /// stored: no event). A record with an empty source gets
    /// `default_source` (the input plugin's name). Returns what happened to
    /// each, in order.
    pub async fn upsert_records(
        &mut self,
        default_source: &str,
        records: &[Record],
    ) -> Result<Vec<Upserted>, StoreError> {
        let mut outcomes = self
            .upsert_records_many(&[(default_source, records)])
            .await?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// [`StoreTx::upsert_records`] for several writers' records at once,
    /// each with its own default source: the same effect as upserting each
    /// list in turn, with statements shared between them (a group commit's
    /// webhook deliveries). Returns each list's outcomes.
    pub async fn upsert_records_many(
        &mut self,
        lists: &[(&str, &[Record])],
    ) -> Result<Vec<Vec<Upserted>>, StoreError> {
        // Records normally arrive with their source set (the chain sets
        // it): copy one only when it needs the default.
        let records: Vec<std::borrow::Cow<'_, Record>> = lists
            .iter()
            .flat_map(|(default_source, records)| {
                records.iter().map(move |record| {
                    if record.source.is_empty() {
                        let mut record = record.clone();
                        (*default_source).clone_into(&mut record.source);
                        std::borrow::Cow::Owned(record)
                    } else {
                        std::borrow::Cow::Borrowed(record)
                    }
                })
            })
            .collect();
        let records: Vec<&Record> = records.iter().map(|record| &**record).collect();
        let mut outcomes = Vec::with_capacity(records.len());
        // Chunks of one source go through the batched path.
        for chunk in records.chunk_by(|a, b| a.source == b.source) {
            for part in chunk.chunks(UPSERT_CHUNK) {
                outcomes.extend(self.upsert_chunk(part).await?);
            }
        }
        let mut outcomes = outcomes.into_iter();
        Ok(lists
            .iter()
            .map(|(_, records)| outcomes.by_ref().take(records.len()).collect())
            .collect())
    }

    /// Upserts records of one source: one multi-row `INSERT ... ON
    /// CONFLICT DO NOTHING RETURNING` for each key's first record, a
    /// `SELECT` of only the keys that were already stored (skipped when
    /// every record is new), an `UPDATE` per changed key, and one
    /// multi-row `INSERT` of the chunk's events, in input order. A chunk
    /// of new records takes two statements on PostgreSQL; on SQLite, where
    /// the inserts return no rows, three more small ones work out the new
    /// ids (see `insert_missing`). A key's later records in the chunk are
    /// compared with the record before them, in memory: the outcome each
    /// would have had had the records been upserted one at a time.
    ///
    /// Inserting first, rather than looking every key up first, matters on
    /// PostgreSQL: the lookup of a whole chunk was the pipeline's costliest
    /// statement, and a plan cached while `records` was still small scans
    /// the table until the next `ANALYZE` (see docs/benchmarks.md). On
    /// PostgreSQL a key already stored still draws an id from the
    /// sequence, so record ids may skip numbers (nothing relies on them
    /// being dense: cursors compare ids).
    async fn upsert_chunk(&mut self, records: &[&Record]) -> Result<Vec<Upserted>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut keys = std::collections::HashSet::with_capacity(records.len());
        let firsts: Vec<&Record> = records
            .iter()
            .filter(|record| keys.insert(record_key(record)))
            .copied()
            .collect();
        // The chunk's two multi-row inserts are the same statement every
        // time for a given row count, and nothing in their plan depends on
        // the values: large ones skip planning (see
        // `StoreTx::allow_generic_plans`), the rest of the transaction
        // does not.
        self.allow_generic_plans(firsts.len() >= GENERIC_PLAN_ROWS)
            .await?;
        let inserted = self.insert_missing(&firsts, now).await?;
        let conflicting: Vec<&Record> = firsts
            .iter()
            .filter(|record| !inserted.contains_key(record_key(record)))
            .copied()
            .collect();
        if !conflicting.is_empty() {
            self.allow_generic_plans(false).await?;
        }
        let stored = self.stored_versions(&conflicting).await?;
        // Each key's id, the record it holds, and its entry in `updates`
        // if it changed, once one of its records was handled.
        let mut latest: std::collections::HashMap<&str, (i64, &Record, Option<usize>)> =
            std::collections::HashMap::with_capacity(firsts.len());
        // What each record became, in input order; the events follow it.
        let mut outcomes: Vec<(i64, Option<EventKind>)> = Vec::with_capacity(records.len());
        // The stored rows to update, in the order of their first change:
        // each with its last changed record and how many changes it had.
        let mut updates: Vec<(i64, &Record, i64)> = Vec::new();
        for &record in records {
            let key = record_key(record);
            let (record_id, same, update) =
                if let Some(&(record_id, previous, update)) = latest.get(key) {
                    (record_id, same_content(previous, record), update)
                } else if let Some(&record_id) = inserted.get(key) {
                    latest.insert(key, (record_id, record, None));
                    outcomes.push((record_id, Some(EventKind::Created)));
                    continue;
                } else {
                    let Some(row) = stored.get(key) else {
                        return Err(StoreError::corrupt(
                            "records",
                            format!("record key {key:?} conflicted on insert but is not stored"),
                        ));
                    };
                    (row.try_get("id")?, stored_same(row, record)?, None)
                };
            let update = match (same, update) {
                (true, update) => update,
                (false, Some(index)) => {
                    let (_, last, changes) = &mut updates[index];
                    *last = record;
                    *changes += 1;
                    Some(index)
                }
                (false, None) => {
                    updates.push((record_id, record, 1));
                    Some(updates.len() - 1)
                }
            };
            latest.insert(key, (record_id, record, update));
            outcomes.push((record_id, (!same).then_some(EventKind::Updated)));
        }
        // A key changed several times in the chunk is updated once, to its
        // last record, its version raised once per change: the row that
        // updating it change by change leaves.
        if !updates.is_empty() {
            self.allow_generic_plans(false).await?;
        }
        for (record_id, record, changes) in updates {
            self.update_one(record, record_id, changes, now).await?;
        }
        let events: Vec<(i64, EventKind, &Record)> = outcomes
            .iter()
            .zip(records)
            .filter_map(|(&(record_id, kind), record)| kind.map(|kind| (record_id, kind, *record)))
            .collect();
        self.allow_generic_plans(events.len() >= GENERIC_PLAN_ROWS)
            .await?;
        let mut event_ids = self.insert_events(&events, now).await?.into_iter();
        self.allow_generic_plans(false).await?;
        let mut upserted = Vec::with_capacity(outcomes.len());
        for (record_id, kind) in outcomes {
            let Some(kind) = kind else {
                upserted.push(Upserted::Unchanged { record_id });
                continue;
            };
            let event_id = event_ids.next().ok_or_else(|| {
                StoreError::corrupt("outbox", "an inserted event's id was not returned")
            })?;
            upserted.push(match kind {
                EventKind::Created => Upserted::Created {
                    record_id,
                    event_id,
                },
                EventKind::Updated => Upserted::Updated {
                    record_id,
                    event_id,
                },
            });
        }
        Ok(upserted)
    }

    /// Inserts each record (one source, distinct keys) whose key is not
    /// stored yet, in one statement; returns the new records' ids by key
    /// (a key already stored is left alone and missing from the map).
    ///
    /// PostgreSQL returns the new ids with the insert (`RETURNING`). On
    /// SQLite every returned row is a message from sqlx's worker thread
    /// (through a channel of 50 rows), which cost 2.7 against 1.0 CPU-µs
    /// per row for the same insert without them; so there, unless the
    /// chunk is small (see [`returns_rows`]), the insert returns nothing
    /// and the ids are worked out from SQLite's `AUTOINCREMENT` (see
    /// [`StoreTx::inserted_ids`]).
    async fn insert_missing(
        &mut self,
        records: &[&Record],
        now: i64,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        if !returns_rows(self.backend, records.len()) {
            return self.insert_missing_without_rows(records, now).await;
        }
        let rows =
            insert_records_query(self.backend, records, now, "", " RETURNING id, record_key")?
                .fetch_all(self.conn())
                .await?;
        ids_by_key(&rows)
    }

    /// [`StoreTx::insert_missing`] on SQLite, with an insert that returns
    /// no rows: the new ids follow from `AUTOINCREMENT` when every record
    /// was new, else from a lookup of the chunk's rows above the largest
    /// id stored before the insert.
    ///
    /// That largest id, the insert, and how many rows it added with the last
    /// of their ids are one query: its three statements take one trip to
    /// sqlx's worker thread instead of three.
    async fn insert_missing_without_rows(
        &mut self,
        records: &[&Record],
        now: i64,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows = insert_records_query(
            self.backend,
            records,
            now,
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0); ",
            SQLITE_INSERT_COUNTS,
        )?
        .fetch_all(self.conn())
        .await?;
        let [stored_before, counts] = rows.as_slice() else {
            return Err(StoreError::corrupt(
                "records",
                format!("an insert's query gave {} rows instead of 2", rows.len()),
            ));
        };
        // Every id stored before this insert is at most this one.
        let before: i64 = stored_before.try_get(0)?;
        let inserted: i64 = counts.try_get(0)?;
        if inserted == 0 {
            return Ok(std::collections::HashMap::new());
        }
        if usize::try_from(inserted).ok() == Some(records.len()) {
            let new = inserted_ids("records", counts, records.len())?;
            return Ok(records
                .iter()
                .zip(new)
                .map(|(record, id)| (record_key(record).to_owned(), id))
                .collect());
        }
        // Some keys were stored already (rare): the new rows are the
        // chunk's rows above `before`.
        let rows = self
            .rows_of_keys(records, "id, record_key", Some(before))
            .await?;
        ids_by_key(&rows)
    }

    /// The stored rows of `records` (one source, distinct keys, all
    /// stored), by key, with what an upsert compares; no statement when
    /// `records` is empty.
    async fn stored_versions(
        &mut self,
        records: &[&Record],
    ) -> Result<std::collections::HashMap<String, AnyRow>, StoreError> {
        let mut existing = std::collections::HashMap::with_capacity(records.len());
        if records.is_empty() {
            return Ok(existing);
        }
        let rows = self
            .rows_of_keys(
                records,
                "id, record_key, record_type, occurred_at, payload, metadata",
                None,
            )
            .await?;
        for row in rows {
            let key: String = row.try_get("record_key")?;
            existing.insert(key, row);
        }
        Ok(existing)
    }

    /// `columns` of the stored rows with the keys of `records` (one source,
    /// at least one record), only those with an id above `above` if given.
    async fn rows_of_keys(
        &mut self,
        records: &[&Record],
        columns: &str,
        above: Option<i64>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let mut sql = format!("SELECT {columns} FROM records WHERE source = ");
        let mut placeholders = Placeholders::new(self.backend);
        placeholders.push(&mut sql);
        sql.push_str(" AND record_key IN ");
        placeholders.push_tuple(&mut sql, records.len());
        if above.is_some() {
            sql.push_str(" AND id > ");
            placeholders.push(&mut sql);
        }
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(first.source.clone());
        for record in records {
            query = query.bind(record_key(record).to_owned());
        }
        if let Some(above) = above {
            query = query.bind(above);
        }
        Ok(query.fetch_all(self.conn()).await?)
    }

    /// Updates the stored record `record_id` (known to differ) to
    /// `record`, the last of its `changes` in the chunk, raising its
    /// version by `changes`; their `updated` events are written with the
    /// chunk's other events.
    async fn update_one(
        &mut self,
        record: &Record,
        record_id: i64,
        changes: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&record.metadata)
            .map_err(|err| StoreError::corrupt("records", err))?;
        sqlx::query(
            "UPDATE records SET source_id = $1, record_type = $2, occurred_at = $3, payload = $4, metadata = $5, idempotency_key = $6, version = version + $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&record.id)
        .bind(&record.record_type)
        .bind(record.occurred_at.map(|time| time.timestamp_millis()))
        .bind(record.payload.as_str().to_owned())
        .bind(metadata)
        .bind(record.idempotency_key.as_deref())
        .bind(changes)
        .bind(now)
        .bind(record_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

/// The new ids by key, from rows of `id` and `record_key`.
fn ids_by_key(rows: &[AnyRow]) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    rows.iter()
        .map(|row| Ok((row.try_get("record_key")?, row.try_get("id")?)))
        .collect()
}

/// The multi-row insert of `records` (skipping keys already stored), with
/// `before` and `after` around it in the same query: SQL without bind
/// parameters (a `RETURNING` clause, or whole statements that SQLite runs
/// in the same trip to sqlx's worker thread).
fn insert_records_query<'q>(
    backend: Backend,
    records: &[&Record],
    now: i64,
    before: &str,
    after: &str,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, StoreError> {
    let mut sql = String::from(before);
    sql.push_str(
        "INSERT INTO records (source, record_key, source_id, record_type, occurred_at, payload, metadata, idempotency_key, version, created_at, updated_at) VALUES ",
    );
    let mut placeholders = Placeholders::new(backend);
    placeholders.push_rows(&mut sql, records.len(), 11);
    sql.push_str(" ON CONFLICT (source, record_key) DO NOTHING");
    sql.push_str(after);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for record in records {
        let metadata = serde_json::to_string(&record.metadata)
            .map_err(|err| StoreError::corrupt("records", err))?;
        query = query
            .bind(record.source.clone())
            .bind(record_key(record).to_owned())
            .bind(record.id.clone())
            .bind(record.record_type.clone())
            .bind(record.occurred_at.map(|time| time.timestamp_millis()))
            .bind(record.payload.as_str().to_owned())
            .bind(metadata)
            .bind(record.idempotency_key.clone())
            .bind(1_i64)
            .bind(now)
            .bind(now);
    }
    Ok(query)
}

/// Whether the stored `row` has `record`'s type, time, payload and
/// metadata (an upsert of it changes nothing).
fn stored_same(row: &AnyRow, record: &Record) -> Result<bool, StoreError> {
    let occurred_at = record.occurred_at.map(|time| time.timestamp_millis());
    Ok(
        row.try_get::<String, _>("record_type")? == record.record_type
            && row.try_get::<Option<i64>, _>("occurred_at")? == occurred_at
            && json_equal(&row.try_get::<String, _>("payload")?, &record.payload)
            && metadata_equal(&row.try_get::<String, _>("metadata")?, &record.metadata),
    )
}

/// Whether upserting `next` over `previous` (stored, or just upserted in
/// the same chunk) changes nothing: what [`stored_same`] would say of the
/// row `previous` left.
fn same_content(previous: &Record, next: &Record) -> bool {
    previous.record_type == next.record_type
        && previous.occurred_at.map(|time| time.timestamp_millis())
            == next.occurred_at.map(|time| time.timestamp_millis())
        && json_equal(previous.payload.as_str(), &next.payload)
        && previous.metadata == next.metadata
}

/// Whether the stored payload text is the same JSON value as `payload`
/// (the same text, the common case, needs no parsing).
fn json_equal(stored: &str, payload: &Payload) -> bool {
    stored == payload.as_str()
        || serde_json::from_str::<serde_json::Value>(stored).is_ok_and(|stored| *payload == stored)
}

fn metadata_equal(stored: &str, metadata: &BTreeMap<String, String>) -> bool {
    serde_json::from_str::<BTreeMap<String, String>>(stored).is_ok_and(|stored| &stored == metadata)
}

/// Up to how many rows an insert on SQLite returns its new ids as rows.
///
/// Working the ids out instead costs two more one-row statements (three for
/// the records), run in the insert's own trip to sqlx's worker thread
/// (see [`inserted_ids`]), against about 1.7 CPU-µs per returned row: a
/// webhook's one record keeps `RETURNING`, a poll batch's hundreds do
/// without.
pub(crate) const SQLITE_RETURNING_MAX: usize = 32;

/// Whether an insert of `rows` rows on `backend` returns the new ids as rows.
pub(crate) fn returns_rows(backend: Backend, rows: usize) -> bool {
    backend == Backend::Postgres || rows <= SQLITE_RETURNING_MAX
}

/// Records per batched upsert: 11 parameters each, so 5,500 per insert,
/// within SQLite's 32,766 and PostgreSQL's 65,535. It covers a whole poll
/// batch of the pipeline measurement (500 records) in one statement: on
/// SQLite each statement is a round trip to sqlx's worker thread, and
/// going from 100 to 500 took the SQLite pipeline from 28-32k to 34-37k
/// records/s (docs/benchmarks.md).
const UPSERT_CHUNK: usize = 500;

/// From how many rows on a multi-row insert runs on PostgreSQL's cached
/// plan instead of being planned again (see
/// `StoreTx::allow_generic_plans`): below it, planning costs less than
/// the two `SET LOCAL` round trips that skip it.
const GENERIC_PLAN_ROWS: usize = 64;

const RECORD_COLUMNS: &str = "id, source, source_id, record_type, occurred_at, payload, metadata, idempotency_key, version, created_at, updated_at";

fn record_from_row(row: &AnyRow) -> Result<StoredRecord, StoreError> {
    let time = |column: &str| -> Result<DateTime<Utc>, StoreError> {
        let ms: i64 = row.try_get(column)?;
        ms_to_time(ms)
            .ok_or_else(|| StoreError::corrupt("records", format!("{column} {ms} out of range")))
    };
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(StoredRecord {
        id: row.try_get("id")?,
        record: Record {
            id: row.try_get("source_id")?,
            source: row.try_get("source")?,
            record_type: row.try_get("record_type")?,
            occurred_at: row
                .try_get::<Option<i64>, _>("occurred_at")?
                .and_then(ms_to_time),
            payload: Payload::from_json_text(payload)
                .map_err(|err| StoreError::corrupt("records", format!("bad payload: {err}")))?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|err| StoreError::corrupt("records", format!("bad metadata: {err}")))?,
            idempotency_key: row.try_get("idempotency_key")?,
        },
        version: row.try_get("version")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

impl Store {
    /// The record with hub id `id`.
    pub async fn get_record(&self, id: i64) -> Result<Option<StoredRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Up to `limit` records matching `filter` with a hub id greater than
    /// `after`, in id order (cursor pagination: pass `next_after` back); with
    /// [`RecordFilter::newest_first`], those with an id less than `after`
    /// (any id for 0), newest first. Past the first record, none starts
    /// once those before it reach `max_bytes` of payload and metadata: a
    /// page of large records is shorter, and `next_after` goes on from it.
    pub async fn list_records(
        &self,
        filter: &RecordFilter,
        after: i64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<RecordPage, StoreError> {
        let limit = i64::from(limit.max(1));
        let (position, direction) = if filter.newest_first {
            ("($1 = 0 OR id < $1)", Direction::Desc)
        } else {
            ("id > $1", Direction::Asc)
        };
        let filter_sql = format!(
            "{position} AND ($2 IS NULL OR source = $2) AND ($3 IS NULL OR record_type = $3) \
             AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5)"
        );
        let query = BoundedSelect {
            columns: RECORD_COLUMNS,
            from: "records",
            filter: &filter_sql,
            join_filter: "TRUE",
            key: "id",
            order: &[("id", direction)],
            size: "octet_length(payload) + octet_length(metadata)",
            scan: "$6",
            take: "$7",
            max_bytes: "$8",
        }
        .sql();
        let rows = sqlx::query(AssertSqlSafe(query))
            .bind(after)
            .bind(filter.source.as_deref())
            .bind(filter.record_type.as_deref())
            .bind(filter.since.map(|time| time.timestamp_millis()))
            .bind(filter.until.map(|time| time.timestamp_millis()))
            .bind(limit + 1)
            .bind(limit)
            .bind(byte_budget(max_bytes))
            .fetch_all(&self.pool)
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordPage {
            next_after: if rows_left_out(&rows)? {
                records.last().map(|record| record.id)
            } else {
                None
            },
            records,
        })
    }

    /// How many records are stored.
    pub async fn count_records(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM records")
            .fetch_one(&self.pool)
            .await?)
    }
}

//! The durable pipeline's floor (issue #15, item 3): the rows the pipeline's
//! store writes for each polled batch (its records, one outbox event each,
//! and the input's checkpoint), written by a minimal program with the same
//! group commit, on SQLite and on PostgreSQL. The figures sit beside the
//! pipeline's rows, so the report shows what the store costs beyond the
//! database itself.
//!
//! The schema is the hub's own: [`Store::open`] runs its migrations once,
//! then one plain sqlx connection (the database's own driver, not the hub's
//! `Any` pool, no group-commit task, no per-record bookkeeping) writes
//! batches of [`BATCH`] records, one transaction per batch, with the
//! statements the hub runs ([`switchyard_hub::store`]'s `records.rs`,
//! `outbox.rs`, `checkpoints.rs`): chunks of [`CHUNK`] records as one
//! multi-row `INSERT INTO records … ON CONFLICT (source, record_key) DO
//! NOTHING RETURNING id, record_key`, one multi-row `INSERT INTO outbox …
//! RETURNING id`, then the checkpoint's upsert, then `COMMIT`. On SQLite
//! the inserts return no rows and three one-row statements stand in for
//! them (the `sqlite_sequence` read, and `last_insert_rowid()` after each
//! insert), as in the hub. SQLite runs
//! as the hub sets it up (WAL, `synchronous = FULL`, `temp_store = MEMORY`), PostgreSQL with the
//! server's `fsync` and the default `synchronous_commit = on`. Every record
//! is new, as in the pipeline measurement, so the hub runs these same
//! statements per chunk (its lookup of keys already stored runs only when
//! the insert skipped some).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use nix::unistd::Pid;
use serde::Serialize;
use sqlx::{Connection as _, Row as _};
use switchyard_hub::store::{Store, testing};

use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::pipeline::{POSTGRES_ENV, postgres_main_pid, postgres_server_ticks, with_database};
use crate::report::{Row, Value};
use crate::settings::Counts;

/// Records per transaction: the generator's `batch_size` in the pipeline
/// measurement (one poll batch, one ingest job, one checkpoint).
pub const BATCH: usize = 500;
/// Records per multi-row statement: the hub's `UPSERT_CHUNK`.
pub const CHUNK: usize = 500;
/// The input's name (the records' source and the checkpoint's key).
pub(crate) const SOURCE: &str = "gen";

/// What one database's floor run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    /// The database, without passwords.
    pub database: String,
    /// Its durability settings, as the hub reads them.
    pub durability: String,
    /// Whether a commit survives a power cut with those settings.
    pub durable: bool,
    /// Records written.
    pub records: u64,
    /// Records per second over the whole write loop.
    pub records_per_second: f64,
    /// CPU time of the writing process (the bench: its runtime and sqlx's
    /// SQLite worker thread) per record, in microseconds.
    pub cpu_us_per_record: f64,
    /// PostgreSQL only: the server's CPU time (its main process and every
    /// child) per record, in microseconds, to set beside the pipeline's.
    pub server_cpu_us_per_record: Option<f64>,
}

/// Writes `counts.pipeline_records` records on SQLite, and on PostgreSQL
/// when [`POSTGRES_ENV`] names a server.
pub async fn measure(counts: &Counts) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let dir = tempfile::Builder::new()
        .prefix("sy-store-floor-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("floor.db").display());
    let sqlite = run(&sqlite_url, counts.pipeline_records).await?;
    let mut rows = floor_rows("SQLite", &sqlite);
    let server = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty());
    let postgres = match &server {
        Some(server) => Some(
            with_database(server, "sy_bench_floor", |url| async move {
                run(&url, counts.pipeline_records).await
            })
            .await?,
        ),
        None => None,
    };
    match &postgres {
        Some(postgres) => rows.extend(floor_rows("PostgreSQL", postgres)),
        None => rows.push(Row::not_measured(
            "store-floor",
            "Durable pipeline floor, PostgreSQL",
            &format!("no PostgreSQL server given (set {POSTGRES_ENV})"),
        )),
    }
    let details = serde_json::json!({
        "batch": BATCH,
        "chunk": CHUNK,
        "sqlite": sqlite,
        "postgres": postgres,
    });
    Ok((rows, details))
}

/// The floor's rows for one database: its figures in the floor column.
fn floor_rows(database: &str, result: &FloorResult) -> Vec<Row> {
    let durable = if result.durable {
        ""
    } else {
        "; NOT DURABLE: the server loses commits in a crash, so this figure flatters"
    };
    let mut rows = vec![
        Row::new(
            "store-floor",
            format!("Durable pipeline floor: same rows, same group commit, {database}"),
            Value::none(),
            Value::none(),
            Value::rate(Some(result.records_per_second)),
            false,
            None,
        )
        .note(&format!(
            "floor of the durable pipeline: a minimal program (one plain sqlx connection) writes the hub's rows on the hub's schema, {BATCH} records per transaction, multi-row INSERTs of {CHUNK} records and their outbox events, the checkpoint, COMMIT; {} ({}){durable}",
            result.database, result.durability
        )),
        Row::new(
            "store-floor",
            format!("Durable pipeline floor CPU per record, writer process, {database}"),
            Value::none(),
            Value::none(),
            Value::micros(Some((result.cpu_us_per_record * 1000.0) as u64)),
            true,
            None,
        ),
    ];
    if let Some(server) = result.server_cpu_us_per_record {
        rows.push(
            Row::new(
                "store-floor",
                format!("Durable pipeline floor CPU per record, {database} server"),
                Value::none(),
                Value::none(),
                Value::micros(Some((server * 1000.0) as u64)),
                true,
                None,
            )
            .note("the server's main process and every child (utime + stime, 10 ms ticks) over the write loop ÷ records; the pipeline's own figure is in its CPU note"),
        );
    }
    rows
}

/// Fills the floor column of the pipeline's rows from the floor's, so the
/// ratio shows what the store costs beyond the database (both measured in
/// this run).
pub fn attach(rows: &mut [Row]) {
    let floor_of = |rows: &[Row], name: &str| {
        rows.iter()
            .find(|row| row.group == "store-floor" && row.measurement.ends_with(name))
            .and_then(|row| row.floor)
    };
    let pairs = [
        (
            "Durable pipeline generator -> enricher -> store -> jsonl-output, SQLite",
            floor_of(rows, "same rows, same group commit, SQLite"),
        ),
        (
            "Durable pipeline, PostgreSQL",
            floor_of(rows, "same rows, same group commit, PostgreSQL"),
        ),
    ];
    for (measurement, floor) in pairs {
        let Some(floor) = floor else { continue };
        for row in rows
            .iter_mut()
            .filter(|row| row.group == "pipeline" && row.measurement == measurement)
        {
            row.floor = Some(floor);
            row.ratio_to_floor = row.switchyard.map(|ours| ours / floor);
        }
    }
}

/// Creates the schema at `url` with the hub's migrations, then writes
/// `total` records through one plain connection.
async fn run(url: &str, total: u64) -> anyhow::Result<FloorResult> {
    let store = Store::open(url)
        .await
        .with_context(|| format!("cannot open {}", testing::redacted(url)))?;
    let durability = store.durability().await?;
    store.close().await;
    let postmaster = if url.starts_with("sqlite://") {
        None
    } else {
        Some(postgres_main_pid(url).await?)
    };
    let server_before = postmaster.map(postgres_server_ticks);
    let before = cpu_ticks(Pid::this())?;
    let start = Instant::now();
    if url.starts_with("sqlite://") {
        write_sqlite(url, total).await?;
    } else {
        write_postgres(url, total).await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(Pid::this())?.saturating_sub(before);
    let server_ticks = postmaster
        .zip(server_before)
        .map(|(postmaster, before)| postgres_server_ticks(postmaster).saturating_sub(before));
    let records = total.max(1) as f64;
    let per_record = |ticks: u64| ticks as f64 * 1e6 / clock_ticks_per_second() / records;
    eprintln!(
        "store-floor: {} records in {elapsed:.2} s on {}",
        total,
        testing::redacted(url)
    );
    Ok(FloorResult {
        database: testing::redacted(url),
        durability: durability.to_string(),
        durable: durability.durable,
        records: total,
        records_per_second: records / elapsed.max(1e-9),
        cpu_us_per_record: per_record(ticks),
        server_cpu_us_per_record: server_ticks.map(per_record),
    })
}

/// One record's columns, made the way the generator and the hub make them.
pub(crate) struct Made {
    /// The record key (and source id).
    pub key: String,
    /// The payload JSON.
    pub payload: String,
    /// The outbox event's record snapshot JSON.
    pub snapshot: String,
}

pub(crate) fn make(seq: u64, filler: &str) -> Made {
    let payload = format!(r#"{{"seq":{seq},"filler":"{filler}"}}"#);
    let snapshot = format!(
        r#"{{"id":"{seq}","source":"{SOURCE}","type":"demo.reading","occurred_at_ms":null,"payload":{payload},"metadata":{{}},"idempotency_key":null}}"#
    );
    Made {
        key: seq.to_string(),
        payload,
        snapshot,
    }
}

/// The generator's 100-byte filler.
pub(crate) fn filler() -> String {
    "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(100)
        .collect()
}

/// `(p1, p2, …), (…)`: `rows` tuples of `columns` placeholders, `$n` for
/// PostgreSQL or `?` for SQLite.
pub(crate) fn values(rows: usize, columns: usize, numbered: bool) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if numbered {
                sql.push_str(&format!("${n}"));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

pub(crate) const INSERT_RECORDS: &str = "INSERT INTO records (source, record_key, source_id, record_type, occurred_at, payload, metadata, idempotency_key, version, created_at, updated_at) VALUES ";
/// Up to how many rows an insert on SQLite returns its new ids as rows: the
/// hub's `SQLITE_RETURNING_MAX`.
pub(crate) const SQLITE_RETURNING_MAX: usize = 32;
/// What follows the records' `VALUES` list in the hub's insert on SQLite
/// (beyond [`SQLITE_RETURNING_MAX`] rows).
pub(crate) const RECORDS_ON_CONFLICT: &str = " ON CONFLICT (source, record_key) DO NOTHING";
/// What follows it on PostgreSQL (and in the rusqlite floor, where a
/// returned row costs no thread hop).
pub(crate) const RECORDS_RETURNING: &str =
    " ON CONFLICT (source, record_key) DO NOTHING RETURNING id, record_key";
pub(crate) const INSERT_EVENTS: &str =
    "INSERT INTO outbox (record_pk, kind, source, record_type, record, created_at) VALUES ";
pub(crate) const SAVE_CHECKPOINT: &str = "INSERT INTO input_checkpoints (plugin, checkpoint, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (plugin) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at";

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Inserts the records `$made` (a slice of [`Made`]) and one outbox event
/// each on the transaction `$tx`, as two multi-row statements, the way the
/// hub's store does; `$numbered` picks PostgreSQL (`$n` placeholders, the
/// new ids returned by the inserts) over SQLite (`?` placeholders; beyond
/// [`SQLITE_RETURNING_MAX`] rows the inserts return no rows, and the ids
/// follow from `AUTOINCREMENT` and `last_insert_rowid()`, as in the hub's
/// `insert_missing`). A macro
/// because the two drivers share no trait that keeps this short;
/// [`crate::sqlite_direct`] runs it one record at a time.
macro_rules! insert_chunk {
    ($tx:ident, $made:expr, $now:expr, $numbered:expr) => {{
        let made: &[Made] = $made;
        let now: i64 = $now;
        let numbered: bool = $numbered;
        // Whether the inserts return the new ids as rows (PostgreSQL, or a
        // small chunk on SQLite), as the hub's `returns_rows` decides.
        let returning = numbered || made.len() <= SQLITE_RETURNING_MAX;
        if !returning {
            // The hub reads this before inserting, for the rare chunk
            // whose keys are partly stored already.
            let _before: i64 = sqlx::query(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0)",
            )
            .fetch_one(&mut *$tx)
            .await?
            .try_get(0)?;
        }
        let sql = format!(
            "{INSERT_RECORDS}{}{}",
            values(made.len(), 11, numbered),
            if returning {
                RECORDS_RETURNING
            } else {
                RECORDS_ON_CONFLICT
            }
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in made {
            query = query
                .bind(SOURCE)
                .bind(record.key.as_str())
                .bind(record.key.as_str())
                .bind("demo.reading")
                .bind(None::<i64>)
                .bind(record.payload.as_str())
                .bind("{}")
                .bind(None::<String>)
                .bind(1_i64)
                .bind(now)
                .bind(now);
        }
        let mut ids = HashMap::with_capacity(made.len());
        if returning {
            for row in query.fetch_all(&mut *$tx).await? {
                ids.insert(
                    row.try_get::<String, _>("record_key")?,
                    row.try_get::<i64, _>("id")?,
                );
            }
        } else {
            let inserted = query.execute(&mut *$tx).await?.rows_affected();
            anyhow::ensure!(
                inserted == made.len() as u64,
                "{inserted} of {} records inserted",
                made.len()
            );
            let last: i64 = sqlx::query("SELECT last_insert_rowid()")
                .fetch_one(&mut *$tx)
                .await?
                .try_get(0)?;
            let first = last - made.len() as i64 + 1;
            for (offset, record) in made.iter().enumerate() {
                ids.insert(record.key.clone(), first + offset as i64);
            }
        }
        let sql = format!(
            "{INSERT_EVENTS}{}{}",
            values(made.len(), 6, numbered),
            if returning { " RETURNING id" } else { "" }
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in made {
            let id = ids
                .get(&record.key)
                .copied()
                .with_context(|| format!("an inserted record's id was not returned (returning {returning}, {} ids, key {})", ids.len(), record.key))?;
            query = query
                .bind(id)
                .bind("created")
                .bind(SOURCE)
                .bind("demo.reading")
                .bind(record.snapshot.as_str())
                .bind(now);
        }
        let events = if returning {
            query.fetch_all(&mut *$tx).await?.len()
        } else {
            let inserted = query.execute(&mut *$tx).await?.rows_affected() as usize;
            let _last: i64 = sqlx::query("SELECT last_insert_rowid()")
                .fetch_one(&mut *$tx)
                .await?
                .try_get(0)?;
            inserted
        };
        anyhow::ensure!(
            events == made.len(),
            "{} outbox rows for {} events",
            events,
            made.len()
        );
    }};
}
pub(crate) use insert_chunk;

/// The batch loop, for one connection type (see [`insert_chunk`]).
macro_rules! write_batches {
    ($conn:expr, $total:expr, $numbered:expr) => {{
        let filler = filler();
        let mut seq: u64 = 0;
        while seq < $total {
            let batch_end = (seq + BATCH as u64).min($total);
            let mut tx = $conn.begin().await?;
            while seq < batch_end {
                let chunk_end = (seq + CHUNK as u64).min(batch_end);
                let made: Vec<Made> = (seq..chunk_end).map(|seq| make(seq, &filler)).collect();
                insert_chunk!(tx, &made, now_ms(), $numbered);
                seq = chunk_end;
            }
            sqlx::query(SAVE_CHECKPOINT)
                .bind(SOURCE)
                .bind(seq.to_string().into_bytes())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        anyhow::Ok(())
    }};
}

async fn write_sqlite(url: &str, total: u64) -> anyhow::Result<()> {
    use std::str::FromStr as _;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .foreign_keys(true)
        // As the hub: statement journals in memory, not in temporary files.
        .pragma("temp_store", "MEMORY");
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let result = write_batches!(conn, total, false);
    conn.close().await?;
    result
}

async fn write_postgres(url: &str, total: u64) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let result = write_batches!(conn, total, true);
    conn.close().await?;
    result
}

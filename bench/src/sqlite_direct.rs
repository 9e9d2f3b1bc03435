//! What sqlx's SQLite worker thread costs (issue #15, item 4): the store
//! floor's writes again, with SQLite called on the writing thread itself
//! (rusqlite, the C library in-process, no thread hop per statement), beside
//! the same writes through one plain sqlx connection, in the same run.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, and every
//! statement (`BEGIN`, each `INSERT`, `COMMIT`) is a round trip to it: a
//! message, a wake-up of the worker, a wake-up of the caller. Two shapes:
//!
//! * **Batches** as the durable pipeline writes them: the store floor's
//!   rows ([`crate::store_floor`]: 500 records per transaction, multi-row
//!   inserts of 100), so a hop is shared by many rows.
//! * **One record per transaction**: `BEGIN`, one record, its outbox event,
//!   `COMMIT`, as a webhook's commit looks when nothing else is in its
//!   group (the example pipeline at low rates). Each side runs the same
//!   statements; CPU per transaction is the figure, since every commit also
//!   waits for its fsync (`synchronous = FULL`).
//!
//! Both sides write files with the hub's schema (its migrations, run by
//! [`Store::open`]) in WAL mode with `synchronous = FULL`, `temp_store = MEMORY` and foreign keys
//! on, as the hub sets SQLite up. rusqlite links the same SQLite library as
//! sqlx (one `libsqlite3-sys`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use nix::unistd::Pid;
use rusqlite::ToSql;
use serde::Serialize;
use sqlx::{Connection as _, Row as _};
use switchyard_hub::store::Store;

use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::report::{Row, Value};
use crate::settings::Counts;
use crate::store_floor::{
    BATCH, CHUNK, INSERT_EVENTS, INSERT_RECORDS, Made, RECORDS_ON_CONFLICT, RECORDS_RETURNING,
    SAVE_CHECKPOINT, SOURCE, SQLITE_RETURNING_MAX, filler, insert_chunk, make, now_ms, values,
};

/// What one side of one shape measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    /// Records (batches) or transactions (one record each) written.
    pub count: u64,
    /// Of those, per second.
    pub per_second: f64,
    /// CPU time of this process per record or per transaction, in
    /// microseconds (10 ms ticks).
    pub cpu_us: f64,
}

/// Runs both shapes on both sides and returns the rows and the details.
pub async fn measure(counts: &Counts) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let dir = tempfile::Builder::new()
        .prefix("sy-sqlite-direct-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let records = counts.pipeline_records;
    // Each of these commits waits for an fsync: a few milliseconds each here.
    let transactions = (records / 100).max(100);

    let batches = {
        let path = schema(dir.path(), "batches.db").await?;
        timed(records, move || direct_batches(&path, records)).await?
    };
    let single_sqlx = {
        let path = schema(dir.path(), "single-sqlx.db").await?;
        let before = cpu_ticks(Pid::this())?;
        let start = Instant::now();
        sqlx_single(&path, transactions).await?;
        figures(transactions, start, before)?
    };
    let single_direct = {
        let path = schema(dir.path(), "single-direct.db").await?;
        timed(transactions, move || direct_single(&path, transactions)).await?
    };
    eprintln!(
        "sqlite-direct: {records} records in batches on the writer's thread; \
         {transactions} one-record transactions through sqlx and on the writer's thread"
    );
    let rows = vec![
        Row::new(
            "store-floor",
            "Durable pipeline floor on the writer's own thread (rusqlite), SQLite",
            Value::none(),
            Value::none(),
            Value::rate(Some(batches.per_second)),
            false,
            None,
        )
        .note(&format!(
            "the store floor's rows, batches and statements (same hub schema, WAL, synchronous=full), with SQLite called on the writing thread itself (rusqlite, no sqlx worker thread); CPU {:.1} µs per record",
            batches.cpu_us
        )),
        Row::new(
            "store-floor",
            "One-record transactions on SQLite, CPU per transaction: through sqlx's worker thread ÷ on the writer's own thread",
            Value::micros(Some((single_sqlx.cpu_us * 1000.0) as u64)),
            Value::none(),
            Value::micros(Some((single_direct.cpu_us * 1000.0) as u64)),
            true,
            None,
        )
        .note(&format!(
            "not Switchyard: {transactions} transactions of BEGIN, one record and its outbox event, COMMIT (synchronous=full), through one plain sqlx SqliteConnection with the hub's statements (INSERT ... ON CONFLICT DO NOTHING RETURNING; Switchyard column: what the hub's store pays per statement) and through rusqlite on the same thread (floor column); {:.0} and {:.0} transactions/s, each waiting for its fsync",
            single_sqlx.per_second, single_direct.per_second
        )),
    ];
    let details = serde_json::json!({
        "batches_on_the_writers_thread": batches,
        "one_record_transactions_sqlx": single_sqlx,
        "one_record_transactions_on_the_writers_thread": single_direct,
    });
    Ok((rows, details))
}

/// Creates `name` in `dir` with the hub's schema and returns its path.
async fn schema(dir: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    store.close().await;
    Ok(path)
}

/// Runs `write` on one blocking thread (all its statements on that thread)
/// and measures it.
async fn timed(
    count: u64,
    write: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<Figures> {
    let before = cpu_ticks(Pid::this())?;
    let start = Instant::now();
    tokio::task::spawn_blocking(write)
        .await
        .context("the writer thread failed")??;
    figures(count, start, before)
}

fn figures(count: u64, start: Instant, ticks_before: u64) -> anyhow::Result<Figures> {
    let elapsed = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(Pid::this())?.saturating_sub(ticks_before);
    let count_f = count.max(1) as f64;
    Ok(Figures {
        count,
        per_second: count_f / elapsed.max(1e-9),
        cpu_us: ticks as f64 * 1e6 / clock_ticks_per_second() / count_f,
    })
}

/// Opens `path` as the hub sets SQLite up.
fn open_direct(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Inserts `made` as one multi-row statement on `tx` and returns the ids of
/// the new records by key.
fn insert_records(
    tx: &rusqlite::Transaction<'_>,
    made: &[Made],
    now: i64,
) -> anyhow::Result<HashMap<String, i64>> {
    let sql = format!(
        "{INSERT_RECORDS}{}{RECORDS_RETURNING}",
        values(made.len(), 11, false)
    );
    let mut statement = tx.prepare_cached(&sql)?;
    let kind = "demo.reading";
    let metadata = "{}";
    let version = 1_i64;
    let null = rusqlite::types::Null;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(made.len() * 11);
    for record in made {
        params.extend([
            &SOURCE as &dyn ToSql,
            &record.key,
            &record.key,
            &kind,
            &null,
            &record.payload,
            &metadata,
            &null,
            &version,
            &now,
            &now,
        ]);
    }
    let mut ids = HashMap::with_capacity(made.len());
    let mut rows = statement.query(params.as_slice())?;
    while let Some(row) = rows.next()? {
        ids.insert(row.get::<_, String>(1)?, row.get::<_, i64>(0)?);
    }
    Ok(ids)
}

/// Inserts one outbox event per record of `made`, as one statement.
fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    made: &[Made],
    ids: &HashMap<String, i64>,
    now: i64,
) -> anyhow::Result<()> {
    let sql = format!(
        "{INSERT_EVENTS}{} RETURNING id",
        values(made.len(), 6, false)
    );
    let mut statement = tx.prepare_cached(&sql)?;
    let kind = "created";
    let record_type = "demo.reading";
    let record_ids = made
        .iter()
        .map(|record| {
            ids.get(&record.key)
                .copied()
                .context("an inserted record's id was not returned")
        })
        .collect::<anyhow::Result<Vec<i64>>>()?;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(made.len() * 6);
    for (record, id) in made.iter().zip(&record_ids) {
        params.extend([
            id as &dyn ToSql,
            &kind,
            &SOURCE,
            &record_type,
            &record.snapshot,
            &now,
        ]);
    }
    let mut rows = statement.query(params.as_slice())?;
    let mut events = 0;
    while rows.next()?.is_some() {
        events += 1;
    }
    anyhow::ensure!(
        events == made.len(),
        "{events} outbox ids returned for {} events",
        made.len()
    );
    Ok(())
}

/// The store floor's batch loop, on this thread.
fn direct_batches(path: &Path, total: u64) -> anyhow::Result<()> {
    let mut conn = open_direct(path)?;
    let filler = filler();
    let mut seq: u64 = 0;
    while seq < total {
        let batch_end = (seq + BATCH as u64).min(total);
        let tx = conn.transaction()?;
        while seq < batch_end {
            let chunk_end = (seq + CHUNK as u64).min(batch_end);
            let made: Vec<Made> = (seq..chunk_end).map(|seq| make(seq, &filler)).collect();
            let now = now_ms();
            let ids = insert_records(&tx, &made, now)?;
            insert_events(&tx, &made, &ids, now)?;
            seq = chunk_end;
        }
        tx.execute(
            SAVE_CHECKPOINT,
            rusqlite::params![SOURCE, seq.to_string().into_bytes(), now_ms()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// `total` one-record transactions, on this thread.
fn direct_single(path: &Path, total: u64) -> anyhow::Result<()> {
    let mut conn = open_direct(path)?;
    let filler = filler();
    for seq in 0..total {
        let made = [make(seq, &filler)];
        let now = now_ms();
        let tx = conn.transaction()?;
        let ids = insert_records(&tx, &made, now)?;
        insert_events(&tx, &made, &ids, now)?;
        tx.commit()?;
    }
    Ok(())
}

/// `total` one-record transactions through one plain sqlx connection: the
/// same statements as [`direct_single`].
async fn sqlx_single(path: &Path, total: u64) -> anyhow::Result<()> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .foreign_keys(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let filler = filler();
    for seq in 0..total {
        let made = [make(seq, &filler)];
        let mut tx = conn.begin().await?;
        insert_chunk!(tx, &made, now_ms(), false);
        tx.commit().await?;
    }
    conn.close().await?;
    Ok(())
}

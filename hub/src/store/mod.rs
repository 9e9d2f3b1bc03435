//! The hub's durable store (the only module that runs SQL): records, input
//! checkpoints, the event outbox, per-output delivery progress and dead
//! letters, in SQLite (embedded default) or PostgreSQL, from the same code
//! (sqlx's `Any` driver; schema in `hub/migrations/{sqlite,postgres}`).
//!
//! Use:
//! * [`Store::open`] connects and runs the migrations; [`Store::close`] at exit.
//! * [`hub_lock`]: one hub per SQLite database (a second one is refused).
//! * Every write goes through a [`StoreTx`] from [`Store::begin`]: upsert
//!   records ([`StoreTx::upsert_records`], which writes their outbox events in
//!   the same transaction), save a checkpoint, add dead letters, then
//!   [`StoreTx::commit`]. Dropping a `StoreTx` rolls it back.
//! * The hot paths (webhook accepts, poll commits, output progress) hand a
//!   [`WriteJob`] to [`Store::write`] instead: one writer task runs every
//!   job queued at that moment in one transaction and commits once (group
//!   commit, [`group`]), then answers each caller.
//! * Reads (the API, output workers) go straight to the [`Store`]. On SQLite
//!   they use a pool of their own: write transactions keep one connection.
//! * [`Store::health`] says whether the database takes writes now: an
//!   outage (server gone, disk full) marks it down, and while it is down
//!   writes fail at once with [`StoreError::Unavailable`] until its probe
//!   commits again ([`health`]).
//!
//! Architecture invariants:
//! * Write transactions are serialized (an in-process lock, plus
//!   `BEGIN IMMEDIATE` on SQLite and a transaction-scoped advisory lock on
//!   PostgreSQL), so outbox event ids are committed in increasing order and an
//!   output reading "events after my position" never skips one.
//! * Nothing is acknowledged to anyone before the transaction that makes it
//!   durable has committed.
//!
//! Submodules, one table group each: [`records`], [`checkpoints`], [`outbox`],
//! [`dead_letters`], [`leases`] (hubs sharing a PostgreSQL database: their
//! heartbeats, the work leases, and the fence every leased commit checks). The webhook inbox (`inbox.rs`, owned by the webhook
//! work) adds its own `impl StoreTx` / `impl Store` blocks the same way;
//! its migrations are numbered after `0001_data_path.sql`.

mod bounded;
pub mod checkpoints;
pub mod dead_letters;
pub mod feed;
pub mod group;
pub mod health;
pub mod hub_lock;
pub mod inbox;
pub mod inbox_feed;
pub mod leases;
pub mod metrics;
mod notify;
pub mod outbox;
pub mod records;
pub mod testing;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor as _, Row as _, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tokio_util::sync::CancellationToken;

pub use checkpoints::SavedCheckpoint;
pub use dead_letters::{DeadLetter, DeadLetterFilter, NewDeadLetter, Stage};
pub use feed::{FeedReader, FeedRun};
pub use group::{PATIENCE, Pending, WriteJob};
pub use health::{Availability, Health, Outage};
pub use inbox::{InboxEntry, InboxInsert, InboxStatus, NewInboxRow, PendingInbox};
pub use leases::{ClusterView, Fence, HubRow, LeaseRow};
pub use outbox::{EventScan, OutboxEvent, OutputFilter};
pub use records::{RecordFilter, RecordPage, StoredRecord, Upserted};

/// How long SQLite waits for a lock held by another connection.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 8;
/// How long an operation waits for a pool connection (sqlx reconnects with
/// backoff meanwhile) before it fails: while the database is down, reads
/// (writes fail at once, [`health`]) fail after this and their callers retry.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a PostgreSQL session may sit idle inside a transaction before
/// the server ends it (`idle_in_transaction_session_timeout`). The hub's
/// transactions never wait between statements for anything but the hub's
/// own processing, so only a paused or stalled hub reaches it.
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(2);
/// The PostgreSQL advisory lock key that serializes writers ("SY").
const WRITER_LOCK_KEY: i64 = 0x5359;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite://…` or `postgres://…`.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl,
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds something the hub did not write (corruption or a manual edit).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The group commit holding this write failed to begin or to commit
    /// (every write of the group gets this error; none is durable).
    #[error("group commit failed: {0}")]
    Batch(Arc<StoreError>),
    /// A write job panicked (a bug); its transaction was rolled back.
    #[error("a write panicked; its transaction was rolled back")]
    JobPanicked,
    /// A group of write jobs ([`WriteJob::run_group`]) did not give one
    /// result per job (a bug); its transaction was rolled back and the jobs
    /// ran again one by one.
    #[error("a group of writes went wrong: {0}")]
    GroupMismatch(&'static str),
    /// The store's writer task is gone (the store was closed).
    #[error("the store is closed")]
    WriterGone,
    /// The database is unreachable or full ([`health`]): the write was not
    /// tried; retry once it is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The write belongs to leased work whose lease another hub has taken
    /// over since it was granted (`leases.rs`): nothing of it is committed.
    #[error(
        "this hub no longer holds the lease on {work} (epoch {epoch}); another hub took it over"
    )]
    Fenced {
        /// The work.
        work: String,
        /// The epoch the write was made under.
        epoch: i64,
    },
    /// The store's writer thread (SQLite) could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    WriterThread(std::io::Error),
}

impl StoreError {
    /// Whether this error says the database is unavailable (down,
    /// unreachable, shutting down or out of space) rather than that the
    /// operation itself was wrong: callers answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        health::is_unavailable(self)
    }
}

impl StoreError {
    fn corrupt(table: &'static str, message: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            table,
            message: message.to_string(),
        }
    }
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How durable a commit is, from the database's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// The settings that decide it, as (name, value).
    pub settings: Vec<(String, String)>,
    /// Whether a committed transaction survives a crash or power cut.
    pub durable: bool,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (name, value)) in self.settings.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// The durable store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// The connections write transactions use: on SQLite a pool of one
    /// (see [`Store::open`]), on PostgreSQL the same pool as reads.
    writes: AnyPool,
    backend: Backend,
    writer: Arc<Mutex<()>>,
    events: Arc<watch::Sender<u64>>,
    /// The events this hub committed last, for its output workers ([`feed`]).
    feed: Arc<feed::OutboxFeed>,
    /// Bumped when another hub sharing the database commits inbox rows.
    inbox: Arc<watch::Sender<u64>>,
    /// The pending deliveries this hub committed last, for its inbox
    /// workers ([`inbox_feed`]; SQLite only).
    inbox_feed: Arc<inbox_feed::InboxFeed>,
    /// Bumped when this hub commits a replay request ([`Store::replay_generation`]).
    replays: Arc<AtomicU64>,
    /// This store's token in commit notifications (`notify.rs`), to
    /// recognise its own.
    token: u64,
    /// Cancelled by [`Store::close`]: ends the notification listener.
    closing: CancellationToken,
    /// The group-commit writer's queue (`None` in the writer's own handle).
    group: Option<group::GroupCommit>,
    /// Whether the database takes writes now.
    health: Health,
    /// The group-commit writer's pace in microseconds ([`group::PACE`];
    /// tests set another).
    commit_pace_us: Arc<AtomicU64>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH[?opts]`, created on first use, or
    /// `postgres://…`) and brings the schema up to date.
    ///
    /// SQLite runs in WAL mode with a busy timeout and `synchronous = FULL`,
    /// so a committed transaction survives a power cut.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite://") {
            let with_mode = if rest.contains("mode=") {
                url.to_owned()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, with_mode)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool_options = |max_connections: u32| {
            AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // The pool pings a connection before lending it out by default:
                // on SQLite that is one more round trip to the connection's
                // worker thread per statement or transaction, and an embedded
                // file's connection cannot have been dropped by a server. On
                // PostgreSQL the ping finds connections a server restart broke.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        if backend == Backend::Postgres {
                            // Plan every statement for its parameters: a generic
                            // plan made while a table was small (sequential
                            // scans) stays slow as the table grows.
                            connection
                                .execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                            // A hub paused or stalled inside a transaction
                            // (SIGSTOP, a frozen VM) would hold the writer lock
                            // and its lease rows, stalling every hub sharing the
                            // database and any takeover of its work: the server
                            // ends such a session, rolling it back.
                            connection
                                .execute(AssertSqlSafe(format!(
                                    "SET idle_in_transaction_session_timeout = {}",
                                    IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
                                )))
                                .await?;
                        }
                        if backend == Backend::Sqlite {
                            // `temp_store = MEMORY` keeps statement journals (a
                            // multi-row insert inside a transaction writes one)
                            // in memory: by default each spills to a new file
                            // in /var/tmp past 64 KiB, about one per poll batch.
                            connection
                                .execute(AssertSqlSafe(format!(
                                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
                                )))
                                .await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = pool_options(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        // SQLite: write transactions keep one connection of their own, so
        // its page cache stays warm (a connection that did not make the
        // last commit reads again every page it touches).
        let writes = match backend {
            Backend::Sqlite => pool_options(1).connect_with(options.clone()).await?,
            Backend::Postgres => pool.clone(),
        };
        let mut store = Store {
            pool,
            writes,
            backend,
            writer: Arc::new(Mutex::new(())),
            events: Arc::new(watch::channel(0).0),
            feed: Arc::default(),
            inbox: Arc::new(watch::channel(0).0),
            inbox_feed: Arc::default(),
            replays: Arc::default(),
            token: fastrand::u64(..),
            closing: CancellationToken::new(),
            group: None,
            health: Health::new(backend),
            commit_pace_us: Arc::new(AtomicU64::new(
                u64::try_from(group::PACE.as_micros()).unwrap_or(u64::MAX),
            )),
        };
        if backend == Backend::Postgres {
            notify::spawn_listener(
                url.clone(),
                store.token,
                store.events.clone(),
                store.inbox.clone(),
                store.closing.clone(),
            );
        }
        store.migrate().await?;
        let group = group::GroupCommit::start(store.clone()).map_err(StoreError::WriterThread)?;
        health::spawn_probe(store.clone(), options, group.liveness());
        store.group = Some(group);
        match store.durability().await {
            Ok(durability) if durability.durable => {
                tracing::info!(backend = ?backend, settings = %durability, "Store opened.");
            }
            Ok(durability) => {
                tracing::warn!(backend = ?backend, settings = %durability, "Store opened, but the database is set up so that committed data can be lost in a crash or power cut.");
            }
            Err(err) => {
                tracing::warn!(backend = ?backend, error = %err, "Store opened; its durability settings could not be read.");
            }
        }
        Ok(store)
    }

    /// The database settings that decide whether a commit survives a crash
    /// or a power cut: SQLite's `journal_mode` and `synchronous`,
    /// PostgreSQL's `fsync` and `synchronous_commit`.
    pub async fn durability(&self) -> Result<Durability, StoreError> {
        let settings = match self.backend {
            Backend::Sqlite => {
                let mut connection = self.pool.acquire().await?;
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *connection)
                    .await?;
                let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *connection)
                    .await?;
                let synchronous = match synchronous {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    3 => "extra",
                    _ => "unknown",
                };
                vec![
                    ("journal_mode".to_owned(), journal.to_lowercase()),
                    ("synchronous".to_owned(), synchronous.to_owned()),
                ]
            }
            Backend::Postgres => {
                let mut settings = Vec::new();
                for name in ["fsync", "synchronous_commit"] {
                    let value: String = sqlx::query_scalar(AssertSqlSafe(format!("SHOW {name}")))
                        .fetch_one(&self.pool)
                        .await?;
                    settings.push((name.to_owned(), value));
                }
                settings
            }
        };
        let value = |name: &str| {
            settings
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let durable = match self.backend {
            // WAL with NORMAL loses the last commits on a power cut.
            Backend::Sqlite => matches!(value("synchronous"), Some("full" | "extra")),
            Backend::Postgres => {
                value("fsync") == Some("on") && value("synchronous_commit") != Some("off")
            }
        };
        Ok(Durability { settings, durable })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The least time between the beginnings of two group-commit
    /// transactions while light writes keep coming ([`group::PACE`]).
    pub(crate) fn commit_pace(&self) -> Duration {
        Duration::from_micros(self.commit_pace_us.load(Ordering::Relaxed))
    }

    /// Sets the group-commit writer's pace, for tests that need it long
    /// enough to see what waits for it.
    #[cfg(test)]
    pub(crate) fn set_commit_pace(&self, pace: Duration) {
        let micros = u64::try_from(pace.as_micros()).unwrap_or(u64::MAX);
        self.commit_pace_us.store(micros, Ordering::Relaxed);
    }

    /// Whether the database takes writes now ([`health`]).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Starts a write transaction. Writers are serialized: this waits for
    /// the previous one to commit or roll back.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = match self.backend {
            Backend::Sqlite => match self.writes.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => tx,
                // A COMMIT that SQLite failed after rolling the transaction
                // back by itself (a full disk) leaves sqlx counting it open;
                // the ROLLBACK that follows fails too, and the connection
                // then refuses every BEGIN. Writes keep one connection, so
                // it is closed and a fresh one opened.
                Err(sqlx::Error::InvalidSavePointStatement) => {
                    tracing::warn!(
                        "The store's write connection was left inside a failed transaction; opening a new one."
                    );
                    let mut stuck = self.writes.acquire().await?;
                    stuck.close_on_drop();
                    drop(stuck);
                    self.writes.begin_with("BEGIN IMMEDIATE").await?
                }
                Err(err) => return Err(err.into()),
            },
            Backend::Postgres => {
                let mut tx = self.writes.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITER_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(StoreTx {
            tx,
            backend: self.backend,
            wrote_events: false,
            wrote_inbox: false,
            wrote_replays: false,
            events: self.events.clone(),
            replays: self.replays.clone(),
            feed: self.feed.clone(),
            published: Vec::new(),
            inbox_feed: self.inbox_feed.clone(),
            fed_inbox: Vec::new(),
            token: self.token,
            generic_plans: false,
            _writer: guard,
        })
    }

    /// Closes every connection (waits for those in use to be returned).
    pub async fn close(&self) {
        self.closing.cancel();
        self.writes.close().await;
        self.pool.close().await;
    }
}

/// One write transaction. Commit with [`StoreTx::commit`]; dropping it rolls
/// everything back.
#[derive(Debug)]
pub struct StoreTx {
    pub(crate) tx: Transaction<'static, Any>,
    backend: Backend,
    /// Set when an outbox event was written, to wake output workers on commit.
    pub(crate) wrote_events: bool,
    /// Set when a pending inbox row was written, to wake the other hubs'
    /// inbox workers on commit.
    pub(crate) wrote_inbox: bool,
    /// Set when a replay request was written, to bump the store's replay
    /// generation on commit.
    pub(crate) wrote_replays: bool,
    events: Arc<watch::Sender<u64>>,
    replays: Arc<AtomicU64>,
    feed: Arc<feed::OutboxFeed>,
    /// The outbox events written, as the table will hold them, when the
    /// feed has readers: handed to it on commit.
    published: Vec<OutboxEvent>,
    pub(crate) inbox_feed: Arc<inbox_feed::InboxFeed>,
    /// The pending inbox rows written, as the table holds them, for the
    /// plugins whose worker subscribed to the inbox feed: handed to it on
    /// commit.
    pub(crate) fed_inbox: Vec<InboxEntry>,
    token: u64,
    /// PostgreSQL: whether `SET LOCAL plan_cache_mode = auto` is in force
    /// (see [`StoreTx::allow_generic_plans`]).
    generic_plans: bool,
    _writer: OwnedMutexGuard<()>,
}

impl StoreTx {
    /// Makes everything written in this transaction durable.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            let wrote = notify::Wrote {
                events: self.wrote_events,
                inbox: self.wrote_inbox,
            };
            notify::announce(&mut self.tx, self.token, wrote).await?;
        }
        self.tx.commit().await?;
        self.feed.publish(std::mem::take(&mut self.published));
        self.inbox_feed.publish(std::mem::take(&mut self.fed_inbox));
        if self.wrote_events {
            self.events.send_modify(|generation| *generation += 1);
        }
        if self.wrote_replays {
            self.replays.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Undoes everything written in this transaction (dropping it does the
    /// same, without waiting for the database).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection, for the queries of the store's submodules.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// PostgreSQL: lets the statements that follow run on a plan the
    /// server caches for their prepared statement (`allow`), or plans each
    /// execution for its parameters again (the hub's setting,
    /// `plan_cache_mode = force_custom_plan`, see [`Store::open`]). One
    /// `SET LOCAL` when the mode changes, none otherwise; the transaction's
    /// end undoes it. Nothing on SQLite, which caches no plans of this kind.
    ///
    /// Only for statements whose plan cannot depend on their parameters or
    /// on the table's size, such as a multi-row `INSERT ... VALUES`:
    /// planning one of a poll batch's 500 rows (5,500 parameters) again
    /// took the server 0.7-0.8 ms every time, a tenth of its CPU per record
    /// in the pipeline measurement (docs/benchmarks.md). Callers turn it
    /// off again before any other statement.
    pub(crate) async fn allow_generic_plans(&mut self, allow: bool) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres || self.generic_plans == allow {
            return Ok(());
        }
        let set = if allow {
            "SET LOCAL plan_cache_mode = auto"
        } else {
            "SET LOCAL plan_cache_mode = force_custom_plan"
        };
        sqlx::raw_sql(set).execute(&mut *self.tx).await?;
        self.generic_plans = allow;
        Ok(())
    }
}

/// What SQLite reports after an insert, in one more statement of the
/// insert's own query (no round trip of its own to sqlx's worker thread):
/// how many rows the insert added and the last of their rowids.
pub(crate) const SQLITE_INSERT_COUNTS: &str = "; SELECT changes(), last_insert_rowid()";

/// SQLite only: the ids of the `count` rows an insert added (all of its
/// rows, none skipped) to the `AUTOINCREMENT` table `table` (named in
/// errors), in the order of its `VALUES`, from the row of
/// [`SQLITE_INSERT_COUNTS`] that followed it.
///
/// SQLite gives each new row of such a table one more than the largest id
/// the table ever held (<https://www.sqlite.org/autoinc.html>), and the
/// transaction holds the write lock, so a multi-row insert's ids run
/// without gaps up to `last_insert_rowid()`. This saves fetching each id
/// back as a row (see `insert_missing`).
pub(crate) fn inserted_ids(
    table: &'static str,
    counts: &AnyRow,
    count: usize,
) -> Result<std::ops::RangeInclusive<i64>, StoreError> {
    let inserted: i64 = counts.try_get(0)?;
    let last: i64 = counts.try_get(1)?;
    let count = i64::try_from(count)
        .map_err(|_| StoreError::corrupt(table, "too many rows in one insert"))?;
    if inserted != count {
        return Err(StoreError::corrupt(
            table,
            format!("{inserted} of {count} rows were inserted"),
        ));
    }
    let first = last - count + 1;
    if count == 0 || first < 1 {
        return Err(StoreError::corrupt(
            table,
            format!("last_insert_rowid() is {last} after inserting {count} rows"),
        ));
    }
    Ok(first..=last)
}

/// Writes the bind placeholders of a statement built at run time: `?` on
/// SQLite, `$1`, `$2`, ... on PostgreSQL.
///
/// SQLite looks a numbered parameter's name up with a linear scan, and sqlx
/// asks for every parameter's name, so binding `$N` costs O(n²) for a
/// statement with n parameters (a 100-row INSERT has 900): anonymous `?`
/// parameters are bound by position at O(n).
pub(crate) struct Placeholders {
    backend: Backend,
    next: usize,
}

impl Placeholders {
    /// Placeholders for a new statement on `backend`.
    pub(crate) fn new(backend: Backend) -> Self {
        Placeholders { backend, next: 0 }
    }

    /// Appends the next placeholder to `sql`.
    pub(crate) fn push(&mut self, sql: &mut String) {
        self.next += 1;
        match self.backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                use std::fmt::Write as _;
                let _ = write!(sql, "${}", self.next);
            }
        }
    }

    /// Appends `(p, p, ..., p)` with `count` placeholders to `sql`.
    pub(crate) fn push_tuple(&mut self, sql: &mut String, count: usize) {
        sql.push('(');
        self.push_list(sql, count);
        sql.push(')');
    }

    /// Appends `p, p, ..., p`: `count` placeholders separated by commas.
    fn push_list(&mut self, sql: &mut String, count: usize) {
        for index in 0..count {
            if index > 0 {
                sql.push_str(", ");
            }
            self.push(sql);
        }
    }

    /// Appends `rows` tuples of `width` placeholders each, separated by
    /// commas: the `VALUES` list of a multi-row `INSERT`.
    pub(crate) fn push_rows(&mut self, sql: &mut String, rows: usize, width: usize) {
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            self.push_tuple(sql, width);
        }
    }

    /// [`Placeholders::push_rows`] with one more column closing each
    /// tuple: the row's position (0, 1, ...) as a literal, to order by.
    pub(crate) fn push_numbered_rows(&mut self, sql: &mut String, rows: usize, width: usize) {
        use std::fmt::Write as _;
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            self.push_list(sql, width);
            let _ = write!(sql, ", {row})");
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds since the Unix epoch -> a UTC time (`None` when out of range).
pub(crate) fn ms_to_time(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}

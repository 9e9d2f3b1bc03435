//! Whether the database can take writes now: the store's [`Health`].
//!
//! The store is *up* until an operation fails in a way that says the
//! database itself is gone or full ([`is_unavailable`]: a connection
//! refused or reset, PostgreSQL shutting down or out of disk, SQLite's
//! "database or disk is full" or an I/O error), reported by the group-commit
//! writer or noticed by the probe. It is then *down* until the probe commits
//! a write again.
//!
//! The probe is one task per store ([`spawn_probe`]): while the store is up
//! it pings PostgreSQL every [`UP_INTERVAL`] on a connection of its own,
//! outside the pool, so that a busy pool never looks like an outage (SQLite
//! has no server to lose; a full disk shows on the next write), and while it
//! is down it commits a one-row write (`store_probe`) with backoff, from
//! [`DOWN_FIRST`] up to [`DOWN_MAX`], each attempt bounded by
//! [`PROBE_TIMEOUT`]. sqlx's pool
//! reconnects on its own (it drops broken connections and opens new ones);
//! the probe only decides when writes are worth trying again.
//!
//! While the store is down the group-commit writer fails every write at once
//! with [`StoreError::Unavailable`] instead of waiting for a connection
//! (`store/group.rs`): a webhook is answered 503 with `Retry-After` at once,
//! pollers and output workers back off and resume from what was committed.
//! `/readyz` answers 503 naming the database (`http/admin.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection as _};
use tokio::sync::watch;

use super::{Backend, Store, StoreError, now_ms};

/// How often PostgreSQL is pinged while the store is up.
pub const UP_INTERVAL: Duration = Duration::from_secs(1);
/// The first wait before probing again once the store is down.
pub const DOWN_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between probes while the store is down.
pub const DOWN_MAX: Duration = Duration::from_secs(2);
/// The longest one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An outage: since when, and the error that showed it (for the log and
/// the operator's API; never sent to webhook senders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// When the store was marked down.
    pub since: DateTime<Utc>,
    /// The error that marked it down.
    pub error: String,
}

impl Outage {
    /// The error a write refused during this outage gets.
    pub(crate) fn refusal(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "down since {}",
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ))
    }
}

/// Whether the database takes writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Writes are expected to succeed.
    Up,
    /// The database is unreachable or full: writes fail at once.
    Down(Outage),
}

/// The store's health, shared by every clone of the [`Store`].
#[derive(Debug, Clone)]
pub struct Health {
    backend: Backend,
    state: Arc<watch::Sender<Availability>>,
}

impl Health {
    /// A new health, up.
    pub(crate) fn new(backend: Backend) -> Health {
        Health {
            backend,
            state: Arc::new(watch::channel(Availability::Up).0),
        }
    }

    /// The availability now.
    pub fn availability(&self) -> Availability {
        self.state.borrow().clone()
    }

    /// The current outage, if the store is down.
    pub fn outage(&self) -> Option<Outage> {
        match &*self.state.borrow() {
            Availability::Up => None,
            Availability::Down(outage) => Some(outage.clone()),
        }
    }

    /// Whether the store is down.
    pub fn is_down(&self) -> bool {
        matches!(*self.state.borrow(), Availability::Down(_))
    }

    /// Follows the availability as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Availability> {
        self.state.subscribe()
    }

    /// Resolves once the store is down (at once if it is already).
    pub(crate) async fn went_down(&self) {
        let mut receiver = self.state.subscribe();
        // The sender lives as long as `self`, so this only ends when down.
        let _ = receiver
            .wait_for(|state| matches!(state, Availability::Down(_)))
            .await;
    }

    /// Marks the store down if `error` says the database is unavailable;
    /// returns whether it does.
    /// A pool that timed out is busy, not down (the probe's own ping
    /// tells a PostgreSQL outage), so it does not mark the store down.
    pub(crate) fn report(&self, error: &StoreError) -> bool {
        if !is_unavailable(error) || is_pool_timeout(error) {
            return false;
        }
        self.mark_down(error.to_string());
        true
    }

    fn mark_down(&self, error: String) {
        let backend = self.backend;
        self.state.send_if_modified(|state| match state {
            Availability::Up => {
                tracing::error!(backend = ?backend, error = %error, "The database is unavailable: webhooks are refused (503) and polls and deliveries pause until it is back.");
                *state = Availability::Down(Outage {
                    since: Utc::now(),
                    error,
                });
                super::metrics::global().availability(false);
                true
            }
            Availability::Down(_) => false,
        });
    }

    fn mark_up(&self) {
        let backend = self.backend;
        self.state.send_if_modified(|state| match state {
            Availability::Down(outage) => {
                let seconds = (Utc::now() - outage.since).num_milliseconds() as f64 / 1000.0;
                tracing::info!(backend = ?backend, down_for_seconds = seconds, "The database is available again; writes resume.");
                *state = Availability::Up;
                super::metrics::global().availability(true);
                true
            }
            Availability::Up => false,
        });
    }
}

/// Whether `error` says the database itself is unreachable, shutting down
/// or out of space (rather than a bad statement or row): the errors that
/// mark the store down.
pub fn is_unavailable(error: &StoreError) -> bool {
    match error {
        StoreError::Unavailable(_) => true,
        StoreError::Database(error) => sqlx_unavailable(error),
        StoreError::Batch(inner) => is_unavailable(inner),
        _ => false,
    }
}

/// Whether `error` is only the pool's wait for a connection running out.
fn is_pool_timeout(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::PoolTimedOut) => true,
        StoreError::Batch(inner) => is_pool_timeout(inner),
        _ => false,
    }
}

/// The sqlx errors that mean "the database is unavailable".
fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // A server that went away mid-message.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| unavailable_code(database_kind(&code), &code)),
        _ => false,
    }
}

/// Which numbering a database error code is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeKind {
    /// A PostgreSQL SQLSTATE (five characters).
    SqlState,
    /// An SQLite (extended) result code, in decimal.
    Sqlite,
}

/// SQLSTATEs have five characters; SQLite's extended result codes are at
/// most four decimal digits.
fn database_kind(code: &str) -> CodeKind {
    if code.len() == 5 {
        CodeKind::SqlState
    } else {
        CodeKind::Sqlite
    }
}

/// PostgreSQL: connection exceptions (class 08), insufficient resources
/// (class 53: disk full, out of memory, too many connections), operator
/// intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
/// connect now), system I/O errors (58030) and a read-only server (25006,
/// a standby after a failover). SQLite: `SQLITE_FULL` (13), `SQLITE_IOERR`
/// (10, with any extended code), `SQLITE_CANTOPEN` (14).
fn unavailable_code(kind: CodeKind, code: &str) -> bool {
    match kind {
        CodeKind::SqlState => {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "57P01" | "57P02" | "57P03" | "58030" | "25006")
        }
        CodeKind::Sqlite => code
            .parse::<u32>()
            .is_ok_and(|code| matches!(code & 0xff, 10 | 13 | 14)),
    }
}

/// Starts the probe of `store`: it runs until the pool is closed or
/// `alive` says the store's last writer handle is dropped. PostgreSQL is
/// pinged on a connection of the probe's own (made from `options`), so a
/// pool busy with real work never looks like an outage.
pub(crate) fn spawn_probe(
    store: Store,
    options: AnyConnectOptions,
    alive: impl Fn() -> bool + Send + 'static,
) {
    tokio::spawn(async move {
        let health = store.health.clone();
        let mut changes = health.subscribe();
        let mut failures: u32 = 0;
        let mut pinged: Option<AnyConnection> = None;
        loop {
            if store.pool.is_closed() || !alive() {
                break;
            }
            if health.is_down() {
                // The ping connection died with the server, or will be
                // checked again once writes succeed.
                pinged = None;
                let wait = DOWN_FIRST
                    .saturating_mul(2_u32.saturating_pow(failures.min(8)))
                    .min(DOWN_MAX);
                tokio::time::sleep(wait).await;
                if store.pool.is_closed() {
                    break;
                }
                match bounded(probe_write(&store)).await {
                    Ok(()) => {
                        failures = 0;
                        health.mark_up();
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::debug!(error = %error, failures, "The database is still unavailable.");
                    }
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(UP_INTERVAL) => {}
                    _ = changes.changed() => continue,
                }
                if store.backend() != Backend::Postgres || store.pool.is_closed() {
                    continue;
                }
                if let Err(error) = bounded(ping(&mut pinged, &options)).await {
                    pinged = None;
                    // Only an outage marks it down: a bad answer is not one.
                    if !health.report(&error) {
                        tracing::warn!(error = %error, "The database's health ping failed.");
                    }
                }
            }
        }
        if let Some(connection) = pinged {
            let _ = connection.close().await;
        }
    });
}

/// A round trip to the server on the probe's own connection (connecting
/// first if it has none).
async fn ping(
    connection: &mut Option<AnyConnection>,
    options: &AnyConnectOptions,
) -> Result<(), StoreError> {
    if connection.is_none() {
        *connection = Some(AnyConnection::connect_with(options).await?);
    }
    if let Some(connection) = connection {
        connection.ping().await?;
    }
    Ok(())
}

/// `work`, or [`StoreError::Unavailable`] if it takes longer than
/// [`PROBE_TIMEOUT`].
async fn bounded(
    work: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), StoreError> {
    match tokio::time::timeout(PROBE_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {PROBE_TIMEOUT:?}"
        ))),
    }
}

/// A committed one-row write, through the store's writer lock like every
/// write.
async fn probe_write(store: &Store) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO store_probe (id, probed_at) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
    )
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    tx.commit().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn postgres_outages_are_told_from_statement_errors() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53100", "58030", "25006",
        ] {
            assert!(
                unavailable_code(database_kind(code), code),
                "{code} is an outage"
            );
        }
        for code in ["23505", "42P01", "40001", "22P02"] {
            assert!(
                !unavailable_code(database_kind(code), code),
                "{code} is not an outage"
            );
        }
    }

    #[test]
    fn sqlite_full_and_io_errors_are_outages_and_constraints_are_not() {
        // 13 SQLITE_FULL, 10 SQLITE_IOERR, 778 SQLITE_IOERR_WRITE, 14 CANTOPEN.
        for code in ["13", "10", "778", "14"] {
            assert!(
                unavailable_code(database_kind(code), code),
                "{code} is an outage"
            );
        }
        // 19 SQLITE_CONSTRAINT, 2067 SQLITE_CONSTRAINT_UNIQUE, 5 SQLITE_BUSY, 1 SQLITE_ERROR.
        for code in ["19", "2067", "5", "1"] {
            assert!(
                !unavailable_code(database_kind(code), code),
                "{code} is not an outage"
            );
        }
    }

    #[test]
    fn store_errors_are_classified_through_batches() {
        let outage = StoreError::Unavailable("down".into());
        assert!(is_unavailable(&outage));
        assert!(is_unavailable(&StoreError::Batch(Arc::new(
            StoreError::Database(sqlx::Error::PoolTimedOut)
        ))));
        assert!(!is_unavailable(&StoreError::WriterGone));
        assert!(!is_unavailable(&StoreError::Database(
            sqlx::Error::RowNotFound
        )));
    }

    struct SaveCheckpoint;

    impl super::super::WriteJob for SaveCheckpoint {
        type Output = ();
        fn run<'a>(
            &'a self,
            tx: &'a mut super::super::StoreTx,
        ) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(tx.save_checkpoint("gen", b"7"))
        }
    }

    #[tokio::test]
    async fn writes_fail_at_once_while_down_and_resume_when_the_probe_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&super::super::testing::sqlite_url(dir.path()))
            .await
            .unwrap();
        let mut changes = store.health().subscribe();
        // Holding the writer lock keeps the probe's write from committing
        // until the refusal is checked.
        let writer = store.writer.clone().lock_owned().await;
        store
            .health()
            .report(&StoreError::Unavailable("disk full".into()));
        let refused = store.write(SaveCheckpoint).await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused}");
        assert!(store.health().is_down());
        drop(writer);
        assert_eq!(store.checkpoint("gen").await.unwrap(), None);
        // The probe's write commits (the disk is not really full) and
        // writes resume.
        tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|state| *state == Availability::Up),
        )
        .await
        .unwrap()
        .unwrap();
        store.write(SaveCheckpoint).await.unwrap();
        assert_eq!(store.checkpoint("gen").await.unwrap(), Some(b"7".to_vec()));
        store.close().await;
    }

    #[tokio::test]
    async fn down_then_up_is_reported_once_each() {
        let health = Health::new(Backend::Sqlite);
        assert_eq!(health.availability(), Availability::Up);
        assert!(health.report(&StoreError::Unavailable("disk full".into())));
        let outage = health.outage().unwrap();
        assert_eq!(outage.error, "the database is unavailable: disk full");
        // A second failure keeps the first outage's start.
        assert!(health.report(&StoreError::Unavailable("again".into())));
        assert_eq!(health.outage().unwrap(), outage);
        health.went_down().await;
        health.mark_up();
        assert!(!health.is_down());
        assert!(!health.report(&StoreError::WriterGone));
        assert!(!health.report(&StoreError::Database(sqlx::Error::PoolTimedOut)));
        assert!(!health.is_down());
    }
}

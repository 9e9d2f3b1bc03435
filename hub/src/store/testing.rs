//! Test support: fresh, isolated databases for tests of the store and of
//! everything built on it (unit tests here and integration tests in
//! `hub/tests/`), and for the benchmarks (`bench/src/pipeline.rs` creates
//! and drops its own PostgreSQL database with [`create_database`] and
//! [`drop_database`]).
//!
//! PostgreSQL tests read `SWITCHYARD_TEST_POSTGRES_URL` (start a throwaway
//! server with `scripts/start-test-postgres`). When it is unset they fail
//! under `CI=true` and are skipped with a printed notice otherwise. Each call
//! creates its own database, so tests run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection as _, Executor as _};

use super::StoreError;

/// The environment variable naming the test PostgreSQL server.
pub const POSTGRES_URL_ENV: &str = "SWITCHYARD_TEST_POSTGRES_URL";

/// A `sqlite://` URL for a new database file inside `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("switchyard.db").display())
}

/// A URL for a brand-new, empty PostgreSQL database on the test server, or
/// `None` (after printing why) when no server is configured outside CI.
///
/// # Panics
/// When the variable is unset under `CI=true`, or the server cannot create
/// the database: a test that needs PostgreSQL must not pass silently.
#[allow(clippy::panic)]
pub async fn postgres_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_URL_ENV) else {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!(
                "{POSTGRES_URL_ENV} is not set under CI=true; run `eval \"$(scripts/start-test-postgres)\"` first"
            );
        }
        eprintln!(
            "skipping the PostgreSQL part of {test}: {POSTGRES_URL_ENV} is not set (see scripts/start-test-postgres)"
        );
        return None;
    };
    match create_database(&base, "sy").await {
        Ok(url) => Some(url),
        Err(err) => panic!("cannot create a test database on {POSTGRES_URL_ENV}: {err}"),
    }
}

/// Creates a new, empty database on the PostgreSQL server of `base` (a
/// `postgres://` URL of any database there), named `PREFIX_PID_N_MICROS`,
/// and returns its URL. For tests and benchmarks that must not share
/// state with an earlier run.
pub async fn create_database(base: &str, prefix: &str) -> Result<String, StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    sqlx::any::install_default_drivers();
    let name = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let mut admin = sqlx::AnyConnection::connect(base).await?;
    let created = admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await;
    let _ = admin.close().await;
    created?;
    Ok(with_database(base, &name))
}

/// Drops the database `url` names, from a connection to `base` (another
/// database on the same server), closing its connections first.
pub async fn drop_database(base: &str, url: &str) -> Result<(), StoreError> {
    let Some(name) = database_name(url) else {
        return Err(StoreError::UnsupportedUrl);
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::UnsupportedUrl);
    }
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(base).await?;
    let dropped = admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await;
    let _ = admin.close().await;
    dropped?;
    Ok(())
}

/// The process id of a long-lived process of the PostgreSQL server behind
/// `url` (its checkpointer), whose parent is the server's main process: for
/// benchmarks that measure the server's CPU time.
pub async fn server_process_pid(url: &str) -> Result<i32, StoreError> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url).await?;
    let pid: Option<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer' LIMIT 1",
    )
    .fetch_optional(&mut connection)
    .await?;
    let _ = connection.close().await;
    pid.ok_or_else(|| StoreError::corrupt("pg_stat_activity", "no checkpointer process listed"))
}

/// The database name in a `postgres://` URL.
fn database_name(url: &str) -> Option<&str> {
    let without_query = url.split_once('?').map_or(url, |(head, _)| head);
    let scheme_end = without_query.find("://")? + 3;
    let path = without_query[scheme_end..].find('/')? + scheme_end + 1;
    Some(&without_query[path..]).filter(|name| !name.is_empty())
}

/// `url` without its password, for reports and logs.
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |index| scheme_end + index);
    let authority = &url[scheme_end..authority_end];
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!(
                "{}{user}{hidden}@{host}{}",
                &url[..scheme_end],
                &url[authority_end..]
            )
        }
        None => url.to_owned(),
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |index| index + 3);
    let authority_end = without_query[scheme_end..]
        .find('/')
        .map_or(without_query.len(), |index| scheme_end + index);
    let mut result = format!("{}/{name}", &without_query[..authority_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// Runs `sql`, a `SELECT COUNT(*) ...` written by a test, and returns the
/// count (for tests checking the database's content directly).
pub async fn count_rows(store: &super::Store, sql: &'static str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(sql).fetch_one(&store.pool).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_database_name_and_hides_passwords() {
        assert_eq!(database_name("postgres://u@h:5/db?x=1"), Some("db"));
        assert_eq!(database_name("postgres://u@h:5"), None);
        assert_eq!(
            redacted("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redacted("postgres://u@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redacted("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/postgres", "x"),
            "postgres://u@127.0.0.1:5/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
    }
}

//! Test support: fresh, isolated databases for tests of the store and of
//! everything built on it (unit tests here and integration tests in
//! `hub/tests/`).
//!
//! PostgreSQL tests read `SWITCHYARD_TEST_POSTGRES_URL` (start a throwaway
//! server with `scripts/start-test-postgres`). When it is unset they fail
//! under `CI=true` and are skipped with a printed notice otherwise. Each call
//! creates its own database, so tests run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection as _, Executor as _};

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
    static COUNTER: AtomicU64 = AtomicU64::new(0);
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
    sqlx::any::install_default_drivers();
    let name = format!(
        "sy_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let mut admin = match sqlx::AnyConnection::connect(&base).await {
        Ok(connection) => connection,
        Err(err) => panic!("cannot connect to {POSTGRES_URL_ENV}: {err}"),
    };
    if let Err(err) = admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
    {
        panic!("cannot create test database {name}: {err}");
    }
    let _ = admin.close().await;
    Some(with_database(&base, &name))
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Reads of rows that may be large (stored records, outbox snapshots, dead
//! letters, webhook bodies) stop at a byte budget, not only at a row count.
//!
//! One row can hold a record of tens of MiB, so `LIMIT` alone does not bound
//! the hub's memory: a page of 1,000 such rows is tens of GiB. Streaming the
//! rows and stopping early does not bound it either on SQLite, whose sqlx
//! worker thread reads up to 50 rows ahead of the caller (its
//! `row_channel_size`, which the `Any` driver gives no way to set). So the
//! database itself cuts the rows, in one statement: it sizes the candidate
//! rows with `octet_length` (answered without reading the value: SQLite
//! 3.43 and later, which sqlx bundles, and PostgreSQL from the TOAST
//! header), keeps those that start before the budget is reached (always
//! the first), and returns only them.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::StoreError;

/// Whether a [`BoundedSelect`] left rows out: it sized more rows (its
/// `scanned` column) than it returned, cut by its bytes or its `take`.
/// False without rows (nothing matched).
pub(crate) fn rows_left_out(rows: &[AnyRow]) -> Result<bool, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(false);
    };
    let scanned: i64 = first.try_get("scanned")?;
    let scanned = usize::try_from(scanned)
        .map_err(|_| StoreError::corrupt("scanned", format!("a count of {scanned} rows")))?;
    Ok(scanned > rows.len())
}

/// `max_bytes` as the statement's byte-budget parameter (`usize::MAX`, "no
/// budget", becomes the largest `BIGINT`).
pub(crate) fn byte_budget(max_bytes: usize) -> i64 {
    i64::try_from(max_bytes).unwrap_or(i64::MAX)
}

/// Whether rows come first to last or last to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl Direction {
    fn sql(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }
}

/// A `SELECT` of at most `take` rows, cut at a byte budget. Each field is
/// SQL text; the three limits are placeholders (`$3`) or literals.
///
/// The statement returns `columns` and one more, `scanned`: how many rows
/// matched up to `scan` (at most `scan`), so a caller that scans one row
/// more than it takes knows whether rows were left for a next page
/// ([`rows_left_out`]).
#[derive(Debug)]
pub(crate) struct BoundedSelect<'a> {
    /// The columns returned, qualified as `from` needs.
    pub columns: &'a str,
    /// The `FROM` clause, joins included.
    pub from: &'a str,
    /// The `WHERE` condition.
    pub filter: &'a str,
    /// What of `filter` the rows must meet again when they are read by
    /// key: the part that picks one row of a join (`r.output = $1`), else
    /// `TRUE`.
    pub join_filter: &'a str,
    /// A unique key of a row of `from` (`o.id`).
    pub key: &'a str,
    /// The order, ending in a unique key: expressions and directions.
    pub order: &'a [(&'a str, Direction)],
    /// The bytes a row counts for (`octet_length(payload) + ...`).
    pub size: &'a str,
    /// How many rows are sized at most.
    pub scan: &'a str,
    /// How many rows are returned at most.
    pub take: &'a str,
    /// Past the first row, no row starts at or past this many bytes.
    pub max_bytes: &'a str,
}

impl BoundedSelect<'_> {
    /// The statement.
    pub(crate) fn sql(&self) -> String {
        let sized_order = self
            .order
            .iter()
            .enumerate()
            .map(|(index, (_, direction))| format!("order_{index} {}", direction.sql()))
            .collect::<Vec<_>>()
            .join(", ");
        let order_columns: String = self
            .order
            .iter()
            .enumerate()
            .map(|(index, (expression, _))| format!(", {expression} AS order_{index}"))
            .collect();
        let outer_order = self
            .order
            .iter()
            .map(|(expression, direction)| format!("{expression} {}", direction.sql()))
            .collect::<Vec<_>>()
            .join(", ");
        let BoundedSelect {
            columns,
            from,
            filter,
            join_filter,
            key,
            size,
            scan,
            take,
            max_bytes,
            ..
        } = self;
        // `before`: the bytes of the rows ahead of this one. The rows
        // themselves are read only by the last SELECT, by key.
        //
        // The `LIMIT` is a cast, not a bare placeholder: SQLite reads a
        // `LIMIT ?` as a plan that depends on the bound value, so binding
        // it again (every execution) expired the cached statement, and
        // every execution parsed and planned it anew (`sqlite3Reprepare`:
        // 7% of the hub's CPU at 300 webhooks/s in README's example). A
        // cast is evaluated when the statement runs. Same rows either way.
        format!(
            "WITH sized AS (\
                SELECT {key} AS row_key{order_columns}, {size} AS bytes FROM {from} \
                WHERE {filter} ORDER BY {outer_order} LIMIT CAST({scan} AS BIGINT)\
             ), kept AS (\
                SELECT row_key FROM (\
                    SELECT row_key, \
                    COALESCE(SUM(bytes) OVER (ORDER BY {sized_order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before, \
                    ROW_NUMBER() OVER (ORDER BY {sized_order}) AS position \
                    FROM sized\
                ) cut WHERE (before = 0 OR before < {max_bytes}) AND position <= {take}\
             ) \
             SELECT {columns}, (SELECT COUNT(*) FROM sized) AS scanned FROM {from} \
             WHERE {join_filter} AND {key} IN (SELECT row_key FROM kept) ORDER BY {outer_order}"
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The outbox page the tests read: ids after `$1`, at most `$2` rows,
    /// at most `$3` bytes.
    fn outbox_page() -> String {
        BoundedSelect {
            columns: "o.id, o.record",
            from: "outbox o",
            filter: "o.id > $1",
            join_filter: "TRUE",
            key: "o.id",
            order: &[("o.id", Direction::Asc)],
            size: "octet_length(o.record)",
            scan: "$2",
            take: "$2",
            max_bytes: "$3",
        }
        .sql()
    }

    #[test]
    fn the_statement_sizes_cuts_then_reads_by_key() {
        let sql = outbox_page();
        assert!(sql.starts_with("WITH sized AS (SELECT o.id AS row_key, o.id AS order_0, octet_length(o.record) AS bytes FROM outbox o WHERE o.id > $1 ORDER BY o.id ASC LIMIT CAST($2 AS BIGINT))"), "{sql}");
        assert!(
            sql.contains("(ORDER BY order_0 ASC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"),
            "{sql}"
        );
        assert!(sql.ends_with("SELECT o.id, o.record, (SELECT COUNT(*) FROM sized) AS scanned FROM outbox o WHERE TRUE AND o.id IN (SELECT row_key FROM kept) ORDER BY o.id ASC"), "{sql}");
    }

    /// How many times SQLite prepared `sql` again over three executions
    /// with a different limit each, and the rows each returned.
    fn reprepares(sql: &str) -> (i32, Vec<Vec<i64>>) {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
                 INSERT INTO outbox (record) VALUES ('a'), ('bb'), ('ccc'), ('dddd'), ('eeeee');",
            )
            .unwrap();
        let mut statement = connection.prepare(sql).unwrap();
        let mut pages = Vec::new();
        for limit in [2_i64, 3, 4] {
            statement.raw_bind_parameter(1, 1_i64).unwrap();
            statement.raw_bind_parameter(2, limit).unwrap();
            statement.raw_bind_parameter(3, i64::MAX).unwrap();
            let mut rows = statement.raw_query();
            let mut ids = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                ids.push(row.get::<_, i64>(0).unwrap());
            }
            pages.push(ids);
        }
        (
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            pages,
        )
    }

    #[test]
    fn a_new_limit_does_not_make_sqlite_prepare_the_statement_again() {
        let sql = outbox_page();
        let expected = vec![vec![2, 3], vec![2, 3, 4], vec![2, 3, 4, 5]];
        assert_eq!(reprepares(&sql), (0, expected.clone()));
        // The control: the same statement with a bare `LIMIT $2` is
        // prepared again after each new binding.
        let bare = sql.replace("LIMIT CAST($2 AS BIGINT)", "LIMIT $2");
        assert_ne!(bare, sql);
        let (count, pages) = reprepares(&bare);
        assert_eq!(pages, expected);
        assert!(count >= 2, "prepared again {count} times");
    }
}

//! The `dead_letters` table: records an enricher failed permanently and
//! events an output refused or never acknowledged, with the error, the
//! attempts and the times, until an operator replays or deletes them.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::bounded::{BoundedSelect, Direction, byte_budget, rows_left_out};
use super::outbox::{kind_from_str, kind_to_str};
use super::records::RecordSnapshot;
use super::{Store, StoreError, StoreTx, ms_to_time, now_ms};
use crate::domain::{EventKind, Record};

/// Where in the pipeline something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// An enricher failed the record permanently (`on_error = "dead-letter"`).
    Enrich,
    /// An output nacked the event permanently or retries ran out.
    Output,
    /// A webhook delivery the plugin could not turn into records.
    Webhook,
}

impl Stage {
    /// `enrich`, `output` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Enrich => "enrich",
            Stage::Output => "output",
            Stage::Webhook => "webhook",
        }
    }

    /// The stage named `text`.
    pub fn parse(text: &str) -> Option<Stage> {
        match text {
            "enrich" => Some(Stage::Enrich),
            "output" => Some(Stage::Output),
            "webhook" => Some(Stage::Webhook),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dead letter to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    /// The plugin that failed (enricher or output instance name).
    pub plugin: String,
    /// The stage.
    pub stage: Stage,
    /// The record (for an output, as the event carried it).
    pub record: Record,
    /// For outputs: the event id and kind, so a replay redelivers it.
    pub event: Option<(i64, EventKind)>,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failed_at: DateTime<Utc>,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its id (for replay and delete).
    pub id: i64,
    /// The plugin that failed.
    pub plugin: String,
    /// The stage.
    pub stage: Stage,
    /// The record.
    pub record: Record,
    /// For outputs: the event id and kind.
    pub event: Option<(i64, EventKind)>,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: i64,
    /// When the first attempt failed.
    pub first_failed_at: DateTime<Utc>,
    /// When it was dead-lettered.
    pub last_failed_at: DateTime<Utc>,
}

/// Filters for [`Store::list_dead_letters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this plugin.
    pub plugin: Option<String>,
    /// Only this stage.
    pub stage: Option<Stage>,
}

fn dead_letter_from_row(row: &AnyRow) -> Result<DeadLetter, StoreError> {
    let time = |column: &str| -> Result<DateTime<Utc>, StoreError> {
        let ms: i64 = row.try_get(column)?;
        ms_to_time(ms).ok_or_else(|| {
            StoreError::corrupt("dead_letters", format!("{column} {ms} out of range"))
        })
    };
    let stage: String = row.try_get("stage")?;
    let event_id: Option<i64> = row.try_get("event_id")?;
    let event_kind: Option<String> = row.try_get("event_kind")?;
    let event = match (event_id, event_kind) {
        (Some(id), Some(kind)) => Some((id, kind_from_str(&kind, "dead_letters")?)),
        _ => None,
    };
    Ok(DeadLetter {
        id: row.try_get("id")?,
        plugin: row.try_get("plugin")?,
        stage: Stage::parse(&stage).ok_or_else(|| {
            StoreError::corrupt("dead_letters", format!("unknown stage {stage:?}"))
        })?,
        record: RecordSnapshot::decode(&row.try_get::<String, _>("record")?, "dead_letters")?,
        event,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        first_failed_at: time("first_failed_at")?,
        last_failed_at: time("last_failed_at")?,
    })
}

const DEAD_LETTER_COLUMNS: &str = "id, plugin, stage, source, source_id, event_id, event_kind, record, error, attempts, first_failed_at, last_failed_at";

impl StoreTx {
    /// Writes a dead letter; returns its id.
    pub async fn add_dead_letter(&mut self, letter: &NewDeadLetter) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO dead_letters (plugin, stage, source, source_id, event_id, event_kind, record, error, attempts, first_failed_at, last_failed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&letter.plugin)
        .bind(letter.stage.as_str())
        .bind(&letter.record.source)
        .bind(&letter.record.id)
        .bind(letter.event.map(|(id, _)| id))
        .bind(letter.event.map(|(_, kind)| kind_to_str(kind)))
        .bind(RecordSnapshot::encode(&letter.record))
        .bind(&letter.error)
        .bind(i64::from(letter.attempts))
        .bind(letter.first_failed_at.timestamp_millis())
        .bind(now_ms())
        .fetch_one(self.conn())
        .await?;
        Ok(id)
    }

    /// Deletes dead letter `id`; false when there was none.
    pub async fn delete_dead_letter(&mut self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

impl Store {
    /// Up to `limit` dead letters matching `filter` with an id greater than
    /// `after`, oldest first; the second value is the cursor for the next
    /// page, if any. Past the first letter, none starts once those before
    /// it reach `max_bytes` (records and errors): a page of large letters
    /// is shorter, and the cursor goes on from it.
    pub async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: i64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<(Vec<DeadLetter>, Option<i64>), StoreError> {
        let limit = i64::from(limit.max(1));
        let query = BoundedSelect {
            columns: DEAD_LETTER_COLUMNS,
            from: "dead_letters",
            filter: "id > $1 AND ($2 IS NULL OR plugin = $2) AND ($3 IS NULL OR stage = $3)",
            join_filter: "TRUE",
            key: "id",
            order: &[("id", Direction::Asc)],
            size: "octet_length(record) + octet_length(error)",
            scan: "$4",
            take: "$5",
            max_bytes: "$6",
        }
        .sql();
        let rows = sqlx::query(AssertSqlSafe(query))
            .bind(after)
            .bind(filter.plugin.as_deref())
            .bind(filter.stage.map(Stage::as_str))
            .bind(limit + 1)
            .bind(limit)
            .bind(byte_budget(max_bytes))
            .fetch_all(&self.pool)
            .await?;
        let letters = rows
            .iter()
            .map(dead_letter_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows_left_out(&rows)? {
            letters.last().map(|letter| letter.id)
        } else {
            None
        };
        Ok((letters, next))
    }

    /// Dead letter `id`.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(dead_letter_from_row).transpose()
    }

    /// How many dead letters `plugin` has.
    pub async fn count_dead_letters(&self, plugin: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE plugin = $1")
                .bind(plugin)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

//! The `input_checkpoints` table: the last checkpoint a polling input
//! reached, committed together with the records it covers.

use super::{Store, StoreError, StoreTx, now_ms};

impl StoreTx {
    /// Records `checkpoint` as the position `plugin` has reached; commit it
    /// in the same transaction as the records it covers.
    pub async fn save_checkpoint(
        &mut self,
        plugin: &str,
        checkpoint: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO input_checkpoints (plugin, checkpoint, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (plugin) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(checkpoint.to_vec())
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Forgets the checkpoint of `plugin` (its next poll starts from none,
    /// a backfill); `true` if there was one.
    pub async fn delete_checkpoint(&mut self, plugin: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM input_checkpoints WHERE plugin = $1")
            .bind(plugin)
            .execute(self.conn())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

/// A committed checkpoint and when it was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    /// The plugin's opaque bytes.
    pub checkpoint: Vec<u8>,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

impl Store {
    /// The last committed checkpoint of `plugin`, or `None` before its first.
    pub async fn checkpoint(&self, plugin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT checkpoint FROM input_checkpoints WHERE plugin = $1")
                .bind(plugin)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The last committed checkpoint of `plugin` with its time, or `None`.
    pub async fn saved_checkpoint(
        &self,
        plugin: &str,
    ) -> Result<Option<SavedCheckpoint>, StoreError> {
        let row: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT checkpoint, updated_at FROM input_checkpoints WHERE plugin = $1",
        )
        .bind(plugin)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(checkpoint, updated_at_ms)| SavedCheckpoint {
            checkpoint,
            updated_at_ms,
        }))
    }
}

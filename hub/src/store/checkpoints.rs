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
}

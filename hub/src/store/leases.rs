//! The tables hubs sharing one PostgreSQL database coordinate through
//! (`migrations/postgres/0004_leases.sql`): each hub's heartbeat, and one
//! lease per piece of work with its owner and epoch. `crate::cluster`
//! decides what to take and when; this module only runs the statements.
//!
//! Every time comes from the database server's clock (`DB_NOW_MS`), so hubs
//! whose clocks disagree still agree on who holds what.
//!
//! Fencing: [`StoreTx::check_fence`] reads the work's lease row `FOR SHARE`
//! in the transaction that commits the work's progress, and fails it with
//! [`StoreError::Fenced`] unless the row still names this hub at the
//! epoch it was granted. A takeover (which raises the epoch) therefore
//! either waits for that transaction to commit or makes it fail: a hub that
//! was paused or cut off past its lease commits nothing afterwards.

use std::sync::Arc;

use sqlx::Row as _;

use super::{Store, StoreError, StoreTx};

/// The database server's clock, in milliseconds since the Unix epoch.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The lease a piece of work was granted under: a commit of that work
/// checks it ([`StoreTx::check_fence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The work (`poll:NAME`, `output:NAME`, `inbox:NAME`).
    pub work: Arc<str>,
    /// This hub's id.
    pub owner: Arc<str>,
    /// The epoch the lease was granted at.
    pub epoch: i64,
}

/// A hub as its heartbeat row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRow {
    /// The hub's id.
    pub id: String,
    /// Its `listen` address, as it wrote it.
    pub listen: String,
    /// When it started (ms since the epoch, database clock).
    pub started_at: i64,
    /// Its last heartbeat (ms since the epoch, database clock).
    pub heartbeat_at: i64,
}

/// A lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The work.
    pub work: String,
    /// Who holds it, if anyone (an expired lease still names its last owner).
    pub owner: Option<String>,
    /// Raised by every takeover.
    pub epoch: i64,
    /// When it runs out unless renewed (ms since the epoch, database clock).
    pub expires_at: i64,
    /// When its owner took it.
    pub acquired_at: i64,
}

/// What [`Store::cluster_view`] reads: every hub row, every lease, and the
/// database's clock when they were read.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The database's clock at the read (ms since the epoch).
    pub now: i64,
    /// Every hub row, by id.
    pub hubs: Vec<HubRow>,
    /// Every lease, by work.
    pub leases: Vec<LeaseRow>,
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Writes hub `id`'s heartbeat (creating its row), removes the rows of
    /// hubs silent for longer than `forget_after`, and returns the ids of
    /// the hubs whose last heartbeat is younger than `alive_for`, sorted,
    /// this one included.
    pub async fn heartbeat(
        &self,
        id: &str,
        listen: &str,
        alive_for: std::time::Duration,
        forget_after: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO cluster_hubs (id, listen, started_at, heartbeat_at) \
             VALUES ($1, $2, {DB_NOW_MS}, {DB_NOW_MS}) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = {DB_NOW_MS}, listen = excluded.listen"
        )))
        .bind(id)
        .bind(listen)
        .execute(&self.pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM cluster_hubs WHERE heartbeat_at < {DB_NOW_MS} - $1"
        )))
        .bind(millis(forget_after))
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM cluster_hubs WHERE heartbeat_at > {DB_NOW_MS} - $1 ORDER BY id"
        )))
        .bind(millis(alive_for))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Removes hub `id`'s row (it is leaving) and the rows of hubs silent
    /// for longer than `forget_after`.
    pub async fn leave_cluster(
        &self,
        id: &str,
        forget_after: std::time::Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM cluster_hubs WHERE id = $1 OR heartbeat_at < {DB_NOW_MS} - $2"
        )))
        .bind(id)
        .bind(millis(forget_after))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the lease on `work` for `owner` for `ttl` if nobody holds it or
    /// it has expired (or `owner`'s own row is there, from an earlier run
    /// with the same id): returns the new epoch, or `None` when another hub
    /// holds it.
    pub async fn acquire_lease(
        &self,
        work: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leases (work, owner, epoch, expires_at, acquired_at) \
             VALUES ($1, $2, 1, {DB_NOW_MS} + $3, {DB_NOW_MS}) \
             ON CONFLICT (work) DO UPDATE SET owner = excluded.owner, epoch = leases.epoch + 1, \
                 expires_at = excluded.expires_at, acquired_at = excluded.acquired_at \
             WHERE leases.owner IS NULL OR leases.owner = excluded.owner \
                 OR leases.expires_at <= {DB_NOW_MS} \
             RETURNING epoch"
        )))
        .bind(work)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(row.try_get::<i64, _>(0)?)),
            None => Ok(None),
        }
    }

    /// Extends `owner`'s lease on `work` at `epoch` by `ttl` from now;
    /// `false` when it is no longer theirs (another hub took it over).
    pub async fn renew_lease(
        &self,
        work: &str,
        owner: &str,
        epoch: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leases SET expires_at = {DB_NOW_MS} + $4 \
             WHERE work = $1 AND owner = $2 AND epoch = $3"
        )))
        .bind(work)
        .bind(owner)
        .bind(epoch)
        .bind(millis(ttl))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives `owner`'s lease on `work` at `epoch` up, so another hub can
    /// take it at once; `false` when it was no longer theirs.
    pub async fn release_lease(
        &self,
        work: &str,
        owner: &str,
        epoch: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE leases SET owner = NULL, expires_at = 0 \
             WHERE work = $1 AND owner = $2 AND epoch = $3",
        )
        .bind(work)
        .bind(owner)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Every hub row and every lease, with the database's clock.
    pub async fn cluster_view(&self) -> Result<ClusterView, StoreError> {
        let now: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {DB_NOW_MS}")))
            .fetch_one(&self.pool)
            .await?;
        let hubs = sqlx::query(
            "SELECT id, listen, started_at, heartbeat_at FROM cluster_hubs ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(HubRow {
                id: row.try_get(0)?,
                listen: row.try_get(1)?,
                started_at: row.try_get(2)?,
                heartbeat_at: row.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let leases = sqlx::query(
            "SELECT work, owner, epoch, expires_at, acquired_at FROM leases ORDER BY work",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(LeaseRow {
                work: row.try_get(0)?,
                owner: row.try_get(1)?,
                epoch: row.try_get(2)?,
                expires_at: row.try_get(3)?,
                acquired_at: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(ClusterView { now, hubs, leases })
    }
}

impl StoreTx {
    /// Fails with [`StoreError::Fenced`] unless `fence`'s lease still names
    /// its owner at its epoch; holds the lease row (`FOR SHARE`) until this
    /// transaction ends, so no takeover lands in between. Call it first in
    /// every transaction that commits leased work.
    pub async fn check_fence(&mut self, fence: &Fence) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT owner, epoch FROM leases WHERE work = $1 FOR SHARE")
            .bind(&*fence.work)
            .fetch_optional(self.conn())
            .await?;
        let holds = match row {
            Some(row) => {
                let owner: Option<String> = row.try_get(0)?;
                let epoch: i64 = row.try_get(1)?;
                owner.as_deref() == Some(&*fence.owner) && epoch == fence.epoch
            }
            None => false,
        };
        if holds {
            Ok(())
        } else {
            super::metrics::global().fenced();
            Err(StoreError::Fenced {
                work: fence.work.to_string(),
                epoch: fence.epoch,
            })
        }
    }
}

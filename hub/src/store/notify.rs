//! Commits made by other hubs sharing a PostgreSQL database wake this hub's
//! workers, as this hub's own commits do, instead of waiting for their next
//! look at the outbox or the inbox.
//!
//! A transaction that wrote outbox events or inbox rows sends one
//! `NOTIFY switchyard_commits` before it commits ([`announce`]); PostgreSQL
//! delivers it to every listening session once the transaction has
//! committed, and never if it rolls back. Each hub listens on a connection
//! of its own ([`spawn_listener`]) and bumps the store's event or inbox
//! generation. The payload carries the sending store's random token, so a
//! hub ignores the echo of its own commits (it woke its workers already).
//! A notification lost while the listener reconnects costs only latency:
//! the workers still look on their own every second or two.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::StoreError;

/// The channel every hub of a database listens on.
const CHANNEL: &str = "switchyard_commits";
/// How long to wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// What a commit wrote, as the other hubs need to know it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wrote {
    /// Outbox events (outputs have something to deliver).
    pub events: bool,
    /// Pending inbox rows (inbox workers have something to claim).
    pub inbox: bool,
}

impl Wrote {
    fn payload(self, token: u64) -> Option<String> {
        let what = match (self.events, self.inbox) {
            (false, false) => return None,
            (true, false) => "events",
            (false, true) => "inbox",
            (true, true) => "events+inbox",
        };
        Some(format!("{token:016x} {what}"))
    }

    fn parse(payload: &str) -> Option<(u64, Wrote)> {
        let (token, what) = payload.split_once(' ')?;
        let token = u64::from_str_radix(token, 16).ok()?;
        Some((
            token,
            Wrote {
                events: what.contains("events"),
                inbox: what.contains("inbox"),
            },
        ))
    }
}

/// Sends the notification of what the transaction on `connection` wrote
/// (nothing when it wrote neither events nor inbox rows); delivered when
/// the transaction commits.
pub(crate) async fn announce(
    connection: &mut AnyConnection,
    token: u64,
    wrote: Wrote,
) -> Result<(), StoreError> {
    let Some(payload) = wrote.payload(token) else {
        return Ok(());
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(connection)
        .await?;
    Ok(())
}

/// Listens for other hubs' commits on `url` until `cancel` fires, bumping
/// `events` and `inbox` as they wrote them.
pub(crate) fn spawn_listener(
    url: String,
    token: u64,
    events: Arc<watch::Sender<u64>>,
    inbox: Arc<watch::Sender<u64>>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let listened = tokio::select! {
                () = cancel.cancelled() => return,
                result = listen(&url, token, &events, &inbox) => result,
            };
            if let Err(err) = listened
                && !failing
            {
                tracing::debug!(error = %err, "Not listening for other hubs' commits now; retrying.");
            }
            failing = true;
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    });
}

/// One listening connection, until it fails.
async fn listen(
    url: &str,
    token: u64,
    events: &watch::Sender<u64>,
    inbox: &watch::Sender<u64>,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        let Some((sender, wrote)) = Wrote::parse(notification.payload()) else {
            continue;
        };
        if sender == token {
            continue;
        }
        if wrote.events {
            events.send_modify(|generation| *generation += 1);
        }
        if wrote.inbox {
            inbox.send_modify(|generation| *generation += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_nothing_written_sends_nothing() {
        let both = Wrote {
            events: true,
            inbox: true,
        };
        let payload = both.payload(0xab).unwrap_or_default();
        assert_eq!(Wrote::parse(&payload), Some((0xab, both)));
        assert_eq!(Wrote::default().payload(1), None);
        assert_eq!(Wrote::parse("nonsense"), None);
    }
}

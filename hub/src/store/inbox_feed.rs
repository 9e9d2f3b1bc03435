//! Pending webhook deliveries this hub has just committed, handed to their
//! plugin's inbox worker without reading them back.
//!
//! An inbox worker that has seen every pending delivery of its plugin
//! (a read of the inbox that left none out) would otherwise read the table
//! again after each accepted webhook, to find the one row it was told had
//! arrived: on SQLite a query and a row through sqlx's worker thread, each
//! a round trip between threads, and at low rates about 1.65 of them per
//! webhook (docs/benchmarks.md). So a committed transaction that inserted
//! pending inbox rows for a plugin whose worker subscribed also hands them,
//! as the table holds them, to that worker's mailbox.
//!
//! The database stays the truth, and the worker decides when the mailbox's
//! word is enough (`webhook/worker.rs`):
//! * rows enter only after their transaction committed, in commit order,
//!   which is id order (write transactions are serialized, see `mod.rs`);
//! * only on SQLite ([`super::Store::subscribe_inbox_feed`]), which no
//!   other hub shares: on PostgreSQL another hub's delivery may take an id
//!   between two of this hub's, and only a read of the table finds it;
//! * a mailbox is bounded ([`MAILBOX_CAPACITY`] deliveries and
//!   [`MAILBOX_BYTES`] of bodies and headers); what does not fit is left
//!   out and the mailbox says so, and the worker reads the table instead;
//! * requeued deliveries (a dead letter's replay) are not fed: the replay
//!   wakes the worker, which reads the table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::InboxEntry;

/// The most deliveries a mailbox holds between two takes of its worker.
pub const MAILBOX_CAPACITY: usize = 1024;

/// The most body and header bytes a mailbox holds between two takes: a few
/// large bodies (`max_body` allows 64 MiB), not a backlog of them.
pub const MAILBOX_BYTES: usize = 64 * 1024 * 1024;

/// The subscribed workers' mailboxes, by plugin (one per [`super::Store`]).
#[derive(Debug, Default)]
pub(crate) struct InboxFeed {
    mailboxes: Mutex<HashMap<String, Arc<Mailbox>>>,
    next_id: AtomicU64,
}

/// One worker's mailbox.
#[derive(Debug)]
struct Mailbox {
    /// Tells a replaced subscription from its successor.
    id: u64,
    fed: Mutex<Fed>,
    arrived: Notify,
    /// [`MAILBOX_CAPACITY`] and [`MAILBOX_BYTES`], but for tests.
    capacity: usize,
    max_bytes: usize,
}

/// What a worker takes from its mailbox ([`InboxSubscription::take`]).
#[derive(Debug, Default)]
pub struct Fed {
    /// Pending deliveries committed since the last take, in id order, as
    /// the inbox table holds them.
    pub entries: Vec<InboxEntry>,
    /// Some committed deliveries were left out (the mailbox was full): only
    /// a read of the table finds them.
    pub overflowed: bool,
    /// The body and header bytes of `entries`.
    bytes: usize,
}

/// The bytes of a delivery that count against a mailbox's bound, and a
/// worker's read-ahead: its body and its headers.
pub fn entry_bytes(entry: &InboxEntry) -> usize {
    let headers: usize = entry
        .delivery
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    entry.delivery.body.len() + headers
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Either is a cache the table can rebuild: a panic while it was held
    // leaves nothing worse than a worker reading the table.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl InboxFeed {
    /// Whether a worker of `plugin` subscribed (committing transactions
    /// copy a delivery only then).
    pub(crate) fn wanted(&self, plugin: &str) -> bool {
        lock(&self.mailboxes).contains_key(plugin)
    }

    /// Hands the pending deliveries of a transaction that has just
    /// committed, in id order, to their plugins' mailboxes.
    pub(crate) fn publish(&self, entries: Vec<InboxEntry>) {
        if entries.is_empty() {
            return;
        }
        let mailboxes = lock(&self.mailboxes);
        let mut arrived: Vec<&Arc<Mailbox>> = Vec::new();
        for entry in entries {
            let Some(mailbox) = mailboxes.get(&entry.plugin) else {
                continue;
            };
            mailbox.put(entry);
            if !arrived.iter().any(|seen| Arc::ptr_eq(seen, mailbox)) {
                arrived.push(mailbox);
            }
        }
        for mailbox in arrived {
            mailbox.arrived.notify_one();
        }
    }

    /// Subscribes the inbox worker of `plugin`, replacing any earlier
    /// subscription of that plugin (a worker being replaced).
    pub(crate) fn subscribe(self: &Arc<Self>, plugin: &str) -> InboxSubscription {
        self.subscribe_bounded(plugin, MAILBOX_CAPACITY, MAILBOX_BYTES)
    }

    fn subscribe_bounded(
        self: &Arc<Self>,
        plugin: &str,
        capacity: usize,
        max_bytes: usize,
    ) -> InboxSubscription {
        let mailbox = Arc::new(Mailbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            fed: Mutex::default(),
            arrived: Notify::new(),
            capacity,
            max_bytes,
        });
        lock(&self.mailboxes).insert(plugin.to_owned(), mailbox.clone());
        InboxSubscription {
            feed: self.clone(),
            plugin: plugin.to_owned(),
            mailbox,
        }
    }
}

impl Mailbox {
    fn put(&self, entry: InboxEntry) {
        let mut fed = lock(&self.fed);
        let bytes = entry_bytes(&entry);
        let fits = fed.entries.len() < self.capacity
            && (fed.entries.is_empty() || fed.bytes.saturating_add(bytes) <= self.max_bytes);
        // Once one is left out, every later one is too: the worker must not
        // take a delivery while an older one waits in the table alone.
        if fed.overflowed || !fits {
            fed.overflowed = true;
            return;
        }
        fed.bytes += bytes;
        fed.entries.push(entry);
    }
}

/// An inbox worker's subscription to its plugin's committed deliveries
/// (unsubscribed when dropped).
#[derive(Debug)]
pub struct InboxSubscription {
    feed: Arc<InboxFeed>,
    plugin: String,
    mailbox: Arc<Mailbox>,
}

impl InboxSubscription {
    /// Resolves once deliveries arrived (or were left out) since the last
    /// [`InboxSubscription::take`]; it may also resolve with nothing new.
    pub async fn arrived(&self) {
        self.mailbox.arrived.notified().await;
    }

    /// Everything the mailbox holds, emptying it.
    pub fn take(&self) -> Fed {
        std::mem::take(&mut *lock(&self.mailbox.fed))
    }
}

impl Drop for InboxSubscription {
    fn drop(&mut self) {
        let mut mailboxes = lock(&self.feed.mailboxes);
        if mailboxes
            .get(&self.plugin)
            .is_some_and(|mailbox| mailbox.id == self.mailbox.id)
        {
            mailboxes.remove(&self.plugin);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::WebhookDelivery;
    use crate::store::InboxStatus;

    fn entry(plugin: &str, id: i64, body: usize) -> InboxEntry {
        InboxEntry {
            id,
            plugin: plugin.into(),
            delivery: WebhookDelivery {
                method: "POST".into(),
                path: format!("/webhooks/{plugin}"),
                query: String::new(),
                headers: Vec::new(),
                body: vec![b'x'; body],
                delivery_id: format!("d{id}"),
                received_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            },
            status: InboxStatus::Pending,
            attempts: 0,
            last_error: None,
            reply: None,
        }
    }

    fn ids(fed: &Fed) -> Vec<i64> {
        fed.entries.iter().map(|entry| entry.id).collect()
    }

    #[test]
    fn hands_each_plugin_its_own_deliveries_only_while_subscribed() {
        let feed = Arc::new(InboxFeed::default());
        assert!(!feed.wanted("a"));
        feed.publish(vec![entry("a", 1, 1)]);
        let a = feed.subscribe("a");
        assert!(feed.wanted("a") && !feed.wanted("b"));
        assert!(
            a.take().entries.is_empty(),
            "nothing from before it subscribed"
        );
        feed.publish(vec![entry("a", 2, 1), entry("b", 3, 1), entry("a", 4, 1)]);
        let fed = a.take();
        assert_eq!((ids(&fed), fed.overflowed), (vec![2, 4], false));
        assert!(a.take().entries.is_empty(), "a take empties the mailbox");
        drop(a);
        assert!(!feed.wanted("a"));
    }

    #[tokio::test]
    async fn a_publish_wakes_the_worker_even_before_it_waits() {
        let feed = Arc::new(InboxFeed::default());
        let a = feed.subscribe("a");
        feed.publish(vec![entry("a", 1, 1)]);
        tokio::time::timeout(std::time::Duration::from_secs(5), a.arrived())
            .await
            .unwrap();
        assert_eq!(ids(&a.take()), vec![1]);
    }

    #[test]
    fn a_full_mailbox_leaves_out_every_later_delivery_and_says_so() {
        let feed = Arc::new(InboxFeed::default());
        let a = feed.subscribe_bounded("a", 2, 1_000);
        feed.publish((1..=3).map(|id| entry("a", id, 10)).collect());
        feed.publish(vec![entry("a", 4, 10)]);
        let fed = a.take();
        assert_eq!((ids(&fed), fed.overflowed), (vec![1, 2], true));
        // Taken: it holds deliveries again.
        feed.publish(vec![entry("a", 5, 600), entry("a", 6, 600)]);
        let fed = a.take();
        assert_eq!((ids(&fed), fed.overflowed), (vec![5], true), "by bytes too");
        // One larger than the bound still comes, alone.
        feed.publish(vec![entry("a", 7, 5_000)]);
        let fed = a.take();
        assert_eq!((ids(&fed), fed.overflowed), (vec![7], false));
    }

    #[test]
    fn a_replaced_subscription_does_not_unsubscribe_its_successor() {
        let feed = Arc::new(InboxFeed::default());
        let old = feed.subscribe("a");
        let new = feed.subscribe("a");
        drop(old);
        assert!(feed.wanted("a"));
        feed.publish(vec![entry("a", 1, 1)]);
        assert_eq!(ids(&new.take()), vec![1]);
    }
}

//! The outbox's recent tail, kept in memory for the output workers.
//!
//! An output worker reads the events after its position from the outbox
//! table. Right after a commit those are the events this hub has just
//! written, and reading them back costs far more than writing them did: a
//! row per event from the database (on SQLite, each a message from sqlx's
//! worker thread) and a JSON parse of each record's snapshot. So every
//! committed transaction that wrote outbox events also hands them, as the
//! rows read back would be, to this feed, and a worker whose reads are
//! "clean" (see [`FeedReader::events_after`]) takes them from here.
//!
//! The database stays the truth; the feed only answers when its answer is
//! provably what the table holds:
//! * events enter only after their transaction committed, in commit order,
//!   which is id order (write transactions are serialized, see `mod.rs`);
//! * an answer is a run of consecutive ids starting right after the
//!   reader's position. Ids are unique, so every event in that range is in
//!   the run; when the next id is not here (events another hub or process
//!   wrote, ids a rolled-back PostgreSQL transaction used up, or events
//!   that fell off the feed) the reader goes to the table;
//! * the feed is bounded ([`FEED_CAPACITY`] events and [`FEED_BYTES`] of
//!   records, so a run of large records cannot fill the hub's memory) and
//!   holds nothing while no reader is registered, so a slow or absent
//!   output costs only the table reads it made before.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::OutboxEvent;

/// The most events the feed holds: a few output scans' worth.
pub const FEED_CAPACITY: usize = 8192;

/// The most record bytes ([`crate::domain::Record::byte_len`]) the feed
/// holds: far above what 8192 ordinary records take, so only large records
/// make it keep fewer.
pub const FEED_BYTES: usize = 256 * 1024 * 1024;

/// Committed outbox events, newest last (one per [`super::Store`]).
#[derive(Debug)]
pub(crate) struct OutboxFeed {
    state: Mutex<FeedState>,
    /// [`FEED_BYTES`], but for tests.
    max_bytes: usize,
}

impl Default for OutboxFeed {
    fn default() -> Self {
        OutboxFeed {
            state: Mutex::default(),
            max_bytes: FEED_BYTES,
        }
    }
}

#[derive(Debug, Default)]
struct FeedState {
    /// Increasing ids (not necessarily consecutive); each a cheap clone
    /// (the record is shared), with its record's bytes, measured once.
    events: VecDeque<(OutboxEvent, usize)>,
    /// The records' bytes in `events`.
    bytes: usize,
    /// Registered readers and the position each read after last.
    readers: BTreeMap<u64, i64>,
    next_reader: u64,
}

impl OutboxFeed {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // The state is a cache the database can rebuild: a panic while it
        // was held leaves nothing worse than a reader going to the table.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether anyone reads the feed (committing transactions skip copying
    /// their events when nobody does).
    pub(crate) fn wanted(&self) -> bool {
        !self.lock().readers.is_empty()
    }

    /// Adds the events of a transaction that has just committed, in id
    /// order.
    pub(crate) fn publish(&self, events: Vec<OutboxEvent>) {
        if events.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.readers.is_empty() {
            return;
        }
        for event in events {
            if state
                .events
                .back()
                .is_some_and(|(last, _)| last.id >= event.id)
            {
                // Not in commit order: nothing here can be trusted.
                tracing::warn!(
                    event = event.id,
                    "Outbox events reached the in-memory feed out of order; it is emptied and outputs read the table."
                );
                state.clear();
            }
            let bytes = event.record.byte_len();
            state.bytes += bytes;
            state.events.push_back((event, bytes));
        }
        while state.events.len() > FEED_CAPACITY || state.bytes > self.max_bytes {
            state.pop_front();
        }
    }

    /// Registers a reader.
    pub(crate) fn reader(self: &Arc<Self>) -> FeedReader {
        let mut state = self.lock();
        let id = state.next_reader;
        state.next_reader += 1;
        state.readers.insert(id, 0);
        FeedReader {
            feed: self.clone(),
            id,
        }
    }

    /// Drops the events every reader has passed.
    fn trim(state: &mut FeedState) {
        let Some(&oldest) = state.readers.values().min() else {
            state.clear();
            return;
        };
        while state
            .events
            .front()
            .is_some_and(|(event, _)| event.id <= oldest)
        {
            state.pop_front();
        }
    }
}

impl FeedState {
    fn pop_front(&mut self) {
        if let Some((_, bytes)) = self.events.pop_front() {
            self.bytes -= bytes;
        }
    }

    fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
    }
}

/// A feed's answer ([`FeedReader::events_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRun {
    /// Events with consecutive ids from the reader's position on.
    pub events: Vec<OutboxEvent>,
    /// Whether they are everything the feed holds after the position (no
    /// gap, count or bytes cut them short): on a database only this hub
    /// writes, every event committed when the feed answered.
    pub to_end: bool,
}

/// One output worker's handle on the feed (unregistered when dropped).
#[derive(Debug)]
pub struct FeedReader {
    feed: Arc<OutboxFeed>,
    id: u64,
}

impl FeedReader {
    /// Up to `limit` events with consecutive ids from `after + 1`, as the
    /// outbox table holds them, or `None` when the feed does not have event
    /// `after + 1` (then read the table). Past the first event, the run
    /// stops once its records reach `max_bytes`, as the table's read does.
    ///
    /// The table query an output uses also skips the events it marked done
    /// above its position (finished out of order); the feed knows nothing
    /// of those marks. Call this only when there are none: when the
    /// caller's last scan finished and moved its position to `after`.
    pub fn events_after(&self, after: i64, limit: usize, max_bytes: usize) -> Option<FeedRun> {
        let mut state = self.feed.lock();
        state.readers.insert(self.id, after);
        OutboxFeed::trim(&mut state);
        let first = after.checked_add(1)?;
        if state.events.front().map(|(event, _)| event.id) != Some(first) {
            return None;
        }
        let mut run: Vec<OutboxEvent> = Vec::new();
        let mut bytes = 0;
        let consecutive = state.events.iter().zip(first..);
        for ((event, event_bytes), id) in consecutive.take(limit.max(1)) {
            if event.id != id || !(run.is_empty() || bytes < max_bytes) {
                break;
            }
            bytes += event_bytes;
            run.push(event.clone());
        }
        Some(FeedRun {
            to_end: run.len() == state.events.len(),
            events: run,
        })
    }
}

impl Drop for FeedReader {
    fn drop(&mut self) {
        let mut state = self.feed.lock();
        state.readers.remove(&self.id);
        OutboxFeed::trim(&mut state);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Payload, Record};

    fn event(id: i64) -> OutboxEvent {
        sized_event(id, 0)
    }

    /// An event whose record's payload is a JSON string of `bytes` bytes
    /// (at least 2, the quotes; 0 means `null`).
    fn sized_event(id: i64, bytes: usize) -> OutboxEvent {
        let payload = if bytes == 0 {
            Payload::null()
        } else {
            Payload::from_json(format!("\"{}\"", "x".repeat(bytes - 2)).into_bytes()).unwrap()
        };
        OutboxEvent {
            id,
            kind: EventKind::Created,
            record_id: id,
            record: Arc::new(Record {
                id: String::new(),
                source: String::new(),
                record_type: String::new(),
                occurred_at: None,
                payload,
                metadata: BTreeMap::new(),
                idempotency_key: None,
            }),
            created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
        }
    }

    fn ids(run: Option<FeedRun>) -> Option<Vec<i64>> {
        run.map(|run| run.events.iter().map(|event| event.id).collect())
    }

    #[test]
    fn holds_nothing_without_readers() {
        let feed = Arc::new(OutboxFeed::default());
        assert!(!feed.wanted());
        feed.publish(vec![event(1), event(2)]);
        let reader = feed.reader();
        assert!(feed.wanted());
        assert_eq!(ids(reader.events_after(0, 10, usize::MAX)), None);
        drop(reader);
        assert!(!feed.wanted());
    }

    #[test]
    fn answers_only_a_consecutive_run_from_the_position() {
        let feed = Arc::new(OutboxFeed::default());
        let reader = feed.reader();
        feed.publish(vec![event(5), event(6), event(7)]);
        // Event 5's predecessor is not known here: the table decides.
        assert_eq!(ids(reader.events_after(3, 10, usize::MAX)), None);
        assert_eq!(
            ids(reader.events_after(4, 10, usize::MAX)),
            Some(vec![5, 6, 7])
        );
        assert_eq!(ids(reader.events_after(4, 2, usize::MAX)), Some(vec![5, 6]));
        // Whether a run is all the feed holds after the position.
        let to_end = |after, limit| {
            reader
                .events_after(after, limit, usize::MAX)
                .map(|run| run.to_end)
        };
        assert_eq!(to_end(4, 10), Some(true));
        assert_eq!(to_end(4, 3), Some(true));
        assert_eq!(to_end(4, 2), Some(false));
        // A gap (an id used elsewhere) ends the run.
        feed.publish(vec![event(9), event(10)]);
        assert_eq!(ids(reader.events_after(6, 10, usize::MAX)), Some(vec![7]));
        assert_eq!(
            reader.events_after(6, 10, usize::MAX).map(|run| run.to_end),
            Some(false),
            "a gap is not the end"
        );
        assert_eq!(ids(reader.events_after(7, 10, usize::MAX)), None);
        assert_eq!(
            ids(reader.events_after(8, 10, usize::MAX)),
            Some(vec![9, 10])
        );
        assert_eq!(ids(reader.events_after(10, 10, usize::MAX)), None);
    }

    #[test]
    fn forgets_what_every_reader_passed_and_stays_bounded() {
        let feed = Arc::new(OutboxFeed::default());
        let fast = feed.reader();
        let slow = feed.reader();
        feed.publish((1..=4).map(event).collect());
        assert_eq!(ids(fast.events_after(4, 10, usize::MAX)), None);
        // The slow reader still finds what the fast one passed.
        assert_eq!(ids(slow.events_after(2, 10, usize::MAX)), Some(vec![3, 4]));
        drop(slow);
        // Only the fast reader is left, at 4: events up to 4 are gone.
        assert_eq!(feed.lock().events.len(), 0);

        let count = i64::try_from(FEED_CAPACITY).unwrap() + 10;
        feed.publish((5..5 + count).map(event).collect());
        assert_eq!(feed.lock().events.len(), FEED_CAPACITY);
        assert_eq!(ids(fast.events_after(4, 1, usize::MAX)), None);
        assert_eq!(ids(fast.events_after(14, 1, usize::MAX)), Some(vec![15]));
    }

    #[test]
    fn large_records_make_it_hold_and_answer_fewer_events() {
        let feed = Arc::new(OutboxFeed {
            max_bytes: 10_000,
            ..OutboxFeed::default()
        });
        let reader = feed.reader();
        feed.publish((1..=30).map(|id| sized_event(id, 1_000)).collect());
        // Ten records of 1,000 bytes fit in 10,000: the older twenty are gone.
        assert_eq!(feed.lock().events.len(), 10);
        assert_eq!(feed.lock().bytes, 10_000);
        assert_eq!(ids(reader.events_after(0, 100, usize::MAX)), None);
        assert_eq!(
            ids(reader.events_after(20, 100, 2_500)),
            Some(vec![21, 22, 23]),
            "a run stops once it reaches max_bytes"
        );
        // One record larger than max_bytes still comes, alone.
        assert_eq!(ids(reader.events_after(20, 100, 10)), Some(vec![21]));
        // One larger than the whole feed is not kept at all.
        feed.publish(vec![sized_event(31, 20_000)]);
        assert_eq!(feed.lock().events.len(), 0);
        assert_eq!(feed.lock().bytes, 0);
        assert_eq!(ids(reader.events_after(30, 100, usize::MAX)), None);
    }

    #[test]
    fn events_out_of_order_empty_it() {
        let feed = Arc::new(OutboxFeed::default());
        let reader = feed.reader();
        feed.publish(vec![event(1), event(2)]);
        feed.publish(vec![event(2)]);
        assert_eq!(ids(reader.events_after(0, 10, usize::MAX)), None);
        assert_eq!(ids(reader.events_after(1, 10, usize::MAX)), Some(vec![2]));
    }
}

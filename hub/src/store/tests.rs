//! Store tests, each run against SQLite and (when configured) PostgreSQL.

use std::collections::BTreeMap;

use super::testing;
use super::*;
use crate::domain::{EventKind, Payload, Record};

fn record(id: &str, n: i64) -> Record {
    Record {
        id: id.to_owned(),
        source: String::new(),
        record_type: "thing".to_owned(),
        occurred_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000),
        payload: serde_json::json!({ "n": n, "nested": { "a": [1, 2] } }).into(),
        metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        idempotency_key: None,
    }
}

/// Runs `test` on a fresh SQLite store and a fresh PostgreSQL store.
async fn on_both<F, Fut>(name: &str, test: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    test(sqlite.clone()).await;
    sqlite.close().await;
    if let Some(url) = testing::postgres_url(name).await {
        let postgres = Store::open(&url).await.unwrap();
        assert_eq!(postgres.backend(), Backend::Postgres);
        test(postgres.clone()).await;
        postgres.close().await;
    }
}

#[tokio::test]
async fn a_scan_of_large_records_stops_once_it_reaches_its_bytes() {
    on_both("scan_bytes", |store| async move {
        let records = store_large_records(&store).await;
        let each = records[0].byte_len();
        assert!(each >= 1_000);
        let ids =
            |events: Vec<OutboxEvent>| events.iter().map(|event| event.id).collect::<Vec<_>>();
        let all = ids(store
            .events_after("out", 0, 100, usize::MAX)
            .await
            .unwrap()
            .events);
        assert_eq!(all.len(), 5);
        // Two records are below 2.5 of them; the third reaches it.
        let scan = store
            .events_after("out", 0, 100, each * 5 / 2)
            .await
            .unwrap()
            .events;
        assert_eq!(ids(scan), all[..3]);
        // The first event always comes, whatever its size.
        let scan = store.events_after("out", 0, 100, 1).await.unwrap().events;
        assert_eq!(ids(scan), all[..1]);
        // The count limit still holds.
        let scan = store
            .events_after("out", 0, 2, usize::MAX)
            .await
            .unwrap()
            .events;
        assert_eq!(ids(scan), all[..2]);

        // A scan says whether it holds every event there was: not when its
        // bytes or its count cut it, even at the last event.
        let complete = |after, limit, max_bytes| {
            let store = store.clone();
            async move {
                store
                    .events_after("out", after, limit, max_bytes)
                    .await
                    .unwrap()
                    .complete
            }
        };
        assert!(complete(0, 100, usize::MAX).await);
        assert!(complete(all[2], 100, usize::MAX).await);
        assert!(!complete(0, 100, each * 5 / 2).await);
        assert!(!complete(0, 5, usize::MAX).await);
        assert!(!complete(all[3], 1, usize::MAX).await);
        assert!(
            complete(all[4], 1, usize::MAX).await,
            "nothing after the last"
        );
    })
    .await;
}

/// Five records of about 1,000 bytes each, stored (source "gen").
async fn store_large_records(store: &Store) -> Vec<Record> {
    let records: Vec<Record> = (0..5)
        .map(|n| {
            let mut record = record(&format!("large-{n}"), n);
            record.payload =
                Payload::from_json(format!("\"{}\"", "x".repeat(998)).into_bytes()).unwrap();
            record
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_records("gen", &records).await.unwrap();
    tx.commit().await.unwrap();
    records
}

#[tokio::test]
async fn pages_of_large_rows_stop_at_their_bytes_and_go_on_from_there() {
    on_both("page_bytes", |store| async move {
        let records = store_large_records(&store).await;
        // Two rows come under 2.5 rows' bytes, so the third starts below
        // the budget and is the page's last.
        let budget = records[0].byte_len() * 5 / 2;
        let source_ids = |page: &RecordPage| {
            page.records
                .iter()
                .map(|stored| stored.record.id.clone())
                .collect::<Vec<_>>()
        };
        let all = RecordFilter::default();
        let page = store.list_records(&all, 0, 100, budget).await.unwrap();
        assert_eq!(source_ids(&page), ["large-0", "large-1", "large-2"]);
        let next = page
            .next_after
            .expect("a page cut by its bytes has a next one");
        let page = store.list_records(&all, next, 100, budget).await.unwrap();
        assert_eq!(source_ids(&page), ["large-3", "large-4"]);
        assert_eq!(page.next_after, None);
        let newest = RecordFilter {
            newest_first: true,
            ..RecordFilter::default()
        };
        let page = store.list_records(&newest, 0, 100, budget).await.unwrap();
        assert_eq!(source_ids(&page), ["large-4", "large-3", "large-2"]);
        // The first row always comes, whatever its size.
        let page = store.list_records(&all, 0, 100, 0).await.unwrap();
        assert_eq!(source_ids(&page), ["large-0"]);
        assert!(page.next_after.is_some());

        // Replays of all five events.
        let events = store
            .events_after("out", 0, 100, usize::MAX)
            .await
            .unwrap()
            .events;
        let mut tx = store.begin().await.unwrap();
        for event in &events {
            tx.enqueue_replay("out", event.id).await.unwrap();
        }
        tx.commit().await.unwrap();
        let replays = store.pending_replays("out", 100, budget).await.unwrap();
        let event_ids: Vec<i64> = events.iter().map(|event| event.id).collect();
        let replayed: Vec<i64> = replays.iter().map(|event| event.id).collect();
        assert_eq!(replayed, event_ids[..3]);
        assert_eq!(
            store
                .pending_replays("out", 2, usize::MAX)
                .await
                .unwrap()
                .len(),
            2
        );

        // Dead letters holding the records.
        let mut tx = store.begin().await.unwrap();
        for record in &records {
            let letter = NewDeadLetter {
                plugin: "out".to_owned(),
                stage: Stage::Output,
                record: record.clone(),
                event: None,
                error: "refused".to_owned(),
                attempts: 1,
                first_failed_at: chrono::Utc::now(),
            };
            tx.add_dead_letter(&letter).await.unwrap();
        }
        tx.commit().await.unwrap();
        let filter = DeadLetterFilter::default();
        let (letters, next) = store
            .list_dead_letters(&filter, 0, 100, budget)
            .await
            .unwrap();
        assert_eq!(letters.len(), 3);
        let next = next.expect("a page cut by its bytes has a next one");
        let (rest, next) = store
            .list_dead_letters(&filter, next, 100, budget)
            .await
            .unwrap();
        let letter_ids: Vec<&str> = rest
            .iter()
            .map(|letter| letter.record.id.as_str())
            .collect();
        assert_eq!(letter_ids, ["large-3", "large-4"]);
        assert_eq!(next, None);
    })
    .await;
}

#[tokio::test]
async fn upsert_creates_updates_and_skips_unchanged_records() {
    on_both("upsert", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let first = tx
            .upsert_records("gen", &[record("1", 1), record("2", 2)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(matches!(first[0], Upserted::Created { .. }));
        assert!(matches!(first[1], Upserted::Created { .. }));

        let mut tx = store.begin().await.unwrap();
        let second = tx
            .upsert_records("gen", &[record("1", 1), record("2", 20)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            second[0],
            Upserted::Unchanged {
                record_id: first[0].record_id()
            }
        );
        let Upserted::Updated {
            record_id,
            event_id,
        } = second[1]
        else {
            panic!("expected an update, got {:?}", second[1]);
        };
        assert_eq!(record_id, first[1].record_id());

        let stored = store.get_record(record_id).await.unwrap().unwrap();
        assert_eq!(stored.record.source, "gen");
        assert_eq!(stored.record.payload.to_value()["n"], 20);
        assert_eq!(stored.version, 2);
        assert_eq!(stored.record.metadata["k"], "v");
        assert_eq!(store.count_records().await.unwrap(), 2);

        let events = store
            .events_after("out", 0, 100, usize::MAX)
            .await
            .unwrap()
            .events;
        let kinds: Vec<_> = events.iter().map(|event| event.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Created, EventKind::Created, EventKind::Updated]
        );
        assert_eq!(events[2].id, event_id);
        assert_eq!(events[2].record.payload.to_value()["n"], 20);
        assert_eq!(
            events[0].record.payload.to_value()["n"],
            1,
            "events keep their snapshot"
        );
    })
    .await;
}

#[tokio::test]
async fn a_mixed_batch_keeps_input_order_for_outcomes_and_events() {
    // More new records than one chunk holds, so they span several.
    const NEW: usize = 1_200;
    on_both("mixed_batch", |store| async move {
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[record("b", 1), record("d", 1)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let batch: Vec<Record> = (0..NEW as i64)
            .map(|n| record(&format!("n{n}"), n))
            .chain([
                record("b", 2),
                record("c", 1),
                record("d", 1),
                record("c", 3),
            ])
            .collect();
        let mut tx = store.begin().await.unwrap();
        let outcomes = tx.upsert_records("gen", &batch).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(outcomes.len(), batch.len());
        assert!(
            outcomes[..NEW]
                .iter()
                .all(|o| matches!(o, Upserted::Created { .. }))
        );
        assert!(matches!(outcomes[NEW], Upserted::Updated { .. }));
        assert!(matches!(outcomes[NEW + 1], Upserted::Created { .. }));
        assert!(matches!(outcomes[NEW + 2], Upserted::Unchanged { .. }));
        assert!(
            matches!(outcomes[NEW + 3], Upserted::Updated { .. }),
            "same key later in the batch"
        );
        let event_ids: Vec<i64> = outcomes
            .iter()
            .filter_map(|o| o.event().map(|(_, id)| id))
            .collect();
        assert!(
            event_ids.windows(2).all(|pair| pair[0] < pair[1]),
            "events in input order"
        );
        // The ids handed back are the stored events' and records' own (on
        // SQLite they are worked out rather than returned by the insert).
        let stored_events = store
            .events_after("check", 0, 10_000, usize::MAX)
            .await
            .unwrap()
            .events;
        let batch_events: Vec<&OutboxEvent> = stored_events.iter().skip(2).collect();
        assert_eq!(
            batch_events.iter().map(|e| e.id).collect::<Vec<_>>(),
            event_ids
        );
        let with_events: Vec<(&Upserted, &Record)> = outcomes
            .iter()
            .zip(&batch)
            .filter(|(o, _)| o.event().is_some())
            .collect();
        for (event, (outcome, record)) in batch_events.iter().zip(with_events) {
            assert_eq!(event.record_id, outcome.record_id());
            assert_eq!(event.record.id, record.id);
            assert_eq!(event.record.payload, record.payload);
        }
        for (index, outcome) in outcomes[..NEW].iter().enumerate() {
            let stored = store
                .get_record(outcome.record_id())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored.record.id, format!("n{index}"));
        }
        let c = store
            .get_record(outcomes[NEW + 3].record_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.record.payload.to_value()["n"], 3);
        assert_eq!(store.count_records().await.unwrap(), NEW as i64 + 3);
        assert_eq!(store.count_events().await.unwrap(), (NEW as i64 + 3, 2));
    })
    .await;
}

#[tokio::test]
async fn the_outbox_feed_gives_what_the_table_holds() {
    on_both("outbox_feed", |store| async move {
        let reader = store.outbox_reader();
        // A time below the millisecond (the table keeps milliseconds), a
        // key, metadata: the feed's records must be the table's.
        let precise = |id: &str, n: i64| {
            let mut record = record(id, n);
            record.occurred_at = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789);
            record.idempotency_key = Some(format!("key-{id}"));
            record
        };
        // Returned ids (a few rows) and worked-out ids (many, on SQLite).
        let few: Vec<Record> = (0..3).map(|n| precise(&format!("f{n}"), n)).collect();
        let many: Vec<Record> = (0..100).map(|n| precise(&format!("m{n}"), n)).collect();
        for batch in [&few, &many] {
            let mut tx = store.begin().await.unwrap();
            tx.upsert_records("gen", batch).await.unwrap();
            tx.commit().await.unwrap();
        }
        // Rolled back: never reaches the feed.
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[precise("gone", 1)])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // Updates of stored records, through the group writer.
        let changed: Vec<Record> = (0..40).map(|n| precise(&format!("m{n}"), n + 1)).collect();
        store.write(UpsertJob(changed)).await.unwrap();

        let table = store
            .events_after("out", 0, 10_000, usize::MAX)
            .await
            .unwrap()
            .events;
        assert_eq!(table.len(), 143);
        let mut fed = Vec::new();
        let mut position = 0;
        while let Some(next) = table.iter().find(|event| event.id > position) {
            match reader.events_after(position, 10_000, usize::MAX) {
                Some(run) => {
                    position = run.events.last().unwrap().id;
                    fed.extend(run.events);
                }
                None => {
                    // Only an id no committed event has (PostgreSQL's
                    // sequence moves on in a rolled-back transaction).
                    assert_eq!(store.backend(), Backend::Postgres);
                    assert!(next.id > position + 1, "event {} was not fed", next.id);
                    position = next.id - 1;
                }
            }
        }
        assert_eq!(fed, table);
        assert!(fed.iter().any(|event| event.kind == EventKind::Updated));
        assert_eq!(reader.events_after(position, 10, usize::MAX), None);
    })
    .await;
}

/// Upserts its records in the group writer's transaction.
struct UpsertJob(Vec<Record>);

impl WriteJob for UpsertJob {
    type Output = ();

    fn run<'a>(
        &'a self,
        tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            tx.upsert_records("gen", &self.0).await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn idempotency_key_deduplicates_and_sources_are_separate() {
    on_both("idempotency", |store| async move {
        let mut keyed = record("a", 1);
        keyed.idempotency_key = Some("key-1".to_owned());
        let mut same_key = record("b", 1);
        same_key.idempotency_key = Some("key-1".to_owned());
        let mut other_source = record("a", 1);
        other_source.source = "elsewhere".to_owned();
        let mut tx = store.begin().await.unwrap();
        let outcomes = tx
            .upsert_records("gen", &[keyed, same_key, other_source])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(matches!(outcomes[0], Upserted::Created { .. }));
        assert!(
            matches!(outcomes[1], Upserted::Unchanged { .. }),
            "same key and content, only the id differs"
        );
        assert!(matches!(outcomes[2], Upserted::Created { .. }));
        assert_eq!(store.count_records().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing() {
    on_both("rollback", |store| async move {
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[record("1", 1)]).await.unwrap();
        tx.save_checkpoint("gen", b"7").await.unwrap();
        drop(tx);
        assert_eq!(store.count_records().await.unwrap(), 0);
        assert_eq!(store.checkpoint("gen").await.unwrap(), None);
        assert_eq!(store.last_event_id().await.unwrap(), 0);

        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[record("1", 1)]).await.unwrap();
        tx.save_checkpoint("gen", b"7").await.unwrap();
        tx.save_checkpoint("gen", b"\x00\xff8").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.checkpoint("gen").await.unwrap(),
            Some(b"\x00\xff8".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn records_are_listed_with_filters_and_cursors() {
    on_both("list", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let mut records: Vec<Record> = (0..5).map(|n| record(&n.to_string(), n)).collect();
        records[4].record_type = "other".to_owned();
        tx.upsert_records("gen", &records).await.unwrap();
        tx.commit().await.unwrap();

        let all = RecordFilter::default();
        let page = store.list_records(&all, 0, 2, usize::MAX).await.unwrap();
        assert_eq!(page.records.len(), 2);
        let next = page.next_after.unwrap();
        let page2 = store.list_records(&all, next, 2, usize::MAX).await.unwrap();
        let page3 = store
            .list_records(&all, page2.next_after.unwrap(), 2, usize::MAX)
            .await
            .unwrap();
        assert_eq!(page3.records.len(), 1);
        assert_eq!(page3.next_after, None);

        let newest = RecordFilter {
            newest_first: true,
            ..RecordFilter::default()
        };
        let page = store.list_records(&newest, 0, 3, usize::MAX).await.unwrap();
        let ids: Vec<&str> = page.records.iter().map(|r| r.record.id.as_str()).collect();
        assert_eq!(ids, ["4", "3", "2"]);
        let page = store
            .list_records(&newest, page.next_after.unwrap(), 3, usize::MAX)
            .await
            .unwrap();
        let ids: Vec<&str> = page.records.iter().map(|r| r.record.id.as_str()).collect();
        assert_eq!(ids, ["1", "0"]);
        assert_eq!(page.next_after, None);

        let typed = RecordFilter {
            record_type: Some("other".to_owned()),
            ..RecordFilter::default()
        };
        let page = store.list_records(&typed, 0, 10, usize::MAX).await.unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].record.id, "4");

        let none = RecordFilter {
            source: Some("nope".to_owned()),
            since: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
            ..RecordFilter::default()
        };
        assert!(
            store
                .list_records(&none, 0, 10, usize::MAX)
                .await
                .unwrap()
                .records
                .is_empty()
        );
        let future = RecordFilter {
            until: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
            ..RecordFilter::default()
        };
        assert!(
            store
                .list_records(&future, 0, 10, usize::MAX)
                .await
                .unwrap()
                .records
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn output_progress_and_replays_are_durable() {
    on_both("progress", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let records: Vec<Record> = (0..4).map(|n| record(&n.to_string(), n)).collect();
        tx.upsert_records("gen", &records).await.unwrap();
        tx.commit().await.unwrap();
        let events = store
            .events_after("out", 0, 100, usize::MAX)
            .await
            .unwrap()
            .events;
        assert_eq!(events.len(), 4);
        assert_eq!(store.output_position("out").await.unwrap(), 0);

        let mut tx = store.begin().await.unwrap();
        tx.set_position("out", events[0].id).await.unwrap();
        tx.mark_done("out", &[events[2].id]).await.unwrap();
        tx.commit().await.unwrap();
        let position = store.output_position("out").await.unwrap();
        assert_eq!(position, events[0].id);
        let left: Vec<i64> = store
            .events_after("out", position, 100, usize::MAX)
            .await
            .unwrap()
            .events
            .iter()
            .map(|event| event.id)
            .collect();
        assert_eq!(left, [events[1].id, events[3].id]);
        assert_eq!(
            store
                .events_after("other", 0, 100, usize::MAX)
                .await
                .unwrap()
                .events
                .len(),
            4
        );
        assert!(store.output_has_marks("out").await.unwrap());
        assert!(!store.output_has_marks("other").await.unwrap());
        // Only moving the position (for a caller that knows of no marks)
        // keeps them.
        let mut tx = store.begin().await.unwrap();
        tx.move_position("out", events[2].id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.output_position("out").await.unwrap(), events[2].id);
        assert!(store.output_has_marks("out").await.unwrap());
        // A position past the marks forgets them.
        let mut tx = store.begin().await.unwrap();
        tx.set_position("out", events[2].id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(!store.output_has_marks("out").await.unwrap());

        let mut tx = store.begin().await.unwrap();
        tx.enqueue_replay("out", events[0].id).await.unwrap();
        tx.commit().await.unwrap();
        let replays = store.pending_replays("out", 10, usize::MAX).await.unwrap();
        assert_eq!(replays.len(), 1);
        assert_eq!(replays[0].id, events[0].id);
        let mut tx = store.begin().await.unwrap();
        tx.finish_replay("out", events[0].id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            store
                .pending_replays("out", 10, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn the_outbox_keeps_what_an_output_or_a_dead_letter_still_needs() {
    on_both("prune", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let records: Vec<Record> = (0..5).map(|n| record(&n.to_string(), n)).collect();
        tx.upsert_records("gen", &records).await.unwrap();
        tx.commit().await.unwrap();
        let ids: Vec<i64> = store
            .events_after("a", 0, 10, usize::MAX)
            .await
            .unwrap()
            .events
            .iter()
            .map(|event| event.id)
            .collect();
        let mut tx = store.begin().await.unwrap();
        tx.set_position("a", ids[3]).await.unwrap();
        tx.set_position("b", ids[2]).await.unwrap();
        let letter = NewDeadLetter {
            plugin: "b".to_owned(),
            stage: Stage::Output,
            record: record("0", 0),
            event: Some((ids[0], EventKind::Created)),
            error: "no".to_owned(),
            attempts: 1,
            first_failed_at: chrono::Utc::now(),
        };
        tx.add_dead_letter(&letter).await.unwrap();
        tx.commit().await.unwrap();
        let outputs = ["a".to_owned(), "b".to_owned()];
        assert_eq!(store.prune_outbox(&outputs).await.unwrap(), 2);
        assert!(
            store.event(ids[0]).await.unwrap().is_some(),
            "a dead letter needs it"
        );
        assert!(store.event(ids[1]).await.unwrap().is_none());
        assert!(
            store.event(ids[3]).await.unwrap().is_some(),
            "output b has not finished it"
        );
        assert_eq!(store.prune_outbox(&[]).await.unwrap(), 2);
        assert_eq!(store.count_events().await.unwrap(), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn dead_letters_are_listed_filtered_and_deleted() {
    on_both("dead_letters", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let letter = NewDeadLetter {
            plugin: "out".to_owned(),
            stage: Stage::Output,
            record: record("1", 1),
            event: Some((5, EventKind::Updated)),
            error: "refused".to_owned(),
            attempts: 3,
            first_failed_at: chrono::Utc::now(),
        };
        let id = tx.add_dead_letter(&letter).await.unwrap();
        let enrich = NewDeadLetter {
            plugin: "tagger".to_owned(),
            stage: Stage::Enrich,
            event: None,
            ..letter.clone()
        };
        tx.add_dead_letter(&enrich).await.unwrap();
        tx.commit().await.unwrap();

        let stored = store.dead_letter(id).await.unwrap().unwrap();
        assert_eq!(stored.event, Some((5, EventKind::Updated)));
        assert_eq!(stored.attempts, 3);
        assert_eq!(stored.record, letter.record);
        let filter = DeadLetterFilter {
            stage: Some(Stage::Enrich),
            ..DeadLetterFilter::default()
        };
        let (letters, next) = store
            .list_dead_letters(&filter, 0, 10, usize::MAX)
            .await
            .unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].plugin, "tagger");
        assert_eq!(next, None);
        let (all, next) = store
            .list_dead_letters(&DeadLetterFilter::default(), 0, 1, usize::MAX)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert!(next.is_some());
        assert_eq!(store.count_dead_letters("out").await.unwrap(), 1);

        let mut tx = store.begin().await.unwrap();
        assert!(tx.delete_dead_letter(id).await.unwrap());
        assert!(!tx.delete_dead_letter(id).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(store.dead_letter(id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data_and_rejects_unknown_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::sqlite_url(dir.path());
    let store = Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_records("gen", &[record("1", 1)]).await.unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.count_records().await.unwrap(), 1);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    again.close().await;
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl)
    ));
}

#[tokio::test]
async fn commits_with_events_wake_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    let events = store.subscribe_events();
    let mut tx = store.begin().await.unwrap();
    tx.save_checkpoint("gen", b"1").await.unwrap();
    tx.commit().await.unwrap();
    assert!(!events.has_changed().unwrap(), "no event was written");
    let mut tx = store.begin().await.unwrap();
    tx.upsert_records("gen", &[record("1", 1)]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(events.has_changed().unwrap());
}

/// The kind of each outcome, for comparing upserts.
fn kinds(outcomes: &[Upserted]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Upserted::Created { .. } => "created",
            Upserted::Updated { .. } => "updated",
            Upserted::Unchanged { .. } => "unchanged",
        })
        .collect()
}

#[tokio::test]
async fn repeated_keys_in_one_upsert_match_upserting_one_at_a_time() {
    on_both("repeated_keys", |store| async move {
        let mut moved = record("a", 1);
        moved.metadata.insert("k".to_owned(), "w".to_owned());
        // Stored before: `b`. Then keys repeated with the same content,
        // with changed content, back to earlier content, and new keys
        // repeated.
        let sequence = [
            record("a", 1),
            record("a", 1),
            record("b", 2),
            record("a", 2),
            record("b", 1),
            record("a", 1),
            moved,
            record("c", 1),
            record("c", 1),
        ];
        let with_source = |source: &str| -> Vec<Record> {
            sequence
                .iter()
                .map(|record| Record {
                    source: source.to_owned(),
                    ..record.clone()
                })
                .collect()
        };
        let mut tx = store.begin().await.unwrap();
        for source in ["batched", "one-by-one"] {
            tx.upsert_records(
                "gen",
                &[Record {
                    source: source.to_owned(),
                    ..record("b", 1)
                }],
            )
            .await
            .unwrap();
        }
        let batched = tx
            .upsert_records("gen", &with_source("batched"))
            .await
            .unwrap();
        let mut one_by_one = Vec::new();
        for record in with_source("one-by-one") {
            one_by_one.extend(tx.upsert_records("gen", &[record]).await.unwrap());
        }
        tx.commit().await.unwrap();
        assert_eq!(
            kinds(&batched),
            [
                "created",
                "unchanged",
                "updated",
                "updated",
                "updated",
                "updated",
                "updated",
                "created",
                "unchanged"
            ]
        );
        assert_eq!(kinds(&batched), kinds(&one_by_one));
        // A key keeps its id across its records.
        assert_eq!(batched[0].record_id(), batched[6].record_id());
        assert_eq!(batched[7].record_id(), batched[8].record_id());
        // The stored rows end the same, versions included.
        for source in ["batched", "one-by-one"] {
            let filter = RecordFilter {
                source: Some(source.to_owned()),
                ..RecordFilter::default()
            };
            let mut stored = store
                .list_records(&filter, 0, 10, usize::MAX)
                .await
                .unwrap()
                .records;
            stored.sort_by(|x, y| x.record.id.cmp(&y.record.id));
            let summary: Vec<(String, i64, String, Option<String>)> = stored
                .iter()
                .map(|row| {
                    (
                        row.record.id.clone(),
                        row.version,
                        row.record.payload.as_str().to_owned(),
                        row.record.metadata.get("k").cloned(),
                    )
                })
                .collect();
            assert_eq!(
                summary,
                [
                    (
                        "a".to_owned(),
                        4,
                        record("a", 1).payload.as_str().to_owned(),
                        Some("w".to_owned())
                    ),
                    (
                        "b".to_owned(),
                        3,
                        record("b", 1).payload.as_str().to_owned(),
                        Some("v".to_owned())
                    ),
                    (
                        "c".to_owned(),
                        1,
                        record("c", 1).payload.as_str().to_owned(),
                        Some("v".to_owned())
                    ),
                ],
                "{source}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn one_records_many_events_in_one_upsert_keep_their_own_ids_and_snapshots() {
    on_both("events_of_one_record", |store| async move {
        // A few events (ids returned by the insert on either backend) and
        // more than SQLite returns as rows (ids worked out there): every
        // record is the same key, updated each time.
        for (source, count) in [("few", 5), ("many", 40)] {
            let batch: Vec<Record> = (0..count)
                .map(|n| Record {
                    source: source.to_owned(),
                    ..record("same", n)
                })
                .collect();
            let mut tx = store.begin().await.unwrap();
            let outcomes = tx.upsert_records("gen", &batch).await.unwrap();
            tx.commit().await.unwrap();
            let event_ids: Vec<i64> = outcomes
                .iter()
                .map(|outcome| outcome.event().map(|(_, id)| id).unwrap())
                .collect();
            assert!(
                event_ids.windows(2).all(|pair| pair[0] < pair[1]),
                "{source}: one event per record, in input order: {event_ids:?}"
            );
            let stored: Vec<OutboxEvent> = store
                .events_after("check", 0, 10_000, usize::MAX)
                .await
                .unwrap()
                .events
                .into_iter()
                .filter(|event| event.record.source == source)
                .collect();
            assert_eq!(
                stored.iter().map(|event| event.id).collect::<Vec<_>>(),
                event_ids,
                "{source}"
            );
            for (event, record) in stored.iter().zip(&batch) {
                assert_eq!(event.record.payload, record.payload, "{source}");
                assert_eq!(event.record_id, outcomes[0].record_id(), "{source}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn many_lists_upserted_at_once_keep_their_own_outcomes_and_sources() {
    on_both("upsert_many", |store| async move {
        let first = [record("a", 1), record("b", 1)];
        let second = [record("a", 1)];
        let third = [record("a", 2)];
        let mut tx = store.begin().await.unwrap();
        let outcomes = tx
            .upsert_records_many(&[
                ("one", &first),
                ("two", &[]),
                ("two", &second),
                ("one", &third),
            ])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let outcomes: Vec<Vec<&str>> = outcomes.iter().map(|list| kinds(list)).collect();
        assert_eq!(
            outcomes,
            [
                vec!["created", "created"],
                vec![],
                vec!["created"],
                vec!["updated"]
            ]
        );
        assert_eq!(store.count_records().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn large_upserts_reuse_postgres_plans_and_plan_everything_else_afresh() {
    on_both("generic_plans", |store| async move {
        let batch = |first: i64, n: i64| -> Vec<Record> {
            (first..first + 100)
                .map(|key| record(&format!("k{key}"), n))
                .collect()
        };
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &batch(0, 1)).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        // Half of the first batch is stored already (the lookup of stored
        // keys runs between the two inserts), and the last one changes a
        // key twice (an update, and an event insert by position).
        let mut created = 0;
        let mut updated = 0;
        for round in 0..7 {
            let mut records = batch(50 + 100 * round, 2);
            if round == 6 {
                records.push(record("k650", 3));
            }
            for outcome in tx.upsert_records("gen", &records).await.unwrap() {
                match outcome.event() {
                    Some((EventKind::Created, _)) => created += 1,
                    Some((EventKind::Updated, _)) => updated += 1,
                    None => panic!("every record here is new or changed: {outcome:?}"),
                }
            }
        }
        assert_eq!((created, updated), (650, 51));
        if store.backend() == Backend::Postgres {
            // The statement after the upserts is planned for its parameters
            // again, as the hub's connections are set up to.
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
                .fetch_one(tx.conn())
                .await
                .unwrap();
            assert_eq!(mode, "force_custom_plan");
            // The seven 100-row inserts on this connection: the server
            // planned the first few and reused its plan for the rest.
            let generic: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(generic_plans), 0)::BIGINT FROM pg_prepared_statements \
                 WHERE statement LIKE 'INSERT INTO records %'",
            )
            .fetch_one(tx.conn())
            .await
            .unwrap();
            assert!(generic > 0, "no insert ran on a cached plan");
        }
        tx.commit().await.unwrap();
        assert_eq!(store.count_records().await.unwrap(), 750);
    })
    .await;
}

#[tokio::test]
async fn a_committed_replay_request_moves_the_replay_generation() {
    on_both("replay_generation", |store| async move {
        let mut tx = store.begin().await.unwrap();
        let outcome = tx.upsert_records("gen", &[record("a", 1)]).await.unwrap();
        tx.commit().await.unwrap();
        let (_, event_id) = outcome[0].event().unwrap();
        let before = store.replay_generation();
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_replay("out", event_id).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(store.replay_generation(), before, "rolled back");
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_replay("out", event_id).await.unwrap();
        assert_eq!(store.replay_generation(), before, "not committed yet");
        tx.commit().await.unwrap();
        assert_ne!(store.replay_generation(), before);
        assert_eq!(
            store
                .pending_replays("out", 10, 1 << 20)
                .await
                .unwrap()
                .len(),
            1
        );
    })
    .await;
}

/// A write job for the group-commit tests: a checkpoint row, or a
/// statement that fails (`Broken`), or a row that breaks a deferred
/// constraint, so the COMMIT fails (`FailsAtCommit`).
enum TestJob {
    Checkpoint(String),
    /// A checkpoint row holding `patient`, written by a patient job
    /// ([`WriteJob::patient`]).
    Patient(String),
    Broken,
    FailsAtCommit,
    /// A checkpoint row, weighing [`group::PACE_WEIGHT`].
    Heavy(String),
}

impl WriteJob for TestJob {
    type Output = String;

    fn patient(&self) -> bool {
        matches!(self, TestJob::Patient(_))
    }

    fn weight(&self) -> usize {
        match self {
            TestJob::Heavy(_) => group::PACE_WEIGHT,
            _ => 1,
        }
    }

    fn run<'a>(
        &'a self,
        tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            match self {
                TestJob::Checkpoint(name) | TestJob::Heavy(name) => {
                    tx.save_checkpoint(name, name.as_bytes()).await?;
                    Ok(name.clone())
                }
                TestJob::Patient(name) => {
                    tx.save_checkpoint(name, b"patient").await?;
                    Ok(name.clone())
                }
                TestJob::Broken => {
                    sqlx::query("INSERT INTO no_such_table (x) VALUES (1)")
                        .execute(tx.conn())
                        .await?;
                    Ok(String::new())
                }
                TestJob::FailsAtCommit => {
                    sqlx::query("INSERT INTO group_child (parent) VALUES (42)")
                        .execute(tx.conn())
                        .await?;
                    Ok(String::new())
                }
            }
        })
    }
}

/// A write job that keeps the writer inside its transaction until
/// `release` is dropped (or sent), after telling `running` that it runs:
/// whatever is queued meanwhile joins the gate's transaction, whole, once
/// the gate's run returns. `_alive` lives as long as the job's entry in
/// the writer, which ends when its transaction has committed (or failed).
struct Gate {
    running: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Held for its lifetime only: see [`Held::gate`].
    _alive: Arc<()>,
}

impl WriteJob for Gate {
    type Output = ();

    fn run<'a>(
        &'a self,
        _tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let running = self.running.lock().unwrap().take();
            if let Some(running) = running {
                let _ = running.send(());
            }
            let release = self.release.lock().unwrap().take();
            if let Some(release) = release {
                let _ = release.await;
            }
            Ok(())
        })
    }
}

/// The writer held up by a [`Gate`]: drop `release` to let it go on, and
/// wait for the gate's transaction with `committed`.
struct Held {
    release: tokio::sync::oneshot::Sender<()>,
    committed: super::group::Pending<()>,
    /// Alive until the gate's transaction is over.
    gate: std::sync::Weak<()>,
}

/// Holds the store's writer (on its own thread on SQLite) inside a gate's
/// transaction until the returned sender is dropped; wait for that
/// transaction with the returned [`Pending`].
async fn hold_writer(
    store: &Store,
) -> (tokio::sync::oneshot::Sender<()>, super::group::Pending<()>) {
    let held = hold_writer_watched(store).await;
    (held.release, held.committed)
}

/// [`hold_writer`], and a way to tell whether the gate's transaction is
/// still open.
async fn hold_writer_watched(store: &Store) -> Held {
    let (started, held) = submit_gate(store).await;
    started.await.unwrap();
    held
}

/// Queues a [`Gate`] and returns at once: the receiver hears when the gate
/// runs (it holds the writer from then on).
async fn submit_gate(store: &Store) -> (tokio::sync::oneshot::Receiver<()>, Held) {
    let (running, started) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel();
    let alive = Arc::new(());
    let gate = Arc::downgrade(&alive);
    let committed = store
        .submit(Gate {
            running: std::sync::Mutex::new(Some(running)),
            release: std::sync::Mutex::new(Some(released)),
            _alive: alive,
        })
        .await
        .unwrap();
    (
        started,
        Held {
            release,
            committed,
            gate,
        },
    )
}

/// A write that answers whether a gate's transaction was still open while
/// it ran (so that it ran inside that transaction: the writer runs one at
/// a time).
struct InsideGate {
    gate: std::sync::Weak<()>,
}

impl WriteJob for InsideGate {
    type Output = bool;

    fn run<'a>(
        &'a self,
        _tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.gate.strong_count() > 0) })
    }
}

/// Queues `jobs` while the writer is held up, so they land in one group
/// (which joins the gate's transaction).
async fn one_group<J: WriteJob>(store: &Store, jobs: Vec<J>) -> Vec<Result<J::Output, StoreError>> {
    let (release, gate) = hold_writer(store).await;
    let mut pending = Vec::new();
    for job in jobs {
        pending.push(store.submit(job).await.unwrap());
    }
    drop(release);
    // The jobs share the gate's commit: its result is theirs, which the
    // caller checks.
    let _ = gate.wait().await;
    let mut results = Vec::new();
    for pending in pending {
        results.push(pending.wait().await);
    }
    results
}

#[tokio::test]
async fn group_commit_answers_every_writer_after_the_commit() {
    on_both("group_commit_many", |store| async move {
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..200 {
            let store = store.clone();
            tasks.spawn(async move {
                let name = format!("input-{index}");
                let written = store.write(TestJob::Checkpoint(name.clone())).await;
                // Acknowledged means committed: visible to any reader now.
                assert_eq!(written.unwrap(), name);
                assert_eq!(
                    store.checkpoint(&name).await.unwrap(),
                    Some(name.into_bytes())
                );
            });
        }
        while let Some(task) = tasks.join_next().await {
            task.unwrap();
        }
        let results = one_group(
            &store,
            (0..50)
                .map(|index| TestJob::Checkpoint(format!("grouped-{index}")))
                .collect(),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    })
    .await;
}

#[tokio::test]
async fn a_failing_write_fails_alone_and_its_group_still_commits() {
    on_both("group_commit_isolation", |store| async move {
        let results = one_group(
            &store,
            vec![
                TestJob::Checkpoint("before".into()),
                TestJob::Broken,
                TestJob::Checkpoint("after".into()),
            ],
        )
        .await;
        assert_eq!(results[0].as_deref().unwrap(), "before");
        assert!(
            matches!(results[1], Err(StoreError::Database(_))),
            "{results:?}"
        );
        assert_eq!(results[2].as_deref().unwrap(), "after");
        for name in ["before", "after"] {
            assert!(store.checkpoint(name).await.unwrap().is_some(), "{name}");
        }
    })
    .await;
}

/// A grouped write job: a [`TestJob`] that runs with the jobs of its type
/// queued next to it, noting each group's size in `groups`.
struct GroupedJob {
    job: TestJob,
    groups: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl WriteJob for GroupedJob {
    type Output = String;

    fn run<'a>(
        &'a self,
        tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<String, StoreError>> {
        self.job.run(tx)
    }

    const GROUPED: bool = true;

    fn run_group<'a>(
        jobs: &'a [&'a Self],
        tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            if let Some(first) = jobs.first() {
                first.groups.lock().unwrap().push(jobs.len());
            }
            let mut outputs = Vec::new();
            for job in jobs {
                outputs.push(job.run(tx).await?);
            }
            Ok(outputs)
        })
    }
}

#[tokio::test]
async fn grouped_writes_run_together_and_a_failing_one_still_fails_alone() {
    on_both("group_commit_grouped", |store| async move {
        let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
        let grouped = |job| GroupedJob {
            job,
            groups: groups.clone(),
        };
        let results = one_group(
            &store,
            (0..5)
                .map(|index| grouped(TestJob::Checkpoint(format!("g{index}"))))
                .collect(),
        )
        .await;
        let names: Vec<String> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(names, ["g0", "g1", "g2", "g3", "g4"]);
        assert_eq!(*groups.lock().unwrap(), [5], "one group of five");
        for name in &names {
            assert!(store.checkpoint(name).await.unwrap().is_some(), "{name}");
        }

        groups.lock().unwrap().clear();
        let results = one_group(
            &store,
            vec![
                grouped(TestJob::Checkpoint("before".into())),
                grouped(TestJob::Broken),
                grouped(TestJob::Checkpoint("after".into())),
            ],
        )
        .await;
        assert_eq!(results[0].as_deref().unwrap(), "before");
        assert!(
            matches!(results[1], Err(StoreError::Database(_))),
            "{results:?}"
        );
        assert_eq!(results[2].as_deref().unwrap(), "after");
        assert_eq!(
            *groups.lock().unwrap(),
            [3],
            "tried as a group once, then one by one"
        );
        for name in ["before", "after"] {
            assert!(store.checkpoint(name).await.unwrap().is_some(), "{name}");
        }
    })
    .await;
}

#[tokio::test]
async fn grouped_writes_queued_between_others_still_run_as_one_group() {
    on_both("group_commit_gathered", |store| async move {
        let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
        let grouped = |job| GroupedJob {
            job,
            groups: groups.clone(),
        };
        // Queued while the writer is held up, so they land in one batch:
        // grouped, other, grouped, other, grouped.
        let (release, gate) = hold_writer(&store).await;
        let first = store
            .submit(grouped(TestJob::Checkpoint("g".into())))
            .await
            .unwrap();
        let other = store
            .submit(TestJob::Checkpoint("other".into()))
            .await
            .unwrap();
        let second = store
            .submit(grouped(TestJob::Checkpoint("g2".into())))
            .await
            .unwrap();
        let other_again = store
            .submit(TestJob::Patient("other".into()))
            .await
            .unwrap();
        let third = store
            .submit(grouped(TestJob::Patient("g".into())))
            .await
            .unwrap();
        drop(release);
        gate.wait().await.unwrap();
        assert_eq!(first.wait().await.unwrap(), "g");
        assert_eq!(other.wait().await.unwrap(), "other");
        assert_eq!(second.wait().await.unwrap(), "g2");
        assert_eq!(other_again.wait().await.unwrap(), "other");
        assert_eq!(third.wait().await.unwrap(), "g");
        assert_eq!(
            *groups.lock().unwrap(),
            [3],
            "the three grouped writes ran as one group"
        );
        // Each type's writes ran in the order they were queued: the later
        // write of a checkpoint is the one that stands.
        assert_eq!(
            store.checkpoint("g").await.unwrap(),
            Some(b"patient".to_vec())
        );
        assert_eq!(
            store.checkpoint("other").await.unwrap(),
            Some(b"patient".to_vec())
        );
        assert_eq!(store.checkpoint("g2").await.unwrap(), Some(b"g2".to_vec()));
    })
    .await;
}

#[tokio::test]
async fn writes_queued_while_a_transaction_runs_join_it_once() {
    on_both("group_commit_topped_up", |store| async move {
        // Queued while the first gate's transaction runs: they join it
        // before its commit, the second gate among them.
        let first = hold_writer_watched(&store).await;
        let joined = store
            .submit(InsideGate {
                gate: first.gate.clone(),
            })
            .await
            .unwrap();
        let (started, second) = submit_gate(&store).await;
        drop(first.release);
        started.await.unwrap();
        // Queued while the jobs that joined run: the transaction takes the
        // queue once, so this waits for the next one.
        let next = store
            .submit(InsideGate {
                gate: first.gate.clone(),
            })
            .await
            .unwrap();
        drop(second.release);
        first.committed.wait().await.unwrap();
        second.committed.wait().await.unwrap();
        assert!(
            joined.wait().await.unwrap(),
            "a write queued while the transaction ran committed with it"
        );
        assert!(
            !next.wait().await.unwrap(),
            "a write queued after the transaction took the queue waited for the next one"
        );
    })
    .await;
}

#[tokio::test]
async fn a_light_write_right_after_a_commit_waits_for_the_pace_until_company_outweighs_it() {
    on_both("group_commit_pace", |store| async move {
        store
            .write(TestJob::Checkpoint("first".into()))
            .await
            .unwrap();
        // Long enough that nothing else ends the wait but the weight.
        store.set_commit_pace(Duration::from_secs(600));
        let light = store
            .submit(TestJob::Checkpoint("light".into()))
            .await
            .unwrap();
        let mut light = std::pin::pin!(light.wait());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut light)
                .await
                .is_err(),
            "a light write right after a commit waits for the pace"
        );
        // A write that brings the batch to PACE_WEIGHT begins it at once,
        // the light write with it.
        let heavy = store.write(TestJob::Heavy("heavy".into()));
        let (light, heavy) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(light, heavy)
        })
        .await
        .expect("a batch of PACE_WEIGHT does not wait for the pace");
        assert_eq!(light.unwrap(), "light");
        assert_eq!(heavy.unwrap(), "heavy");
        store.set_commit_pace(group::PACE);
        assert_eq!(
            store.checkpoint("light").await.unwrap(),
            Some(b"light".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn a_patient_write_alone_waits_out_its_patience_then_commits() {
    on_both("group_commit_patient_alone", |store| async move {
        let started = tokio::time::Instant::now();
        let written = store.write(TestJob::Patient("alone".into())).await.unwrap();
        assert_eq!(written, "alone");
        // Nothing else came to share its commit: it waited, then committed
        // alone (acknowledged means visible).
        assert!(
            started.elapsed() >= group::PATIENCE,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            store.checkpoint("alone").await.unwrap(),
            Some(b"patient".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn a_patient_write_commits_with_the_writes_that_follow_and_keeps_its_order() {
    on_both("group_commit_patient_company", |store| async move {
        let patient = store
            .submit(TestJob::Patient("shared".into()))
            .await
            .unwrap();
        let broken = store.submit(TestJob::Broken).await.unwrap();
        let impatient = store
            .submit(TestJob::Checkpoint("shared".into()))
            .await
            .unwrap();
        assert_eq!(patient.wait().await.unwrap(), "shared");
        assert!(
            matches!(broken.wait().await, Err(StoreError::Database(_))),
            "a failing write still fails alone"
        );
        assert_eq!(impatient.wait().await.unwrap(), "shared");
        // Both committed, in the order they were queued: the later write of
        // the same checkpoint is the one that stands.
        assert_eq!(
            store.checkpoint("shared").await.unwrap(),
            Some(b"shared".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_commit_fails_every_writer_of_its_group() {
    on_both("group_commit_failure", |store| async move {
        let mut tx = store.begin().await.unwrap();
        for statement in [
            "CREATE TABLE group_parent (id BIGINT PRIMARY KEY)",
            "CREATE TABLE group_child (parent BIGINT REFERENCES group_parent (id) DEFERRABLE INITIALLY DEFERRED)",
        ] {
            sqlx::query(statement).execute(tx.conn()).await.unwrap();
        }
        tx.commit().await.unwrap();
        let results = one_group(
            &store,
            vec![
                TestJob::Checkpoint("first".into()),
                TestJob::FailsAtCommit,
                TestJob::Checkpoint("last".into()),
            ],
        )
        .await;
        assert!(
            results
                .iter()
                .all(|result| matches!(result, Err(StoreError::Batch(_)))),
            "{results:?}"
        );
        for name in ["first", "last"] {
            assert_eq!(store.checkpoint(name).await.unwrap(), None, "{name}");
        }
        // The writer goes on working.
        assert_eq!(
            store.write(TestJob::Checkpoint("later".into())).await.unwrap(),
            "later"
        );
    })
    .await;
}

/// A write job that answers the name of the thread it ran on, and that
/// thread's `/proc/self/task` entry.
struct WhereJob;

impl WriteJob for WhereJob {
    type Output = (Option<String>, std::path::PathBuf);

    fn run<'a>(
        &'a self,
        _tx: &'a mut StoreTx,
    ) -> futures_util::future::BoxFuture<'a, Result<Self::Output, StoreError>> {
        Box::pin(async {
            let name = std::thread::current().name().map(str::to_owned);
            // "/proc/thread-self" links to "PID/task/TID".
            let task = std::fs::read_link("/proc/thread-self").unwrap();
            Ok((name, std::path::Path::new("/proc").join(task)))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_run_on_the_stores_writer_thread_which_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    let (name, task) = store.write(WhereJob).await.unwrap();
    assert_eq!(name.as_deref(), Some(group::WRITER_THREAD));
    assert!(task.exists(), "{}", task.display());
    // Once every handle of the store is dropped, its writer thread ends.
    drop(store);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while task.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer thread {} is still there",
            task.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sqlite_write_transactions_keep_one_connection() {
    // A connection that did not make the last commit reads the pages it
    // touched again, so the writer keeps one of its own: a temporary table
    // (private to its connection) made in one transaction is there in the
    // next, even with reads using the other connections in between.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE writer_probe (n INTEGER)")
        .execute(tx.conn())
        .await
        .unwrap();
    let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(temp_store, 2, "statement journals stay in memory");
    tx.commit().await.unwrap();
    for round in 0..4 {
        let reads: Vec<_> = (0..4).map(|_| store.pool.acquire()).collect();
        let held = futures_util::future::try_join_all(reads).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let probes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'writer_probe'",
        )
        .fetch_one(tx.conn())
        .await
        .unwrap();
        assert_eq!(
            probes, 1,
            "round {round}: the write ran on another connection"
        );
        tx.commit().await.unwrap();
        drop(held);
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_writes_resume_after_a_commit_that_failed() {
    // On a full disk SQLite can fail a COMMIT after rolling the transaction
    // back by itself: sqlx still counts it open, the ROLLBACK that follows
    // fails too, and that connection then refuses every BEGIN. The writer
    // keeps one connection, so it must replace such a connection, or no
    // write would ever succeed again (the full-disk test in
    // hub/tests/store_faults.rs saw exactly that).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    for round in 0..2 {
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[record(&format!("lost-{round}"), 1)])
            .await
            .unwrap();
        // What SQLite does by itself when the disk is full.
        sqlx::query("ROLLBACK").execute(tx.conn()).await.unwrap();
        assert!(tx.commit().await.is_err(), "round {round}");
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records("gen", &[record(&format!("kept-{round}"), 1)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let page = store
        .list_records(&RecordFilter::default(), 0, 10, usize::MAX)
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .records
        .iter()
        .map(|record| record.record.id.as_str())
        .collect();
    assert_eq!(ids, ["kept-0", "kept-1"]);
    store.close().await;
}

#[tokio::test]
async fn sqlite_is_built_without_memory_statistics() {
    // .cargo/config.toml passes SQLITE_DEFAULT_MEMSTATUS=0 to the SQLite that
    // libsqlite3-sys builds: with the statistics on, every sqlite3_malloc
    // and sqlite3_free takes one process-wide mutex.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert!(
        options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
        "SQLite was built with memory statistics (LIBSQLITE3_FLAGS overridden, or .cargo/config.toml not read?): {options:?}"
    );
}

#[test]
fn placeholders_number_a_statements_parameters_and_rows() {
    for (backend, rows, numbered) in [
        (Backend::Sqlite, "(?, ?), (?, ?)", "(?, ?, 0), (?, ?, 1)"),
        (
            Backend::Postgres,
            "($1, $2), ($3, $4)",
            "($1, $2, 0), ($3, $4, 1)",
        ),
    ] {
        let mut sql = String::new();
        Placeholders::new(backend).push_rows(&mut sql, 2, 2);
        assert_eq!(sql, rows);
        let mut sql = String::new();
        Placeholders::new(backend).push_numbered_rows(&mut sql, 2, 2);
        assert_eq!(sql, numbered);
    }
}

//! One long-lived `Enrich` stream per plugin connection, for the
//! [`super::roles::RoleClient::enrich`] calls made on it one after another.
//!
//! The wire contract makes this possible: the hub tags each item with a
//! sequence number that is unique among the items in flight on the stream,
//! and the plugin answers each item once, in any order. Opening a stream per
//! call cost a request and a response HEADERS frame, a new server task in
//! the plugin and a trailers frame on every call.
//!
//! A call uses the connection's stream when no other call is using it, and
//! a stream of its own otherwise
//! ([`super::roles::RoleClient::enrich_on_own_stream`]). So calls made one
//! after another reuse one stream, and concurrent calls (the webhook
//! worker's deliveries, several pipelines) reach the plugin on streams of
//! their own, as they did before:
//! * a plugin that works through one stream's messages in turn (the Go SDK
//!   does) still handles concurrent calls in parallel;
//! * a plugin whose server gives each open stream a thread (Python's
//!   grpcio) has at most one more thread held between calls, beside the
//!   one the hub's log stream holds. A pool of long-lived streams could
//!   hold every thread of a small pool while the calls that need a thread
//!   wait on streams the plugin never serves.
//!
//! How a call goes:
//! * it takes the next free sequence numbers (a range no other call on the
//!   connection ever gets), registers the range with its own channel, then
//!   queues its request messages on the stream;
//! * then it waits for its answers, reading the stream itself and routing
//!   every result by sequence number (to itself, or to the entries an
//!   abandoned call left behind), each response's answers to one call in
//!   one message. There is no reader task, so the call is woken by the
//!   connection's thread directly, as a caller reading its own stream would
//!   be (a task in between cost one more wake-up per call, about as much as
//!   the stream setup this saves);
//! * a call whose future is dropped (a deadline) leaves its entries behind,
//!   so their late answers are read and dropped instead of breaking the
//!   stream; the response being read stays buffered for the next reader.
//!
//! Isolation: when the stream itself fails (a gRPC status, the plugin ending
//! it, an answer to a sequence number not in flight), every call still
//! waiting on it runs again on a stream of its own
//! ([`super::roles::RoleClient::enrich_on_own_stream`]) and returns what
//! that gives. So a status the plugin sends because of one call's records
//! (INVALID_ARGUMENT, which dead-letters) reaches that call alone, as it did
//! with a stream per call, and the next call opens a new shared stream. An
//! item answered with something that breaks the contract (no outcome, a bad
//! record) fails its own call only.
//!
//! Every request message is queued before the call waits, on an unbounded
//! channel: the call's records are already in memory, and HTTP/2 flow
//! control paces what is written to the socket.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::CallError;
use super::channel::MAX_MESSAGE_BYTES;
use super::roles::{enrich_outcome_from_pb, enrich_requests};
use crate::domain::{EnrichOutcome, Record};

/// Answers routed to a waiting call from one response: each record's index
/// in the call, and its outcome (or why that one answer breaks the
/// contract).
type Answers = Vec<(usize, Result<EnrichOutcome, CallError>)>;

/// The opening of a stream: resolves when the plugin sends its headers.
type Opening = BoxFuture<
    'static,
    Result<tonic::Response<tonic::Streaming<pb::EnrichResponse>>, tonic::Status>,
>;

/// The shared stream of one connection, opened by the first call and again
/// after it fails.
pub(super) struct SharedEnrich {
    channel: Channel,
    /// The stream, once opened.
    stream: Mutex<Option<Arc<Live>>>,
    /// The next sequence number to hand out (never reused on a connection).
    next_sequence: AtomicU64,
}

impl std::fmt::Debug for SharedEnrich {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEnrich")
            .field("next_sequence", &self.next_sequence)
            .finish_non_exhaustive()
    }
}

/// One stream: where to queue requests, its response side, and the answers
/// it waits for.
struct Live {
    requests: mpsc::UnboundedSender<pb::EnrichRequest>,
    /// The response side, read by the one call using the stream (the lock
    /// is never contended: [`Live::in_use`] admits one call at a time; it
    /// lets that call mutate the reader through the shared `Live`).
    reader: tokio::sync::Mutex<Reader>,
    waiting: Mutex<Waiting>,
    /// Whether a call is using it now.
    in_use: AtomicBool,
}

/// The response side of a stream.
enum Reader {
    /// Waiting for the plugin's headers (polled by whichever call reads).
    Opening(Opening),
    /// Open: results to route.
    Open(Box<tonic::Streaming<pb::EnrichResponse>>),
    /// Ended; its waiting calls were sent off to streams of their own.
    Ended,
}

/// One call's use of a stream; ends it when dropped (a call that finished,
/// or whose future was dropped).
struct InUse(Arc<Live>);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.in_use.store(false, Ordering::Release);
    }
}

/// The calls waiting for answers on one stream.
///
/// A call registers its records as one range of sequence numbers, so routing
/// an answer is a range check on the few calls registered (the one using the
/// stream, and any abandoned ones with late answers to come), not a map
/// entry and a channel handle per record.
#[derive(Default)]
struct Waiting {
    /// The calls with answers still to come, in the order they registered.
    calls: Vec<Registered>,
    /// Set once the stream has ended: nothing more can be registered.
    ended: bool,
}

/// One call's records on a stream: sequence numbers `first..first + n`,
/// record `i` of the call being `first + i`.
struct Registered {
    first: u64,
    /// Whether each of the call's records has been answered.
    answered: Vec<bool>,
    /// How many are not answered yet: the call is unregistered at 0.
    outstanding: usize,
    /// Where its answers go (closed if the call was abandoned).
    answers: mpsc::UnboundedSender<Answers>,
}

impl Registered {
    /// The index in the call of the record `sequence` stands for, if it is
    /// one of this call's.
    fn index_of(&self, sequence: u64) -> Option<usize> {
        let index = usize::try_from(sequence.checked_sub(self.first)?).ok()?;
        (index < self.answered.len()).then_some(index)
    }
}

/// What happened to a call on the shared stream.
enum SharedOutcome {
    /// Every record was answered.
    Answered(Vec<EnrichOutcome>),
    /// One answer broke the contract: the call's error.
    Failed(CallError),
    /// The stream ended before every record was answered.
    StreamEnded,
}

impl SharedEnrich {
    /// A shared stream over `channel`, opened by the first call.
    pub(super) fn new(channel: Channel) -> Self {
        SharedEnrich {
            channel,
            stream: Mutex::new(None),
            next_sequence: AtomicU64::new(0),
        }
    }

    /// Enriches `records` (not empty) on the shared stream. `None`: another
    /// call is using it, or it ended before every record was answered; the
    /// caller runs the call on a stream of its own.
    pub(super) async fn enrich(
        &self,
        records: &[Record],
    ) -> Option<Result<Vec<EnrichOutcome>, CallError>> {
        let count = records.len();
        let first = self
            .next_sequence
            .fetch_add(count as u64, Ordering::Relaxed);
        let (answers, receiver) = mpsc::unbounded_channel();
        let live = self.register(first, count, &answers)?;
        drop(answers);
        for request in enrich_requests(records, first) {
            if live.0.requests.send(request).is_err() {
                // The request side is gone (the stream was dropped): the
                // next read ends the stream and this call runs again.
                break;
            }
        }
        match collect(&live.0, receiver, count).await {
            SharedOutcome::Answered(outcomes) => Some(Ok(outcomes)),
            SharedOutcome::Failed(err) => Some(Err(err)),
            SharedOutcome::StreamEnded => None,
        }
    }

    /// Registers sequence numbers `first..first + count` on the shared
    /// stream, all answered on `answers`, if no other call is using it
    /// (opening it if it is not open, or has ended).
    fn register(
        &self,
        first: u64,
        count: usize,
        answers: &mpsc::UnboundedSender<Answers>,
    ) -> Option<InUse> {
        let live = self.claim()?;
        let mut waiting = lock(&live.0.waiting);
        if waiting.ended {
            return None;
        }
        waiting.calls.push(Registered {
            first,
            answered: vec![false; count],
            outstanding: count,
            answers: answers.clone(),
        });
        drop(waiting);
        Some(live)
    }

    /// The shared stream for one call, or `None` while another call uses
    /// it. A stream that has ended is replaced by a new one.
    fn claim(&self) -> Option<InUse> {
        let mut slot = self
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.as_ref().is_some_and(|live| lock(&live.waiting).ended) {
            *slot = None;
        }
        let live = slot.get_or_insert_with(|| self.open_stream()).clone();
        drop(slot);
        live.in_use
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(InUse(live))
    }

    /// Starts opening a stream; its first reader completes the opening.
    fn open_stream(&self) -> Arc<Live> {
        let (requests, receiver) = mpsc::unbounded_channel();
        let mut client = pb::enricher_client::EnricherClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let opening: Opening =
            Box::pin(async move { client.enrich(UnboundedReceiverStream::new(receiver)).await });
        Arc::new(Live {
            requests,
            reader: tokio::sync::Mutex::new(Reader::Opening(opening)),
            waiting: Mutex::new(Waiting::default()),
            in_use: AtomicBool::new(false),
        })
    }
}

/// Waits for the `count` answers of one call, reading the stream itself:
/// only this call routes answers while it holds the stream, so whatever
/// is not in `receiver` yet is still to be read.
async fn collect(
    live: &Live,
    mut receiver: mpsc::UnboundedReceiver<Answers>,
    count: usize,
) -> SharedOutcome {
    let mut reader = live.reader.lock().await;
    let mut outcomes: Vec<Option<EnrichOutcome>> = vec![None; count];
    let mut answered = 0;
    while answered < count {
        let answers = match receiver.try_recv() {
            Ok(answer) => answer,
            Err(mpsc::error::TryRecvError::Empty) => {
                read_once(&mut reader, &live.waiting).await;
                continue;
            }
            // The stream ended: its entries, and with them this call's
            // senders, were dropped.
            Err(mpsc::error::TryRecvError::Disconnected) => return SharedOutcome::StreamEnded,
        };
        for (index, answer) in answers {
            match answer {
                Ok(outcome) => {
                    if let Some(slot) = outcomes.get_mut(index) {
                        *slot = Some(outcome);
                    }
                    answered += 1;
                }
                Err(err) => return SharedOutcome::Failed(err),
            }
        }
    }
    SharedOutcome::Answered(outcomes.into_iter().flatten().collect())
}

/// Reads the stream's next response and routes its results (completing
/// the opening first, if need be). When the stream ends or breaks the
/// contract, ends it: every waiting call is sent off to a stream of its own.
/// Cancel-safe: a dropped read leaves the opening or the response buffered
/// in `reader` for the next one.
async fn read_once(reader: &mut Reader, waiting: &Mutex<Waiting>) {
    loop {
        let ended = match reader {
            Reader::Ended => return,
            Reader::Opening(opening) => match opening.as_mut().await {
                Ok(response) => {
                    *reader = Reader::Open(Box::new(response.into_inner()));
                    continue;
                }
                Err(status) => format!("the stream could not be opened: {status}"),
            },
            Reader::Open(stream) => match stream.message().await {
                Ok(Some(response)) => match route(response, waiting) {
                    Ok(()) => return,
                    Err(reason) => reason,
                },
                Ok(None) => "the plugin ended the stream".to_owned(),
                Err(status) => format!("the stream failed: {status}"),
            },
        };
        *reader = Reader::Ended;
        let mut waiting = lock(waiting);
        waiting.ended = true;
        let stranded: usize = waiting.calls.iter().map(|call| call.outstanding).sum();
        waiting.calls.clear();
        drop(waiting);
        if stranded > 0 {
            tracing::debug!(
                items = stranded,
                reason = %ended,
                "A shared Enrich stream ended with items in flight; their calls run again on streams of their own."
            );
        }
        return;
    }
}

/// Routes one response's results to their calls, each call's in one
/// message; `Err` says why the response breaks the stream's contract (the
/// results before the one that broke it are routed).
///
/// The results are matched and marked under the lock, and converted after
/// it: other calls take the lock to see whether the stream has ended.
fn route(response: pb::EnrichResponse, waiting: &Mutex<Waiting>) -> Result<(), String> {
    /// A call this response answers.
    struct Answered {
        /// The call's first sequence number: which call it is.
        first: u64,
        answers: mpsc::UnboundedSender<Answers>,
        /// How many of its records this response answers.
        count: usize,
    }
    // The calls answered, and for each result in turn its call's place in
    // that list and the record's index in the call.
    let mut calls: Vec<Answered> = Vec::new();
    let mut targets: Vec<(usize, usize)> = Vec::with_capacity(response.results.len());
    let mut broken = None;
    let mut guard = lock(waiting);
    for result in &response.results {
        let sequence = result.sequence;
        let found = guard.calls.iter_mut().rev().find_map(|call| {
            let index = call.index_of(sequence)?;
            Some((call, index))
        });
        let Some((call, index)) = found.filter(|(call, index)| !call.answered[*index]) else {
            broken = Some(format!(
                "the plugin answered sequence number {sequence}, which is not in flight (unknown, or answered twice)"
            ));
            break;
        };
        call.answered[index] = true;
        call.outstanding -= 1;
        let place = match calls
            .iter()
            .position(|answered| answered.first == call.first)
        {
            Some(place) => place,
            None => {
                calls.push(Answered {
                    first: call.first,
                    answers: call.answers.clone(),
                    count: 0,
                });
                calls.len() - 1
            }
        };
        calls[place].count += 1;
        targets.push((place, index));
    }
    guard.calls.retain(|call| call.outstanding > 0);
    drop(guard);
    let mut batches: Vec<Answers> = calls
        .iter()
        .map(|answered| Vec::with_capacity(answered.count))
        .collect();
    // `zip` stops at the result that broke the contract, if one did.
    for (result, (place, index)) in response.results.into_iter().zip(targets) {
        batches[place].push((index, enrich_outcome_from_pb(result)));
    }
    for (answered, batch) in calls.into_iter().zip(batches) {
        // The call may be gone (its deadline passed): the answers are dropped.
        let _ = answered.answers.send(batch);
    }
    broken.map_or(Ok(()), Err)
}

/// Locks the waiting calls; nothing that can panic runs between the steps
/// of a change to them (a call registered, an answer's flag and count, the
/// answered calls removed), so a lock poisoned by a panic elsewhere is used
/// as it is.
fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use switchyard_wire::pb::v1 as pb;
    use tokio_stream::{Stream, StreamExt as _};
    use tonic::{Request, Response, Status, Streaming};

    use super::super::roles::RoleClient;
    use super::*;

    /// An enricher that tags each record, answers each request message in
    /// reverse order, and counts the streams opened on it. A record whose
    /// id is `reject` makes it fail the whole stream with INVALID_ARGUMENT;
    /// `flaky` makes it fail the stream with UNAVAILABLE the first time
    /// only; one whose id is `slow` is answered after 300 ms.
    #[derive(Clone, Default)]
    struct Tagger {
        streams: Arc<AtomicUsize>,
        flaked: Arc<std::sync::atomic::AtomicBool>,
    }

    type Answers = Pin<Box<dyn Stream<Item = Result<pb::EnrichResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl pb::enricher_server::Enricher for Tagger {
        type EnrichStream = Answers;

        async fn enrich(
            &self,
            request: Request<Streaming<pb::EnrichRequest>>,
        ) -> Result<Response<Answers>, Status> {
            self.streams.fetch_add(1, Ordering::SeqCst);
            let flaked = self.flaked.clone();
            let answers = request.into_inner().then(move |message| {
                let flaked = flaked.clone();
                async move {
                    let items = message?.items;
                    let ids: Vec<&str> = items
                        .iter()
                        .filter_map(|item| item.record.as_ref().map(|record| record.id.as_str()))
                        .collect();
                    if ids.contains(&"reject") {
                        return Err(Status::invalid_argument("record reject is not welcome"));
                    }
                    if ids.contains(&"flaky") && !flaked.swap(true, Ordering::SeqCst) {
                        return Err(Status::unavailable("not now"));
                    }
                    if ids.contains(&"slow") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let results = items
                        .into_iter()
                        .rev()
                        .map(|item| {
                            let mut record = item.record.unwrap_or_default();
                            record.metadata.insert("tag".to_owned(), "yes".to_owned());
                            pb::EnrichResult {
                                sequence: item.sequence,
                                outcome: Some(pb::enrich_result::Outcome::Record(record)),
                            }
                        })
                        .collect();
                    Ok(pb::EnrichResponse { results })
                }
            });
            Ok(Response::new(Box::pin(answers)))
        }
    }

    async fn serve(tagger: Tagger) -> RoleClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::enricher_server::EnricherServer::new(tagger))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        RoleClient::new(channel)
    }

    fn records(ids: &[&str]) -> Vec<Record> {
        ids.iter()
            .map(|id| Record {
                id: (*id).to_owned(),
                source: "test".to_owned(),
                record_type: "t".to_owned(),
                occurred_at: None,
                payload: serde_json::json!({ "id": id }).into(),
                metadata: BTreeMap::new(),
                idempotency_key: None,
            })
            .collect()
    }

    fn enriched_ids(outcomes: &[EnrichOutcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                EnrichOutcome::Enriched(record) => {
                    assert_eq!(record.metadata.get("tag").map(String::as_str), Some("yes"));
                    record.id.clone()
                }
                EnrichOutcome::Failed(failure) => panic!("failed: {}", failure.message),
            })
            .collect()
    }

    /// A result enriching a record whose id names `sequence`.
    fn result(sequence: u64) -> pb::EnrichResult {
        pb::EnrichResult {
            sequence,
            outcome: Some(pb::enrich_result::Outcome::Record(pb::Record {
                id: format!("s{sequence}"),
                source: "test".to_owned(),
                r#type: "t".to_owned(),
                ..Default::default()
            })),
        }
    }

    /// Registers a call for sequence numbers `first..first + count`.
    fn register(
        waiting: &Mutex<Waiting>,
        first: u64,
        count: usize,
    ) -> mpsc::UnboundedReceiver<super::Answers> {
        let (answers, receiver) = mpsc::unbounded_channel();
        lock(waiting).calls.push(Registered {
            first,
            answered: vec![false; count],
            outstanding: count,
            answers,
        });
        receiver
    }

    /// What `receiver` holds: per message, each answer's index and id.
    fn received(
        receiver: &mut mpsc::UnboundedReceiver<super::Answers>,
    ) -> Vec<Vec<(usize, String)>> {
        let mut messages = Vec::new();
        while let Ok(answers) = receiver.try_recv() {
            messages.push(
                answers
                    .into_iter()
                    .map(|(index, answer)| match answer.unwrap() {
                        EnrichOutcome::Enriched(record) => (index, record.id),
                        EnrichOutcome::Failed(failure) => panic!("failed: {}", failure.message),
                    })
                    .collect(),
            );
        }
        messages
    }

    #[test]
    fn a_response_reaches_each_call_in_one_message_and_answered_calls_leave() {
        let waiting = Mutex::new(Waiting::default());
        let mut abandoned = register(&waiting, 10, 2);
        let mut current = register(&waiting, 12, 3);
        // Answers to both calls, in any order, in one response.
        let response = pb::EnrichResponse {
            results: vec![result(14), result(10), result(12), result(11)],
        };
        route(response, &waiting).unwrap();
        assert_eq!(
            received(&mut abandoned),
            [vec![(0, "s10".to_owned()), (1, "s11".to_owned())]]
        );
        assert_eq!(
            received(&mut current),
            [vec![(2, "s14".to_owned()), (0, "s12".to_owned())]]
        );
        // The first call is fully answered: it is no longer registered, and
        // its channel is closed.
        let calls: Vec<(u64, usize)> = lock(&waiting)
            .calls
            .iter()
            .map(|call| (call.first, call.outstanding))
            .collect();
        assert_eq!(calls, [(12, 1)]);
        assert!(matches!(
            abandoned.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        // An abandoned call's late answers are taken and dropped.
        drop(current);
        route(
            pb::EnrichResponse {
                results: vec![result(13)],
            },
            &waiting,
        )
        .unwrap();
        assert!(lock(&waiting).calls.is_empty());
    }

    #[test]
    fn an_answer_to_a_sequence_number_not_in_flight_breaks_the_stream() {
        let waiting = Mutex::new(Waiting::default());
        let mut call = register(&waiting, 0, 3);
        // Answered twice: the results before the second answer are routed.
        let twice = pb::EnrichResponse {
            results: vec![result(1), result(0), result(1), result(2)],
        };
        let error = route(twice, &waiting).unwrap_err();
        assert!(error.contains("sequence number 1"), "{error}");
        assert_eq!(
            received(&mut call),
            [vec![(1, "s1".to_owned()), (0, "s0".to_owned())]]
        );
        // Unknown: past the call's range, and before it.
        for sequence in [3, u64::MAX] {
            let unknown = pb::EnrichResponse {
                results: vec![result(sequence)],
            };
            let error = route(unknown, &waiting).unwrap_err();
            assert!(
                error.contains(&format!("sequence number {sequence}")),
                "{error}"
            );
        }
        let late = register(&waiting, 100, 1);
        drop(late);
        let before = pb::EnrichResponse {
            results: vec![result(99)],
        };
        assert!(route(before, &waiting).is_err());
        assert!(received(&mut call).is_empty());
    }

    #[tokio::test]
    async fn calls_reuse_one_stream_and_get_their_own_answers_in_input_order() {
        let tagger = Tagger::default();
        let roles = serve(tagger.clone()).await;
        for round in 0..3 {
            let ids: Vec<String> = (0..100).map(|n| format!("r{round}-{n}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let outcomes = roles.enrich(&records(&ids)).await.unwrap();
            assert_eq!(enriched_ids(&outcomes), ids);
        }
        let calls = (0..16).map(|call| {
            let roles = roles.clone();
            tokio::spawn(async move {
                let ids: Vec<String> = (0..(call * 7 + 1))
                    .map(|n| format!("c{call}-{n}"))
                    .collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let outcomes = roles.enrich(&records(&ids)).await.unwrap();
                assert_eq!(enriched_ids(&outcomes), ids);
            })
        });
        assert_eq!(
            tagger.streams.load(Ordering::SeqCst),
            1,
            "calls one after another reuse one stream"
        );
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap();
        }
        // Concurrent calls use the shared stream when it is free and a
        // stream of their own when not.
        let streams = tagger.streams.load(Ordering::SeqCst);
        assert!((1..=17).contains(&streams), "{streams} streams");
    }

    #[tokio::test]
    async fn a_stream_failed_because_of_one_call_fails_that_call_alone() {
        let tagger = Tagger::default();
        let roles = serve(tagger.clone()).await;
        // A slow call is on the shared stream when another call, whose
        // record makes the plugin fail its stream, runs alongside.
        let slow = tokio::spawn({
            let roles = roles.clone();
            async move { roles.enrich(&records(&["slow", "s2"])).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rejected = roles.enrich(&records(&["a", "reject"])).await;
        assert_eq!(
            rejected,
            Err(CallError::Rejected(
                "record reject is not welcome".to_owned()
            ))
        );
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(enriched_ids(&slow), ["slow", "s2"]);
        // The next call opens a new shared stream.
        let after = roles.enrich(&records(&["b"])).await.unwrap();
        assert_eq!(enriched_ids(&after), ["b"]);
        // The rejected call ran on a stream of its own (the shared one was
        // busy), so the shared stream carried on.
        assert_eq!(tagger.streams.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_call_on_a_failed_shared_stream_runs_again_on_a_stream_of_its_own() {
        let tagger = Tagger::default();
        let roles = serve(tagger.clone()).await;
        // The plugin fails the shared stream once: the call is not failed
        // with that status but runs again, on a stream of its own.
        let outcomes = roles.enrich(&records(&["flaky", "f2"])).await.unwrap();
        assert_eq!(enriched_ids(&outcomes), ["flaky", "f2"]);
        assert_eq!(tagger.streams.load(Ordering::SeqCst), 2);
        // A status caused by the records themselves comes back from the
        // call's own stream too.
        let rejected = roles.enrich(&records(&["reject"])).await;
        assert_eq!(
            rejected,
            Err(CallError::Rejected(
                "record reject is not welcome".to_owned()
            ))
        );
        // Each failure ended the shared stream; the next call opens one.
        let outcomes = roles.enrich(&records(&["after"])).await.unwrap();
        assert_eq!(enriched_ids(&outcomes), ["after"]);
        assert_eq!(tagger.streams.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_abandoned_call_leaves_the_stream_usable() {
        let tagger = Tagger::default();
        let roles = serve(tagger.clone()).await;
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), roles.enrich(&records(&["slow"])))
                .await;
        assert!(abandoned.is_err(), "the slow call must time out");
        // Its late answer arrives while this call waits, and is dropped.
        let outcomes = roles.enrich(&records(&["x", "y"])).await.unwrap();
        assert_eq!(enriched_ids(&outcomes), ["x", "y"]);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let outcomes = roles.enrich(&records(&["z"])).await.unwrap();
        assert_eq!(enriched_ids(&outcomes), ["z"]);
        assert_eq!(tagger.streams.load(Ordering::SeqCst), 1);
    }
}

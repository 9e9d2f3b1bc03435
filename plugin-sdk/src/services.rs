//! The gRPC services a plugin serves, and the only SDK module that names `pb`
//! types: `switchyard.v1.Plugin` (metadata and configuration), the four role
//! services (driving the author's traits), go-plugin's Controller, Stdio and
//! Broker, and gRPC health.
//!
//! Streams (`Enrich`, `HandleEvent`) run one task per received batch, so
//! batches proceed in parallel on every worker thread; inside a batch every
//! item runs concurrently and results are sent as soon as they are ready,
//! coalesced into one response per wake-up.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use switchyard_wire::handshake::HEALTH_SERVICE_NAME;
use switchyard_wire::pb::plugin as gp;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::{Routes, RoutesBuilder};
use tonic::{Request, Response, Status, Streaming};

use crate::error::PluginError;
use crate::plugin::{Factory, Info, Plugin, RoleKind};
use crate::role::{Emitter, Enricher, Output, PollingInput, WebhookInput};
use crate::types::{
    EventKind, HttpReply, PollRequest, Record, RecordEvent, WebhookRequest, WebhookResponse,
};

/// The largest message accepted or sent (tonic's default decode limit is 4 MiB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How many received batches of one stream may be in progress at once.
const MAX_BATCHES_IN_FLIGHT: usize = 256;
/// Responses queued per stream before a batch task waits for the network.
const RESPONSE_BUFFER: usize = 256;

/// State shared by every service of one running plugin.
pub(crate) struct Shared<T> {
    info: Info,
    config_schema: String,
    roles: Vec<RoleKind>,
    factory: Factory<T>,
    instance: RwLock<Option<Arc<T>>>,
    configure_lock: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
}

impl<T> Shared<T> {
    /// The current role implementation, or FAILED_PRECONDITION before a successful Configure.
    fn instance(&self) -> Result<Arc<T>, Status> {
        self.instance
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "plugin {} is not configured: call Configure with a valid configuration first",
                    self.info.name
                ))
            })
    }

    fn set_instance(&self, instance: Option<Arc<T>>) {
        *self
            .instance
            .write()
            .unwrap_or_else(PoisonError::into_inner) = instance;
    }
}

/// Builds every service of `plugin` into one router. `shutdown` ends the
/// long-lived streams (and, through [`GrpcController`], is what Shutdown triggers).
pub(crate) async fn build_routes<T: Send + Sync + 'static>(
    plugin: Plugin<T>,
    shutdown: CancellationToken,
) -> Routes {
    let roles: Vec<RoleKind> = plugin.roles.iter().map(|(role, _)| *role).collect();
    let shared = Arc::new(Shared {
        info: plugin.info,
        config_schema: plugin.config_schema,
        roles,
        factory: plugin.factory,
        instance: RwLock::new(None),
        configure_lock: tokio::sync::Mutex::new(()),
        shutdown: shutdown.clone(),
    });
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status(HEALTH_SERVICE_NAME, tonic_health::ServingStatus::Serving)
        .await;

    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health)
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio {
            shutdown: shutdown.clone(),
        }))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker {
            shutdown,
        }))
        .add_service(
            pb::plugin_server::PluginServer::new(PluginService(Arc::clone(&shared)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    for (_, add) in &plugin.roles {
        add(&shared, &mut routes);
    }
    routes.routes()
}

// ---------------------------------------------------------------------------
// Conversions between pb and the author-facing types.

pub(crate) fn timestamp_from_pb(ts: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub(crate) fn timestamp_to_pb(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(|at| prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

pub(crate) fn record_from_pb(record: pb::Record) -> Record {
    Record {
        id: record.id,
        source: record.source,
        record_type: record.r#type,
        occurred_at: timestamp_from_pb(record.occurred_at),
        payload: record.payload,
        metadata: record.metadata,
        idempotency_key: record.idempotency_key,
    }
}

pub(crate) fn record_to_pb(record: Record) -> pb::Record {
    pb::Record {
        id: record.id,
        source: record.source,
        r#type: record.record_type,
        occurred_at: timestamp_to_pb(record.occurred_at),
        payload: record.payload,
        metadata: record.metadata,
        idempotency_key: record.idempotency_key,
    }
}

pub(crate) fn failure_to_pb(error: &PluginError) -> pb::Failure {
    pb::Failure {
        message: error.message().to_owned(),
        retryable: error.is_retryable(),
        retry_after: error
            .retry_after()
            .and_then(|after| prost_types::Duration::try_from(after).ok()),
        code: error.code().unwrap_or_default().to_owned(),
    }
}

pub(crate) fn failure_from_pb(failure: pb::Failure) -> PluginError {
    let mut error = if failure.retryable {
        PluginError::retryable(failure.message)
    } else {
        PluginError::permanent(failure.message)
    };
    if let Some(after) = failure
        .retry_after
        .and_then(|after| Duration::try_from(after).ok())
    {
        error = error.with_retry_after(after);
    }
    if !failure.code.is_empty() {
        error = error.with_code(failure.code);
    }
    error
}

pub(crate) fn event_kind_to_pb(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Updated => pb::EventKind::Updated,
    }
}

fn headers_from_pb(headers: Vec<pb::Header>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect()
}

pub(crate) fn headers_to_pb(headers: Vec<(String, String)>) -> Vec<pb::Header> {
    headers
        .into_iter()
        .map(|(name, value)| pb::Header { name, value })
        .collect()
}

pub(crate) fn webhook_request_to_pb(request: WebhookRequest) -> pb::WebhookRequest {
    pb::WebhookRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: headers_to_pb(request.headers),
        body: request.body,
        delivery_id: request.delivery_id,
        received_at: timestamp_to_pb(request.received_at),
    }
}

fn webhook_request_from_pb(request: pb::WebhookRequest) -> WebhookRequest {
    WebhookRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: headers_from_pb(request.headers),
        body: request.body,
        delivery_id: request.delivery_id,
        received_at: timestamp_from_pb(request.received_at),
    }
}

pub(crate) fn webhook_response_from_pb(response: pb::WebhookResponse) -> WebhookResponse {
    WebhookResponse {
        records: response.records.into_iter().map(record_from_pb).collect(),
        reply: response.reply.map(|reply| HttpReply {
            status: u16::try_from(reply.status).unwrap_or(u16::MAX),
            headers: headers_from_pb(reply.headers),
            body: reply.body,
        }),
    }
}

fn webhook_response_to_pb(response: WebhookResponse) -> pb::WebhookResponse {
    pb::WebhookResponse {
        records: response.records.into_iter().map(record_to_pb).collect(),
        reply: response.reply.map(|reply| pb::HttpReply {
            status: u32::from(reply.status),
            headers: headers_to_pb(reply.headers),
            body: reply.body,
        }),
    }
}

/// Maps a failed unary or server-streaming call to a gRPC status: a permanent
/// failure is INVALID_ARGUMENT (the hub does not retry; a webhook gets 400), a
/// retryable one UNAVAILABLE. The code and retry-after travel as metadata
/// (`switchyard-failure-code`, `switchyard-retry-after-ms`).
pub(crate) fn status_from_error(error: &PluginError) -> Status {
    let code = if error.is_retryable() {
        tonic::Code::Unavailable
    } else {
        tonic::Code::InvalidArgument
    };
    let mut status = Status::new(code, error.message().to_owned());
    if let Some(value) = error.code().and_then(|code| code.parse().ok()) {
        status
            .metadata_mut()
            .insert("switchyard-failure-code", value);
    }
    if let Some(value) = error
        .retry_after()
        .and_then(|after| after.as_millis().to_string().parse().ok())
    {
        status
            .metadata_mut()
            .insert("switchyard-retry-after-ms", value);
    }
    status
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// A caught panic in author code, as a permanent failure with code `panic`.
pub(crate) fn panic_failure(panic: &Box<dyn Any + Send>) -> PluginError {
    let message = panic_message(panic);
    tracing::error!(panic = %message, "Plugin code panicked while handling an item.");
    PluginError::permanent(format!("the plugin panicked: {message}")).with_code("panic")
}

// ---------------------------------------------------------------------------
// switchyard.v1.Plugin

struct PluginService<T>(Arc<Shared<T>>);

#[tonic::async_trait]
impl<T: Send + Sync + 'static> pb::plugin_server::Plugin for PluginService<T> {
    async fn get_metadata(
        &self,
        _request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::PluginMetadata>, Status> {
        let shared = &self.0;
        let roles = shared
            .roles
            .iter()
            .map(|role| {
                (match role {
                    RoleKind::PollingInput => pb::Role::PollingInput,
                    RoleKind::WebhookInput => pb::Role::WebhookInput,
                    RoleKind::Enrichment => pb::Role::Enrichment,
                    RoleKind::Output => pb::Role::Output,
                }) as i32
            })
            .collect();
        Ok(Response::new(pb::PluginMetadata {
            name: shared.info.name.clone(),
            version: shared.info.version.clone(),
            roles,
            config_schema: shared.config_schema.clone(),
            description: shared.info.description.clone(),
            webhook_sync_reply: shared.info.webhook_sync_reply,
        }))
    }

    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        let request = request.into_inner();
        let shared = &self.0;
        let _serialized = shared.configure_lock.lock().await;
        let outcome = (shared.factory)(&request.config_json).await;
        let errors = match outcome {
            Ok(instance) => {
                shared.set_instance(Some(Arc::new(instance)));
                tracing::info!(instance = %request.instance_name, "Configured.");
                Vec::new()
            }
            Err(errors) => {
                shared.set_instance(None);
                for error in &errors.0 {
                    tracing::warn!(
                        instance = %request.instance_name,
                        field = %error.field,
                        error = %error.message,
                        "Rejected the configuration."
                    );
                }
                errors
                    .0
                    .into_iter()
                    .map(|error| pb::ConfigError {
                        field: error.field,
                        message: error.message,
                    })
                    .collect()
            }
        };
        Ok(Response::new(pb::ConfigureResponse { errors }))
    }
}

// ---------------------------------------------------------------------------
// switchyard.v1.PollingInput

struct PollService<T>(Arc<Shared<T>>);

pub(crate) fn add_polling_input<T: PollingInput>(
    shared: &Arc<Shared<T>>,
    routes: &mut RoutesBuilder,
) {
    routes.add_service(
        pb::polling_input_server::PollingInputServer::new(PollService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

#[tonic::async_trait]
impl<T: PollingInput> pb::polling_input_server::PollingInput for PollService<T> {
    type PollStream = ReceiverStream<Result<pb::PollResponse, Status>>;

    async fn poll(
        &self,
        request: Request<pb::PollRequest>,
    ) -> Result<Response<Self::PollStream>, Status> {
        let instance = self.0.instance()?;
        let request = request.into_inner();
        let request = PollRequest {
            checkpoint: request.checkpoint,
            max_records: request.max_records,
        };
        let (sender, receiver) = mpsc::channel(16);
        let emitter = Emitter::new(sender.clone());
        tokio::spawn(async move {
            let run = AssertUnwindSafe(instance.poll(request, emitter)).catch_unwind();
            let outcome = tokio::select! {
                outcome = run => outcome,
                () = sender.closed() => {
                    tracing::debug!("The hub cancelled the poll.");
                    return;
                }
            };
            let status = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "The poll failed.");
                    status_from_error(&error)
                }
                Err(panic) => {
                    let message = panic_message(&panic);
                    tracing::error!(panic = %message, "Plugin code panicked during a poll.");
                    Status::internal(format!("the plugin panicked during the poll: {message}"))
                }
            };
            let _ = sender.send(Err(status)).await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

// ---------------------------------------------------------------------------
// switchyard.v1.WebhookInput

struct WebhookService<T>(Arc<Shared<T>>);

pub(crate) fn add_webhook_input<T: WebhookInput>(
    shared: &Arc<Shared<T>>,
    routes: &mut RoutesBuilder,
) {
    routes.add_service(
        pb::webhook_input_server::WebhookInputServer::new(WebhookService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

#[tonic::async_trait]
impl<T: WebhookInput> pb::webhook_input_server::WebhookInput for WebhookService<T> {
    async fn handle_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookResponse>, Status> {
        let instance = self.0.instance()?;
        let request = webhook_request_from_pb(request.into_inner());
        match AssertUnwindSafe(instance.handle_webhook(request))
            .catch_unwind()
            .await
        {
            Ok(Ok(response)) => Ok(Response::new(webhook_response_to_pb(response))),
            Ok(Err(error)) => Err(status_from_error(&error)),
            Err(panic) => {
                let message = panic_message(&panic);
                tracing::error!(panic = %message, "Plugin code panicked while handling a webhook.");
                Err(Status::internal(format!(
                    "the plugin panicked while handling the webhook: {message}"
                )))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Shared driver for the two batch streams.

/// Reads batches from `inbound` and spawns `handle(instance, batch, sender)`
/// for each, until the client closes its side, the call is cancelled or the
/// plugin shuts down. The response stream ends once every batch has answered.
fn drive_batches<T, Req, Resp, H, Fut>(
    shared: Arc<Shared<T>>,
    mut inbound: Streaming<Req>,
    handle: H,
) -> ReceiverStream<Result<Resp, Status>>
where
    T: Send + Sync + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    H: Fn(Arc<T>, Req, mpsc::Sender<Result<Resp, Status>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(RESPONSE_BUFFER);
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
        loop {
            let next = tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => break,
                () = sender.closed() => break,
                next = inbound.message() => next,
            };
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(status = %status, "The hub's side of the stream failed.");
                    break;
                }
            };
            let instance = match shared.instance() {
                Ok(instance) => instance,
                Err(status) => {
                    let _ = sender.send(Err(status)).await;
                    break;
                }
            };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let work = handle(instance, batch, sender.clone());
            tokio::spawn(async move {
                work.await;
                drop(permit);
            });
        }
    });
    ReceiverStream::new(receiver)
}

use std::future::Future;

// ---------------------------------------------------------------------------
// switchyard.v1.Enricher

struct EnrichService<T>(Arc<Shared<T>>);

pub(crate) fn add_enricher<T: Enricher>(shared: &Arc<Shared<T>>, routes: &mut RoutesBuilder) {
    routes.add_service(
        pb::enricher_server::EnricherServer::new(EnrichService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

#[tonic::async_trait]
impl<T: Enricher> pb::enricher_server::Enricher for EnrichService<T> {
    type EnrichStream = ReceiverStream<Result<pb::EnrichResponse, Status>>;

    async fn enrich(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStream>, Status> {
        self.0.instance()?;
        let stream = drive_batches(Arc::clone(&self.0), request.into_inner(), enrich_batch::<T>);
        Ok(Response::new(stream))
    }
}

fn enrich_failure(sequence: u64, error: &PluginError) -> pb::EnrichResult {
    pb::EnrichResult {
        sequence,
        outcome: Some(pb::enrich_result::Outcome::Failure(failure_to_pb(error))),
    }
}

async fn enrich_batch<T: Enricher>(
    instance: Arc<T>,
    batch: pb::EnrichRequest,
    sender: mpsc::Sender<Result<pb::EnrichResponse, Status>>,
) {
    let instance = &*instance;
    let count = batch.items.len();
    let items = batch.items.into_iter().map(|item| {
        let sequence = item.sequence;
        let record = item.record.map(record_from_pb);
        async move {
            let Some(record) = record else {
                return enrich_failure(
                    sequence,
                    &PluginError::permanent("the enrich item carries no record"),
                );
            };
            match AssertUnwindSafe(instance.enrich(record))
                .catch_unwind()
                .await
            {
                Ok(Ok(record)) => pb::EnrichResult {
                    sequence,
                    outcome: Some(pb::enrich_result::Outcome::Record(record_to_pb(record))),
                },
                Ok(Err(error)) => enrich_failure(sequence, &error),
                Err(panic) => enrich_failure(sequence, &panic_failure(&panic)),
            }
        }
    });
    run_concurrently(items, count, |results| {
        let sender = sender.clone();
        async move {
            sender
                .send(Ok(pb::EnrichResponse { results }))
                .await
                .is_ok()
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Running the items of a batch.

/// Runs `futures` concurrently and hands their outputs to `flush` as they
/// finish, everything that finished in one wake-up at once; stops early when
/// `flush` answers false (nobody is listening any more).
///
/// Futures are started in order and polled once in place: as long as they
/// finish on that first poll (a synchronous enricher, an output that acks at
/// once) nothing is allocated per item. From the first one that waits on,
/// that one is driven in place and the rest in a [`FuturesUnordered`], so
/// waiting items never hold up the others.
pub(crate) async fn run_concurrently<I, O, Flush, Flushed>(
    futures: I,
    capacity: usize,
    mut flush: Flush,
) where
    I: IntoIterator,
    I::Item: Future<Output = O>,
    Flush: FnMut(Vec<O>) -> Flushed,
    Flushed: Future<Output = bool>,
{
    let mut futures = futures.into_iter();
    let mut ready = Vec::with_capacity(capacity);
    while let Some(future) = futures.next() {
        let mut future = std::pin::pin!(future);
        match std::future::poll_fn(|context| Poll::Ready(future.as_mut().poll(context))).await {
            Poll::Ready(output) => ready.push(output),
            Poll::Pending => {
                let rest: FuturesUnordered<I::Item> = futures.collect();
                drive_waiting(future, rest, ready, flush).await;
                return;
            }
        }
    }
    if !ready.is_empty() {
        flush(ready).await;
    }
}

/// The second half of [`run_concurrently`]: flushes what is `ready`, then
/// drives `first` (pinned in the caller's frame) and `rest` until all finish.
async fn drive_waiting<F, O, Flush, Flushed>(
    mut first: Pin<&mut F>,
    mut rest: FuturesUnordered<F>,
    mut ready: Vec<O>,
    mut flush: Flush,
) where
    F: Future<Output = O>,
    Flush: FnMut(Vec<O>) -> Flushed,
    Flushed: Future<Output = bool>,
{
    let mut first_done = false;
    loop {
        if !ready.is_empty() && !flush(std::mem::take(&mut ready)).await {
            return;
        }
        if first_done && rest.is_empty() {
            return;
        }
        std::future::poll_fn(|context| {
            if !first_done && let Poll::Ready(output) = first.as_mut().poll(context) {
                ready.push(output);
                first_done = true;
            }
            while let Poll::Ready(Some(output)) = rest.poll_next_unpin(context) {
                ready.push(output);
            }
            if ready.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

// ---------------------------------------------------------------------------
// switchyard.v1.Output

struct OutputService<T>(Arc<Shared<T>>);

pub(crate) fn add_output<T: Output>(shared: &Arc<Shared<T>>, routes: &mut RoutesBuilder) {
    routes.add_service(
        pb::output_server::OutputServer::new(OutputService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

#[tonic::async_trait]
impl<T: Output> pb::output_server::Output for OutputService<T> {
    type HandleEventStream = ReceiverStream<Result<pb::EventResponse, Status>>;

    async fn handle_event(
        &self,
        request: Request<Streaming<pb::EventRequest>>,
    ) -> Result<Response<Self::HandleEventStream>, Status> {
        self.0.instance()?;
        let stream = drive_batches(Arc::clone(&self.0), request.into_inner(), output_batch::<T>);
        Ok(Response::new(stream))
    }
}

fn event_from_pb(event: pb::RecordEvent) -> Result<RecordEvent, PluginError> {
    let kind = match pb::EventKind::try_from(event.kind) {
        Ok(pb::EventKind::Created) => EventKind::Created,
        Ok(pb::EventKind::Updated) => EventKind::Updated,
        _ => {
            return Err(PluginError::permanent(format!(
                "event kind {} is neither created nor updated",
                event.kind
            )));
        }
    };
    let record = event
        .record
        .ok_or_else(|| PluginError::permanent("the event carries no record"))?;
    Ok(RecordEvent {
        delivery_id: event.delivery_id,
        kind,
        record: record_from_pb(record),
        attempt: event.attempt,
    })
}

async fn output_batch<T: Output>(
    instance: Arc<T>,
    batch: pb::EventRequest,
    sender: mpsc::Sender<Result<pb::EventResponse, Status>>,
) {
    let mut acks = Vec::with_capacity(batch.events.len());
    let mut ids = Vec::with_capacity(batch.events.len());
    let mut events = Vec::with_capacity(batch.events.len());
    for event in batch.events {
        let delivery_id = event.delivery_id;
        match event_from_pb(event) {
            Ok(event) => {
                ids.push(delivery_id);
                events.push(event);
            }
            Err(error) => acks.push(pb::EventAck {
                delivery_id,
                failure: Some(failure_to_pb(&error)),
            }),
        }
    }
    if !events.is_empty() {
        let count = events.len();
        let outcomes = match AssertUnwindSafe(instance.handle_batch(events))
            .catch_unwind()
            .await
        {
            Ok(outcomes) if outcomes.len() == count => outcomes,
            Ok(outcomes) => {
                let error = PluginError::permanent(format!(
                    "the plugin's handle_batch returned {} outcomes for {count} events",
                    outcomes.len()
                ));
                tracing::error!(error = %error, "Plugin code broke the Output contract.");
                vec![Err(error); count]
            }
            Err(panic) => vec![Err(panic_failure(&panic)); count],
        };
        acks.extend(
            ids.into_iter()
                .zip(outcomes)
                .map(|(delivery_id, outcome)| pb::EventAck {
                    delivery_id,
                    failure: outcome.err().map(|error| failure_to_pb(&error)),
                }),
        );
    }
    if !acks.is_empty() {
        let _ = sender.send(Ok(pb::EventResponse { acks })).await;
    }
}

// ---------------------------------------------------------------------------
// go-plugin's services.

/// `plugin.GRPCController`: Shutdown starts the plugin's graceful stop.
struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        tracing::debug!("The host asked the plugin to shut down.");
        self.shutdown.cancel();
        Ok(Response::new(gp::Empty {}))
    }
}

/// A response stream that sends nothing and stays open until the client goes
/// away or the plugin shuts down.
fn hold_open<M: Send + 'static>(shutdown: CancellationToken) -> ReceiverStream<Result<M, Status>> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = sender.closed() => {}
        }
    });
    ReceiverStream::new(receiver)
}

/// `plugin.GRPCStdio`: Rust plugins log on the real stderr (and stdout carries
/// only the handshake), so there is nothing to forward; the stream is held open.
struct Stdio {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = ReceiverStream<Result<gp::StdioData, Status>>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(hold_open(self.shutdown.clone())))
    }
}

/// `plugin.GRPCBroker`: Switchyard needs no sub-connections; the stream is
/// accepted, drained and held open so Go hosts are content.
struct Broker {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = ReceiverStream<Result<gp::ConnInfo, Status>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = inbound.message() => match message {
                        Ok(Some(info)) => tracing::debug!(service_id = info.service_id, "Ignored a broker offer."),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        });
        Ok(Response::new(hold_open(self.shutdown.clone())))
    }
}

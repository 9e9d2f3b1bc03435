//! `misbehave-plugin`: a deliberately broken Switchyard plugin for the tests of
//! `switchyard conformance`. It serves every role; each break named in the
//! `MISBEHAVE` environment variable (comma-separated) or on the command line
//! breaks exactly one conformance check (the table is in README.md). With no
//! breaks it passes every check.
//!
//! It is built on the raw `switchyard-wire` pieces (the generated services
//! and the handshake helpers), not the SDK, because the SDK makes most of
//! these breaks impossible.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_wire::handshake::{
    APP_PROTOCOL_VERSIONS, ENV_PROTOCOL_VERSIONS, ENV_UNIX_SOCKET_DIR, HEALTH_SERVICE_NAME,
    HandshakeLine, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, NOT_LAUNCHED_BY_HUB_MESSAGE, Network,
    negotiate_version,
};
use switchyard_wire::pb::plugin as gp;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::Notify;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

/// The one way each break misbehaves; see README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    NoCookieCheck,
    BadHandshake,
    NotServing,
    NoSchema,
    AcceptBadConfig,
    SlowShutdown,
    NondeterministicPoll,
    EnrichReorder,
    EnrichDropId,
    DoubleAck,
    WebhookNoRecords,
}

impl Break {
    fn parse(name: &str) -> Option<Break> {
        Some(match name {
            "no-cookie-check" => Break::NoCookieCheck,
            "bad-handshake" => Break::BadHandshake,
            "not-serving" => Break::NotServing,
            "no-schema" => Break::NoSchema,
            "accept-bad-config" => Break::AcceptBadConfig,
            "slow-shutdown" => Break::SlowShutdown,
            "nondeterministic-poll" => Break::NondeterministicPoll,
            "enrich-reorder" => Break::EnrichReorder,
            "enrich-drop-id" => Break::EnrichDropId,
            "double-ack" => Break::DoubleAck,
            "webhook-no-records" => Break::WebhookNoRecords,
            _ => return None,
        })
    }
}

/// The breaks in force.
type Breaks = Arc<BTreeSet<Break>>;

/// The config schema it reports.
const SCHEMA: &str = r#"{"type":"object","properties":{"label":{"type":"string","description":"Copied into the metadata of the records it produces."}},"additionalProperties":false}"#;

/// How many records one poll produces.
const RECORDS_PER_POLL: u64 = 3;

fn main() -> ExitCode {
    let mut names: Vec<String> = std::env::var("MISBEHAVE")
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    names.extend(std::env::args().skip(1));
    let mut breaks = BTreeSet::new();
    for name in names
        .iter()
        .map(|name| name.trim())
        .filter(|n| !n.is_empty())
    {
        match Break::parse(name) {
            Some(found) => {
                breaks.insert(found);
            }
            None => {
                eprintln!("misbehave: unknown break {name:?}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("misbehave: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(Arc::new(breaks)))
}

async fn run(breaks: Breaks) -> ExitCode {
    let socket_dir = std::env::var_os(ENV_UNIX_SOCKET_DIR).unwrap_or_else(|| "/tmp".into());
    let socket =
        std::path::Path::new(&socket_dir).join(format!("misbehave-{}", std::process::id()));
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        if !breaks.contains(&Break::NoCookieCheck) {
            eprintln!("{NOT_LAUNCHED_BY_HUB_MESSAGE}");
            return ExitCode::FAILURE;
        }
        // Serve anyway: what a plugin without a cookie check does.
        eprintln!("misbehave: no magic cookie, serving anyway");
    }
    let offer = std::env::var(ENV_PROTOCOL_VERSIONS).ok();
    let version = match negotiate_version(offer.as_deref(), APP_PROTOCOL_VERSIONS) {
        Ok(version) => version,
        Err(err) => {
            eprintln!("misbehave: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("misbehave: cannot bind {}: {err}", socket.display());
            return ExitCode::FAILURE;
        }
    };
    let line = HandshakeLine {
        app_version: if breaks.contains(&Break::BadHandshake) {
            99
        } else {
            version
        },
        network: Network::Unix,
        address: socket.display().to_string(),
        server_cert_der: None,
        mux_supported: None,
    };
    println!("{line}");

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE_NAME, tonic_health::ServingStatus::Serving)
        .await;
    let overall = if breaks.contains(&Break::NotServing) {
        tonic_health::ServingStatus::NotServing
    } else {
        tonic_health::ServingStatus::Serving
    };
    reporter.set_service_status("", overall).await;

    let stop = Arc::new(Notify::new());
    let state = Arc::new(State {
        breaks: breaks.clone(),
        label: std::sync::Mutex::new(None),
        poll_offset: AtomicU64::new(0),
    });
    let server = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                stop: stop.clone(),
                breaks,
            },
        ))
        .add_service(pb::plugin_server::PluginServer::new(Service(state.clone())))
        .add_service(pb::polling_input_server::PollingInputServer::new(Service(
            state.clone(),
        )))
        .add_service(pb::webhook_input_server::WebhookInputServer::new(Service(
            state.clone(),
        )))
        .add_service(pb::enricher_server::EnricherServer::new(Service(
            state.clone(),
        )))
        .add_service(pb::output_server::OutputServer::new(Service(state)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            stop.notified().await;
        });
    let result = server.await;
    let _ = std::fs::remove_file(&socket);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("misbehave: the server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What the services share.
struct State {
    breaks: Breaks,
    label: std::sync::Mutex<Option<String>>,
    /// With `nondeterministic-poll`: how far the previous polls got.
    poll_offset: AtomicU64,
}

impl State {
    fn broken(&self, which: Break) -> bool {
        self.breaks.contains(&which)
    }

    fn record(&self, id: String, payload: &serde_json::Value) -> pb::Record {
        let mut metadata = std::collections::BTreeMap::new();
        if let Ok(label) = self.label.lock()
            && let Some(label) = label.as_ref()
        {
            metadata.insert("label".to_owned(), label.clone());
        }
        pb::Record {
            id,
            source: "misbehave".to_owned(),
            r#type: "misbehave.test".to_owned(),
            occurred_at: None,
            payload: serde_json::to_vec(payload).unwrap_or_default(),
            metadata,
            idempotency_key: None,
        }
    }
}

/// Every role's service, over the shared state.
struct Service(Arc<State>);

/// `plugin.GRPCController`: Shutdown stops the server (unless `slow-shutdown`).
struct Controller {
    stop: Arc<Notify>,
    breaks: Breaks,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        if self.breaks.contains(&Break::SlowShutdown) {
            eprintln!("misbehave: ignoring Shutdown");
        } else {
            self.stop.notify_one();
        }
        Ok(Response::new(gp::Empty {}))
    }
}

#[tonic::async_trait]
impl pb::plugin_server::Plugin for Service {
    async fn get_metadata(
        &self,
        _request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::PluginMetadata>, Status> {
        let roles = [
            pb::Role::PollingInput,
            pb::Role::WebhookInput,
            pb::Role::Enrichment,
            pb::Role::Output,
        ];
        Ok(Response::new(pb::PluginMetadata {
            name: "misbehave".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            roles: roles.iter().map(|role| *role as i32).collect(),
            config_schema: if self.0.broken(Break::NoSchema) {
                String::new()
            } else {
                SCHEMA.to_owned()
            },
            description: "A deliberately broken plugin for conformance tests".to_owned(),
            webhook_sync_reply: false,
        }))
    }

    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        let config: serde_json::Value = serde_json::from_slice(&request.into_inner().config_json)
            .map_err(|err| {
            Status::invalid_argument(format!("the config is not JSON: {err}"))
        })?;
        let mut errors = Vec::new();
        let mut label = None;
        match config.as_object() {
            None => errors.push(problem("", "the config must be a table")),
            Some(table) => {
                for (key, value) in table {
                    match (key.as_str(), value) {
                        ("label", serde_json::Value::String(text)) => label = Some(text.clone()),
                        ("label", _) => errors.push(problem("label", "must be a string")),
                        (other, _) => errors.push(problem(other, "unknown key")),
                    }
                }
            }
        }
        if self.0.broken(Break::AcceptBadConfig) {
            errors.clear();
        }
        if errors.is_empty()
            && let Ok(mut slot) = self.0.label.lock()
        {
            *slot = label;
        }
        Ok(Response::new(pb::ConfigureResponse { errors }))
    }
}

fn problem(field: &str, message: &str) -> pb::ConfigError {
    pb::ConfigError {
        field: field.to_owned(),
        message: format!("`{field}`: {message}"),
    }
}

type PollStream = Pin<Box<dyn Stream<Item = Result<pb::PollResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::polling_input_server::PollingInput for Service {
    type PollStream = PollStream;

    async fn poll(
        &self,
        request: Request<pb::PollRequest>,
    ) -> Result<Response<Self::PollStream>, Status> {
        let checkpoint = match request.into_inner().checkpoint {
            None => 0,
            Some(bytes) => String::from_utf8_lossy(&bytes)
                .parse::<u64>()
                .map_err(|_| Status::invalid_argument("the checkpoint is not a number"))?,
        };
        let start = if self.0.broken(Break::NondeterministicPoll) {
            checkpoint
                + self
                    .0
                    .poll_offset
                    .fetch_add(RECORDS_PER_POLL, Ordering::SeqCst)
        } else {
            checkpoint
        };
        let records = (start + 1..=start + RECORDS_PER_POLL)
            .map(|n| {
                self.0
                    .record(format!("misbehave-{n}"), &serde_json::json!({ "n": n }))
            })
            .collect();
        let response = pb::PollResponse {
            records,
            checkpoint: Some((start + RECORDS_PER_POLL).to_string().into_bytes()),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(response)]))))
    }
}

#[tonic::async_trait]
impl pb::webhook_input_server::WebhookInput for Service {
    async fn handle_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookResponse>, Status> {
        let request = request.into_inner();
        let payload: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|err| Status::invalid_argument(format!("the body is not JSON: {err}")))?;
        let records = if self.0.broken(Break::WebhookNoRecords) {
            Vec::new()
        } else {
            vec![
                self.0
                    .record(format!("webhook-{}", request.delivery_id), &payload),
            ]
        };
        Ok(Response::new(pb::WebhookResponse {
            records,
            reply: None,
        }))
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::enricher_server::Enricher for Service {
    type EnrichStream = ResponseStream<pb::EnrichResponse>;

    async fn enrich(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStream>, Status> {
        let state = self.0.clone();
        let stream = request.into_inner().map(move |message| {
            let items = message?.items;
            let mut records: Vec<Option<pb::Record>> =
                items.iter().map(|item| item.record.clone()).collect();
            if state.broken(Break::EnrichReorder) {
                records.reverse();
            }
            let results = items
                .iter()
                .zip(records)
                .map(|(item, record)| {
                    let outcome = match record {
                        None => failure("the item has no record"),
                        Some(record) => enrich_one(&state, record),
                    };
                    pb::EnrichResult {
                        sequence: item.sequence,
                        outcome: Some(outcome),
                    }
                })
                .collect();
            Ok(pb::EnrichResponse { results })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Tags one record, or fails it (per record) when its payload is not an object.
fn enrich_one(state: &State, mut record: pb::Record) -> pb::enrich_result::Outcome {
    let is_object = serde_json::from_slice::<serde_json::Value>(&record.payload)
        .is_ok_and(|payload| payload.is_object());
    if !is_object {
        return failure(&format!(
            "the payload of record {:?} is not a JSON object",
            record.id
        ));
    }
    record
        .metadata
        .insert("misbehave".to_owned(), "enriched".to_owned());
    if state.broken(Break::EnrichDropId) {
        record.id.clear();
    }
    pb::enrich_result::Outcome::Record(record)
}

fn failure(message: &str) -> pb::enrich_result::Outcome {
    pb::enrich_result::Outcome::Failure(pb::Failure {
        message: message.to_owned(),
        retryable: false,
        retry_after: None,
        code: "misbehave".to_owned(),
    })
}

#[tonic::async_trait]
impl pb::output_server::Output for Service {
    type HandleEventStream = ResponseStream<pb::EventResponse>;

    async fn handle_event(
        &self,
        request: Request<Streaming<pb::EventRequest>>,
    ) -> Result<Response<Self::HandleEventStream>, Status> {
        let twice = self.0.broken(Break::DoubleAck);
        let mut requests = request.into_inner();
        let (answers, stream) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let answer = message.map(|message| pb::EventResponse {
                    acks: message
                        .events
                        .iter()
                        .map(|event| pb::EventAck {
                            delivery_id: event.delivery_id,
                            failure: None,
                        })
                        .collect(),
                });
                // With `double-ack`, each answer message is sent twice: the
                // second copy comes after every event was answered once.
                if twice && let Ok(answer) = &answer {
                    let _ = answers.send(Ok(answer.clone())).await;
                }
                if answers.send(answer).await.is_err() {
                    break;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(stream);
        Ok(Response::new(Box::pin(stream)))
    }
}

//! A minimal gRPC plugin written directly against the generated code (no
//! SDK), used by the hub's own integration tests. It serves every role and
//! go-plugin's controller, and misbehaves on request through its environment:
//!
//! * `FAKE_ROLES`: comma-separated roles to declare (default: all four).
//! * `FAKE_STUBBORN=1`: ignore Shutdown and SIGTERM (tests the escalation).
//! * `FAKE_CHILD=1`: start a `sleep` grandchild in its process group.
//! * `FAKE_CRASH_MARKER=PATH`: the first Poll (of all processes sharing the
//!   marker) creates PATH and aborts the process; later ones work.
//! * `FAKE_SLOW_POLL_MS=N`: Poll waits N ms before answering.
//! * `FAKE_POLL_ALLOC_MB=N`: Poll allocates and touches N MiB first.
//! * `FAKE_NOT_SERVING_FILE=PATH`: the health status is NOT_SERVING while
//!   PATH exists, and Configure is refused as UNAVAILABLE then (each refusal
//!   creates `PATH.refused`).
//! * `FAKE_CALL_LOG=PATH`: append a line to PATH for every Poll (`poll`)
//!   and every HandleEvent stream (`events`) it is called with.
//! * `FAKE_POLL_FAIL_FILE=PATH`: Poll fails with UNAVAILABLE while PATH
//!   exists (asking the hub to wait `FAKE_RETRY_AFTER_MS` if that is set).
//! * `FAKE_EXIT_AFTER_FILE=PATH`: at start, read a number of milliseconds
//!   from PATH and exit with status 1 that long after the handshake.
//!
//! Behaviour: Configure rejects `{"reject": true}` with a field error;
//! Enrich answers each batch in reverse order, adds `"enriched": true` to the
//! payload, and fails records whose id starts with `fail`; HandleEvent nacks
//! records whose id starts with `nack`; Poll returns two batches; a webhook
//! whose body is `bad` gets INVALID_ARGUMENT.
//!
//! Run it through the hub: `cargo run -p switchyard-hub --example fake_plugin`
//! by hand only prints the "not launched by the hub" message.

use std::io::Write as _;
use std::pin::Pin;

use switchyard_wire::handshake::{
    self, ENV_PROTOCOL_VERSIONS, ENV_UNIX_SOCKET_DIR, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
};
use switchyard_wire::pb::plugin as go_plugin;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone)]
struct Fake {
    roles: Vec<pb::Role>,
    stubborn: bool,
    shutdown: mpsc::Sender<()>,
}

fn log(level: &str, message: &str) {
    let line = serde_json::json!({
        "@level": level,
        "@message": message,
        "@timestamp": "2026-11-23T18:00:00.000000+00:00",
        "@module": "fake",
    });
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tonic::async_trait]
impl pb::plugin_server::Plugin for Fake {
    async fn get_metadata(
        &self,
        _: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::PluginMetadata>, Status> {
        Ok(Response::new(pb::PluginMetadata {
            name: "fake".into(),
            version: "0.0.1".into(),
            roles: self.roles.iter().map(|role| *role as i32).collect(),
            description: "a fake plugin for the hub's tests".into(),
            ..Default::default()
        }))
    }

    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        if let Ok(path) = std::env::var("FAKE_NOT_SERVING_FILE")
            && std::path::Path::new(&path).exists()
        {
            let _ = std::fs::write(format!("{path}.refused"), "");
            return Err(Status::unavailable("not ready to be configured yet"));
        }
        let config: serde_json::Value = serde_json::from_slice(&request.get_ref().config_json)
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        log("info", &format!("configured with {config}"));
        let mut errors = Vec::new();
        if config.get("reject") == Some(&serde_json::Value::Bool(true)) {
            errors.push(pb::ConfigError {
                field: "reject".into(),
                message: "must not be true".into(),
            });
            errors.push(pb::ConfigError {
                field: String::new(),
                message: "the table is unusable".into(),
            });
        }
        Ok(Response::new(pb::ConfigureResponse { errors }))
    }
}

fn enrich_record(mut record: pb::Record) -> pb::enrich_result::Outcome {
    if record.id.starts_with("fail") {
        return pb::enrich_result::Outcome::Failure(pb::Failure {
            message: format!("cannot enrich {}", record.id),
            retryable: false,
            retry_after: None,
            code: "nope".into(),
        });
    }
    let mut payload: serde_json::Value =
        serde_json::from_slice(&record.payload).unwrap_or(serde_json::Value::Null);
    if let Some(object) = payload.as_object_mut() {
        object.insert("enriched".into(), serde_json::Value::Bool(true));
    }
    record.payload = serde_json::to_vec(&payload).unwrap_or_default();
    pb::enrich_result::Outcome::Record(record)
}

#[tonic::async_trait]
impl pb::enricher_server::Enricher for Fake {
    type EnrichStream = BoxStream<pb::EnrichResponse>;

    async fn enrich(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStream>, Status> {
        log_call("events");
        let mut input = request.into_inner();
        let output = async_stream(move |sender| async move {
            while let Some(Ok(batch)) = input.next().await {
                let results = batch
                    .items
                    .into_iter()
                    .rev()
                    .map(|item| pb::EnrichResult {
                        sequence: item.sequence,
                        outcome: Some(enrich_record(item.record.unwrap_or_default())),
                    })
                    .collect();
                if sender
                    .send(Ok(pb::EnrichResponse { results }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(output))
    }
}

#[tonic::async_trait]
impl pb::output_server::Output for Fake {
    type HandleEventStream = BoxStream<pb::EventResponse>;

    async fn handle_event(
        &self,
        request: Request<Streaming<pb::EventRequest>>,
    ) -> Result<Response<Self::HandleEventStream>, Status> {
        log_call("events");
        let mut input = request.into_inner();
        let output = async_stream(move |sender| async move {
            while let Some(Ok(batch)) = input.next().await {
                let acks = batch
                    .events
                    .into_iter()
                    .map(|event| {
                        let id = event.record.map(|record| record.id).unwrap_or_default();
                        pb::EventAck {
                            delivery_id: event.delivery_id,
                            failure: id.starts_with("nack").then(|| pb::Failure {
                                message: format!("downstream refused {id}"),
                                retryable: true,
                                retry_after: Some(prost_types::Duration {
                                    seconds: 1,
                                    nanos: 500_000_000,
                                }),
                                code: "busy".into(),
                            }),
                        }
                    })
                    .collect();
                if sender.send(Ok(pb::EventResponse { acks })).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(output))
    }
}

#[tonic::async_trait]
impl pb::polling_input_server::PollingInput for Fake {
    type PollStream = BoxStream<pb::PollResponse>;

    async fn poll(
        &self,
        request: Request<pb::PollRequest>,
    ) -> Result<Response<Self::PollStream>, Status> {
        log_call("poll");
        if let Ok(path) = std::env::var("FAKE_POLL_FAIL_FILE")
            && std::path::Path::new(&path).exists()
        {
            let mut status = Status::unavailable("the upstream is down");
            if let Some(millis) = env_number("FAKE_RETRY_AFTER_MS")
                && let Ok(value) = millis.to_string().parse()
            {
                status
                    .metadata_mut()
                    .insert("switchyard-retry-after-ms", value);
            }
            return Err(status);
        }
        if let Ok(path) = std::env::var("FAKE_CRASH_MARKER")
            && std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .is_ok()
        {
            log("error", "crashing on purpose during a poll");
            std::process::abort();
        }
        if let Some(megabytes) = env_number("FAKE_POLL_ALLOC_MB") {
            let mut memory = vec![0u8; usize::try_from(megabytes).unwrap_or(0) << 20];
            for page in memory.iter_mut().step_by(4096) {
                *page = 1;
            }
            log("info", &format!("allocated {} bytes", memory.len()));
        }
        if let Some(millis) = env_number("FAKE_SLOW_POLL_MS") {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        let start: u32 = request
            .get_ref()
            .checkpoint
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        let record = |n: u32| pb::Record {
            id: n.to_string(),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            ..Default::default()
        };
        let batches = vec![
            Ok(pb::PollResponse {
                records: vec![record(start + 1)],
                checkpoint: None,
            }),
            Ok(pb::PollResponse {
                records: vec![record(start + 2)],
                checkpoint: Some((start + 2).to_string().into_bytes()),
            }),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }
}

#[tonic::async_trait]
impl pb::webhook_input_server::WebhookInput for Fake {
    async fn handle_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookResponse>, Status> {
        let request = request.into_inner();
        if request.body == b"bad" {
            return Err(Status::invalid_argument("the body is bad"));
        }
        if request.body == b"flaky" {
            return Err(Status::unavailable("the upstream is down"));
        }
        Ok(Response::new(pb::WebhookResponse {
            records: vec![pb::Record {
                id: request.delivery_id,
                r#type: request.method,
                payload: request.body,
                ..Default::default()
            }],
            reply: Some(pb::HttpReply {
                status: 200,
                headers: vec![pb::Header {
                    name: "x-fake".into(),
                    value: "yes".into(),
                }],
                body: b"thanks".to_vec(),
            }),
        }))
    }
}

#[tonic::async_trait]
impl go_plugin::grpc_controller_server::GrpcController for Fake {
    async fn shutdown(
        &self,
        _: Request<go_plugin::Empty>,
    ) -> Result<Response<go_plugin::Empty>, Status> {
        if self.stubborn {
            log("warn", "ignoring Shutdown");
        } else {
            let _ = self.shutdown.send(()).await;
        }
        Ok(Response::new(go_plugin::Empty {}))
    }
}

/// A stream fed by a task, like `async-stream` but with a channel.
fn async_stream<T, F, Fut>(produce: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(produce(sender));
    Box::pin(ReceiverStream::new(receiver))
}

/// Appends `call` to `FAKE_CALL_LOG`, if set.
fn log_call(call: &str) {
    if let Ok(path) = std::env::var("FAKE_CALL_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{call}");
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn role_from_name(name: &str) -> Option<pb::Role> {
    match name.trim() {
        "polling-input" => Some(pb::Role::PollingInput),
        "webhook-input" => Some(pb::Role::WebhookInput),
        "enrichment" => Some(pb::Role::Enrichment),
        "output" => Some(pb::Role::Output),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var(MAGIC_COOKIE_KEY).ok().as_deref() != Some(MAGIC_COOKIE_VALUE) {
        eprintln!("{}", handshake::NOT_LAUNCHED_BY_HUB_MESSAGE);
        std::process::exit(1);
    }
    let version = handshake::negotiate_version(
        std::env::var(ENV_PROTOCOL_VERSIONS).ok().as_deref(),
        handshake::APP_PROTOCOL_VERSIONS,
    )?;
    let roles: Vec<pb::Role> = match std::env::var("FAKE_ROLES") {
        Ok(names) => names.split(',').filter_map(role_from_name).collect(),
        Err(_) => vec![
            pb::Role::PollingInput,
            pb::Role::WebhookInput,
            pb::Role::Enrichment,
            pb::Role::Output,
        ],
    };
    let stubborn = std::env::var("FAKE_STUBBORN").is_ok_and(|value| value == "1");
    if std::env::var("FAKE_CHILD").is_ok_and(|value| value == "1") {
        std::process::Command::new("/bin/sleep").arg("60").spawn()?;
    }
    let dir = std::env::var(ENV_UNIX_SOCKET_DIR).unwrap_or_else(|_| "/tmp".into());
    let path = std::path::Path::new(&dir).join(format!("fake-{}.sock", std::process::id()));
    let listener = tokio::net::UnixListener::bind(&path)?;

    let (shutdown_tx, mut shutdown_rx) = mpsc::channel::<()>(1);
    let fake = Fake {
        roles,
        stubborn,
        shutdown: shutdown_tx,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    let down_at_start = std::env::var("FAKE_NOT_SERVING_FILE")
        .is_ok_and(|path| std::path::Path::new(&path).exists());
    health
        .set_service_status(
            handshake::HEALTH_SERVICE_NAME,
            if down_at_start {
                tonic_health::ServingStatus::NotServing
            } else {
                tonic_health::ServingStatus::Serving
            },
        )
        .await;

    if let Ok(path) = std::env::var("FAKE_NOT_SERVING_FILE") {
        let health = health.clone();
        tokio::spawn(async move {
            let mut serving = !down_at_start;
            loop {
                let now = !std::path::Path::new(&path).exists();
                if now != serving {
                    serving = now;
                    let status = if serving {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tonic_health::ServingStatus::NotServing
                    };
                    health
                        .set_service_status(handshake::HEALTH_SERVICE_NAME, status)
                        .await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
    }
    if let Ok(path) = std::env::var("FAKE_EXIT_AFTER_FILE") {
        let millis: u64 = std::fs::read_to_string(&path)?.trim().parse()?;
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            log("info", "exiting on purpose");
            std::process::exit(1);
        });
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        loop {
            tokio::select! {
                _ = shutdown_rx.recv() => break,
                _ = terminate.recv() => {
                    if stubborn {
                        log("warn", "ignoring SIGTERM");
                    } else {
                        break;
                    }
                }
            }
        }
    };

    println!(
        "{}",
        handshake::HandshakeLine {
            app_version: version,
            network: handshake::Network::Unix,
            address: path.display().to_string(),
            server_cert_der: None,
            mux_supported: None,
        }
    );
    std::io::stdout().flush()?;
    log("debug", "plugin address printed");
    eprintln!("[WARN] a text line with a level prefix");

    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(pb::plugin_server::PluginServer::new(fake.clone()))
        .add_service(pb::enricher_server::EnricherServer::new(fake.clone()))
        .add_service(pb::output_server::OutputServer::new(fake.clone()))
        .add_service(pb::polling_input_server::PollingInputServer::new(
            fake.clone(),
        ))
        .add_service(pb::webhook_input_server::WebhookInputServer::new(
            fake.clone(),
        ))
        .add_service(go_plugin::grpc_controller_server::GrpcControllerServer::new(fake))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await?;
    let _ = std::fs::remove_file(&path);
    log("info", "fake plugin exiting");
    Ok(())
}

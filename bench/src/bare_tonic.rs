//! The transport's floor: the same calls between two minimal tonic
//! processes over a Unix socket, so the report separates what Switchyard
//! costs from what gRPC over HTTP/2 in Rust costs.
//!
//! The server is this binary re-executed as `tonic-peer`: a current_thread
//! runtime (the Rust SDK's default), tonic's `Server` with default settings,
//! serving a unary `benchpeer.v1.Echo/Echo` of a `switchyard.v1.Record` (the
//! Go peer's call), `switchyard.v1.Enricher` answering each message in
//! place (no task, no channel) and `switchyard.v1.Output` acking each
//! message's events in place. Each enriched or echoed record comes back with
//! `metadata["chain"]` extended, as testkit and the Go peer do; an event
//! without a record is nacked, as testkit's output would refuse it. The client is
//! plain tonic (`Endpoint::connect_with_connector`, a `Channel`) in the
//! bench's runtime, the same one the Switchyard rows run in. The peer stops
//! when its stdin closes.

use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper_util::rt::TokioIo;
use switchyard_wire::pb::v1 as pb;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::latency::nanos;

/// The unary method the Go peer serves too.
const ECHO_PATH: &str = "/benchpeer.v1.Echo/Echo";
/// What the bare peer appends to `metadata["chain"]`.
const TAG: &str = "tonic";

/// Appends [`TAG`] to the record's `metadata["chain"]`.
fn tag(record: &mut pb::Record) {
    let chain = record.metadata.entry("chain".to_owned()).or_default();
    if !chain.is_empty() {
        chain.push(',');
    }
    chain.push_str(TAG);
}

/// Serves the bare peer on `socket` until stdin closes (the `tonic-peer` subcommand).
pub fn serve(socket: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = stop.send(());
        });
        tonic::transport::Server::builder()
            .add_service(EchoServer)
            .add_service(pb::enricher_server::EnricherServer::new(BareEnricher))
            .add_service(pb::output_server::OutputServer::new(BareOutput))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .context("the bare tonic server failed")
    })
}

/// `switchyard.v1.Enricher`, answering each request message as it is read.
struct BareEnricher;

#[tonic::async_trait]
impl pb::enricher_server::Enricher for BareEnricher {
    type EnrichStream = Pin<Box<dyn Stream<Item = Result<pb::EnrichResponse, Status>> + Send>>;

    async fn enrich(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStream>, Status> {
        let answers = request.into_inner().map(|message| {
            message.map(|message| pb::EnrichResponse {
                results: message
                    .items
                    .into_iter()
                    .map(|item| pb::EnrichResult {
                        sequence: item.sequence,
                        outcome: Some(match item.record {
                            Some(mut record) => {
                                tag(&mut record);
                                pb::enrich_result::Outcome::Record(record)
                            }
                            None => pb::enrich_result::Outcome::Failure(pb::Failure {
                                message: "no record".to_owned(),
                                ..Default::default()
                            }),
                        }),
                    })
                    .collect(),
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// `switchyard.v1.Output`, acking each request message's events as it is
/// read.
struct BareOutput;

#[tonic::async_trait]
impl pb::output_server::Output for BareOutput {
    type HandleEventStream = Pin<Box<dyn Stream<Item = Result<pb::EventResponse, Status>> + Send>>;

    async fn handle_event(
        &self,
        request: Request<Streaming<pb::EventRequest>>,
    ) -> Result<Response<Self::HandleEventStream>, Status> {
        let answers = request.into_inner().map(|message| {
            message.map(|message| pb::EventResponse {
                acks: message
                    .events
                    .into_iter()
                    .map(|event| pb::EventAck {
                        delivery_id: event.delivery_id,
                        failure: event.record.is_none().then(|| pb::Failure {
                            message: "no record".to_owned(),
                            ..Default::default()
                        }),
                    })
                    .collect(),
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// `benchpeer.v1.Echo`, written the way tonic's generated servers are (the
/// bench has no protoc at build time).
#[derive(Clone)]
struct EchoServer;

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "benchpeer.v1.Echo";
}

/// The unary handler.
struct EchoCall;

impl tonic::server::UnaryService<pb::Record> for EchoCall {
    type Response = pb::Record;
    type Future = BoxFuture<Response<pb::Record>, Status>;

    fn call(&mut self, request: Request<pb::Record>) -> Self::Future {
        Box::pin(async move {
            let mut record = request.into_inner();
            tag(&mut record);
            Ok(Response::new(record))
        })
    }
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == ECHO_PATH {
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(EchoCall, request).await)
            })
        } else {
            Box::pin(async move { Ok(Status::unimplemented("only Echo is served").into_http()) })
        }
    }
}

/// The bare peer's process; killed and reaped if the measurement ends early.
pub struct BarePeer {
    child: Child,
    channel: Channel,
    _dir: tempfile::TempDir,
}

impl Drop for BarePeer {
    fn drop(&mut self) {
        // Closing stdin asks for a graceful stop; kill covers a stuck peer.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BarePeer {
    /// Starts the peer and connects a plain tonic channel to it.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sy-tonic-")
            .tempdir_in("/tmp")
            .context("cannot create a temp dir")?;
        let socket = dir.path().join("tonic.sock");
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .arg("tonic-peer")
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::piped())
            .spawn()
            .context("cannot start the bare tonic peer")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).await.is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("the bare tonic peer exited early: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the bare tonic peer did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let path = socket.clone();
        let connected =
            Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await;
        let channel = match connected {
            Ok(channel) => channel,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err).context("cannot connect to the bare tonic peer");
            }
        };
        Ok(BarePeer {
            child,
            channel,
            _dir: dir,
        })
    }

    /// Sequential unary Echo calls; the measured latencies.
    pub async fn unary_latency(&self, calls: usize, warmup: usize) -> anyhow::Result<Vec<u64>> {
        let record = crate::payload::record();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let path = http::uri::PathAndQuery::from_static(ECHO_PATH);
        let mut samples = Vec::with_capacity(calls);
        for call in 0..warmup + calls {
            let start = Instant::now();
            grpc.ready()
                .await
                .context("the bare channel is not ready")?;
            let answer: Response<pb::Record> = grpc
                .unary(
                    Request::new(record.clone()),
                    path.clone(),
                    ProstCodec::<pb::Record, pb::Record>::default(),
                )
                .await
                .context("bare Echo failed")?;
            let elapsed = start.elapsed();
            check_tagged(&answer.into_inner())?;
            if call >= warmup {
                samples.push(nanos(elapsed));
            }
        }
        Ok(samples)
    }

    /// Sequential one-item messages on one long-lived Enrich stream; the
    /// measured latencies.
    pub async fn stream_latency(&self, calls: usize, warmup: usize) -> anyhow::Result<Vec<u64>> {
        crate::latency::stream_ping_pong(self.channel.clone(), calls, warmup, "the bare peer").await
    }

    /// `items` through one Enrich stream, `window` in flight in messages of
    /// `batch`, every item checked answered once; items per second.
    pub async fn stream_rate(
        &self,
        items: usize,
        batch: usize,
        window: usize,
    ) -> anyhow::Result<f64> {
        crate::stream::enrich_stream_rate(
            self.channel.clone(),
            items,
            batch,
            window,
            "the bare peer",
        )
        .await
    }

    /// `items` events through one HandleEvent stream, `window` in flight in
    /// messages of `batch`, every event checked acked once; events per
    /// second.
    pub async fn events_rate(
        &self,
        items: usize,
        batch: usize,
        window: usize,
    ) -> anyhow::Result<f64> {
        crate::stream::events_stream_rate(
            self.channel.clone(),
            items,
            batch,
            window,
            "the bare peer",
        )
        .await
    }
}

/// Checks that the echo came back tagged.
fn check_tagged(record: &pb::Record) -> anyhow::Result<()> {
    match record.metadata.get("chain") {
        Some(chain) if chain.ends_with(TAG) => Ok(()),
        _ => bail!("the bare peer answered a record without its tag"),
    }
}

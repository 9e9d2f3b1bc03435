//! An in-process harness for unit-testing a plugin without a hub.
//!
//! [`TestHarness::start`] serves the plugin's real gRPC services on a Unix
//! socket in a temporary directory, inside the test process, and drives them
//! through a real gRPC client, so a test exercises exactly what the hub would:
//! metadata, configuration errors, streams and status codes.
//!
//! ```
//! use switchyard_plugin_sdk::testing::TestHarness;
//! use switchyard_plugin_sdk::{Enricher, NoConfig, Plugin, PluginError, Record};
//!
//! struct Upper;
//!
//! impl Enricher for Upper {
//!     async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
//!         record.record_type = record.record_type.to_uppercase();
//!         Ok(record)
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let plugin = Plugin::new("upper", "0.1.0").enricher(|_: NoConfig| async { Ok(Upper) });
//! let harness = TestHarness::start(plugin).await.unwrap();
//! harness.configure(serde_json::json!({})).await.unwrap();
//! let results = harness.enrich(vec![Record::new("1", "issue")]).await.unwrap();
//! assert_eq!(results[0].as_ref().unwrap().record_type, "ISSUE");
//! # }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub use tonic::{Code, Status};

pub use crate::types::{Metadata, PollBatch};

use crate::authority::AuthorityFix;
use crate::error::{ConfigError, PluginError};
use crate::plugin::Plugin;
use crate::services::build_routes;
use crate::services::client::{Client, check_health};
use crate::types::{PollRequest, Record, RecordEvent, WebhookRequest, WebhookResponse};

/// How long a harness call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one poll sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollOutput {
    /// The messages, in order.
    pub batches: Vec<PollBatch>,
}

impl PollOutput {
    /// Every record, in order.
    pub fn records(&self) -> Vec<&Record> {
        self.batches
            .iter()
            .flat_map(|batch| &batch.records)
            .collect()
    }

    /// The last checkpoint sent, if any.
    pub fn last_checkpoint(&self) -> Option<&[u8]> {
        self.batches
            .iter()
            .rev()
            .find_map(|batch| batch.checkpoint.as_deref())
    }
}

/// A plugin served in-process over a real gRPC connection. Dropping it stops the server.
#[derive(Debug)]
#[non_exhaustive]
pub struct TestHarness {
    channel: Channel,
    client: Client,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestHarness {
    /// Serves `plugin` on a temporary Unix socket and connects to it.
    ///
    /// # Errors
    /// When the socket cannot be bound or connected to.
    pub async fn start<T: Send + Sync + 'static>(plugin: Plugin<T>) -> Result<Self, Status> {
        let dir =
            tempfile::tempdir().map_err(|err| Status::internal(format!("temp dir: {err}")))?;
        let socket = dir.path().join("plugin.sock");
        let listener = UnixListener::bind(&socket)
            .map_err(|err| Status::internal(format!("bind {}: {err}", socket.display())))?;
        let shutdown = CancellationToken::new();
        let routes = build_routes(plugin, shutdown.clone()).await;
        let signal = shutdown.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    UnixListenerStream::new(listener)
                        .map(|accepted| accepted.map(AuthorityFix::new)),
                    signal,
                )
                .await;
            if let Err(error) = served {
                tracing::error!(error = %error, "The test harness's server failed.");
            }
        });
        let channel = connect_unix(&socket).await?;
        Ok(TestHarness {
            client: Client::new(channel.clone()),
            channel,
            shutdown,
            server,
            socket,
            _dir: dir,
        })
    }

    /// The gRPC channel to the plugin, for calls the harness does not wrap.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The socket the plugin listens on.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.socket
    }

    /// Asks the gRPC health service about `service` (`"plugin"` as the hub
    /// does, or `""` for the whole server): true for SERVING.
    ///
    /// # Errors
    /// The call's gRPC status.
    pub async fn health(&self, service: &str) -> Result<bool, Status> {
        timed(check_health(self.channel.clone(), service)).await
    }

    /// Calls `GetMetadata`.
    ///
    /// # Errors
    /// The call's gRPC status.
    pub async fn metadata(&self) -> Result<Metadata, Status> {
        timed(self.client.metadata()).await
    }

    /// Calls `Configure` with `config` (instance name `"test"`). The outer
    /// error is the gRPC status; the inner `Err` lists the rejected fields.
    ///
    /// # Errors
    /// The call's gRPC status.
    pub async fn configure(
        &self,
        config: serde_json::Value,
    ) -> Result<Result<(), Vec<ConfigError>>, Status> {
        self.configure_raw(config.to_string().into_bytes()).await
    }

    /// Like [`TestHarness::configure`] with raw JSON bytes (to test malformed input).
    ///
    /// # Errors
    /// The call's gRPC status.
    pub async fn configure_raw(
        &self,
        config_json: Vec<u8>,
    ) -> Result<Result<(), Vec<ConfigError>>, Status> {
        let errors = timed(self.client.configure(config_json, "test")).await?;
        if errors.is_empty() {
            Ok(Ok(()))
        } else {
            Ok(Err(errors))
        }
    }

    /// Calls `Poll` from `checkpoint` and collects the whole stream.
    ///
    /// # Errors
    /// The call's gRPC status, including one that ends the stream.
    pub async fn poll(&self, checkpoint: Option<&[u8]>) -> Result<PollOutput, Status> {
        let mut request = PollRequest::new();
        request.checkpoint = checkpoint.map(<[u8]>::to_vec);
        let mut stream = timed(self.client.poll(request)).await?;
        let mut output = PollOutput::default();
        while let Some(batch) = timed(stream.next()).await? {
            output.batches.push(batch);
        }
        Ok(output)
    }

    /// Calls `HandleWebhook`.
    ///
    /// # Errors
    /// The call's gRPC status (INVALID_ARGUMENT for a permanent failure).
    pub async fn handle_webhook(&self, request: WebhookRequest) -> Result<WebhookResponse, Status> {
        timed(self.client.handle_webhook(request)).await
    }

    /// Sends `records` through `Enrich` as one batch and returns one outcome
    /// per record, in the order given.
    ///
    /// # Errors
    /// The call's gRPC status, or INTERNAL when an item is answered twice or never.
    pub async fn enrich(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<Result<Record, PluginError>>, Status> {
        let count = records.len();
        let mut stream = timed(self.client.enrich(records)).await?;
        let mut results: Vec<Option<Result<Record, PluginError>>> = vec![None; count];
        let mut answered = 0;
        while answered < count {
            let Some(answers) = timed(stream.next()).await? else {
                break;
            };
            for (sequence, outcome) in answers {
                let slot = usize::try_from(sequence)
                    .ok()
                    .and_then(|index| results.get_mut(index))
                    .ok_or_else(|| Status::internal(format!("unknown sequence {sequence}")))?;
                if slot.is_some() {
                    return Err(Status::internal(format!(
                        "sequence {sequence} answered twice"
                    )));
                }
                *slot = Some(outcome);
                answered += 1;
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(index, result)| {
                result
                    .ok_or_else(|| Status::internal(format!("sequence {index} was never answered")))
            })
            .collect()
    }

    /// Sends `events` through `HandleEvent` as one batch and returns one
    /// outcome per event (ack `Ok(())` or nack), in the order given.
    ///
    /// # Errors
    /// The call's gRPC status, or INTERNAL when an event is answered twice or never.
    pub async fn handle_events(
        &self,
        events: Vec<RecordEvent>,
    ) -> Result<Vec<Result<(), PluginError>>, Status> {
        let ids: Vec<u64> = events.iter().map(|event| event.delivery_id).collect();
        let mut stream = timed(self.client.handle_events(events)).await?;
        let mut outcomes: HashMap<u64, Result<(), PluginError>> = HashMap::new();
        while outcomes.len() < ids.len() {
            let Some(answers) = timed(stream.next()).await? else {
                break;
            };
            for (delivery_id, outcome) in answers {
                if outcomes.insert(delivery_id, outcome).is_some() {
                    return Err(Status::internal(format!(
                        "delivery {delivery_id} answered twice"
                    )));
                }
            }
        }
        ids.iter()
            .map(|id| {
                outcomes
                    .remove(id)
                    .ok_or_else(|| Status::internal(format!("delivery {id} was never answered")))
            })
            .collect()
    }

    /// Stops the server and waits for it (in-flight calls end).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

impl Drop for TestHarness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Opens a gRPC channel to a plugin listening on the Unix socket `path`
/// (for example the address in a plugin's handshake line).
///
/// # Errors
/// UNAVAILABLE when the socket cannot be connected to.
pub async fn connect_unix(path: &std::path::Path) -> Result<Channel, Status> {
    let path = path.to_path_buf();
    let display = path.display().to_string();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|err| Status::unavailable(format!("connect to {display}: {err}")))
}

/// Bounds a call so a broken plugin fails the test instead of hanging it.
async fn timed<F, T>(call: F) -> Result<T, Status>
where
    F: std::future::Future<Output = Result<T, Status>>,
{
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| Status::deadline_exceeded("the harness call took over 30 s"))?
}

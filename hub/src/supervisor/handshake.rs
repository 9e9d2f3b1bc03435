//! Starting a plugin: launch it, read its handshake line (bounded in size,
//! racing `start_timeout` and the child's exit), parse it with
//! `switchyard_wire::handshake::parse_handshake_line` (the only parser),
//! connect (over TLS with AutoMTLS), then send the `grpc.health.v1` check of
//! the `plugin` service, `GetMetadata` and `Configure` together on the one
//! HTTP/2 connection (their answers count once the plugin says SERVING; a
//! plugin not serving yet that refused `Configure` as UNAVAILABLE gets it
//! again once it serves), and open `GRPCStdio`. The whole sequence is
//! bounded by `start_timeout`.
//!
//! Every failure is a [`StartError`] naming the plugin and saying what went
//! wrong, with the plugin's last stderr lines attached; [`abort`] kills the
//! plugin's whole process group and reaps it, so a failed start leaves no
//! process behind.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use switchyard_wire::handshake::{
    APP_PROTOCOL_VERSIONS, HandshakeLine, HandshakeLineError, MAX_HANDSHAKE_LINE_BYTES, Network,
    parse_handshake_line,
};
use switchyard_wire::mtls::{Identity, MtlsError};
use tokio::io::BufReader;
use tokio::process::ChildStdout;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tracing::Instrument as _;

use super::spawn::{Child, SpawnError, SpawnSpec, Spawner};
use super::stdio::{self, LineSplitter, StderrParser, StderrTail};
use super::stop::{describe_exit, kill_now};
use crate::config::{ConfigLocation, PluginConfig, TlsMode};
use crate::domain::{ConfigProblem, PluginMetadata};
use crate::rpc::channel::{self, ConnectError};
use crate::rpc::plugin::{HealthStatus, PluginCallError, PluginClient, StdioChannel};

/// How often the health check is retried while the plugin says NOT_SERVING.
const HEALTH_RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// How long a failed start waits for the rest of the plugin's stderr.
const STDERR_GRACE: Duration = Duration::from_secs(1);

/// A launched plugin process whose handshake has not completed yet.
#[derive(Debug)]
pub struct Launched {
    /// The process (its own process group leader).
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its process group (equal to its pid).
    pub pgid: Pid,
    /// Its stdout, for the handshake line and then draining.
    pub stdout: BufReader<ChildStdout>,
    /// The task draining its stderr into the log.
    pub stderr_task: JoinHandle<()>,
    /// Its last stderr lines.
    pub tail: StderrTail,
    /// The hub's certificate for this launch when AutoMTLS is on (its PEM
    /// went to the plugin in `PLUGIN_CLIENT_CERT`).
    pub tls: Option<Identity>,
}

/// A plugin that completed its handshake.
#[derive(Debug)]
pub struct Handshaken {
    /// The parsed handshake line.
    pub line: HandshakeLine,
    /// The connected plugin-wide client.
    pub client: PluginClient,
    /// What the plugin says it is.
    pub metadata: PluginMetadata,
    /// The task draining `GRPCStdio`; abort it when the plugin stops.
    pub stdio_task: JoinHandle<()>,
}

/// What a start was doing when it timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the handshake line.
    ReadingLine,
    /// Connecting to the socket.
    Connecting,
    /// Waiting for the health check to say SERVING.
    HealthCheck,
    /// Waiting for `GetMetadata`.
    Metadata,
    /// Waiting for `Configure`.
    Configure,
}

/// Why a plugin failed to start (the part after "plugin `NAME` ").
#[derive(Debug, thiserror::Error)]
pub enum StartFailure {
    /// The process could not be started at all.
    #[error("could not be started: {0}")]
    Spawn(#[from] SpawnError),
    /// The hub could not make its AutoMTLS certificate.
    #[error("could not be given a certificate for AutoMTLS: {0}")]
    Certificate(MtlsError),
    /// It exited during the handshake.
    #[error("{0} before completing the handshake")]
    ExitedEarly(String),
    /// It closed stdout without printing a line and without exiting.
    #[error("closed its stdout without printing a handshake line")]
    ClosedStdout,
    /// It did not print a line in time.
    #[error("did not print its handshake line within {}", humantime::format_duration(*.0))]
    NoLine(Duration),
    /// It printed a line but a later step did not finish in time.
    #[error("did not complete its handshake within {} (timed out during {phase})", humantime::format_duration(*timeout))]
    Timeout {
        /// The start timeout.
        timeout: Duration,
        /// Where it was stuck.
        phase: Phase,
    },
    /// The line exceeded the limit.
    #[error("printed a handshake line longer than {MAX_HANDSHAKE_LINE_BYTES} bytes")]
    LineTooLong,
    /// The line did not parse.
    #[error("printed an invalid handshake line: {0}")]
    InvalidLine(#[from] HandshakeLineError),
    /// Reading stdout failed.
    #[error("could not be read from: {0}")]
    Stdout(std::io::Error),
    /// Connecting failed.
    #[error("could not be reached: {0}")]
    Connect(#[from] ConnectError),
    /// The health check failed.
    #[error("failed its health check: {0}")]
    Health(String),
    /// `GetMetadata` failed or returned something invalid.
    #[error("returned invalid metadata: {0}")]
    Metadata(String),
    /// `Configure` failed.
    #[error("failed to configure: {0}")]
    ConfigureCall(String),
    /// `Configure` returned problems.
    #[error("rejected its configuration: {}", .0.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rejected(Rejection),
}

/// A plugin's answer to `Configure` that refused its `config` table.
#[derive(Debug)]
pub struct Rejection {
    /// Where the `config` table is in the config file.
    pub config_at: ConfigLocation,
    /// What the plugin found wrong (never empty).
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::ReadingLine => "the wait for the handshake line",
            Phase::Connecting => "the connection to its socket",
            Phase::HealthCheck => "the health check",
            Phase::Metadata => "GetMetadata",
            Phase::Configure => "Configure",
        })
    }
}

/// A failed start, naming the plugin, with its last stderr lines.
#[derive(Debug)]
pub struct StartError {
    /// The instance name.
    pub plugin: String,
    /// What went wrong.
    pub failure: StartFailure,
    /// The plugin's last stderr lines (oldest first).
    pub stderr_tail: Vec<String>,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A rejected config points at its table, as config errors do.
        if let StartFailure::Rejected(rejection) = &self.failure {
            write!(f, "{}: ", rejection.config_at)?;
        }
        write!(f, "plugin `{}` {}", self.plugin, self.failure)?;
        if !self.stderr_tail.is_empty() {
            write!(f, "; its last stderr lines were:")?;
            for line in &self.stderr_tail {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for StartError {}

/// Launches the plugin's process and starts draining its stderr.
pub async fn launch(
    plugin: &PluginConfig,
    spawner: &Spawner,
    socket_dir: &Path,
) -> Result<Launched, StartError> {
    let tls = match plugin.tls {
        TlsMode::Off => None,
        TlsMode::Auto => Some(Identity::generate().map_err(|err| StartError {
            plugin: plugin.name.clone(),
            failure: StartFailure::Certificate(err),
            stderr_tail: Vec::new(),
        })?),
    };
    let spec = SpawnSpec::for_plugin(plugin, socket_dir)
        .with_client_cert(tls.as_ref().map(Identity::cert_pem));
    let mut child = spawner.spawn(spec).await.map_err(|err| StartError {
        plugin: plugin.name.clone(),
        failure: StartFailure::Spawn(err),
        stderr_tail: Vec::new(),
    })?;
    let pid = child.id().unwrap_or(0);
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
    let tail = StderrTail::default();
    let stderr_task = match child.stderr.take() {
        Some(stderr) => tokio::spawn(
            stdio::drain_stderr(plugin.name.clone(), stderr, tail.clone()).in_current_span(),
        ),
        None => tokio::spawn(async {}),
    };
    let Some(stdout) = child.stdout.take() else {
        // Cannot happen (spawn.rs always pipes stdout), but never leave it running.
        kill_now(&mut child, pgid).await;
        return Err(StartError {
            plugin: plugin.name.clone(),
            failure: StartFailure::ClosedStdout,
            stderr_tail: tail.snapshot(),
        });
    };
    Ok(Launched {
        child,
        pid,
        pgid,
        stdout: BufReader::new(stdout),
        stderr_task,
        tail,
        tls,
    })
}

/// Runs the handshake on a launched plugin, bounded by its `start_timeout`
/// and racing the child's exit.
pub async fn handshake(
    launched: &mut Launched,
    plugin: &PluginConfig,
) -> Result<Handshaken, StartFailure> {
    let phase = Mutex::new(Phase::ReadingLine);
    let timeout = plugin.start_timeout;
    let result = tokio::select! {
        biased;
        result = tokio::time::timeout(timeout, steps(&mut launched.stdout, launched.tls.as_ref(), plugin, &phase)) => {
            match result {
                Ok(result) => result,
                Err(_) => {
                    let phase = phase.lock().map(|phase| *phase).unwrap_or(Phase::ReadingLine);
                    Err(if phase == Phase::ReadingLine {
                        StartFailure::NoLine(timeout)
                    } else {
                        StartFailure::Timeout { timeout, phase }
                    })
                }
            }
        }
        status = launched.child.wait() => Err(match status {
            Ok(status) => StartFailure::ExitedEarly(describe_exit(status)),
            Err(err) => StartFailure::Stdout(err),
        }),
    };
    match result {
        // Stdout closed: most likely the process is exiting; say how.
        Err(StartFailure::ClosedStdout) => {
            match tokio::time::timeout(Duration::from_millis(500), launched.child.wait()).await {
                Ok(Ok(status)) => Err(StartFailure::ExitedEarly(describe_exit(status))),
                _ => Err(StartFailure::ClosedStdout),
            }
        }
        other => other,
    }
}

fn set_phase(phase: &Mutex<Phase>, now: Phase) {
    if let Ok(mut phase) = phase.lock() {
        *phase = now;
    }
}

/// Reads the plugin's handshake line (bounded in size) and parses it; a
/// relative Unix socket path is made absolute against the plugin's working
/// directory.
async fn read_line(
    stdout: &mut BufReader<ChildStdout>,
    plugin: &PluginConfig,
) -> Result<HandshakeLine, StartFailure> {
    let line = match stdio::read_line_limited(stdout, MAX_HANDSHAKE_LINE_BYTES)
        .await
        .map_err(StartFailure::Stdout)?
    {
        None => return Err(StartFailure::ClosedStdout),
        Some(line) if line.truncated => return Err(StartFailure::LineTooLong),
        Some(line) => line,
    };
    let text = String::from_utf8_lossy(&line.bytes);
    let mut line = parse_handshake_line(&text, APP_PROTOCOL_VERSIONS)?;
    // A relative socket path is relative to the plugin's working directory,
    // not the hub's.
    if line.network == Network::Unix && !Path::new(&line.address).is_absolute() {
        line.address = plugin.working_dir.join(&line.address).display().to_string();
    }
    // Not the line itself: with AutoMTLS it holds a certificate, which is never logged.
    tracing::debug!(
        version = line.app_version,
        network = line.network.as_str(),
        address = %line.address,
        tls = line.server_cert_der.is_some(),
        "Plugin printed its handshake line."
    );
    Ok(line)
}

/// The first half of [`handshake`]: reads and parses the handshake line and
/// connects, nothing more (no health check, GetMetadata or Configure), bounded
/// by `start_timeout` and racing the child's exit. `switchyard conformance`
/// uses it to check each later step on its own.
pub async fn connect_only(
    launched: &mut Launched,
    plugin: &PluginConfig,
) -> Result<(HandshakeLine, channel::PluginChannel), StartFailure> {
    let phase = Mutex::new(Phase::ReadingLine);
    let timeout = plugin.start_timeout;
    let Launched {
        child, stdout, tls, ..
    } = launched;
    let tls = tls.as_ref();
    let work = async {
        let line = read_line(stdout, plugin).await?;
        set_phase(&phase, Phase::Connecting);
        let connection = channel::connect(&line, tls).await?;
        Ok((line, connection))
    };
    let result = tokio::select! {
        biased;
        result = tokio::time::timeout(timeout, work) => match result {
            Ok(result) => result,
            Err(_) => {
                let phase = phase.lock().map(|phase| *phase).unwrap_or(Phase::ReadingLine);
                Err(if phase == Phase::ReadingLine {
                    StartFailure::NoLine(timeout)
                } else {
                    StartFailure::Timeout { timeout, phase }
                })
            }
        },
        status = child.wait() => Err(match status {
            Ok(status) => StartFailure::ExitedEarly(describe_exit(status)),
            Err(err) => StartFailure::Stdout(err),
        }),
    };
    match result {
        Err(StartFailure::ClosedStdout) => {
            match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                Ok(Ok(status)) => Err(StartFailure::ExitedEarly(describe_exit(status))),
                _ => Err(StartFailure::ClosedStdout),
            }
        }
        other => other,
    }
}

async fn steps(
    stdout: &mut BufReader<ChildStdout>,
    tls: Option<&Identity>,
    plugin: &PluginConfig,
    phase: &Mutex<Phase>,
) -> Result<Handshaken, StartFailure> {
    // Where the time of a start goes, for the debug log.
    let begun = Instant::now();
    let line = read_line(stdout, plugin).await?;
    let line_at = begun.elapsed();

    set_phase(phase, Phase::Connecting);
    let connection = channel::connect(&line, tls).await?;
    let client = PluginClient::new(connection.channel.clone());
    let connected_at = begun.elapsed();

    set_phase(phase, Phase::HealthCheck);
    // Health, GetMetadata and Configure go out together on the one HTTP/2
    // connection, saving two round trips on every start. The metadata and
    // the Configure answer count only once the plugin says SERVING. A plugin
    // that was not serving yet and refused that first Configure as
    // UNAVAILABLE is configured again once it serves; otherwise Configure is
    // sent once per start, as the contract says.
    let (first_health, metadata, configured) = tokio::join!(
        client.health(),
        client.metadata(),
        client.configure(&plugin.config, &plugin.name)
    );
    let serving_at_once = match health_answer(first_health, &connection, &line)? {
        Serving::Yes => true,
        Serving::NotYet => {
            wait_until_serving(&client, &connection, &line).await?;
            false
        }
    };
    let healthy_at = begun.elapsed();

    let stdio_task =
        tokio::spawn(drain_grpc_stdio(plugin.name.clone(), client.clone()).in_current_span());

    set_phase(phase, Phase::Metadata);
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(err) => {
            stdio_task.abort();
            return Err(StartFailure::Metadata(match err {
                PluginCallError::Status(status) => status_text(&status),
                PluginCallError::Invalid(err) => err.to_string(),
            }));
        }
    };

    set_phase(phase, Phase::Configure);
    let configured = match configured {
        Err(status) if !serving_at_once && status.code() == tonic::Code::Unavailable => {
            client.configure(&plugin.config, &plugin.name).await
        }
        other => other,
    };
    let problems = match configured {
        Ok(problems) => problems,
        Err(status) => {
            stdio_task.abort();
            return Err(StartFailure::ConfigureCall(status_text(&status)));
        }
    };
    if !problems.is_empty() {
        stdio_task.abort();
        return Err(StartFailure::Rejected(Rejection {
            config_at: plugin.config_at.clone(),
            problems,
        }));
    }
    tracing::debug!(
        line = ?line_at,
        connect = ?connected_at.saturating_sub(line_at),
        health_metadata_configure = ?healthy_at.saturating_sub(connected_at),
        after_serving = ?begun.elapsed().saturating_sub(healthy_at),
        "Plugin completed its handshake."
    );
    Ok(Handshaken {
        line,
        client,
        metadata,
        stdio_task,
    })
}

/// What one health answer means during a start.
enum Serving {
    /// SERVING: the plugin may be used.
    Yes,
    /// Not yet (NOT_SERVING, or the server is not answering yet): ask again.
    NotYet,
}

/// Reads one answer of the health service about the `plugin` service.
fn health_answer(
    answer: Result<HealthStatus, tonic::Status>,
    connection: &channel::PluginChannel,
    line: &HandshakeLine,
) -> Result<Serving, StartFailure> {
    match answer {
        Ok(HealthStatus::Serving) => Ok(Serving::Yes),
        // Keep asking until SERVING or the start timeout.
        Ok(HealthStatus::NotServing(_)) => Ok(Serving::NotYet),
        // With AutoMTLS, a plugin that refuses the hub's certificate
        // shows up here, as a TLS alert on the connection.
        Err(_) if let Some(error) = connection.tls_error(line) => Err(StartFailure::Connect(error)),
        Err(status) if status.code() == tonic::Code::Unavailable => Ok(Serving::NotYet),
        Err(status) if status.code() == tonic::Code::NotFound => Err(StartFailure::Health(
            "it does not report the `plugin` service in grpc.health.v1".to_owned(),
        )),
        Err(status) => Err(StartFailure::Health(status_text(&status))),
    }
}

/// Asks the health service about the `plugin` service until it says SERVING
/// (the caller bounds the wait with the start timeout).
async fn wait_until_serving(
    client: &PluginClient,
    connection: &channel::PluginChannel,
    line: &HandshakeLine,
) -> Result<(), StartFailure> {
    loop {
        tokio::time::sleep(HEALTH_RETRY_INTERVAL).await;
        if let Serving::Yes = health_answer(client.health().await, connection, line)? {
            return Ok(());
        }
    }
}

fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        crate::rpc::code_name(status.code()).to_owned()
    } else {
        format!(
            "{}: {}",
            crate::rpc::code_name(status.code()),
            status.message()
        )
    }
}

/// Drains go-plugin's `GRPCStdio` stream into the log; a plugin that does not
/// serve it is fine.
async fn drain_grpc_stdio(plugin: String, client: PluginClient) {
    let mut stream = match client.stdio().await {
        Ok(stream) => stream,
        Err(status) if status.code() == tonic::Code::Unimplemented => return,
        Err(status) => {
            tracing::debug!(plugin = %plugin, error = %status, "Cannot open the plugin's GRPCStdio stream.");
            return;
        }
    };
    let mut stdout_lines = LineSplitter::default();
    let mut stderr_lines = LineSplitter::default();
    let mut stdout_parser = StderrParser::default();
    let mut stderr_parser = StderrParser::default();
    while let Some(chunk) = stream.next().await {
        let Ok((channel, data)) = chunk else { break };
        let (splitter, parser, name) = match channel {
            StdioChannel::Stdout => (&mut stdout_lines, &mut stdout_parser, "grpc-stdout"),
            StdioChannel::Stderr => (&mut stderr_lines, &mut stderr_parser, "grpc-stderr"),
        };
        for line in splitter.push(&data) {
            stdio::emit(&plugin, name, &parser.parse(&line));
        }
    }
    for (splitter, parser, name) in [
        (&mut stdout_lines, &mut stdout_parser, "grpc-stdout"),
        (&mut stderr_lines, &mut stderr_parser, "grpc-stderr"),
    ] {
        if let Some(line) = splitter.finish() {
            stdio::emit(&plugin, name, &parser.parse(&line));
        }
    }
}

/// Ends a failed start: kills the plugin's process group, reaps it, waits
/// (briefly) for the rest of its stderr, and builds the error.
pub async fn abort(launched: &mut Launched, plugin: &str, failure: StartFailure) -> StartError {
    kill_now(&mut launched.child, launched.pgid).await;
    // A grandchild could hold stderr open; do not wait for it for ever.
    let _ = tokio::time::timeout(STDERR_GRACE, &mut launched.stderr_task).await;
    StartError {
        plugin: plugin.to_owned(),
        failure,
        stderr_tail: launched.tail.snapshot(),
    }
}

//! Runs the real `testkit` binary to check what `serve()` does as a process:
//! the cookie check, version negotiation, the handshake line, hclog stderr,
//! SIGINT ignored, and clean exits on Controller.Shutdown and SIGTERM.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use switchyard_plugin_sdk::testing::connect_unix;
use switchyard_wire::handshake::{
    MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, NOT_LAUNCHED_BY_HUB_MESSAGE, parse_handshake_line,
};
use switchyard_wire::pb::plugin as gp;
use switchyard_wire::pb::v1 as pb;

const BIN: &str = env!("CARGO_BIN_EXE_testkit");

fn base_command(socket_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "1")
        .env("PLUGIN_UNIX_SOCKET_DIR", socket_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Kills the child if a test fails half-way, so no process outlives the test.
struct Running {
    child: Child,
    socket: PathBuf,
    stdout: BufReader<std::process::ChildStdout>,
    /// Reads stderr all along, as a host must, so the plugin never blocks on a full pipe.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Everything the plugin wrote on stderr (call after it exited).
    fn stderr(&mut self) -> String {
        self.stderr.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(command: &mut Command) -> Running {
    let mut child = command.spawn().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let handshake = parse_handshake_line(&line, &[1]).unwrap();
    assert_eq!(line, format!("1|1|unix|{}|grpc|\n", handshake.address));
    Running {
        child,
        socket: PathBuf::from(handshake.address),
        stdout,
        stderr: Some(stderr),
    }
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < deadline,
            "the plugin did not exit within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_the_cookie_it_explains_and_exits_1() {
    let output = Command::new(BIN).env_clear().output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end(), NOT_LAUNCHED_BY_HUB_MESSAGE);
}

#[test]
fn without_a_common_version_it_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = base_command(dir.path())
        .env("PLUGIN_PROTOCOL_VERSIONS", "7,8")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no common app protocol version"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn multiplexing_requests_get_a_false_seventh_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = base_command(dir.path())
        .env("PLUGIN_MULTIPLEX_GRPC", "true")
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.ends_with("|grpc||false\n"), "{line}");
}

#[tokio::test]
async fn serves_over_the_socket_and_exits_0_on_controller_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(base_command(dir.path()).env("SWITCHYARD_LOG", "testkit=trace,info"));
    assert_eq!(running.socket.parent().unwrap(), dir.path());
    assert!(
        running
            .socket
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("plugin")
    );

    let channel = connect_unix(&running.socket).await.unwrap();
    let mut health = tonic_health_client(channel.clone());
    let mut plugin = pb::plugin_client::PluginClient::new(channel.clone());
    let metadata = plugin
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "testkit");
    assert!(health.call("plugin").await);
    assert!(health.call("").await);

    // go-plugin hosts open these two streams right away; they must stay open.
    let mut stdio = gp::grpc_stdio_client::GrpcStdioClient::new(channel.clone());
    let mut stdio_stream = stdio.stream_stdio(()).await.unwrap().into_inner();
    let mut broker = gp::grpc_broker_client::GrpcBrokerClient::new(channel.clone());
    let (_offers, offers_rx) = tokio::sync::mpsc::channel::<gp::ConnInfo>(1);
    let mut broker_stream = broker
        .start_stream(tokio_stream::wrappers::ReceiverStream::new(offers_rx))
        .await
        .unwrap()
        .into_inner();

    let response = plugin
        .configure(pb::ConfigureRequest {
            config_json: br#"{"log_lines": true}"#.to_vec(),
            instance_name: "kit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.errors.is_empty());

    // SIGINT is ignored.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(running.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(health.call("plugin").await, "the plugin survived SIGINT");

    let mut controller = gp::grpc_controller_client::GrpcControllerClient::new(channel);
    let _ = controller.shutdown(gp::Empty {}).await;
    let status = wait_with_deadline(&mut running.child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(
        !running.socket.exists(),
        "the socket file is removed on exit"
    );
    // The held-open streams end with the plugin.
    assert!(matches!(stdio_stream.message().await, Ok(None) | Err(_)));
    assert!(matches!(broker_stream.message().await, Ok(None) | Err(_)));

    let mut rest = String::new();
    running.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing but the handshake line on stdout");

    let stderr = running.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for level in ["trace", "debug", "info", "warn", "error"] {
        let line = lines
            .iter()
            .find(|line| line["@message"] == format!("testkit log at {level}"))
            .unwrap_or_else(|| panic!("no {level} line in {stderr}"));
        assert_eq!(line["@level"], level);
        assert_eq!(line["@module"], "testkit");
        let timestamp = line["@timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6f%:z").is_ok(),
            "{timestamp}"
        );
    }
}

#[test]
fn exits_0_on_sigterm_and_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(&mut base_command(dir.path()));
    assert!(running.socket.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(running.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_deadline(&mut running.child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(!running.socket.exists());
}

#[tokio::test]
async fn exit_on_configure_exits_with_the_code_after_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(&mut base_command(dir.path()));
    let channel = connect_unix(&running.socket).await.unwrap();
    let mut plugin = pb::plugin_client::PluginClient::new(channel);
    let response = plugin
        .configure(pb::ConfigureRequest {
            config_json: br#"{"exit_on_configure": 3}"#.to_vec(),
            instance_name: "kit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.errors.is_empty());
    let status = wait_with_deadline(&mut running.child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(3));
}

/// A minimal grpc.health.v1 client.
struct HealthClient(tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>);

fn tonic_health_client(channel: tonic::transport::Channel) -> HealthClient {
    HealthClient(tonic_health::pb::health_client::HealthClient::new(channel))
}

impl HealthClient {
    async fn call(&mut self, service: &str) -> bool {
        let response = self
            .0
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        response.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    }
}

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn exits_when_its_parent_dies() {
    let dir = tempfile::tempdir().unwrap();
    // A shell starts the plugin in the background and exits once its stdin
    // closes (after the handshake, so the plugin has noted its parent),
    // orphaning the plugin.
    let command = base_command(dir.path());
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg("\"$0\" & echo \"pid:$!\"; read line")
        .arg(BIN)
        .env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            shell.env(key, value);
        }
    }
    let mut shell = shell
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(shell.stdout.take().unwrap());
    let mut pid = None;
    let mut handshake = None;
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(number) = line.trim().strip_prefix("pid:") {
            pid = Some(number.parse::<u32>().unwrap());
        } else {
            handshake = Some(line);
        }
    }
    let pid = pid.unwrap();
    assert!(handshake.unwrap().starts_with("1|1|unix|"));
    assert!(
        !has_exited(pid),
        "the plugin is running before its parent exits"
    );
    drop(shell.stdin.take());
    shell.wait().unwrap();
    let start = Instant::now();
    while !has_exited(pid) {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the orphaned plugin did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! The physical floor: a raw Unix-socket ping-pong of the benchmark record's
//! bytes between two processes (this binary re-executed as `floor-peer`),
//! blocking I/O on both sides, no framing beyond the fixed size.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Serves one connection: reads `size` bytes, writes them back, until EOF.
pub fn serve(socket: &Path, size: usize) -> anyhow::Result<()> {
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let (mut stream, _) = listener.accept().context("accept failed")?;
    let mut buffer = vec![0u8; size];
    loop {
        match stream.read_exact(&mut buffer) {
            Ok(()) => stream.write_all(&buffer).context("write failed")?,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err).context("read failed"),
        }
    }
}

/// Kills and reaps the echo process if the measurement ends early.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one round: starts the echo process, waits for its socket, then makes
/// `warmup + calls` sequential round trips of `message`, timing each measured one.
pub fn round(message: &[u8], calls: usize, warmup: usize) -> anyhow::Result<Vec<u64>> {
    let dir = tempfile::Builder::new()
        .prefix("sy-floor-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let socket = dir.path().join("floor.sock");
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut peer = Peer(
        Command::new(exe)
            .arg("floor-peer")
            .arg("--socket")
            .arg(&socket)
            .arg("--size")
            .arg(message.len().to_string())
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the floor peer")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match UnixStream::connect(&socket) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                if let Some(status) = peer.0.try_wait()? {
                    bail!("the floor peer exited early: {status}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(err) => return Err(err).context("cannot connect to the floor peer"),
        }
    };
    let mut answer = vec![0u8; message.len()];
    let mut samples = Vec::with_capacity(calls);
    for call in 0..warmup + calls {
        let start = Instant::now();
        stream.write_all(message)?;
        stream.read_exact(&mut answer)?;
        let elapsed = start.elapsed();
        if answer != message {
            bail!("the floor peer answered different bytes");
        }
        if call >= warmup {
            samples.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    drop(stream);
    let status = peer.0.wait()?;
    if !status.success() {
        bail!("the floor peer failed: {status}");
    }
    Ok(samples)
}

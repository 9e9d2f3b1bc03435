//! Running a short-lived command with a deadline and capturing its output.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait::wait_for;

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (lossily decoded).
    pub stdout: String,
    /// Everything it wrote to stderr (lossily decoded).
    pub stderr: String,
}

/// Runs `command` with stdin closed until it exits, for at most `timeout`.
///
/// # Panics
///
/// When it cannot be started or does not exit in time (it is killed first).
#[track_caller]
pub fn run_to_completion(command: &mut Command, timeout: Duration) -> Outcome {
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => panic!("cannot start {command:?}: {err}"),
    };
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let status = wait_for(timeout, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not exit within {timeout:?}");
    };
    let collect = |reader: Option<std::thread::JoinHandle<String>>| {
        reader
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default()
    };
    Outcome {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

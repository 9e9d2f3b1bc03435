//! The webhooks' floor (issue #15, item 5): a bare axum handler that reads
//! the body and answers 202, in its own process (the hidden `http-floor`
//! subcommand, on the runtime the hub uses: `Runtime::new`, one worker per
//! core), so its CPU is read from /proc like the hub's. The example
//! measurement offers it the same load with the same generator, right after
//! the hub at each rate.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::unistd::Pid;

use crate::footprint::cpu_ticks;

/// Serves `POST /webhooks/{name}` with 202 on 127.0.0.1:`port` until killed.
pub fn serve(port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/webhooks/{name}",
            axum::routing::post(|_body: axum::body::Bytes| async {
                axum::http::StatusCode::ACCEPTED
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// A running floor server; killed when dropped.
pub struct FloorServer {
    child: tokio::process::Child,
    port: u16,
}

impl FloorServer {
    /// Starts `bench_exe http-floor` on a free port and waits until it
    /// accepts connections (at most 10 s).
    pub async fn start(bench_exe: &Path) -> anyhow::Result<Self> {
        let port = crate::hub_process::free_port()?;
        let child = tokio::process::Command::new(bench_exe)
            .arg("http-floor")
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} http-floor", bench_exe.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the axum floor server did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(FloorServer { child, port })
    }

    /// The URL to offer load to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/floor", self.port)
    }

    /// Its CPU ticks so far (utime + stime).
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let pid = self
            .child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .context("the floor server has exited")?;
        cpu_ticks(Pid::from_raw(pid))
    }

    /// Kills it and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

//! Driving the go-plugin peer (bench/go-peer): `peer-host` launches
//! `peer-plugin` with `plugin.NewClient`, measures, and prints raw samples as
//! JSON, which this module parses so both sides go through the same
//! statistics.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The Go peer's binaries and the file holding the encoded record.
pub struct Peer {
    host: PathBuf,
    plugin: PathBuf,
    record_file: PathBuf,
}

/// Versions the peer was built with.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Versions {
    /// The Go toolchain.
    pub go: String,
    /// github.com/hashicorp/go-plugin.
    pub go_plugin: Option<String>,
    /// google.golang.org/grpc.
    pub grpc_go: Option<String>,
}

#[derive(Deserialize)]
struct Samples {
    samples_ns: Vec<u64>,
}

#[derive(Deserialize)]
struct StreamOutcome {
    items: u64,
    elapsed_ns: u64,
}

impl Peer {
    /// The peer, sending the record encoded in `record_file`.
    pub fn new(host: PathBuf, plugin: PathBuf, record_file: PathBuf) -> Self {
        Peer {
            host,
            plugin,
            record_file,
        }
    }

    /// The Go, go-plugin and grpc-go versions the peer was built with.
    pub async fn versions(&self) -> anyhow::Result<Versions> {
        self.run(&["version"]).await
    }

    /// One round of sequential unary Echo calls; the measured latencies.
    pub async fn latency(&self, calls: usize, warmup: usize) -> anyhow::Result<Vec<u64>> {
        let out: Samples = self
            .run(&[
                "latency",
                "-n",
                &calls.to_string(),
                "-warmup",
                &warmup.to_string(),
            ])
            .await?;
        Ok(out.samples_ns)
    }

    /// One round of streaming `items` through Enrich (`kind = "enrich"`) or
    /// HandleEvent (`"events"`); items per second.
    pub async fn stream(
        &self,
        kind: &str,
        items: usize,
        batch: usize,
        window: usize,
    ) -> anyhow::Result<f64> {
        let out: StreamOutcome = self
            .run(&[
                "stream",
                "-kind",
                kind,
                "-n",
                &items.to_string(),
                "-batch",
                &batch.to_string(),
                "-window",
                &window.to_string(),
            ])
            .await?;
        if out.elapsed_ns == 0 {
            bail!("the Go peer reported a zero elapsed time");
        }
        Ok(out.items as f64 / Duration::from_nanos(out.elapsed_ns).as_secs_f64())
    }

    /// `launches` launches, each timed from NewClient to the first successful call.
    pub async fn launch(&self, launches: usize) -> anyhow::Result<Vec<u64>> {
        let out: Samples = self.run(&["launch", "-n", &launches.to_string()]).await?;
        Ok(out.samples_ns)
    }

    async fn run<T: DeserializeOwned>(&self, command: &[&str]) -> anyhow::Result<T> {
        let output = tokio::process::Command::new(&self.host)
            .arg("-plugin")
            .arg(&self.plugin)
            .arg("-record")
            .arg(&self.record_file)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.host.display()))?;
        if !output.status.success() {
            bail!(
                "{} {} failed ({}): {}",
                self.host.display(),
                command.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "{} {} printed something that is not its JSON result",
                display(&self.host),
                command.join(" ")
            )
        })
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

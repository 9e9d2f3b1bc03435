//! Measurement 5, the durable pipeline: the real hub with generator (polling
//! input) -> testkit (enricher) -> store -> jsonl-output (with acks, fsync on),
//! on SQLite, and on PostgreSQL when `SWITCHYARD_BENCH_POSTGRES_URL` names a
//! database the run may fill. The rate is taken in the steady state: the
//! time between the output file holding 10% and 90% of the records.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::report::{Row, Target, Value};
use crate::rig::toml_string;
use crate::settings::Counts;

/// The environment variable naming a PostgreSQL database for the run.
pub const POSTGRES_ENV: &str = "SWITCHYARD_BENCH_POSTGRES_URL";

/// The plugin binaries the pipeline needs.
pub struct Binaries {
    /// The hub.
    pub hub: PathBuf,
    /// The generator plugin.
    pub generator: PathBuf,
    /// testkit, as the enricher.
    pub testkit: PathBuf,
    /// The jsonl-output plugin.
    pub jsonl_output: PathBuf,
}

/// Runs the pipeline on SQLite (and PostgreSQL when configured).
pub async fn measure(
    binaries: &Binaries,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let sqlite = run(binaries, counts, None).await?;
    let mut rows = vec![
        Row::new(
            "pipeline",
            "Durable pipeline generator -> enricher -> store -> jsonl-output, SQLite",
            Value::rate(Some(sqlite)),
            Value::none(),
            Value::none(),
            false,
            Some(Target::AtLeast(50_000.0)),
        )
        .note("records/s between 10% and 90% of the records reaching the output file; every event acked by jsonl-output after fdatasync"),
    ];
    let postgres_url = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty());
    let postgres = match &postgres_url {
        Some(url) => Some(run(binaries, counts, Some(url)).await?),
        None => None,
    };
    let row = Row::new(
        "pipeline",
        "Durable pipeline, PostgreSQL",
        Value::rate(postgres),
        Value::none(),
        Value::none(),
        false,
        None,
    );
    rows.push(if postgres.is_some() {
        row
    } else {
        row.pending(&format!(
            "no PostgreSQL server given (set {POSTGRES_ENV} to a database the run may fill)"
        ))
    });
    let details = serde_json::json!({
        "records": counts.pipeline_records,
        "sqlite_records_per_second": sqlite,
        "postgres_records_per_second": postgres,
    });
    Ok((rows, details))
}

async fn run(binaries: &Binaries, counts: &Counts, postgres: Option<&str>) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("sy-pipe-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let database = match postgres {
        Some(url) => toml_string(Path::new(url)),
        None => sqlite_url(dir.path()),
    };
    let output = dir.path().join("out.jsonl");
    let total = counts.pipeline_records;
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {database}\n\n\
         [pipeline]\nenrich = [\"enricher\"]\n\n\
         [plugins.gen]\ncommand = {}\n\
         config = {{ total = {total}, records_per_poll = 5000, batch_size = 500, payload_bytes = 100 }}\n\
         [plugins.gen.poll]\ninterval = \"1ms\"\n\n\
         [plugins.enricher]\ncommand = {}\n\n\
         [plugins.out]\ncommand = {}\nconfig = {{ path = {} }}\n\
         [plugins.out.output]\nbatch = 1000\n",
        toml_string(&binaries.generator),
        toml_string(&binaries.testkit),
        toml_string(&binaries.jsonl_output),
        toml_string(&output),
    );
    let hub = HubProcess::start(&binaries.hub, dir.path(), &source, port).await?;
    let result = wait_for_lines(&output, total).await;
    let tail = hub.log_tail(10);
    hub.stop().await?;
    result.with_context(|| format!("the hub's last log lines:\n{tail}"))
}

/// Watches the output file until it holds `total` lines; the rate between 10% and 90%.
async fn wait_for_lines(output: &Path, total: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let (low, high) = (total / 10, total * 9 / 10);
    let mut low_at = None;
    loop {
        let lines = count_lines(output);
        let now = Instant::now();
        if low_at.is_none() && lines >= low {
            low_at = Some((now, lines));
        }
        if lines >= high
            && let Some((start, start_lines)) = low_at
        {
            let elapsed = now.duration_since(start).as_secs_f64();
            if elapsed <= 0.0 || lines <= start_lines {
                bail!("the pipeline finished too fast to time; raise the record count");
            }
            return Ok((lines - start_lines) as f64 / elapsed);
        }
        if now > deadline {
            bail!("only {lines} of {total} records reached the output within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&byte| byte == b'\n').count() as u64)
        .unwrap_or(0)
}

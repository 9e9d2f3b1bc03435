//! Measurement 4, restart: the real hub supervising testkit with zero
//! backoff (`initial_backoff = max_backoff = "0s"`, no jitter); each sample is
//! from SIGKILL of the plugin to the first successful `call/enrich` answered
//! by the new process (the API shows a new pid in state `running`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::latency::nanos;
use crate::report::{Row, Target, Value};
use crate::rig::{INSTANCE, plugins_toml};
use crate::settings::Counts;
use crate::stats;

/// Runs the restarts and returns the report row and the summary.
pub async fn measure(
    hub: &Path,
    testkit: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let dir = tempfile::Builder::new()
        .prefix("sy-restart-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\n\n{}\
         [plugins.{INSTANCE}.restart]\npolicy = \"always\"\ninitial_backoff = \"0s\"\n\
         max_backoff = \"0s\"\njitter = false\nmax_restarts = 100000\n",
        sqlite_url(dir.path()),
        plugins_toml(testkit, 1)
    );
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    let http = reqwest::Client::new();
    let base = hub_process.base_url();
    let mut samples = Vec::new();
    let result = async {
        for index in 0..counts.restarts {
            eprintln!("restart: {}/{}", index + 1, counts.restarts);
            let old = running_pid(&http, &base)
                .await?
                .context("testkit is not running before the kill")?;
            let start = Instant::now();
            kill(old, Signal::SIGKILL).context("cannot SIGKILL testkit")?;
            let deadline = start + Duration::from_secs(10);
            loop {
                if let Some(pid) = running_pid(&http, &base).await?
                    && pid != old
                    && enrich_succeeds(&http, &base).await
                {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("testkit was not serving again 10 s after SIGKILL");
                }
            }
            samples.push(nanos(start.elapsed()));
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = result {
        let tail = hub_process.log_tail(10);
        let _ = hub_process.stop().await;
        return Err(err.context(format!("the hub's last log lines:\n{tail}")));
    }
    hub_process.stop().await?;
    let summary = stats::summarize(&mut samples);
    let rows = vec![
        Row::new(
            "restart",
            "Restart: SIGKILL to serving again, zero backoff, p50",
            Value::millis(summary.map(|s| s.p50_ns)),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(10.0)),
        )
        .note("go-plugin has no automatic restart to compare with; zero backoff is configured; each sample polls the admin API until a new pid is running and a call/enrich succeeds"),
    ];
    Ok((
        rows,
        serde_json::json!({ "sigkill_to_first_call": summary }),
    ))
}

/// The plugin's pid when the API says it is running.
async fn running_pid(http: &reqwest::Client, base: &str) -> anyhow::Result<Option<Pid>> {
    let status: serde_json::Value = http
        .get(format!("{base}/api/v1/plugins/{INSTANCE}"))
        .send()
        .await
        .context("GET /api/v1/plugins/NAME failed")?
        .json()
        .await
        .context("GET /api/v1/plugins/NAME did not answer JSON")?;
    if status.get("state").and_then(|state| state.as_str()) != Some("running") {
        return Ok(None);
    }
    Ok(status
        .get("pid")
        .and_then(|pid| pid.as_i64())
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw))
}

/// Whether one record goes through `call/enrich`.
async fn enrich_succeeds(http: &reqwest::Client, base: &str) -> bool {
    http.post(format!("{base}/api/v1/plugins/{INSTANCE}/call/enrich"))
        .header("content-type", "application/json")
        .body(r#"{"records":[{"id":"1","payload":{}}]}"#)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

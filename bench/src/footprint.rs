//! Measurement 7, footprint: the real `switchyard` binary on a generated
//! plugins.toml of N testkit instances. After /readyz answers 200 and a
//! settling pause, it reads the hub's VmRSS from /proc/PID/status and its CPU
//! ticks (utime + stime from /proc/PID/stat) over an idle window, then the
//! per-plugin increment between the smallest and largest N.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use nix::unistd::Pid;
use serde::Serialize;

use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::report::{Row, Target, Value};
use crate::rig::plugins_toml;
use crate::settings::Counts;

/// What one hub run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Plugins supervised.
    pub plugins: usize,
    /// The hub's resident set after settling, in KiB.
    pub hub_rss_kib: u64,
    /// The hub's peak resident set (VmHWM), in KiB.
    pub hub_peak_rss_kib: u64,
    /// The hub's CPU use over the idle window, in percent of one core.
    pub hub_idle_cpu_percent: f64,
    /// The mean resident set of one testkit process, in KiB.
    pub plugin_rss_kib: u64,
    /// From spawning the hub to /readyz answering 200.
    pub ready_ms: u64,
}

/// Runs the hub once per configured plugin count and returns the rows.
pub async fn measure(
    hub: &Path,
    testkit: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let mut samples = Vec::new();
    for &plugins in &counts.footprint_plugins {
        eprintln!("footprint: {plugins} plugins");
        samples.push(run_hub(hub, testkit, plugins, counts).await?);
    }
    let mut rows = Vec::new();
    for sample in &samples {
        let target = (sample.plugins == 10).then_some(Target::AtMost(30.0));
        rows.push(Row::new(
            "footprint",
            format!("Hub RSS, {} plugins", sample.plugins),
            Value::megabytes(Some(sample.hub_rss_kib)),
            Value::none(),
            Value::none(),
            true,
            target,
        ));
        rows.push(Row::new(
            "footprint",
            format!("Hub idle CPU, {} plugins (% of a core)", sample.plugins),
            Value::percent(Some(sample.hub_idle_cpu_percent)),
            Value::none(),
            Value::none(),
            true,
            None,
        ));
    }
    let smallest = samples.iter().min_by_key(|s| s.plugins);
    let largest = samples.iter().max_by_key(|s| s.plugins);
    let mut increment_kib = None;
    if let (Some(small), Some(large)) = (smallest, largest)
        && large.plugins > small.plugins
    {
        let delta = large.hub_rss_kib as f64 - small.hub_rss_kib as f64;
        increment_kib = Some(delta / (large.plugins - small.plugins) as f64);
        rows.push(Row::new(
            "footprint",
            format!(
                "Hub RSS per additional plugin, {} -> {}",
                small.plugins, large.plugins
            ),
            Value::megabytes_f(increment_kib),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(0.5)),
        ));
    }
    if let Some(sample) = largest {
        rows.push(
            Row::new(
                "footprint",
                "testkit RSS, one plugin process",
                Value::megabytes(Some(sample.plugin_rss_kib)),
                Value::none(),
                Value::none(),
                true,
                None,
            )
            .note("the plugin's own memory, not the hub's"),
        );
    }
    let details = serde_json::json!({
        "samples": samples,
        "hub_rss_increment_kib_per_plugin": increment_kib,
    });
    Ok((rows, details))
}

async fn run_hub(
    hub: &Path,
    testkit: &Path,
    plugins: usize,
    counts: &Counts,
) -> anyhow::Result<Sample> {
    let dir = tempfile::Builder::new()
        .prefix("sy-foot-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\n\n{}",
        sqlite_url(dir.path()),
        plugins_toml(testkit, plugins)
    );
    let start = Instant::now();
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    let pid = hub_process.pid().context("the hub has no pid")?;
    let base = hub_process.base_url();
    let http = reqwest::Client::new();
    let ready_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    tokio::time::sleep(counts.footprint_settle).await;
    let ticks_before = cpu_ticks(pid)?;
    let idle_start = Instant::now();
    tokio::time::sleep(counts.footprint_idle).await;
    let ticks_after = cpu_ticks(pid)?;
    let idle = idle_start.elapsed().as_secs_f64();
    let (hub_rss_kib, hub_peak_rss_kib) = rss_kib(pid)?;
    let plugin_pids = plugin_pids(&http, &base).await?;
    let mut plugin_total = 0;
    for plugin_pid in &plugin_pids {
        plugin_total += rss_kib(*plugin_pid).map(|(rss, _)| rss).unwrap_or(0);
    }
    hub_process.stop().await?;
    let clock_ticks = clock_ticks_per_second();
    Ok(Sample {
        plugins,
        hub_rss_kib,
        hub_peak_rss_kib,
        hub_idle_cpu_percent: (ticks_after.saturating_sub(ticks_before)) as f64
            / clock_ticks
            / idle
            * 100.0,
        plugin_rss_kib: plugin_total / plugin_pids.len().max(1) as u64,
        ready_ms,
    })
}

async fn plugin_pids(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Pid>> {
    let plugins: Vec<serde_json::Value> = http
        .get(format!("{base}/api/v1/plugins"))
        .send()
        .await
        .context("GET /api/v1/plugins failed")?
        .json()
        .await
        .context("GET /api/v1/plugins did not answer a JSON array")?;
    Ok(plugins
        .iter()
        .filter_map(|plugin| plugin.get("pid")?.as_i64())
        .filter_map(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw)
        .collect())
}

/// VmRSS and VmHWM of `pid`, in KiB.
pub fn rss_kib(pid: Pid) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Ok((
        field("VmRSS:").context("no VmRSS")?,
        field("VmHWM:").unwrap_or(0),
    ))
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: Pid) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces: count from after ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let parse = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .context("malformed /proc/PID/stat")
    };
    Ok(parse(11)? + parse(12)?)
}

/// The kernel's clock ticks per second (`USER_HZ`, the unit of /proc/PID/stat).
pub fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |ticks| ticks as f64)
}

//! Part of measurement 7, footprint: the hub's peak memory while large
//! records pile up. The real `switchyard` binary stores records of 1 MiB
//! from the generator while its only output is down (its command exits at
//! once, so the supervisor keeps restarting it and nothing is delivered).
//! Before the outbox feed and the output's scans were bounded in bytes, the
//! feed kept every such record in memory (up to 8192 of them), so the peak
//! grew with the records stored; now it stays flat. Then one admin API
//! page of those records (`limit=1000`, the largest) and the peak again:
//! before pages were cut by bytes, that one request took the hub's peak
//! from about 0.6 to 2.8 GB.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::footprint::rss_kib;
use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::report::{Row, Value};
use crate::rest_poll::stored_counter;
use crate::settings::Counts;

/// Each record's payload: the generator's largest.
const PAYLOAD_BYTES: u64 = 1024 * 1024;

/// Disk the measurement takes per record's payload byte: the SQLite file and
/// its WAL held about 2 bytes each at their largest (610 MB for 300 records
/// of 1 MiB), with room to spare.
const DISK_PER_PAYLOAD_BYTE: u64 = 3;

/// Stores `counts.large_records` records of 1 MiB with the output down and
/// returns the row and the details.
pub async fn measure(
    hub: &Path,
    generator: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let records = counts.large_records;
    eprintln!("footprint: {records} records of 1 MiB with the output down");
    let dir = tempfile::Builder::new()
        .prefix("sy-large-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    check_free_disk(dir.path(), records * PAYLOAD_BYTES * DISK_PER_PAYLOAD_BYTE)?;
    let port = free_port()?;
    let generator = crate::rig::toml_string(generator);
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {database}\n\n\
         [plugins.gen]\ncommand = {generator}\n\
         config = {{ total = {records}, records_per_poll = 64, batch_size = 16, payload_bytes = {PAYLOAD_BYTES} }}\n\
         [plugins.gen.poll]\ninterval = \"1ms\"\n\n\
         [plugins.out]\ncommand = \"/bin/false\"\n[plugins.out.output]\n",
        database = sqlite_url(dir.path()),
    );
    let hub_process = HubProcess::start_alive(hub, dir.path(), &source, port).await?;
    let pid = hub_process.pid().context("the hub has no pid")?;
    let base = hub_process.base_url();
    let http = reqwest::Client::new();
    let metrics = format!("{base}/metrics");
    let start = Instant::now();
    let stored = loop {
        let stored = stored_counter(&http, &metrics).await.unwrap_or(0);
        if stored >= records {
            break stored;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let tail = hub_process.log_tail(10);
            bail!(
                "only {stored} of {records} large records stored within 300 s; the hub's last log lines:\n{tail}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seconds = start.elapsed().as_secs_f64();
    let (_, peak_kib) = rss_kib(pid)?;
    let page = admin_page_peak(&http, &base, pid, peak_kib).await;
    hub_process.stop().await?;
    let (page_records, page_peak_kib) = page?;
    let row = Row::new(
        "footprint",
        format!("Hub peak RSS, {records} records of 1 MiB stored, output down"),
        Value::megabytes(Some(peak_kib)),
        Value::none(),
        Value::none(),
        true,
        None,
    )
    .note(&format!(
        "VmHWM of the hub while the generator's records of 1 MiB ({records} MiB in all) were stored and its only output never started; flat in the number of records (before the outbox feed and the output's scans were bounded in bytes: 3,352 MiB for 3,000 records)"
    ));
    let page_row = Row::new(
        "footprint",
        "Hub peak RSS after GET /api/v1/records?limit=1000 of those records",
        Value::megabytes(Some(page_peak_kib)),
        Value::none(),
        Value::none(),
        true,
        None,
    )
    .note(&format!(
        "VmHWM of the same hub after one admin API page of the records of 1 MiB (limit 1000, the largest), against {:.0} MB before it: the page held {page_records} records, cut at 16 MiB past its first (before the pages were cut by bytes it held 1000 such records: docs/benchmarks.md)",
        peak_kib as f64 / 1024.0
    ));
    let details = serde_json::json!({
        "records": stored,
        "payload_bytes": PAYLOAD_BYTES,
        "hub_peak_rss_kib": peak_kib,
        "seconds": seconds,
        "admin_page_records": page_records,
        "hub_peak_rss_after_admin_page_kib": page_peak_kib,
    });
    Ok((vec![row, page_row], details))
}

/// Fails at once, naming both figures, when the file system of `dir` has
/// less than `needed` bytes free: a full disk would otherwise show only as
/// the hub refusing writes minutes later.
fn check_free_disk(dir: &Path, needed: u64) -> anyhow::Result<()> {
    let stats = nix::sys::statvfs::statvfs(dir)
        .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
    let free = stats
        .blocks_available()
        .saturating_mul(stats.fragment_size());
    if free < needed {
        bail!(
            "{} has {} MiB free; storing these records takes about {} MiB",
            dir.display(),
            free >> 20,
            needed >> 20
        );
    }
    Ok(())
}

/// Asks the hub at `base` for the largest page of stored records and
/// returns how many it held and the hub's peak RSS (KiB) afterwards, at
/// least `peak_before_kib`.
async fn admin_page_peak(
    http: &reqwest::Client,
    base: &str,
    pid: nix::unistd::Pid,
    peak_before_kib: u64,
) -> anyhow::Result<(usize, u64)> {
    let answer = http
        .get(format!("{base}/api/v1/records?limit=1000"))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .context("GET /api/v1/records")?;
    let status = answer.status();
    let body: serde_json::Value = answer
        .json()
        .await
        .context("the page of records is not JSON")?;
    if !status.is_success() {
        bail!("GET /api/v1/records answered {status}: {body}");
    }
    let records = body["records"].as_array().map_or(0, Vec::len);
    let (_, peak_kib) = rss_kib(pid)?;
    Ok((records, peak_kib.max(peak_before_kib)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_too_small_for_the_records_fails_before_the_hub_starts() {
        let dir = tempfile::tempdir().expect("temp dir");
        check_free_disk(dir.path(), 1).expect("one byte is free");
        let error = check_free_disk(dir.path(), u64::MAX)
            .expect_err("no disk has 16 EiB free")
            .to_string();
        assert!(
            error.contains("MiB free; storing these records takes about"),
            "{error}"
        );
    }
}

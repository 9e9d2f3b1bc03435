//! Measurement 8, rest-poll: the real hub polling a paginated JSON API with
//! the `rest-poll` plugin (found next to testkit) through an in-process fake
//! API on loopback, pages of 100, SQLite. Figures: records/s of the backfill
//! (from the first page request until `switchyard_records_stored_total`
//! reaches the item count, scraped from `/metrics` every 20 ms), and the
//! hub's CPU (utime + stime from `/proc/PID/stat`) over that window per
//! record. Every record is checked stored once afterwards. Nothing is
//! asserted about speed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Json;
use axum::extract::{Query, State};
use serde_json::json;

use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::report::{Row, Value};
use crate::settings::Counts;

/// Items per page.
const PAGE_SIZE: u64 = 100;

/// When the fake served the first page, and the hub's CPU ticks then.
#[derive(Default)]
struct Walk {
    hub_pid: Option<nix::unistd::Pid>,
    first: Option<(Instant, u64)>,
    total: u64,
}

type Shared = Arc<Mutex<Walk>>;

/// `GET /items?page=N&per_page=100`: `{"data": [...]}`, empty past the end.
async fn items(
    State(walk): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    let page: u64 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    // The hub polls as soon as the plugin runs, possibly before the bench
    // knows the hub's pid: the first page waits for it, so the CPU window
    // starts at the walk's start.
    while page == 1 && lock(&walk).hub_pid.is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut walk = lock(&walk);
    let ticks = walk
        .hub_pid
        .and_then(|pid| cpu_ticks(pid).ok())
        .unwrap_or(0);
    let start = (page.saturating_sub(1)) * PAGE_SIZE;
    let end = (start + PAGE_SIZE).min(walk.total);
    if page == 1 && walk.first.is_none() {
        walk.first = Some((Instant::now(), ticks));
    }
    let data: Vec<serde_json::Value> = (start..end)
        .map(|n| json!({"id": format!("item-{n:08}"), "updated": n, "title": "A record from a paged API", "score": n % 7}))
        .collect();
    Json(json!({"data": data}))
}

/// Locks the shared walk (a poisoned lock still holds good figures).
fn lock(walk: &Shared) -> std::sync::MutexGuard<'_, Walk> {
    walk.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the backfill and returns its rows.
pub async fn measure(
    hub: &Path,
    testkit: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let plugin = testkit.with_file_name("rest-poll");
    if !plugin.is_file() {
        let why = format!(
            "{} is missing (cargo build --release -p rest-poll)",
            plugin.display()
        );
        return Ok((
            vec![Row::not_measured("rest-poll", "rest-poll backfill", &why)],
            json!(null),
        ));
    }
    let total = counts.rest_poll_records;
    let walk = Shared::default();
    lock(&walk).total = total;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new()
        .route("/items", axum::routing::get(items))
        .with_state(walk.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::Builder::new()
        .prefix("sy-rest-poll-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    // check_on_start = false: the first page request is the walk's.
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\n\n\
         [plugins.api]\ncommand = {}\n\
         [plugins.api.poll]\ninterval = \"1h\"\ntimeout = \"30m\"\n\
         [plugins.api.config]\nurl = \"{api}/items\"\ntype = \"item\"\nrecords_path = \"/data\"\n\
         updated_field = \"updated\"\ncheck_on_start = false\n\
         pagination = {{ kind = \"page\", size_param = \"per_page\", page_size = {PAGE_SIZE} }}\n",
        sqlite_url(dir.path()),
        crate::rig::toml_string(&plugin),
    );
    eprintln!("rest-poll: backfill of {total} records, pages of {PAGE_SIZE}");
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    let result = async {
        {
            let mut walk = lock(&walk);
            walk.hub_pid = hub_process.pid();
            if walk.hub_pid.is_none() {
                bail!("the hub has no pid");
            }
        }
        let http = reqwest::Client::new();
        let metrics = format!("{}/metrics", hub_process.base_url());
        let deadline = Instant::now() + Duration::from_secs(1800);
        let (end, end_ticks) = loop {
            if stored_counter(&http, &metrics).await? >= total {
                let ticks = hub_process.pid().map(cpu_ticks).transpose()?.unwrap_or(0);
                break (Instant::now(), ticks);
            }
            if Instant::now() > deadline {
                bail!("the backfill did not finish in 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stored = count_records(&hub_process.base_url(), total).await?;
        if stored != total {
            bail!("{stored} records stored, {total} expected");
        }
        let Some((start, start_ticks)) = lock(&walk).first else {
            bail!("the walk was not observed from its first page");
        };
        let seconds = end.duration_since(start).as_secs_f64();
        let cpu_us =
            (end_ticks.saturating_sub(start_ticks)) as f64 / clock_ticks_per_second() * 1e6;
        Ok((total as f64 / seconds, cpu_us / total as f64, seconds))
    }
    .await;
    let tail = hub_process.log_tail(10);
    hub_process.stop().await?;
    server.abort();
    let (per_second, cpu_us_per_record, seconds) =
        result.with_context(|| format!("the hub's last log lines:\n{tail}"))?;
    let rows = vec![
        Row::new(
            "rest-poll",
            format!("rest-poll backfill, pages of {PAGE_SIZE}, SQLite (records/s)"),
            Value::rate(Some(per_second)),
            Value::none(),
            Value::none(),
            false,
            None,
        )
        .note("the real hub and rest-poll against an in-process fake JSON API on loopback; from the first page request until /metrics counts every record stored (records and each page's checkpoint committed together); every record checked stored once afterwards"),
        Row::new(
            "rest-poll",
            "Hub CPU per record, rest-poll backfill",
            Value::micros(Some((cpu_us_per_record * 1000.0) as u64)),
            Value::none(),
            Value::none(),
            true,
            None,
        )
        .note("utime + stime of the hub process (10 ms ticks) over the window ÷ records, answering the /metrics scrapes (every 20 ms) included; the plugin and the fake API are not counted"),
    ];
    let details = json!({
        "records": total, "page_size": PAGE_SIZE, "seconds": seconds,
        "records_per_second": per_second, "hub_cpu_us_per_record": cpu_us_per_record,
    });
    Ok((rows, details))
}

/// The sum of `switchyard_records_stored_total` over its series, from the
/// hub's `/metrics` at `url`.
pub(crate) async fn stored_counter(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let text = http
        .get(url)
        .header("accept", "text/plain")
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("switchyard_records_stored_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Counts the stored records through the API (pages of 1000).
async fn count_records(base: &str, expected: u64) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut count = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/v1/records?limit=1000");
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let page: serde_json::Value = http.get(&url).send().await?.json().await?;
            count += page["records"].as_array().map_or(0, |r| r.len() as u64);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        if count >= expected || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

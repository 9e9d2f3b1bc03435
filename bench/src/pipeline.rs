//! Measurement 5, the durable pipeline: the real hub with generator (polling
//! input) -> testkit (enricher) -> store -> jsonl-output (with acks, fsync on),
//! on SQLite, and on PostgreSQL when `SWITCHYARD_BENCH_POSTGRES_URL` names a
//! server the run may use (each run creates its own database there and
//! drops it afterwards). The rate is taken in the steady state: the time
//! between the output file holding 10% and 90% of the records. Over the same
//! window the CPU time of every process involved (the hub, each plugin, and
//! the PostgreSQL server) is divided by the records: where the time goes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::unistd::Pid;
use serde::Serialize;
use switchyard_hub::store::{Store, testing};

use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::report::{Row, Target, Value};
use crate::rig::toml_string;
use crate::settings::Counts;

/// The environment variable naming a PostgreSQL server for the run (a
/// `postgres://` URL of any database there; the run creates its own).
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

/// The database one run writes to.
enum Database<'a> {
    /// A new SQLite file in the run's temp dir.
    Sqlite,
    /// A new database on this PostgreSQL server.
    Postgres { server: &'a str },
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
struct RunResult {
    /// The database, without passwords.
    database: String,
    /// Its durability settings (`synchronous=full`, `fsync=on`, ...).
    durability: String,
    /// Whether those settings make a commit survive a power cut.
    durable: bool,
    /// Records per second, steady state.
    records_per_second: f64,
    /// CPU microseconds per record, per process, over the same window.
    cpu_us_per_record: Vec<(String, f64)>,
}

impl RunResult {
    fn total_cpu_us(&self) -> f64 {
        self.cpu_us_per_record.iter().map(|(_, us)| us).sum()
    }

    fn cpu_note(&self) -> String {
        let parts: Vec<String> = self
            .cpu_us_per_record
            .iter()
            .map(|(name, us)| format!("{name} {us:.1} µs"))
            .collect();
        format!(
            "CPU time (utime + stime, 10 ms ticks) of each process between 10% and 90% of the records ÷ records: {}",
            parts.join(", ")
        )
    }
}

/// Runs the pipeline on SQLite (and PostgreSQL when configured).
pub async fn measure(
    binaries: &Binaries,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let sqlite = run(binaries, counts, Database::Sqlite).await?;
    let mut rows = vec![
        Row::new(
            "pipeline",
            "Durable pipeline generator -> enricher -> store -> jsonl-output, SQLite",
            Value::rate(Some(sqlite.records_per_second)),
            Value::none(),
            Value::none(),
            false,
            Some(Target::AtLeast(50_000.0)),
        )
        .note(&format!(
            "records/s between 10% and 90% of the records reaching the output file; every event acked by jsonl-output after fdatasync; SQLite {}",
            sqlite.durability
        )),
        cpu_row("SQLite", &sqlite),
    ];
    let server = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty());
    let postgres = match &server {
        Some(server) => Some(run(binaries, counts, Database::Postgres { server }).await?),
        None => None,
    };
    match &postgres {
        Some(postgres) => {
            rows.push(
                Row::new(
                    "pipeline",
                    "Durable pipeline, PostgreSQL",
                    Value::rate(Some(postgres.records_per_second)),
                    Value::none(),
                    Value::none(),
                    false,
                    // Issue #15's target, checked only when commits are
                    // durable (fsync and synchronous_commit on).
                    postgres.durable.then_some(Target::AtLeast(25_000.0)),
                )
                .note(&format!(
                    "the same pipeline on {} ({}){}",
                    postgres.database,
                    postgres.durability,
                    if postgres.durable {
                        ""
                    } else {
                        "; NOT DURABLE: the server loses commits in a crash, so this figure flatters"
                    }
                )),
            );
            rows.push(cpu_row("PostgreSQL", postgres));
        }
        None => rows.push(Row::not_measured(
            "pipeline",
            "Durable pipeline, PostgreSQL",
            &format!(
                "no PostgreSQL server given (set {POSTGRES_ENV} to a server the run may create a database on)"
            )),
        ),
    }
    let details = serde_json::json!({
        "records": counts.pipeline_records,
        "sqlite_records_per_second": sqlite.records_per_second,
        "postgres_records_per_second": postgres.as_ref().map(|run| run.records_per_second),
        "sqlite": sqlite,
        "postgres": postgres,
    });
    Ok((rows, details))
}

fn cpu_row(database: &str, result: &RunResult) -> Row {
    Row::new(
        "pipeline",
        format!("Durable pipeline CPU per record, all processes, {database}"),
        Value::micros(Some((result.total_cpu_us() * 1000.0) as u64)),
        Value::none(),
        Value::none(),
        true,
        None,
    )
    .note(&result.cpu_note())
}

async fn run(
    binaries: &Binaries,
    counts: &Counts,
    database: Database<'_>,
) -> anyhow::Result<RunResult> {
    let dir = tempfile::Builder::new()
        .prefix("sy-pipe-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    match database {
        Database::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run_on(binaries, counts, dir.path(), &url, None).await
        }
        Database::Postgres { server } => {
            with_database(server, "sy_bench", |url| async move {
                run_on(binaries, counts, dir.path(), &url, Some(server)).await
            })
            .await
        }
    }
}

/// Runs `work` on a new database (named `PREFIX_…`) on the PostgreSQL
/// server `server`, and drops the database afterwards.
pub(crate) async fn with_database<T, F, Fut>(
    server: &str,
    prefix: &str,
    work: F,
) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let url = testing::create_database(server, prefix)
        .await
        .with_context(|| {
            format!(
                "cannot create a database on {} ({POSTGRES_ENV})",
                testing::redacted(server)
            )
        })?;
    let result = work(url.clone()).await;
    if let Err(err) = testing::drop_database(server, &url).await {
        eprintln!(
            "bench: cannot drop the bench database {}: {err}",
            testing::redacted(&url)
        );
    }
    result
}

async fn run_on(
    binaries: &Binaries,
    counts: &Counts,
    dir: &Path,
    url: &str,
    server: Option<&str>,
) -> anyhow::Result<RunResult> {
    // Opening the store first creates the schema and reads the durability
    // settings the hub will run with.
    let store = Store::open(url)
        .await
        .with_context(|| format!("cannot open {}", testing::redacted(url)))?;
    let durability = store.durability().await?;
    store.close().await;
    let postmaster = match server {
        Some(_) => Some(postgres_main_pid(url).await?),
        None => None,
    };
    let port = free_port()?;
    let database = match server {
        Some(_) => toml_string(Path::new(url)),
        None => sqlite_url(dir),
    };
    let output = dir.join("out.jsonl");
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
    let hub = HubProcess::start(&binaries.hub, dir, &source, port).await?;
    let hub_pid = hub.pid().context("the hub has no pid")?;
    let result = wait_for_lines(&output, total, hub_pid, postmaster).await;
    let tail = hub.log_tail(10);
    hub.stop().await?;
    let (records_per_second, cpu_us_per_record) =
        result.with_context(|| format!("the hub's last log lines:\n{tail}"))?;
    Ok(RunResult {
        database: testing::redacted(url),
        durability: durability.to_string(),
        durable: durability.durable,
        records_per_second,
        cpu_us_per_record,
    })
}

/// The PostgreSQL server's main process (the parent of its backends).
pub(crate) async fn postgres_main_pid(url: &str) -> anyhow::Result<Pid> {
    let child = testing::server_process_pid(url).await?;
    parent_of(Pid::from_raw(child)).with_context(|| {
        format!("cannot find the PostgreSQL server's main process (parent of {child}); is the server on this machine?")
    })
}

/// Watches the output file until it holds `total` lines; returns the rate
/// between 10% and 90% and the CPU per record of each process over that
/// window.
pub(crate) async fn wait_for_lines(
    output: &Path,
    total: u64,
    hub: Pid,
    postmaster: Option<Pid>,
) -> anyhow::Result<(f64, Vec<(String, f64)>)> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let (low, high) = (total / 10, total * 9 / 10);
    let mut low_at = None;
    let mut counter = LineCounter::default();
    loop {
        let lines = counter.count(output);
        let now = Instant::now();
        if low_at.is_none() && lines >= low {
            low_at = Some((now, lines, cpu_snapshot(hub, postmaster)));
        }
        if lines >= high
            && let Some((start, start_lines, start_cpu)) = &low_at
        {
            let end_cpu = cpu_snapshot(hub, postmaster);
            let elapsed = now.duration_since(*start).as_secs_f64();
            if elapsed <= 0.0 || lines <= *start_lines {
                bail!("the pipeline finished too fast to time; raise the record count");
            }
            let records = (lines - start_lines) as f64;
            let us_per_tick = 1e6 / clock_ticks_per_second();
            let cpu = end_cpu
                .iter()
                .map(|(name, ticks)| {
                    let before = start_cpu
                        .iter()
                        .find(|(other, _)| other == name)
                        .map_or(0, |(_, ticks)| *ticks);
                    let used = ticks.saturating_sub(before) as f64;
                    (name.clone(), used * us_per_tick / records)
                })
                .collect();
            return Ok((records / elapsed, cpu));
        }
        if now > deadline {
            bail!("only {lines} of {total} records reached the output within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// CPU ticks so far of the hub, each of its plugins (by instance: the
/// pipeline runs each binary once, so the command name tells them apart)
/// and, for PostgreSQL, the server (its main process and every child).
pub(crate) fn cpu_snapshot(hub: Pid, postmaster: Option<Pid>) -> Vec<(String, u64)> {
    let mut snapshot = vec![("hub".to_owned(), cpu_ticks(hub).unwrap_or(0))];
    let processes = processes();
    for (pid, parent, name) in &processes {
        if *parent == hub {
            let label = match name.as_str() {
                "testkit" => "enricher (testkit)".to_owned(),
                other => other.to_owned(),
            };
            snapshot.push((label, cpu_ticks(*pid).unwrap_or(0)));
        }
    }
    if let Some(postmaster) = postmaster {
        snapshot.push((
            "postgres server".to_owned(),
            server_ticks(&processes, postmaster),
        ));
    }
    snapshot
}

/// CPU ticks so far of a PostgreSQL server: its main process and every
/// child (backends, the WAL writer, the checkpointer).
pub(crate) fn postgres_server_ticks(postmaster: Pid) -> u64 {
    server_ticks(&processes(), postmaster)
}

fn server_ticks(processes: &[(Pid, Pid, String)], postmaster: Pid) -> u64 {
    processes
        .iter()
        .filter(|(pid, parent, _)| *pid == postmaster || *parent == postmaster)
        .map(|(pid, _, _)| cpu_ticks(*pid).unwrap_or(0))
        .sum()
}

/// Every process: (pid, parent pid, command name).
fn processes() -> Vec<(Pid, Pid, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let pid = Pid::from_raw(pid);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_owned();
            let parent: i32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, Pid::from_raw(parent), name))
        })
        .collect()
}

/// The parent of `pid`.
fn parent_of(pid: Pid) -> Option<Pid> {
    processes()
        .into_iter()
        .find(|(candidate, _, _)| *candidate == pid)
        .map(|(_, parent, _)| parent)
}

/// Counts the lines of a file that only grows, reading only what is new.
#[derive(Default)]
struct LineCounter {
    offset: u64,
    lines: u64,
}

impl LineCounter {
    fn count(&mut self, path: &Path) -> u64 {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return self.lines;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return self.lines;
        }
        let mut buffer = vec![0_u8; 1 << 16];
        while let Ok(read) = file.read(&mut buffer) {
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            self.lines += buffer[..read].iter().filter(|&&byte| byte == b'\n').count() as u64;
        }
        self.lines
    }
}

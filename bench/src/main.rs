//! `switchyard-bench`: Switchyard's benchmark suite. One run measures call
//! latency, stream throughput, launch time and the hub's footprint, side by
//! side with HashiCorp go-plugin (the Go peer in `bench/go-peer`) and the
//! physical floor (a raw Unix-socket ping-pong), interleaving rounds, and
//! writes a JSON report and a markdown table. See docs/benchmarks.md.
//!
//! Module map:
//! * [`settings`]: counts per mode and the paths of the binaries under test.
//! * [`payload`]: the one fixed record every measurement sends.
//! * [`stats`]: exact percentiles from sorted samples.
//! * [`machine`]: CPU model, cores, kernel, date.
//! * [`rig`]: launching testkit through the hub library's supervisor;
//!   [`linkage`]: whether a plugin binary is linked statically.
//! * [`goplugin`]: driving the Go peer's host.
//! * [`hub_process`]: running the real `switchyard` binary.
//! * [`floor`]: the raw Unix-socket ping-pong (server and client).
//! * [`bare_tonic`]: the transport's floor, two minimal tonic processes.
//! * [`latency`], [`stream`], [`launch`], [`restart`], [`pipeline`],
//!   [`webhooks`], [`rest_poll`], [`footprint`] (and [`large_records`], its
//!   peak memory while large records pile up): one module per measurement.
//! * [`loadgen`]: the open-loop HTTP load generator (for webhooks).
//! * [`example`]: README's example pipeline under webhook load, beside
//!   [`http_floor`] (a bare axum handler); [`store_floor`]: the durable
//!   pipeline's rows written by a minimal program (issue #15's floors), and
//!   [`sqlite_direct`]: the same writes with SQLite on the writer's own
//!   thread, beside sqlx's worker thread.
//! * [`report`]: targets, ratios, JSON and markdown.

mod bare_tonic;
mod cluster;
mod example;
mod floor;
mod footprint;
mod goplugin;
mod http_floor;
mod hub_process;
mod large_records;
mod latency;
mod launch;
mod linkage;
mod loadgen;
mod machine;
mod payload;
mod pipeline;
mod report;
mod rest_poll;
mod restart;
mod rig;
mod settings;
mod sqlite_direct;
mod stats;
mod store_floor;
mod stream;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Switchyard's benchmark suite (run it through `scripts/bench`).
#[derive(Debug, Parser)]
#[command(name = "switchyard-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the suite and write report.json and report.md.
    Run(settings::RunArgs),
    /// The floor's echo process: accepts one connection on SOCKET and echoes
    /// fixed-size messages until it closes (started by `run`).
    #[command(hide = true)]
    FloorPeer {
        /// The Unix socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// The message size in bytes.
        #[arg(long)]
        size: usize,
    },
    /// The bare tonic peer: serves a unary Echo and Enricher on SOCKET
    /// until stdin closes (started by `run`).
    #[command(hide = true)]
    TonicPeer {
        /// The Unix socket to listen on.
        #[arg(long)]
        socket: PathBuf,
    },
    /// The webhooks' floor: a bare axum handler answering 202 to
    /// `POST /webhooks/{name}` on 127.0.0.1:PORT (started by `run`).
    #[command(hide = true)]
    HttpFloor {
        /// The loopback port to listen on.
        #[arg(long)]
        port: u16,
    },
    /// Offer HTTP POSTs at a fixed rate (open loop) and report accepted/s and
    /// latency percentiles measured from each request's intended send time.
    Loadgen {
        /// The URL to POST to.
        #[arg(long)]
        url: String,
        /// Requests per second offered.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// How long to offer load, for example `10s`.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// The request body (sent as application/json); its first `{seq}` becomes each
        /// request's number (0, 1, 2, ...).
        #[arg(long, default_value = "{}")]
        body: String,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Maximum requests in flight (more are counted as dropped).
        #[arg(long, default_value_t = 512)]
        max_in_flight: usize,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value > 0.0)
        .map(|value| Duration::from_secs_f64(value * scale))
        .ok_or_else(|| format!("{text:?} is not a duration such as 500ms or 10s"))
}

/// The hub binary's allocator (`hub/src/main.rs`). This process stands in
/// for the hub in the latency, stream and launch measurements (it drives
/// the hub library), so it allocates as the hub does. The bare-tonic client
/// and server (`tonic-peer`) run in it too: the transport's floor is
/// measured with the same allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The hub library's logs on stderr, filtered as `SWITCHYARD_BENCH_LOG`
    // says (`switchyard_hub::supervisor=debug` gives each launch's handshake
    // phases). Without it, a subscriber with the hub's default filter
    // (`info`, hub/src/telemetry.rs) whose lines are thrown away: this
    // process stands in for the hub, which always runs with a subscriber,
    // so spans and events cost here what they cost there, but nothing is
    // printed. With no subscriber at all, `tracing`'s `log` fallback (on in
    // this build through tower's `log` feature) would look at every
    // disabled span and event, which the hub never does.
    let (filter, writer) = match std::env::var_os("SWITCHYARD_BENCH_LOG") {
        Some(_) => (
            tracing_subscriber::EnvFilter::from_env("SWITCHYARD_BENCH_LOG"),
            BoxMakeWriter::new(std::io::stderr),
        ),
        None => (
            tracing_subscriber::EnvFilter::new(switchyard_hub::telemetry::DEFAULT_LOG_FILTER),
            BoxMakeWriter::new(std::io::sink),
        ),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    let result = match cli.command {
        Command::FloorPeer { socket, size } => floor::serve(&socket, size),
        Command::TonicPeer { socket } => bare_tonic::serve(&socket),
        Command::HttpFloor { port } => http_floor::serve(port),
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(report::run(args))),
        Command::Loadgen {
            url,
            rate,
            duration,
            body,
            headers,
            max_in_flight,
        } => runtime().and_then(|rt| {
            rt.block_on(async {
                let plan = loadgen::Plan {
                    url,
                    rate,
                    duration,
                    body: body.into_bytes(),
                    headers: loadgen::parse_headers(&headers)?,
                    max_in_flight,
                };
                let outcome = loadgen::run(&plan).await?;
                println!("{}", serde_json::to_string_pretty(&outcome)?);
                Ok(())
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchyard-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The same runtime the hub binary uses (`Runtime::new`: one worker per core).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

//! What a run measures and with what: the command-line arguments of `run`,
//! and the counts for quick (CI smoke) and full mode.

use std::path::PathBuf;
use std::time::Duration;

use switchyard_wire::messages::Limits;

/// The arguments of `switchyard-bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Small counts (seconds): proves the suite works, figures are rough.
    #[arg(long)]
    pub quick: bool,
    /// Where report.json and report.md go.
    #[arg(long, default_value = "bench/results")]
    pub out_dir: PathBuf,
    /// The hub binary (`switchyard`), release build.
    #[arg(long, default_value = "target/release/switchyard")]
    pub hub_bin: PathBuf,
    /// The generator plugin binary, release build.
    #[arg(long, default_value = "target/release/generator")]
    pub generator_bin: PathBuf,
    /// The jsonl-output plugin binary, release build.
    #[arg(long, default_value = "target/release/jsonl-output")]
    pub jsonl_output_bin: PathBuf,
    /// The testkit plugin binary, release build.
    #[arg(long, default_value = "target/release/testkit")]
    pub testkit_bin: PathBuf,
    /// A second testkit binary, linked dynamically, for the launch row that
    /// shows what static linking saves (scripts/bench keeps one as
    /// `testkit-dynamic` before it links testkit static-pie). Without it that
    /// row is left out.
    #[arg(long)]
    pub testkit_dynamic_bin: Option<PathBuf>,
    /// The Go peer's host (bench/go-peer/bin/peer-host).
    #[arg(long, default_value = "bench/go-peer/bin/peer-host")]
    pub peer_host: PathBuf,
    /// The Go peer's plugin (bench/go-peer/bin/peer-plugin).
    #[arg(long, default_value = "bench/go-peer/bin/peer-plugin")]
    pub peer_plugin: PathBuf,
    /// Interleaved rounds per measurement (overrides the mode's default).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Run only these measurements (comma-separated: latency, stream, launch,
    /// restart, pipeline, store-floor, cluster, webhooks, example, rest-poll,
    /// footprint).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Items per streamed message (overrides the default, 64, the hub's own batch size: `Limits::REQUESTS`).
    #[arg(long)]
    pub stream_batch: Option<usize>,
    /// Items in flight on a stream (overrides the default, 4096).
    #[arg(long)]
    pub stream_window: Option<usize>,
    /// Plugin counts for the footprint measurement (overrides the mode's default).
    #[arg(long, value_delimiter = ',')]
    pub footprint_plugins: Vec<usize>,
}

/// The counts one run uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Counts {
    /// "quick" or "full".
    pub mode: &'static str,
    /// Interleaved rounds (Switchyard, go-plugin, floor, repeated).
    pub rounds: usize,
    /// Measured sequential calls per side and round.
    pub latency_calls_per_round: usize,
    /// Unmeasured calls before each round's measured ones.
    pub latency_warmup: usize,
    /// Items per side and round in the streaming measurements.
    pub stream_items_per_round: usize,
    /// Items per streamed message (the hub's own batch size).
    pub stream_batch: usize,
    /// Items in flight on a stream.
    pub stream_window: usize,
    /// Launches per side and round.
    pub launches_per_round: usize,
    /// Records through the durable pipeline per database.
    pub pipeline_records: u64,
    /// Records in the rest-poll backfill (pages of 100).
    pub rest_poll_records: u64,
    /// SIGKILLs in the restart measurement.
    pub restarts: usize,
    /// SIGKILLed lease owners in the cluster measurement.
    pub takeovers: usize,
    /// Webhooks offered per second.
    pub webhook_rate: u64,
    /// How long webhooks are offered.
    #[serde(with = "millis")]
    pub webhook_duration: Duration,
    /// Plugin counts for the footprint.
    pub footprint_plugins: Vec<usize>,
    /// Records of 1 MiB stored with the output down (the footprint's
    /// large-records row).
    pub large_records: u64,
    // --- the example pipeline (issue #15, items 4 and 5) ---
    /// Webhooks/s offered to README's example pipeline (and its axum floor).
    pub example_rates: Vec<u64>,
    /// The saturation run's offered rate (more than the hub can take).
    pub example_saturation_rate: u64,
    /// How long each example rate is offered.
    #[serde(with = "millis")]
    pub example_duration: Duration,
    /// How long the hub settles after /readyz before the idle window.
    #[serde(with = "millis")]
    pub footprint_settle: Duration,
    /// The idle window over which CPU is measured.
    #[serde(with = "millis")]
    pub footprint_idle: Duration,
}

impl Counts {
    /// The counts for `args` (quick or full, with overrides applied).
    pub fn for_args(args: &RunArgs) -> Self {
        let mut counts = if args.quick {
            Counts {
                mode: "quick",
                rounds: 2,
                latency_calls_per_round: 1_000,
                latency_warmup: 200,
                stream_items_per_round: 32 * 1024,
                stream_batch: Limits::REQUESTS.items,
                stream_window: 4096,
                launches_per_round: 2,
                restarts: 3,
                takeovers: 3,
                pipeline_records: 20_000,
                rest_poll_records: 5_000,
                webhook_rate: 500,
                webhook_duration: Duration::from_secs(1),
                footprint_plugins: vec![10, 20],
                large_records: 300,
                example_rates: vec![300, 1_500],
                example_saturation_rate: 20_000,
                example_duration: Duration::from_secs(2),
                footprint_settle: Duration::from_millis(500),
                footprint_idle: Duration::from_secs(1),
            }
        } else {
            Counts {
                mode: "full",
                rounds: 5,
                latency_calls_per_round: 5_000,
                latency_warmup: 1_000,
                stream_items_per_round: 512 * 1024,
                stream_batch: Limits::REQUESTS.items,
                stream_window: 4096,
                launches_per_round: 5,
                restarts: 20,
                takeovers: 10,
                pipeline_records: 200_000,
                rest_poll_records: 50_000,
                webhook_rate: 10_000,
                webhook_duration: Duration::from_secs(5),
                footprint_plugins: vec![10, 100],
                large_records: 3_000,
                example_rates: vec![300, 1_500, 5_000, 10_000],
                example_saturation_rate: 20_000,
                example_duration: Duration::from_secs(5),
                footprint_settle: Duration::from_secs(2),
                footprint_idle: Duration::from_secs(10),
            }
        };
        if let Some(rounds) = args.rounds {
            counts.rounds = rounds.max(1);
        }
        if let Some(batch) = args.stream_batch {
            counts.stream_batch = batch.max(1);
        }
        if let Some(window) = args.stream_window {
            counts.stream_window = window.max(counts.stream_batch);
        }
        if !args.footprint_plugins.is_empty() {
            counts.footprint_plugins = args.footprint_plugins.clone();
        }
        counts
    }
}

/// Whether measurement `name` is selected by `--only` (all when empty).
pub fn selected(args: &RunArgs, name: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|only| only == name)
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(value.as_millis())
    }
}

//! The report: rows with Switchyard's figure, go-plugin's and the floor's,
//! ratios, targets met or missed (and by how much); written as JSON and as a
//! markdown table. [`run`] drives the whole suite.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::goplugin::{Peer, Versions};
use crate::machine::{self, MachineInfo};
use crate::rig::{self, Rig};
use crate::settings::{Counts, RunArgs, selected};
use crate::{
    cluster, footprint, large_records, latency, launch, payload, pipeline, rest_poll, restart,
    stream, webhooks,
};

/// The unit of a row's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Microseconds.
    Micros,
    /// Milliseconds.
    Millis,
    /// Items per second.
    PerSecond,
    /// Megabytes (MiB).
    Megabytes,
    /// Percent of one core.
    Percent,
    /// A ratio of two figures of the same run.
    Ratio,
}

/// One figure and its unit (absent when not measured).
#[derive(Debug, Clone, Copy)]
pub struct Value {
    value: Option<f64>,
    unit: Option<Unit>,
}

impl Value {
    /// Not measured.
    pub fn none() -> Self {
        Value {
            value: None,
            unit: None,
        }
    }
    /// Nanoseconds shown as microseconds.
    pub fn micros(ns: Option<u64>) -> Self {
        Value {
            value: ns.map(|ns| ns as f64 / 1e3),
            unit: Some(Unit::Micros),
        }
    }
    /// Nanoseconds shown as milliseconds.
    pub fn millis(ns: Option<u64>) -> Self {
        Value {
            value: ns.map(|ns| ns as f64 / 1e6),
            unit: Some(Unit::Millis),
        }
    }
    /// Items per second.
    pub fn rate(per_second: Option<f64>) -> Self {
        Value {
            value: per_second,
            unit: Some(Unit::PerSecond),
        }
    }
    /// KiB shown as MB (MiB).
    pub fn megabytes(kib: Option<u64>) -> Self {
        Self::megabytes_f(kib.map(|kib| kib as f64))
    }
    /// Fractional KiB shown as MB (MiB).
    pub fn megabytes_f(kib: Option<f64>) -> Self {
        Value {
            value: kib.map(|kib| kib / 1024.0),
            unit: Some(Unit::Megabytes),
        }
    }
    /// A ratio of two figures of the same run.
    pub fn ratio(ratio: Option<f64>) -> Self {
        Value {
            value: ratio,
            unit: Some(Unit::Ratio),
        }
    }
    /// Percent of one core.
    pub fn percent(percent: Option<f64>) -> Self {
        Value {
            value: percent,
            unit: Some(Unit::Percent),
        }
    }
}

/// What a row must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "limit")]
pub enum Target {
    /// Switchyard ÷ go-plugin must be at most this.
    RatioToGoAtMost(f64),
    /// Switchyard ÷ the physical floor must be at most this.
    RatioToFloorAtMost(f64),
    /// Switchyard's figure must be at least this.
    AtLeast(f64),
    /// Switchyard's figure must be at most this.
    AtMost(f64),
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The measurement it belongs to (latency, stream, launch, ...).
    pub group: String,
    /// What the figures are.
    pub measurement: String,
    /// The unit of the three figures.
    pub unit: Option<Unit>,
    /// Switchyard's figure.
    pub switchyard: Option<f64>,
    /// go-plugin's figure.
    pub go_plugin: Option<f64>,
    /// The same call between two minimal tonic processes (the transport's floor).
    pub bare_tonic: Option<f64>,
    /// The physical floor's figure.
    pub floor: Option<f64>,
    /// Switchyard ÷ go-plugin.
    pub ratio_to_go_plugin: Option<f64>,
    /// Switchyard ÷ bare tonic.
    pub ratio_to_bare_tonic: Option<f64>,
    /// Switchyard ÷ floor.
    pub ratio_to_floor: Option<f64>,
    /// Whether smaller figures are better (latency, time, memory).
    pub lower_is_better: bool,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
    /// "met", "missed: ...", "not measured yet: ...", "failed: ..." or "" (no target).
    pub status: String,
    /// A remark shown under the table.
    pub note: Option<String>,
}

impl Row {
    /// A row from the three figures.
    pub fn new(
        group: &str,
        measurement: impl Into<String>,
        switchyard: Value,
        go_plugin: Value,
        floor: Value,
        lower_is_better: bool,
        target: Option<Target>,
    ) -> Self {
        let ratio = |other: Option<f64>| match (switchyard.value, other) {
            (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
            _ => None,
        };
        let mut row = Row {
            group: group.to_owned(),
            measurement: measurement.into(),
            unit: switchyard.unit.or(go_plugin.unit).or(floor.unit),
            switchyard: switchyard.value,
            go_plugin: go_plugin.value,
            bare_tonic: None,
            floor: floor.value,
            ratio_to_go_plugin: ratio(go_plugin.value),
            ratio_to_bare_tonic: None,
            ratio_to_floor: ratio(floor.value),
            lower_is_better,
            target,
            status: String::new(),
            note: None,
        };
        row.status = row.evaluate();
        row
    }

    /// Adds the bare-tonic figure (the same call between two minimal tonic
    /// processes) and Switchyard's ratio to it.
    pub fn bare_tonic(mut self, bare: Value) -> Self {
        self.bare_tonic = bare.value;
        self.ratio_to_bare_tonic = match (self.switchyard, bare.value) {
            (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
            _ => None,
        };
        self
    }

    /// Adds a remark.
    pub fn note(mut self, note: &str) -> Self {
        self.note = Some(note.to_owned());
        self
    }

    /// A row with no figure at all, not measured in this run, saying why.
    pub fn not_measured(group: &str, measurement: impl Into<String>, why: &str) -> Self {
        Row::new(
            group,
            measurement,
            Value::none(),
            Value::none(),
            Value::none(),
            false,
            None,
        )
        .pending(why)
    }

    /// Marks the row as not measurable yet, saying why.
    pub fn pending(mut self, why: &str) -> Self {
        self.status = format!("not measured yet: {why}");
        self
    }

    /// Marks the row as failed in this run.
    fn failed(mut self, why: &str) -> Self {
        self.status = format!("failed: {why}");
        self
    }

    fn evaluate(&self) -> String {
        let Some(target) = self.target else {
            return String::new();
        };
        let Some(ours) = self.switchyard else {
            return "not measured".to_owned();
        };
        match target {
            Target::RatioToGoAtMost(limit) => match self.ratio_to_go_plugin {
                Some(ratio) if ratio <= limit => "met".to_owned(),
                Some(ratio) => format!(
                    "missed: {ratio:.2}× go-plugin, target ≤ {limit}× ({:.0}% too slow)",
                    (ratio / limit - 1.0) * 100.0
                ),
                None => "not measured (no go-plugin figure)".to_owned(),
            },
            Target::RatioToFloorAtMost(limit) => match self.ratio_to_floor {
                Some(ratio) if ratio <= limit => "met".to_owned(),
                Some(ratio) => format!(
                    "missed: {ratio:.1}× the floor, target ≤ {limit}× ({:.0}% too slow)",
                    (ratio / limit - 1.0) * 100.0
                ),
                None => "not measured (no floor figure)".to_owned(),
            },
            Target::AtLeast(limit) if ours >= limit => "met".to_owned(),
            Target::AtLeast(limit) => format!(
                "missed by {:.0}% (target ≥ {})",
                (1.0 - ours / limit) * 100.0,
                format_value(Some(limit), self.unit)
            ),
            Target::AtMost(limit) if ours <= limit => "met".to_owned(),
            Target::AtMost(limit) => format!(
                "missed by {:.0}% (target ≤ {})",
                (ours / limit - 1.0) * 100.0,
                format_value(Some(limit), self.unit)
            ),
        }
    }
}

/// The whole report, as written to report.json.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: MachineInfo,
    /// The counts used (and the mode).
    pub counts: Counts,
    /// The encoded size of the record every measurement sends.
    pub payload_bytes: usize,
    /// The Go peer's versions.
    pub go_peer: Option<Versions>,
    /// Every figure.
    pub rows: Vec<Row>,
    /// Raw summaries per measurement.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Measurements that failed in this run.
    pub failures: Vec<String>,
    /// Whether the bench was built without optimizations (cargo's `dev`
    /// profile, as CI's smoke run uses): then its figures say nothing about
    /// speed.
    pub unoptimized: bool,
}

/// Runs the suite, writes report.json and report.md into `--out-dir`, prints
/// the markdown; fails (after writing) when a measurement failed.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let counts = Counts::for_args(&args);
    let machine = machine::collect();
    eprintln!(
        "switchyard-bench: {} mode on {} ({} cores), load {}",
        counts.mode, machine.cpu_model, machine.cores, machine.load_average
    );
    let work = tempfile::Builder::new()
        .prefix("sy-bench-run-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let record_file = work.path().join("record.bin");
    std::fs::write(&record_file, payload::encoded()).context("cannot write the record file")?;
    let testkit = rig::binary(&args.testkit_bin, "cargo build --release -p testkit")?;
    let hub = rig::binary(&args.hub_bin, "cargo build --release -p switchyard-hub")?;
    let peer = Peer::new(
        rig::binary(&args.peer_host, "bench/go-peer/build.sh")?,
        rig::binary(&args.peer_plugin, "bench/go-peer/build.sh")?,
        record_file,
    );
    let go_peer = peer.versions().await.context("cannot run the Go peer")?;
    let rig = Rig::new(&testkit)?;
    let dynamic_rig = match &args.testkit_dynamic_bin {
        Some(path) => Some(Rig::new(&rig::binary(path, "scripts/bench")?)?),
        None => None,
    };

    let mut rows = Vec::new();
    let mut details = serde_json::Map::new();
    let mut failures = Vec::new();
    let mut take = |name: &str,
                    result: anyhow::Result<(Vec<Row>, serde_json::Value)>,
                    rows: &mut Vec<Row>| match result {
        Ok((new_rows, detail)) => {
            rows.extend(new_rows);
            details.insert(name.to_owned(), detail);
        }
        Err(err) => {
            let why = format!("{err:#}");
            eprintln!("switchyard-bench: {name} failed: {why}");
            rows.push(
                Row::new(
                    name,
                    name,
                    Value::none(),
                    Value::none(),
                    Value::none(),
                    true,
                    None,
                )
                .failed(&why),
            );
            failures.push(format!("{name}: {why}"));
        }
    };
    if selected(&args, "latency") {
        take(
            "latency",
            latency::measure(&rig, &peer, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "stream") {
        take(
            "stream",
            stream::measure(&rig, &peer, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "launch") {
        take(
            "launch",
            launch::measure(&rig, dynamic_rig.as_ref(), &peer, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "restart") {
        take(
            "restart",
            restart::measure(&hub, &testkit, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "pipeline") {
        let result = async {
            let binaries = pipeline_binaries(&args, &hub, &testkit)?;
            pipeline::measure(&binaries, &counts).await
        }
        .await;
        take("pipeline", result, &mut rows);
    }
    // The durable pipeline's floor (issue #15, item 3), beside its rows.
    if selected(&args, "store-floor") {
        take(
            "store-floor",
            crate::store_floor::measure(&counts).await,
            &mut rows,
        );
        take(
            "sqlite-direct",
            crate::sqlite_direct::measure(&counts).await,
            &mut rows,
        );
        crate::store_floor::attach(&mut rows);
    }
    if selected(&args, "cluster") {
        let result = async {
            let binaries = pipeline_binaries(&args, &hub, &testkit)?;
            cluster::measure(&binaries, &counts).await
        }
        .await;
        take("cluster", result, &mut rows);
    }
    if selected(&args, "webhooks") {
        take(
            "webhooks",
            webhooks::measure(&hub, &testkit, &counts).await,
            &mut rows,
        );
    }
    // README's example pipeline with the axum floor (issue #15, items 4, 5).
    if selected(&args, "example") {
        take(
            "example",
            crate::example::measure(&hub, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "rest-poll") {
        take(
            "rest-poll",
            rest_poll::measure(&hub, &testkit, &counts).await,
            &mut rows,
        );
    }
    if selected(&args, "footprint") {
        take(
            "footprint",
            footprint::measure(&hub, &testkit, &counts).await,
            &mut rows,
        );
        let large = match rig::binary(&args.generator_bin, "cargo build --release -p generator") {
            Ok(generator) => large_records::measure(&hub, &generator, &counts).await,
            Err(err) => Err(err),
        };
        take("large_records", large, &mut rows);
    }
    let report = Report {
        machine,
        counts,
        payload_bytes: payload::encoded().len(),
        go_peer: Some(go_peer),
        rows,
        details,
        failures,
        unoptimized: cfg!(debug_assertions),
    };
    write(&report, &args.out_dir)?;
    println!("{}", markdown(&report));
    if !report.failures.is_empty() {
        anyhow::bail!("{} measurement(s) failed", report.failures.len());
    }
    Ok(())
}

fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("report.json"), json + "\n")
        .with_context(|| format!("cannot write {}/report.json", dir.display()))?;
    std::fs::write(dir.join("report.md"), markdown(report))
        .with_context(|| format!("cannot write {}/report.md", dir.display()))?;
    Ok(())
}

/// The report as markdown: the machine, then one table row per figure.
pub fn markdown(report: &Report) -> String {
    let machine = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Switchyard benchmark ({} mode)\n",
        report.counts.mode
    );
    let _ = writeln!(
        out,
        "Machine: {}, {} cores, {} MiB, Linux {}; load at start {}; {}.  ",
        machine.cpu_model,
        machine.cores,
        machine.memory_mib,
        machine.kernel,
        machine.load_average,
        machine.date
    );
    if let Some(peer) = &report.go_peer {
        let _ = writeln!(
            out,
            "Peer: go-plugin {} (grpc-go {}, {}); {}.  ",
            peer.go_plugin.as_deref().unwrap_or("?"),
            peer.grpc_go.as_deref().unwrap_or("?"),
            peer.go,
            machine.rustc.as_deref().unwrap_or("rustc ?")
        );
    }
    let counts = &report.counts;
    let _ = writeln!(
        out,
        "Payload: one {}-byte record. {} interleaved rounds; latency {} calls/side/round; \
         streams {} items/side/round (batches of {}, {} in flight); {} launches/side/round.\n",
        report.payload_bytes,
        counts.rounds,
        counts.latency_calls_per_round,
        counts.stream_items_per_round,
        counts.stream_batch,
        counts.stream_window,
        counts.launches_per_round
    );
    if report.unoptimized {
        out.push_str(
            "Build: unoptimized (cargo's `dev` profile, as CI's smoke run uses): these figures \
             say nothing about speed; `scripts/bench` without SWITCHYARD_BENCH_PROFILE builds \
             optimized.\n\n",
        );
    }
    out.push_str(
        "| Measurement | Switchyard | go-plugin | bare tonic | floor | ÷ go-plugin | ÷ bare tonic | ÷ floor | Target | Result |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    let mut notes = Vec::new();
    for row in &report.rows {
        let mut name = row.measurement.clone();
        if let Some(note) = &row.note {
            let index = match notes.iter().position(|known| known == note) {
                Some(index) => index + 1,
                None => {
                    notes.push(note.clone());
                    notes.len()
                }
            };
            let _ = write!(name, " [{index}]");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            format_value(row.switchyard, row.unit),
            format_value(row.go_plugin, row.unit),
            format_value(row.bare_tonic, row.unit),
            format_value(row.floor, row.unit),
            format_ratio(row.ratio_to_go_plugin),
            format_ratio(row.ratio_to_bare_tonic),
            format_ratio(row.ratio_to_floor),
            format_target(row.target, row.unit),
            row.status.replace('|', "\\|").replace('\n', " "),
        );
    }
    out.push_str(
        "\nRatios are Switchyard ÷ the other: below 1 is better for times and memory, \
         above 1 is better for throughput. \"-\" means not measured. \"bare tonic\" is \
         the same call between two minimal tonic processes over a Unix socket (the \
         transport's floor; see docs/benchmarks.md).\n",
    );
    for (index, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "\n[{}] {}", index + 1, note);
    }
    out
}

fn format_value(value: Option<f64>, unit: Option<Unit>) -> String {
    let Some(value) = value else {
        return "-".to_owned();
    };
    match unit {
        Some(Unit::Micros) => format!("{value:.1} µs"),
        Some(Unit::Millis) => format!("{value:.2} ms"),
        Some(Unit::PerSecond) => format!("{}/s", thousands(value)),
        Some(Unit::Megabytes) if value.abs() < 10.0 => format!("{value:.2} MB"),
        Some(Unit::Megabytes) => format!("{value:.1} MB"),
        Some(Unit::Percent) => format!("{value:.2}%"),
        Some(Unit::Ratio) => format!("{value:.2}×"),
        None => format!("{value}"),
    }
}

fn format_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}×"))
}

fn format_target(target: Option<Target>, unit: Option<Unit>) -> String {
    match target {
        None => String::new(),
        Some(Target::RatioToGoAtMost(limit)) => format!("≤ {limit}× go-plugin"),
        Some(Target::RatioToFloorAtMost(limit)) => format!("≤ {limit}× floor"),
        Some(Target::AtLeast(limit)) => format!("≥ {}", format_value(Some(limit), unit)),
        Some(Target::AtMost(limit)) => format!("≤ {}", format_value(Some(limit), unit)),
    }
}

/// An integer with thousands separators (`1,234,567`).
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// The binaries of the durable pipeline (measurements 5 and 9).
fn pipeline_binaries(
    args: &RunArgs,
    hub: &Path,
    testkit: &Path,
) -> anyhow::Result<pipeline::Binaries> {
    Ok(pipeline::Binaries {
        hub: hub.to_path_buf(),
        generator: rig::binary(&args.generator_bin, "cargo build --release -p generator")?,
        testkit: testkit.to_path_buf(),
        jsonl_output: rig::binary(
            &args.jsonl_output_bin,
            "cargo build --release -p jsonl-output",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ours: f64, theirs: f64, target: Target) -> Row {
        Row::new(
            "t",
            "t",
            Value::rate(Some(ours)),
            Value::rate(Some(theirs)),
            Value::none(),
            false,
            Some(target),
        )
    }

    #[test]
    fn targets_say_met_or_by_how_much_missed() {
        assert_eq!(row(40.0, 100.0, Target::RatioToGoAtMost(0.5)).status, "met");
        assert!(
            row(75.0, 100.0, Target::RatioToGoAtMost(0.5))
                .status
                .contains("50% too slow")
        );
        assert_eq!(
            row(1_200_000.0, 1.0, Target::AtLeast(1_000_000.0)).status,
            "met"
        );
        assert!(
            row(750_000.0, 1.0, Target::AtLeast(1_000_000.0))
                .status
                .starts_with("missed by 25%")
        );
        assert!(
            row(15.0, 1.0, Target::AtMost(10.0))
                .status
                .starts_with("missed by 50%")
        );
    }

    #[test]
    fn pending_rows_carry_no_number() {
        let row = Row::new(
            "restart",
            "Restart",
            Value::none(),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(10.0)),
        )
        .pending("no supervision yet");
        assert_eq!(row.status, "not measured yet: no supervision yet");
        assert!(row.switchyard.is_none());
        assert_eq!(format_value(row.switchyard, row.unit), "-");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}

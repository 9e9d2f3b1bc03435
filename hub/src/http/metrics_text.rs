//! `GET /metrics` in either exposition format, chosen by the `Accept`
//! header as the Prometheus client libraries do: OpenMetrics 1.0.0 when the
//! scraper names `application/openmetrics-text` (and does not prefer plain
//! text), otherwise the classic Prometheus text format 0.0.4 (for
//! `text/plain`, `*/*` or no `Accept` at all).
//!
//! [`to_classic`] turns the registry's OpenMetrics text into the classic
//! format. It is hand-written because `prometheus-client`, the hub's metrics
//! crate, only encodes OpenMetrics, and no maintained crate converts between
//! the two: the `prometheus` crate encodes the classic format but has its own
//! registry and metric types (every metric would have to be kept twice), and
//! a text parser crate would still leave the renaming to us. The difference
//! is small and line-based:
//!
//! * a counter family `x` is `x_total` in the classic `# HELP`/`# TYPE`
//!   lines (its samples are `x_total` in both formats), which is what
//!   `promtool check metrics` wants;
//! * `# EOF`, `# UNIT` and `_created` samples do not exist in the classic
//!   format, nor do exemplars (`... # {trace_id="..."} 1`);
//! * `info` becomes a gauge named `x_info`, `unknown` becomes `untyped`;
//! * sample timestamps are seconds in OpenMetrics, milliseconds in classic;
//! * `# HELP` escapes only `\\` and `\n` in the classic format.
//!
//! Gauges and histograms (`_bucket`, `_sum`, `_count`) are written the same
//! way in both, so they pass through.

use axum::http::header::{self, HeaderMap};

/// The content type of OpenMetrics 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition format of a `/metrics` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Classic,
}

impl Format {
    /// The format to answer a request with these headers in: OpenMetrics
    /// only when `Accept` names `application/openmetrics-text` with a
    /// quality at least that of any plain-text range it also lists.
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let mut openmetrics = 0.0_f32;
        let mut classic = 0.0_f32;
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for range in value.split(',') {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let quality = parts
                    .filter_map(|param| param.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                    .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                match media.as_str() {
                    "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                    "text/plain" | "text/*" | "*/*" => classic = classic.max(quality),
                    _ => {}
                }
            }
        }
        if openmetrics > 0.0 && openmetrics >= classic {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Classic => CLASSIC_CONTENT_TYPE,
        }
    }
}

/// One family's description while its lines are converted.
#[derive(Debug, Default)]
struct Family {
    /// The OpenMetrics family name (without `_total` for counters).
    name: String,
    /// The OpenMetrics type (`counter`, `gauge`, ...).
    kind: String,
}

/// Converts OpenMetrics text (as `prometheus-client` writes it) into the
/// classic Prometheus text format 0.0.4. Lines it does not understand are
/// dropped rather than passed on, so the answer stays parseable.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut family = Family::default();
    // HELP comes before TYPE, but its classic name depends on the type.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if let Some(rest) = comment.strip_prefix("HELP ") {
                flush_help(&mut out, help.take(), None);
                help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            } else if let Some(rest) = comment.strip_prefix("TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
                family = Family {
                    name: name.to_owned(),
                    kind: kind.trim().to_owned(),
                };
                let (classic_name, classic_kind) = classic_family(&family);
                match help.take() {
                    Some((help_name, text)) if help_name == name => {
                        flush_help(&mut out, Some((help_name, text)), Some(&classic_name));
                    }
                    other => flush_help(&mut out, other, None),
                }
                out.push_str("# TYPE ");
                out.push_str(&classic_name);
                out.push(' ');
                out.push_str(classic_kind);
                out.push('\n');
            }
            // `# EOF`, `# UNIT` and anything else: not in the classic format.
            continue;
        }
        flush_help(&mut out, help.take(), None);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(sample) = classic_sample(line, &family) {
            out.push_str(&sample);
            out.push('\n');
        }
    }
    flush_help(&mut out, help.take(), None);
    out
}

/// The classic name and type of a family.
fn classic_family(family: &Family) -> (String, &'static str) {
    match family.kind.as_str() {
        "counter" => (format!("{}_total", family.name), "counter"),
        "gauge" => (family.name.clone(), "gauge"),
        "histogram" => (family.name.clone(), "histogram"),
        "summary" => (family.name.clone(), "summary"),
        "info" => (format!("{}_info", family.name), "gauge"),
        _ => (family.name.clone(), "untyped"),
    }
}

/// Writes a pending `# HELP` line under `name` (or its own name), with the
/// classic format's escaping (only `\\` and `\n`; OpenMetrics' `\"` is
/// unescaped).
fn flush_help(out: &mut String, help: Option<(&str, &str)>, name: Option<&str>) {
    let Some((own_name, text)) = help else {
        return;
    };
    out.push_str("# HELP ");
    out.push_str(name.unwrap_or(own_name));
    out.push(' ');
    out.push_str(&text.replace("\\\"", "\""));
    out.push('\n');
}

/// One sample line in the classic format, or `None` for samples the classic
/// format does not have (`_created`) and lines that are not samples.
fn classic_sample(line: &str, family: &Family) -> Option<String> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    if name
        .strip_prefix(family.name.as_str())
        .is_some_and(|suffix| suffix == "_created")
        && matches!(family.kind.as_str(), "counter" | "histogram" | "summary")
    {
        return None;
    }
    let mut rest = &line[name_end..];
    let labels = if rest.starts_with('{') {
        let end = labels_end(rest)?;
        let labels = &rest[..end];
        rest = &rest[end..];
        labels
    } else {
        ""
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next()?;
    let mut sample = format!("{name}{labels} {value}");
    if let Some(timestamp) = fields.next().filter(|field| *field != "#") {
        // Seconds (possibly fractional) -> integer milliseconds.
        let seconds: f64 = timestamp.parse().ok()?;
        sample.push(' ');
        sample.push_str(&format!("{}", (seconds * 1000.0).round() as i64));
    }
    Some(sample)
}

/// The length of the `{...}` label set at the start of `text`, quotes and
/// escapes inside label values respected.
fn labels_end(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'}' if !in_quotes => return Some(index + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::ACCEPT, value);
        }
        Format::negotiate(&headers)
    }

    #[test]
    fn negotiates_like_the_prometheus_client_libraries() {
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::Classic);
        assert_eq!(accept("*/*"), Format::Classic);
        assert_eq!(accept("text/plain"), Format::Classic);
        assert_eq!(accept("text/plain; version=0.0.4"), Format::Classic);
        assert_eq!(accept("application/json"), Format::Classic);
        assert_eq!(
            accept("application/openmetrics-text; version=1.0.0"),
            Format::OpenMetrics
        );
        // What Prometheus 2.x sends by default.
        assert_eq!(
            accept(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        // Prometheus with `scrape_classic_histograms` / an older one.
        assert_eq!(
            accept("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
            Format::Classic
        );
        assert_eq!(accept("application/openmetrics-text;q=0"), Format::Classic);
        assert_eq!(
            Format::Classic.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn counters_are_renamed_and_openmetrics_only_lines_dropped() {
        let openmetrics = "\
# HELP switchyard_records_in Records received from input plugins.
# TYPE switchyard_records_in counter
switchyard_records_in_total{plugin=\"gen\"} 3
switchyard_records_in_created{plugin=\"gen\"} 1700000000.5
# HELP switchyard_store_group_commit_duration_seconds Time from begin to commit.
# TYPE switchyard_store_group_commit_duration_seconds histogram
# UNIT switchyard_store_group_commit_duration_seconds seconds
switchyard_store_group_commit_duration_seconds_sum 0.5
switchyard_store_group_commit_duration_seconds_count 2
switchyard_store_group_commit_duration_seconds_bucket{le=\"0.001\"} 1 # {trace_id=\"a}b\"} 0.0005
switchyard_store_group_commit_duration_seconds_bucket{le=\"+Inf\"} 2
# HELP switchyard_webhook_inbox_pending Deliveries \"waiting\".
# TYPE switchyard_webhook_inbox_pending gauge
switchyard_webhook_inbox_pending{plugin=\"a \\\"quoted\\\" } name\"} 4 1700000000.25
# HELP build Build info.
# TYPE build info
build_info{version=\"1\"} 1
# HELP empty_counter Never incremented.
# TYPE empty_counter counter
# EOF
";
        let expected = "\
# HELP switchyard_records_in_total Records received from input plugins.
# TYPE switchyard_records_in_total counter
switchyard_records_in_total{plugin=\"gen\"} 3
# HELP switchyard_store_group_commit_duration_seconds Time from begin to commit.
# TYPE switchyard_store_group_commit_duration_seconds histogram
switchyard_store_group_commit_duration_seconds_sum 0.5
switchyard_store_group_commit_duration_seconds_count 2
switchyard_store_group_commit_duration_seconds_bucket{le=\"0.001\"} 1
switchyard_store_group_commit_duration_seconds_bucket{le=\"+Inf\"} 2
# HELP switchyard_webhook_inbox_pending Deliveries \"waiting\".
# TYPE switchyard_webhook_inbox_pending gauge
switchyard_webhook_inbox_pending{plugin=\"a \\\"quoted\\\" } name\"} 4 1700000000250
# HELP build_info Build info.
# TYPE build_info gauge
build_info{version=\"1\"} 1
# HELP empty_counter_total Never incremented.
# TYPE empty_counter_total counter
";
        assert_eq!(to_classic(openmetrics), expected);
    }

    #[test]
    fn converts_the_hubs_own_registry() {
        let classic = to_classic(&crate::metrics::global().encode());
        assert!(!classic.contains("# EOF"), "{classic}");
        assert!(!classic.contains("# UNIT"), "{classic}");
        for line in classic.lines().filter(|line| line.starts_with("# TYPE")) {
            if line.ends_with(" counter") {
                let name = line.split(' ').nth(2).unwrap_or_default();
                assert!(name.ends_with("_total"), "{line}");
                assert!(
                    classic.contains(&format!("# HELP {name} ")),
                    "no help for {name}"
                );
            }
        }
    }
}

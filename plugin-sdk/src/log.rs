//! Logging to stderr in go-plugin's hclog JSON shape, which the hub (and any
//! go-plugin host) turns into its own log events:
//!
//! ```text
//! {"@level":"info","@message":"Configured.","@module":"sentiment","@timestamp":"2026-11-23T18:02:11.123456+00:00","instance":"tagger"}
//! ```
//!
//! `@level` and `@message` are always strings (a Go host type-asserts them),
//! and `@timestamp` has exactly six fractional digits. Write errors are
//! ignored: once the host is gone, logging must not panic (EPIPE).

use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The environment variable holding the log filter (`tracing`'s `EnvFilter`
/// syntax, for example `info` or `my_plugin=debug,info`). The default is
/// `info`. It is the hub's own filter variable too: the hub hands its value
/// to every plugin it starts unless the plugin's `env` sets one.
pub const LOG_FILTER_ENV: &str = "SWITCHYARD_LOG";

/// A `tracing` layer writing each event as one hclog JSON line.
///
/// Generic over its writer so tests can capture the output; [`install`] uses stderr.
#[derive(Debug, Clone)]
pub struct HclogLayer<W> {
    make_writer: W,
}

impl<W> HclogLayer<W> {
    /// A layer writing to `make_writer` (for example `std::io::stderr`).
    pub fn new(make_writer: W) -> Self {
        HclogLayer { make_writer }
    }
}

/// The hclog name of a tracing level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Formats a time as hclog's `@timestamp`: `2006-01-02T15:04:05.000000+00:00`
/// (exactly six fractional digits, numeric UTC offset).
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Builds the JSON line (without the newline) for one event.
fn format_line(
    level: &Level,
    target: &str,
    at: DateTime<Utc>,
    fields: serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut object = serde_json::Map::with_capacity(fields.len() + 4);
    object.insert("@level".into(), level_name(level).into());
    object.insert("@timestamp".into(), format_timestamp(at).into());
    object.insert("@module".into(), target.into());
    let mut message = String::new();
    for (key, value) in fields {
        if key == "message" {
            message = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
        } else if !key.starts_with('@') {
            object.insert(key, value);
        } else {
            object.insert(format!("field{key}"), value);
        }
    }
    object.insert("@message".into(), message.into());
    serde_json::Value::Object(object).to_string()
}

/// Collects an event's fields as JSON values.
#[derive(Default)]
struct JsonVisitor {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.fields.insert(field.name().into(), text.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields
            .insert(field.name().into(), value.to_string().into());
    }
}

impl<S, W> Layer<S> for HclogLayer<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let mut line = format_line(
            metadata.level(),
            metadata.target(),
            Utc::now(),
            visitor.fields,
        );
        line.push('\n');
        // One write per line so concurrent lines do not interleave; errors
        // (EPIPE once the host has gone) are deliberately ignored.
        let mut writer = self.make_writer.make_writer();
        let _ = writer.write_all(line.as_bytes());
        let _ = writer.flush();
    }
}

/// Installs the hclog stderr logger as the global `tracing` subscriber, with
/// the filter from [`LOG_FILTER_ENV`] (default `info`), and a panic hook that
/// logs panics as error events. Does nothing if a subscriber is already set.
pub fn install() {
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer::new(std::io::stderr))
        .try_init()
        .is_ok();
    if installed {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|location| format!("{}:{}", location.file(), location.line()))
                .unwrap_or_default();
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, location = %location, "Panicked.");
        }));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn timestamps_have_six_fractional_digits_and_a_numeric_offset() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 18, 2, 11).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(format_timestamp(at), "2026-11-23T18:02:11.123456+00:00");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(whole), "2026-01-02T03:04:05.000000+00:00");
        let with_nanos = whole + chrono::Duration::nanoseconds(999_999_999);
        assert_eq!(
            format_timestamp(with_nanos),
            "2026-01-02T03:04:05.999999+00:00"
        );
    }

    #[test]
    fn levels_are_lowercase_hclog_names() {
        let names: Vec<_> = [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ]
        .iter()
        .map(level_name)
        .collect();
        assert_eq!(names, ["trace", "debug", "info", "warn", "error"]);
    }

    #[test]
    fn events_become_one_json_object_per_line() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(HclogLayer::new(capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "my_plugin", count = 3, ok = true, name = %"x", "Something happened.");
            tracing::error!(error = ?std::io::ErrorKind::BrokenPipe, "Second line.");
        });
        let output = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 2, "{output}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["@level"], "warn");
        assert_eq!(first["@message"], "Something happened.");
        assert_eq!(first["@module"], "my_plugin");
        assert_eq!(first["count"], 3);
        assert_eq!(first["ok"], true);
        assert_eq!(first["name"], "x");
        let timestamp = first["@timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6f%:z").is_ok(),
            "{timestamp}"
        );
        assert_eq!(timestamp.len(), "2026-11-23T18:02:11.123456+00:00".len());
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["@level"], "error");
        assert_eq!(second["error"], "BrokenPipe");
    }

    #[test]
    fn an_event_without_a_message_still_has_a_string_message() {
        let line = format_line(&Level::INFO, "m", Utc::now(), serde_json::Map::new());
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["@message"], "");
    }
}

//! A plugin's output: stdout carries only the handshake line and is then
//! drained (anything more is logged as a warning); stderr carries the
//! plugin's logs, which become hub log events with target
//! `switchyard::plugin` and the field `plugin = NAME`.
//!
//! Stderr lines are read the go-plugin way ([`StderrParser`], pure and
//! unit-tested): hclog JSON lines keep their level, message and fields; text
//! lines with a `[LEVEL]` prefix get that level; `panic: ` and `fatal error: `
//! switch the plugin into panic mode, where every later non-JSON line is an
//! error. Lines longer than [`MAX_LOG_LINE_BYTES`] are split, so a plugin
//! can never make the hub buffer without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, BufReader};

/// The longest log line kept whole; longer lines are split into pieces.
pub const MAX_LOG_LINE_BYTES: usize = 64 * 1024;
/// How many of a plugin's last stderr lines are kept for error messages.
pub const STDERR_TAIL_LINES: usize = 20;
/// The longest stderr line kept in the tail, in characters.
const TAIL_LINE_CHARS: usize = 500;

/// The level of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl LogLevel {
    /// hclog's `LevelFromString`: case-insensitive; `None` for anything else
    /// (`warning` included, as in hclog).
    pub fn from_hclog(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "trace" => Some(LogLevel::Trace),
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// One stderr line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The level to log it at.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Other key/value pairs of a JSON line (`@timestamp` as `timestamp`,
    /// `@module` as `module`, user fields as they are), in the line's order.
    pub fields: Vec<(String, String)>,
}

/// Turns stderr lines into [`LogLine`]s. Holds the panic-mode flag, so use
/// one parser per plugin process.
#[derive(Debug, Default)]
pub struct StderrParser {
    in_panic: bool,
}

impl StderrParser {
    /// Parses one line (without its newline).
    pub fn parse(&mut self, line: &str) -> LogLine {
        if let Some(json) = parse_hclog_json(line) {
            return json;
        }
        if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
            self.in_panic = true;
        }
        if self.in_panic {
            return LogLine {
                level: LogLevel::Error,
                message: line.to_owned(),
                fields: Vec::new(),
            };
        }
        const PREFIXES: [(&str, LogLevel); 5] = [
            ("[TRACE]", LogLevel::Trace),
            ("[DEBUG]", LogLevel::Debug),
            ("[INFO]", LogLevel::Info),
            ("[WARN]", LogLevel::Warn),
            ("[ERROR]", LogLevel::Error),
        ];
        for (prefix, level) in PREFIXES {
            if let Some(rest) = line.strip_prefix(prefix) {
                return LogLine {
                    level,
                    message: rest.trim().to_owned(),
                    fields: Vec::new(),
                };
            }
        }
        // go-plugin logs unprefixed lines at debug. We log them at info on
        // purpose: a plugin that simply writes to stderr expects operators to
        // see it, and hiding it below the default filter loses diagnostics.
        LogLine {
            level: LogLevel::Info,
            message: line.to_owned(),
            fields: Vec::new(),
        }
    }
}

/// An hclog JSON line: an object whose `@level` is a known level and whose
/// `@message` is a string. Anything else (arrays, numbers, non-string or
/// unknown levels) is `None` and is handled as text.
fn parse_hclog_json(line: &str) -> Option<LogLine> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed).ok()?;
    let level = LogLevel::from_hclog(object.get("@level")?.as_str()?)?;
    let message = object.get("@message")?.as_str()?.to_owned();
    let fields = object
        .iter()
        .filter(|(key, _)| *key != "@level" && *key != "@message")
        .map(|(key, value)| {
            let key = key.strip_prefix('@').unwrap_or(key).to_owned();
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (key, value)
        })
        .collect();
    Some(LogLine {
        level,
        message,
        fields,
    })
}

/// Emits a plugin log line as a hub tracing event.
pub fn emit(plugin: &str, stream: &str, line: &LogLine) {
    let fields = (!line.fields.is_empty()).then(|| {
        line.fields
            .iter()
            .map(|(key, value)| format!("{key}={value:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    });
    // `None` records nothing, so lines without fields stay short.
    let fields = fields.as_deref();
    macro_rules! event_at {
        ($level:expr) => {
            tracing::event!(
                target: "switchyard::plugin",
                $level,
                plugin = %plugin,
                stream = %stream,
                fields,
                "{}",
                line.message
            )
        };
    }
    match line.level {
        LogLevel::Trace => event_at!(tracing::Level::TRACE),
        LogLevel::Debug => event_at!(tracing::Level::DEBUG),
        LogLevel::Info => event_at!(tracing::Level::INFO),
        LogLevel::Warn => event_at!(tracing::Level::WARN),
        LogLevel::Error => event_at!(tracing::Level::ERROR),
    }
}

/// A plugin's last stderr lines, shared between the drain task and whoever
/// reports a failure.
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl StderrTail {
    /// Remembers a line, forgetting the oldest beyond [`STDERR_TAIL_LINES`].
    pub fn push(&self, line: &str) {
        let line: String = line.chars().take(TAIL_LINE_CHARS).collect();
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The remembered lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One line read by [`read_line_limited`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedLine {
    /// The bytes, without the newline (and without a trailing `\r`).
    pub bytes: Vec<u8>,
    /// True when the limit was reached before a newline: the line goes on.
    pub truncated: bool,
}

/// Reads one line of at most `limit` bytes. Returns `None` at end of input;
/// a last line without a newline is returned as is. Never buffers more than
/// `limit` bytes, whatever the plugin writes.
pub async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> std::io::Result<Option<LimitedLine>> {
    let mut bytes = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!bytes.is_empty()).then_some(LimitedLine {
                bytes,
                truncated: false,
            }));
        }
        let room = limit - bytes.len();
        let window = &available[..available.len().min(room)];
        if let Some(newline) = window.iter().position(|byte| *byte == b'\n') {
            bytes.extend_from_slice(&window[..newline]);
            reader.consume(newline + 1);
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            return Ok(Some(LimitedLine {
                bytes,
                truncated: false,
            }));
        }
        let taken = window.len();
        bytes.extend_from_slice(window);
        reader.consume(taken);
        if bytes.len() >= limit {
            return Ok(Some(LimitedLine {
                bytes,
                truncated: true,
            }));
        }
    }
}

/// Drains a plugin's stderr until end of input: every line becomes a log
/// event and is remembered in `tail`.
pub async fn drain_stderr<R: AsyncRead + Unpin>(plugin: String, stderr: R, tail: StderrTail) {
    let mut reader = BufReader::new(stderr);
    let mut parser = StderrParser::default();
    loop {
        match read_line_limited(&mut reader, MAX_LOG_LINE_BYTES).await {
            Ok(Some(line)) => {
                let text = String::from_utf8_lossy(&line.bytes);
                tail.push(&text);
                emit(&plugin, "stderr", &parser.parse(&text));
            }
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(plugin = %plugin, error = %err, "Reading the plugin's stderr failed.");
                break;
            }
        }
    }
}

/// Drains a plugin's stdout after the handshake line: nothing else should
/// arrive there, so every line is logged as a warning.
pub async fn drain_stdout<R: AsyncBufRead + Unpin>(plugin: String, mut stdout: R) {
    loop {
        match read_line_limited(&mut stdout, MAX_LOG_LINE_BYTES).await {
            Ok(Some(line)) => {
                let text = String::from_utf8_lossy(&line.bytes);
                tracing::warn!(
                    target: "switchyard::plugin",
                    plugin = %plugin,
                    stream = "stdout",
                    "Plugin printed unexpected output on stdout after its handshake: {text}"
                );
            }
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(plugin = %plugin, error = %err, "Reading the plugin's stdout failed.");
                break;
            }
        }
    }
}

/// Splits chunks of output (as forwarded over `GRPCStdio`, which does not
/// follow line boundaries) into lines of at most [`MAX_LOG_LINE_BYTES`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a chunk and returns the lines it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for byte in chunk {
            if *byte == b'\n' {
                lines.push(self.take());
            } else {
                self.pending.push(*byte);
                if self.pending.len() >= MAX_LOG_LINE_BYTES {
                    lines.push(self.take());
                }
            }
        }
        lines
    }

    /// The unterminated rest, at end of stream.
    pub fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<LogLine> {
        let mut parser = StderrParser::default();
        lines.iter().map(|line| parser.parse(line)).collect()
    }

    #[test]
    fn hclog_json_keeps_level_message_and_fields() {
        let line = &parse(&[
            r#"{"@level":"debug","@message":"plugin address","@timestamp":"2025-05-21T18:15:01.627659-04:00","address":"/tmp/p","port":3}"#,
        ])[0];
        assert_eq!(line.level, LogLevel::Debug);
        assert_eq!(line.message, "plugin address");
        assert_eq!(
            line.fields,
            [
                (
                    "timestamp".to_owned(),
                    "2025-05-21T18:15:01.627659-04:00".to_owned()
                ),
                ("address".to_owned(), "/tmp/p".to_owned()),
                ("port".to_owned(), "3".to_owned()),
            ]
        );
    }

    #[test]
    fn json_levels_are_case_insensitive() {
        assert_eq!(
            parse(&[r#"{"@level":"WARN","@message":"m"}"#])[0].level,
            LogLevel::Warn
        );
    }

    #[test]
    fn odd_json_falls_back_to_text() {
        let lines = parse(&[
            r#"{"@level":3,"@message":"m"}"#,
            r#"{"@level":"info","@message":{"nested":true}}"#,
            r#"{"@level":"warning","@message":"m"}"#,
            r#"[1,2]"#,
            r#"{"msg":"logrus style"}"#,
            "{not json",
        ]);
        for line in &lines {
            assert_eq!(line.level, LogLevel::Info, "{line:?}");
            assert!(line.fields.is_empty());
        }
        assert_eq!(lines[0].message, r#"{"@level":3,"@message":"m"}"#);
    }

    #[test]
    fn text_prefixes_set_the_level() {
        let lines = parse(&[
            "[TRACE] t",
            "[DEBUG] d",
            "[INFO]  i",
            "[WARN] w",
            "[ERROR] e",
        ]);
        let levels: Vec<_> = lines.iter().map(|line| line.level).collect();
        assert_eq!(
            levels,
            [
                LogLevel::Trace,
                LogLevel::Debug,
                LogLevel::Info,
                LogLevel::Warn,
                LogLevel::Error
            ]
        );
        assert_eq!(lines[2].message, "i");
    }

    #[test]
    fn plain_lines_are_info() {
        assert_eq!(
            parse(&["hello"])[0],
            LogLine {
                level: LogLevel::Info,
                message: "hello".into(),
                fields: vec![],
            }
        );
    }

    #[test]
    fn panic_mode_makes_later_text_lines_errors_but_not_json() {
        let lines = parse(&[
            "[DEBUG] before",
            "panic: runtime error: index out of range",
            "goroutine 1 [running]:",
            "[DEBUG] still panicking",
            r#"{"@level":"debug","@message":"json keeps its level"}"#,
        ]);
        let levels: Vec<_> = lines.iter().map(|line| line.level).collect();
        assert_eq!(
            levels,
            [
                LogLevel::Debug,
                LogLevel::Error,
                LogLevel::Error,
                LogLevel::Error,
                LogLevel::Debug
            ]
        );
        assert_eq!(
            parse(&["fatal error: all goroutines are asleep"])[0].level,
            LogLevel::Error
        );
    }

    #[tokio::test]
    async fn reads_lines_within_a_limit() {
        let input: &[u8] = b"one\r\ntwo\n0123456789abc\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut lines = Vec::new();
        while let Some(line) = read_line_limited(&mut reader, 10).await.unwrap() {
            lines.push((String::from_utf8(line.bytes).unwrap(), line.truncated));
        }
        assert_eq!(
            lines,
            [
                ("one".to_owned(), false),
                ("two".to_owned(), false),
                ("0123456789".to_owned(), true),
                ("abc".to_owned(), false),
                ("last".to_owned(), false),
            ]
        );
    }

    #[test]
    fn splits_chunks_into_lines() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"hel").is_empty());
        assert_eq!(splitter.push(b"lo\nwor"), ["hello"]);
        assert_eq!(splitter.push(b"ld\r\n"), ["world"]);
        assert_eq!(splitter.push(b"tail"), Vec::<String>::new());
        assert_eq!(splitter.finish().as_deref(), Some("tail"));
        let long = vec![b'x'; MAX_LOG_LINE_BYTES + 5];
        let lines = splitter.push(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LOG_LINE_BYTES);
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let tail = StderrTail::default();
        for index in 0..(STDERR_TAIL_LINES + 3) {
            tail.push(&format!("line {index}"));
        }
        let lines = tail.snapshot();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines[0], "line 3");
    }
}

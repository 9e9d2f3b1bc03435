//! The data-path sections: `[plugins.NAME.poll]` (when and how a polling
//! input is polled), `[plugins.NAME.output]` (what an output receives and
//! how) and `[pipeline]` (the enrichment chains). See `docs/configuration.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeValue;

use super::reader::{self, Context, Section};
use crate::domain::EventKind;

/// The default `timeout` of one poll.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The default `batch` of an output: events per `HandleEvent` stream.
pub const DEFAULT_OUTPUT_BATCH: u32 = 100;
/// The largest `batch` accepted.
pub const MAX_OUTPUT_BATCH: u32 = 10_000;
/// The largest `max_in_flight` accepted.
pub const MAX_IN_FLIGHT: u32 = 64;

const POLL_KEYS: &[&str] = &["interval", "jitter", "timeout", "max_records"];
const OUTPUT_KEYS: &[&str] = &[
    "events",
    "sources",
    "types",
    "batch",
    "max_in_flight",
    "ordered",
    "lag_alert",
];
const PIPELINE_KEYS: &[&str] = &["enrich", "on_error", "sources"];
const SOURCE_KEYS: &[&str] = &["enrich"];

/// `[plugins.NAME.poll]`: the hub polls the plugin once at start, then every
/// `interval` (plus a random delay up to `jitter`), never twice at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// The time between the end of one poll and the start of the next.
    pub interval: Duration,
    /// A random extra delay, up to this, added to each interval.
    pub jitter: Duration,
    /// The deadline of one poll attempt.
    pub timeout: Duration,
    /// The soft limit on records per poll passed to the plugin (0: none).
    pub max_records: u32,
}

/// `[plugins.NAME.output]`: the events an output receives and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// The kinds of event delivered.
    pub events: Vec<EventKind>,
    /// Only records from these sources (empty: all).
    pub sources: Vec<String>,
    /// Only records of these types (empty: all).
    pub types: Vec<String>,
    /// Events per `HandleEvent` stream.
    pub batch: u32,
    /// Streams in flight at once (more than 1 needs `ordered = false`).
    pub max_in_flight: u32,
    /// Deliver strictly in outbox order.
    pub ordered: bool,
    /// `lag_alert`: the output is reported lagging (status, metric, log)
    /// while its oldest unfinished event is older than this; `None`: never.
    pub lag_alert: Option<Duration>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            events: vec![EventKind::Created, EventKind::Updated],
            sources: Vec::new(),
            types: Vec::new(),
            batch: DEFAULT_OUTPUT_BATCH,
            max_in_flight: 1,
            ordered: true,
            lag_alert: None,
        }
    }
}

/// What happens to a record an enricher fails permanently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Store the record without this enricher's changes and note the failure
    /// in its metadata (`enrich_error.NAME`).
    Skip,
    /// Park the record in the dead letters; it is not stored.
    DeadLetter,
}

impl OnError {
    /// `skip` or `dead-letter`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Skip => "skip",
            OnError::DeadLetter => "dead-letter",
        }
    }
}

/// `[pipeline]`: the enrichment chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The enrichers every record passes through, in order.
    pub enrich: Vec<String>,
    /// Chains for particular sources, replacing `enrich` for them.
    pub sources: BTreeMap<String, Vec<String>>,
    /// Per enricher: what a permanent failure does (default `dead-letter`).
    pub on_error: BTreeMap<String, OnError>,
}

impl PipelineConfig {
    /// The chain records from `source` pass through.
    pub fn chain_for(&self, source: &str) -> &[String] {
        self.sources.get(source).unwrap_or(&self.enrich)
    }

    /// What a permanent failure of `enricher` does.
    pub fn on_error(&self, enricher: &str) -> OnError {
        self.on_error
            .get(enricher)
            .copied()
            .unwrap_or(OnError::DeadLetter)
    }

    /// Every enricher named anywhere, each once.
    pub fn enrichers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .enrich
            .iter()
            .chain(self.sources.values().flatten())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// `; did you mean `NAME`?` when `unknown` looks like a misspelt plugin name.
fn plugin_hint(unknown: &str, plugins: &[String]) -> String {
    reader::did_you_mean(unknown, plugins.iter().map(String::as_str))
        .map(|name| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

/// Reads `[plugins.NAME.poll]`.
pub(crate) fn read_poll(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
) -> Option<PollConfig> {
    section.deny_unknown_keys(context, POLL_KEYS);
    let interval = section.duration(context, "interval");
    if interval.is_none() && section.get("interval").is_none() {
        section.missing(context, "interval", "");
    }
    let jitter = match section.get("jitter") {
        None => Duration::ZERO,
        Some(value) => {
            let jitter = section.duration(context, "jitter")?;
            if let Some(interval) = interval
                && jitter > interval
            {
                context.error(
                    value.span(),
                    format!("`jitter` in {} must not exceed `interval`", section.label),
                );
            }
            jitter
        }
    };
    let timeout = section
        .duration(context, "timeout")
        .unwrap_or(DEFAULT_POLL_TIMEOUT);
    let max_records = section
        .integer_u32(context, "max_records", 0, u32::MAX)
        .unwrap_or(0);
    Some(PollConfig {
        interval: interval?,
        jitter,
        timeout,
        max_records,
    })
}

/// Reads `[plugins.NAME.output]`.
pub(crate) fn read_output(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
) -> Option<OutputConfig> {
    section.deny_unknown_keys(context, OUTPUT_KEYS);
    let errors_before = context.errors.len();
    let mut output = OutputConfig::default();
    if let Some(events) = section.string_array(context, "events") {
        output.events.clear();
        for (text, span) in events {
            let kind = match text.as_str() {
                "created" => EventKind::Created,
                "updated" => EventKind::Updated,
                _ => {
                    context.error(
                        span,
                        format!(
                            "unknown event {text:?} in `events` of {}; expected \"created\" or \"updated\"",
                            section.label
                        ),
                    );
                    continue;
                }
            };
            if !output.events.contains(&kind) {
                output.events.push(kind);
            }
        }
        if output.events.is_empty() && context.errors.len() == errors_before {
            context.error(
                section.span.clone(),
                format!("`events` in {} must name at least one event", section.label),
            );
        }
    }
    for (key, list) in [
        ("sources", &mut output.sources),
        ("types", &mut output.types),
    ] {
        if let Some(values) = section.string_array(context, key) {
            *list = values.into_iter().map(|(value, _)| value).collect();
        }
    }
    if let Some(batch) = section.integer_u32(context, "batch", 1, MAX_OUTPUT_BATCH) {
        output.batch = batch;
    }
    if let Some(ordered) = section.boolean(context, "ordered") {
        output.ordered = ordered;
    }
    if let Some(max_in_flight) = section.integer_u32(context, "max_in_flight", 1, MAX_IN_FLIGHT) {
        if max_in_flight > 1
            && output.ordered
            && let Some(value) = section.get("max_in_flight")
        {
            context.error(
                value.span(),
                format!(
                    "`max_in_flight` above 1 in {} delivers out of order; set `ordered = false` to allow it",
                    section.label
                ),
            );
        }
        output.max_in_flight = max_in_flight;
    }
    output.lag_alert = section.duration(context, "lag_alert");
    (context.errors.len() == errors_before).then_some(output)
}

/// Reads `[pipeline]`; `plugins` are the configured instance names, which
/// every enricher named must be one of.
pub(crate) fn read_pipeline(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    plugins: &[String],
) -> PipelineConfig {
    section.deny_unknown_keys(context, PIPELINE_KEYS);
    let mut pipeline = PipelineConfig::default();
    let chain = |context: &mut Context<'_>, section: &Section<'_, '_>| -> Vec<String> {
        let mut names = Vec::new();
        for (name, span) in section.string_array(context, "enrich").unwrap_or_default() {
            if !plugins.contains(&name) {
                context.error(
                    span,
                    format!(
                        "`enrich` in {} names {name:?}, which is not a configured plugin{}",
                        section.label,
                        plugin_hint(&name, plugins)
                    ),
                );
            } else if names.contains(&name) {
                context.error(
                    span,
                    format!("`enrich` in {} names {name:?} twice", section.label),
                );
            } else {
                names.push(name);
            }
        }
        names
    };
    pipeline.enrich = chain(context, section);
    if let Some(sources) = section.table(context, "sources") {
        for (key, source_section) in sources.child_tables(context) {
            let source = key.get_ref().to_string();
            source_section.deny_unknown_keys(context, SOURCE_KEYS);
            let names = chain(context, &source_section);
            pipeline.sources.insert(source, names);
        }
    }
    let parse_on_error = |context: &mut Context<'_>, text: &str, span, what: &str| match text {
        "skip" => Some(OnError::Skip),
        "dead-letter" => Some(OnError::DeadLetter),
        _ => {
            context.error(
                span,
                format!(
                    "invalid `on_error` {text:?} for {what} in [pipeline]; expected \"skip\" or \"dead-letter\""
                ),
            );
            None
        }
    };
    if let Some(value) = section.get("on_error") {
        match value.get_ref() {
            DeValue::String(text) => {
                if let Some(on_error) =
                    parse_on_error(context, text, value.span(), "every enricher")
                {
                    for name in pipeline.enrichers() {
                        pipeline.on_error.insert(name, on_error);
                    }
                }
            }
            DeValue::Table(table) => {
                for (key, item) in table.iter() {
                    let name = key.get_ref().to_string();
                    if !plugins.contains(&name) {
                        context.error(
                            key.span(),
                            format!(
                                "`on_error` in [pipeline] names {name:?}, which is not a configured plugin{}",
                                plugin_hint(&name, plugins)
                            ),
                        );
                        continue;
                    }
                    let DeValue::String(text) = item.get_ref() else {
                        context.error(
                            item.span(),
                            format!(
                                "`on_error.{name}` in [pipeline] must be a string, found {}",
                                item.get_ref().type_str()
                            ),
                        );
                        continue;
                    };
                    if let Some(on_error) =
                        parse_on_error(context, text, item.span(), &format!("`{name}`"))
                    {
                        pipeline.on_error.insert(name, on_error);
                    }
                }
            }
            other => context.error(
                value.span(),
                format!(
                    "`on_error` in [pipeline] must be a string or a table, found {}",
                    other.type_str()
                ),
            ),
        }
    }
    pipeline
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigErrors, parse};

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        parse(Path::new("plugins.toml"), text, Path::new("/tmp"))
    }

    fn errors(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_poll_output_and_pipeline_sections() {
        let config = load(
            r#"
[plugins.gen]
command = "/bin/sh"
[plugins.gen.poll]
interval = "10s"
jitter = "2s"
max_records = 500

[plugins.tag]
command = "/bin/sh"

[plugins.out]
command = "/bin/sh"
[plugins.out.output]
events = ["created"]
sources = ["gen"]
types = ["issue"]
batch = 10
ordered = false
max_in_flight = 4

[pipeline]
enrich = ["tag"]
on_error = { tag = "skip" }
[pipeline.sources.github]
enrich = []
"#,
        )
        .unwrap();
        let poll = config.plugins[0].poll.clone().unwrap();
        assert_eq!(poll.interval, Duration::from_secs(10));
        assert_eq!(poll.jitter, Duration::from_secs(2));
        assert_eq!(poll.timeout, DEFAULT_POLL_TIMEOUT);
        assert_eq!(poll.max_records, 500);
        assert_eq!(config.plugins[1].poll, None);
        assert_eq!(config.plugins[1].output, None);
        let output = config.plugins[2].output.clone().unwrap();
        assert_eq!(output.events, [EventKind::Created]);
        assert_eq!(output.sources, ["gen"]);
        assert_eq!(output.types, ["issue"]);
        assert_eq!(
            (output.batch, output.max_in_flight, output.ordered),
            (10, 4, false)
        );
        assert_eq!(config.pipeline.chain_for("gen"), ["tag"]);
        assert!(config.pipeline.chain_for("github").is_empty());
        assert_eq!(config.pipeline.on_error("tag"), OnError::Skip);
        assert_eq!(config.pipeline.on_error("other"), OnError::DeadLetter);
    }

    #[test]
    fn output_defaults_and_on_error_for_every_enricher() {
        let config = load(
            r#"
[plugins.a]
command = "/bin/sh"
[plugins.a.output]
[pipeline]
enrich = ["a"]
on_error = "skip"
"#,
        )
        .unwrap();
        assert_eq!(config.plugins[0].output, Some(OutputConfig::default()));
        assert_eq!(config.pipeline.on_error("a"), OnError::Skip);
    }

    #[test]
    fn reports_every_mistake_with_its_table() {
        let text = errors(
            r#"
[plugins.gen]
command = "/bin/sh"
[plugins.gen.poll]
jitter = "1s"
intervall = "5s"

[plugins.out]
command = "/bin/sh"
[plugins.out.output]
events = ["deleted"]
batch = 0
max_in_flight = 3

[pipeline]
enrich = ["nope", "gen", "gen"]
on_error = { gen = "explode" }
"#,
        );
        for expected in [
            "[plugins.gen.poll] is missing the required key `interval`",
            "unknown key `intervall` in [plugins.gen.poll]",
            "unknown event \"deleted\" in `events` of [plugins.out.output]",
            "`batch` in [plugins.out.output] must be between 1 and 10000, found 0",
            "set `ordered = false` to allow it",
            "`enrich` in [pipeline] names \"nope\", which is not a configured plugin",
            "`enrich` in [pipeline] names \"gen\" twice",
            "invalid `on_error` \"explode\" for `gen` in [pipeline]",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn jitter_must_not_exceed_the_interval() {
        let text = errors(
            "[plugins.gen]\ncommand = \"/bin/sh\"\n[plugins.gen.poll]\ninterval = \"1s\"\njitter = \"2s\"\n",
        );
        assert!(
            text.contains("`jitter` in [plugins.gen.poll] must not exceed `interval`"),
            "{text}"
        );
    }
}

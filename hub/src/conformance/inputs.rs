//! What the checks send: the config from `--config` (a TOML table, as the
//! plugin's `config` table in `plugins.toml`), the records from `--sample`
//! (JSON lines) and the webhook body from `--webhook-body`, or the built-in
//! defaults. Every error names the file, and the line for a sample.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::domain::Record;

/// The default webhook body: a small JSON object.
pub const DEFAULT_WEBHOOK_BODY: &str = r#"{"id":"conformance-webhook-1","event":"conformance.test","text":"a sample webhook from switchyard conformance"}"#;

/// The built-in sample records: two with text, and one whose payload is not
/// an object, which most enrichers cannot enrich (so their per-record
/// failure is exercised).
pub fn default_sample() -> Vec<Record> {
    [
        ("conformance-1", serde_json::json!({"text": "I love this, it is great and works well", "title": "A good day"})),
        ("conformance-2", serde_json::json!({"text": "This is terrible, broken and slow", "title": "A bad day"})),
        ("conformance-3", serde_json::json!("a payload that is not an object")),
    ]
    .into_iter()
    .map(|(id, payload)| Record {
        id: id.to_owned(),
        source: "switchyard-conformance".to_owned(),
        record_type: "conformance.sample".to_owned(),
        occurred_at: None,
        payload: payload.into(),
        metadata: BTreeMap::new(),
        idempotency_key: None,
    })
    .collect()
}

/// Reads `--config FILE`: a TOML table, returned as the JSON object
/// `Configure` sends.
pub fn read_config(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{}: cannot read the config: {err}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|err| {
        format!(
            "{}: not a TOML table: {}",
            path.display(),
            err.to_string().trim_end().replace('\n', "; ")
        )
    })?;
    Ok(toml_to_json(toml::Value::Table(table)))
}

/// TOML to JSON as the hub's config reader does it (dates and times become
/// their RFC 3339 text).
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(text) => serde_json::Value::String(text),
        toml::Value::Integer(number) => serde_json::Value::from(number),
        toml::Value::Float(number) => serde_json::Number::from_f64(number)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(flag) => serde_json::Value::Bool(flag),
        toml::Value::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        toml::Value::Array(items) => items.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        ),
    }
}

/// One line of a `--sample` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleLine {
    id: String,
    #[serde(default)]
    source: String,
    #[serde(default, rename = "type")]
    record_type: String,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Reads `--sample FILE`: one record per line as JSON
/// (`{"id": "...", "payload": {...}}`, optionally `source`, `type`,
/// `metadata`); blank lines are skipped.
pub fn read_sample(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{}: cannot read the sample: {err}", path.display()))?;
    parse_sample(&text).map_err(|err| format!("{}:{err}", path.display()))
}

fn parse_sample(text: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line: SampleLine = serde_json::from_str(line)
            .map_err(|err| format!("{}: not a sample record: {err}", index + 1))?;
        if line.id.is_empty() {
            return Err(format!("{}: `id` must not be empty", index + 1));
        }
        if records.iter().any(|record: &Record| record.id == line.id) {
            return Err(format!("{}: the id {:?} appears twice", index + 1, line.id));
        }
        records.push(Record {
            id: line.id,
            source: line.source,
            record_type: line.record_type,
            occurred_at: None,
            payload: line.payload.into(),
            metadata: line.metadata,
            idempotency_key: None,
        });
    }
    if records.is_empty() {
        return Err("1: the sample holds no records".to_owned());
    }
    Ok(records)
}

/// Reads `--webhook-body FILE` (sent as `application/json`).
pub fn read_webhook_body(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|err| format!("{}: cannot read the webhook body: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_tables_become_json_objects() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "rate = 2\nname = \"x\"\n[nested]\nflags = [true, false]\nat = 1979-05-27T07:32:00Z\n",
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            read_config(&path),
            Ok(
                serde_json::json!({"rate": 2, "name": "x", "nested": {"flags": [true, false], "at": "1979-05-27T07:32:00Z"}})
            )
        );
        std::fs::write(&path, "rate = ").unwrap_or_else(|err| panic!("{err}"));
        assert!(read_config(&path).is_err_and(|err| err.contains("not a TOML table")));
    }

    #[test]
    fn sample_lines_become_records() {
        let records =
            parse_sample("{\"id\":\"a\",\"payload\":{\"n\":1}}\n\n{\"id\":\"b\",\"type\":\"t\"}\n")
                .unwrap_or_default();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].payload, serde_json::json!({"n": 1}));
        assert_eq!(records[1].record_type, "t");
    }

    #[test]
    fn bad_sample_lines_are_named() {
        assert!(
            parse_sample("{\"id\":\"a\"}\n{\"payload\":1}\n")
                .is_err_and(|err| err.starts_with("2: not a sample record"))
        );
        assert_eq!(
            parse_sample("{\"id\":\"a\"}\n{\"id\":\"a\"}"),
            Err("2: the id \"a\" appears twice".to_owned())
        );
        assert_eq!(
            parse_sample("\n"),
            Err("1: the sample holds no records".to_owned())
        );
    }

    #[test]
    fn the_default_sample_has_distinct_ids() {
        let sample = default_sample();
        let mut ids: Vec<&str> = sample.iter().map(|record| record.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3);
    }
}

//! A strict reader over a spanned TOML table: typed getters that record an
//! error (with the value's position) instead of failing, and an unknown-key
//! check. Every section of `plugins.toml` is read through it, so every error
//! has the same shape: what is wrong, which key, which table.
//!
//! Adding a key to a section is one line in its allowed-key list and one getter
//! call; adding a sub-table (`[plugins.NAME.restart]`) is a [`Section::table`].

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::error::ConfigError;

/// The file being read and the errors found so far.
pub(crate) struct Context<'s> {
    /// The config file as the operator named it.
    pub path: &'s Path,
    /// The file's text, to turn byte spans into lines and columns.
    pub source: &'s str,
    /// Every problem found so far, in file order of discovery.
    pub errors: Vec<ConfigError>,
}

impl Context<'_> {
    /// Records an error at `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors
            .push(ConfigError::at(self.path, self.source, span, message));
    }
}

/// One TOML table being read, with the label used in errors (`[hub]`,
/// `[plugins.echo]`, or `the top level`).
pub(crate) struct Section<'a, 'i> {
    /// How errors name this table.
    pub label: String,
    /// The table's entries.
    pub table: &'a DeTable<'i>,
    /// Where the table starts (its header, or its inline `{`).
    pub span: Range<usize>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Records an error for every key not in `allowed`, suggesting the
    /// closest allowed key when one is near enough to be a misspelling.
    pub fn deny_unknown_keys(&self, context: &mut Context<'_>, allowed: &[&str]) {
        for key in self.table.keys() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = match did_you_mean(name, allowed.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("expected one of {}", backticked(allowed)),
            };
            context.error(
                key.span(),
                format!("unknown key `{name}` in {}; {hint}", self.label),
            );
        }
    }

    /// Records that the required `key` is missing, at the table's start;
    /// `detail`, when not empty, follows in parentheses.
    pub fn missing(&self, context: &mut Context<'_>, key: &str, detail: &str) {
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        context.error(
            self.span.clone(),
            format!("{} is missing the required key `{key}`{detail}", self.label),
        );
    }

    /// Every entry of this table read as a sub-table (`[plugins.NAME]`,
    /// `[pipeline.sources.NAME]`), in file order, with the entry's key. An
    /// entry that is not a table is recorded as an error and left out.
    pub fn child_tables(
        &self,
        context: &mut Context<'_>,
    ) -> Vec<(&'a Spanned<DeString<'i>>, Section<'a, 'i>)> {
        // The parsed map is sorted by name; the spans give the file order.
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        let mut tables = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let label = child_label(&self.label, key.get_ref());
            match value.get_ref() {
                DeValue::Table(table) => tables.push((
                    key,
                    Section {
                        label,
                        table,
                        span: value.span(),
                    },
                )),
                other => context.error(
                    value.span(),
                    format!("{label} must be a table, found {}", other.type_str()),
                ),
            }
        }
        tables
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table
            .iter()
            .find(|(name, _)| name.get_ref().as_ref() == key)
            .map(|(_, value)| value)
    }

    fn type_error(
        &self,
        context: &mut Context<'_>,
        key: &str,
        expected: &str,
        found: &Spanned<DeValue<'_>>,
    ) {
        context.error(
            found.span(),
            format!(
                "`{key}` in {} must be {expected}, found {}",
                self.label,
                found.get_ref().type_str()
            ),
        );
    }

    /// A string value with its span; `None` when absent or of another type
    /// (the latter is recorded as an error).
    pub fn string(&self, context: &mut Context<'_>, key: &str) -> Option<(String, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.to_string(), value.span())),
            _ => {
                self.type_error(context, key, "a string", value);
                None
            }
        }
    }

    /// A boolean value; `None` when absent or of another type (the latter is
    /// recorded as an error).
    pub fn boolean(&self, context: &mut Context<'_>, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                self.type_error(context, key, "true or false", value);
                None
            }
        }
    }

    /// A number (a float, or an integer read as one) with its span; `None`
    /// when absent or not a number (the latter is recorded as an error).
    pub fn float(&self, context: &mut Context<'_>, key: &str) -> Option<(f64, Range<usize>)> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Float(float) => float.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(integer) => {
                i64::from_str_radix(&integer.as_str().replace('_', ""), integer.radix())
                    .ok()
                    .map(|number| number as f64)
            }
            _ => {
                self.type_error(context, key, "a number", value);
                return None;
            }
        };
        match parsed {
            Some(number) => Some((number, value.span())),
            None => {
                context.error(
                    value.span(),
                    format!("`{key}` in {} is not a valid number", self.label),
                );
                None
            }
        }
    }

    /// [`Section::integer`] for keys that hold a `u32`.
    pub fn integer_u32(
        &self,
        context: &mut Context<'_>,
        key: &str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        self.integer(context, key, u64::from(min), u64::from(max))
            .and_then(|number| u32::try_from(number).ok())
    }

    /// An integer between `min` and `max` (inclusive); TOML's `_` separators
    /// and hexadecimal, octal and binary forms are accepted.
    pub fn integer(&self, context: &mut Context<'_>, key: &str, min: u64, max: u64) -> Option<u64> {
        let value = self.get(key)?;
        let DeValue::Integer(integer) = value.get_ref() else {
            self.type_error(context, key, "an integer", value);
            return None;
        };
        let digits = integer.as_str().replace('_', "");
        match i128::from_str_radix(&digits, integer.radix()) {
            Ok(number) if number >= i128::from(min) && number <= i128::from(max) => {
                u64::try_from(number).ok()
            }
            _ => {
                let range = if max == u64::MAX {
                    format!("a whole number of at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                context.error(
                    value.span(),
                    format!(
                        "`{key}` in {} must be {range}, found {}",
                        self.label,
                        integer.as_str()
                    ),
                );
                None
            }
        }
    }

    /// A humantime duration such as `"5s"` or `"1m 30s"`; zero is refused
    /// because almost every duration in the file is a timeout or a grace
    /// period (see [`Section::duration_or_zero`] for the exceptions).
    pub fn duration(&self, context: &mut Context<'_>, key: &str) -> Option<Duration> {
        self.parse_duration(context, key, false)
            .map(|(duration, _)| duration)
    }

    /// [`Section::duration`] with the span of its value, for range checks.
    pub fn duration_with_span(
        &self,
        context: &mut Context<'_>,
        key: &str,
    ) -> Option<(Duration, Range<usize>)> {
        self.parse_duration(context, key, false)
    }

    /// Like [`Section::duration`], but `"0s"` is allowed: for backoff delays,
    /// where zero means "at once".
    pub fn duration_or_zero(&self, context: &mut Context<'_>, key: &str) -> Option<Duration> {
        self.parse_duration(context, key, true)
            .map(|(duration, _)| duration)
    }

    fn parse_duration(
        &self,
        context: &mut Context<'_>,
        key: &str,
        zero_allowed: bool,
    ) -> Option<(Duration, Range<usize>)> {
        let (text, span) = self.string(context, key)?;
        match humantime::parse_duration(&text) {
            Ok(duration) if duration.is_zero() && !zero_allowed => {
                context.error(
                    span,
                    format!(
                        "invalid duration {text:?} for `{key}` in {}: it must be greater than zero",
                        self.label
                    ),
                );
                None
            }
            Ok(duration) => Some((duration, span)),
            Err(err) => {
                context.error(
                    span,
                    format!(
                        "invalid duration {text:?} for `{key}` in {}: {err}",
                        self.label
                    ),
                );
                None
            }
        }
    }

    /// An array of strings, each with its span.
    pub fn string_array(
        &self,
        context: &mut Context<'_>,
        key: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let value = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(context, key, "an array of strings", value);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) => strings.push((text.to_string(), item.span())),
                _ => {
                    self.type_error(context, key, "an array of strings", item);
                    return None;
                }
            }
        }
        Some(strings)
    }

    /// A sub-table, read as its own section labelled `[PARENT.key]`.
    pub fn table(&self, context: &mut Context<'_>, key: &str) -> Option<Section<'a, 'i>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(Section {
                label: child_label(&self.label, key),
                table,
                span: value.span(),
            }),
            _ => {
                self.type_error(context, key, "a table", value);
                None
            }
        }
    }
}

/// The candidate closest to `unknown`, if it is close enough to be a
/// misspelling of it: at most one edit (insertion, deletion, substitution or
/// swap of neighbours) per three characters, at least one, ignoring case.
/// Ties go to the earliest candidate.
pub(crate) fn did_you_mean<'c>(
    unknown: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let unknown_lower = unknown.to_lowercase();
    let limit = (unknown.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'c str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(&unknown_lower, &candidate.to_lowercase());
        if distance <= limit && best.is_none_or(|(closest, _)| distance < closest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `` `a`, `b`, `c` ``: a list of keys or names for a message.
pub(crate) fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The label of a sub-table: `[hub]` + `x` is `[hub.x]`; the top level + `hub`
/// is `[hub]`.
pub(crate) fn child_label(parent: &str, key: &str) -> String {
    match parent
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(inner) => format!("[{inner}.{key}]"),
        None => format!("[{key}]"),
    }
}

/// Converts a TOML value to JSON, for a plugin's `config` table. TOML has no
/// null, so every value converts, except floats JSON cannot hold (`inf`,
/// `nan`), which are reported at their position.
pub(crate) fn to_json(
    context: &mut Context<'_>,
    value: &Spanned<DeValue<'_>>,
    key_path: &str,
) -> serde_json::Value {
    use serde_json::Value;
    match value.get_ref() {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Integer(integer) => {
            let digits = integer.as_str().replace('_', "");
            match i64::from_str_radix(&digits, integer.radix()) {
                Ok(number) => Value::from(number),
                Err(_) => match u64::from_str_radix(&digits, integer.radix()) {
                    Ok(number) => Value::from(number),
                    Err(_) => {
                        context.error(
                            value.span(),
                            format!("the integer at `{key_path}` does not fit in 64 bits"),
                        );
                        Value::Null
                    }
                },
            }
        }
        DeValue::Float(float) => {
            let parsed = float.as_str().replace('_', "").parse::<f64>().ok();
            match parsed.and_then(serde_json::Number::from_f64) {
                Some(number) => Value::Number(number),
                None => {
                    context.error(
                        value.span(),
                        format!(
                            "the float {} at `{key_path}` cannot be represented in JSON",
                            float.as_str()
                        ),
                    );
                    Value::Null
                }
            }
        }
        DeValue::Boolean(flag) => Value::Bool(*flag),
        DeValue::Datetime(datetime) => Value::String(datetime.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| to_json(context, item, &format!("{key_path}[{index}]")))
                .collect(),
        ),
        DeValue::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, item)| {
                    let key = key.get_ref().to_string();
                    let json = to_json(context, item, &format!("{key_path}.{key}"));
                    (key, json)
                })
                .collect(),
        ),
    }
}

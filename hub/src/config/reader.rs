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
use toml::de::{DeTable, DeValue};

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
    /// Records an error for every key not in `allowed`.
    pub fn deny_unknown_keys(&self, context: &mut Context<'_>, allowed: &[&str]) {
        for key in self.table.keys() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let expected = allowed
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                context.error(
                    key.span(),
                    format!(
                        "unknown key `{}` in {}; expected one of {expected}",
                        key.get_ref(),
                        self.label
                    ),
                );
            }
        }
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

    /// An integer between `min` and `max` (inclusive); TOML's `_` separators
    /// and hexadecimal, octal and binary forms are accepted.
    pub fn integer(&self, context: &mut Context<'_>, key: &str, min: u64, max: u64) -> Option<u64> {
        let value = self.get(key)?;
        let DeValue::Integer(integer) = value.get_ref() else {
            context.error(
                value.span(),
                format!(
                    "`{key}` in {} must be an integer, found {}",
                    self.label,
                    value.get_ref().type_str()
                ),
            );
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
    }

    /// Like [`Section::duration`], but `"0s"` is allowed: for backoff delays,
    /// where zero means "at once".
    pub fn duration_or_zero(&self, context: &mut Context<'_>, key: &str) -> Option<Duration> {
        self.parse_duration(context, key, true)
    }

    fn parse_duration(
        &self,
        context: &mut Context<'_>,
        key: &str,
        zero_allowed: bool,
    ) -> Option<Duration> {
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
            Ok(duration) => Some(duration),
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

//! Where the values of a plugin's `config` table are in `plugins.toml`, for
//! messages about them that come after loading (`switchyard check
//! --plugins` validating a table against the plugin's JSON Schema).
//!
//! The spans are read again from the file's text rather than kept in
//! [`super::PluginConfig`], so a config that only moved lines still compares
//! equal.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::ConfigLocation;

/// One step into a value of a `config` table: a key or an array element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A table key (an object member in JSON).
    Key(String),
    /// An array element.
    Index(usize),
}

/// The parsed text of a config file, to locate values in it.
pub struct ConfigSpans<'s> {
    path: &'s Path,
    source: &'s str,
    document: Spanned<DeTable<'s>>,
}

impl<'s> ConfigSpans<'s> {
    /// Parses `source`, read from `path`; `None` if it does not parse (it
    /// did when it was loaded, so only a file changed since then fails).
    pub fn parse(path: &'s Path, source: &'s str) -> Option<Self> {
        let document = DeTable::parse(source).ok()?;
        Some(ConfigSpans {
            path,
            source,
            document,
        })
    }

    fn at(&self, span: Range<usize>) -> ConfigLocation {
        ConfigLocation::at(self.path, self.source, span.start)
    }

    fn plugin_table(&self, plugin: &str) -> Option<&Spanned<DeValue<'s>>> {
        let plugins = member(self.document.get_ref(), "plugins")?;
        let DeValue::Table(plugins) = plugins.get_ref() else {
            return None;
        };
        member(plugins, plugin)
    }

    /// Where `[plugins.NAME]` starts.
    pub fn plugin(&self, plugin: &str) -> Option<ConfigLocation> {
        Some(self.at(self.plugin_table(plugin)?.span()))
    }

    /// Where the value at `steps` inside `[plugins.NAME.config]` is: the
    /// line of its key (or, for an array element, of the element). When
    /// the path does not exist all the way (a missing key), the deepest part
    /// that does; with no `config` table, the plugin's own table.
    pub fn config_value(&self, plugin: &str, steps: &[Step]) -> Option<ConfigLocation> {
        let table = self.plugin_table(plugin)?;
        let DeValue::Table(entries) = table.get_ref() else {
            return Some(self.at(table.span()));
        };
        let Some(mut value) = member(entries, "config") else {
            return Some(self.at(table.span()));
        };
        let mut span = value.span();
        for step in steps {
            let next = match (step, value.get_ref()) {
                (Step::Key(name), DeValue::Table(entries)) => entries
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == name.as_str())
                    .map(|(key, value)| (key.span(), value)),
                (Step::Index(index), DeValue::Array(items)) => {
                    items.get(*index).map(|item| (item.span(), item))
                }
                _ => None,
            };
            let Some((found_at, found)) = next else {
                break;
            };
            span = found_at;
            value = found;
        }
        Some(self.at(span))
    }
}

fn member<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(key, _)| key.get_ref().as_ref() == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[plugins.a]
command = "/bin/true"

[plugins.a.config]
page_size = "ten"
tags = [
  "x",
  3,
]

[plugins.a.config.auth]
token_env = "T"

[plugins.b]
command = "/bin/true"
"#;

    fn line(location: Option<ConfigLocation>) -> usize {
        location.unwrap().line
    }

    #[test]
    fn locates_keys_elements_tables_and_the_deepest_existing_part() {
        let path = Path::new("plugins.toml");
        let spans = ConfigSpans::parse(path, TEXT).unwrap();
        let key = |name: &str| Step::Key(name.to_owned());
        assert_eq!(line(spans.plugin("a")), 1);
        assert_eq!(line(spans.config_value("a", &[])), 4);
        assert_eq!(line(spans.config_value("a", &[key("page_size")])), 5);
        assert_eq!(
            line(spans.config_value("a", &[key("tags"), Step::Index(1)])),
            8
        );
        assert_eq!(
            line(spans.config_value("a", &[key("auth"), key("token_env")])),
            12
        );
        assert_eq!(line(spans.config_value("a", &[key("missing")])), 4);
        assert_eq!(line(spans.config_value("b", &[key("x")])), 14);
        assert!(spans.config_value("c", &[]).is_none());
        let location = spans.config_value("a", &[key("page_size")]).unwrap();
        assert_eq!(location.to_string(), "plugins.toml:5");
    }
}

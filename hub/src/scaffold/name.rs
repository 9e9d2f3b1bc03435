//! Plugin names: what `switchyard new NAME` accepts, and the identifiers
//! derived from a name for each language.

/// Names a generated project may not take: they clash with a language's own
/// crates or modules (a Python plugin's module sits first on `sys.path`, so a
/// plugin named `json` would hide the standard `json` module from the SDK).
const RESERVED: &[&str] = &[
    // Rust
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "self",
    "super",
    "crate",
    "main",
    // Switchyard's own packages
    "switchyard_plugin",
    "switchyard_plugin_sdk",
    // Python and Go standard modules and the SDKs' dependencies a plugin could be named after
    "abc",
    "ast",
    "base64",
    "collections",
    "csv",
    "dataclasses",
    "datetime",
    "email",
    "enum",
    "errors",
    "google",
    "grpc",
    "hashlib",
    "http",
    "io",
    "json",
    "logging",
    "net",
    "os",
    "plugin",
    "pytest",
    "queue",
    "random",
    "re",
    "select",
    "signal",
    "socket",
    "sort",
    "ssl",
    "string",
    "strings",
    "sync",
    "sys",
    "tempfile",
    "threading",
    "time",
    "types",
    "typing",
    "uuid",
];

/// The longest name accepted.
const MAX_LEN: usize = 40;

/// Checks that `name` can be a plugin name in every language: an ASCII letter
/// followed by letters, digits, `-` and `_`, at most 40 characters.
///
/// # Errors
/// A sentence saying what is wrong with the name.
pub fn validate(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("the plugin name is empty".to_owned());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "the plugin name {name:?} contains {bad:?}: use only ASCII letters, digits, '-' and '_'"
        ));
    }
    if !first.is_ascii_alphabetic() {
        return Err(format!(
            "the plugin name {name:?} must start with an ASCII letter"
        ));
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "the plugin name {name:?} is longer than {MAX_LEN} characters"
        ));
    }
    if RESERVED.contains(&snake_case(name).as_str()) {
        return Err(format!(
            "the plugin name {name:?} is reserved by Rust, Python, Go or Switchyard: choose another"
        ));
    }
    Ok(())
}

/// The name as a Rust crate or Python module identifier: `my-plugin` -> `my_plugin`.
pub fn snake_case(name: &str) -> String {
    name.replace('-', "_").to_ascii_lowercase()
}

/// The name as a type name: `my-plugin` or `my_plugin` -> `MyPlugin`.
pub fn camel_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dashes_and_underscores() {
        for name in ["kit", "my-plugin", "My_Plugin2", "a"] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names_saying_why() {
        let cases = [
            ("", "empty"),
            ("my plugin", "contains ' '"),
            ("../x", "contains '.'"),
            ("émile", "contains 'é'"),
            ("2fast", "must start with an ASCII letter"),
            ("-x", "must start with an ASCII letter"),
            ("test", "reserved"),
            ("switchyard-plugin", "reserved"),
            ("json", "reserved"),
        ];
        for (name, expected) in cases {
            let err = validate(name).unwrap_err();
            assert!(err.contains(expected), "{name:?}: {err}");
        }
        assert!(validate(&"a".repeat(41)).unwrap_err().contains("longer"));
    }

    #[test]
    fn derives_identifiers() {
        assert_eq!(snake_case("my-plugin"), "my_plugin");
        assert_eq!(camel_case("my-plugin"), "MyPlugin");
        assert_eq!(camel_case("word_counter2"), "WordCounter2");
        assert_eq!(camel_case("x--y"), "XY");
    }
}

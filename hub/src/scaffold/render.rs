//! The template renderer: replaces `{{key}}` placeholders with values and
//! refuses a template that names a key it was not given, so a typo in a
//! template fails the unit tests instead of reaching a generated project.

use std::collections::BTreeMap;

/// A template named a placeholder that has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template} uses the unknown placeholder {{{{{key}}}}}")]
pub struct RenderError {
    /// Which template (its file name).
    pub template: String,
    /// The placeholder's key.
    pub key: String,
}

/// The values of a template's placeholders.
pub type Vars = BTreeMap<&'static str, String>;

/// Renders `template` (named `name` in errors), replacing every `{{key}}`
/// whose key is made of `a-z` and `_` by `vars[key]`. Other text, including
/// single braces, is copied as is.
///
/// # Errors
/// When a placeholder's key is not in `vars`.
pub fn render(name: &str, template: &str, vars: &Vars) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let key_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        if key_len > 0 && after[key_len..].starts_with("}}") {
            let key = &after[..key_len];
            let value = vars.get(key).ok_or_else(|| RenderError {
                template: name.to_owned(),
                key: key.to_owned(),
            })?;
            out.push_str(value);
            rest = &after[key_len + 2..];
        } else {
            out.push_str("{{");
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::from([("name", "kit".to_owned()), ("type_name", "Kit".to_owned())])
    }

    #[test]
    fn replaces_known_placeholders_and_keeps_other_braces() {
        let text = render(
            "t",
            "{{name}}: {{type_name}}Config { x } {{ y }} {{",
            &vars(),
        )
        .unwrap();
        assert_eq!(text, "kit: KitConfig { x } {{ y }} {{");
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_naming_it() {
        let err = render("lib.rs", "{{nmae}}", &vars()).unwrap_err();
        assert_eq!(err.key, "nmae");
        assert_eq!(
            err.to_string(),
            "template lib.rs uses the unknown placeholder {{nmae}}"
        );
    }
}

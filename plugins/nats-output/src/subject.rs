//! The subject an event is published to: the `subject` template with
//! `{source}`, `{type}` and `{kind}` filled in, each value made safe for a
//! NATS subject.

/// Every placeholder the template may use.
pub const PLACEHOLDERS: [&str; 3] = ["{source}", "{type}", "{kind}"];

/// Fills in `template`. Each value is split on `.` into subject tokens (so
/// `order.created` becomes two levels) and every token is sanitized: a
/// character that is not printable ASCII, or is whitespace, `*` or `>`
/// (NATS' wildcards), becomes `_`, and an empty token becomes `_`.
pub fn render(template: &str, source: &str, record_type: &str, kind: &str) -> String {
    template
        .replace("{source}", &tokens(source))
        .replace("{type}", &tokens(record_type))
        .replace("{kind}", &tokens(kind))
}

/// `value` as one or more sanitized subject tokens joined by `.`.
pub fn tokens(value: &str) -> String {
    value.split('.').map(token).collect::<Vec<_>>().join(".")
}

fn token(part: &str) -> String {
    if part.is_empty() {
        return "_".to_owned();
    }
    part.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '*' && c != '>' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why `template` cannot make valid subjects, if it cannot: it must be
/// non-empty, have no empty token, no wildcard, no whitespace and no `{`
/// other than the placeholders.
pub fn check_template(template: &str) -> Option<String> {
    let mut rest = template.to_owned();
    for placeholder in PLACEHOLDERS {
        rest = rest.replace(placeholder, "x");
    }
    if rest.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if rest.contains(['{', '}']) {
        return Some(format!(
            "{template:?} has an unknown placeholder; use {}",
            PLACEHOLDERS.join(", ")
        ));
    }
    if rest.split('.').any(str::is_empty) {
        return Some(format!(
            "{template:?} has an empty token (`..` or a leading or trailing `.`)"
        ));
    }
    if rest
        .chars()
        .any(|c| !c.is_ascii_graphic() || c == '*' || c == '>')
    {
        return Some(format!(
            "{template:?} has whitespace, a non-ASCII character or a wildcard (`*`, `>`)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_safe_tokens() {
        assert_eq!(
            render("sy.{source}.{type}", "my shop", "order.created", "created"),
            "sy.my_shop.order.created"
        );
        assert_eq!(render("a.{type}", "", "x..*>", "k"), "a.x._.__");
        assert_eq!(render("{source}", "", "", ""), "_");
        assert_eq!(tokens("é"), "_");
    }

    #[test]
    fn templates_are_checked() {
        assert_eq!(check_template("switchyard.{source}.{type}"), None);
        assert!(check_template("").is_some());
        assert!(check_template("a..{type}").is_some());
        assert!(check_template("a.{name}").is_some());
        assert!(check_template("a.*").is_some());
        assert!(check_template("a b").is_some());
    }
}

//! A parser for the HTTP `Link` header (RFC 8288 §3).
//!
//! Hand-written: the crate for it, `parse_link_header`, splits the header
//! on every `,` and `;`, which breaks on the commas and semicolons that
//! URLs and quoted parameters may contain, and brings `regex` along. The
//! grammar is small:
//!
//! ```text
//! Link       = #link-value
//! link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
//! link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
//! ```

/// One link: its target (as written, maybe relative) and its parameters
/// (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) target: String,
    pub(super) params: Vec<(String, String)>,
}

impl Link {
    /// True when its `rel` lists `relation` (rel holds space-separated
    /// relation types, compared case-insensitively).
    pub(super) fn has_rel(&self, relation: &str) -> bool {
        self.params
            .iter()
            .filter(|(name, _)| name == "rel")
            .any(|(_, value)| {
                value
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case(relation))
            })
    }
}

/// Parses a `Link` header value into its links.
pub(super) fn parse_link_header(text: &str) -> Result<Vec<Link>, String> {
    let mut parser = Parser {
        chars: text.char_indices().peekable(),
        text,
    };
    let mut links = Vec::new();
    loop {
        parser.skip_whitespace_and_commas();
        if parser.peek().is_none() {
            return Ok(links);
        }
        links.push(parser.link_value()?);
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.chars.next();
        }
    }

    fn skip_whitespace_and_commas(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c == ' ' || c == '\t' || c == ',')
        {
            self.chars.next();
        }
    }

    fn link_value(&mut self) -> Result<Link, String> {
        if self.chars.next().map(|(_, c)| c) != Some('<') {
            return Err("a link must start with `<`".to_owned());
        }
        let start = self.chars.peek().map_or(self.text.len(), |(i, _)| *i);
        let end = loop {
            match self.chars.next() {
                Some((i, '>')) => break i,
                Some(_) => {}
                None => return Err("a link's `<` is never closed".to_owned()),
            }
        };
        let target = self.text[start..end].trim().to_owned();
        let mut params = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(',') => return Ok(Link { target, params }),
                Some(';') => {
                    self.chars.next();
                    self.skip_whitespace();
                    if let Some(param) = self.param()? {
                        params.push(param);
                    }
                }
                Some(other) => return Err(format!("unexpected `{other}` after a link")),
            }
        }
    }

    /// One `name[=value]` parameter; `None` for an empty one (`;;`).
    fn param(&mut self) -> Result<Option<(String, String)>, String> {
        let name = self.token();
        if name.is_empty() {
            return match self.peek() {
                None | Some(',' | ';') => Ok(None),
                Some(other) => Err(format!("unexpected `{other}` in a link parameter")),
            };
        }
        self.skip_whitespace();
        if self.peek() != Some('=') {
            return Ok(Some((name.to_ascii_lowercase(), String::new())));
        }
        self.chars.next();
        self.skip_whitespace();
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            self.token()
        };
        Ok(Some((name.to_ascii_lowercase(), value)))
    }

    /// A token: anything up to whitespace or a delimiter (lenient: servers
    /// send `*` and `/` in unquoted values).
    fn token(&mut self) -> String {
        let mut token = String::new();
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | ',' | ';' | '=' | '"' | '<' | '>') {
                break;
            }
            token.push(c);
            self.chars.next();
        }
        token
    }

    /// A quoted string, with backslash escapes.
    fn quoted(&mut self) -> Result<String, String> {
        self.chars.next();
        let mut value = String::new();
        loop {
            match self.chars.next().map(|(_, c)| c) {
                Some('"') => return Ok(value),
                Some('\\') => match self.chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => return Err("a quoted string ends in `\\`".to_owned()),
                },
                Some(c) => value.push(c),
                None => return Err("a quoted string is never closed".to_owned()),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn next_of(text: &str) -> Option<String> {
        parse_link_header(text)
            .unwrap()
            .into_iter()
            .find(|link| link.has_rel("next"))
            .map(|link| link.target)
    }

    #[test]
    fn reads_githubs_header() {
        let header = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            next_of(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
    }

    #[test]
    fn handles_commas_and_semicolons_inside_urls_and_quotes() {
        let header = r#"<https://x.test/a?ids=1,2;3>; title="a, b; c"; rel="prev", <https://x.test/b?ids=4,5>; rel=next"#;
        let links = parse_link_header(header).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].target, "https://x.test/a?ids=1,2;3");
        assert_eq!(
            links[0].params[0],
            ("title".to_owned(), "a, b; c".to_owned())
        );
        assert_eq!(next_of(header).as_deref(), Some("https://x.test/b?ids=4,5"));
    }

    #[test]
    fn rel_lists_several_types_case_insensitively() {
        assert_eq!(
            next_of(r#"</p/3>; REL="Next Last""#).as_deref(),
            Some("/p/3")
        );
        assert_eq!(next_of(r#"</p/3>; rel="nextish""#), None);
        assert_eq!(next_of(r#"</p/3>; rel="prev""#), None);
        assert_eq!(next_of(""), None);
    }

    #[test]
    fn escapes_in_quoted_strings_are_honoured() {
        let links = parse_link_header(r#"</x>; title="say \"hi\""; rel=next"#).unwrap();
        assert_eq!(links[0].params[0].1, r#"say "hi""#);
        assert!(links[0].has_rel("next"));
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(parse_link_header("https://x.test/; rel=next").is_err());
        assert!(parse_link_header("<https://x.test/; rel=next").is_err());
        assert!(parse_link_header(r#"</x>; rel="next"#).is_err());
        assert!(parse_link_header("</x> junk").is_err());
    }
}

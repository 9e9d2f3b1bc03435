//! Validates a plugin's `config` table (as JSON) against the JSON Schema its
//! metadata publishes, for `switchyard check --plugins`.
//!
//! Hand-written, like [`crate::conformance::schema`] (which checks that a
//! schema is usable) and for the same reason: the `jsonschema` crate would
//! be the hub's largest dependency for one command. It covers what config
//! schemas use (those `schemars` writes for the SDKs, and hand-written
//! ones): `type`, `enum`, `const`, `properties`, `required`,
//! `additionalProperties`, `patternProperties`, `propertyNames`,
//! `min/maxProperties`, `items` (schema or draft-4 array), `prefixItems`,
//! `min/maxItems`, `uniqueItems`, `contains`, the numeric bounds (draft-4
//! boolean exclusive bounds too), `multipleOf`, `min/maxLength`, `pattern`,
//! `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, and local `$ref`s
//! (`#`, `#/$defs/...`, `#/definitions/...`). `format` is an annotation
//! (as draft 2020-12 says by default) and remote references are not
//! followed. Each violation carries the path of the offending value, so the
//! caller can point at its line in `plugins.toml`.

use std::fmt;

use serde_json::{Map, Value};

pub use crate::config::spans::Step;

/// The path of a value inside the `config` table, displayed as a TOML
/// dotted key with array indices (`auth.scopes[1]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstancePath(pub Vec<Step>);

impl InstancePath {
    fn child(&self, step: Step) -> InstancePath {
        let mut steps = self.0.clone();
        steps.push(step);
        InstancePath(steps)
    }
}

impl fmt::Display for InstancePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if index == 0 => write!(f, "{key}")?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(element) => write!(f, "[{element}]")?,
            }
        }
        Ok(())
    }
}

/// One way the table breaks the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The offending value (for a missing key: the table that lacks it).
    pub path: InstancePath,
    /// What is wrong with it.
    pub message: String,
    /// What kind of violation this is.
    pub kind: ViolationKind,
}

/// The kinds of [`Violation`] that explaining alternatives (`anyOf`,
/// `oneOf`) needs to tell apart.
#[derive(Debug, Clone, PartialEq)]
pub enum ViolationKind {
    /// The value has the wrong type.
    WrongType,
    /// The value is not the one (`const`) or one of those (`enum`) allowed,
    /// listed here: in a tagged union, the tag says which alternative is
    /// meant.
    NotAllowed(Vec<Value>),
    /// A required key is missing (`message` names it).
    MissingKey,
    /// Anything else.
    Other,
}

/// Every violation of `schema` by `instance`, in schema order.
pub fn validate(schema: &Value, instance: &Value) -> Vec<Violation> {
    let mut validator = Validator {
        root: schema,
        depth: 0,
    };
    let mut violations = Vec::new();
    validator.check(schema, instance, &InstancePath::default(), &mut violations);
    violations
}

/// How deep `$ref`s may nest before the schema is taken to be cyclic.
const MAX_DEPTH: usize = 64;

struct Validator<'s> {
    root: &'s Value,
    depth: usize,
}

impl<'s> Validator<'s> {
    fn check(
        &mut self,
        schema: &'s Value,
        value: &Value,
        at: &InstancePath,
        out: &mut Vec<Violation>,
    ) {
        let object = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                out.push(violation(
                    at,
                    format!("{} is not allowed here", show(value)),
                ));
                return;
            }
            Value::Object(object) => object,
            _ => return,
        };
        if let Some(Value::String(reference)) = object.get("$ref") {
            match self.resolve(reference) {
                Some(target) if self.depth < MAX_DEPTH => {
                    self.depth += 1;
                    self.check(target, value, at, out);
                    self.depth -= 1;
                }
                _ => {}
            }
        }
        if let Some(types) = object.get("type")
            && !type_matches(types, value)
        {
            out.push(Violation {
                kind: ViolationKind::WrongType,
                ..violation(
                    at,
                    format!("{} is not of type {}", show(value), show(types)),
                )
            });
            // The other keywords would only repeat the mismatch.
            return;
        }
        if let Some(Value::Array(allowed)) = object.get("enum")
            && !allowed.iter().any(|candidate| equal(candidate, value))
        {
            out.push(not_allowed(at, value, allowed.clone()));
        }
        if let Some(constant) = object.get("const")
            && !equal(constant, value)
        {
            out.push(not_allowed(at, value, vec![constant.clone()]));
        }
        match value {
            Value::Object(members) => self.check_object(object, members, at, out),
            Value::Array(elements) => self.check_array(object, elements, at, out),
            Value::String(text) => check_string(object, text, at, out),
            Value::Number(_) => check_number(object, value, at, out),
            Value::Null | Value::Bool(_) => {}
        }
        self.check_combinators(object, value, at, out);
    }

    fn check_object(
        &mut self,
        schema: &'s Map<String, Value>,
        members: &Map<String, Value>,
        at: &InstancePath,
        out: &mut Vec<Violation>,
    ) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !members.contains_key(name) {
                    out.push(Violation {
                        path: at.clone(),
                        message: format!("is missing the required key {}", show_str(name)),
                        kind: ViolationKind::MissingKey,
                    });
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let patterns: Vec<(regex::Regex, &'s Value)> = schema
            .get("patternProperties")
            .and_then(Value::as_object)
            .map(|patterns| {
                patterns
                    .iter()
                    .filter_map(|(pattern, sub)| Some((regex::Regex::new(pattern).ok()?, sub)))
                    .collect()
            })
            .unwrap_or_default();
        for (name, member) in members {
            let here = at.child(Step::Key(name.clone()));
            let mut known = false;
            if let Some(sub) = properties.and_then(|properties| properties.get(name)) {
                known = true;
                self.check(sub, member, &here, out);
            }
            for (pattern, sub) in &patterns {
                if pattern.is_match(name) {
                    known = true;
                    self.check(sub, member, &here, out);
                }
            }
            if !known {
                match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(violation(
                        &here,
                        "is not an allowed key (the schema allows no other keys here)".to_owned(),
                    )),
                    Some(sub) => self.check(sub, member, &here, out),
                    None => {}
                }
            }
            if let Some(names) = schema.get("propertyNames") {
                let mut found = Vec::new();
                self.check(names, &Value::String(name.clone()), at, &mut found);
                if !found.is_empty() {
                    out.push(violation(&here, "is not an allowed key name".to_owned()));
                }
            }
        }
        let count = members.len();
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (count as u64) < min
        {
            out.push(violation(at, format!("has {count} keys, fewer than {min}")));
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && (count as u64) > max
        {
            out.push(violation(at, format!("has {count} keys, more than {max}")));
        }
    }

    fn check_array(
        &mut self,
        schema: &'s Map<String, Value>,
        elements: &[Value],
        at: &InstancePath,
        out: &mut Vec<Violation>,
    ) {
        let mut first_free = 0;
        if let Some(Value::Array(prefix)) = schema.get("prefixItems") {
            for (index, (sub, element)) in prefix.iter().zip(elements).enumerate() {
                self.check(sub, element, &at.child(Step::Index(index)), out);
            }
            first_free = prefix.len();
        }
        match schema.get("items") {
            // Draft 4-7: a list of schemas, one per position.
            Some(Value::Array(positional)) => {
                for (index, (sub, element)) in positional.iter().zip(elements).enumerate() {
                    self.check(sub, element, &at.child(Step::Index(index)), out);
                }
                if let Some(extra) = schema.get("additionalItems") {
                    for (index, element) in elements.iter().enumerate().skip(positional.len()) {
                        self.check(extra, element, &at.child(Step::Index(index)), out);
                    }
                }
            }
            Some(sub) => {
                for (index, element) in elements.iter().enumerate().skip(first_free) {
                    self.check(sub, element, &at.child(Step::Index(index)), out);
                }
            }
            None => {}
        }
        let count = elements.len();
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (count as u64) < min
        {
            out.push(violation(
                at,
                format!("has {count} items, fewer than {min}"),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (count as u64) > max
        {
            out.push(violation(at, format!("has {count} items, more than {max}")));
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            let repeated = elements.iter().enumerate().any(|(index, element)| {
                elements[..index]
                    .iter()
                    .any(|earlier| equal(earlier, element))
            });
            if repeated {
                out.push(violation(at, "has repeated items".to_owned()));
            }
        }
        if let Some(contains) = schema.get("contains") {
            let any = elements.iter().any(|element| {
                let mut found = Vec::new();
                self.check(contains, element, at, &mut found);
                found.is_empty()
            });
            if !any {
                out.push(violation(
                    at,
                    "has no item the schema's `contains` accepts".to_owned(),
                ));
            }
        }
    }

    fn check_combinators(
        &mut self,
        schema: &'s Map<String, Value>,
        value: &Value,
        at: &InstancePath,
        out: &mut Vec<Violation>,
    ) {
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for sub in all {
                self.check(sub, value, at, out);
            }
        }
        if let Some(Value::Array(any)) = schema.get("anyOf") {
            let outcomes: Vec<Vec<Violation>> =
                any.iter().map(|sub| self.all(sub, value, at)).collect();
            if !outcomes.iter().any(Vec::is_empty) {
                out.extend(explain_alternatives(outcomes, value, at, "anyOf"));
            }
        }
        if let Some(Value::Array(one)) = schema.get("oneOf") {
            let outcomes: Vec<Vec<Violation>> =
                one.iter().map(|sub| self.all(sub, value, at)).collect();
            let matching = outcomes.iter().filter(|found| found.is_empty()).count();
            if matching == 0 {
                out.extend(explain_alternatives(outcomes, value, at, "oneOf"));
            } else if matching > 1 {
                out.push(violation(
                    at,
                    format!(
                        "{} matches {matching} of the schemas in `oneOf`, not exactly one",
                        show(value)
                    ),
                ));
            }
        }
        if let Some(not) = schema.get("not")
            && self.all(not, value, at).is_empty()
        {
            out.push(violation(
                at,
                format!("{} is not allowed here (`not`)", show(value)),
            ));
        }
        if let Some(condition) = schema.get("if") {
            let branch = if self.all(condition, value, at).is_empty() {
                schema.get("then")
            } else {
                schema.get("else")
            };
            if let Some(branch) = branch {
                self.check(branch, value, at, out);
            }
        }
    }

    fn all(&mut self, schema: &'s Value, value: &Value, at: &InstancePath) -> Vec<Violation> {
        let mut found = Vec::new();
        self.check(schema, value, at, &mut found);
        found
    }

    /// The schema a local `$ref` names (`#`, `#/$defs/Name`, any JSON
    /// pointer into the root); `None` for remote references.
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        let root: &'s Value = self.root;
        if pointer.is_empty() {
            return Some(root);
        }
        let decoded: String = pointer
            .split('/')
            .map(percent_decode)
            .collect::<Vec<_>>()
            .join("/");
        root.pointer(&decoded)
    }
}

/// When no alternative matched, what to say. An alternative is ruled out
/// by a violation that shows it is not the one meant: the value's type, or
/// the value (or, in a tagged union, one of its keys: the tag) being other
/// than what the alternative allows. If exactly one alternative is left,
/// its violations say the most. If every one was ruled out by the same key,
/// that key's value is not any of those allowed. Otherwise, one line for
/// the value.
fn explain_alternatives(
    outcomes: Vec<Vec<Violation>>,
    value: &Value,
    at: &InstancePath,
    keyword: &str,
) -> Vec<Violation> {
    let rules_out = |violation: &Violation| match &violation.kind {
        ViolationKind::WrongType => violation.path == *at,
        ViolationKind::NotAllowed(_) => {
            violation.path == *at
                || (violation.path.0.len() == at.0.len() + 1 && violation.path.0.starts_with(&at.0))
        }
        ViolationKind::MissingKey | ViolationKind::Other => false,
    };
    let left: Vec<&Vec<Violation>> = outcomes
        .iter()
        .filter(|found| !found.iter().any(rules_out))
        .collect();
    if let [only] = left.as_slice() {
        return (*only).clone();
    }
    // Only one alternative has the value's type: it is the one meant.
    let wrong_type =
        |violation: &Violation| violation.kind == ViolationKind::WrongType && violation.path == *at;
    let typed: Vec<&Vec<Violation>> = outcomes
        .iter()
        .filter(|found| !found.iter().any(wrong_type))
        .collect();
    if let [only] = typed.as_slice() {
        return (*only).clone();
    }
    if left.is_empty() && !typed.is_empty() {
        // The same key (or the value itself) ruled every alternative of the
        // right type out: gather what they allow there.
        let tags: Vec<&Violation> = typed
            .iter()
            .filter_map(|found| {
                found.iter().find(|violation| {
                    matches!(violation.kind, ViolationKind::NotAllowed(_)) && rules_out(violation)
                })
            })
            .collect();
        if tags.len() == typed.len()
            && let Some(first) = tags.first()
            && tags.iter().all(|tag| tag.path == first.path)
        {
            let mut allowed: Vec<Value> = Vec::new();
            for tag in &tags {
                if let ViolationKind::NotAllowed(values) = &tag.kind {
                    for candidate in values {
                        if !allowed.iter().any(|known| equal(known, candidate)) {
                            allowed.push(candidate.clone());
                        }
                    }
                }
            }
            let found = lookup(value, &first.path.0[at.0.len()..]);
            return vec![not_allowed(&first.path, &found, allowed)];
        }
    }
    vec![violation(
        at,
        format!(
            "{} is not valid under any of the schemas in `{keyword}`",
            show(value)
        ),
    )]
}

/// The value at `steps` below `value` (`null` if there is none).
fn lookup(value: &Value, steps: &[Step]) -> Value {
    let mut current = value;
    for step in steps {
        let next = match step {
            Step::Key(key) => current.get(key.as_str()),
            Step::Index(index) => current.get(*index),
        };
        match next {
            Some(next) => current = next,
            None => return Value::Null,
        }
    }
    current.clone()
}

fn not_allowed(at: &InstancePath, value: &Value, allowed: Vec<Value>) -> Violation {
    let message = match allowed.as_slice() {
        [only] => format!("{} is not {}", show(value), show(only)),
        _ => format!(
            "{} is not one of [{}]",
            show(value),
            allowed.iter().map(show).collect::<Vec<_>>().join(",")
        ),
    };
    Violation {
        path: at.clone(),
        message,
        kind: ViolationKind::NotAllowed(allowed),
    }
}

fn check_string(
    schema: &Map<String, Value>,
    text: &str,
    at: &InstancePath,
    out: &mut Vec<Violation>,
) {
    let length = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        out.push(violation(
            at,
            format!("{} is shorter than {min} characters", show_str(text)),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        out.push(violation(
            at,
            format!("{} is longer than {max} characters", show_str(text)),
        ));
    }
    if let Some(Value::String(pattern)) = schema.get("pattern")
        && let Ok(regex) = regex::Regex::new(pattern)
        && !regex.is_match(text)
    {
        out.push(violation(
            at,
            format!(
                "{} does not match the pattern {}",
                show_str(text),
                show_str(pattern)
            ),
        ));
    }
}

fn check_number(
    schema: &Map<String, Value>,
    value: &Value,
    at: &InstancePath,
    out: &mut Vec<Violation>,
) {
    let Some(number) = value.as_f64() else {
        return;
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    // Draft 4: `exclusiveMinimum: true` makes `minimum` exclusive.
    let exclusive = |key: &str| schema.get(key) == Some(&Value::Bool(true));
    if let Some(min) = bound("minimum") {
        if exclusive("exclusiveMinimum") && number <= min {
            out.push(violation(
                at,
                format!("{} is not greater than {}", show(value), min),
            ));
        } else if number < min {
            out.push(violation(
                at,
                format!("{} is less than the minimum of {}", show(value), min),
            ));
        }
    }
    if let Some(max) = bound("maximum") {
        if exclusive("exclusiveMaximum") && number >= max {
            out.push(violation(
                at,
                format!("{} is not less than {}", show(value), max),
            ));
        } else if number > max {
            out.push(violation(
                at,
                format!("{} is greater than the maximum of {}", show(value), max),
            ));
        }
    }
    if let Some(min) = bound("exclusiveMinimum")
        && number <= min
    {
        out.push(violation(
            at,
            format!("{} is not greater than {}", show(value), min),
        ));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && number >= max
    {
        out.push(violation(
            at,
            format!("{} is not less than {}", show(value), max),
        ));
    }
    if let Some(divisor) = bound("multipleOf")
        && divisor > 0.0
    {
        let quotient = number / divisor;
        if (quotient - quotient.round()).abs() > 1e-9 {
            out.push(violation(
                at,
                format!("{} is not a multiple of {}", show(value), divisor),
            ));
        }
    }
}

fn violation(at: &InstancePath, message: String) -> Violation {
    Violation {
        path: at.clone(),
        message,
        kind: ViolationKind::Other,
    }
}

/// Whether `value` has the type (or one of the types) `types` names.
fn type_matches(types: &Value, value: &Value) -> bool {
    match types {
        Value::String(name) => has_type(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| has_type(name, value)),
        _ => true,
    }
}

fn has_type(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => is_integer(value),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|number| number.fract() == 0.0)
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| equal(x, y)))
        }
        _ => left == right,
    }
}

/// The most of a value shown in a message.
const SHOW_MAX: usize = 60;

/// A value as compact JSON, shortened.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOW_MAX {
        text
    } else {
        let short: String = text.chars().take(SHOW_MAX).collect();
        format!("{short}…")
    }
}

fn show_str(text: &str) -> String {
    show(&Value::String(text.to_owned()))
}

/// Decodes the `%XX` escapes of a `$ref` token (the JSON pointer escapes
/// `~0` and `~1` are left to
/// [`Value::pointer`]).
fn percent_decode(token: &str) -> String {
    let bytes = token.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(byte) = token
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(schema: Value, instance: Value) -> Vec<String> {
        validate(&schema, &instance)
            .into_iter()
            .map(|violation| format!("{}: {}", violation.path, violation.message))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn reports_types_required_and_unknown_keys_with_their_paths() {
        let schema = json!({
            "type": "object",
            "properties": {
                "page_size": {"type": "integer", "format": "uint64", "minimum": 0},
                "survey_ids": {"type": ["array", "null"], "items": {"type": "string"}},
                "base_url": {"type": "string"},
                "api_key_env": {"type": "string"}
            },
            "required": ["base_url", "api_key_env"],
            "additionalProperties": false
        });
        let instance =
            json!({"page_size": "ten", "survey_ids": ["a", 3], "base_url": "x", "bogus": 1});
        assert_eq!(
            messages(schema.clone(), instance),
            vec![
                ": is missing the required key \"api_key_env\"",
                "bogus: is not an allowed key (the schema allows no other keys here)",
                "page_size: \"ten\" is not of type \"integer\"",
                "survey_ids[1]: 3 is not of type \"string\"",
            ]
        );
        assert!(
            messages(
                schema.clone(),
                json!({"base_url": "x", "api_key_env": "K", "page_size": 10.0})
            )
            .is_empty()
        );
        assert_eq!(
            messages(
                schema,
                json!({"base_url": "x", "api_key_env": "K", "page_size": -1})
            ),
            vec!["page_size: -1 is less than the minimum of 0"]
        );
    }

    #[test]
    fn follows_local_refs_and_explains_the_alternative_of_the_right_type() {
        // What schemars writes for `Option<Auth>` with a nested struct.
        let schema = json!({
            "type": "object",
            "properties": {
                "auth": {"anyOf": [{"$ref": "#/$defs/Auth"}, {"type": "null"}]},
                "mode": {"enum": ["fast", "slow"]},
                "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true}
            },
            "$defs": {
                "Auth": {"type": "object", "properties": {"kind": {"const": "bearer"}}, "required": ["kind", "token_env"]}
            }
        });
        assert_eq!(
            messages(
                schema.clone(),
                json!({"auth": {"kind": "basic"}, "mode": "medium", "tags": ["a", "", "a"]})
            ),
            vec![
                "auth.kind: \"basic\" is not \"bearer\"",
                "auth: is missing the required key \"token_env\"",
                "mode: \"medium\" is not one of [\"fast\",\"slow\"]",
                "tags: has repeated items",
                "tags[1]: \"\" is shorter than 1 characters",
            ]
        );
        assert_eq!(
            messages(schema.clone(), json!({"auth": 5})),
            vec!["auth: 5 is not valid under any of the schemas in `anyOf`"]
        );
        assert!(
            messages(
                schema,
                json!({"auth": {"kind": "bearer", "token_env": "T"}, "mode": "fast"})
            )
            .is_empty()
        );
    }

    #[test]
    fn a_tagged_union_is_explained_by_its_tag() {
        // What schemars writes for `#[serde(tag = "kind")]` enums.
        let variant = |tag: &str, key: &str| {
            json!({"type": "object",
                   "properties": {"kind": {"type": "string", "const": tag}, key: {"type": "string"}},
                   "required": ["kind", key], "additionalProperties": false})
        };
        let schema = json!({"properties": {"auth": {"oneOf": [variant("bearer", "token_env"), variant("basic", "user")]}}});
        assert_eq!(
            messages(
                schema.clone(),
                json!({"auth": {"kind": "bearer", "token": "x"}})
            ),
            vec![
                "auth.token: is not an allowed key (the schema allows no other keys here)",
                "auth: is missing the required key \"token_env\"",
            ]
        );
        assert_eq!(
            messages(
                schema.clone(),
                json!({"auth": {"kind": "bearr", "user": "u"}})
            ),
            vec!["auth.kind: \"bearr\" is not one of [\"bearer\",\"basic\"]"]
        );
        assert_eq!(
            messages(schema, json!({"auth": "token"})),
            vec!["auth: \"token\" is not valid under any of the schemas in `oneOf`"]
        );
    }

    #[test]
    fn checks_strings_numbers_and_combinators() {
        let schema = json!({
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 4},
                "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "multipleOf": 0.25},
                "either": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]}
            }
        });
        assert_eq!(
            messages(
                schema.clone(),
                json!({"name": "Hello", "rate": 0, "either": 2})
            ),
            vec![
                "either: 2 matches 2 of the schemas in `oneOf`, not exactly one",
                "name: \"Hello\" does not match the pattern \"^[a-z]+$\"",
                "name: \"Hello\" is longer than 4 characters",
                "rate: 0 is not greater than 0",
            ]
        );
        assert_eq!(
            messages(
                json!({"not": {"required": ["forbidden"]}}),
                json!({"forbidden": true})
            ),
            vec![": {\"forbidden\":true} is not allowed here (`not`)"]
        );
        assert!(messages(schema, json!({"name": "abc", "rate": 0.75, "either": 1.5})).is_empty());
        assert_eq!(
            messages(json!(false), json!(1)),
            vec![": 1 is not allowed here"]
        );
        assert!(messages(json!(true), json!(1)).is_empty());
    }
}

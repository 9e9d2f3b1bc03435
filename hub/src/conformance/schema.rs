//! Whether a plugin's config schema is a usable JSON Schema.
//!
//! Hand-written rather than validating against the draft 2020-12 meta-schema
//! with the `jsonschema` crate: that crate (with its regex engine, URL
//! resolver and format validators) would be the hub's largest dependency for
//! one check, and what matters here is narrower: the schema parses, is an
//! object (or `true`/`false`), and the keywords that describe a config table
//! (`type`, `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, and the combinators) have the shapes JSON Schema gives them, at
//! every depth.

use serde_json::Value;

/// The type names JSON Schema knows.
const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Checks `text` as a JSON Schema; the error names the keyword and where it is
/// (a JSON pointer into the schema).
pub fn validate(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Err("the config schema is empty".to_owned());
    }
    let schema: Value = serde_json::from_str(text)
        .map_err(|err| format!("the config schema is not JSON: {err}"))?;
    check(&schema, "")?;
    if schema.is_object() {
        Ok(schema)
    } else {
        Err("the config schema is not a JSON object".to_owned())
    }
}

fn check(schema: &Value, at: &str) -> Result<(), String> {
    let object = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "{} is {}, not a schema (an object or a boolean)",
                place(at),
                kind(other)
            ));
        }
    };
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "type" => match value {
                Value::String(name) => known_type(name, &here)?,
                Value::Array(names) if !names.is_empty() => {
                    for name in names {
                        match name {
                            Value::String(name) => known_type(name, &here)?,
                            other => {
                                return Err(format!(
                                    "{} lists {}, not a type name",
                                    place(&here),
                                    kind(other)
                                ));
                            }
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "{} is {}, not a type name or a list of them",
                        place(&here),
                        kind(other)
                    ));
                }
            },
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                let Value::Object(members) = value else {
                    return Err(format!(
                        "{} is {}, not an object",
                        place(&here),
                        kind(value)
                    ));
                };
                for (name, member) in members {
                    check(member, &format!("{here}/{name}"))?;
                }
            }
            "additionalProperties"
            | "items"
            | "not"
            | "propertyNames"
            | "contains"
            | "additionalItems"
            | "if"
            | "then"
            | "else" => check(value, &here)?,
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                let Value::Array(members) = value else {
                    return Err(format!("{} is {}, not an array", place(&here), kind(value)));
                };
                for (index, member) in members.iter().enumerate() {
                    check(member, &format!("{here}/{index}"))?;
                }
            }
            "required" => {
                let all_strings = value
                    .as_array()
                    .is_some_and(|names| names.iter().all(Value::is_string));
                if !all_strings {
                    return Err(format!(
                        "{} is not an array of property names",
                        place(&here)
                    ));
                }
            }
            "enum" if !value.is_array() => {
                return Err(format!("{} is {}, not an array", place(&here), kind(value)));
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf"
                if !value.is_number() =>
            {
                return Err(format!("{} is {}, not a number", place(&here), kind(value)));
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties"
                if value.as_u64().is_none() =>
            {
                return Err(format!(
                    "{} is {}, not a non-negative integer",
                    place(&here),
                    kind(value)
                ));
            }
            // Annotations (title, description, default, examples, format,
            // $schema, ...) and keywords this check does not know are free.
            _ => {}
        }
    }
    Ok(())
}

fn known_type(name: &str, at: &str) -> Result<(), String> {
    if TYPES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "{} names the unknown type {name:?} (expected one of {})",
            place(at),
            TYPES.join(", ")
        ))
    }
}

fn place(at: &str) -> String {
    if at.is_empty() {
        "the schema".to_owned()
    } else {
        format!("`{at}`")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_config_schema() {
        let text = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
            "properties":{"rate":{"type":["integer","null"],"minimum":1},
            "tags":{"type":"array","items":{"type":"string"}},"mode":{"enum":["a","b"]}},
            "required":["rate"],"additionalProperties":false}"#;
        assert!(validate(text).is_ok());
    }

    #[test]
    fn rejects_what_is_not_a_schema() {
        assert_eq!(validate(""), Err("the config schema is empty".to_owned()));
        assert!(validate("{").is_err_and(|err| err.starts_with("the config schema is not JSON")));
        assert_eq!(
            validate("[1]"),
            Err("the schema is an array, not a schema (an object or a boolean)".to_owned())
        );
        assert_eq!(validate(r#"{"properties":{"a":{"type":"text"}}}"#), Err("`/properties/a/type` names the unknown type \"text\" (expected one of object, array, string, number, integer, boolean, null)".to_owned()));
        assert_eq!(
            validate(r#"{"required":"a"}"#),
            Err("`/required` is not an array of property names".to_owned())
        );
        assert_eq!(
            validate(r#"{"properties":{"a":{"minLength":-1}}}"#),
            Err("`/properties/a/minLength` is a number, not a non-negative integer".to_owned())
        );
    }
}

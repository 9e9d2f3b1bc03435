//! The JSON Schema the model's answer is constrained by: the default
//! (sentiment), reading the `schema` key, and a best-effort check of the
//! answer against the schema's top level.

use serde_json::{Value, json};
use switchyard_plugin_sdk::payload_path;

/// The default schema: `{"label": "positive" | "negative" | "neutral",
/// "score": number}`, both required, nothing else (strict mode needs
/// `additionalProperties: false` and every property required).
pub fn default_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "score": {"type": "number"},
        },
        "required": ["label", "score"],
        "additionalProperties": false,
    })
}

/// Reads the `schema` key: a TOML table (a JSON object) or a string of JSON
/// holding an object.
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn from_config(value: &Value) -> Result<Value, String> {
    let schema = match value {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .map_err(|err| format!("is a string but not JSON: {err}"))?,
        other => other.clone(),
    };
    if !schema.is_object() {
        return Err("must be a JSON Schema object (a table, or a string of JSON)".into());
    }
    if let Some(kind) = schema.get("type")
        && !kind.is_string()
        && !kind.is_array()
    {
        return Err("its `type` must be a string or an array of strings".into());
    }
    Ok(schema)
}

/// Checks `answer` against the top level of `schema`, best effort: the
/// answer's JSON type against `type`, `enum`, and, for an object, that every
/// `required` key is present and that each top-level property that has a
/// `type` or `enum` in `properties` matches it. Nested schemas, formats,
/// ranges and patterns are not checked (a strict-mode server enforces them).
///
/// # Errors
/// The first mismatch, as a sentence.
pub fn check(schema: &Value, answer: &Value) -> Result<(), String> {
    check_value(schema, answer, "the answer")?;
    let Some(object) = answer.as_object() else {
        return Ok(());
    };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                return Err(format!(
                    "the answer has no `{key}`, which the schema requires"
                ));
            }
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, property) in properties {
            if let Some(value) = object.get(key) {
                check_value(property, value, &format!("`{key}`"))?;
            }
        }
    }
    Ok(())
}

/// Checks `value`'s JSON type against `schema.type` and membership in
/// `schema.enum`.
fn check_value(schema: &Value, value: &Value, what: &str) -> Result<(), String> {
    let allowed: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !allowed.is_empty() && !allowed.iter().any(|kind| has_type(value, kind)) {
        return Err(format!(
            "{what} is {} but the schema wants {}",
            payload_path::kind(value),
            allowed.join(" or ")
        ));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!(
            "{what} is {value}, not one of the schema's enum {}",
            Value::Array(options.clone())
        ));
    }
    Ok(())
}

/// True when `value` is of the JSON Schema type `kind`.
fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schema_accepts_a_sentiment_and_rejects_the_rest() {
        let schema = default_schema();
        check(&schema, &json!({"label": "neutral", "score": 0})).unwrap();
        let err = check(&schema, &json!({"label": "happy", "score": 1})).unwrap_err();
        assert!(err.contains("`label`") && err.contains("enum"), "{err}");
        let err = check(&schema, &json!({"label": "positive"})).unwrap_err();
        assert!(err.contains("no `score`"), "{err}");
        let err = check(&schema, &json!({"label": "positive", "score": "high"})).unwrap_err();
        assert!(err.contains("`score` is a string"), "{err}");
        let err = check(&schema, &json!([1])).unwrap_err();
        assert!(err.contains("the answer is an array"), "{err}");
    }

    #[test]
    fn the_schema_key_takes_a_table_or_a_json_string() {
        let table = json!({"type": "object", "required": ["topic"]});
        assert_eq!(from_config(&table).unwrap(), table);
        let text = json!("{\"type\": \"object\", \"required\": [\"topic\"]}");
        assert_eq!(from_config(&text).unwrap(), table);
        assert!(
            from_config(&json!("{nope"))
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            from_config(&json!([1]))
                .unwrap_err()
                .contains("JSON Schema object")
        );
        assert!(
            from_config(&json!({"type": 3}))
                .unwrap_err()
                .contains("`type`")
        );
        check(&json!({"type": ["integer", "null"]}), &json!(null)).unwrap();
    }
}

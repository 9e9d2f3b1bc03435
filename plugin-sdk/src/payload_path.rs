//! Dotted paths into a record's JSON payload (`body.text`): what enrichers
//! name in their config to read a field and to write their answer.

use serde_json::Value;

/// Splits `a.b.c` into its keys; `None` for an empty key anywhere.
pub fn split_path(path: &str) -> Option<Vec<String>> {
    let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
    (!keys.iter().any(String::is_empty)).then_some(keys)
}

/// The value at `keys`, if every step is an object that has the key.
pub fn lookup<'a>(value: &'a Value, keys: &[String]) -> Option<&'a Value> {
    keys.iter()
        .try_fold(value, |value, key| value.as_object()?.get(key))
}

/// Sets `keys` in `value`, creating objects on the way; on failure returns
/// the dotted prefix that exists but is not an object.
pub fn set_path(value: &mut Value, keys: &[String], new: Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Err(String::new());
    };
    let mut current = value;
    for (depth, key) in parents.iter().enumerate() {
        let map = current
            .as_object_mut()
            .ok_or_else(|| keys[..depth].join("."))?;
        current = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    let map = current.as_object_mut().ok_or_else(|| parents.join("."))?;
    map.insert(last.clone(), new);
    Ok(())
}

/// What a payload value is, for error messages: "a string", "an object"…
pub fn kind(value: &Value) -> &'static str {
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_and_write_nested_objects() {
        assert_eq!(split_path("a..b"), None);
        let keys = split_path("analysis.llm").unwrap();
        let mut payload = json!({"text": "hi"});
        set_path(&mut payload, &keys, json!(1)).unwrap();
        assert_eq!(payload, json!({"text": "hi", "analysis": {"llm": 1}}));
        assert_eq!(lookup(&payload, &keys), Some(&json!(1)));
        let mut scalar = json!({"analysis": 3});
        assert_eq!(
            set_path(&mut scalar, &keys, json!(1)),
            Err("analysis".into())
        );
    }
}

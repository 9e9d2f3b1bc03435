//! A record's content, kept as the JSON text it arrived in.
//!
//! The hub never looks inside a payload on its data path: it takes the
//! plugin's bytes, stores them, puts them in the outbox and hands them to
//! outputs. Parsing every payload into a `serde_json::Value` tree (and
//! serializing and freeing it again at each hop) was a fifth of the hub's
//! CPU in the durable pipeline, so a [`Payload`] is the validated text
//! itself: checked once where it enters (a plugin's record, an API body, a
//! database row), then copied as bytes. It also keeps what a tree loses:
//! the plugin's key order and numbers beyond `f64`'s precision.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// One JSON document (any JSON value), validated, as text.
///
/// Two payloads are equal when they are the same JSON value, whatever
/// their whitespace or key order (`{"a":1,"b":2}` equals `{ "b": 2, "a": 1 }`).
///
/// ```
/// use switchyard_hub::domain::Payload;
///
/// let payload = Payload::from_json(br#"{"title": "It broke"}"#.to_vec())?;
/// assert_eq!(payload.as_str(), r#"{"title": "It broke"}"#);
/// assert_eq!(payload, serde_json::json!({"title": "It broke"}));
/// assert!(Payload::from_json(b"{not json".to_vec()).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The JSON `null`: the payload of a record sent without one.
    pub fn null() -> Payload {
        Payload(RawValue::NULL.to_owned())
    }

    /// Takes `bytes` as a payload if they are one valid UTF-8 JSON document
    /// (surrounding whitespace is dropped). Validation is as strict as
    /// parsing into a `serde_json::Value`: it also refuses escapes of lone
    /// UTF-16 surrogates, which would not parse anywhere downstream.
    pub fn from_json(bytes: Vec<u8>) -> Result<Payload, serde_json::Error> {
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            // Let serde_json describe where the bad byte is.
            Err(err) => return Err(refuse(err.as_bytes())),
        };
        Payload::from_json_text(text)
    }

    /// Like [`Payload::from_json`], for text.
    pub fn from_json_text(text: String) -> Result<Payload, serde_json::Error> {
        check_escapes(&text)?;
        RawValue::from_string(text).map(Payload)
    }

    /// The payload of `value`.
    pub fn from_value(value: &Value) -> Payload {
        // A Value always serializes, and to valid JSON.
        let text = value.to_string();
        match RawValue::from_string(text) {
            Ok(raw) => Payload(raw),
            Err(_) => Payload::null(),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text, as bytes for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_str().as_bytes().to_vec()
    }

    /// The payload parsed into a tree, for code that looks inside it.
    pub fn to_value(&self) -> Value {
        // Validated on the way in, so this parses; `null` only if a future
        // serde_json became stricter than the validation above.
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }
}

/// Refuses the escapes of valid JSON text that a raw scan lets through
/// and a full parse does not (`\uD800` alone). Only text with a `\u`
/// escape pays for the full parse.
fn check_escapes(text: &str) -> Result<(), serde_json::Error> {
    if text.contains("\\u") {
        serde_json::from_str::<Value>(text)?;
    }
    Ok(())
}

/// The error serde_json gives for `bytes`, which are not valid UTF-8 JSON
/// (a full parse checks the UTF-8 of strings, which a skipping one does not).
fn refuse(bytes: &[u8]) -> serde_json::Error {
    match serde_json::from_slice::<Value>(bytes) {
        Err(err) => err,
        Ok(_) => serde::de::Error::custom("the payload is not valid UTF-8"),
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::null()
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::from_value(&value)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        &self.to_value() == other
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written as the JSON value itself (not as a string) by serde_json.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Read from serde_json as the JSON value itself, copied as text (strictly
/// validated like [`Payload::from_json_text`]).
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        check_escapes(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Payload(raw))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_the_text_and_compares_by_value() {
        let spaced = Payload::from_json(b" { \"b\": 2, \"a\": 1.50 } \n".to_vec()).unwrap();
        assert_eq!(spaced.as_str(), "{ \"b\": 2, \"a\": 1.50 }");
        let compact = Payload::from_json(br#"{"a":1.5,"b":2}"#.to_vec()).unwrap();
        assert_eq!(spaced, compact);
        assert_eq!(spaced, json!({"a": 1.5, "b": 2}));
        assert_ne!(spaced, Payload::from_value(&json!({"a": 1.5, "b": 3})));
    }

    #[test]
    fn refuses_what_a_value_would_refuse() {
        for bad in [
            &b"{"[..],
            b"",
            b"{\"a\":1} x",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"[1,]",
        ] {
            assert!(
                Payload::from_json(bad.to_vec()).is_err(),
                "{:?} was taken",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            Payload::from_json(b"\"\\u00e9\\ud83d\\ude00\"".to_vec()).unwrap(),
            json!("é😀")
        );
    }

    #[test]
    fn embeds_as_json_and_reads_back() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            payload: Payload,
        }
        let holder = Holder {
            payload: Payload::from_json(br#"[1, {"x": null}]"#.to_vec()).unwrap(),
        };
        let text = serde_json::to_string(&holder).unwrap();
        assert_eq!(text, r#"{"payload":[1, {"x": null}]}"#);
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.as_str(), "[1, {\"x\": null}]");
        assert!(serde_json::from_str::<Holder>(r#"{"payload":"\udc00"}"#).is_err());
        assert_eq!(Payload::null().to_value(), Value::Null);
    }
}

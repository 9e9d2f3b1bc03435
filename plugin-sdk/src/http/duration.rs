//! Durations in config, written the humantime way (`"30s"`, `"500ms"`, `"5m"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a humantime string such as `"30s"` into a [`Duration`];
/// use with `#[serde(deserialize_with = "…")]` and `#[schemars(with = "String")]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({err}); write it like \"30s\", \"500ms\" or \"5m\""
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize")]
        value: Duration,
    }

    #[test]
    fn parses_humantime_and_rejects_garbage() {
        let holder: Holder = serde_json::from_str(r#"{"value": "1m 30s"}"#).unwrap();
        assert_eq!(holder.value, Duration::from_secs(90));
        let err = serde_json::from_str::<Holder>(r#"{"value": "soon"}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("`soon` is not a duration"),
            "{err}"
        );
    }
}

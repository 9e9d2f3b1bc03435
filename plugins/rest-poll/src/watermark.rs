//! The high-water mark of incremental sync: comparing `updated_field`
//! values (RFC 3339 times as instants, numbers as numbers, other strings as
//! text) and the checkpoint that carries the mark and the page position.

use std::cmp::Ordering;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_plugin_sdk::PluginError;
use switchyard_plugin_sdk::http::PagePosition;

/// What a poll commits with each page.
///
/// A walk (a backfill, or a later incremental pass) goes through the pages
/// from the first; `position` is the next page of the walk in progress, so
/// an interrupted walk resumes there. `mark` is the high-water mark of the
/// last completed walk: the walk sends it upstream and skips items at or
/// below it. `walk_max` is the highest value seen by the walk in progress;
/// it becomes the mark only when the walk completes, so a resumed walk
/// filters with the same mark as the pages it already read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The high-water mark of the last completed walk.
    #[serde(default)]
    pub mark: Option<Value>,
    /// The highest updated value seen by the walk in progress.
    #[serde(default)]
    pub walk_max: Option<Value>,
    /// The next page of the walk in progress.
    #[serde(default)]
    pub position: Option<PagePosition>,
}

impl Checkpoint {
    /// Reads a stored checkpoint; none is the start of the first walk.
    ///
    /// # Errors
    /// A permanent `bad_checkpoint` error when it is not one of ours.
    pub fn read(bytes: Option<&[u8]>) -> Result<Checkpoint, PluginError> {
        match bytes {
            None => Ok(Checkpoint::default()),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|err| {
                PluginError::permanent(format!("the stored checkpoint is not rest-poll's: {err}"))
                    .with_code("bad_checkpoint")
            }),
        }
    }

    /// The checkpoint after a page whose next page is `next`: the walk goes
    /// on at `next`, or, at its end, its maximum becomes the mark.
    pub fn after_page(&self, walk_max: Option<Value>, next: Option<PagePosition>) -> Checkpoint {
        match next {
            Some(position) => Checkpoint {
                mark: self.mark.clone(),
                walk_max,
                position: Some(position),
            },
            None => Checkpoint {
                mark: max(self.mark.clone(), walk_max),
                walk_max: None,
                position: None,
            },
        }
    }

    /// The bytes to commit.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PluginError> {
        serde_json::to_vec(self).map_err(|err| PluginError::permanent(err.to_string()))
    }
}

/// Orders two updated values: both RFC 3339 times by instant, both numbers
/// numerically, otherwise both strings as text; `None` when incomparable.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => {
            match (
                DateTime::parse_from_rfc3339(a),
                DateTime::parse_from_rfc3339(b),
            ) {
                (Ok(a), Ok(b)) => Some(a.cmp(&b)),
                _ => Some(a.cmp(b)),
            }
        }
        _ => None,
    }
}

/// The greater of two optional values (the first when incomparable).
pub fn max(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    match (a, b) {
        (Some(a), Some(b)) => match compare(&b, &a) {
            Some(Ordering::Greater) => Some(b),
            _ => Some(a),
        },
        (a, b) => a.or(b),
    }
}

/// True when `value` is newer than `mark` (or there is no mark, or they
/// cannot be compared: better a duplicate, which the hub's upsert absorbs,
/// than a lost item).
pub fn is_newer(value: Option<&Value>, mark: Option<&Value>) -> bool {
    match (value, mark) {
        (Some(value), Some(mark)) => {
            compare(value, mark) != Some(Ordering::Less)
                && compare(value, mark) != Some(Ordering::Equal)
        }
        _ => true,
    }
}

/// The mark as a query parameter's text.
pub fn as_param(mark: &Value) -> String {
    match mark {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_compare_as_instants_and_numbers_as_numbers() {
        let a = json!("2026-01-01T10:00:00Z");
        let b = json!("2026-01-01T10:30:00+01:00"); // 09:30Z: earlier, though larger as text
        assert_eq!(compare(&a, &b), Some(Ordering::Greater));
        assert_eq!(compare(&json!(9), &json!(10)), Some(Ordering::Less));
        assert_eq!(compare(&json!("b"), &json!("a")), Some(Ordering::Greater));
        assert_eq!(compare(&json!(1), &json!("a")), None);
        assert_eq!(max(Some(json!(3)), Some(json!(5))), Some(json!(5)));
        assert_eq!(max(None, Some(json!(5))), Some(json!(5)));
    }

    #[test]
    fn only_items_above_the_mark_are_newer() {
        let mark = json!(10);
        assert!(is_newer(Some(&json!(11)), Some(&mark)));
        assert!(!is_newer(Some(&json!(10)), Some(&mark)));
        assert!(!is_newer(Some(&json!(9)), Some(&mark)));
        assert!(is_newer(Some(&json!(1)), None));
        assert!(is_newer(None, Some(&mark)));
    }

    #[test]
    fn the_mark_moves_only_when_a_walk_completes() {
        let start = Checkpoint {
            mark: Some(json!(5)),
            ..Checkpoint::default()
        };
        let next = PagePosition::Page { page: 2 };
        let mid = start.after_page(Some(json!(9)), Some(next.clone()));
        assert_eq!(mid.mark, Some(json!(5)));
        assert_eq!(mid.position, Some(next));
        let bytes = mid.to_bytes().unwrap();
        let read = Checkpoint::read(Some(&bytes)).unwrap();
        assert_eq!(read, mid);
        let done = read.after_page(Some(json!(12)), None);
        assert_eq!(
            done,
            Checkpoint {
                mark: Some(json!(12)),
                walk_max: None,
                position: None
            }
        );
        assert!(Checkpoint::read(Some(b"42")).is_err());
    }
}

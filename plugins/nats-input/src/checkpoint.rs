//! The checkpoint: the number of the last batch this input emitted that the
//! hub committed. Every batch a poll emits carries the next number; the next
//! poll starts from the hub's last committed checkpoint, so every held batch
//! numbered at or below it is committed (its messages are acked to
//! JetStream) and every one above it is not (its messages are nak'ed, for
//! JetStream to redeliver).

use serde::{Deserialize, Serialize};
use switchyard_plugin_sdk::PluginError;

/// `{"batch": N}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The number of the last committed batch; 0 before the first.
    pub batch: u64,
}

impl Checkpoint {
    /// Reads the hub's checkpoint (`None` on the first poll, or after an
    /// operator deleted it).
    ///
    /// # Errors
    /// A permanent error naming the bytes when they are not this input's.
    pub fn read(bytes: Option<&[u8]>) -> Result<Self, PluginError> {
        match bytes {
            None => Ok(Checkpoint::default()),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|err| {
                PluginError::permanent(format!(
                    "nats-input: the checkpoint {:?} is not {{\"batch\": N}}: {err}",
                    String::from_utf8_lossy(bytes)
                ))
                .with_code("bad_checkpoint")
            }),
        }
    }

    /// The checkpoint as the hub stores it.
    pub fn to_bytes(self) -> Vec<u8> {
        format!("{{\"batch\":{}}}", self.batch).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_and_rejects_others() {
        let checkpoint = Checkpoint { batch: 7 };
        assert_eq!(
            Checkpoint::read(Some(&checkpoint.to_bytes())).unwrap(),
            checkpoint
        );
        assert_eq!(Checkpoint::read(None).unwrap(), Checkpoint::default());
        let error = Checkpoint::read(Some(b"page=2")).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.message().contains("page=2"));
    }
}

//! The messages emitted to the hub but not yet acked to JetStream, by the
//! number of the batch that carried them.

use std::collections::BTreeMap;

use async_nats::jetstream::message::{AckKind, Acker};

/// Batches in the hub's hands, oldest first.
#[derive(Default)]
pub struct Held {
    batches: BTreeMap<u64, Vec<Acker>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("batches", &self.batches.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What to tell JetStream about the held messages once the committed batch is known.
#[derive(Default)]
pub struct Settle {
    /// Messages of committed batches: ack.
    pub ack: Vec<Acker>,
    /// Messages of batches the hub did not commit: nak, for redelivery.
    pub nak: Vec<Acker>,
}

impl Held {
    /// Holds batch `number`'s messages.
    pub fn hold(&mut self, number: u64, ackers: Vec<Acker>) {
        self.batches.entry(number).or_default().extend(ackers);
    }

    /// Takes every held batch: those numbered up to `committed` to ack, the
    /// others to nak.
    pub fn settle(&mut self, committed: u64) -> Settle {
        let mut settle = Settle::default();
        for (number, ackers) in std::mem::take(&mut self.batches) {
            if number <= committed {
                settle.ack.extend(ackers);
            } else {
                settle.nak.extend(ackers);
            }
        }
        settle
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.batches.values().map(Vec::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

impl Settle {
    /// Acks and naks them; returns how many acks and naks could not be sent
    /// (those messages are redelivered after `ack_wait`, and a redelivered
    /// message is an upsert of the same record).
    pub async fn send(self) -> usize {
        let mut failed = 0;
        for acker in &self.ack {
            if let Err(err) = acker.ack().await {
                tracing::warn!(error = %err, "Could not ack a committed message; JetStream will redeliver it.");
                failed += 1;
            }
        }
        for acker in &self.nak {
            if let Err(err) = acker.ack_with(AckKind::Nak(None)).await {
                tracing::warn!(error = %err, "Could not nak an uncommitted message; JetStream will redeliver it after ack_wait.");
                failed += 1;
            }
        }
        failed
    }
}

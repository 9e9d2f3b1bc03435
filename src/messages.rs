//! How the items of a streamed call are packed into messages: the records
//! of `Enrich` requests and of a poll's responses, the events of
//! `HandleEvent` requests.
//!
//! A message holds at most [`Limits::items`] items and, unless a single item
//! is larger on its own, at most [`Limits::bytes`] encoded bytes. The byte
//! limit is for the receiver's sake: gRPC implementations refuse a received
//! message above 4 MiB unless told otherwise (grpc-go, so every go-plugin
//! plugin, grpcio, grpc-java, grpc-js, grpc-dotnet and tonic all default to
//! it), and the SDKs send at most 64 MiB, with `RESOURCE_EXHAUSTED` for the
//! whole stream either way. Counting items alone, 64 records of 100 KB made
//! a 6.4 MB message that a Go enricher refused on every attempt, and one
//! emitted poll batch of 70 one-MB records could never be sent, so its poll
//! failed on every retry.
//!
//! Sizes are prost's exact encoded lengths, so a message of several items
//! never exceeds the limit. An item that alone is larger than it goes in a
//! message of its own: whether the receiver takes it is up to the
//! receiver's own limit, and if it refuses, the error names the sizes.
//!
//! ```
//! use switchyard_wire::messages::{Limits, pack};
//! use switchyard_wire::pb::v1 as pb;
//!
//! let records = (0..100).map(|n| pb::Record { id: n.to_string(), ..Default::default() });
//! let responses: Vec<pb::PollResponse> = pack(records, Limits::BYTES)
//!     .into_iter()
//!     .map(|records| pb::PollResponse { records, checkpoint: None })
//!     .collect();
//! assert_eq!(responses.len(), 1);
//! ```

use prost::Message;

/// The most encoded bytes in one message of several items: gRPC's default
/// limit for a received message (4 MiB), less 64 KiB of room for what the
/// message carries beside its items (a poll's checkpoint) and for what a
/// receiver's framework may count beyond the message itself.
pub const MESSAGE_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

/// The field number of the repeated item field (`EnrichRequest.items`,
/// `EventRequest.events`, `PollResponse.records`): its key is one byte.
const ITEMS_FIELD: u32 = 1;

/// How much one message may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most items in one message.
    pub items: usize,
    /// The most encoded bytes of items in one message of several items.
    pub bytes: usize,
}

impl Limits {
    /// The hub's `Enrich` and `HandleEvent` requests: 64 items (the
    /// batches the bench's stream rows send too) and [`MESSAGE_BYTES`].
    ///
    /// 512 items, a poll batch of 500 records in one message, cut the
    /// pipeline's context switches by a fifth but README's example
    /// accepted about a fifth fewer webhooks at saturation
    /// (docs/benchmarks.md, "Requests of 512 items").
    pub const REQUESTS: Limits = Limits {
        items: 64,
        bytes: MESSAGE_BYTES,
    };

    /// Bytes alone ([`MESSAGE_BYTES`]): a poll's records, which the hub
    /// gathers up to their checkpoint whatever the messages they came in.
    pub const BYTES: Limits = Limits {
        items: usize::MAX,
        bytes: MESSAGE_BYTES,
    };
}

/// Packs `items`, in order, into the item lists of messages within
/// `limits` (see the module documentation). Every list holds at least one
/// item; no items give no lists.
pub fn pack<T: Message>(items: impl IntoIterator<Item = T>, limits: Limits) -> Vec<Vec<T>> {
    let mut items = items.into_iter();
    let most = limits.items.max(1);
    let mut messages: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::with_capacity(items.size_hint().0.clamp(1, most));
    let mut current_bytes = 0;
    while let Some(item) = items.next() {
        let bytes = prost::encoding::message::encoded_len(ITEMS_FIELD, &item);
        let full =
            current.len() >= most || (!current.is_empty() && current_bytes + bytes > limits.bytes);
        if full {
            // Room for this item and those still to come, but no more than
            // the message just filled held: a byte-bound message of large
            // items does not reserve room for every small one after it.
            let room = (items.size_hint().0 + 1).clamp(1, current.len());
            messages.push(std::mem::replace(&mut current, Vec::with_capacity(room)));
            current_bytes = 0;
        }
        current.push(item);
        current_bytes += bytes;
    }
    if !current.is_empty() {
        messages.push(current);
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1 as pb;

    /// An Enrich item whose record's payload has `bytes` bytes of text.
    fn item(sequence: u64, bytes: usize) -> pb::EnrichItem {
        pb::EnrichItem {
            sequence,
            record: Some(pb::Record {
                id: sequence.to_string(),
                payload: vec![b'x'; bytes],
                ..Default::default()
            }),
        }
    }

    fn sequences(messages: &[Vec<pb::EnrichItem>]) -> Vec<Vec<u64>> {
        messages
            .iter()
            .map(|items| items.iter().map(|item| item.sequence).collect())
            .collect()
    }

    #[test]
    fn small_items_go_sixty_four_to_a_message_in_order() {
        let messages = pack(
            (0..150).map(|sequence| item(sequence, 10)),
            Limits::REQUESTS,
        );
        let lengths: Vec<usize> = messages.iter().map(Vec::len).collect();
        assert_eq!(lengths, [64, 64, 22]);
        let flat: Vec<u64> = sequences(&messages).concat();
        assert_eq!(flat, (0..150).collect::<Vec<_>>());
        assert!(pack(Vec::<pb::EnrichItem>::new(), Limits::REQUESTS).is_empty());
    }

    #[test]
    fn large_items_are_split_below_four_mebibytes() {
        // 64 records of 100 KB: 6.4 MB counted by items alone.
        let messages = pack(
            (0..64).map(|sequence| item(sequence, 100_000)),
            Limits::REQUESTS,
        );
        assert!(messages.len() > 1);
        for items in &messages {
            let request = pb::EnrichRequest {
                items: items.clone(),
            };
            assert!(
                request.encoded_len() <= MESSAGE_BYTES,
                "{} bytes",
                request.encoded_len()
            );
        }
        // Each message is filled as far as the limit allows.
        let per_item = prost::encoding::message::encoded_len(ITEMS_FIELD, &item(0, 100_000));
        assert_eq!(messages[0].len(), MESSAGE_BYTES / per_item);
        assert_eq!(sequences(&messages).concat(), (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn an_item_larger_than_the_limit_goes_alone() {
        let messages = pack(
            [
                item(0, 10),
                item(1, MESSAGE_BYTES + 1),
                item(2, 10),
                item(3, 10),
            ],
            Limits::REQUESTS,
        );
        assert_eq!(sequences(&messages), [vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn a_message_exactly_at_the_limit_is_kept_whole() {
        let size = |item: &pb::EnrichItem| prost::encoding::message::encoded_len(ITEMS_FIELD, item);
        let first = item(0, 1_000);
        // A second item that brings the message to exactly MESSAGE_BYTES
        // (near 4 MB every length prefix has the same width, so one byte
        // more payload is one byte more message).
        let guess = MESSAGE_BYTES - size(&first) - 100;
        let payload = guess + (MESSAGE_BYTES - size(&first) - size(&item(1, guess)));
        let second = item(1, payload);
        assert_eq!(size(&first) + size(&second), MESSAGE_BYTES);
        let messages = pack([first.clone(), second, item(2, 0)], Limits::REQUESTS);
        assert_eq!(sequences(&messages), [vec![0, 1], vec![2]]);
        let request = pb::EnrichRequest {
            items: messages[0].clone(),
        };
        assert_eq!(request.encoded_len(), MESSAGE_BYTES);
        // One byte more and the second item starts the next message.
        let messages = pack([first, item(1, payload + 1), item(2, 0)], Limits::REQUESTS);
        assert_eq!(sequences(&messages), [vec![0], vec![1, 2]]);
    }

    #[test]
    fn bytes_alone_keep_any_number_of_small_items_together() {
        let messages = pack((0..5_000).map(|sequence| item(sequence, 10)), Limits::BYTES);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].len(), 5_000);
        // Seventy records of 1 MB (one poll batch of 70 MB): messages below
        // the limit, in order.
        let messages = pack(
            (0..70).map(|sequence| item(sequence, 1_000_000)),
            Limits::BYTES,
        );
        assert_eq!(messages.len(), 70usize.div_ceil(MESSAGE_BYTES / 1_000_010));
        for items in &messages {
            let bytes: usize = items
                .iter()
                .map(|item| prost::encoding::message::encoded_len(ITEMS_FIELD, item))
                .sum();
            assert!(bytes <= MESSAGE_BYTES, "{bytes} bytes");
        }
        assert_eq!(sequences(&messages).concat(), (0..70).collect::<Vec<_>>());
    }
}

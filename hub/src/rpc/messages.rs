//! How the items of a streamed call (`Enrich` records, `HandleEvent`
//! events) are packed into request messages.
//!
//! A message holds at most [`ITEMS_PER_MESSAGE`] items and, unless a single
//! item is larger on its own, at most [`MESSAGE_BYTES`] encoded bytes. The
//! byte limit is for the plugin's sake: gRPC servers refuse a received
//! message above 4 MiB unless told otherwise (grpc-go, so every go-plugin
//! plugin, grpcio, grpc-java, grpc-js and grpc-dotnet all default to it),
//! with `RESOURCE_EXHAUSTED` for the whole stream. Counting items alone, 64
//! records of 100 KB made a 6.4 MB message that a Go enricher refused on
//! every attempt, and the pipeline feeding it stopped for good.
//!
//! Sizes are prost's exact encoded lengths, so a message of several items
//! never exceeds the limit. An item that alone is larger than it goes in a
//! message of its own: whether the plugin takes it is up to the plugin's
//! own limit, and if it refuses, the error names the sizes.

use prost::Message;

/// The most items in one request message (64: the batches the bench's
/// stream rows send too).
pub(super) const ITEMS_PER_MESSAGE: usize = 64;

/// The most encoded bytes in one request message of several items: gRPC's
/// default limit for a received message (4 MiB), less 64 KiB of room for
/// what a plugin's framework may count beyond the message itself.
pub(super) const MESSAGE_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

/// The field number of the repeated item field (`EnrichRequest.items`,
/// `EventRequest.events`): its key is one byte.
const ITEMS_FIELD: u32 = 1;

/// Packs `items`, in order, into the item lists of request messages (see
/// the module documentation for the limits). Every list holds at least one
/// item; no items give no lists.
pub(super) fn pack<T: Message>(items: impl IntoIterator<Item = T>) -> Vec<Vec<T>> {
    let mut items = items.into_iter();
    // Room for `remaining` items, up to a full message.
    let room = |remaining: usize| remaining.clamp(1, ITEMS_PER_MESSAGE);
    let mut messages: Vec<Vec<T>> =
        Vec::with_capacity(items.size_hint().0.div_ceil(ITEMS_PER_MESSAGE));
    let mut current: Vec<T> = Vec::with_capacity(room(items.size_hint().0));
    let mut current_bytes = 0;
    while let Some(item) = items.next() {
        let bytes = prost::encoding::message::encoded_len(ITEMS_FIELD, &item);
        let full = current.len() == ITEMS_PER_MESSAGE
            || (!current.is_empty() && current_bytes + bytes > MESSAGE_BYTES);
        if full {
            // This item and those still to come.
            let next = Vec::with_capacity(room(items.size_hint().0 + 1));
            messages.push(std::mem::replace(&mut current, next));
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
    use switchyard_wire::pb::v1 as pb;

    use super::*;

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
        let messages = pack((0..150).map(|sequence| item(sequence, 10)));
        let lengths: Vec<usize> = messages.iter().map(Vec::len).collect();
        assert_eq!(lengths, [64, 64, 22]);
        let flat: Vec<u64> = sequences(&messages).concat();
        assert_eq!(flat, (0..150).collect::<Vec<_>>());
        assert!(pack(Vec::<pb::EnrichItem>::new()).is_empty());
    }

    #[test]
    fn large_items_are_split_below_four_mebibytes() {
        // 64 records of 100 KB: 6.4 MB counted by items alone.
        let messages = pack((0..64).map(|sequence| item(sequence, 100_000)));
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
        let messages = pack([
            item(0, 10),
            item(1, MESSAGE_BYTES + 1),
            item(2, 10),
            item(3, 10),
        ]);
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
        let messages = pack([first.clone(), second, item(2, 0)]);
        assert_eq!(sequences(&messages), [vec![0, 1], vec![2]]);
        let request = pb::EnrichRequest {
            items: messages[0].clone(),
        };
        assert_eq!(request.encoded_len(), MESSAGE_BYTES);
        // One byte more and the second item starts the next message.
        let messages = pack([first, item(1, payload + 1), item(2, 0)]);
        assert_eq!(sequences(&messages), [vec![0], vec![1, 2]]);
    }
}

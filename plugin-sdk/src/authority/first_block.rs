//! A quick look at a connection's first header block: is every `:authority`
//! in it usable as it is?
//!
//! The full answer decodes the block with loona-hpack, which builds a
//! Huffman decoding table (257 entries in nested hash maps) for every
//! Huffman-coded string. The first block of a hub's connection holds five or
//! six such strings, and on a plugin that has just started that came to about
//! a fifth of a millisecond of its launch, before h2 saw the hub's first
//! calls (docs/benchmarks.md, "Launch: a plugin linked static-pie").
//!
//! This walks the block's HPACK representations (RFC 7541, section 6) without
//! decoding any string but `:authority`'s value, and recognizes the
//! Huffman-coded forms of `:authority` and `localhost` by their bytes (a
//! Huffman encoding is unique: the code is canonical and the padding is fixed).
//! Whatever it cannot settle cheaply (a reference into the dynamic table, an
//! unusual encoding, a malformed block) it leaves to the full decode.

use super::{AUTHORITY_NAME, usable};

/// `:authority`'s index in HPACK's static table.
const AUTHORITY_INDEX: u64 = 1;
/// The last index of HPACK's static table; higher ones are dynamic.
const STATIC_TABLE_LAST: u64 = 61;
/// `:authority`, Huffman-coded.
const AUTHORITY_HUFFMAN: &[u8] = &[0xb8, 0x3b, 0x53, 0x39, 0xec, 0x32, 0x7d, 0x7f];
/// `localhost`, Huffman-coded: what the hub (h2) sends as `:authority`.
const LOCALHOST_HUFFMAN: &[u8] = &[0xa0, 0xe4, 0x1d, 0x13, 0x9d, 0x09];

/// What the quick look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every `:authority` in the block is usable, or there is none.
    Usable,
    /// The full decode must decide (and rewrite the block if needed).
    Undecided,
}

/// Looks at the header block `block` (HPACK, the fragments of one HEADERS
/// frame and its CONTINUATIONs joined).
pub(super) fn look(block: &[u8]) -> Verdict {
    match walk(block) {
        Some(()) => Verdict::Usable,
        None => Verdict::Undecided,
    }
}

/// [`look`]: `Some` when every `:authority` is usable, `None` for "cannot
/// tell cheaply".
fn walk(mut rest: &[u8]) -> Option<()> {
    while let Some(&first) = rest.first() {
        if first & 0x80 != 0 {
            // Indexed header field: name and value from a table. Only a
            // static entry other than `:authority` (whose static value is
            // empty) is settled here.
            let (index, after) = integer(rest, 7)?;
            if index == 0 || index == AUTHORITY_INDEX || index > STATIC_TABLE_LAST {
                return None;
            }
            rest = after;
            continue;
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            rest = integer(rest, 5)?.1;
            continue;
        }
        // A literal: with incremental indexing (01), without indexing
        // (0000) or never indexed (0001).
        let prefix = if first & 0xc0 == 0x40 { 6 } else { 4 };
        let (name_index, after) = integer(rest, prefix)?;
        rest = after;
        let is_authority = match name_index {
            0 => {
                let (name, huffman, after) = string(rest)?;
                rest = after;
                if huffman {
                    name == AUTHORITY_HUFFMAN
                } else {
                    name == AUTHORITY_NAME
                }
            }
            AUTHORITY_INDEX => true,
            index if index <= STATIC_TABLE_LAST => false,
            _ => return None,
        };
        let (value, huffman, after) = string(rest)?;
        rest = after;
        if is_authority {
            let settled = if huffman {
                value == LOCALHOST_HUFFMAN
            } else {
                usable(value)
            };
            if !settled {
                return None;
            }
        }
    }
    Some(())
}

/// An HPACK integer with a `prefix`-bit prefix (RFC 7541, 5.1) at the start
/// of `bytes`, and the bytes after it; `None` when cut short or too large.
fn integer(bytes: &[u8], prefix: u32) -> Option<(u64, &[u8])> {
    let (&first, mut rest) = bytes.split_first()?;
    let max = (1u64 << prefix) - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Some((value, rest));
    }
    let mut shift = 0u32;
    loop {
        let (&byte, after) = rest.split_first()?;
        rest = after;
        // Four continuation bytes (28 bits) are more than any header needs.
        if shift > 21 {
            return None;
        }
        value += u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, rest));
        }
    }
}

/// An HPACK string literal (RFC 7541, 5.2): its bytes as sent, whether they
/// are Huffman-coded, and the bytes after it.
fn string(bytes: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let huffman = bytes.first()? & 0x80 != 0;
    let (length, rest) = integer(bytes, 7)?;
    let length = usize::try_from(length).ok()?;
    if length > rest.len() {
        return None;
    }
    let (text, after) = rest.split_at(length);
    Some((text, huffman, after))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use loona_hpack::huffman::HuffmanDecoder;

    use super::*;

    /// A literal without indexing whose name is static entry `index`.
    fn literal(index: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![index];
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn the_huffman_constants_decode_to_what_they_stand_for() {
        let mut decoder = HuffmanDecoder::new();
        assert_eq!(decoder.decode(AUTHORITY_HUFFMAN).unwrap(), b":authority");
        let mut decoder = HuffmanDecoder::new();
        assert_eq!(decoder.decode(LOCALHOST_HUFFMAN).unwrap(), b"localhost");
    }

    #[test]
    fn the_first_block_the_hub_sends_is_settled_as_usable() {
        // The shape of what h2 (the hub's tonic) wrote as its first request
        // on a connection, seen with strace: `:method` POST and `:scheme`
        // http indexed, `:authority` localhost and `:path` as literals with
        // static names and Huffman-coded values, then `te: trailers` with a
        // Huffman-coded literal name.
        let mut block = vec![0x83, 0x86, 0x41, 0x86];
        block.extend_from_slice(LOCALHOST_HUFFMAN);
        block.extend_from_slice(&[0x04, 0x95]);
        block.extend_from_slice(&[
            0x62, 0x6b, 0x2b, 0x22, 0xf3, 0x94, 0x74, 0x26, 0x75, 0xfb, 0x85, 0x7c, 0x65, 0x1d,
            0x09, 0x9d, 0x8b, 0xd3, 0x94, 0x9d, 0x7f,
        ]); // /grpc.health.v1.Health/Check
        block.extend_from_slice(&[0x00, 0x82, 0x49, 0x7f]); // te
        block.extend_from_slice(&[0x86, 0x4d, 0x83, 0x35, 0x05, 0xb1, 0x1f]); // trailers
        let decoded = loona_hpack::Decoder::new().decode(&block).unwrap();
        assert_eq!(decoded[2], (b":authority".to_vec(), b"localhost".to_vec()));
        assert_eq!(decoded[4], (b"te".to_vec(), b"trailers".to_vec()));
        assert_eq!(look(&block), Verdict::Usable);
    }

    #[test]
    fn a_raw_authority_is_checked_and_a_socket_path_is_left_to_the_full_decode() {
        let good = [vec![0x82], literal(1, b"127.0.0.1:4000")].concat();
        assert_eq!(look(&good), Verdict::Usable);
        let path = [vec![0x82], literal(1, b"/tmp/plugin1")].concat();
        assert_eq!(look(&path), Verdict::Undecided);
        // The same with a literal name, Huffman-coded.
        let mut huffman_name = vec![0x00, 0x88];
        huffman_name.extend_from_slice(AUTHORITY_HUFFMAN);
        huffman_name.extend_from_slice(&[0x0c]);
        huffman_name.extend_from_slice(b"/tmp/plugin1");
        assert_eq!(look(&huffman_name), Verdict::Undecided);
        // A Huffman-coded value other than localhost is not decoded here.
        let other = [0x41, 0x82, 0xff, 0xff];
        assert_eq!(look(&other), Verdict::Undecided);
    }

    #[test]
    fn no_authority_is_usable_and_what_cannot_be_read_cheaply_is_undecided() {
        assert_eq!(look(&[]), Verdict::Usable);
        assert_eq!(look(&literal(4, b"/x.Y/Z")), Verdict::Usable);
        // Indexed: `:authority` with its empty static value, a dynamic
        // entry, index 0.
        assert_eq!(look(&[0x81]), Verdict::Undecided);
        assert_eq!(look(&[0xbe]), Verdict::Undecided);
        assert_eq!(look(&[0x80]), Verdict::Undecided);
        // Cut short: a string longer than the block, an integer that never ends.
        assert_eq!(look(&[0x04, 0x05, b'a']), Verdict::Undecided);
        assert_eq!(
            look(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Verdict::Undecided
        );
        // A name from the dynamic table.
        assert_eq!(look(&[0x7f, 0x00, 0x01, b'x']), Verdict::Undecided);
    }

    #[test]
    fn integers_follow_rfc_7541_examples() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(integer(&[0x0a], 5).unwrap().0, 10);
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5).unwrap().0, 1337);
        assert_eq!(integer(&[0x1f, 0x9a], 5), None);
    }
}

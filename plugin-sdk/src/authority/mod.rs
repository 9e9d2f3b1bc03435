//! Serving gRPC clients that send a Unix socket path as `:authority`.
//!
//! grpcio (Python, C++, since 1.57: the %-encoded socket path) and grpc-java
//! (the path itself) put the socket path in HTTP/2's `:authority` when they
//! call over a Unix socket. h2, under tonic, parses `:authority` as a URI
//! authority and resets such a stream with PROTOCOL_ERROR, and has no
//! setting to relax that (hyperium/h2#487). The hub and go-plugin send
//! `localhost`, so they never hit it.
//!
//! [`AuthorityFix`] sits between the socket (or the TLS stream) and h2 and
//! watches what the client sends. It reads the first header block of the
//! connection: a quick walk of its HPACK representations settles the common
//! case, a usable `:authority` (module `first_block`), and its own HPACK
//! decoder everything else:
//!
//! - when `:authority` is absent or valid (the hub, go-plugin, grpc-go), it
//!   forwards the original bytes and from then on only passes bytes through,
//!   untouched and uncopied;
//! - otherwise it replaces `:authority` with `localhost` and re-encodes the
//!   block, and keeps doing so for every header block of the connection.
//!   Re-encoded blocks use literals only (never HPACK's dynamic table), so
//!   h2's decoder stays consistent whatever the client's encoder indexed.
//!
//! Other frames pass through unchanged; the write side is not touched. A
//! connection the wrapper cannot follow (a malformed frame or header block)
//! is handed to h2 as it came, and h2 reports the error as it would have.

mod first_block;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::codegen::http::uri::Authority;
use tonic::transport::server::Connected;

/// The client connection preface, which precedes the first frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes in an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's floor).
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// A header block larger than this is not followed (h2 refuses it anyway).
const MAX_BLOCK: usize = 1024 * 1024;
/// The HPACK dynamic table size h2 allows by default (SETTINGS_HEADER_TABLE_SIZE).
const HEADER_TABLE_SIZE: usize = 4096;
/// What an unusable `:authority` becomes.
const LOCAL_AUTHORITY: &[u8] = b"localhost";
/// The pseudo-header this module watches.
const AUTHORITY_NAME: &[u8] = b":authority";
/// How many bytes one read from the socket may bring while headers are followed.
const READ_CHUNK: usize = 16 * 1024;

/// Where the wrapper stands in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Inside the connection preface: this many bytes remain.
    Preface(usize),
    /// Before the first header block's verdict.
    Inspect,
    /// Rewriting every header block.
    Rewrite,
    /// Passing every byte through untouched.
    Passthrough,
}

/// A header block being collected (HEADERS and its CONTINUATIONs).
struct Block {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
    /// The frames exactly as received, to forward when nothing needs fixing.
    raw: Vec<u8>,
}

/// A server-side connection that replaces an unusable `:authority` (a Unix
/// socket path) with `localhost` before h2 sees it. See the module docs.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    decoder: loona_hpack::Decoder<'static>,
    /// Received bytes not processed yet (an incomplete frame).
    pending: Vec<u8>,
    /// Processed bytes not yet handed to h2, from `ready_at` on.
    ready: Vec<u8>,
    ready_at: usize,
    /// Payload bytes of a passed-through frame still to come.
    skip: usize,
    block: Option<Block>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    /// Wraps one accepted connection.
    pub(crate) fn new(inner: S) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        AuthorityFix {
            inner,
            mode: Mode::Preface(PREFACE.len()),
            decoder,
            pending: Vec::new(),
            ready: Vec::new(),
            ready_at: 0,
            skip: 0,
            block: None,
            eof: false,
        }
    }

    /// Moves the first `count` pending bytes to the output unchanged.
    fn pass(&mut self, count: usize) {
        self.ready.extend_from_slice(&self.pending[..count]);
        self.pending.drain(..count);
    }

    /// Stops following the connection: everything held back and everything
    /// to come goes to h2 as it came.
    fn give_up(&mut self) {
        if let Some(block) = self.block.take() {
            self.ready.extend_from_slice(&block.raw);
        }
        self.mode = Mode::Passthrough;
    }

    /// Processes as much of `pending` as is complete.
    fn process(&mut self) {
        loop {
            if self.pending.is_empty() {
                return;
            }
            if self.mode == Mode::Passthrough {
                let count = self.pending.len();
                self.pass(count);
                return;
            }
            if self.skip > 0 {
                let count = self.skip.min(self.pending.len());
                self.pass(count);
                self.skip -= count;
                continue;
            }
            if let Mode::Preface(remaining) = self.mode {
                let count = remaining.min(self.pending.len());
                self.pass(count);
                self.mode = if remaining == count {
                    Mode::Inspect
                } else {
                    Mode::Preface(remaining - count)
                };
                continue;
            }
            if self.pending.len() < FRAME_HEADER {
                return;
            }
            let header = &self.pending[..FRAME_HEADER];
            let length =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let kind = header[3];
            if kind != HEADERS && kind != CONTINUATION {
                if self.block.is_some() {
                    // Another frame inside a header block: not ours to judge.
                    self.give_up();
                    continue;
                }
                self.pass(FRAME_HEADER);
                self.skip = length;
                continue;
            }
            let collected = self.block.as_ref().map_or(0, |block| block.raw.len());
            if length > MAX_BLOCK || collected + length > MAX_BLOCK {
                self.give_up();
                continue;
            }
            if self.pending.len() < FRAME_HEADER + length {
                return;
            }
            let frame: Vec<u8> = self.pending.drain(..FRAME_HEADER + length).collect();
            if !self.take_header_frame(frame) {
                continue;
            }
            if let Some(block) = self.block.take() {
                self.finish_block(block);
            }
        }
    }

    /// Adds one HEADERS or CONTINUATION frame to the open block; true when
    /// the block is complete. Frames the wrapper cannot follow end the
    /// following (the frame is forwarded as it came).
    fn take_header_frame(&mut self, frame: Vec<u8>) -> bool {
        let kind = frame[3];
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        match (kind, &mut self.block) {
            (HEADERS, None) => {
                let Some((priority, fragment)) = split_headers_payload(flags, payload) else {
                    self.ready.extend_from_slice(&frame);
                    self.give_up();
                    return false;
                };
                self.block = Some(Block {
                    stream_id,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragments: fragment.to_vec(),
                    raw: Vec::new(),
                });
            }
            (CONTINUATION, Some(block)) if block.stream_id == stream_id => {
                block.fragments.extend_from_slice(payload);
            }
            _ => {
                self.give_up();
                self.ready.extend_from_slice(&frame);
                return false;
            }
        }
        if let Some(block) = &mut self.block {
            block.raw.extend_from_slice(&frame);
        }
        flags & END_HEADERS != 0
    }

    /// Decodes a complete block and forwards it, rewritten when needed.
    fn finish_block(&mut self, block: Block) {
        if self.mode == Mode::Inspect
            && first_block::look(&block.fragments) == first_block::Verdict::Usable
        {
            // The common case (the hub, go-plugin), settled without the
            // full decode: see `first_block`.
            self.ready.extend_from_slice(&block.raw);
            self.mode = Mode::Passthrough;
            return;
        }
        let mut headers = match self.decoder.decode(&block.fragments) {
            Ok(headers) => headers,
            Err(error) => {
                tracing::debug!(error = ?error, "Cannot decode a client's header block; passing the connection through.");
                self.ready.extend_from_slice(&block.raw);
                self.mode = Mode::Passthrough;
                return;
            }
        };
        let mut fixed = false;
        for (name, value) in &mut headers {
            if name.as_slice() == AUTHORITY_NAME && !usable(value) {
                tracing::debug!(
                    authority = %String::from_utf8_lossy(value),
                    "A client sent an unusable :authority (a socket path); serving it as localhost."
                );
                *value = LOCAL_AUTHORITY.to_vec();
                fixed = true;
            }
        }
        if self.mode == Mode::Inspect && !fixed {
            // h2's decoder sees exactly what the client's encoder sent, so
            // from here on the two agree without help.
            self.ready.extend_from_slice(&block.raw);
            self.mode = Mode::Passthrough;
            return;
        }
        self.mode = Mode::Rewrite;
        let encoded = encode_literals(&headers);
        write_header_frames(&mut self.ready, &block, &encoded);
    }
}

/// Whether h2 accepts `value` as `:authority` (a socket path it does not).
fn usable(value: &[u8]) -> bool {
    Authority::try_from(value).is_ok()
}

/// A HEADERS payload's priority fields and header block fragment, without
/// padding; `None` when the padding or priority does not fit.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let padding = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(padding)?;
    }
    let priority = if flags & PRIORITY != 0 {
        let fields: [u8; 5] = payload.get(start..start + 5)?.try_into().ok()?;
        start += 5;
        Some(fields)
    } else {
        None
    };
    Some((priority, payload.get(start..end)?))
}

/// Encodes `headers` as HPACK literals without indexing, with literal names
/// and no Huffman coding: a block that leaves the dynamic table alone.
fn encode_literals(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 11)
        .sum();
    let mut out = Vec::with_capacity(size);
    for (name, value) in headers {
        out.push(0x00);
        encode_string(&mut out, name);
        encode_string(&mut out, value);
    }
    out
}

/// An HPACK string literal: length with a 7-bit prefix, H bit clear.
fn encode_string(out: &mut Vec<u8>, text: &[u8]) {
    const PREFIX_MAX: usize = 0x7f;
    let mut length = text.len();
    if length < PREFIX_MAX {
        out.push(length as u8);
    } else {
        out.push(PREFIX_MAX as u8);
        length -= PREFIX_MAX;
        while length >= 0x80 {
            out.push((length & 0x7f) as u8 | 0x80);
            length >>= 7;
        }
        out.push(length as u8);
    }
    out.extend_from_slice(text);
}

/// Writes `block`'s HEADERS frame (and CONTINUATIONs) carrying `encoded`.
fn write_header_frames(out: &mut Vec<u8>, block: &Block, encoded: &[u8]) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |fields| &fields[..]);
    let first_room = MAX_FRAME_PAYLOAD - priority.len();
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = 0;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    write_frame_header(
        out,
        priority.len() + first.len(),
        HEADERS,
        flags,
        block.stream_id,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        rest = after;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame_header(out, chunk.len(), CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

fn write_frame_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream_id: u32) {
    let length = u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&length[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let count = (this.ready.len() - this.ready_at).min(buf.remaining());
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + count]);
                this.ready_at += count;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Passthrough && this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client is done: hand over whatever was held back.
                this.give_up();
                let count = this.pending.len();
                this.pass(count);
                this.eof = true;
                continue;
            }
            this.pending.extend_from_slice(read.filled());
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A frame as bytes.
    fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame_header(&mut out, payload.len(), kind, flags, stream_id);
        out.extend_from_slice(payload);
        out
    }

    /// An HPACK literal with incremental indexing and a literal name (it
    /// enters the dynamic table at index 62).
    fn indexed_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x40];
        encode_string(&mut out, name);
        encode_string(&mut out, value);
        out
    }

    /// What h2 would read: everything the wrapper passes on for `input`,
    /// written in small pieces to exercise partial frames.
    async fn through_wrapper(input: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for piece in input.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
            client.shutdown().await.unwrap();
        });
        let mut wrapped = AuthorityFix::new(server);
        let mut out = Vec::new();
        wrapped.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    /// The header blocks in `bytes` (after the preface), decoded as h2 would.
    fn decode_blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut rest = &bytes[PREFACE.len()..];
        let mut blocks = Vec::new();
        let mut fragments = Vec::new();
        while rest.len() >= FRAME_HEADER {
            let length =
                usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (kind, flags) = (rest[3], rest[4]);
            let payload = &rest[FRAME_HEADER..FRAME_HEADER + length];
            if kind == HEADERS || kind == CONTINUATION {
                let fragment = if kind == HEADERS {
                    split_headers_payload(flags, payload).unwrap().1
                } else {
                    payload
                };
                fragments.extend_from_slice(fragment);
                if flags & END_HEADERS != 0 {
                    blocks.push(decoder.decode(&fragments).unwrap());
                    fragments.clear();
                }
            }
            rest = &rest[FRAME_HEADER + length..];
        }
        blocks
    }

    fn authority(block: &[(Vec<u8>, Vec<u8>)]) -> &[u8] {
        &block
            .iter()
            .find(|(name, _)| name == b":authority")
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn a_valid_authority_passes_through_byte_for_byte() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        let block = [
            indexed_literal(b":authority", b"localhost"),
            indexed_literal(b":path", b"/x.Y/Z"),
        ]
        .concat();
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        input.extend(frame(0x0, END_STREAM, 1, b"hello"));
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xbe]));
        assert_eq!(through_wrapper(&input).await, input);
    }

    #[tokio::test]
    async fn a_socket_path_becomes_localhost_in_every_block() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        // The path enters the client's dynamic table; the second request
        // refers to it by index, split over HEADERS and CONTINUATION with
        // padding and priority, as a client may.
        let first = [
            indexed_literal(b":authority", b"%2Ftmp%2Fsy-1%2Fplugin42"),
            indexed_literal(b":path", b"/switchyard.v1.Plugin/GetMetadata"),
        ]
        .concat();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 0]));
        let mut padded = vec![3, 0, 0, 0, 0, 9];
        padded.extend_from_slice(&[0xbf]);
        padded.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 3, &padded));
        input.extend(frame(CONTINUATION, END_HEADERS, 3, &[0xbe]));

        let output = through_wrapper(&input).await;
        assert_eq!(&output[..PREFACE.len()], PREFACE);
        let blocks = decode_blocks(&output);
        assert_eq!(blocks.len(), 2);
        for block in &blocks {
            assert_eq!(authority(block), b"localhost");
        }
        assert_eq!(blocks[1][1].1, b"/switchyard.v1.Plugin/GetMetadata");
        // The DATA frame and the END_STREAM flag survive.
        let hello = frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 0]);
        assert!(output.windows(hello.len()).any(|window| window == hello));
    }

    #[tokio::test]
    async fn a_large_block_is_split_into_continuations() {
        let mut input = PREFACE.to_vec();
        let big = vec![b'v'; 40_000];
        let block = [
            indexed_literal(b":authority", b"/tmp/plugin1"),
            indexed_literal(b"x-big", &big),
        ]
        .concat();
        for (index, chunk) in block.chunks(10_000).enumerate() {
            let last = (index + 1) * 10_000 >= block.len();
            let kind = if index == 0 { HEADERS } else { CONTINUATION };
            input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, chunk));
        }
        let output = through_wrapper(&input).await;
        let blocks = decode_blocks(&output);
        assert_eq!(authority(&blocks[0]), b"localhost");
        assert_eq!(blocks[0][1].1, big);
    }

    #[tokio::test]
    async fn garbage_is_passed_on_for_h2_to_refuse() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff]));
        input.extend(b"trailing bytes");
        assert_eq!(through_wrapper(&input).await, input);
    }
}

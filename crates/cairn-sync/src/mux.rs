//! Frames and channels: the connection layer under every protocol of a session.
//!
//! ```text
//! frame   = len:varint  kind:u8  channel:varint  body        (len counts kind..body)
//! kind    = 0 DATA    body = one message of the channel's protocol
//!           1 CREDIT  body = bytes:varint   (the sender may send that many more DATA bytes)
//!           2 ERROR   body = code:u8 text:utf8 (≤ 256 bytes); the session ends
//!           3 CLOSE   body = empty; the sender ends the session cleanly
//! ```
//!
//! A length prefix over the limit is an error as soon as the varint is read, before anything
//! is allocated: the decoder never reserves more than it has been given.
//!
//! **Flow control** is per channel and counted in DATA body bytes. Each side starts with
//! the channel's window ([`INITIAL_CREDIT`], or what [`Mux::open_with_window`] says, the same
//! on both sides) on every open channel; the receiver grants more (a CREDIT frame) as it
//! consumes data, once half the window has been consumed. A sender may start a frame while it
//! has any credit left, so it can overdraw by at most one frame; a receiver that sees a
//! channel exceed its window by more than one maximal frame fails the session.

use std::collections::BTreeMap;

use cairn_core::varint;

use crate::error::{SyncError, WireError};

/// DATA bytes each side may send on a channel before the receiver grants more.
pub const INITIAL_CREDIT: u64 = 1 << 20;
/// Longest error text carried by an ERROR frame.
pub const MAX_ERROR_TEXT: usize = 256;

pub(crate) const KIND_DATA: u8 = 0;
pub(crate) const KIND_CREDIT: u8 = 1;
pub(crate) const KIND_ERROR: u8 = 2;
pub(crate) const KIND_CLOSE: u8 = 3;

/// Something the connection layer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// A message on a channel.
    Data {
        /// The channel.
        channel: u64,
        /// The message.
        body: Vec<u8>,
    },
    /// The peer failed and said why.
    Error {
        /// Its error code.
        code: u8,
        /// Its description.
        message: String,
    },
    /// The peer ended the session cleanly.
    Close,
}

/// Incremental frame decoder with a hard size limit.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 16) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether a partial frame is buffered.
    pub fn has_partial(&self) -> bool {
        self.start < self.buf.len()
    }

    /// The next complete frame's contents (kind, channel, body), if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(u8, u64, Vec<u8>)>, WireError> {
        let rest = &self.buf[self.start..];
        let (len, n) = match varint::decode(rest) {
            Ok(v) => v,
            Err(varint::VarintError::Truncated) => return Ok(None),
            Err(_) => return Err(WireError::BadVarint),
        };
        if len > self.max as u64 {
            return Err(WireError::FrameTooLarge { len, max: self.max });
        }
        let len = len as usize;
        if rest.len() < n + len {
            return Ok(None);
        }
        let frame = &rest[n..n + len];
        let mut r = Reader::new(frame);
        let kind = r.u8()?;
        let channel = r.varint()?;
        let body = r.rest().to_vec();
        self.start += n + len;
        Ok(Some((kind, channel, body)))
    }
}

/// Appends one frame to `out`.
pub fn encode_frame(kind: u8, channel: u64, body: &[u8], out: &mut Vec<u8>) {
    let len = 1 + varint::encoded_len(channel) + body.len();
    varint::encode(len as u64, out);
    out.push(kind);
    varint::encode(channel, out);
    out.extend_from_slice(body);
}

#[derive(Debug)]
struct Channel {
    /// DATA bytes we may still send (may be negative by one frame).
    send_credit: i64,
    /// DATA bytes the peer may send in total (window end).
    recv_allowed: u64,
    /// DATA bytes the peer has sent in total.
    recv_used: u64,
    /// Bytes consumed but not yet granted back.
    to_grant: u64,
    /// The channel's window: its initial credit both ways; half of it consumed is granted
    /// back.
    window: u64,
}

/// The connection layer: frames, channels, credit. Sans-IO: bytes in, frames and bytes out.
#[derive(Debug)]
pub struct Mux {
    decoder: FrameDecoder,
    max_frame: usize,
    channels: BTreeMap<u64, Channel>,
    out: Vec<u8>,
}

impl Mux {
    /// A connection whose frames may be at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Mux {
            decoder: FrameDecoder::new(max_frame),
            max_frame,
            channels: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    /// Opens `channel` (both sides open the channels they agree on; each starts with
    /// [`INITIAL_CREDIT`] both ways).
    pub fn open(&mut self, channel: u64) {
        self.open_with_window(channel, INITIAL_CREDIT);
    }

    /// Opens `channel` with a window of `window` bytes instead of [`INITIAL_CREDIT`] (both
    /// sides must open it with the same window). A smaller window bounds the channel's
    /// bytes in flight — what a message of another channel may wait behind in the
    /// transport's buffers.
    pub fn open_with_window(&mut self, channel: u64, window: u64) {
        self.channels.entry(channel).or_insert(Channel {
            send_credit: window as i64,
            recv_allowed: window,
            recv_used: 0,
            to_grant: 0,
            window,
        });
    }

    /// Whether `channel` has credit left to start another DATA frame.
    pub fn can_send(&self, channel: u64) -> bool {
        self.channels
            .get(&channel)
            .is_some_and(|c| c.send_credit > 0)
    }

    /// The window `channel` was opened with (0 if it is not open).
    pub fn window(&self, channel: u64) -> u64 {
        self.channels.get(&channel).map_or(0, |c| c.window)
    }

    /// Credit left on `channel`.
    pub fn credit(&self, channel: u64) -> i64 {
        self.channels.get(&channel).map_or(0, |c| c.send_credit)
    }

    /// Queues a DATA frame (whatever the credit: callers check [`Mux::can_send`] for bulk
    /// data; control messages are small and bounded by the protocol's turn-taking).
    pub fn send(&mut self, channel: u64, body: &[u8]) {
        if let Some(c) = self.channels.get_mut(&channel) {
            c.send_credit -= body.len() as i64;
        }
        self.push_frame(KIND_DATA, channel, body);
    }

    /// Queues an ERROR frame.
    pub fn send_error(&mut self, code: u8, message: &str) {
        let mut body = vec![code];
        let mut end = message.len().min(MAX_ERROR_TEXT);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        body.extend_from_slice(&message.as_bytes()[..end]);
        self.push_frame(KIND_ERROR, 0, &body);
    }

    /// Queues a CLOSE frame.
    pub fn send_close(&mut self) {
        self.push_frame(KIND_CLOSE, 0, &[]);
    }

    fn push_frame(&mut self, kind: u8, channel: u64, body: &[u8]) {
        encode_frame(kind, channel, body, &mut self.out);
    }

    /// Bytes queued for the peer.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Takes the queued bytes (all of them, as one buffer), if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.out))
    }

    /// Feeds received bytes.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Whether a partial frame is buffered (an end of stream now would truncate it).
    pub fn has_partial(&self) -> bool {
        self.decoder.has_partial()
    }

    /// The next event from the received bytes.
    pub fn poll_event(&mut self) -> Result<Option<MuxEvent>, SyncError> {
        loop {
            let Some((kind, channel, body)) = self.decoder.next_frame()? else {
                return Ok(None);
            };
            match kind {
                KIND_DATA => {
                    let max_frame = self.max_frame as u64;
                    let c = self
                        .channels
                        .get_mut(&channel)
                        .ok_or(SyncError::UnknownChannel(channel))?;
                    c.recv_used += body.len() as u64;
                    if c.recv_used > c.recv_allowed + max_frame {
                        return Err(SyncError::FlowControl(channel));
                    }
                    return Ok(Some(MuxEvent::Data { channel, body }));
                }
                KIND_CREDIT => {
                    let mut r = Reader::new(&body);
                    let n = r.varint()?;
                    r.end()?;
                    let c = self
                        .channels
                        .get_mut(&channel)
                        .ok_or(SyncError::UnknownChannel(channel))?;
                    c.send_credit = c.send_credit.saturating_add(n.min(i64::MAX as u64) as i64);
                    if c.send_credit > (1i64 << 40) {
                        return Err(SyncError::FlowControl(channel));
                    }
                }
                KIND_ERROR => {
                    let code = body.first().copied().unwrap_or(0);
                    let text = body.get(1..).unwrap_or_default();
                    if text.len() > MAX_ERROR_TEXT {
                        return Err(WireError::FieldTooLong {
                            len: text.len() as u64,
                            max: MAX_ERROR_TEXT,
                        }
                        .into());
                    }
                    return Ok(Some(MuxEvent::Error {
                        code,
                        message: String::from_utf8_lossy(text).into_owned(),
                    }));
                }
                KIND_CLOSE => return Ok(Some(MuxEvent::Close)),
                other => return Err(WireError::UnknownFrameKind(other).into()),
            }
        }
    }

    /// Lets the peer send `n` more DATA bytes on `channel` than the window (a CREDIT frame
    /// now): a receiver's larger window, granted once.
    pub fn grant(&mut self, channel: u64, n: u64) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        c.recv_allowed += n;
        let mut body = Vec::with_capacity(10);
        varint::encode(n, &mut body);
        self.push_frame(KIND_CREDIT, channel, &body);
    }

    /// Records that `n` DATA bytes of `channel` were processed; grants credit back once half
    /// the window has been consumed.
    pub fn consumed(&mut self, channel: u64, n: u64) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        c.to_grant += n;
        if c.to_grant >= c.window / 2 {
            let grant = c.to_grant;
            c.to_grant = 0;
            c.recv_allowed += grant;
            let mut body = Vec::with_capacity(10);
            varint::encode(grant, &mut body);
            self.push_frame(KIND_CREDIT, channel, &body);
        }
    }
}

/// A bounds-checked reader over a message.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(WireError::Truncated);
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        match varint::decode(&self.bytes[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(varint::VarintError::Truncated) => Err(WireError::Truncated),
            Err(_) => Err(WireError::BadVarint),
        }
    }
    /// A count that must not exceed `max` (checked before anything is allocated for it).
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(WireError::TooMany { count: n, max });
        }
        Ok(n as usize)
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let r = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        r
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub(crate) fn end(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Mux, Mux) {
        let mut a = Mux::new(1 << 20);
        let mut b = Mux::new(1 << 20);
        for ch in [1, 2] {
            a.open(ch);
            b.open(ch);
        }
        (a, b)
    }

    fn pump(from: &mut Mux, to: &mut Mux) -> Vec<MuxEvent> {
        if let Some(bytes) = from.poll_transmit() {
            to.handle_input(&bytes);
        }
        let mut out = Vec::new();
        while let Some(e) = to.poll_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let (mut a, _) = pair();
        a.send(1, b"hello");
        a.send(2, b"");
        a.send_error(7, "bad");
        a.send_close();
        let bytes = a.poll_transmit().unwrap();
        let mut b = Mux::new(1 << 20);
        b.open(1);
        b.open(2);
        let mut events = Vec::new();
        for byte in bytes {
            b.handle_input(&[byte]);
            while let Some(e) = b.poll_event().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(
            events,
            vec![
                MuxEvent::Data {
                    channel: 1,
                    body: b"hello".to_vec()
                },
                MuxEvent::Data {
                    channel: 2,
                    body: vec![]
                },
                MuxEvent::Error {
                    code: 7,
                    message: "bad".into()
                },
                MuxEvent::Close,
            ]
        );
        assert!(!b.has_partial());
    }

    #[test]
    fn huge_length_prefix_fails_before_allocating() {
        let mut d = FrameDecoder::new(1 << 20);
        // 2^62: a 9-byte varint.
        let mut bytes = Vec::new();
        varint::encode(1 << 62, &mut bytes);
        d.push(&bytes);
        assert!(matches!(
            d.next_frame(),
            Err(WireError::FrameTooLarge { .. })
        ));
        assert!(d.buf.capacity() < 64);
    }

    #[test]
    fn credit_is_per_channel_and_granted_back() {
        let (mut a, mut b) = pair();
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        while a.can_send(1) {
            a.send(1, &chunk);
            sent += chunk.len() as u64;
        }
        assert_eq!(sent, INITIAL_CREDIT);
        // Channel 2 is not starved by channel 1.
        assert!(a.can_send(2));
        let events = pump(&mut a, &mut b);
        assert_eq!(events.len(), 16);
        // Nothing granted until consumed.
        assert!(b.poll_transmit().is_none());
        b.consumed(1, sent);
        pump(&mut b, &mut a);
        assert!(a.can_send(1));
        assert_eq!(a.credit(1), INITIAL_CREDIT as i64);
    }

    #[test]
    fn a_receiver_may_grant_a_larger_window_and_still_bounds_it() {
        let (mut a, mut b) = pair();
        b.grant(1, 3 << 20);
        pump(&mut b, &mut a);
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        while a.can_send(1) {
            a.send(1, &chunk);
            sent += chunk.len() as u64;
        }
        assert_eq!(sent, INITIAL_CREDIT + (3 << 20));
        assert_eq!(pump(&mut a, &mut b).len(), 64);
        // Past the larger window by more than one frame (1 MiB) is still an overdraw.
        for _ in 0..17 {
            a.send(1, &chunk);
        }
        b.handle_input(&a.poll_transmit().unwrap());
        let mut result = Ok(None);
        for _ in 0..17 {
            result = b.poll_event();
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(SyncError::FlowControl(1))));
    }

    #[test]
    fn overdrawing_peer_is_an_error() {
        let (mut a, mut b) = pair();
        let chunk = vec![0u8; 512 << 10];
        for _ in 0..6 {
            a.send(1, &chunk); // ignores its credit
        }
        let bytes = a.poll_transmit().unwrap();
        b.handle_input(&bytes);
        let mut result = Ok(None);
        for _ in 0..6 {
            result = b.poll_event();
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(SyncError::FlowControl(1))));
    }

    #[test]
    fn unknown_channel_and_kind() {
        let (mut a, mut b) = pair();
        a.send(9, b"x");
        b.handle_input(&a.poll_transmit().unwrap());
        assert!(matches!(b.poll_event(), Err(SyncError::UnknownChannel(9))));
        let mut bytes = Vec::new();
        encode_frame(77, 0, b"", &mut bytes);
        let mut c = Mux::new(100);
        c.handle_input(&bytes);
        assert!(matches!(
            c.poll_event(),
            Err(SyncError::Wire(WireError::UnknownFrameKind(77)))
        ));
    }
}

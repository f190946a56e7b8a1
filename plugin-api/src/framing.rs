//! The event socket's framing, sans-IO, for both ends: mod_event_socket
//! reads its clients' packets with it and hotswitch-cli the server's.
//!
//! A packet is a block of lines — `\r` is ignored — ended by a blank line,
//! then, when the block has a `Content-Length` header, a body of that many
//! bytes. A client's packet starts with a command line (`api status`); a
//! server's is headers only. Header lines are `Name: value` (the value is
//! everything after the first colon, leading spaces dropped; nothing is
//! decoded). Blank lines between packets are skipped. Nothing here touches
//! a socket: it is a [`Protocol`] core like the others — the connection
//! hands it what it read ([`Framer::handle_input`]) and polls packets
//! ([`Protocol::poll_event`]) until none is complete. It has no timers and
//! never transmits.
//!
//! ```
//! use hotswitch_plugin_api::framing::{FirstLine, Framer};
//! use hotswitch_plugin_api::sansio::Protocol;
//! let mut f = Framer::new(FirstLine::Header, 1 << 20);
//! f.handle_input(b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n");
//! let p = f.poll_event().unwrap().unwrap();
//! assert_eq!(p.header("content-type"), Some("api/response"));
//! assert_eq!(p.body.as_deref(), Some("+OK\n"));
//! ```

use crate::sansio::Protocol;
use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::time::Instant;

/// The largest header block accepted (FreeSWITCH reads 1 MiB at most too).
pub const MAX_HEAD: usize = 1024 * 1024;

/// What the first line of a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstLine {
    /// A command (what clients send).
    Command,
    /// A header like the others (what the server sends).
    Header,
}

/// One packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The command line (empty in a server's packet).
    pub command: String,
    /// Headers in order, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, when `Content-Length` announced one.
    pub body: Option<String>,
}

impl Frame {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The first of `headers` called `name` (case-insensitive), as the event
/// socket compares header names.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What was wrong with the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A header line without `:`; that packet was skipped and the stream
    /// is still in step (unless it announced a body: then
    /// [`FrameError::BadContentLength`]).
    MalformedHeader(String),
    /// `Content-Length` is not a number; the stream cannot be followed.
    BadContentLength(String),
    /// `Content-Length` above the framer's limit.
    BodyTooLarge {
        /// What the packet announced.
        length: usize,
        /// The framer's limit.
        limit: usize,
    },
    /// No blank line within [`MAX_HEAD`] bytes.
    HeaderTooLarge,
}

impl FrameError {
    /// True when the stream cannot go on (where the next packet starts is
    /// unknown); the framer then returns this error for ever.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, FrameError::MalformedHeader(_))
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::MalformedHeader(l) => write!(f, "header line without ':': {l:?}"),
            FrameError::BadContentLength(v) => write!(f, "Content-Length is not a number: {v:?}"),
            FrameError::BodyTooLarge { length, limit } => {
                write!(f, "Content-Length {length} is over the limit of {limit}")
            }
            FrameError::HeaderTooLarge => write!(f, "no end of headers within {MAX_HEAD} bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into packets.
pub struct Framer {
    first: FirstLine,
    max_body: usize,
    buf: Vec<u8>,
    /// Where the bytes not yet returned start: packets are taken by moving
    /// this, and the buffer is compacted only when it is refilled (taking
    /// packets off the front one by one moved the rest of a pipelined read
    /// every time).
    start: usize,
    /// Where scanning for the end of the header block resumes.
    scan: usize,
    /// A packet whose headers are complete, waiting for its body.
    waiting: Option<(Frame, usize)>,
    failed: Option<FrameError>,
}

impl Framer {
    /// A framer with nothing buffered, for packets starting with `first`
    /// and bodies of at most `max_body` bytes.
    pub fn new(first: FirstLine, max_body: usize) -> Framer {
        Framer {
            first,
            max_body,
            buf: Vec::new(),
            start: 0,
            scan: 0,
            waiting: None,
            failed: None,
        }
    }

    /// Appends bytes read from the peer (no clock: framing is not timed).
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet part of a returned packet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete packet, `Ok(None)` when more bytes are needed.
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some((_, len)) = &self.waiting {
            let len = *len;
            if self.buffered() < len {
                return Ok(None);
            }
            let (mut frame, _) = self.waiting.take().expect("checked above");
            let body = &self.buf[self.start..self.start + len];
            frame.body = Some(String::from_utf8_lossy(body).into_owned());
            self.start += len;
            self.scan = self.start;
            return Ok(Some(frame));
        }
        self.skip_blank_lines();
        let Some(end) = self.find_head_end() else {
            if self.buffered() > MAX_HEAD {
                return Err(self.fail(FrameError::HeaderTooLarge));
            }
            return Ok(None);
        };
        let result = parse_head(&self.buf[self.start..end], self.first, self.max_body);
        self.start = end;
        self.scan = end;
        match result {
            Ok((frame, 0)) => Ok(Some(frame)),
            Ok((frame, len)) => {
                self.waiting = Some((frame, len));
                self.next_frame()
            }
            Err(e) if e.is_fatal() => Err(self.fail(e)),
            Err(e) => Err(e),
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e.clone());
        e
    }

    fn skip_blank_lines(&mut self) {
        let n = self.buf[self.start..]
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        if n > 0 {
            self.start += n;
            self.scan = self.scan.max(self.start);
        }
    }

    /// Where the header block ends, after its blank line.
    fn find_head_end(&mut self) -> Option<usize> {
        let mut line_start = self.scan;
        while let Some(n) = memchr::memchr(b'\n', &self.buf[line_start..]) {
            let i = line_start + n;
            let blank = self.buf[line_start..i].iter().all(|b| *b == b'\r');
            if blank && line_start > self.start {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
        // Resume at the start of the unfinished line next time.
        self.scan = line_start;
        None
    }
}

impl Protocol for Framer {
    type Transmit = Infallible;
    /// A complete packet, or what was wrong with the bytes: after a fatal
    /// error ([`FrameError::is_fatal`]) the framer returns that error for
    /// ever; after another, the next packet follows.
    type Event = Result<Frame, FrameError>;

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Infallible> {
        None
    }

    /// `None` when more bytes are needed.
    fn poll_event(&mut self) -> Option<Result<Frame, FrameError>> {
        self.next_frame().transpose()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Parses a complete header block; returns the packet and its body length.
fn parse_head(
    head: &[u8],
    first: FirstLine,
    max_body: usize,
) -> Result<(Frame, usize), FrameError> {
    // The fast check first; the lossy walk only for bytes that are not UTF-8.
    let text = match std::str::from_utf8(head) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(head),
    };
    let mut lines = text.split('\n').map(|l| {
        let l = l.trim_end_matches('\r');
        if l.contains('\r') {
            Cow::Owned(l.replace('\r', ""))
        } else {
            Cow::Borrowed(l)
        }
    });
    let mut frame = Frame::default();
    if first == FirstLine::Command {
        frame.command = lines.next().unwrap_or_default().trim().to_string();
    }
    let mut body_len = 0;
    let mut malformed = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            malformed.get_or_insert(line.to_string());
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            malformed.get_or_insert(line.to_string());
            continue;
        }
        let value = value.trim_start_matches(' ');
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| FrameError::BadContentLength(value.to_string()))?;
            if n > max_body {
                return Err(FrameError::BodyTooLarge {
                    length: n,
                    limit: max_body,
                });
            }
            body_len = n;
        }
        frame.headers.push((name.to_string(), value.to_string()));
    }
    match malformed {
        // The body (if any) still has to be skipped to stay in step, so a
        // malformed packet with a body is treated as fatal.
        Some(l) if body_len > 0 => Err(FrameError::BadContentLength(format!(
            "body after a malformed header {l:?}"
        ))),
        Some(l) => Err(FrameError::MalformedHeader(l)),
        None => Ok((frame, body_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_packet_split_anywhere_come_out_whole() {
        let cases: [(FirstLine, &[u8]); 2] = [
            (
                FirstLine::Header,
                b"Content-Length: 28\r\nContent-Type: text/event-plain\r\n\r\nEvent-Name: HEARTBEAT\nA: b\n\n",
            ),
            (
                FirstLine::Command,
                b"sendevent CUSTOM\nContent-Length: 28\n\nEvent-Name: HEARTBEAT\nA: b\n\n",
            ),
        ];
        for (first, bytes) in cases {
            for cut in 0..bytes.len() {
                let mut f = Framer::new(first, 1024);
                f.handle_input(&bytes[..cut]);
                let early = f.next_frame().unwrap();
                f.handle_input(&bytes[cut..]);
                let p = early.or_else(|| f.next_frame().unwrap()).expect("a packet");
                assert_eq!(p.body.as_deref(), Some("Event-Name: HEARTBEAT\nA: b\n\n"));
                assert_eq!(p.header("content-length"), Some("28"));
                let command = if first == FirstLine::Command {
                    "sendevent CUSTOM"
                } else {
                    ""
                };
                assert_eq!(p.command, command, "cut at {cut}");
                assert_eq!(f.next_frame().unwrap(), None);
                assert_eq!(f.buffered(), 0);
            }
        }
    }

    #[test]
    fn a_fatal_error_stays_and_a_malformed_header_skips_only_its_packet() {
        let mut f = Framer::new(FirstLine::Header, 10);
        f.handle_input(b"garbage\n\nA: b\n\n");
        assert!(!f.next_frame().unwrap_err().is_fatal());
        assert_eq!(f.next_frame().unwrap().unwrap().header("a"), Some("b"));
        f.handle_input(b"Content-Length: 11\n\n");
        let e = f.next_frame().unwrap_err();
        assert_eq!(
            e,
            FrameError::BodyTooLarge {
                length: 11,
                limit: 10
            }
        );
        assert_eq!(e.to_string(), "Content-Length 11 is over the limit of 10");
        f.handle_input(b"A: b\n\n");
        assert_eq!(f.next_frame().unwrap_err(), e);
    }
}

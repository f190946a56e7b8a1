//! The client's packets, sans-IO: bytes in, [`Packet`]s out.
//!
//! A packet is a command line, then `Name: value` lines (values are not
//! decoded), then a blank line; `\r` is ignored. A `Content-Length` header
//! announces a body of that many bytes (at most [`MAX_BODY`]), which
//! follows the blank line. Blank lines before a command are skipped.
//!
//! The parser never touches a socket: the connection pushes what it read
//! and pulls packets until there is none complete.

use std::borrow::Cow;
use std::fmt;

/// The largest body a client may send (FreeSWITCH's `MAX_CONTENT_LENGTH`).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// The largest header block (command line and headers) accepted.
pub const MAX_HEAD: usize = 1024 * 1024;

/// One client packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// The command line (`api status`).
    pub command: String,
    /// Headers in order, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, when `Content-Length` announced one.
    pub body: Option<String>,
}

impl Packet {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What was wrong with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A header line without `:`; the packet was skipped, the stream is
    /// still in step.
    MalformedHeader(String),
    /// `Content-Length` is not a number; the stream cannot be followed.
    BadContentLength(String),
    /// `Content-Length` above [`MAX_BODY`].
    BodyTooLarge(usize),
    /// No blank line within [`MAX_HEAD`] bytes.
    HeaderTooLarge,
}

impl ParseError {
    /// True when the connection cannot go on (where the next packet starts
    /// is unknown).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ParseError::MalformedHeader(_))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MalformedHeader(l) => write!(f, "header line without ':': {l:?}"),
            ParseError::BadContentLength(v) => write!(f, "Content-Length is not a number: {v:?}"),
            ParseError::BodyTooLarge(n) => {
                write!(f, "Content-Length {n} is over the limit of {MAX_BODY}")
            }
            ParseError::HeaderTooLarge => {
                write!(f, "no end of headers within {MAX_HEAD} bytes")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits a byte stream into packets.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Where the bytes not yet returned start: packets are consumed by
    /// moving this, and the buffer is compacted only when it is refilled
    /// (taking packets off the front one by one moved the rest of a
    /// pipelined read every time).
    start: usize,
    /// Where scanning for the end of the header block resumes.
    scan: usize,
    /// A packet whose headers are complete, waiting for its body.
    waiting: Option<(Packet, usize)>,
    failed: bool,
}

impl Parser {
    /// A parser with nothing buffered.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Appends bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
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
    /// After a fatal error the parser returns that error forever.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, ParseError> {
        if self.failed {
            return Err(ParseError::HeaderTooLarge);
        }
        if let Some((_, len)) = &self.waiting {
            let len = *len;
            if self.buffered() < len {
                return Ok(None);
            }
            let (mut packet, _) = self.waiting.take().expect("checked above");
            let body = &self.buf[self.start..self.start + len];
            packet.body = Some(String::from_utf8_lossy(body).into_owned());
            self.start += len;
            self.scan = self.start;
            return Ok(Some(packet));
        }
        self.skip_blank_lines();
        let Some(end) = self.find_head_end() else {
            if self.buffered() > MAX_HEAD {
                self.failed = true;
                return Err(ParseError::HeaderTooLarge);
            }
            return Ok(None);
        };
        let result = parse_head(&self.buf[self.start..end]);
        self.start = end;
        self.scan = end;
        match result {
            Ok((packet, 0)) => Ok(Some(packet)),
            Ok((packet, len)) => {
                self.waiting = Some((packet, len));
                self.next_packet()
            }
            Err(e) => {
                if e.is_fatal() {
                    self.failed = true;
                }
                Err(e)
            }
        }
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

/// Parses a complete header block; returns the packet and its body length.
fn parse_head(head: &[u8]) -> Result<(Packet, usize), ParseError> {
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
    let command = lines.next().unwrap_or_default().trim().to_string();
    let mut packet = Packet {
        command,
        ..Packet::default()
    };
    let mut body_len = 0;
    let mut malformed = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            malformed.get_or_insert(line.to_string());
            continue;
        };
        if name.is_empty() {
            malformed.get_or_insert(line.to_string());
            continue;
        }
        let value = value.trim_start_matches(' ');
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| ParseError::BadContentLength(value.to_string()))?;
            if n > MAX_BODY {
                return Err(ParseError::BodyTooLarge(n));
            }
            body_len = n;
        }
        packet.headers.push((name.to_string(), value.to_string()));
    }
    match malformed {
        // The body (if any) still has to be skipped to stay in step, so a
        // malformed packet with a body is treated as fatal.
        Some(l) if body_len > 0 => Err(ParseError::BadContentLength(format!(
            "body after a malformed header {l:?}"
        ))),
        Some(l) => Err(ParseError::MalformedHeader(l)),
        None => Ok((packet, body_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser) -> Vec<Packet> {
        let mut v = Vec::new();
        while let Some(x) = p.next_packet().expect("no error") {
            v.push(x);
        }
        v
    }

    #[test]
    fn a_command_ends_at_the_blank_line() {
        let mut p = Parser::new();
        p.push(b"api status\n\n");
        let v = all(&mut p);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].command, "api status");
        assert!(v[0].headers.is_empty());
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn carriage_returns_are_ignored() {
        let mut p = Parser::new();
        p.push(b"auth ClueCon\r\n\r\n");
        assert_eq!(all(&mut p)[0].command, "auth ClueCon");
    }

    #[test]
    fn a_packet_split_across_reads_is_put_back_together() {
        let mut p = Parser::new();
        let bytes = b"sendmsg abc\ncall-command: execute\nexecute-app-name: answer\n\n";
        for b in bytes.iter() {
            assert!(p.next_packet().unwrap().is_none());
            p.push(&[*b]);
        }
        let v = all(&mut p);
        assert_eq!(v[0].command, "sendmsg abc");
        assert_eq!(v[0].header("CALL-COMMAND"), Some("execute"));
        assert_eq!(v[0].header("execute-app-name"), Some("answer"));
    }

    #[test]
    fn header_values_keep_everything_after_the_first_colon() {
        let mut p = Parser::new();
        p.push(b"sendevent CUSTOM\nX-Url: http://a:b/c\n\n");
        assert_eq!(all(&mut p)[0].header("x-url"), Some("http://a:b/c"));
    }

    #[test]
    fn a_body_sized_by_content_length_follows_the_headers() {
        let mut p = Parser::new();
        p.push(b"sendmsg\nContent-Length: 5\n\nhel");
        assert!(p.next_packet().unwrap().is_none());
        p.push(b"lo\n\nexit\n\n");
        let v = all(&mut p);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].body.as_deref(), Some("hello"));
        assert_eq!(v[1].command, "exit");
    }

    #[test]
    fn two_packets_in_one_read_come_out_in_order_and_blank_lines_between_are_skipped() {
        let mut p = Parser::new();
        p.push(b"\n\nevent plain ALL\n\n\r\n\napi version\n\n");
        let v = all(&mut p);
        assert_eq!(
            v.iter().map(|p| p.command.as_str()).collect::<Vec<_>>(),
            ["event plain ALL", "api version"]
        );
    }

    #[test]
    fn a_header_line_without_a_colon_is_an_error_that_skips_only_its_packet() {
        let mut p = Parser::new();
        p.push(b"sendmsg\ngarbage line\n\napi status\n\n");
        let e = p.next_packet().unwrap_err();
        assert!(!e.is_fatal());
        assert_eq!(p.next_packet().unwrap().unwrap().command, "api status");
    }

    #[test]
    fn a_body_over_sixteen_mebibytes_is_fatal() {
        let mut p = Parser::new();
        p.push(format!("sendevent X\nContent-Length: {}\n\n", MAX_BODY + 1).as_bytes());
        let e = p.next_packet().unwrap_err();
        assert_eq!(e, ParseError::BodyTooLarge(MAX_BODY + 1));
        assert!(e.is_fatal());
        assert!(p.next_packet().is_err(), "a failed parser stays failed");
    }

    #[test]
    fn a_content_length_that_is_not_a_number_is_fatal() {
        let mut p = Parser::new();
        p.push(b"sendevent X\nContent-Length: lots\n\n");
        assert!(p.next_packet().unwrap_err().is_fatal());
    }

    #[test]
    fn endless_headers_without_a_blank_line_are_fatal() {
        let mut p = Parser::new();
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        p.push(b"api status\n");
        let mut err = None;
        for _ in 0..(MAX_HEAD / line.len() + 2) {
            p.push(line);
            if let Err(e) = p.next_packet() {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ParseError::HeaderTooLarge));
    }

    #[test]
    fn binary_garbage_becomes_a_command_line_not_a_panic() {
        let mut p = Parser::new();
        p.push(&[0xff, 0xfe, 0x00, b'x', b'\n', b'\n']);
        let v = all(&mut p);
        assert_eq!(v.len(), 1);
    }
}

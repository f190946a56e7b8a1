//! The event socket as a client sees it, sans-IO: bytes from the server in,
//! [`Packet`]s out; commands in, bytes to send out.
//!
//! A server packet is `Name: value` lines, a blank line, and a body of
//! `Content-Length` bytes when that header is present (an event's own
//! headers travel in that body). `\r` is ignored, and blank lines between
//! packets are skipped. Nothing here touches a socket: the connection
//! hands the framer what it read and polls packets until none is complete.

use hotswitch_plugin_api::framing::{find_header, FirstLine, Frame, Framer};
use std::fmt;

/// The largest body accepted from the server (FreeSWITCH's
/// `MAX_CONTENT_LENGTH` is 16 MiB for clients; `show` outputs can be big, so
/// allow more).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// One server packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// Headers in order, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty without `Content-Length`).
    pub body: String,
}

/// What a packet is, from its `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `auth/request`: the greeting.
    AuthRequest,
    /// `command/reply`: the answer to a command, in `Reply-Text`.
    CommandReply,
    /// `api/response`: an api command's output, in the body.
    ApiResponse,
    /// `text/event-plain|json|xml`: an event, serialised in the body.
    Event,
    /// `log/data`: a log record; the line is the body.
    Log,
    /// `text/disconnect-notice`: the server is closing (or, with
    /// `Content-Disposition: linger`, lingering).
    DisconnectNotice,
    /// `text/rude-rejection`: the ACL refused us.
    RudeRejection,
    /// Anything else (the type as sent).
    Other(String),
}

impl Packet {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// What the packet is.
    pub fn kind(&self) -> Kind {
        match self.header("Content-Type").unwrap_or("") {
            "auth/request" => Kind::AuthRequest,
            "command/reply" => Kind::CommandReply,
            "api/response" => Kind::ApiResponse,
            "log/data" => Kind::Log,
            "text/disconnect-notice" => Kind::DisconnectNotice,
            "text/rude-rejection" => Kind::RudeRejection,
            t if t.starts_with("text/event-") => Kind::Event,
            t => Kind::Other(t.to_string()),
        }
    }

    /// `Reply-Text` of a command reply.
    pub fn reply_text(&self) -> &str {
        self.header("Reply-Text").unwrap_or("")
    }

    /// A log record's FreeSWITCH level (0 console … 7 debug).
    pub fn log_level(&self) -> Option<u8> {
        self.header("Log-Level")?.trim().parse().ok()
    }
}

/// What was wrong with the server's bytes (the shared framer's errors).
/// Every one of them leaves the client out of step: the connection cannot
/// go on.
pub use hotswitch_plugin_api::framing::FrameError as DecodeError;

/// A framer for the server's byte stream: plugin-api's, the one
/// mod_event_socket reads its clients with. Feed it with `handle_input`,
/// take frames with `poll_event` (from
/// [`Protocol`](hotswitch_plugin_api::sansio::Protocol)) and make each a
/// [`Packet`].
pub fn decoder() -> Framer {
    Framer::new(FirstLine::Header, MAX_BODY)
}

impl From<Frame> for Packet {
    fn from(f: Frame) -> Packet {
        Packet {
            headers: f.headers,
            body: f.body.unwrap_or_default(),
        }
    }
}

/// Why a command cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A line break would end the packet early and start another.
    LineBreak,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::LineBreak => write!(f, "a command cannot contain a line break"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A command packet: the line, then a blank line.
pub fn encode_command(line: &str) -> Result<Vec<u8>, EncodeError> {
    if line.contains(['\n', '\r']) {
        return Err(EncodeError::LineBreak);
    }
    Ok(format!("{line}\n\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotswitch_plugin_api::sansio::Protocol;

    trait Next {
        fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError>;
    }

    impl Next for Framer {
        fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError> {
            Ok(self.poll_event().transpose()?.map(Packet::from))
        }
    }
    use hotswitch_plugin_api::framing::MAX_HEAD;

    fn all(d: &mut Framer) -> Vec<Packet> {
        let mut v = Vec::new();
        while let Some(p) = d.next_packet().expect("well formed") {
            v.push(p);
        }
        v
    }

    #[test]
    fn a_greeting_a_reply_and_an_api_response_come_out_in_order() {
        let mut d = decoder();
        d.handle_input(b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n");
        d.handle_input(b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n");
        let p = all(&mut d);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].kind(), Kind::AuthRequest);
        assert_eq!(p[1].kind(), Kind::CommandReply);
        assert_eq!(p[1].reply_text(), "+OK accepted");
        assert_eq!(p[2].kind(), Kind::ApiResponse);
        assert_eq!(p[2].body, "+OK\n");
    }

    #[test]
    fn a_packet_split_anywhere_comes_out_whole() {
        let bytes: &[u8] = b"Content-Length: 28\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\nA: b\n\n";
        for cut in 0..bytes.len() {
            let mut d = decoder();
            d.handle_input(&bytes[..cut]);
            let first = d.next_packet().unwrap();
            d.handle_input(&bytes[cut..]);
            let p = first
                .or_else(|| d.next_packet().unwrap())
                .expect("a packet");
            assert_eq!(p.kind(), Kind::Event, "cut at {cut}");
            assert_eq!(p.body, "Event-Name: HEARTBEAT\nA: b\n\n");
            assert_eq!(d.next_packet().unwrap(), None);
        }
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_packets() {
        let bytes = b"Content-Type: log/data\nContent-Length: 5\nLog-Level: 7\n\nhello\r\nContent-Type: text/disconnect-notice\r\nContent-Length: 3\r\n\r\nbye";
        let mut d = decoder();
        let mut got = Vec::new();
        for b in bytes.iter() {
            d.handle_input(std::slice::from_ref(b));
            while let Some(p) = d.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind(), Kind::Log);
        assert_eq!(got[0].log_level(), Some(7));
        assert_eq!(got[0].body, "hello");
        assert_eq!(got[1].kind(), Kind::DisconnectNotice);
        assert_eq!(got[1].body, "bye");
    }

    #[test]
    fn blank_lines_between_packets_are_skipped() {
        let mut d = decoder();
        d.handle_input(b"\n\nContent-Type: command/reply\nReply-Text: +OK\n\n\n");
        assert_eq!(all(&mut d).len(), 1);
    }

    #[test]
    fn a_header_without_a_colon_is_an_error_not_a_panic() {
        let mut d = decoder();
        d.handle_input(b"garbage line\n\n");
        assert_eq!(
            d.next_packet(),
            Err(DecodeError::MalformedHeader("garbage line".into()))
        );
    }

    #[test]
    fn a_bad_or_huge_content_length_is_an_error() {
        let mut d = decoder();
        d.handle_input(b"Content-Length: many\n\n");
        assert!(matches!(
            d.next_packet(),
            Err(DecodeError::BadContentLength(_))
        ));
        let mut d = decoder();
        d.handle_input(format!("Content-Length: {}\n\n", MAX_BODY + 1).as_bytes());
        assert_eq!(
            d.next_packet(),
            Err(DecodeError::BodyTooLarge {
                length: MAX_BODY + 1,
                limit: MAX_BODY
            })
        );
    }

    #[test]
    fn an_endless_header_block_is_an_error() {
        let mut d = decoder();
        let line = vec![b'a'; 1000];
        for _ in 0..(MAX_HEAD / 1000 + 2) {
            d.handle_input(&line);
        }
        assert_eq!(d.next_packet(), Err(DecodeError::HeaderTooLarge));
    }

    #[test]
    fn unknown_content_types_are_kept() {
        let mut d = decoder();
        d.handle_input(b"Content-Type: text/something\n\n");
        assert_eq!(all(&mut d)[0].kind(), Kind::Other("text/something".into()));
    }

    #[test]
    fn a_body_that_is_not_utf8_does_not_stop_the_stream() {
        let mut d = decoder();
        d.handle_input(b"Content-Type: api/response\nContent-Length: 2\n\n\xff\xfe");
        d.handle_input(b"Content-Type: command/reply\nReply-Text: +OK\n\n");
        let p = all(&mut d);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].reply_text(), "+OK");
    }

    #[test]
    fn commands_end_with_a_blank_line_and_refuse_line_breaks() {
        assert_eq!(encode_command("api status").unwrap(), b"api status\n\n");
        assert_eq!(
            encode_command("api status\nexit"),
            Err(EncodeError::LineBreak)
        );
    }
}

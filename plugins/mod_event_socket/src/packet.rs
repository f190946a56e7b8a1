//! The client's packets, sans-IO: bytes in, [`Packet`]s out.
//!
//! A packet is a command line, then `Name: value` lines (values are not
//! decoded), then a blank line; `\r` is ignored. A `Content-Length` header
//! announces a body of that many bytes (at most [`MAX_BODY`]), which
//! follows the blank line. Blank lines before a command are skipped.
//!
//! The parser never touches a socket: the connection hands it what it read
//! and polls packets until there is none complete. It is plugin-api's
//! `framing::Framer`, which hotswitch-cli reads the server's packets with
//! too.

use hotswitch_plugin_api::framing::{FirstLine, Framer};

/// The largest body a client may send (FreeSWITCH's `MAX_CONTENT_LENGTH`).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
pub use hotswitch_plugin_api::framing::MAX_HEAD;

/// One client packet: its command line, headers and body.
pub use hotswitch_plugin_api::framing::Frame as Packet;
/// What was wrong with the input; [`ParseError::is_fatal`] says whether
/// the connection can go on.
pub use hotswitch_plugin_api::framing::FrameError as ParseError;

/// A framer for a client's byte stream: plugin-api's, the one
/// hotswitch-cli reads the server with, with a command line first. Feed it
/// with `handle_input` and take packets with `poll_event` (from
/// [`Protocol`](hotswitch_plugin_api::sansio::Protocol)).
pub fn parser() -> Framer {
    Framer::new(FirstLine::Command, MAX_BODY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotswitch_plugin_api::sansio::Protocol;

    trait Next {
        fn next_packet(&mut self) -> Result<Option<Packet>, ParseError>;
    }

    impl Next for Framer {
        fn next_packet(&mut self) -> Result<Option<Packet>, ParseError> {
            self.poll_event().transpose()
        }
    }

    fn all(p: &mut Framer) -> Vec<Packet> {
        let mut v = Vec::new();
        while let Some(x) = p.next_packet().expect("no error") {
            v.push(x);
        }
        v
    }

    #[test]
    fn a_command_ends_at_the_blank_line() {
        let mut p = parser();
        p.handle_input(b"api status\n\n");
        let v = all(&mut p);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].command, "api status");
        assert!(v[0].headers.is_empty());
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn carriage_returns_are_ignored() {
        let mut p = parser();
        p.handle_input(b"auth ClueCon\r\n\r\n");
        assert_eq!(all(&mut p)[0].command, "auth ClueCon");
    }

    #[test]
    fn a_packet_split_across_reads_is_put_back_together() {
        let mut p = parser();
        let bytes = b"sendmsg abc\ncall-command: execute\nexecute-app-name: answer\n\n";
        for b in bytes.iter() {
            assert!(p.next_packet().unwrap().is_none());
            p.handle_input(&[*b]);
        }
        let v = all(&mut p);
        assert_eq!(v[0].command, "sendmsg abc");
        assert_eq!(v[0].header("CALL-COMMAND"), Some("execute"));
        assert_eq!(v[0].header("execute-app-name"), Some("answer"));
    }

    #[test]
    fn header_values_keep_everything_after_the_first_colon() {
        let mut p = parser();
        p.handle_input(b"sendevent CUSTOM\nX-Url: http://a:b/c\n\n");
        assert_eq!(all(&mut p)[0].header("x-url"), Some("http://a:b/c"));
    }

    #[test]
    fn a_body_sized_by_content_length_follows_the_headers() {
        let mut p = parser();
        p.handle_input(b"sendmsg\nContent-Length: 5\n\nhel");
        assert!(p.next_packet().unwrap().is_none());
        p.handle_input(b"lo\n\nexit\n\n");
        let v = all(&mut p);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].body.as_deref(), Some("hello"));
        assert_eq!(v[1].command, "exit");
    }

    #[test]
    fn two_packets_in_one_read_come_out_in_order_and_blank_lines_between_are_skipped() {
        let mut p = parser();
        p.handle_input(b"\n\nevent plain ALL\n\n\r\n\napi version\n\n");
        let v = all(&mut p);
        assert_eq!(
            v.iter().map(|p| p.command.as_str()).collect::<Vec<_>>(),
            ["event plain ALL", "api version"]
        );
    }

    #[test]
    fn a_header_line_without_a_colon_is_an_error_that_skips_only_its_packet() {
        let mut p = parser();
        p.handle_input(b"sendmsg\ngarbage line\n\napi status\n\n");
        let e = p.next_packet().unwrap_err();
        assert!(!e.is_fatal());
        assert_eq!(p.next_packet().unwrap().unwrap().command, "api status");
    }

    #[test]
    fn a_body_over_sixteen_mebibytes_is_fatal() {
        let mut p = parser();
        p.handle_input(format!("sendevent X\nContent-Length: {}\n\n", MAX_BODY + 1).as_bytes());
        let e = p.next_packet().unwrap_err();
        assert_eq!(
            e,
            ParseError::BodyTooLarge {
                length: MAX_BODY + 1,
                limit: MAX_BODY
            }
        );
        assert!(e.is_fatal());
        assert!(p.next_packet().is_err(), "a failed parser stays failed");
    }

    #[test]
    fn a_content_length_that_is_not_a_number_is_fatal() {
        let mut p = parser();
        p.handle_input(b"sendevent X\nContent-Length: lots\n\n");
        assert!(p.next_packet().unwrap_err().is_fatal());
    }

    #[test]
    fn endless_headers_without_a_blank_line_are_fatal() {
        let mut p = parser();
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        p.handle_input(b"api status\n");
        let mut err = None;
        for _ in 0..(MAX_HEAD / line.len() + 2) {
            p.handle_input(line);
            if let Err(e) = p.next_packet() {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ParseError::HeaderTooLarge));
    }

    #[test]
    fn binary_garbage_becomes_a_command_line_not_a_panic() {
        let mut p = parser();
        p.handle_input(&[0xff, 0xfe, 0x00, b'x', b'\n', b'\n']);
        let v = all(&mut p);
        assert_eq!(v.len(), 1);
    }
}

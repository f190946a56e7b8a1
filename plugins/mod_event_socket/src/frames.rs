//! What the server writes, byte for byte as FreeSWITCH writes it.

use std::fmt::Write;

/// The body of the notice sent when a connection is closed normally.
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
/// The body of the notice sent to every connection at unload.
pub const SHUTTING_DOWN: &str = "The system is being shut down.\n";
/// The body of the notice sent to a client that stopped reading.
pub const LOST_EVENTS: &str = "killed listener because of lost events\n";
/// The body of the rejection sent to an address the ACL refuses.
pub const ACCESS_DENIED: &str = "Access Denied, go away.\n";

/// How events are serialised for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/event-plain`.
    Plain,
    /// `text/event-json`.
    Json,
    /// `text/event-xml`.
    Xml,
}

impl Format {
    /// `plain`, `json` or `xml` (case-insensitive).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "plain" => Some(Format::Plain),
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    /// The name FreeSWITCH prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Json => "json",
            Format::Xml => "xml",
        }
    }
}

/// `Content-Type: auth/request`, the inbound greeting.
pub fn auth_request() -> Vec<u8> {
    b"Content-Type: auth/request\n\n".to_vec()
}

/// `Content-Type: command/reply` with `Reply-Text`.
pub fn command_reply(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 48);
    command_reply_into(&mut v, text);
    v
}

/// Appends a command reply (see [`command_reply`]) to `out`.
pub fn command_reply_into(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"Content-Type: command/reply\nReply-Text: ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A command reply with extra headers after `Reply-Text` (bgapi's
/// `Job-UUID`).
pub fn command_reply_with(text: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("Content-Type: command/reply\nReply-Text: {text}\n");
    for (k, v) in extra {
        let _ = writeln!(s, "{k}: {v}");
    }
    s.push('\n');
    s.into_bytes()
}

/// `Content-Type: api/response` with the command's output as body.
pub fn api_response(body: &str) -> Vec<u8> {
    let mut v = format!(
        "Content-Type: api/response\nContent-Length: {}\n\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body.as_bytes());
    v
}

/// Appends an event frame, already serialised in `format`, to `out`.
pub fn event_into(out: &mut Vec<u8>, format: Format, text: &[u8]) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, text.len());
    out.extend_from_slice(match format {
        Format::Plain => b"\nContent-Type: text/event-plain\n\n",
        Format::Json => b"\nContent-Type: text/event-json\n\n",
        Format::Xml => b"\nContent-Type: text/event-xml\n\n",
    });
    out.extend_from_slice(text);
}

/// An event frame, already serialised in `format`.
pub fn event(format: Format, text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 64);
    event_into(&mut v, format, text.as_bytes());
    v
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends a log record's frame to `out`: `Content-Type: log/data`,
/// `Content-Length`, then the record's headers (Log-Level, Text-Channel,
/// Log-File, Log-Func, Log-Line, User-Data) and the line as body.
pub fn log_data_into(out: &mut Vec<u8>, headers: &[(String, String)], text: &str) {
    out.extend_from_slice(b"Content-Type: log/data\nContent-Length: ");
    push_decimal(out, text.len());
    out.push(b'\n');
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(text.as_bytes());
}

/// `Content-Type: text/disconnect-notice`; a connection controlling a
/// session names it.
pub fn disconnect_notice(message: &str, controlled: Option<&str>) -> Vec<u8> {
    let mut s = String::from("Content-Type: text/disconnect-notice\n");
    if let Some(uuid) = controlled {
        let _ = write!(
            s,
            "Controlled-Session-UUID: {uuid}\nContent-Disposition: disconnect\n"
        );
    }
    let _ = write!(s, "Content-Length: {}\n\n{message}", message.len());
    s.into_bytes()
}

/// The notice a lingering connection gets when its session hangs up
/// (`linger_time` -1: until the client closes).
pub fn linger_notice(uuid: &str, channel_name: &str, linger_time: i64) -> Vec<u8> {
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: linger\nChannel-Name: {channel_name}\nLinger-Time: {linger_time}\nContent-Length: 0\n\n"
    )
    .into_bytes()
}

/// `Content-Type: text/rude-rejection`, for an address the ACL refuses.
pub fn rude_rejection() -> Vec<u8> {
    format!(
        "Content-Type: text/rude-rejection\nContent-Length: {}\n\n{ACCESS_DENIED}",
        ACCESS_DENIED.len()
    )
    .into_bytes()
}

pub use hotswitch_plugin_api::wire::url_encode_into;

/// Headers in the plain event form: `Name: urlenc(value)` lines and a
/// final blank line.
pub fn plain_headers(headers: &[(String, String)]) -> String {
    hotswitch_plugin_api::wire::to_plain(headers, None)
}

/// The body of an event in the host's plain form (`Content-Length: n`, a
/// blank line, then n bytes), if it has one.
pub fn plain_body(text: &str) -> Option<&str> {
    let (head, rest) = text.split_once("\n\n")?;
    let last = head.rsplit('\n').next()?;
    let n: usize = last.strip_prefix("Content-Length: ")?.parse().ok()?;
    (rest.len() == n).then_some(rest)
}

/// Every header of an event in the plain form (values URL-decoded): for
/// when an event was fetched with only its routing headers and must now be
/// sent as JSON or XML.
pub fn headers_from_plain(plain: &str) -> Vec<(String, String)> {
    let head = plain.split("\n\n").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k != "Content-Length")
        .map(|(k, v)| (k.to_string(), url_decode(v)))
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 3) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An event in `format`, from its headers and the host's plain text. The
/// host serialises plain; JSON and XML are made here, at send time, so that
/// a format change applies to the very next event, as in FreeSWITCH.
pub fn serialize(format: Format, headers: &[(String, String)], plain: &str) -> String {
    match format {
        Format::Plain => plain.to_string(),
        Format::Json => to_json(headers, plain_body(plain)),
        Format::Xml => to_xml(headers, plain_body(plain)),
    }
}

fn to_json(headers: &[(String, String)], body: Option<&str>) -> String {
    hotswitch_plugin_api::wire::to_json(headers, body)
}

fn to_xml(headers: &[(String, String)], body: Option<&str>) -> String {
    hotswitch_plugin_api::wire::to_xml(headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_headers_come_back_out_of_the_plain_form() {
        let plain = "Event-Name: CUSTOM\nX-Thing: a%20b%3Ac\nContent-Length: 2\n\nhi";
        assert_eq!(
            headers_from_plain(plain),
            vec![
                ("Event-Name".to_string(), "CUSTOM".to_string()),
                ("X-Thing".to_string(), "a b:c".to_string()),
            ]
        );
    }

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn the_greeting_and_replies_are_freeswitchs_bytes() {
        assert_eq!(s(auth_request()), "Content-Type: auth/request\n\n");
        assert_eq!(
            s(command_reply("+OK accepted")),
            "Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
        );
        assert_eq!(
            s(command_reply_with("+OK Job-UUID: u", &[("Job-UUID", "u")])),
            "Content-Type: command/reply\nReply-Text: +OK Job-UUID: u\nJob-UUID: u\n\n"
        );
        assert_eq!(
            s(api_response("+OK\n")),
            "Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
        );
    }

    #[test]
    fn the_disconnect_notice_is_sixty_seven_bytes_of_goodbye() {
        assert_eq!(
            s(disconnect_notice(GOODBYE, None)),
            "Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        );
        assert!(s(disconnect_notice(GOODBYE, Some("u")))
            .starts_with("Content-Type: text/disconnect-notice\nControlled-Session-UUID: u\nContent-Disposition: disconnect\nContent-Length: 67\n\n"));
    }

    #[test]
    fn the_rude_rejection_says_go_away() {
        assert_eq!(
            s(rude_rejection()),
            "Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
        );
    }

    #[test]
    fn an_event_frame_carries_its_length_and_format() {
        assert_eq!(
            s(event(Format::Json, "{}")),
            "Content-Length: 2\nContent-Type: text/event-json\n\n{}"
        );
    }

    #[test]
    fn json_and_xml_are_made_from_the_headers_and_the_plain_body() {
        let h = vec![
            ("Event-Name".to_string(), "API".to_string()),
            ("X".to_string(), "a b\"".to_string()),
        ];
        let plain = "Event-Name: API\nX: a%20b%22\nContent-Length: 3\n\nhi\n";
        assert_eq!(plain_body(plain), Some("hi\n"));
        assert_eq!(
            serialize(Format::Json, &h, plain),
            r#"{"Event-Name":"API","X":"a b\"","Content-Length":"3","_body":"hi\n"}"#
        );
        assert_eq!(
            serialize(Format::Xml, &h, "Event-Name: API\nX: a%20b%22\n\n"),
            "<event>\n  <headers>\n    <Event-Name>API</Event-Name>\n    <X>a%20b%22</X>\n  </headers>\n</event>\n"
        );
        assert_eq!(plain_body("Event-Name: API\n\n"), None);
    }

    #[test]
    fn url_encoding_escapes_freeswitchs_set_and_keeps_existing_escapes() {
        let mut o = String::new();
        url_encode_into("+OK\n a:b %41 100%", &mut o);
        assert_eq!(o, "%2BOK%0A%20a%3Ab%20%41%20100%25");
    }
}

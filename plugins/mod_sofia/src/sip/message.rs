//! SIP messages (RFC 3261 §7, §20, §25): parsing, framing on streams, and
//! writing.
//!
//! Sans-IO, and by the grammar: a start line of single spaces, header
//! names as tokens in any case or compact form, linear white space and
//! folded lines wherever the grammar allows them (a bare LF is taken for
//! CRLF), comma-joined values, and refused with a [`ParseError`] what the
//! grammar forbids — control characters in a header, an empty element in
//! a list, a second instance of a single-valued header (Call-ID, CSeq,
//! From, To, Max-Forwards, Content-Length), a version other than SIP/2.0
//! (answered 505). The lexical pieces (lines, framing, Content-Length,
//! the start line) are in [`crate::sip::wire`]. [`error_response`] builds
//! the 400 or 505 for a request that failed, when its Via can address one.
//!
//! Headers are kept in arrival order with their names canonicalised
//! (compact forms expanded); comma-separated values of Via, Route,
//! Record-Route and Contact are split into one entry each, so the top Via
//! is always `headers.get("Via")`.

use crate::sip::headers::is_token;
use crate::sip::text::escape_str;
use crate::sip::wire::{
    content_length, digits, has_control, head_end, is_call_id, is_version, parse_cseq, parse_start,
    split_commas, split_line, unfold,
};
use std::fmt;

pub use crate::sip::wire::frame;

/// Largest message accepted (UDP datagram or TCP message).
pub const MAX_MESSAGE: usize = 65_535;

/// A request's start line or a response's status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request { method: String, uri: String },
    /// `SIP/2.0 code reason`
    Response { code: u16, reason: String },
}

/// One SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Headers in order, names canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (any case, compact form allowed).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = query_name(name);
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = query_name(name).to_string();
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((canonical(name), value.into()));
    }

    /// Replaces every `name` with one value (appended when absent).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical(name);
        let value = value.into();
        match self
            .0
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(i) => {
                self.0[i].1 = value;
                let mut j = i + 1;
                while j < self.0.len() {
                    if self.0[j].0.eq_ignore_ascii_case(&name) {
                        self.0.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.0.push((name, value)),
        }
    }

    /// Removes every `name`.
    pub fn remove(&mut self, name: &str) {
        let name = query_name(name);
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Inserts a header before all others.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(0, (canonical(name), value.into()));
    }
}

/// Why a message was refused. Every text it carries is escaped
/// (printable ASCII), so it can be logged as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not even a start line.
    StartLine(String),
    /// A header line without a colon, with a bad name, or with control
    /// characters.
    HeaderLine(String),
    /// A header the message cannot be handled without is absent.
    Missing(&'static str),
    /// A header's value is broken.
    Header(&'static str, String),
    /// A single-valued header appears twice.
    Duplicate(&'static str),
    /// A SIP version other than 2.0.
    Version(String),
    /// Content-Length and the body disagree.
    Length(String),
    /// Over [`MAX_MESSAGE`].
    TooLarge(usize),
    /// Bytes that are not UTF-8 in the head.
    Encoding,
    /// The head has not ended (streams: wait for more).
    Incomplete,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::StartLine(l) => write!(f, "bad start line \"{l}\""),
            ParseError::HeaderLine(l) => write!(f, "bad header line \"{l}\""),
            ParseError::Missing(n) => write!(f, "missing {n} header"),
            ParseError::Header(n, why) => write!(f, "bad {n} header: {why}"),
            ParseError::Duplicate(n) => write!(f, "{n} header appears more than once"),
            ParseError::Version(v) => write!(f, "SIP version {v} is not supported"),
            ParseError::Length(why) => write!(f, "bad Content-Length: {why}"),
            ParseError::TooLarge(n) => write!(f, "message of {n} bytes is too large"),
            ParseError::Encoding => write!(f, "message head is not UTF-8"),
            ParseError::Incomplete => write!(f, "message is incomplete"),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The status a request refused for this error is answered with:
    /// sofia-sip's `400 Bad <Name> Header`, 505 for a version.
    pub fn status(&self) -> (u16, String) {
        match self {
            ParseError::Version(_) => (505, "Version Not Supported".into()),
            ParseError::Missing(n) => (400, format!("Missing {n} Header")),
            ParseError::Header(n, _) | ParseError::Duplicate(n) => (400, format!("Bad {n} Header")),
            ParseError::Length(_) => (400, "Bad Content-Length Header".into()),
            _ => (400, "Bad Request".into()),
        }
    }
}

/// The long name of a compact form (RFC 3261 §7.3.3 and its extensions);
/// `None` for any other name.
fn compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        _ => return None,
    })
}

/// What stored (canonical) names are compared with, case ignored: the
/// long form of a compact name, any other name as given. No allocation:
/// headers are looked up many times per message.
fn query_name(name: &str) -> &str {
    compact(name).unwrap_or(name)
}

/// The long name of a header given in any case or compact form, in the
/// capitalisation RFC 3261 uses.
pub fn canonical(name: &str) -> String {
    compact(name)
        .or_else(|| KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)).copied())
        .unwrap_or(name)
        .to_string()
}

const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Route",
    "Record-Route",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Expires",
    "User-Agent",
    "Server",
    "Allow",
    "Supported",
    "Require",
    "Event",
    "Subject",
];

/// Headers whose comma-separated values are separate entries, as the
/// `&'static str` errors name them.
fn splits(name: &str) -> Option<&'static str> {
    match name {
        "Via" => Some("Via"),
        "Route" => Some("Route"),
        "Record-Route" => Some("Record-Route"),
        "Contact" => Some("Contact"),
        "Path" => Some("Path"),
        _ => None,
    }
}

/// Headers a message carries at most once (RFC 3261 §7.3.1: only a
/// header whose grammar is a comma list may repeat).
const SINGLE: [&str; 6] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
];

impl Message {
    /// Parses one whole message (a datagram, or a frame cut by [`frame`]).
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge(buf.len()));
        }
        Message::parse_any_size(buf)
    }

    /// As [`Message::parse`] without the size limit: for messages we wrote
    /// ourselves (a response found too large to send).
    pub fn parse_any_size(buf: &[u8]) -> Result<Message, ParseError> {
        let end = head_end(buf).ok_or(ParseError::Incomplete)?;
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::Encoding)?;
        let (first, raw) = unfold(head)?;
        let start = parse_start(first)?;
        let mut headers = Headers::default();
        headers.0.reserve(raw.len() + 2);
        for line in &raw {
            if has_control(line) {
                return Err(ParseError::HeaderLine(escape_str(line, 120)));
            }
            let (name, v) = split_line(line)?;
            match splits(&name) {
                Some(list) if v != "*" => {
                    let parts = split_commas(v)
                        .ok_or_else(|| ParseError::Header(list, "an empty element".into()))?;
                    for part in parts {
                        headers.0.push((name.clone(), part.to_string()));
                    }
                }
                _ => headers.0.push((name, v.to_string())),
            }
        }
        let mut seen = [false; SINGLE.len()];
        for (n, _) in &headers.0 {
            if let Some(i) = SINGLE.iter().position(|s| s == n) {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(ParseError::Duplicate(SINGLE[i]));
                }
            }
        }
        let rest = &buf[end..];
        let body = match content_length(headers.get_all("Content-Length"))? {
            Some(n) => {
                if n > rest.len() {
                    return Err(ParseError::Length(format!(
                        "{n} announced, {} present",
                        rest.len()
                    )));
                }
                rest[..n].to_vec()
            }
            None => rest.to_vec(),
        };
        let m = Message {
            start,
            headers,
            body,
        };
        m.validate()?;
        Ok(m)
    }

    /// The checks every message must pass before a transaction sees it.
    fn validate(&self) -> Result<(), ParseError> {
        use crate::sip::headers::{NameAddr, Via};
        let h = &self.headers;
        let bad = |n: &'static str, v: &str| ParseError::Header(n, escape_str(v, 120));
        let mut vias = h.get_all("Via").peekable();
        if vias.peek().is_none() {
            return Err(ParseError::Missing("Via"));
        }
        for via in vias {
            Via::parse(via).ok_or_else(|| bad("Via", via))?;
        }
        for n in ["From", "To"] {
            let n = if n == "From" { "From" } else { "To" };
            let v = h.get(n).ok_or(ParseError::Missing(n))?;
            NameAddr::parse(v).ok_or_else(|| bad(n, v))?;
        }
        let call_id = h.get("Call-ID").ok_or(ParseError::Missing("Call-ID"))?;
        if !is_call_id(call_id) {
            return Err(bad("Call-ID", call_id));
        }
        let cseq = h.get("CSeq").ok_or(ParseError::Missing("CSeq"))?;
        let (_, cmethod) = parse_cseq(cseq).ok_or_else(|| bad("CSeq", cseq))?;
        for c in h.get_all("Contact") {
            if c != "*" && NameAddr::parse(c).is_none() {
                return Err(bad("Contact", c));
            }
        }
        // route-param / rec-route: a name-addr (in angle brackets).
        for n in ["Route", "Record-Route"] {
            let n = if n == "Route" {
                "Route"
            } else {
                "Record-Route"
            };
            for r in h.get_all(n) {
                if !r.contains('<') || NameAddr::parse(r).is_none() {
                    return Err(bad(n, r));
                }
            }
        }
        if let StartLine::Request { method, .. } = &self.start {
            if cmethod != method && !(method == "ACK" && cmethod == "INVITE") {
                return Err(ParseError::Header(
                    "CSeq",
                    format!(
                        "method {} does not match the request's {}",
                        escape_str(cmethod, 40),
                        escape_str(method, 40)
                    ),
                ));
            }
            if let Some(mf) = h.get("Max-Forwards") {
                if !digits(mf) || mf.parse::<u8>().is_err() {
                    return Err(bad("Max-Forwards", mf));
                }
            }
        }
        Ok(())
    }

    /// The request method, or the CSeq method of a response.
    pub fn method(&self) -> &str {
        match &self.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => self.cseq().map(|c| c.1).unwrap_or(""),
        }
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The Request-URI.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// `(number, method)` of CSeq.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        parse_cseq(self.headers.get("CSeq")?)
    }

    /// Call-ID.
    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or("")
    }

    /// A new request.
    pub fn request(method: &str, uri: &str) -> Message {
        Message {
            start: StartLine::Request {
                method: method.into(),
                uri: uri.into(),
            },
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// A response to `req` (§8.2.6): Via, From, To, Call-ID and CSeq copied;
    /// `to_tag` added to To when it has none.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Headers::default();
        let mut seen = [false; 3];
        for (n, v) in &req.headers.0 {
            let once = match n.as_str() {
                "From" => Some(0),
                "Call-ID" => Some(1),
                "CSeq" => Some(2),
                _ => None,
            };
            if let Some(i) = once {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
            }
            match n.as_str() {
                "Via" | "From" | "Call-ID" | "CSeq" => headers.0.push((n.clone(), v.clone())),
                "Record-Route" if (101..300).contains(&code) => {
                    headers.0.push((n.clone(), v.clone()))
                }
                "To" if headers.get("To").is_none() => {
                    let mut to = v.clone();
                    if let Some(tag) = to_tag {
                        if crate::sip::headers::param(v, "tag").is_none() && code != 100 {
                            to.push_str(";tag=");
                            to.push_str(tag);
                        }
                    }
                    headers.0.push((n.clone(), to));
                }
                _ => {}
            }
        }
        Message {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers,
            body: Vec::new(),
        }
    }

    /// Sets the body and its Content-Type (Content-Length is written by
    /// [`Message::to_bytes`]).
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        self.headers.set("Content-Type", content_type);
        self.body = body;
    }

    /// The wire form, with Content-Length last among the headers.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(method);
                out.push(' ');
                out.push_str(uri);
                out.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.push_str("SIP/2.0 ");
                out.push_str(&code.to_string());
                out.push(' ');
                out.push_str(reason);
                out.push_str("\r\n");
            }
        }
        for (n, v) in &self.headers.0 {
            if n == "Content-Length" {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("Content-Length: ");
        out.push_str(&self.body.len().to_string());
        out.push_str("\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The answer to a request that failed to parse: `code reason` with its
/// Vias, and From, To, Call-ID and CSeq when it has them (the first of
/// each), as §8.2 and sofia-sip answer. `None` for a response, for an ACK
/// (never answered) and for a request without a Via to address it by.
pub fn error_response(buf: &[u8], code: u16, reason: &str) -> Option<Message> {
    let end = head_end(buf).unwrap_or(buf.len()).min(MAX_MESSAGE);
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let (first, lines) = unfold(head).ok()?;
    let method = first.split(' ').next()?;
    let version = first.trim_end().rsplit(' ').next()?;
    if !is_token(method) || method == "ACK" || !is_version(version) {
        return None;
    }
    let mut r = Message {
        start: StartLine::Response {
            code,
            reason: escape_str(reason, 120),
        },
        headers: Headers::default(),
        body: Vec::new(),
    };
    let mut vias = 0;
    for line in &lines {
        let Ok((name, v)) = split_line(line) else {
            continue;
        };
        if has_control(v) {
            continue;
        }
        match name.as_str() {
            "Via" => {
                // Every Via is copied into the answer: each must be sound.
                for via in split_commas(v)? {
                    crate::sip::headers::Via::parse_any_version(via)?;
                    vias += 1;
                }
                r.headers.0.push((name, v.to_string()));
            }
            "From" | "To" | "Call-ID" | "CSeq" if r.headers.get(&name).is_none() => {
                r.headers.0.push((name, v.to_string()));
            }
            _ => {}
        }
    }
    (vias > 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:9196@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice, A.\" <sip:alice@10.0.0.1>;tag=a1\r\n\
To: <sip:9196@127.0.0.1>\r\n\
Call-ID: abc@10.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5061>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn a_request_parses_into_start_line_headers_and_body() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), "INVITE");
        assert_eq!(m.uri(), Some("sip:9196@127.0.0.1"));
        assert_eq!(m.call_id(), "abc@10.0.0.1");
        assert_eq!(m.cseq(), Some((1, "INVITE")));
        assert_eq!(
            m.headers.get("from"),
            Some("\"Alice, A.\" <sip:alice@10.0.0.1>;tag=a1")
        );
        assert_eq!(m.body, b"v=0\n");
    }

    #[test]
    fn compact_names_folded_lines_and_bare_lf_are_accepted() {
        let text = "OPTIONS sip:x@h SIP/2.0\n\
v: SIP/2.0/UDP h;branch=z9hG4bK2\n\
f: <sip:a@h>;tag=1\n\
t: <sip:x@h>\n\
i: c1\n\
CSeq: 7\n OPTIONS\n\
l: 0\n\n";
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.cseq(), Some((7, "OPTIONS")));
        assert_eq!(m.headers.get("Call-ID"), Some("c1"));
    }

    #[test]
    fn a_via_line_with_two_values_becomes_two_entries() {
        let text = INVITE.replace(
            "Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport\r\n",
            "Via: SIP/2.0/UDP p1;branch=z9hG4bKa, SIP/2.0/UDP p2;branch=z9hG4bKb\r\n",
        );
        let m = Message::parse(text.as_bytes()).unwrap();
        let vias: Vec<_> = m.headers.get_all("Via").collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP p1;branch=z9hG4bKa",
                "SIP/2.0/UDP p2;branch=z9hG4bKb"
            ]
        );
    }

    #[test]
    fn broken_messages_say_what_is_wrong() {
        let cases = [
            ("GARBAGE\r\n\r\n", "start line"),
            (
                &INVITE.replace("CSeq: 1 INVITE", "CSeq: one INVITE"),
                "CSeq",
            ),
            (
                &INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"),
                "does not match",
            ),
            (&INVITE.replace("Call-ID: abc@10.0.0.1\r\n", ""), "Call-ID"),
            (
                &INVITE.replace("Content-Length: 4", "Content-Length: 400"),
                "Content-Length",
            ),
            (
                &INVITE.replace("Max-Forwards: 70", "Max-Forwards: lots"),
                "Max-Forwards",
            ),
            (
                &INVITE.replace("To: <sip:9196@127.0.0.1>", "To: <sip:9196@127.0.0.1"),
                "To",
            ),
            (&INVITE.replace("Via: SIP/2.0/UDP", "Via: HTTP/1.1"), "Via"),
            (
                &INVITE.replace("Max-Forwards", "Max Forwards"),
                "header line",
            ),
        ];
        for (text, needle) in cases {
            let e = Message::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} should mention {needle}");
        }
    }

    #[test]
    fn written_messages_parse_back_to_themselves() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let again = Message::parse(&m.to_bytes()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn a_response_copies_the_dialog_headers_and_adds_the_to_tag() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let r = Message::response_to(&req, 180, "Ringing", Some("t9"));
        assert_eq!(r.code(), Some(180));
        assert_eq!(r.headers.get("To"), Some("<sip:9196@127.0.0.1>;tag=t9"));
        assert_eq!(r.method(), "INVITE");
        let trying = Message::response_to(&req, 100, "Trying", Some("t9"));
        assert_eq!(trying.headers.get("To"), Some("<sip:9196@127.0.0.1>"));
    }

    #[test]
    fn stream_framing_waits_for_the_body_and_skips_keepalives() {
        let bytes = INVITE.as_bytes();
        assert_eq!(frame(&bytes[..40]).unwrap(), None);
        assert_eq!(frame(&bytes[..bytes.len() - 1]).unwrap(), None);
        assert_eq!(frame(bytes).unwrap(), Some(bytes.len()));
        assert_eq!(frame(b"\r\n\r\nINV").unwrap(), Some(4));
        let no_len = INVITE.replace("Content-Length: 4\r\n", "");
        assert!(frame(no_len.as_bytes()).is_err());
        // Found by the fuzzer: a length that overflows is refused, not added.
        let huge = INVITE.replace("Content-Length: 4", "Content-Length: 18446744073709551615");
        assert!(matches!(
            frame(huge.as_bytes()),
            Err(ParseError::TooLarge(_))
        ));
    }
}

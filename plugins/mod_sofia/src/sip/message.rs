//! SIP messages (RFC 3261 §7, §20, §25): parsing, framing on streams, and
//! writing.
//!
//! Sans-IO and strict where the grammar matters for routing (start line,
//! the headers every transaction needs, Content-Length), lenient where
//! deployed peers differ (case of names, compact forms, folded lines,
//! whitespace around colons, a bare LF instead of CRLF). A message that
//! fails gets a [`ParseError`] saying why; the caller answers 400 when the
//! message carries enough to address a reply.
//!
//! Headers are kept in arrival order with their names canonicalised
//! (compact forms expanded); comma-separated values of Via, Route,
//! Record-Route and Contact are split into one entry each, so the top Via
//! is always `headers.get("Via")`.

use std::fmt;

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
        let name = canonical(name);
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical(name);
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
        let name = canonical(name);
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    }

    /// Inserts a header before all others.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(0, (canonical(name), value.into()));
    }
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not even a start line.
    StartLine(String),
    /// A header line without a colon, or with a bad name.
    HeaderLine(String),
    /// A header the message cannot be handled without, or its value broken.
    Header(&'static str, String),
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
            ParseError::StartLine(l) => write!(f, "bad start line {l:?}"),
            ParseError::HeaderLine(l) => write!(f, "bad header line {l:?}"),
            ParseError::Header(n, why) => write!(f, "bad {n} header: {why}"),
            ParseError::Length(why) => write!(f, "bad Content-Length: {why}"),
            ParseError::TooLarge(n) => write!(f, "message of {n} bytes is too large"),
            ParseError::Encoding => write!(f, "message head is not UTF-8"),
            ParseError::Incomplete => write!(f, "message is incomplete"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The long name of a header given in any case or compact form, in the
/// capitalisation RFC 3261 uses.
pub fn canonical(name: &str) -> String {
    let long = match name.len() {
        1 => match name.as_bytes()[0].to_ascii_lowercase() {
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
            _ => return name.to_string(),
        },
        _ => KNOWN
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .copied()
            .unwrap_or(name),
    };
    long.to_string()
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

/// Headers whose comma-separated values are separate entries.
fn splits(name: &str) -> bool {
    matches!(name, "Via" | "Route" | "Record-Route" | "Contact" | "Path")
}

/// Where the head ends: the index of the body's first byte.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// For streams (TCP): the length of the first whole message in `buf`,
/// `Ok(None)` when more bytes are needed. Leading CRLFs (keep-alives) count
/// as a message of their own length.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let ws = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if ws > 0 {
        return Ok(Some(ws));
    }
    let Some(end) = head_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge(buf.len()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::Encoding)?;
    let mut length = None;
    for line in head.lines() {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") {
                length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| ParseError::Length(v.trim().to_string()))?,
                );
            }
        }
    }
    // RFC 3261 §18.3: on a stream, Content-Length is mandatory.
    let length = length.ok_or_else(|| ParseError::Length("missing on a stream".into()))?;
    let total = end.saturating_add(length);
    if total > MAX_MESSAGE {
        return Err(ParseError::TooLarge(total));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Splits `v` at commas outside double quotes and angle brackets.
fn split_commas(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c))
}

impl Message {
    /// Parses one whole message (a datagram, or a frame cut by [`frame`]).
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge(buf.len()));
        }
        let end = head_end(buf).ok_or(ParseError::Incomplete)?;
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::Encoding)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let start = parse_start(first)?;
        let mut raw: Vec<String> = Vec::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A folded line continues the previous header (§7.3.1).
                let Some(prev) = raw.last_mut() else {
                    return Err(ParseError::HeaderLine(line.into()));
                };
                prev.push(' ');
                prev.push_str(line.trim());
                continue;
            }
            raw.push(line.to_string());
        }
        let mut headers = Headers::default();
        for line in &raw {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| ParseError::HeaderLine(line.clone()))?;
            let n = n.trim();
            if !is_token(n) {
                return Err(ParseError::HeaderLine(line.clone()));
            }
            let name = canonical(n);
            let v = v.trim();
            if splits(&name) && v != "*" {
                for part in split_commas(v) {
                    headers.0.push((name.clone(), part.to_string()));
                }
            } else {
                headers.0.push((name, v.to_string()));
            }
        }
        let rest = &buf[end..];
        let body = match headers.get("Content-Length") {
            Some(l) => {
                let n: usize = l.parse().map_err(|_| ParseError::Length(l.to_string()))?;
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
        let h = &self.headers;
        let via = h
            .get("Via")
            .ok_or(ParseError::Header("Via", "missing".into()))?;
        crate::sip::headers::Via::parse(via)
            .ok_or_else(|| ParseError::Header("Via", via.to_string()))?;
        for n in ["From", "To"] {
            let v = h.get(n).ok_or(ParseError::Header(
                if n == "From" { "From" } else { "To" },
                "missing".into(),
            ))?;
            crate::sip::headers::NameAddr::parse(v).ok_or_else(|| {
                ParseError::Header(if n == "From" { "From" } else { "To" }, v.to_string())
            })?;
        }
        match h.get("Call-ID") {
            Some(c) if !c.is_empty() && !c.contains(char::is_whitespace) => {}
            other => {
                return Err(ParseError::Header(
                    "Call-ID",
                    other.unwrap_or("missing").to_string(),
                ))
            }
        }
        let cseq = h
            .get("CSeq")
            .ok_or(ParseError::Header("CSeq", "missing".into()))?;
        let (_, cmethod) = parse_cseq(cseq).ok_or(ParseError::Header("CSeq", cseq.into()))?;
        if let StartLine::Request { method, .. } = &self.start {
            if cmethod != method && !(method == "ACK" && cmethod == "INVITE") {
                return Err(ParseError::Header(
                    "CSeq",
                    format!("method {cmethod} does not match the request's {method}"),
                ));
            }
            if let Some(mf) = h.get("Max-Forwards") {
                if mf.parse::<u8>().is_err() {
                    return Err(ParseError::Header("Max-Forwards", mf.into()));
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
        for (n, v) in &req.headers.0 {
            match n.as_str() {
                "Via" | "From" | "Call-ID" | "CSeq" => headers.0.push((n.clone(), v.clone())),
                "Record-Route" if (101..300).contains(&code) => {
                    headers.0.push((n.clone(), v.clone()))
                }
                "To" => {
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

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(line.chars().take(120).collect());
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..700).contains(&code) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !is_token(method) || !version.eq_ignore_ascii_case("SIP/2.0") || !uri.contains(':') {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

fn parse_cseq(v: &str) -> Option<(u32, &str)> {
    let mut it = v.split_whitespace();
    let n = it.next()?.parse::<u32>().ok()?;
    let m = it.next()?;
    (it.next().is_none() && is_token(m)).then_some((n, m))
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

//! The lexical layer of a SIP message (RFC 3261 §7, §25): where the head
//! ends, lines unfolded, header lines split at HCOLON, comma lists split
//! outside quotes and brackets, the start line and CSeq read, and
//! Content-Length read by one function for datagrams and for stream
//! framing alike. [`super::message`] builds messages from these pieces.

use super::headers::{is_scheme, is_token};
use super::message::{canonical, ParseError, StartLine, MAX_MESSAGE};
use super::text::escape_str;

/// Where the head ends: the index of the body's first byte.
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
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

/// The start line and the header lines of a head, folded lines (§7.3.1)
/// joined to the line they continue with one space.
pub(super) fn unfold(head: &str) -> Result<(&str, Vec<String>), ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let mut raw: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(prev) = raw.last_mut() else {
                return Err(ParseError::HeaderLine(escape_str(line, 120)));
            };
            prev.push(' ');
            prev.push_str(line.trim_matches([' ', '\t']));
            continue;
        }
        raw.push(line.to_string());
    }
    Ok((first, raw))
}

/// Splits a header line into its canonical name and its value (HCOLON:
/// white space before and after the colon).
pub(super) fn split_line(line: &str) -> Result<(String, &str), ParseError> {
    let bad = || ParseError::HeaderLine(escape_str(line, 120));
    let (n, v) = line.split_once(':').ok_or_else(bad)?;
    let n = n.trim_end_matches([' ', '\t']);
    if !is_token(n) {
        return Err(bad());
    }
    Ok((canonical(n), v.trim_matches([' ', '\t'])))
}

/// `1*DIGIT`.
pub(super) fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Content-Length from its values, for datagrams and streams alike (the
/// one reader of it): `Ok(None)` when absent; digits only; instances that
/// disagree are refused (one that repeats the same value frames a stream,
/// and [`Message::parse`] then refuses it, so the request gets its 400).
pub(super) fn content_length<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for v in values {
        let v = v.trim_matches([' ', '\t']);
        if !digits(v) {
            return Err(ParseError::Length(escape_str(v, 40)));
        }
        // Digits past usize are as good as infinite: too large.
        let n = v.parse::<usize>().unwrap_or(usize::MAX);
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::Length("two different values".into()));
        }
        found = Some(n);
    }
    Ok(found)
}

/// The Content-Length values of a head, folded ones joined, without
/// splitting the other headers (framing runs on every stream message).
pub(super) fn content_length_values(head: &str) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let mut continues = false;
    for line in head.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let (true, Some(v)) = (continues, values.last_mut()) {
                v.push(' ');
                v.push_str(line.trim_matches([' ', '\t']));
            }
            continue;
        }
        continues = false;
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim_end_matches([' ', '\t']);
        if n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l") {
            continues = true;
            values.push(v.to_string());
        }
    }
    values
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
    let values = content_length_values(head);
    // RFC 3261 §18.3: on a stream, Content-Length is mandatory.
    let length = content_length(values.iter().map(String::as_str))?
        .ok_or_else(|| ParseError::Length("missing on a stream".into()))?;
    let total = end.saturating_add(length);
    if total > MAX_MESSAGE {
        return Err(ParseError::TooLarge(total));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Splits `v` at commas outside double quotes and angle brackets; `None`
/// when an element is empty (`a,,b`, a trailing comma).
pub(super) fn split_commas(v: &str) -> Option<Vec<&str>> {
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
                out.push(v[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(v[start..].trim_matches([' ', '\t']));
    (!out.iter().any(|s| s.is_empty())).then_some(out)
}

/// A control character other than HTAB (§25: not in any header value).
pub(super) fn has_control(s: &str) -> bool {
    s.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f)
}

/// `"SIP/" 1*DIGIT "." 1*DIGIT`, "SIP" in any case.
pub(super) fn is_version(v: &str) -> bool {
    v.len() > 4
        && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..]
            .split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
}

/// Call-ID = word [ "@" word ].
pub(super) fn is_call_id(s: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&c))
    };
    match s.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(s),
    }
}

pub(super) fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(escape_str(line, 120));
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = line.split_once(' ').ok_or_else(bad)?;
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(if is_version(version) {
                ParseError::Version(escape_str(version, 40))
            } else {
                bad()
            });
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !digits(code) {
            return Err(bad());
        }
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..700).contains(&code) || has_control(reason) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: single spaces,
    // nothing after the version.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let uri_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        is_scheme(scheme)
            && !rest.is_empty()
            && !has_control(rest)
            && !rest.bytes().any(|c| b"<>\" \t".contains(&c))
    });
    if !is_token(method) || !uri_ok {
        return Err(bad());
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if is_version(version) {
            ParseError::Version(escape_str(version, 40))
        } else {
            bad()
        });
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// CSeq = 1*DIGIT LWS Method, the number under 2**31 (§8.1.1.5).
pub(super) fn parse_cseq(v: &str) -> Option<(u32, &str)> {
    let mut it = v.split([' ', '\t']).filter(|s| !s.is_empty());
    let n = it.next()?;
    if !digits(n) {
        return None;
    }
    let n = n.parse::<u32>().ok().filter(|n| *n < 1 << 31)?;
    let m = it.next()?;
    (it.next().is_none() && is_token(m)).then_some((n, m))
}

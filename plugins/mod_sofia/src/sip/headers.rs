//! The structured headers the stack reads, by RFC 3261's grammar (§25):
//! SIP URIs (userinfo holding `;`, `?` and `%HH` escapes, parameters,
//! headers), name-addr and addr-spec (From, To, Contact: quoted or token
//! display names, any URI scheme), Via (a sent-protocol with linear white
//! space around its slashes), the `;name=value` lists they share — an
//! empty parameter is refused — and the `key=value` lists of digest
//! challenges.
//!
//! Values arrive unfolded (the message layer turns folding into a space),
//! so linear white space here is spaces and tabs.

use std::fmt;

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// A `token` character (RFC 3261 §25.1).
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// A non-empty `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c)
}

/// Every byte is allowed by `ok` or starts a `%HH` escape.
fn escaped_chars(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return false;
        }
        if !ok(b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

fn user_char(c: u8) -> bool {
    unreserved(c) || b"&=+$,;?/".contains(&c)
}

fn password_char(c: u8) -> bool {
    unreserved(c) || b"&=+$,".contains(&c)
}

fn param_char(c: u8) -> bool {
    unreserved(c) || b"[]/:&+$".contains(&c)
}

fn header_char(c: u8) -> bool {
    unreserved(c) || b"[]/?:+$".contains(&c)
}

/// `;name[=value]` parameter `name` of a header value: outside `<…>` and
/// quoted strings (a `+sip.instance="<urn:…>"` does not hide the rest).
/// The value as written (quotes kept), `""` for a bare name.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let b = value.as_bytes();
    let (mut quoted, mut angle) = (false, false);
    let mut segment: Option<usize> = None;
    let matches = |seg: &'a str| {
        let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b';' if !quoted && !angle => {
                if let Some(found) = segment.and_then(|s| matches(&value[s..i])) {
                    return Some(found);
                }
                segment = Some(i + 1);
            }
            _ => {}
        }
        i += 1;
    }
    segment.and_then(|s| matches(&value[s..]))
}

/// The quoted-string opening at `s[start]`: its text with quoted-pairs
/// undone, and the index after the closing quote.
fn quoted(s: &str, start: usize) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut i = start + 1;
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => return Some((String::from_utf8(out).ok()?, i + 1)),
            b'\\' => {
                let c = *b.get(i + 1)?;
                if c == b'\r' || c == b'\n' || c > 0x7f {
                    return None;
                }
                out.push(c);
                i += 2;
            }
            c if (c < 0x20 && c != b'\t') || c == 0x7f => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// `*( SEMI generic-param )`, as after a Via's sent-by or a name-addr:
/// `(name, value)` in order, quoted values unquoted. `None` when a
/// parameter is empty, a name is not a token, a value is empty or not a
/// token, host or quoted-string, or anything else follows.
pub fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    let mut out = Vec::new();
    while i < b.len() {
        if b[i] != b';' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let ks = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == ks {
            return None;
        }
        let key = &s[ks..i];
        i = skip_ws(b, i);
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i = skip_ws(b, i + 1);
            if i < b.len() && b[i] == b'"' {
                let (v, next) = quoted(s, i)?;
                value = Some(v);
                i = next;
            } else {
                let vs = i;
                while i < b.len() && (is_token_char(b[i]) || b":[]".contains(&b[i])) {
                    i += 1;
                }
                if i == vs {
                    return None;
                }
                value = Some(s[vs..i].to_string());
            }
            i = skip_ws(b, i);
        }
        out.push((key.to_string(), value));
    }
    Some(out)
}

/// A URI: `sip:`/`sips:` parsed into its parts, any other scheme kept
/// whole in `opaque` (From, To and Contact may carry one).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Uri {
    pub scheme: String,
    /// The user part as sent (escapes kept).
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `;name[=value]` in order.
    pub params: Vec<(String, Option<String>)>,
    /// `?headers`, raw.
    pub headers: Option<String>,
    /// What follows the colon of a URI that is not SIP.
    pub opaque: Option<String>,
}

impl Uri {
    /// Parses a SIP or SIPS URI; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Uri> {
        let s = trim_ws(s);
        let (scheme, rest) = s.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        // userinfo may hold ';' and '?' but never '@': the first '@' ends it.
        let (userinfo, rest) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (rest, None),
        };
        let mut parts = rest.split(';');
        let (host, port) = split_hostport(parts.next()?)?;
        let mut params = Vec::new();
        for p in parts {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            let bad_value = v.is_some_and(|v| v.is_empty() || !escaped_chars(v, param_char));
            if k.is_empty() || !escaped_chars(k, param_char) || bad_value {
                return None;
            }
            params.push((k.to_string(), v.map(str::to_string)));
        }
        if let Some(h) = headers {
            for pair in h.split('&') {
                let (n, v) = pair.split_once('=')?;
                if n.is_empty() || !escaped_chars(n, header_char) || !escaped_chars(v, header_char)
                {
                    return None;
                }
            }
        }
        let (user, password) = match userinfo {
            Some(u) => {
                let (u, p) = match u.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (u, None),
                };
                if u.is_empty() || !escaped_chars(u, user_char) {
                    return None;
                }
                if p.is_some_and(|p| !escaped_chars(p, password_char)) {
                    return None;
                }
                (Some(u.to_string()), p.map(str::to_string))
            }
            None => (None, None),
        };
        Some(Uri {
            scheme: scheme.to_ascii_lowercase(),
            user,
            password,
            host,
            port,
            params,
            headers: headers.map(str::to_string),
            opaque: None,
        })
    }

    /// Any `absoluteURI`: a SIP URI as [`Uri::parse`] reads it (a broken
    /// one stays refused), another scheme kept opaque.
    pub fn parse_any(s: &str) -> Option<Uri> {
        let s = trim_ws(s);
        let (scheme, rest) = s.split_once(':')?;
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return Uri::parse(s);
        }
        if !is_scheme(scheme)
            || rest.is_empty()
            || !escaped_chars(rest, |c| unreserved(c) || b";/?:@&=+$,".contains(&c))
        {
            return None;
        }
        Some(Uri {
            scheme: scheme.to_ascii_lowercase(),
            opaque: Some(rest.to_string()),
            ..Default::default()
        })
    }

    /// A URI parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// `host:port` to send to: 5060 by default, 5061 for `sips:` or
    /// `transport=tls` (RFC 3261 §19.1.2).
    pub fn host_port(&self) -> String {
        let tls = self.scheme.eq_ignore_ascii_case("sips")
            || self
                .param("transport")
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        let default = if tls { 5061 } else { 5060 };
        format!("{}:{}", self.host, self.port.unwrap_or(default))
    }
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
pub fn is_scheme(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(o) = &self.opaque {
            return f.write_str(o);
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// `host[:port]`, IPv6 references in brackets.
pub fn split_hostport(s: &str) -> Option<(String, Option<u16>)> {
    let port = |p: &str| -> Option<u16> {
        if !digits(p) {
            return None;
        }
        p.parse().ok()
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        if h.is_empty()
            || !h
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return None;
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(port(p)?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    let (h, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(port(p)?)),
        None => (s, None),
    };
    if h.is_empty()
        || !h
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
    {
        return None;
    }
    Some((h.to_string(), port))
}

/// A name-addr or addr-spec with parameters (From, To, Contact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display: Option<String>,
    pub uri: Uri,
    /// The raw URI text.
    pub uri_text: String,
    /// Header parameters (`tag`, `expires`, …), quoted values unquoted.
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    /// Parses `"Name" <uri>;tag=x`, `Name Words <uri>`, `<uri>` or
    /// `uri;tag=x` (where header parameters follow the first `;`).
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = trim_ws(s);
        let (display, uri_text, rest) = if s.starts_with('"') {
            let (d, next) = quoted(s, 0)?;
            let inner = s[next..]
                .trim_start_matches([' ', '\t'])
                .strip_prefix('<')?;
            let gt = inner.find('>')?;
            (Some(d), &inner[..gt], &inner[gt + 1..])
        } else if let Some(lt) = s.find('<') {
            // display-name = *(token LWS)
            let d = trim_ws(&s[..lt]);
            if !d.split([' ', '\t']).filter(|t| !t.is_empty()).all(is_token) {
                return None;
            }
            let inner = &s[lt + 1..];
            let gt = inner.find('>')?;
            (
                (!d.is_empty()).then(|| d.to_string()),
                &inner[..gt],
                &inner[gt + 1..],
            )
        } else {
            match s.find(';') {
                Some(i) => (None, trim_ws(&s[..i]), &s[i..]),
                None => (None, s, ""),
            }
        };
        if uri_text.bytes().any(|c| is_ws(c) || c == b'<' || c == b'"') {
            return None;
        }
        let uri = Uri::parse_any(uri_text)?;
        let params = parse_params(rest)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        Some(NameAddr {
            display: display.filter(|d| !d.is_empty()),
            uri,
            uri_text: uri_text.to_string(),
            params,
        })
    }

    /// A header parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }
}

/// A Via header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, …
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `Some(None)`: `rport` without a value (fill it in).
    pub rport: Option<Option<u16>>,
}

impl Via {
    /// Parses `SIP / 2.0 / UDP host : port ;branch=…` (white space where
    /// the grammar allows it); only version 2.0.
    pub fn parse(s: &str) -> Option<Via> {
        Via::parse_with(s, true)
    }

    /// As [`Via::parse`], any protocol version: enough to address a 505.
    pub fn parse_any_version(s: &str) -> Option<Via> {
        Via::parse_with(s, false)
    }

    fn parse_with(s: &str, only_2_0: bool) -> Option<Via> {
        let s = trim_ws(s);
        let b = s.as_bytes();
        let mut i = 0;
        let mut proto = [""; 3];
        for (n, field) in proto.iter_mut().enumerate() {
            if n > 0 {
                i = skip_ws(b, i);
                if b.get(i) != Some(&b'/') {
                    return None;
                }
                i = skip_ws(b, i + 1);
            }
            let start = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == start {
                return None;
            }
            *field = &s[start..i];
        }
        let [name, version, transport] = proto;
        if !name.eq_ignore_ascii_case("SIP") || (only_2_0 && version != "2.0") {
            return None;
        }
        if !b.get(i).copied().is_some_and(is_ws) {
            return None;
        }
        i = skip_ws(b, i);
        // sent-by = host [ COLON port ], COLON with white space around it.
        let start = i;
        if b.get(i) == Some(&b'[') {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"._-".contains(&b[i])) {
                i += 1;
            }
        }
        let host = s.get(start..i)?;
        let mut sent_by = host.to_string();
        let j = skip_ws(b, i);
        if b.get(j) == Some(&b':') {
            let k = skip_ws(b, j + 1);
            let mut e = k;
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            sent_by.push(':');
            sent_by.push_str(&s[k..e]);
            i = e;
        }
        let (host, port) = split_hostport(&sent_by)?;
        let mut via = Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: None,
            received: None,
            rport: None,
        };
        for (k, v) in parse_params(&s[i..])? {
            match (k.to_ascii_lowercase().as_str(), v) {
                ("branch", Some(v)) if is_token(&v) => via.branch = Some(v),
                ("received", Some(v)) => {
                    let bare = v.trim_start_matches('[').trim_end_matches(']');
                    bare.parse::<std::net::IpAddr>().ok()?;
                    via.received = Some(v);
                }
                ("rport", None) => via.rport = Some(None),
                ("rport", Some(v)) if digits(&v) => via.rport = Some(Some(v.parse().ok()?)),
                ("ttl", Some(v)) if digits(&v) && v.parse::<u8>().is_ok() => {}
                ("maddr", Some(v)) if split_hostport(&v).is_some_and(|h| h.1.is_none()) => {}
                ("branch" | "received" | "rport" | "ttl" | "maddr", _) => return None,
                _ => {}
            }
        }
        Some(via)
    }
}

/// `Digest k=v, k="v"` → the scheme and pairs (values unquoted).
pub fn auth_params(s: &str) -> Option<(String, Vec<(String, String)>)> {
    let s = s.trim();
    let (scheme, rest) = s.split_once(|c: char| c.is_whitespace())?;
    let mut out = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            if !key.is_empty() {
                out.push((key, String::new()));
            }
            continue;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                v.push(b[i] as char);
                i += 1;
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            rest[vs..i].trim().to_string()
        };
        if key.is_empty() {
            return None;
        }
        out.push((key, value));
    }
    Some((scheme.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_keep_user_host_port_and_parameters() {
        let u = Uri::parse("sip:1000@127.0.0.1:5080;transport=tcp;lr").unwrap();
        assert_eq!(u.user.as_deref(), Some("1000"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(5080));
        assert_eq!(u.param("transport"), Some("tcp"));
        assert_eq!(u.param("lr"), Some(""));
        assert_eq!(u.to_string(), "sip:1000@127.0.0.1:5080;transport=tcp;lr");
        assert_eq!(Uri::parse("sip:[::1]:5060").unwrap().host, "[::1]");
        assert!(Uri::parse("http://x").is_none());
        assert!(Uri::parse("sip:@host").is_none());
        assert!(Uri::parse("sip:a@ho st").is_none());
    }

    #[test]
    fn name_addrs_with_and_without_brackets() {
        let n = NameAddr::parse("\"Alice\" <sip:alice@h;transport=udp>;tag=abc").unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice"));
        assert_eq!(n.uri.param("transport"), Some("udp"));
        assert_eq!(n.tag(), Some("abc"));
        let bare = NameAddr::parse("sip:bob@h;tag=9").unwrap();
        assert_eq!(bare.uri.user.as_deref(), Some("bob"));
        assert_eq!(bare.tag(), Some("9"));
        assert!(NameAddr::parse("<sip:bob@h").is_none());
    }

    #[test]
    fn vias_give_branch_received_and_rport() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK77;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.branch.as_deref(), Some("z9hG4bK77"));
        assert_eq!(v.rport, Some(None));
        assert!(Via::parse("SIP/2.0 host").is_none());
    }

    #[test]
    fn digest_parameters_are_unquoted() {
        let (s, p) = auth_params(
            "Digest username=\"1000\", realm=\"127.0.0.1\", nonce=\"n,1\", uri=\"sip:x\", qop=auth, nc=00000001",
        )
        .unwrap();
        assert_eq!(s, "Digest");
        assert_eq!(p[0], ("username".into(), "1000".into()));
        assert_eq!(p[2], ("nonce".into(), "n,1".into()));
        assert_eq!(p[4], ("qop".into(), "auth".into()));
        assert_eq!(p[5], ("nc".into(), "00000001".into()));
    }

    #[test]
    fn params_after_the_uri_are_found() {
        assert_eq!(param("<sip:a@h;tag=no>;tag=yes", "tag"), Some("yes"));
        assert_eq!(param("sip:a@h;expires=60", "expires"), Some("60"));
        let instance = "<sip:a@h>;+sip.instance=\"<urn:uuid:1>\";expires = 30;reg-id=1";
        assert_eq!(param(instance, "expires"), Some("30"));
        assert_eq!(param(instance, "reg-id"), Some("1"));
        assert_eq!(param("\"a;tag=x\" <sip:a@h>", "tag"), None);
        assert_eq!(param("<sip:a@h>;lr", "lr"), Some(""));
    }
}

//! The structured headers the stack reads: SIP URIs, name-addr (From, To,
//! Contact), Via, and the `key=value` lists of digest challenges.

use std::fmt;

/// `;name[=value]` parameter `name` of a header value (outside `<…>`).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// A `sip:`/`sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `;name[=value]` in order.
    pub params: Vec<(String, Option<String>)>,
    /// `?headers`, raw.
    pub headers: Option<String>,
}

impl Uri {
    /// Parses a SIP URI; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Uri> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h.to_string())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let mut parts = hostpart.split(';');
        let hostport = parts.next()?;
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (p.to_string(), None),
            })
            .collect();
        let (host, port) = split_hostport(hostport)?;
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        if user.as_deref() == Some("") {
            return None;
        }
        Some(Uri {
            scheme: scheme.to_ascii_lowercase(),
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// `host:port` to send to (5060 by default).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5060))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
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

/// `host[:port]`, IPv6 references in brackets.
pub fn split_hostport(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    let (h, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
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
    pub display: Option<String>,
    pub uri: Uri,
    /// The raw URI text.
    pub uri_text: String,
    /// Header parameters (`tag`, `expires`, …).
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    /// Parses `"Name" <sip:…>;tag=x`, `Name <sip:…>` or `sip:…;tag=x`.
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        let (display, uri_text, rest) = if let Some(lt) = s.find('<') {
            let gt = s[lt..].find('>')? + lt;
            let d = s[..lt].trim().trim_matches('"').trim();
            (
                (!d.is_empty()).then(|| d.to_string()),
                &s[lt + 1..gt],
                &s[gt + 1..],
            )
        } else {
            // addr-spec: header parameters follow the first ';'.
            match s.find(';') {
                Some(i) => (None, &s[..i], &s[i..]),
                None => (None, s, ""),
            }
        };
        let uri = Uri::parse(uri_text)?;
        let params = rest
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.trim().to_string(), v.trim().trim_matches('"').to_string())
            })
            .collect();
        Some(NameAddr {
            display,
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
    /// Parses `SIP/2.0/UDP host:port;branch=…`.
    pub fn parse(s: &str) -> Option<Via> {
        let s = s.trim();
        let (proto, rest) = s.split_once(|c: char| c.is_whitespace())?;
        let mut p = proto.split('/');
        let (Some(name), Some(ver), Some(transport), None) =
            (p.next(), p.next(), p.next(), p.next())
        else {
            return None;
        };
        if !name.eq_ignore_ascii_case("SIP") || ver != "2.0" || transport.is_empty() {
            return None;
        }
        let rest = rest.trim();
        let mut parts = rest.split(';');
        let (host, port) = split_hostport(parts.next()?.trim())?;
        let mut via = Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: None,
            received: None,
            rport: None,
        };
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "branch" => via.branch = Some(v.trim().to_string()),
                "received" => via.received = Some(v.trim().to_string()),
                "rport" => via.rport = Some(v.trim().parse().ok()),
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
    }
}

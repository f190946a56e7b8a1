//! FreeSWITCH's wire forms of an event — plain, JSON and XML — shared by
//! the host (which fires events) and any module that sends them on (the
//! event socket), so that both produce the same bytes.
//!
//! ```
//! use hotswitch_plugin_api::wire;
//! let h = [("Event-Name", "API"), ("Job-Command", "show calls")];
//! assert_eq!(wire::to_plain(&h, None), "Event-Name: API\nJob-Command: show%20calls\n\n");
//! assert_eq!(wire::to_json(&h, Some("ok")),
//!     r#"{"Event-Name":"API","Job-Command":"show calls","Content-Length":"2","_body":"ok"}"#);
//! ```

use std::fmt::Write;

/// FreeSWITCH's `switch_url_encode` as used for plain events: control and
/// non-ASCII bytes, space, and `#%&+:;<=>?@[\]^{|}"` and the backtick become
/// `%XX` (upper-case hex); an existing `%HH` is kept as it is.
pub fn url_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    // Runs of bytes that need no escaping are copied whole. A run ends
    // before an ASCII byte or the first byte of a character (every byte of
    // a multi-byte character is escaped), so its bounds are char
    // boundaries.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        let escaped_already = b == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if escaped_already {
            continue;
        }
        if run < i {
            out.push_str(&s[run..i]);
        }
        out.push('%');
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
        run = i + 1;
    }
    if run < bytes.len() {
        out.push_str(&s[run..]);
    }
}

/// Which bytes `url_encode_into` escapes, as a table (a search of the
/// special characters for every byte was most of the cost of an event).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b < 0x20 || b > 0x7e;
        b += 1;
    }
    let special = b"\r\n #%&+:;<=>?@[\\]^`{|}\"";
    let mut i = 0;
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

/// The plain form: `Name: urlenc(value)` lines (an empty value is
/// `_undef_`), then `Content-Length` and the body, or a final blank line.
pub fn to_plain<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)], body: Option<&str>) -> String {
    let mut out = String::with_capacity(64 * headers.len() + 16);
    for (k, v) in headers {
        out.push_str(k.as_ref());
        out.push_str(": ");
        let v = v.as_ref();
        if v.is_empty() {
            out.push_str("_undef_");
        } else {
            url_encode_into(v, &mut out);
        }
        out.push('\n');
    }
    match body {
        Some(b) => {
            let _ = write!(out, "Content-Length: {}\n\n{}", b.len(), b);
        }
        None => out.push('\n'),
    }
    out
}

fn json_str(s: &str, out: &mut String) {
    // serde_json's string escaping, without building a Value tree.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// The JSON form: a flat object of strings in header order; with a body,
/// `Content-Length` and `_body`.
pub fn to_json<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)], body: Option<&str>) -> String {
    let mut out = String::with_capacity(64 * headers.len() + 16);
    out.push('{');
    let len = body.map(|b| b.len().to_string());
    let extra = len
        .as_deref()
        .zip(body)
        .map(|(l, b)| [("Content-Length", l), ("_body", b)]);
    let all = headers
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .chain(extra.into_iter().flatten());
    for (i, (k, v)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(k, &mut out);
        out.push(':');
        json_str(v, &mut out);
    }
    out.push('}');
    out
}

/// The XML form: `<event><headers><Name>urlenc</Name>…</headers>` then,
/// with a body, `<Content-Length>` and `<body>`.
pub fn to_xml<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)], body: Option<&str>) -> String {
    let mut out = String::from("<event>\n  <headers>\n");
    for (k, v) in headers {
        let k = k.as_ref();
        let mut enc = String::new();
        url_encode_into(v.as_ref(), &mut enc);
        let _ = writeln!(out, "    <{k}>{enc}</{k}>");
    }
    out.push_str("  </headers>\n");
    if let Some(b) = body {
        let _ = writeln!(out, "  <Content-Length>{}</Content-Length>", b.len());
        let escaped = b
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let _ = writeln!(out, "  <body>{escaped}</body>");
    }
    out.push_str("</event>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_url_encoded_and_existing_escapes_kept() {
        let mut s = String::new();
        url_encode_into("a b:c%41%zz\n\u{e9}", &mut s);
        assert_eq!(s, "a%20b%3Ac%41%25zz%0A%C3%A9");
    }

    #[test]
    fn runs_between_escapes_are_kept_whole_around_multibyte_characters() {
        let mut s = String::new();
        url_encode_into("\u{e9}t\u{e9} 100%25 ok", &mut s);
        assert_eq!(s, "%C3%A9t%C3%A9%20100%25%20ok");
        s.clear();
        url_encode_into("plain-value_1.2", &mut s);
        assert_eq!(s, "plain-value_1.2");
        s.clear();
        url_encode_into("%4", &mut s);
        assert_eq!(s, "%254");
    }

    #[test]
    fn the_xml_form_encodes_values_and_escapes_the_body() {
        let x = to_xml(&[("A", "x y")], Some("<b>&"));
        assert_eq!(
            x,
            "<event>\n  <headers>\n    <A>x%20y</A>\n  </headers>\n  <Content-Length>4</Content-Length>\n  <body>&lt;b&gt;&amp;</body>\n</event>\n"
        );
    }
}

//! Network text made safe to log or to send back: printable ASCII only,
//! everything else escaped, so that one log record stays one line and a
//! reason phrase we build never carries a peer's control characters.

/// `bytes` as printable ASCII: `\r`, `\n`, `\t`, `\\` and `\xNN` for the
/// rest; cut after `max` input bytes with `...`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 8);
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                out.push_str("\\x");
                out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
            }
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

/// A string from the network as printable ASCII (see [`escape`]).
pub fn escape_str(s: &str, max: usize) -> String {
    escape(s.as_bytes(), max)
}

/// Logs a whole message (sip-trace) one record per line, each escaped.
pub fn log_lines(title: &str, bytes: &[u8]) {
    log::info!("{title}");
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        log::info!("  {}", escape(line, 4096));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_non_ascii_are_escaped() {
        assert_eq!(
            escape(b"a\r\nb\x1b[0m\xc3\xa9", 100),
            "a\\r\\nb\\x1b[0m\\xc3\\xa9"
        );
        assert_eq!(escape(b"abcdef", 3), "abc...");
        assert!(escape(b"\x00\x7f\xff", 10)
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b)));
    }
}

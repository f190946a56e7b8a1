//! Small helpers on the raw text of a configuration section
//! ([`ModuleContext::config_section`](crate::ModuleContext::config_section)),
//! kept for modules written before the parsed tree: new code reads
//! [`ModuleContext::config`](crate::ModuleContext::config)'s
//! [`config::Element`](crate::config::Element) instead (no module of this
//! repository uses these any more).
//!
//! ```
//! use hotswitch_plugin_api::xml;
//! let tag = r#"param name="password" value="s&amp;cret""#;
//! assert_eq!(xml::attr(tag, "value").as_deref(), Some("s&cret"));
//! assert_eq!(xml::attr(tag, "name").as_deref(), Some("password"));
//! assert_eq!(xml::attr(tag, "missing"), None);
//! ```

/// The value of attribute `name` in the text of a tag (after its name),
/// quoted with `"` or `'`, with XML's five entities replaced.
pub fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let i = rest.find(name)?;
        let before_ok = i == 0 || rest[..i].ends_with(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        let Some(after) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let body = &after[1..];
        let value = &body[..body.find(quote)?];
        return Some(unescape(value));
    }
}

/// XML's five predefined entities replaced (`&amp;` last).
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every `<param name="…" value="…"/>` in `xml`, in document order, with
/// comments skipped: what a module's `<settings>` usually holds.
///
/// ```
/// use hotswitch_plugin_api::xml;
/// let conf = r#"<settings><!-- <param name="x" value="1"/> -->
///   <param name="bowout-hangup-cause" value="NORMAL_CLEARING"/></settings>"#;
/// assert_eq!(
///     xml::params(conf),
///     vec![("bowout-hangup-cause".to_string(), "NORMAL_CLEARING".to_string())]
/// );
/// ```
pub fn params(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map(|j| &after[j + 3..]).unwrap_or("");
            continue;
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[1..end];
        rest = &rest[(end + 1).min(rest.len())..];
        let Some(attrs) = tag.strip_prefix("param") else {
            continue;
        };
        if !attrs.starts_with(char::is_whitespace) {
            continue;
        }
        if let (Some(n), Some(v)) = (attr(attrs, "name"), attr(attrs, "value")) {
            out.push((n, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_by_whole_name_in_either_quote() {
        let t = r#"param xname="no" name = 'listen-ip' value="::1""#;
        assert_eq!(attr(t, "name").as_deref(), Some("listen-ip"));
        assert_eq!(attr(t, "value").as_deref(), Some("::1"));
        assert_eq!(attr(r#"a name=unquoted"#, "name"), None);
        assert_eq!(unescape("&lt;&amp;lt;&gt;"), "<&lt;>");
    }
}

//! A small element tree over quick-xml, with line numbers, so that a broken
//! configuration file is refused with its file, line and reason.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use std::fmt;
use std::path::{Path, PathBuf};

/// One XML element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Text content (concatenated, trimmed).
    pub text: String,
    /// 1-based line of the start tag.
    pub line: usize,
    /// Byte range of the whole element in the source.
    pub span: (usize, usize),
}

impl Element {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Direct children called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first direct child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// `<param name=… value=…/>` children of `self`'s `<group>` child, as pairs.
    pub fn params(&self, group: &str) -> Vec<(String, String)> {
        self.child(group)
            .map(|g| {
                g.children_named("param")
                    .filter_map(|p| {
                        Some((p.attr("name")?.to_string(), p.attr("value")?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

impl std::error::Error for XmlError {}

/// Where each line starts, so that a byte offset becomes a line number by
/// binary search (counting newlines from the start each time made parsing
/// a large configuration quadratic).
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    fn line_of(&self, pos: usize) -> usize {
        self.0.partition_point(|&nl| nl < pos) + 1
    }
}

fn start_element(
    lines: &Lines,
    s: &BytesStart,
    pos: usize,
    file: &Path,
) -> Result<Element, XmlError> {
    let mut e = Element {
        name: AsRef::<str>::as_ref(&s.name()).to_string(),
        line: lines.line_of(pos),
        span: (pos, pos),
        ..Default::default()
    };
    for a in s.attributes() {
        let a = a.map_err(|err| XmlError {
            file: file.to_path_buf(),
            line: lines.line_of(pos),
            reason: format!("bad attribute: {err}"),
        })?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| XmlError {
                file: file.to_path_buf(),
                line: lines.line_of(pos),
                reason: format!("bad attribute value: {err}"),
            })?
            .into_owned();
        e.attrs
            .push((AsRef::<str>::as_ref(&a.key).to_string(), value));
    }
    Ok(e)
}

/// Parses `text` (read from `file`, for messages) into its root element.
pub fn parse(text: &str, file: &Path) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let lines = Lines::new(text);
    let err = |pos: usize, reason: String| XmlError {
        file: file.to_path_buf(),
        line: lines.line_of(pos),
        reason,
    };
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| err(reader.error_position() as usize, e.to_string()))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(s) => stack.push(start_element(&lines, &s, before, file)?),
            Event::Empty(s) => {
                let mut e = start_element(&lines, &s, before, file)?;
                e.span = (before, after);
                match stack.last_mut() {
                    Some(p) => p.children.push(e),
                    None if root.is_none() => root = Some(e),
                    None => return Err(err(before, "more than one root element".into())),
                }
            }
            Event::End(_) => {
                let mut e = stack
                    .pop()
                    .ok_or_else(|| err(before, "unexpected closing tag".into()))?;
                e.span.1 = after;
                e.text = e.text.trim().to_string();
                match stack.last_mut() {
                    Some(p) => p.children.push(e),
                    None if root.is_none() => root = Some(e),
                    None => return Err(err(before, "more than one root element".into())),
                }
            }
            Event::Text(t) => {
                let s = t.xml_content(XmlVersion::Implicit1_0);
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&s);
                } else if !s.trim().is_empty() {
                    return Err(err(before, "text outside the root element".into()));
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match AsRef::<str>::as_ref(&*r) {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(err(before, format!("unknown entity &{other};"))),
                    },
                    Err(e) => return Err(err(before, e.to_string())),
                };
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&c);
                }
            }
            Event::CData(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            file: file.to_path_buf(),
            line: open.line,
            reason: format!("element <{}> is never closed", open.name),
        });
    }
    root.ok_or_else(|| err(text.len(), "no root element".into()))
}

/// Reads and parses a file.
pub fn parse_file(path: &Path) -> Result<(String, Element), XmlError> {
    let text = std::fs::read_to_string(path).map_err(|e| XmlError {
        file: path.to_path_buf(),
        line: 0,
        reason: e.to_string(),
    })?;
    let root = parse(&text, path)?;
    Ok((text, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_attributes_and_lines_are_kept() {
        let t = "<a x=\"1\">\n  <b y=\"&amp;\"/>\n  <c>hi</c>\n</a>";
        let r = parse(t, Path::new("t.xml")).unwrap();
        assert_eq!(r.name, "a");
        assert_eq!(r.attr("x"), Some("1"));
        assert_eq!(r.children[0].attr("y"), Some("&"));
        assert_eq!(r.children[0].line, 2);
        assert_eq!(r.child("c").unwrap().text, "hi");
        assert_eq!(&t[r.children[1].span.0..r.children[1].span.1], "<c>hi</c>");
    }

    #[test]
    fn a_mismatched_tag_is_refused_with_its_line() {
        let t = "<a>\n<b>\n</c>\n</a>";
        let e = parse(t, Path::new("bad.xml")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().starts_with("bad.xml:3:"), "{e}");
    }

    #[test]
    fn an_unclosed_element_is_refused() {
        let e = parse("<a>\n<b>", Path::new("x.xml")).unwrap_err();
        assert!(e.reason.contains("never closed") || e.line >= 1, "{e}");
    }
}

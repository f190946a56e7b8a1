//! A module's configuration as a parsed, read-only tree: what
//! [`ModuleContext::config`](crate::ModuleContext::config) returns.
//!
//! The host hands a module the text of one section of its configuration
//! (already preprocessed: `include`s expanded, `$${globals}` set); this
//! module parses it on the module's side of the boundary, so the tree is
//! the module's own memory and the host keeps nothing the module
//! allocated. The tree has what FreeSWITCH's `switch_xml_t` gives a module:
//! an element's name, its attributes, its child elements in document order
//! and its text, with helpers for the shapes every `*.conf` uses —
//! [`params`](Element::params) for `<param name=… value=…/>` lists,
//! [`child`](Element::child) for `<settings>`, [`children`](Element::children)
//! for `<profile>`s.
//!
//! ```
//! use hotswitch_plugin_api::config::Element;
//! let conf = Element::parse(r#"<configuration name="x.conf">
//!   <settings><param name="greeting" value="hi &amp; bye"/></settings>
//!   <profiles><profile name="a"/><profile name="b"/></profiles>
//! </configuration>"#).unwrap();
//! assert_eq!(conf.name(), "configuration");
//! let settings = conf.child("settings").unwrap();
//! assert_eq!(settings.param("greeting"), Some("hi & bye"));
//! let names: Vec<_> = conf.child("profiles").unwrap()
//!     .children("profile").filter_map(|p| p.attr("name")).collect();
//! assert_eq!(names, ["a", "b"]);
//! ```

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Why a configuration text did not parse: the XML error and where (byte
/// offset into the section's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.0
    }
}

/// One element of a configuration section. Read-only: a module gets the
/// tree, looks things up in it and drops it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    /// Parses an XML text into the tree of its (first) root element;
    /// comments, processing instructions and the declaration are skipped.
    /// An empty text gives an empty element with no name.
    ///
    /// Errors read `XML error at byte N: …` (or `unbalanced XML`).
    pub fn parse(xml: &str) -> Result<Element, ConfigError> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = vec![Element::default()];
        let unbalanced = || ConfigError("unbalanced XML".into());
        loop {
            let ev = reader.read_event().map_err(|e| {
                ConfigError(format!(
                    "XML error at byte {}: {e}",
                    reader.buffer_position()
                ))
            })?;
            match ev {
                Event::Start(e) => stack.push(element(&e)?),
                Event::Empty(e) => {
                    let el = element(&e)?;
                    stack.last_mut().ok_or_else(unbalanced)?.children.push(el);
                }
                Event::End(_) => {
                    let el = stack.pop().ok_or_else(unbalanced)?;
                    stack.last_mut().ok_or_else(unbalanced)?.children.push(el);
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(AsRef::<str>::as_ref(&t));
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some(top) = stack.last_mut() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => top.text.push(c),
                            _ => {
                                top.text.push_str(match AsRef::<str>::as_ref(&r) {
                                    "amp" => "&",
                                    "lt" => "<",
                                    "gt" => ">",
                                    "quot" => "\"",
                                    "apos" => "'",
                                    _ => "",
                                });
                            }
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let mut root = stack.pop().ok_or_else(unbalanced)?;
        if !stack.is_empty() {
            // An element never closed: quick-xml reports it at its end
            // when it checks, else keep what was read as the root's.
            return Err(ConfigError(format!(
                "XML error at byte {}: <{}> is not closed",
                reader.buffer_position(),
                root.name
            )));
        }
        if root.children.is_empty() {
            return Ok(Element::default());
        }
        Ok(root.children.swap_remove(0))
    }

    /// The element's name (`configuration`, `param`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of attribute `name` (entities replaced), if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every attribute, in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The element's own text (entities replaced, not trimmed; the text of
    /// its children is theirs).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every child element, in document order.
    pub fn elements(&self) -> &[Element] {
        &self.children
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The child elements named `name`, in document order.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Every element named `name` below this one, at any depth, in
    /// document order (an element's own match before its descendants').
    pub fn descendants<'a>(&'a self, name: &'a str) -> Vec<&'a Element> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
            for c in &e.children {
                if c.name == name {
                    out.push(c);
                }
                walk(c, name, out);
            }
        }
        walk(self, name, &mut out);
        out
    }

    /// The `(name, value)` of every `<param name="…" value="…"/>` child, in
    /// document order; a param missing either attribute is skipped.
    /// Owned, so that a module can keep or move them.
    pub fn params(&self) -> Vec<(String, String)> {
        self.children("param")
            .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value")?.to_string())))
            .collect()
    }

    /// The value of the first `<param name="{name}" value="…"/>` child.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.children("param")
            .find(|p| p.attr("name") == Some(name))
            .and_then(|p| p.attr("value"))
    }
}

fn element(e: &BytesStart) -> Result<Element, ConfigError> {
    let name = AsRef::<str>::as_ref(&e.name()).to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| ConfigError(e.to_string()))?;
        let v = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| ConfigError(e.to_string()))?
            .into_owned();
        attrs.push((AsRef::<str>::as_ref(&a.key).to_string(), v));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_becomes_a_tree_with_attributes_children_and_text() {
        let x = r#"<?xml version="1.0"?>
<configuration name="cdr_csv.conf" description="CDR">
  <!-- <param name="commented" value="1"/> -->
  <settings>
    <param name="legs" value="ab"/>
    <param name="only-name"/>
    <param name="legs" value="b"/>
  </settings>
  <templates><template name="sql">"${a}" &amp; <![CDATA[<b>]]>&#65;</template></templates>
</configuration>"#;
        let c = Element::parse(x).unwrap();
        assert_eq!(c.name(), "configuration");
        assert_eq!(c.attr("description"), Some("CDR"));
        assert_eq!(c.attrs().count(), 2);
        let s = c.child("settings").unwrap();
        assert_eq!(
            s.params(),
            vec![
                ("legs".to_string(), "ab".to_string()),
                ("legs".to_string(), "b".to_string())
            ]
        );
        assert_eq!(s.param("legs"), Some("ab"));
        assert_eq!(s.param("only-name"), None);
        let t = c.descendants("template");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].text(), "\"${a}\" & <b>A");
        assert_eq!(c.elements().len(), 2);
        assert!(c.child("missing").is_none());
    }

    #[test]
    fn broken_xml_is_an_error_that_says_where() {
        let e = Element::parse("<a><b></a>").unwrap_err();
        assert!(e.0.starts_with("XML error at byte"), "{e}");
        assert_eq!(Element::parse("").unwrap(), Element::default());
    }
}

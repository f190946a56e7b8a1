//! The configuration: `conf/` in FreeSWITCH's layout. The root file
//! `freeswitch.xml` is preprocessed (`X-PRE-PROCESS set` / `include`, see
//! `preprocess.rs`) into one document with `configuration`, `dialplan` and
//! `directory` sections; `reloadxml` rebuilds it, and a broken file is
//! refused with its file, line and reason while the running document stays
//! in force.
//!
//! Without a root file (a minimal conf dir), sections are read straight
//! from `autoload_configs/<name>.xml`, fresh at every use.

use crate::xml::{self, Element, XmlError};
use hotswitch_plugin_api::sync::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A module listed in `modules.conf.xml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLoad {
    pub name: String,
    pub critical: bool,
    /// `memory-limit` (MiB; `0`: none): what this module's allocator may
    /// hold, instead of switch.conf's `module-memory-limit`.
    pub memory_limit_mib: Option<u64>,
}

/// The preprocessed configuration document.
#[derive(Debug)]
pub struct Document {
    pub root: Element,
    pub text: String,
    /// `X-PRE-PROCESS set` variables, in order.
    pub globals: Vec<(String, String)>,
}

impl Document {
    /// A `<section name="…">` of the document.
    pub fn section(&self, name: &str) -> Option<&Element> {
        self.root
            .children_named("section")
            .find(|s| s.attr("name") == Some(name))
    }
}

/// The configuration directory and its current document.
#[derive(Debug)]
pub struct Config {
    pub conf_dir: PathBuf,
    /// Globals set before the first line is read (`$${base_dir}`, …).
    globals: Vec<(String, String)>,
    doc: RwLock<Option<Arc<Document>>>,
}

impl Config {
    pub fn new(conf_dir: impl Into<PathBuf>) -> Config {
        Config::with_globals(conf_dir, Vec::new())
    }

    /// A configuration whose preprocessing starts with `globals` known, as
    /// FreeSWITCH's core sets its directories before reading.
    pub fn with_globals(conf_dir: impl Into<PathBuf>, globals: Vec<(String, String)>) -> Config {
        Config {
            conf_dir: conf_dir.into(),
            globals,
            doc: RwLock::new(None),
        }
    }

    /// The root file, if this configuration has one.
    pub fn root_file(&self) -> Option<PathBuf> {
        let p = self.conf_dir.join("freeswitch.xml");
        p.is_file().then_some(p)
    }

    /// (Re)reads the root document. On error the previous document stays.
    pub fn load(&self) -> Result<(), XmlError> {
        let Some(root) = self.root_file() else {
            return Ok(());
        };
        let pre =
            crate::preprocess::preprocess_with_globals(&root, &self.globals).map_err(|e| {
                // The error's text starts with its own "file:line: ".
                let full = e.to_string();
                let prefix = if e.line > 0 {
                    format!("{}:{}: ", e.file.display(), e.line)
                } else {
                    format!("{}: ", e.file.display())
                };
                XmlError {
                    file: e.file.clone(),
                    line: e.line,
                    reason: full.strip_prefix(&prefix).unwrap_or(&full).to_string(),
                }
            })?;
        let parsed = xml::parse(&pre.text, &root).map_err(|e| {
            let (file, line) = pre.origin(e.line);
            XmlError {
                file,
                line,
                reason: e.reason,
            }
        })?;
        *self.doc.write() = Some(Arc::new(Document {
            root: parsed,
            text: pre.text,
            globals: pre.globals,
        }));
        Ok(())
    }

    /// The current document (None without a root file).
    pub fn document(&self) -> Option<Arc<Document>> {
        self.doc.read().clone()
    }

    fn autoload_path(&self, section: &str) -> PathBuf {
        self.conf_dir
            .join("autoload_configs")
            .join(format!("{section}.xml"))
    }

    /// The `<configuration name="…">` element `section` (e.g. `skel.conf`),
    /// its source text and the parsed element; `Ok(None)` when absent.
    pub fn section(&self, section: &str) -> Result<Option<(String, Element)>, XmlError> {
        if let Some(doc) = self.document() {
            let found = doc
                .section("configuration")
                .and_then(|c| find_configuration(c, section));
            return Ok(found.map(|e| (doc.text[e.span.0..e.span.1].to_string(), e.clone())));
        }
        let path = self.autoload_path(section);
        if !path.exists() {
            return Ok(None);
        }
        let (text, root) = xml::parse_file(&path)?;
        let found = find_configuration(&root, section);
        Ok(found.map(|e| (text[e.span.0..e.span.1].to_string(), e.clone())))
    }

    /// The modules to load at start, in order.
    pub fn modules_to_load(&self) -> Result<Vec<ModuleLoad>, XmlError> {
        let Some((_, e)) = self.section("modules.conf")? else {
            return Ok(Vec::new());
        };
        let Some(list) = e.child("modules") else {
            return Ok(Vec::new());
        };
        list.children_named("load")
            .map(|l| {
                let name = l.attr("module").ok_or_else(|| XmlError {
                    file: self.autoload_path("modules.conf"),
                    line: l.line,
                    reason: "<load> without a module attribute".into(),
                })?;
                let memory_limit_mib = match l.attr("memory-limit") {
                    None => None,
                    Some(v) => Some(v.trim().parse::<u64>().map_err(|_| XmlError {
                        file: self.autoload_path("modules.conf"),
                        line: l.line,
                        reason: format!("memory-limit '{v}' is not a whole number of MiB"),
                    })?),
                };
                Ok(ModuleLoad {
                    name: name.to_string(),
                    critical: l.attr("critical") == Some("true"),
                    memory_limit_mib,
                })
            })
            .collect()
    }

    /// `switch.conf`'s `<settings>` params.
    pub fn switch_settings(&self) -> Result<Vec<(String, String)>, XmlError> {
        Ok(self
            .section("switch.conf")?
            .map(|(_, e)| e.params("settings"))
            .unwrap_or_default())
    }

    /// Module directories named in `switch.conf` (`module-dir`, repeatable),
    /// relative ones taken from the configuration directory.
    pub fn module_dirs(&self) -> Result<Vec<PathBuf>, XmlError> {
        Ok(self
            .switch_settings()?
            .into_iter()
            .filter(|(k, _)| k == "module-dir")
            .map(|(_, v)| resolve(&self.conf_dir, &v))
            .collect())
    }

    /// True when `switch.conf` asks for watch mode (`watch-modules`).
    pub fn watch_modules(&self) -> Result<bool, XmlError> {
        Ok(self
            .switch_settings()?
            .iter()
            .any(|(k, v)| k == "watch-modules" && v == "true"))
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn find_configuration<'a>(e: &'a Element, name: &str) -> Option<&'a Element> {
    if e.name == "configuration" && e.attr("name") == Some(name) {
        return Some(e);
    }
    e.children.iter().find_map(|c| find_configuration(c, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "hs-conf-test-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(p.join("autoload_configs")).unwrap();
            Dir(p)
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_module_list_keeps_order_and_criticality() {
        let d = Dir::new();
        d.write(
            "autoload_configs/modules.conf.xml",
            r#"<configuration name="modules.conf"><modules>
                 <load module="mod_a"/><load module="mod_b" critical="true" memory-limit="64"/>
               </modules></configuration>"#,
        );
        let c = Config::new(&d.0);
        assert_eq!(
            c.modules_to_load().unwrap(),
            vec![
                ModuleLoad {
                    name: "mod_a".into(),
                    critical: false,
                    memory_limit_mib: None,
                },
                ModuleLoad {
                    name: "mod_b".into(),
                    critical: true,
                    memory_limit_mib: Some(64),
                },
            ]
        );
    }

    #[test]
    fn a_missing_section_is_none_and_a_broken_one_names_its_line() {
        let d = Dir::new();
        d.write(
            "autoload_configs/x.conf.xml",
            "<configuration name=\"x.conf\">\n<a>\n</b>",
        );
        let c = Config::new(&d.0);
        assert!(c.section("nothing.conf").unwrap().is_none());
        assert_eq!(c.section("x.conf").unwrap_err().line, 3);
    }

    #[test]
    fn a_root_document_serves_sections_and_a_broken_reload_keeps_the_old_one() {
        let d = Dir::new();
        d.write(
            "freeswitch.xml",
            r#"<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="greeting=hi"/>
  <section name="configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
</document>"#,
        );
        d.write(
            "autoload_configs/skel.conf.xml",
            r#"<configuration name="skel.conf"><settings><param name="g" value="$${greeting}"/></settings></configuration>"#,
        );
        let c = Config::new(&d.0);
        c.load().unwrap();
        let (_, e) = c.section("skel.conf").unwrap().unwrap();
        assert_eq!(
            e.params("settings"),
            vec![("g".to_string(), "hi".to_string())]
        );
        assert_eq!(
            c.document().unwrap().globals,
            vec![("greeting".to_string(), "hi".to_string())]
        );
        d.write(
            "autoload_configs/broken.conf.xml",
            "<configuration name=\"broken.conf\">\n  <settings>\n</configuration>\n",
        );
        let err = c.load().unwrap_err();
        assert!(err.file.ends_with("broken.conf.xml"), "{err}");
        assert_eq!(err.line, 3, "{err}");
        assert!(
            c.section("skel.conf").unwrap().is_some(),
            "the old document stays"
        );
    }
}

//! The configuration: `conf/` in FreeSWITCH's layout. Today: the module
//! list (`autoload_configs/modules.conf.xml`), the switch settings
//! (`autoload_configs/switch.conf.xml`) and any module's own section
//! (`autoload_configs/<name>.xml`), read fresh from disk each time so that an
//! edited file takes effect at the next `load`.

use crate::xml::{self, Element, XmlError};
use std::path::{Path, PathBuf};

/// A module listed in `modules.conf.xml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLoad {
    pub name: String,
    pub critical: bool,
}

/// The configuration directory.
#[derive(Clone, Debug)]
pub struct Config {
    pub conf_dir: PathBuf,
}

impl Config {
    pub fn new(conf_dir: impl Into<PathBuf>) -> Config {
        Config {
            conf_dir: conf_dir.into(),
        }
    }

    fn autoload_path(&self, section: &str) -> PathBuf {
        self.conf_dir
            .join("autoload_configs")
            .join(format!("{section}.xml"))
    }

    /// The `<configuration name="…">` element `section` (e.g. `skel.conf`),
    /// its source text and the parsed element; `Ok(None)` when no file
    /// defines it.
    pub fn section(&self, section: &str) -> Result<Option<(String, Element)>, XmlError> {
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
                Ok(ModuleLoad {
                    name: name.to_string(),
                    critical: l.attr("critical") == Some("true"),
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

    fn conf_with(files: &[(&str, &str)]) -> (tempdir::Dir, Config) {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("autoload_configs")).unwrap();
        for (n, t) in files {
            std::fs::write(d.0.join("autoload_configs").join(n), t).unwrap();
        }
        let c = Config::new(&d.0);
        (d, c)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "hs-conf-test-{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn the_module_list_keeps_order_and_criticality() {
        let (_d, c) = conf_with(&[(
            "modules.conf.xml",
            r#"<configuration name="modules.conf"><modules>
                 <load module="mod_a"/><load module="mod_b" critical="true"/>
               </modules></configuration>"#,
        )]);
        assert_eq!(
            c.modules_to_load().unwrap(),
            vec![
                ModuleLoad {
                    name: "mod_a".into(),
                    critical: false
                },
                ModuleLoad {
                    name: "mod_b".into(),
                    critical: true
                },
            ]
        );
    }

    #[test]
    fn a_missing_section_is_none_and_a_broken_one_names_its_line() {
        let (_d, c) = conf_with(&[("x.conf.xml", "<configuration name=\"x.conf\">\n<a>\n</b>")]);
        assert!(c.section("nothing.conf").unwrap().is_none());
        let e = c.section("x.conf").unwrap_err();
        assert_eq!(e.line, 3);
    }
}

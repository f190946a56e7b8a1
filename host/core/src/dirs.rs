//! Where the switch keeps its files, as FreeSWITCH's `SWITCH_GLOBAL_dirs`:
//! one base directory per installation and, under it unless a flag says
//! otherwise (`-log`, `-db`, `-run`, `-temp`, `-certs`, `-recordings`,
//! `-storage`, `-sounds`), a directory for each kind of file. The
//! configuration sees them as the globals `$${base_dir}`, `$${log_dir}`, …
//! set before `freeswitch.xml` is read, as FreeSWITCH's core does.

use std::path::{Path, PathBuf};

/// The kinds of directory with a flag of their own: (flag and the name of
/// the global without `_dir`, the subdirectory of the base by default).
pub const KINDS: [(&str, &str); 8] = [
    ("log", "log"),
    ("db", "db"),
    ("run", "run"),
    ("temp", "tmp"),
    ("certs", "certs"),
    ("recordings", "recordings"),
    ("storage", "storage"),
    ("sounds", "sounds"),
];

/// The switch's directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirs {
    pub base: PathBuf,
    /// `(kind, directory)` for each of [`KINDS`], in that order.
    pub kinds: Vec<(&'static str, PathBuf)>,
}

impl Dirs {
    /// The base of the installation whose binary is in `exe_dir`: the
    /// prefix when the binary sits in `<prefix>/bin` (FreeSWITCH's layout),
    /// else the binary's own directory (a cargo build tree,
    /// `target/<profile>/`, which the source tree ignores). Never the
    /// current directory, never a directory other installations share.
    pub fn default_base(exe_dir: &Path) -> PathBuf {
        match (exe_dir.file_name(), exe_dir.parent()) {
            (Some(n), Some(prefix)) if n == "bin" => prefix.to_path_buf(),
            _ => exe_dir.to_path_buf(),
        }
    }

    /// The directories under `base`, with `set` (kind, directory) taking
    /// the place of the defaults.
    pub fn new(base: PathBuf, set: &[(String, PathBuf)]) -> Dirs {
        let kinds = KINDS
            .iter()
            .map(|(kind, sub)| {
                let given = set.iter().rev().find(|(k, _)| k == kind);
                let dir = given
                    .map(|(_, d)| d.clone())
                    .unwrap_or_else(|| base.join(sub));
                (*kind, dir)
            })
            .collect();
        Dirs { base, kinds }
    }

    /// The directory of `kind` (one of [`KINDS`]).
    pub fn get(&self, kind: &str) -> &Path {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.as_path())
            .unwrap_or(&self.base)
    }

    /// `base_dir`, `log_dir`, … as configuration globals.
    pub fn globals(&self) -> Vec<(String, String)> {
        std::iter::once(("base_dir".to_string(), display(&self.base)))
            .chain(
                self.kinds
                    .iter()
                    .map(|(k, d)| (format!("{k}_dir"), display(d))),
            )
            .collect()
    }

    /// Creates the directories the switch writes to (sounds are only read).
    pub fn create(&self) -> Result<(), String> {
        for (kind, dir) in &self.kinds {
            if *kind == "sounds" {
                continue;
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("cannot create the {kind} directory {}: {e}", dir.display())
            })?;
        }
        Ok(())
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// `p` made absolute against the current directory (a relative flag means
/// where the user stands, once; the switch never looks at it again).
pub fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        return p;
    }
    std::env::current_dir().map(|c| c.join(&p)).unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_the_prefix_of_a_bin_directory_or_the_build_directory() {
        assert_eq!(
            Dirs::default_base(Path::new("/opt/hotswitch/bin")),
            PathBuf::from("/opt/hotswitch")
        );
        assert_eq!(
            Dirs::default_base(Path::new("/src/hs/target/debug")),
            PathBuf::from("/src/hs/target/debug")
        );
    }

    #[test]
    fn every_directory_is_under_the_base_unless_a_flag_moves_it() {
        let d = Dirs::new(
            PathBuf::from("/b"),
            &[("log".into(), PathBuf::from("/var/log/hs"))],
        );
        assert_eq!(d.get("log"), Path::new("/var/log/hs"));
        assert_eq!(d.get("db"), Path::new("/b/db"));
        assert_eq!(d.get("temp"), Path::new("/b/tmp"));
        let g = d.globals();
        assert!(g.contains(&("base_dir".into(), "/b".into())));
        assert!(g.contains(&("log_dir".into(), "/var/log/hs".into())));
        assert!(g.contains(&("certs_dir".into(), "/b/certs".into())));
        assert_eq!(g.len(), 1 + KINDS.len());
    }
}

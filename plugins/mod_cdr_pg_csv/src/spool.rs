//! The spool: records that could not be written to the database wait in
//! `<spool-dir>/cdr-spool.csv` (the VALUES list, one a line) or
//! `cdr-spool.sql` (the INSERT statement, one a line), FreeSWITCH's file
//! names and formats. Each record is appended with one `write` on a file
//! opened for appending, so a record spooled is on disk even if the switch
//! dies right after. Replay reads both files back as statements.

use crate::config::{Settings, SpoolFormat};
use crate::record;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One spooled record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    /// The file it came from.
    pub format: SpoolFormat,
    /// The line as written.
    pub line: String,
}

impl Spooled {
    /// The statement that writes it.
    pub fn statement(&self, s: &Settings) -> String {
        match self.format {
            SpoolFormat::Csv => record::insert(&s.table, &s.fields, &self.line),
            SpoolFormat::Sql => self.line.clone(),
        }
    }
}

/// The spool files of one configuration.
pub struct Spool {
    dir: PathBuf,
    format: SpoolFormat,
}

impl Spool {
    /// The spool in `dir`, written in `format`.
    pub fn new(dir: &Path, format: SpoolFormat) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
            format,
        }
    }

    /// The file of `format`.
    pub fn path(&self, format: SpoolFormat) -> PathBuf {
        self.dir.join(match format {
            SpoolFormat::Csv => "cdr-spool.csv",
            SpoolFormat::Sql => "cdr-spool.sql",
        })
    }

    /// Appends a record (its VALUES list) in the configured format.
    pub fn append(&self, s: &Settings, values: &str) -> std::io::Result<()> {
        let line = match self.format {
            SpoolFormat::Csv => values.to_string(),
            SpoolFormat::Sql => record::insert(&s.table, &s.fields, values),
        };
        self.append_line(self.format, &line)
    }

    fn append_line(&self, format: SpoolFormat, line: &str) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(format))?;
        f.write_all(format!("{line}\n").as_bytes())
    }

    /// Every spooled record, CSV file first.
    pub fn read(&self) -> std::io::Result<Vec<Spooled>> {
        let mut out = Vec::new();
        for format in [SpoolFormat::Csv, SpoolFormat::Sql] {
            let text = match std::fs::read_to_string(self.path(format)) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| Spooled {
                        format,
                        line: l.to_string(),
                    }),
            );
        }
        Ok(out)
    }

    /// True when a record waits.
    pub fn is_empty(&self) -> bool {
        [SpoolFormat::Csv, SpoolFormat::Sql].iter().all(|f| {
            std::fs::metadata(self.path(*f))
                .map(|m| m.len() == 0)
                .unwrap_or(true)
        })
    }

    /// Replaces the spool's content with `left` (empty: removes the files).
    pub fn rewrite(&self, left: &[Spooled]) -> std::io::Result<()> {
        for format in [SpoolFormat::Csv, SpoolFormat::Sql] {
            let path = self.path(format);
            let lines: String = left
                .iter()
                .filter(|r| r.format == format)
                .map(|r| format!("{}\n", r.line))
                .collect();
            if lines.is_empty() {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            } else {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, lines)?;
                std::fs::rename(&tmp, &path)?;
            }
        }
        Ok(())
    }

    /// Keeps a record the database refused (not a connection problem) in
    /// `cdr-spool.failed`, so it is neither lost nor retried for ever.
    pub fn reject(&self, r: &Spooled, s: &Settings) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("cdr-spool.failed"))?;
        f.write_all(format!("{}\n", r.statement(s)).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn settings(dir: &Path, format: &str) -> Settings {
        let mut s = config::parse(Some(&format!(
            r#"<configuration><settings><param name="spool-format" value="{format}"/></settings>
               <schema><field var="uuid"/><field var="billsec" quote="false"/></schema></configuration>"#
        )))
        .unwrap();
        s.spool_dir = dir.to_path_buf();
        s
    }

    #[test]
    fn records_spooled_in_either_format_read_back_as_inserts_and_rewrite_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("cdr-pg-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = settings(&dir, "csv");
        let sql = settings(&dir, "sql");
        let spool_csv = Spool::new(&dir, SpoolFormat::Csv);
        let spool_sql = Spool::new(&dir, SpoolFormat::Sql);
        assert!(spool_csv.is_empty());
        spool_csv.append(&csv, "'a',1").unwrap();
        spool_sql.append(&sql, "'b',2").unwrap();
        spool_csv.append(&csv, "'c',3").unwrap();
        assert_eq!(
            std::fs::read_to_string(spool_csv.path(SpoolFormat::Csv)).unwrap(),
            "'a',1\n'c',3\n"
        );
        let all = spool_csv.read().unwrap();
        let stmts: Vec<String> = all.iter().map(|r| r.statement(&csv)).collect();
        assert_eq!(
            stmts,
            [
                "INSERT INTO cdr (uuid,billsec) VALUES ('a',1);",
                "INSERT INTO cdr (uuid,billsec) VALUES ('c',3);",
                "INSERT INTO cdr (uuid,billsec) VALUES ('b',2);",
            ]
        );
        spool_csv.rewrite(&all[1..2]).unwrap();
        assert_eq!(spool_csv.read().unwrap(), all[1..2]);
        spool_csv.rewrite(&[]).unwrap();
        assert!(spool_csv.is_empty());
        assert!(spool_csv.read().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! `cdr_pg_csv.conf`: FreeSWITCH's parameters and `<schema>`.
//!
//! ```xml
//! <configuration name="cdr_pg_csv.conf"><settings>
//!   <param name="db-info" value="host=localhost dbname=cdr connect_timeout=10"/>
//!   <param name="db-table" value="cdr"/>
//!   <param name="legs" value="a"/>
//!   <param name="spool-dir" value="log/cdr-pg-csv"/>
//!   <param name="spool-format" value="csv"/>
//! </settings><schema>
//!   <field var="uuid"/>
//!   <field var="billsec" quote="false"/>
//!   <field var="caller_id_number" column="caller"/>
//! </schema></configuration>
//! ```
//!
//! `db-info` is libpq's connection string (keyword/value pairs or a
//! `postgresql://` URL); a field's column is its variable's name unless
//! `column` says otherwise; values are quoted unless `quote="false"`, and an
//! empty value is SQL `null` unless `not-null="true"`. Every parameter is
//! checked at load: a value that cannot be used, or a parameter this module
//! does not know, is a load error.

use hotswitch_plugin_api::config::Element;
use std::fmt;
use std::path::PathBuf;

/// One column of the CDR table and the channel variable that fills it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The channel variable.
    pub var: String,
    /// The table's column.
    pub column: String,
    /// A string (quoted) or a number (written as is).
    pub quote: bool,
    /// An empty value is `''` rather than `null`.
    pub not_null: bool,
}

/// What a spooled record looks like on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolFormat {
    /// The VALUES list, one record a line (`cdr-spool.csv`).
    Csv,
    /// The whole INSERT statement, one a line (`cdr-spool.sql`).
    Sql,
}

/// The module's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// libpq's connection string, as configured.
    pub db_info: String,
    /// The table records go to.
    pub table: String,
    /// Record inbound (A) legs.
    pub a_legs: bool,
    /// Record legs the switch placed (B).
    pub b_legs: bool,
    /// Where records wait while the database is unreachable.
    pub spool_dir: PathBuf,
    /// How they are written there.
    pub spool_format: SpoolFormat,
    /// Log every statement.
    pub debug: bool,
    /// The table's columns, in order.
    pub fields: Vec<Field>,
}

/// A configuration that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cdr_pg_csv.conf: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A table or column name, written into statements as it is: letters,
/// digits and `_`, optionally schema-qualified with one `.`.
fn identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').count() <= 2
        && s.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `e` and every element below it, in document order.
fn preorder<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    out.push(e);
    for c in e.elements() {
        preorder(c, out);
    }
}

fn truth(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow" => Ok(true),
        "false" | "no" | "off" | "0" | "disabled" | "inactive" | "deny" => Ok(false),
        _ => Err(ConfigError(format!("{name}: {v:?} is not true or false"))),
    }
}

/// Reads the section (`None`: no section).
pub fn parse(xml: Option<&str>) -> Result<Settings, ConfigError> {
    let mut s = Settings {
        db_info: "dbname=cdr".into(),
        table: "cdr".into(),
        a_legs: true,
        b_legs: false,
        spool_dir: PathBuf::from("log").join("cdr-pg-csv"),
        spool_format: SpoolFormat::Csv,
        debug: false,
        fields: Vec::new(),
    };
    let root = Element::parse(xml.unwrap_or("<configuration/>")).map_err(|e| ConfigError(e.0))?;
    let mut all = Vec::new();
    preorder(&root, &mut all);
    for e in all {
        match e.name() {
            "param" => {
                let name = e.attr("name").unwrap_or("");
                let value = e.attr("value").unwrap_or("").trim();
                setting(&mut s, name, value)?;
            }
            "field" => {
                let Some(var) = e.attr("var").filter(|v| !v.is_empty()) else {
                    return Err(ConfigError("a <field> has no var".into()));
                };
                let column = e.attr("column").unwrap_or(var);
                if !identifier(column) {
                    return Err(ConfigError(format!(
                        "field {var}: {column:?} is not a column name"
                    )));
                }
                s.fields.push(Field {
                    var: var.into(),
                    column: column.into(),
                    quote: e.attr("quote").map_or(Ok(true), |v| truth("quote", v))?,
                    not_null: e
                        .attr("not-null")
                        .map_or(Ok(false), |v| truth("not-null", v))?,
                });
            }
            _ => {}
        }
    }
    if s.fields.is_empty() {
        return Err(ConfigError(
            "<schema> lists no <field var=\"…\"/>: nothing to write".into(),
        ));
    }
    db_config(&s.db_info)?;
    Ok(s)
}

fn setting(s: &mut Settings, name: &str, value: &str) -> Result<(), ConfigError> {
    match name {
        "db-info" if !value.is_empty() => s.db_info = value.into(),
        "db-table" if identifier(value) => s.table = value.into(),
        "db-table" => {
            return Err(ConfigError(format!(
                "db-table {value:?} is not a table name"
            )))
        }
        "legs" => {
            (s.a_legs, s.b_legs) = match value {
                "a" => (true, false),
                "b" => (false, true),
                "ab" | "ba" => (true, true),
                _ => return Err(ConfigError(format!("legs {value:?}: a, b or ab"))),
            }
        }
        "spool-dir" if !value.is_empty() => s.spool_dir = PathBuf::from(value),
        "spool-format" => {
            s.spool_format = match value {
                "csv" => SpoolFormat::Csv,
                "sql" => SpoolFormat::Sql,
                _ => return Err(ConfigError(format!("spool-format {value:?}: csv or sql"))),
            }
        }
        "debug" => s.debug = truth(name, value)?,
        // FreeSWITCH renames its spool files on SIGHUP. Here the spool is
        // emptied into the database as soon as it is back, so there is no
        // file to rotate; the parameter is accepted for configurations
        // brought over.
        "rotate-on-hup" => {
            truth(name, value)?;
        }
        "db-info" | "spool-dir" => {}
        _ => return Err(ConfigError(format!("unknown parameter {name:?}"))),
    }
    Ok(())
}

/// `db-info` as the client reads it; a unix socket directory
/// (`/var/run/postgresql`, Debian's) when it names no host, as libpq does.
pub fn db_config(db_info: &str) -> Result<tokio_postgres::Config, ConfigError> {
    let mut c: tokio_postgres::Config = db_info
        .parse()
        .map_err(|e| ConfigError(format!("db-info {db_info:?}: {e}")))?;
    if c.get_hosts().is_empty() && c.get_hostaddrs().is_empty() {
        c.host_path("/var/run/postgresql");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeswitchs_vanilla_configuration_is_read() {
        let s = parse(Some(
            r#"<configuration name="cdr_pg_csv.conf" description="CDR PG CSV Format">
              <settings>
                <param name="db-info" value="host=localhost dbname=cdr connect_timeout=10" />
                <!--<param name="db-table" value="nope nope"/>-->
                <param name="legs" value="ab"/>
                <param name="spool-format" value="sql"/>
                <param name="rotate-on-hup" value="true"/>
              </settings>
              <schema>
                <field var="caller_id_name"/>
                <field var="duration" quote="false"/>
                <field var="caller_id_number" column="caller" not-null="true"/>
              </schema></configuration>"#,
        ))
        .unwrap();
        assert_eq!(s.table, "cdr");
        assert!(s.a_legs && s.b_legs);
        assert_eq!(s.spool_format, SpoolFormat::Sql);
        assert_eq!(s.fields.len(), 3);
        assert_eq!(s.fields[1].column, "duration");
        assert!(!s.fields[1].quote && s.fields[0].quote);
        assert_eq!(s.fields[2].column, "caller");
        assert!(s.fields[2].not_null);
    }

    #[test]
    fn unusable_values_and_unknown_parameters_are_load_errors() {
        let with = |settings: &str| {
            parse(Some(&format!(
                r#"<configuration><settings>{settings}</settings><schema><field var="uuid"/></schema></configuration>"#
            )))
        };
        assert!(with("").is_ok());
        for bad in [
            r#"<param name="legs" value="c"/>"#,
            r#"<param name="spool-format" value="json"/>"#,
            r#"<param name="db-table" value="cdr; drop table x"/>"#,
            r#"<param name="db-info" value="host=x port=notaport"/>"#,
            r#"<param name="db-infos" value="host=x"/>"#,
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        let e = parse(Some("<configuration/>")).unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
    }

    #[test]
    fn db_info_takes_libpqs_keywords_and_urls() {
        let c = db_config("hostaddr=127.0.0.1 port=5433 dbname=cdr user=fs password=x").unwrap();
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("cdr"));
        let c = db_config("postgresql://fs@127.0.0.1:5434/cdr").unwrap();
        assert_eq!(c.get_ports(), &[5434]);
        let c = db_config("dbname=cdr").unwrap();
        assert_eq!(c.get_hosts().len(), 1, "the local socket directory");
    }
}

//! A call's record as SQL text: the VALUES list FreeSWITCH's module builds
//! (`'a','b',null,42`), which is also a line of the CSV spool, and the
//! INSERT statement around it, which is a line of the SQL spool.
//!
//! Strings are quoted with `'` doubled (and written `E'…'` with `\`
//! doubled when they hold a backslash, so they mean the same whatever
//! `standard_conforming_strings` says); a field marked `quote="false"` is
//! written bare only when it is a number, else quoted, so a variable can
//! never smuggle SQL in. Line breaks inside a value become spaces: a
//! spooled record is one line.

use crate::config::Field;

/// One value as a SQL literal.
fn literal(field: &Field, value: Option<&str>) -> String {
    let v: String = value
        .unwrap_or("")
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if v.is_empty() && !field.not_null {
        return "null".into();
    }
    if !field.quote && is_number(&v) {
        return v;
    }
    let quoted = v.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

fn is_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// The VALUES list of one record; `var` looks a channel variable up.
pub fn values(fields: &[Field], mut var: impl FnMut(&str) -> Option<String>) -> String {
    fields
        .iter()
        .map(|f| literal(f, var(&f.var).as_deref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `INSERT INTO <table> (<columns>) VALUES (<values>);`
pub fn insert(table: &str, fields: &[Field], values: &str) -> String {
    let columns: Vec<&str> = fields.iter().map(|f| f.column.as_str()).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({values});",
        columns.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(var: &str, quote: bool, not_null: bool) -> Field {
        Field {
            var: var.into(),
            column: var.into(),
            quote,
            not_null,
        }
    }

    #[test]
    fn values_are_quoted_escaped_or_null_as_freeswitch_writes_them() {
        let fields = [
            field("name", true, false),
            field("billsec", false, false),
            field("empty", true, false),
            field("kept", true, true),
            field("evil", false, false),
            field("path", true, false),
        ];
        let v = values(&fields, |name| match name {
            "name" => Some("O'Brien\r\nx".into()),
            "billsec" => Some("42".into()),
            "evil" => Some("1); DROP TABLE cdr; --".into()),
            "path" => Some(r"C:\x".into()),
            _ => None,
        });
        assert_eq!(
            v,
            r"'O''Brien  x',42,null,'','1); DROP TABLE cdr; --',E'C:\\x'"
        );
        assert_eq!(
            insert("cdr", &fields[..2], "'a',1"),
            "INSERT INTO cdr (name,billsec) VALUES ('a',1);"
        );
    }

    #[test]
    fn only_plain_numbers_go_unquoted() {
        for n in ["0", "42", "-7", "3.25"] {
            assert!(is_number(n), "{n}");
        }
        for n in ["", "-", "1.", ".5", "1e5", "1 ", "0x10"] {
            assert!(!is_number(n), "{n}");
        }
    }
}

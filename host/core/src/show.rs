//! `show` and the three forms of its tables, as FreeSWITCH prints them: a
//! FreeSWITCH client (modesl's `show()`, switchio, monitoring scripts)
//! parses these by column name, so the columns are the ones FreeSWITCH's
//! SQL tables and views have (`interfaces`, `channels`, `basic_calls`,
//! `detailed_calls`), filled from the live registries and sessions.
//!
//! - delimited (the default, `as csv`, `as delim <d>`): a title row only when
//!   there are rows, one line per row, cells unquoted, then `\n<N> total.\n`;
//! - `as json`: `{"row_count":N,"rows":[{…}]}` without a trailing newline
//!   (cJSON's unformatted print), or `{"row_count": 0}\n` when empty;
//! - `as xml`: `<result row_count="N">` with `<row row_id="i">` children,
//!   indented as FreeSWITCH's XML printer does, or `<result row_count="0"/>\n`.
//!
//! `count` forms print only the number (`\n<N> total.\n`,
//! `{"row_count":N,"rows":[]}`, `<result row_count="N"></result>\n`).

use crate::core::Core;
use crate::interfaces::InterfaceRow;
use std::fmt::Write;
use std::sync::Arc;

/// The syntax `show` answers a bad request with (FreeSWITCH's, less the
/// forms whose data hotswitch does not keep: registrations, limits).
pub const SHOW_SYNTAX: &str = "codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|status";

/// The words `show` takes first, for completion: each form of
/// [`SHOW_SYNTAX`] and `registrations`.
pub fn forms() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SHOW_SYNTAX
        .split('|')
        .filter_map(|f| f.split_whitespace().next())
        .filter(|w| !w.starts_with(['[', '<']))
        .chain(["registrations"])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// How a table is printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Cells joined by the delimiter (`,` by default).
    Delim(String),
    Json,
    Xml,
}

impl Format {
    /// FreeSWITCH's `as <fmt> [<delim>]`; `None` for a format it refuses.
    pub fn parse(name: &str, delim: Option<&str>) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "delim" | "csv" => Some(Format::Delim(delim.unwrap_or(",").to_string())),
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    /// Splits `words… [as <fmt> [<delim>]]` into the words before `as` and
    /// the format (delimited by `,` when there is no `as`).
    pub fn split<'a>(words: &'a [&'a str]) -> Result<(&'a [&'a str], Format), String> {
        match words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
            Some(pos) if pos > 0 && pos + 1 < words.len() => {
                let name = words[pos + 1];
                match Format::parse(name, words.get(pos + 2).copied()) {
                    Some(f) => Ok((&words[..pos], f)),
                    None => Err(format!("-ERR Cannot find format {name}\n")),
                }
            }
            _ => Ok((words, Format::Delim(",".into()))),
        }
    }
}

/// Rows under named columns, in order.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// The whole table in `f`.
    pub fn render(&self, f: &Format) -> String {
        match f {
            Format::Delim(d) => {
                let mut out = String::new();
                if !self.rows.is_empty() {
                    out.push_str(&self.columns.join(d));
                    out.push('\n');
                }
                for r in &self.rows {
                    out.push_str(&r.join(d));
                    out.push('\n');
                }
                let _ = write!(out, "\n{} total.\n", self.rows.len());
                out
            }
            Format::Json => {
                if self.rows.is_empty() {
                    return "{\"row_count\": 0}\n".into();
                }
                let mut out = format!("{{\"row_count\":{},\"rows\":[", self.rows.len());
                for (i, r) in self.rows.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    for (j, (c, v)) in self.columns.iter().zip(r).enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        json_string(&mut out, c);
                        out.push(':');
                        json_string(&mut out, v);
                    }
                    out.push('}');
                }
                out.push_str("]}");
                out
            }
            Format::Xml => {
                if self.rows.is_empty() {
                    return "<result row_count=\"0\"/>\n".into();
                }
                let mut out = format!("<result row_count=\"{}\">\n", self.rows.len());
                for (i, r) in self.rows.iter().enumerate() {
                    let _ = writeln!(out, "  <row row_id=\"{}\">", i + 1);
                    for (c, v) in self.columns.iter().zip(r) {
                        let _ = write!(out, "    <{c}>");
                        xml_text(&mut out, v);
                        let _ = writeln!(out, "</{c}>");
                    }
                    out.push_str("  </row>\n");
                }
                out.push_str("</result>\n");
                out
            }
        }
    }
}

/// The `count` form of a table of `n` rows.
pub fn render_count(n: usize, f: &Format) -> String {
    match f {
        Format::Delim(_) => format!("\n{n} total.\n"),
        Format::Json => format!("{{\"row_count\":{n},\"rows\":[]}}"),
        Format::Xml => format!("<result row_count=\"{n}\"></result>\n"),
    }
}

/// A JSON string as cJSON prints it: `"`, `\`, the five named control
/// characters escaped, other control characters as `\u00xx`, the rest raw.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Element text as FreeSWITCH's XML printer writes it: `&`, `<`, `>` and CR
/// as entities, characters beyond ASCII as `&#xHEX;`.
fn xml_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c if !c.is_ascii() => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// What a `show` form produces.
enum Report {
    Rows(Table),
    Count(usize),
}

/// `show …`.
pub fn show(core: &Arc<Core>, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let Some(command) = words.first().map(|c| c.to_ascii_lowercase()) else {
        return usage();
    };
    if command.starts_with("status") {
        return crate::commands::status(core, "");
    }
    let (words, format) = match Format::split(&words) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let arg = words.get(1).copied();
    let count = arg.is_some_and(|a| a.eq_ignore_ascii_case("count"));
    let report = match command.as_str() {
        c if c.starts_with("module") => Report::Rows(interfaces(
            core,
            &["type", "name", "ikey", "filename"],
            |r| arg.is_none_or(|m| r.key == m),
        )),
        "interfaces" => Report::Rows(interfaces(core, &["type", "name", "ikey"], |_| true)),
        "interface_types" => Report::Rows(interface_types(core)),
        "application" | "api" => Report::Rows(described(core, &command, arg)),
        "tasks" => Report::Rows(tasks(core)),
        "aliases" => Report::Rows(Table::new(&["sticky", "alias", "command", "hostname"])),
        "complete" => Report::Rows(Table::new(&[
            "sticky", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "hostname",
        ])),
        "nat_map" => Report::Rows(Table::new(&["port", "proto", "proto_num", "sticky"])),
        "channels" if arg.is_some_and(|a| a.eq_ignore_ascii_case("like")) => {
            let all = crate::channel_tables::channels_table(core);
            match words.get(2) {
                Some(m) => Report::Rows(channels_like(all, m)),
                None => Report::Rows(all),
            }
        }
        "registrations" if count => Report::Count(crate::registrations::table(core).rows.len()),
        "registrations" => Report::Rows(crate::registrations::table(core)),
        "channels" if count => {
            Report::Count(crate::channel_tables::channels_table(core).rows.len())
        }
        "channels" => Report::Rows(crate::channel_tables::channels_table(core)),
        "calls" if count => {
            Report::Count(crate::channel_tables::calls_table(core, false).rows.len())
        }
        "calls" => Report::Rows(crate::channel_tables::calls_table(core, false)),
        "detailed_calls" => Report::Rows(crate::channel_tables::calls_table(core, true)),
        "bridged_calls" | "detailed_bridged_calls" => {
            let mut t = crate::channel_tables::calls_table(core, command.starts_with("detailed"));
            if let Some(b) = t.columns.iter().position(|c| *c == "b_uuid") {
                t.rows.retain(|r| !r[b].is_empty());
            }
            Report::Rows(t)
        }
        c => match typed_kind(c) {
            Some("codec") => Report::Rows(codecs(core)),
            Some(kind) => Report::Rows(interfaces(core, &["type", "name", "ikey"], |r| {
                r.kind.as_str() == kind
            })),
            None => return usage(),
        },
    };
    match report {
        Report::Rows(t) => t.render(&format),
        Report::Count(n) => render_count(n, &format),
    }
}

fn usage() -> String {
    crate::commands::usage(SHOW_SYNTAX)
}

/// `show codec|dialplan|file|timer|chat|limit|say|management|endpoint[s]`:
/// FreeSWITCH matches these by prefix and drops a trailing `s`.
fn typed_kind(command: &str) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        ("codec", "codec"),
        ("dialplan", "dialplan"),
        ("file", "file"),
        ("timer", "timer"),
        ("chat", "chat"),
        ("limit", "limit"),
        ("say", "say"),
        ("management", "management"),
        ("endpoint", "endpoint"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| command.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// The core's own codecs, under FreeSWITCH's names for them and its key
/// for the module that holds them in its core (switch_pcm.c).
const CORE_CODECS: &[&str] = &["G.711 ulaw", "G.711 alaw", "RAW Signed Linear (16 bit)"];

/// Codecs a module codes itself, under FreeSWITCH's codec interface names
/// (mod_spandsp's `G.722`, mod_opus's `OPUS (STANDARD)`): listed while the
/// module is loaded, with its name as the key, as FreeSWITCH lists the
/// module that registered each.
const MODULE_CODECS: &[(&str, &[&str])] = &[("mod_sofia", &["G.722", "OPUS (STANDARD)"])];

/// `show codec`: FreeSWITCH's `select type, name, ikey from interfaces
/// where type = 'codec' order by type,name`.
fn codecs(core: &Arc<Core>) -> Table {
    let mut rows: Vec<Vec<String>> = CORE_CODECS
        .iter()
        .map(|n| vec!["codec".into(), n.to_string(), "CORE_PCM_MODULE".into()])
        .collect();
    for (module, names) in MODULE_CODECS {
        if core.modules.get(module).is_some() {
            rows.extend(
                names
                    .iter()
                    .map(|n| vec!["codec".into(), n.to_string(), module.to_string()]),
            );
        }
    }
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    let mut t = Table::new(&["type", "name", "ikey"]);
    t.rows = rows;
    t
}

/// Every interface, ordered as FreeSWITCH's `order by type,name`.
pub fn interface_rows(core: &Arc<Core>) -> Vec<InterfaceRow> {
    let mut rows = core.registry.rows(None);
    rows.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    rows
}

fn interfaces(
    core: &Arc<Core>,
    columns: &[&'static str],
    keep: impl Fn(&InterfaceRow) -> bool,
) -> Table {
    let mut t = Table::new(columns);
    for r in interface_rows(core).into_iter().filter(|r| keep(r)) {
        let mut row = vec![r.kind.as_str().to_string(), r.name, r.key];
        if columns.len() == 4 {
            row.push(r.filename);
        }
        t.rows.push(row);
    }
    t
}

/// `show tasks`: the `sched_api` tasks waiting (the command as the task's
/// description).
fn tasks(core: &Arc<Core>) -> Table {
    let mut t = Table::new(&[
        "task_id",
        "task_desc",
        "task_group",
        "task_runtime",
        "task_sql_manager",
        "hostname",
    ]);
    for (id, command, group, at) in core.scheduler.list() {
        t.rows.push(vec![
            id.to_string(),
            command,
            group,
            at.to_string(),
            "0".into(),
            core.hostname.clone(),
        ]);
    }
    t
}

fn interface_types(core: &Arc<Core>) -> Table {
    let mut t = Table::new(&["type", "total"]);
    for r in interface_rows(core) {
        let kind = r.kind.as_str();
        match t.rows.last_mut() {
            Some(last) if last[0] == kind => {
                let n: usize = last[1].parse().unwrap_or(0);
                last[1] = (n + 1).to_string();
            }
            _ => t.rows.push(vec![kind.to_string(), "1".into()]),
        }
    }
    t
}

/// `show api|application [name]`: the described interfaces of that type.
fn described(core: &Arc<Core>, kind: &str, name: Option<&str>) -> Table {
    let mut t = Table::new(&["name", "description", "syntax", "ikey"]);
    for r in interface_rows(core) {
        if r.kind.as_str() == kind && !r.description.is_empty() && name.is_none_or(|n| r.name == n)
        {
            t.rows.push(vec![r.name, r.description, r.syntax, r.key]);
        }
    }
    t
}

/// `help [command]`: FreeSWITCH's `show help` rows — name, syntax,
/// description, module — with no title and no total.
pub fn help(core: &Arc<Core>, args: &str) -> String {
    let name = args.split_whitespace().next();
    let mut out = String::new();
    if name.is_none() {
        out.push_str("\nValid Commands:\n\n");
    }
    let mut n = 0;
    for r in interface_rows(core) {
        if r.kind.as_str() == "api" && name.is_none_or(|c| r.name == c) {
            let _ = writeln!(out, "{},{},{},{}", r.name, r.syntax, r.description, r.key);
            n += 1;
        }
    }
    if n == 0 {
        out.push_str("-ERR No such command\n");
    }
    out
}

/// `show channels like <m>`: rows whose uuid, name, caller id name or
/// number, presence data or account code contain `m` (`%` makes it a SQL
/// LIKE pattern of its own).
fn channels_like(mut t: Table, m: &str) -> Table {
    let cols: Vec<usize> = [
        "uuid",
        "name",
        "cid_name",
        "cid_num",
        "presence_data",
        "accountcode",
    ]
    .iter()
    .filter_map(|c| t.columns.iter().position(|x| x == c))
    .collect();
    let pattern = if m.contains('%') {
        m.to_string()
    } else {
        format!("%{m}%")
    };
    t.rows
        .retain(|r| cols.iter().any(|&i| sql_like(&pattern, &r[i])));
    t
}

/// SQL `LIKE` with `%` and `_`, ASCII case-insensitive (SQLite's default).
fn sql_like(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'%', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((b'_', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => {
                s.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &s[1..])
            }
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec!["type", "name", "ikey", "filename"],
            rows: vec![
                vec![
                    "api".into(),
                    "skel".into(),
                    "mod_skel".into(),
                    "/m/mod_skel.so".into(),
                ],
                vec![
                    "application".into(),
                    "a<b".into(),
                    "mod_skel".into(),
                    "é".into(),
                ],
            ],
        }
    }

    #[test]
    fn the_delimited_form_has_a_title_the_rows_unquoted_and_the_total() {
        assert_eq!(
            table().render(&Format::Delim(",".into())),
            "type,name,ikey,filename\napi,skel,mod_skel,/m/mod_skel.so\napplication,a<b,mod_skel,é\n\n2 total.\n"
        );
        assert_eq!(
            table().render(&Format::Delim("|".into())),
            "type|name|ikey|filename\napi|skel|mod_skel|/m/mod_skel.so\napplication|a<b|mod_skel|é\n\n2 total.\n"
        );
    }

    #[test]
    fn an_empty_table_prints_no_title() {
        let t = Table::new(&["type"]);
        assert_eq!(t.render(&Format::Delim(",".into())), "\n0 total.\n");
        assert_eq!(t.render(&Format::Json), "{\"row_count\": 0}\n");
        assert_eq!(t.render(&Format::Xml), "<result row_count=\"0\"/>\n");
    }

    #[test]
    fn json_keeps_the_column_order_and_has_no_trailing_newline() {
        assert_eq!(
            table().render(&Format::Json),
            "{\"row_count\":2,\"rows\":[{\"type\":\"api\",\"name\":\"skel\",\"ikey\":\"mod_skel\",\"filename\":\"/m/mod_skel.so\"},{\"type\":\"application\",\"name\":\"a<b\",\"ikey\":\"mod_skel\",\"filename\":\"é\"}]}"
        );
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\n\u{1}/");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001/\"");
    }

    #[test]
    fn xml_is_indented_as_freeswitch_prints_it() {
        assert_eq!(
            table().render(&Format::Xml),
            "<result row_count=\"2\">\n  <row row_id=\"1\">\n    <type>api</type>\n    <name>skel</name>\n    <ikey>mod_skel</ikey>\n    <filename>/m/mod_skel.so</filename>\n  </row>\n  <row row_id=\"2\">\n    <type>application</type>\n    <name>a&lt;b</name>\n    <ikey>mod_skel</ikey>\n    <filename>&#xE9;</filename>\n  </row>\n</result>\n"
        );
    }

    #[test]
    fn count_forms_print_only_the_number() {
        assert_eq!(render_count(3, &Format::Delim(",".into())), "\n3 total.\n");
        assert_eq!(
            render_count(3, &Format::Json),
            "{\"row_count\":3,\"rows\":[]}"
        );
        assert_eq!(
            render_count(3, &Format::Xml),
            "<result row_count=\"3\"></result>\n"
        );
    }

    #[test]
    fn as_takes_a_format_and_an_optional_delimiter() {
        let w = ["modules", "as", "delim", "|"];
        assert_eq!(Format::split(&w), Ok((&w[..1], Format::Delim("|".into()))));
        let w = ["calls", "count", "as", "json"];
        assert_eq!(Format::split(&w), Ok((&w[..2], Format::Json)));
        let w = ["modules"];
        assert_eq!(Format::split(&w), Ok((&w[..], Format::Delim(",".into()))));
        assert_eq!(
            Format::split(&["modules", "as", "yaml"]),
            Err("-ERR Cannot find format yaml\n".into())
        );
    }

    #[test]
    fn the_forms_are_the_first_words_of_the_syntax() {
        let f = forms();
        for w in [
            "api",
            "calls",
            "channels",
            "modules",
            "registrations",
            "status",
        ] {
            assert!(f.contains(&w), "{w} in {f:?}");
        }
        assert!(
            !f.iter().any(|w| w.starts_with('[') || w.contains(' ')),
            "{f:?}"
        );
    }

    #[test]
    fn like_matches_as_sql_does() {
        assert!(sql_like("%lo%", "loopback/9664-a"));
        assert!(sql_like("LOOP%", "loopback/9664-a"));
        assert!(!sql_like("%sofia%", "loopback/9664-a"));
        assert!(sql_like("loopback/966_-a", "loopback/9664-a"));
    }
}

//! The core's own api commands — `load`, `unload`, `reload`, `show`,
//! `module_exists`, `version`, `status`, `shutdown`, `help`, `echo`,
//! `hostname` — registered in the same registry as modules' commands, with
//! FreeSWITCH's reply texts.

use crate::core::Core;
use crate::interfaces::{ApiEntry, ApiImpl, HostApiFn, InterfaceRow};
use crate::modules::Phase;
use hotswitch_plugin_api::InterfaceKind;
use std::fmt::Write;
use std::sync::Arc;

/// The version string `version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const COMMANDS: &[(&str, &str, &str, HostApiFn)] = &[
    ("load", "Load a module", "<mod_name>", load),
    ("reloadxml", "Reload the XML configuration", "", reloadxml),
    ("unload", "Unload a module", "[-f] <mod_name>", unload),
    ("reload", "Reload a module", "[-f] <mod_name>", reload),
    (
        "show",
        "Show various reports",
        "channels|calls [count]|registrations [count]|modules|interfaces [type]|api|application|endpoint|chat [as json|csv]",
        show,
    ),
    (
        "module_exists",
        "Check if a module is loaded",
        "<module>",
        module_exists,
    ),
    ("version", "Version of the switch", "[short]", version),
    ("status", "Show current status", "", status),
    ("shutdown", "Stop the switch", "", shutdown),
    ("help", "Show help for all the api commands", "", help),
    ("echo", "Echo the arguments", "<data>", echo),
    (
        "bgapi",
        "Run an api command in the background",
        "<command> [args]",
        bgapi,
    ),
    ("hostname", "Return the system hostname", "", hostname),
    (
        "user_data",
        "Look a value up in the user directory",
        "<user>@<domain> [var|param|attr] <name>",
        crate::directory::user_data,
    ),
    (
        "user_exists",
        "Whether a user is in the directory",
        "<key> <user> <domain>",
        crate::directory::user_exists,
    ),
    (
        "find_user_xml",
        "Find a user in the directory (its XML, merged)",
        "<key> <user> <domain>",
        crate::directory::find_user_xml,
    ),
    (
        "xml_locate",
        "Find a section's element in the configuration",
        "<section> <tag> <tag_attr_name> <tag_attr_val>",
        crate::directory::xml_locate,
    ),
    (
        "registration_add",
        "Add a registration to the core's table (endpoints use it)",
        "<user> <realm> <token> <url> <expires> <network_ip> <network_port> <network_proto> [<metadata>]",
        crate::registrations::add_api,
    ),
    (
        "registration_del",
        "Remove a registration from the core's table",
        "<user> <realm> [<token>]",
        crate::registrations::del_api,
    ),
];

/// Registers the core's commands.
pub fn register(core: &Arc<Core>) {
    register_table(core, COMMANDS);
}

/// Registers a table of host api commands.
pub(crate) fn register_table(core: &Arc<Core>, table: &[(&str, &str, &str, HostApiFn)]) {
    for (name, description, syntax, f) in table {
        let added = core.registry.add_api(ApiEntry {
            name: name.to_string(),
            description: description.to_string(),
            syntax: syntax.to_string(),
            imp: ApiImpl::Host(*f),
        });
        if let Err(e) = added {
            log::error!("core command {name}: {e}");
        }
    }
}

pub(crate) fn usage(syntax: &str) -> String {
    format!("-USAGE: {syntax}\n")
}

/// Splits `[-f] name`.
fn force_and_name(args: &str) -> (bool, &str) {
    let mut force = false;
    let mut name = "";
    for w in args.split_whitespace() {
        if w == "-f" {
            force = true;
        } else if name.is_empty() {
            name = w;
        }
    }
    (force, name)
}

fn load(core: &Arc<Core>, args: &str) -> String {
    let name = args.trim();
    if name.is_empty() {
        return usage("<mod_name>");
    }
    // FreeSWITCH reloads the configuration before loading a module.
    let mut out = match core.reload_xml() {
        Ok(()) => String::from("+OK Reloading XML\n"),
        Err(e) => {
            log::error!("reloadxml: {e}");
            String::new()
        }
    };
    match core.modules.load(core, name) {
        Ok(_) => out.push_str("+OK\n"),
        Err(e) => {
            let _ = writeln!(out, "-ERR [{e}]");
        }
    }
    out
}

fn reloadxml(core: &Arc<Core>, _args: &str) -> String {
    let result = core.reload_xml();
    let mut e = core.bus.create(
        crate::event::EventType::RELOADXML,
        None,
        crate::origin!("reloadxml"),
    );
    match result {
        Ok(()) => {
            core.bus.fire(e);
            "+OK [Success]\n".into()
        }
        Err(err) => {
            log::error!("reloadxml refused, the running configuration stays: {err}");
            e.add_header("Reload-Error", err.to_string());
            core.bus.fire(e);
            format!("-ERR [{err}]\n")
        }
    }
}

fn unload(core: &Arc<Core>, args: &str) -> String {
    let (force, name) = force_and_name(args);
    if name.is_empty() {
        return usage("[-f] <mod_name>");
    }
    match core.modules.unload(core, name, force) {
        Ok(r) => match r.pinned {
            None => "+OK\n".into(),
            Some(why) => format!("+OK pinned: {why}\n"),
        },
        Err(e) => format!("-ERR [{e}]\n"),
    }
}

fn reload(core: &Arc<Core>, args: &str) -> String {
    let (force, name) = force_and_name(args);
    if name.is_empty() {
        return usage("[-f] <mod_name>");
    }
    match core.modules.reload(core, name, force) {
        Ok((report, _)) => {
            let mut out = String::new();
            match report.and_then(|r| r.pinned) {
                Some(why) => {
                    let _ = writeln!(out, "+OK module unloaded (old copy pinned: {why})");
                }
                None => out.push_str("+OK module unloaded\n"),
            }
            out.push_str("+OK module loaded\n");
            out
        }
        Err(e) => format!("-ERR [{e}]\n"),
    }
}

fn module_exists(core: &Arc<Core>, args: &str) -> String {
    let name = args.trim();
    if core.modules.get(name).is_some() {
        "true".into()
    } else {
        "false".into()
    }
}

fn version(_core: &Arc<Core>, args: &str) -> String {
    if args.trim() == "short" {
        format!("{VERSION}\n")
    } else {
        format!(
            "hotswitch Version {VERSION} (plugin-api {}, ABI {})\n",
            hotswitch_plugin_api::abi::CRATE_VERSION,
            hotswitch_plugin_api::abi::ABI_MAJOR
        )
    }
}

pub fn uptime_text(core: &Core) -> String {
    let d = core.started.elapsed();
    let total = d.as_secs();
    let years = total / (365 * 86_400);
    let days = (total / 86_400) % 365;
    let hours = (total / 3600) % 24;
    let minutes = (total / 60) % 60;
    let seconds = total % 60;
    format!(
        "UP {years} year{}, {days} day{}, {hours} hour{}, {minutes} minute{}, {seconds} second{}, {} millisecond{}, {} microsecond{}",
        plural(years),
        plural(days),
        plural(hours),
        plural(minutes),
        plural(seconds),
        d.subsec_millis(),
        plural(d.subsec_millis() as u64),
        d.subsec_micros() % 1000,
        plural((d.subsec_micros() % 1000) as u64),
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn status(core: &Arc<Core>, _args: &str) -> String {
    let mods = core.modules.list();
    let faulted = mods.iter().filter(|m| m.phase() == Phase::Faulted).count();
    let s = &core.sessions;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "{}\nhotswitch (Version {VERSION}) is ready\n{} session(s) since startup\n{} session(s) - peak {}\n{} session(s) per Sec out of max {}, peak {}\n{} session(s) max\n{} module(s) loaded, {faulted} faulted, {} pinned\n{} session worker thread(s)\n{} event(s) fired\n",
        uptime_text(core),
        ld(&s.total),
        s.count(),
        ld(&s.peak),
        s.current_sps(),
        ld(&s.sessions_per_second),
        ld(&s.peak_sps),
        ld(&s.max_sessions),
        mods.len(),
        core.modules.pinned().len(),
        core.executor.workers(),
        core.bus.fired(),
    )
}

fn shutdown(core: &Arc<Core>, _args: &str) -> String {
    core.request_shutdown();
    "+OK\n".into()
}

fn help(core: &Arc<Core>, _args: &str) -> String {
    show(core, "api")
}

fn echo(_core: &Arc<Core>, args: &str) -> String {
    format!("{args}\n")
}

/// Runs a command on its own thread; its output arrives as a
/// BACKGROUND_JOB event whose body is the output.
fn bgapi(core: &Arc<Core>, args: &str) -> String {
    let line = args.trim().to_string();
    if line.is_empty() {
        return usage("<command> [args]");
    }
    let job = uuid::Uuid::new_v4().to_string();
    let c = core.clone();
    let job_id = job.clone();
    let spawned = std::thread::Builder::new()
        .name("bgapi".into())
        .spawn(move || {
            let output = c.execute_line(&line);
            let (cmd, cmd_args) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let mut e = c.bus.create(
                crate::event::EventType::BACKGROUND_JOB,
                None,
                crate::origin!("bgapi"),
            );
            e.add_header("Job-UUID", job_id);
            e.add_header("Job-Command", cmd);
            e.add_header("Job-Command-Arg", cmd_args);
            e.body = Some(output);
            c.bus.fire(e);
        });
    match spawned {
        Ok(_) => format!("+OK Job-UUID: {job}\n"),
        Err(e) => format!("-ERR cannot start a background job: {e}\n"),
    }
}

fn hostname(core: &Arc<Core>, _args: &str) -> String {
    core.hostname.clone()
}

/// The output formats of `show`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// A table, printed FreeSWITCH's way: CSV with a header row and
/// `\nN total.\n`, or `{"row_count":N,"rows":[…]}`.
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn render(&self, f: Format) -> String {
        match f {
            Format::Csv => {
                let mut out = self.columns.join(",");
                out.push('\n');
                for r in &self.rows {
                    let cells: Vec<String> = r.iter().map(|c| csv_cell(c)).collect();
                    out.push_str(&cells.join(","));
                    out.push('\n');
                }
                let _ = write!(out, "\n{} total.\n", self.rows.len());
                out
            }
            Format::Json => {
                if self.rows.is_empty() {
                    return "{\"row_count\": 0}\n".into();
                }
                let rows: Vec<serde_json::Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        serde_json::Value::Object(
                            self.columns
                                .iter()
                                .zip(r)
                                .map(|(c, v)| (c.to_string(), serde_json::Value::String(v.clone())))
                                .collect(),
                        )
                    })
                    .collect();
                let v = serde_json::json!({"row_count": self.rows.len(), "rows": rows});
                format!("{v}\n")
            }
        }
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn show(core: &Arc<Core>, args: &str) -> String {
    let mut words: Vec<&str> = args.split_whitespace().collect();
    let mut format = Format::Csv;
    if let Some(pos) = words.iter().position(|w| *w == "as") {
        format = match words.get(pos + 1) {
            Some(&"json") => Format::Json,
            Some(&"csv") | None => Format::Csv,
            Some(other) => return format!("-ERR Cannot show as {other}\n"),
        };
        words.truncate(pos);
    }
    let table = match words.as_slice() {
        [what @ ("channels" | "calls")] => {
            return crate::session_commands::show_sessions(core, what, false, format)
        }
        [what @ ("channels" | "calls"), "count"] => {
            return crate::session_commands::show_sessions(core, what, true, format)
        }
        ["registrations"] => crate::registrations::table(core),
        ["registrations", "count"] => {
            let n = crate::registrations::table(core).rows.len();
            return match format {
                Format::Json => format!("{{\"row_count\": {n}}}\n"),
                Format::Csv => format!("\n{n} total.\n"),
            };
        }
        ["modules"] => modules_table(core),
        ["interfaces"] => interfaces_table(core.registry.rows(None)),
        ["interfaces", kind] => match kind_of(kind) {
            Some(k) => interfaces_table(core.registry.rows(Some(k))),
            None => return format!("-ERR unknown interface type {kind}\n"),
        },
        ["api"] => api_table(core.registry.rows(Some(InterfaceKind::API))),
        [kind] => match kind_of(kind) {
            Some(k) => interfaces_table(core.registry.rows(Some(k))),
            None => {
                return usage(
                    "channels|calls [count]|registrations [count]|modules|interfaces [type]|api|application|endpoint|chat [as json|csv]",
                )
            }
        },
        _ => return usage("channels|calls [count]|registrations [count]|modules|interfaces [type]|api|application|endpoint|chat [as json|csv]"),
    };
    table.render(format)
}

fn kind_of(s: &str) -> Option<InterfaceKind> {
    match s {
        "endpoint" | "endpoints" => Some(InterfaceKind::ENDPOINT),
        "application" | "applications" => Some(InterfaceKind::APPLICATION),
        "api" => Some(InterfaceKind::API),
        "chat" => Some(InterfaceKind::CHAT),
        _ => None,
    }
}

fn modules_table(core: &Arc<Core>) -> Table {
    let mut rows = Vec::new();
    for m in core.modules.list() {
        let ifaces: Vec<String> = core
            .registry
            .rows_of(&m)
            .iter()
            .map(|r| format!("{}:{}", r.kind.as_str(), r.name))
            .collect();
        rows.push(vec![
            m.name.clone(),
            m.version.clone(),
            m.phase().as_str().to_string(),
            m.source.display().to_string(),
            ifaces.join(" "),
            m.fault_reason().unwrap_or_default(),
        ]);
    }
    for p in core.modules.pinned() {
        rows.push(vec![
            p.name.clone(),
            p.version.clone(),
            "pinned".into(),
            p.shadow.display().to_string(),
            String::new(),
            p.reason.clone(),
        ]);
    }
    Table {
        columns: vec!["name", "version", "state", "filename", "interfaces", "note"],
        rows,
    }
}

fn interfaces_table(rows: Vec<InterfaceRow>) -> Table {
    Table {
        columns: vec!["type", "name", "ikey", "filename"],
        rows: rows
            .into_iter()
            .map(|r| vec![r.kind.as_str().to_string(), r.name, r.key, r.filename])
            .collect(),
    }
}

fn api_table(rows: Vec<InterfaceRow>) -> Table {
    Table {
        columns: vec!["name", "description", "syntax", "ikey"],
        rows: rows
            .into_iter()
            .map(|r| vec![r.name, r.description, r.syntax, r.key])
            .collect(),
    }
}

//! The core's own api commands — `load`, `unload`, `reload`, `reloadxml`,
//! `show` (in `show.rs`), `module_exists`, `module_list`, `version`,
//! `status`, `shutdown`, `help`, `echo`, `bgapi`, `hostname` — registered
//! in the same registry as modules' commands, with FreeSWITCH's reply
//! texts (mod_commands.c), so that clients written for FreeSWITCH parse
//! them unchanged.

use crate::core::Core;
use crate::interfaces::{ApiEntry, ApiImpl, HostApiFn};
use crate::modules::{ModError, Phase, Replaced};
use crate::show::{Format, Table};
use std::fmt::Write;
use std::sync::Arc;

/// hotswitch's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The FreeSWITCH release whose replies and behaviour hotswitch follows.
/// Clients compare these numbers first; hotswitch's identity follows them
/// in the micro part (as MariaDB answers MySQL clients `5.5.5-10.x-MariaDB`).
const FS_MAJOR: &str = "1";
const FS_MINOR: &str = "10";
const FS_MICRO: &str = "12";

const BITS: &str = if cfg!(target_pointer_width = "64") {
    "64bit"
} else {
    "32bit"
};

/// FreeSWITCH's `switch_version_micro()`: `12-hotswitch-<version>`.
fn version_micro() -> String {
    format!("{FS_MICRO}-hotswitch-{VERSION}")
}

/// FreeSWITCH's `switch_version_revision_human()`: what a git build puts
/// there (its revision), hotswitch fills with its plugin ABI.
fn version_revision_human() -> String {
    format!(
        "plugin-api {} ABI {} {BITS}",
        hotswitch_plugin_api::abi::CRATE_VERSION,
        hotswitch_plugin_api::abi::ABI_MAJOR
    )
}

/// FreeSWITCH's `switch_version_full()`: `1.10.12-hotswitch-0.1.0~64bit`.
pub fn version_full() -> String {
    format!("{FS_MAJOR}.{FS_MINOR}.{}~{BITS}", version_micro())
}

/// FreeSWITCH's `switch_version_full_human()`.
pub fn version_full_human() -> String {
    format!(
        "{FS_MAJOR}.{FS_MINOR}.{} {}",
        version_micro(),
        version_revision_human()
    )
}

const COMMANDS: &[(&str, &str, &str, HostApiFn)] = &[
    ("load", "Load Module", "<mod_name>", load),
    ("reloadxml", "Reload XML", "", reloadxml),
    ("unload", "Unload module", "[-f] <mod_name>", unload),
    ("reload", "Reload module", "[-f] <mod_name>", reload),
    (
        "show",
        "Show various reports",
        crate::show::SHOW_SYNTAX,
        crate::show::show,
    ),
    (
        "module_exists",
        "Check if module exists",
        "<module>",
        module_exists,
    ),
    (
        "module_list",
        "hotswitch's modules, each version: state (current, draining, faulted, pinned), sessions, version, file, interfaces",
        "[as json|xml|delim <d>]",
        module_list,
    ),
    ("version", "Version", "[short]", version),
    ("status", "Show current status", "", status),
    ("shutdown", "Shutdown", "", shutdown),
    (
        "help",
        "Show help for all the api commands",
        "",
        crate::show::help,
    ),
    ("echo", "Echo", "<data>", echo),
    (
        "bgapi",
        "Execute an api command in a thread",
        "<command>[ <arg>]",
        bgapi,
    ),
    ("hostname", "Return the system hostname", "", hostname),
    (
        "user_data",
        "Find user data",
        "<user>@<domain> [var|param|attr] <name>",
        crate::directory::user_data,
    ),
    (
        "user_exists",
        "Find a user",
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

/// FreeSWITCH's reload: configuration, then unload, then load, a line for
/// each. hotswitch opens and checks the new file before it unloads, so a
/// file that cannot be loaded leaves the running module in service.
fn reload(core: &Arc<Core>, args: &str) -> String {
    let (force, name) = force_and_name(args);
    if name.is_empty() {
        return usage("[-f] <mod_name>");
    }
    let mut out = match core.reload_xml() {
        Ok(()) => String::from("+OK Reloading XML\n"),
        Err(e) => {
            log::error!("reloadxml: {e}");
            String::new()
        }
    };
    match core.modules.reload(core, name, force) {
        Ok((replaced, _)) => {
            match replaced {
                Replaced::NotLoaded => out.push_str("-ERR unloading module [No such module!]\n"),
                Replaced::Unloaded(r) => match r.pinned {
                    Some(why) => {
                        let _ = writeln!(out, "+OK module unloaded (old copy pinned: {why})");
                    }
                    None => out.push_str("+OK module unloaded\n"),
                },
                Replaced::Draining { calls } => {
                    let _ = writeln!(
                        out,
                        "+OK module draining (the old copy finishes {calls} call(s))"
                    );
                }
            }
            out.push_str("+OK module loaded\n");
        }
        Err(e @ ModError::Handover(_)) => {
            let _ = writeln!(out, "-ERR [{e}]");
        }
        Err(e @ ModError::InUse) => {
            let _ = writeln!(out, "-ERR unloading module [{e}]");
            let _ = writeln!(out, "-ERR loading module [{}]", ModError::AlreadyLoaded);
        }
        Err(e @ ModError::Load(_)) => {
            let _ = writeln!(out, "-ERR loading module [{e}]");
        }
        Err(e) => {
            let _ = writeln!(out, "+OK module unloaded\n-ERR loading module [{e}]");
        }
    }
    out
}

fn module_exists(core: &Arc<Core>, args: &str) -> String {
    let name = args.trim();
    if name.is_empty() {
        return String::new();
    }
    if core.modules.get(name).is_some() {
        "true".into()
    } else {
        "false".into()
    }
}

/// `module_list [as json|xml|delim <d>]`: hotswitch's own view of its
/// modules, which `show modules` (FreeSWITCH's interface rows) cannot carry:
/// each version of each module with its state (current, draining, faulted,
/// pinned), its sessions (legs of its endpoints), version, file, interfaces
/// and a note (the fault, the calls a draining copy still finishes, or the
/// reason a library stayed mapped).
fn module_list(core: &Arc<Core>, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut all = vec!["module_list"];
    all.extend(words);
    let format = match Format::split(&all) {
        Ok((_, f)) => f,
        Err(e) => return e,
    };
    let mut t = Table::new(&[
        "name",
        "version",
        "state",
        "sessions",
        "filename",
        "interfaces",
        "note",
    ]);
    let sessions_of = |m: &Arc<crate::modules::LoadedModule>| {
        core.sessions
            .all()
            .iter()
            .filter(|s| Arc::ptr_eq(&s.endpoint.module, m))
            .count()
    };
    // Each module's versions: the current one, then those still draining
    // (newest first), as they serve.
    let mut versions = core.modules.list();
    let mut draining = core.modules.draining();
    draining.reverse();
    versions.extend(draining);
    for m in versions {
        let ifaces: Vec<String> = core
            .registry
            .rows_of(&m)
            .iter()
            .filter(|_| !m.is_draining())
            .map(|r| format!("{}:{}", r.kind.as_str(), r.name))
            .collect();
        let state = match m.phase() {
            Phase::Faulted => "faulted",
            _ if m.is_draining() => "draining",
            Phase::Loaded => "current",
            p => p.as_str(),
        };
        let note = match (m.fault_reason(), m.is_draining()) {
            (Some(f), _) => f,
            (None, true) => format!("{} call(s) in flight, {}", m.calls(), m.shadow.display()),
            (None, false) => String::new(),
        };
        t.rows.push(vec![
            m.name.clone(),
            m.version.clone(),
            state.to_string(),
            sessions_of(&m).to_string(),
            m.source.display().to_string(),
            ifaces.join(" "),
            note,
        ]);
    }
    for p in core.modules.pinned() {
        t.rows.push(vec![
            p.name.clone(),
            p.version.clone(),
            "pinned".into(),
            "0".into(),
            p.shadow.display().to_string(),
            String::new(),
            p.reason.clone(),
        ]);
    }
    t.render(&format)
}

/// `version`: `FreeSWITCH Version <full> (<revision>)`; `version short`:
/// `<major>.<minor>.<micro>`; any other argument puts the human-readable
/// full version in the parentheses (as FreeSWITCH does).
fn version(_core: &Arc<Core>, args: &str) -> String {
    let arg = args.split_whitespace().next();
    match arg {
        None => format!(
            "FreeSWITCH Version {} ({})\n",
            version_full(),
            version_revision_human()
        ),
        Some(a) if a.to_ascii_lowercase().contains("short") => {
            format!("{FS_MAJOR}.{FS_MINOR}.{}\n", version_micro())
        }
        Some(_) => format!(
            "FreeSWITCH Version {} ({})\n",
            version_full(),
            version_full_human()
        ),
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

/// `status`: FreeSWITCH's lines (the trailing spaces after the two
/// `last 5min` figures included), then hotswitch's own: modules, workers,
/// events.
pub fn status(core: &Arc<Core>, _args: &str) -> String {
    let mods = core.modules.list();
    let faulted = mods.iter().filter(|m| m.phase() == Phase::Faulted).count();
    let s = &core.sessions;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (peak_5min, sps_5min) = s.five_minute_peaks();
    let mut out = format!(
        "{}\nFreeSWITCH (Version {}) is {}\n",
        uptime_text(core),
        version_full_human(),
        if core.is_shutting_down() {
            "not ready"
        } else {
            "ready"
        }
    );
    let _ = write!(
        out,
        "{} session(s) since startup\n{} session(s) - peak {}, last 5min {peak_5min} \n{} session(s) per Sec out of max {}, peak {}, last 5min {sps_5min} \n{} session(s) max\nmin idle cpu 0.00/{:.2}\n",
        ld(&s.total),
        s.count(),
        ld(&s.peak),
        s.current_sps(),
        ld(&s.sessions_per_second),
        ld(&s.peak_sps),
        ld(&s.max_sessions),
        idle_cpu(),
    );
    if let Some((cur, max)) = stack_sizes() {
        let _ = writeln!(
            out,
            "Current Stack Size/Max {}K/{}K",
            cur / 1024,
            max / 1024
        );
    }
    let _ = write!(
        out,
        "{} module(s) loaded, {faulted} faulted, {} pinned\n{} session worker thread(s)\n{} event(s) fired\n",
        mods.len(),
        core.modules.pinned().len(),
        core.executor.workers(),
        core.bus.fired(),
    );
    out
}

/// The machine's idle CPU in percent since the previous call (since boot
/// at the first), from `/proc/stat`, as FreeSWITCH's `min idle cpu` line.
fn idle_cpu() -> f64 {
    static LAST: hotswitch_plugin_api::sync::Mutex<(u64, u64)> =
        hotswitch_plugin_api::sync::Mutex::new((0, 0));
    let Some((idle, total)) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let line = s.lines().next()?.strip_prefix("cpu ")?.to_string();
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait …: idle and iowait are idle time.
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((idle, v.iter().sum::<u64>()))
    }) else {
        return 0.0;
    };
    let mut last = LAST.lock();
    let (d_idle, d_total) = (idle.saturating_sub(last.0), total.saturating_sub(last.1));
    *last = (idle, total);
    if d_total == 0 {
        return 100.0;
    }
    d_idle as f64 * 100.0 / d_total as f64
}

/// The stack limit (soft, hard) in bytes from `/proc/self/limits`, as
/// FreeSWITCH's `getrlimit(RLIMIT_STACK)`; `unlimited` prints as the
/// C `long` it is (-1).
fn stack_sizes() -> Option<(i64, i64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max stack size"))?;
    let mut v = line["Max stack size".len()..].split_whitespace().map(|x| {
        if x == "unlimited" {
            Some(-1)
        } else {
            x.parse::<i64>().ok()
        }
    });
    Some((v.next()??, v.next()??))
}

fn shutdown(core: &Arc<Core>, _args: &str) -> String {
    core.request_shutdown();
    "+OK\n".into()
}

/// FreeSWITCH's `echo`: the arguments, with no newline added.
fn echo(_core: &Arc<Core>, args: &str) -> String {
    args.to_string()
}

/// Runs a command on its own thread; its output arrives as a
/// BACKGROUND_JOB event whose body is the output. `uuid:<job> cmd` chooses
/// the job's uuid.
fn bgapi(core: &Arc<Core>, args: &str) -> String {
    let mut line = args.trim();
    let mut job = None;
    if let Some(rest) = line
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("uuid:"))
        .map(|_| &line[5..])
    {
        if let Some((u, cmd)) = rest.split_once(' ') {
            job = Some(u.to_string());
            line = cmd.trim();
        }
    }
    if line.is_empty() {
        return "-ERR Invalid syntax\n".into();
    }
    let line = line.to_string();
    let job = job.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let c = core.clone();
    let job_id = job.clone();
    let spawned = std::thread::Builder::new()
        .name("bgapi".into())
        .spawn(move || {
            let (cmd, cmd_args) = match line.split_once(' ') {
                Some((c, a)) => (c, Some(a)),
                None => (line.as_str(), None),
            };
            let output = match c.execute_api(
                cmd,
                cmd_args.unwrap_or(""),
                hotswitch_plugin_api::SessionRef::NULL,
            ) {
                Ok(o) if o.is_empty() => "Command returned no output!".to_string(),
                Ok(o) => o,
                Err(_) => format!("{cmd}: Command not found!\n"),
            };
            let mut e = c.bus.create(
                crate::event::EventType::BACKGROUND_JOB,
                None,
                crate::origin!("bgapi"),
            );
            e.add_header("Job-UUID", job_id);
            e.add_header("Job-Command", cmd);
            if let Some(a) = cmd_args {
                e.add_header("Job-Command-Arg", a);
            }
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

//! The core's call commands: `originate`, `uuid_kill`, `uuid_exists`,
//! `uuid_getvar`, `uuid_setvar`, `uuid_answer`, `uuid_park`,
//! `uuid_transfer`, `uuid_bridge`, `uuid_send_dtmf`, `uuid_recv_dtmf`,
//! `uuid_display`, `hupall`, `create_uuid`, `global_getvar`,
//! `global_setvar`, `eval`, `expand`, `sched_api`, `sched_del` — with
//! FreeSWITCH's reply texts (mod_commands.c). Their `show` tables are in
//! `channel_tables.rs`.

use crate::commands::usage;
use crate::core::{ChannelVars, Core, GlobalVars};
use crate::interfaces::HostApiFn;
use crate::originate::{self, Request};
use crate::session::Session;
use crate::state_machine::{self, str2cause};
use hotswitch_plugin_api::{CallCause, ChannelState, Profile};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

const COMMANDS: &[(&str, &str, &str, HostApiFn)] = &[
    (
        "originate",
        "Originate a call",
        "<call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]",
        originate_cmd,
    ),
    ("uuid_kill", "Kill channel", "<uuid> [cause]", uuid_kill),
    ("uuid_exists", "Check if a uuid exists", "<uuid>", uuid_exists),
    ("uuid_getvar", "Get a variable from a channel", "<uuid> <var>", uuid_getvar),
    ("uuid_setvar", "Set a variable", "<uuid> <var> [value]", uuid_setvar),
    ("uuid_answer", "answer", "<uuid>", uuid_answer),
    ("uuid_park", "Park channel", "<uuid>", uuid_park),
    (
        "uuid_transfer",
        "Transfer a session",
        "<uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]",
        uuid_transfer,
    ),
    ("uuid_bridge", "Bridge call legs", "<uuid> <other_uuid>", uuid_bridge),
    (
        "uuid_send_dtmf",
        "Send dtmf digits",
        "<uuid> <dtmf_data>",
        uuid_send_dtmf,
    ),
    (
        "uuid_recv_dtmf",
        "Receive dtmf digits",
        "<uuid> <dtmf_data>",
        uuid_recv_dtmf,
    ),
    (
        "uuid_display",
        "Update phone display",
        "<uuid> <display>",
        uuid_display,
    ),
    (
        "hupall",
        "hupall",
        "<cause> [<var> <value>] [<var2> <value2>]",
        hupall,
    ),
    (
        "media_stats",
        "Lateness of the real-time media timer (p50/p99/max)",
        "[reset]",
        media_stats,
    ),
    ("create_uuid", "Create a uuid", "", create_uuid),
    ("global_getvar", "Get global var", "<var>", global_getvar),
    (
        "global_setvar",
        "Set global var",
        "<var>=<value> [=<value2>]",
        global_setvar,
    ),
    ("eval", "eval (noop)", "[uuid:<uuid> ]<expression>", eval),
    ("expand", "Execute an api with variable expansion", "[uuid:<uuid> ]<cmd> <args>", expand_cmd),
    (
        "sched_api",
        "Schedule an api command",
        "[+@]<time> <group_name> <command_string>[&]",
        sched_api,
    ),
    ("sched_del", "Delete a scheduled task", "<task_id>|<group_id>", sched_del),
];

/// Registers the call commands.
pub fn register(core: &Arc<Core>) {
    crate::commands::register_table(core, COMMANDS);
}

/// Splits arguments at white space, keeping `'…'`-quoted runs (and
/// `{…}`/`[…]` blocks) whole.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = false;
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '\'' => {
                quote = !quote;
                cur.push(c);
            }
            '{' | '[' if !quote => {
                depth += 1;
                cur.push(c);
            }
            '}' | ']' if !quote => {
                depth -= 1;
                cur.push(c);
            }
            c if c.is_whitespace() && !quote && depth <= 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if depth != 0 || quote {
        // Unbalanced: split plainly, and let the dial-string parser say
        // what is wrong with its part.
        return s.split_whitespace().map(str::to_string).collect();
    }
    out
}

/// `&app(args)` → (app, args); as FreeSWITCH, the text ends at the first
/// `)` and a missing one is no error.
fn parse_app(s: &str) -> Option<(String, String)> {
    let s = s.strip_prefix('&')?;
    let s = s.split_once(')').map_or(s, |(x, _)| x);
    match s.split_once('(') {
        Some((app, args)) => Some((app.to_string(), args.to_string())),
        None => Some((s.to_string(), String::new())),
    }
}

fn originate_cmd(core: &Arc<Core>, args: &str) -> String {
    const SYNTAX: &str = "<call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]";
    let mut a = split_args(args);
    if a.len() < 2 {
        return usage(SYNTAX);
    }
    // `&app(with args)` may have been split at spaces inside the parentheses.
    if a[1].starts_with('&') && a[1].contains('(') && !a[1].ends_with(')') {
        while a.len() > 2 && !a[1].ends_with(')') {
            let next = a.remove(2);
            a[1].push(' ');
            a[1].push_str(&next);
        }
    }
    if a.len() > 7 {
        return usage(SYNTAX);
    }
    // FreeSWITCH: `undef` stands for an argument left out.
    let arg = |i: usize| a.get(i).filter(|x| !x.eq_ignore_ascii_case("undef"));
    let dialplan = arg(2).map(String::as_str).unwrap_or("XML");
    let context = arg(3).map(String::as_str).unwrap_or("default");
    let profile = Profile {
        caller_id_name: arg(4).cloned().unwrap_or_else(|| "hotswitch".into()),
        caller_id_number: arg(5).cloned().unwrap_or_else(|| "0000000000".into()),
        dialplan: dialplan.to_string(),
        context: context.to_string(),
        ..Default::default()
    };
    let timeout = arg(6).and_then(|t| t.parse::<u64>().ok()).unwrap_or(60);
    let app = if a[1].len() > 1 {
        parse_app(&a[1])
    } else {
        None
    };
    let result = originate::originate(
        core,
        Request {
            dialstring: &a[0],
            timeout: Duration::from_secs(timeout),
            originator: None,
            profile,
        },
    );
    match result {
        Ok(s) => {
            match app {
                Some(app) => originate::resume(&s, Some(vec![app]), None),
                None => originate::resume(&s, None, Some((&a[1], dialplan, context))),
            }
            format!("+OK {}\n", s.uuid)
        }
        Err(c) => format!("-ERR {}\n", c.name().unwrap_or("NORMAL_UNSPECIFIED")),
    }
}

fn find(core: &Core, uuid: &str) -> Option<Arc<Session>> {
    core.sessions.get(uuid.trim())
}

const NO_SUCH_CHANNEL: &str = "-ERR No such channel!\n";

fn uuid_kill(core: &Arc<Core>, args: &str) -> String {
    let mut w = args.split_whitespace();
    let Some(uuid) = w.next() else {
        return usage("<uuid> [cause]");
    };
    let cause = w.next().map(str2cause).filter(|c| *c != CallCause::NONE);
    match find(core, uuid) {
        Some(s) => {
            state_machine::hangup(core, &s, cause.unwrap_or(CallCause::NORMAL_CLEARING));
            "+OK\n".into()
        }
        None => NO_SUCH_CHANNEL.into(),
    }
}

fn uuid_exists(core: &Arc<Core>, args: &str) -> String {
    if find(core, args).is_some() {
        "true".into()
    } else {
        "false".into()
    }
}

fn uuid_getvar(core: &Arc<Core>, args: &str) -> String {
    let mut w = args.split_whitespace();
    let (Some(uuid), Some(var)) = (w.next(), w.next()) else {
        return usage("<uuid> <var>");
    };
    match find(core, uuid) {
        Some(s) => s.ch().var_or_field(var).unwrap_or_else(|| "_undef_".into()),
        None => NO_SUCH_CHANNEL.into(),
    }
}

fn uuid_setvar(core: &Arc<Core>, args: &str) -> String {
    let mut w = args.splitn(3, char::is_whitespace);
    let (Some(uuid), Some(var)) = (w.next(), w.next()) else {
        return usage("<uuid> <var> [value]");
    };
    let value = w.next().unwrap_or("").trim();
    if uuid.is_empty() || var.is_empty() {
        return usage("<uuid> <var> [value]");
    }
    match find(core, uuid) {
        Some(s) => {
            s.ch().set_var(var, value);
            "+OK\n".into()
        }
        None => NO_SUCH_CHANNEL.into(),
    }
}

/// FreeSWITCH answers `-ERROR` both for a channel it cannot find and for
/// one that would not answer.
fn uuid_answer(core: &Arc<Core>, args: &str) -> String {
    match find(core, args) {
        Some(s) if state_machine::answer(core, &s).is_success() => "+OK\n".into(),
        _ => "-ERROR\n".into(),
    }
}

fn uuid_park(core: &Arc<Core>, args: &str) -> String {
    if args.trim().is_empty() {
        return usage("<uuid>");
    }
    match find(core, args) {
        Some(s) => {
            if state_machine::set_state(&s, ChannelState::PARK) {
                s.notify();
                "+OK\n".into()
            } else {
                "-ERR cannot park the channel in its state\n".into()
            }
        }
        None => NO_SUCH_CHANNEL.into(),
    }
}

fn uuid_transfer(core: &Arc<Core>, args: &str) -> String {
    const SYNTAX: &str = "<uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]";
    let a: Vec<&str> = args.split_whitespace().collect();
    if a.len() < 2 || a.len() > 5 {
        return usage(SYNTAX);
    }
    let Some(s) = find(core, a[0]) else {
        return NO_SUCH_CHANNEL.into();
    };
    let (legs, rest) = match a[1] {
        "-bleg" | "-both" => (a[1], &a[2..]),
        _ => ("", &a[1..]),
    };
    let Some(dest) = rest.first() else {
        return usage(SYNTAX);
    };
    let dp = rest.get(1).copied().unwrap_or("XML");
    let ctx = rest.get(2).copied().unwrap_or("default");
    let other = s
        .ch()
        .bridged_to
        .clone()
        .and_then(|u| core.sessions.get(&u));
    let mut targets = Vec::new();
    match legs {
        "-bleg" => targets.extend(other),
        "-both" => {
            targets.push(s.clone());
            targets.extend(other);
        }
        _ => targets.push(s.clone()),
    }
    if targets.is_empty() {
        return "-ERR no B leg to transfer\n".into();
    }
    for t in targets {
        state_machine::transfer(&t, dest, dp, ctx);
        t.notify();
    }
    "+OK\n".into()
}

fn uuid_bridge(core: &Arc<Core>, args: &str) -> String {
    let a: Vec<&str> = args.split_whitespace().collect();
    if a.len() < 2 {
        return usage("<uuid> <other_uuid>");
    }
    // FreeSWITCH tries a third uuid, if given, when the second fails.
    for other in a[1..].iter().take(2) {
        let (Some(x), Some(y)) = (find(core, a[0]), find(core, other)) else {
            continue;
        };
        match crate::bridge::bridge(core, &x, &y) {
            Ok(()) => return format!("+OK {}\n", y.uuid),
            Err(e) => log::info!("uuid_bridge {} {}: {e}", x.uuid, y.uuid),
        }
    }
    "-ERR Invalid uuid\n".into()
}

/// `<digits>[@<ms>]` → digits and duration (`w`/`W` pauses are dropped).
fn parse_digits(s: &str) -> Option<(Vec<char>, u32)> {
    let (digits, ms) = match s.split_once('@') {
        Some((d, ms)) => (d, ms.parse().ok()?),
        None => (s, 100),
    };
    let v: Vec<char> = digits
        .chars()
        .filter(|c| !matches!(c, 'w' | 'W'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (!v.is_empty()
        && v.iter()
            .all(|c| c.is_ascii_digit() || "*#ABCD".contains(*c)))
    .then_some((v, ms))
}

const DTMF_SYNTAX: &str = "<uuid> <dtmf_data>";

/// The session, its digits and duration, and the digits as given.
type DtmfTarget<'a> = (Arc<Session>, Vec<char>, u32, &'a str);

fn dtmf_target<'a>(core: &Arc<Core>, args: &'a str) -> Result<DtmfTarget<'a>, String> {
    let mut w = args.split_whitespace();
    let (Some(uuid), Some(d)) = (w.next(), w.next()) else {
        return Err(usage(DTMF_SYNTAX));
    };
    let s = find(core, uuid).ok_or_else(|| "-ERR Cannot locate session!\n".to_string())?;
    let (digits, ms) = parse_digits(d).ok_or_else(|| usage(DTMF_SYNTAX))?;
    Ok((s, digits, ms, d))
}

fn uuid_send_dtmf(core: &Arc<Core>, args: &str) -> String {
    let (s, digits, ms, given) = match dtmf_target(core, args) {
        Ok(t) => t,
        Err(e) => return e,
    };
    for c in digits {
        let st = state_machine::send_dtmf(&s, c, ms);
        if !st.is_success() {
            log::info!(
                "uuid_send_dtmf {}: the endpoint refused {c} ({st:?})",
                s.uuid
            );
            return "-ERR Operation failed\n".into();
        }
    }
    format!("+OK {} sent DTMF {given}.\n", s.uuid)
}

/// FreeSWITCH's `uuid_display`: the endpoint gets a DISPLAY message with
/// `name|number`, and shows it (verto: `verto.display`).
fn uuid_display(core: &Arc<Core>, args: &str) -> String {
    let Some((uuid, display)) = args
        .trim()
        .split_once(char::is_whitespace)
        .filter(|(_, d)| !d.trim().is_empty())
    else {
        return usage("<uuid> <display>");
    };
    let st = match find(core, uuid) {
        Some(s) => state_machine::deliver_message(
            &s,
            hotswitch_plugin_api::MessageId::DISPLAY,
            display.trim(),
            0,
        ),
        None => hotswitch_plugin_api::Status::FALSE,
    };
    if st.is_success() {
        "+OK Success\n".into()
    } else {
        "-ERR Operation failed\n".into()
    }
}

fn uuid_recv_dtmf(core: &Arc<Core>, args: &str) -> String {
    let (s, digits, ms, given) = match dtmf_target(core, args) {
        Ok(t) => t,
        Err(e) => return e,
    };
    for c in digits {
        s.queue_dtmf(
            core,
            hotswitch_plugin_api::Dtmf {
                digit: c as u32,
                duration_ms: ms,
                source: 4,
            },
        );
    }
    format!("+OK {} received DTMF {given}.\n", s.uuid)
}

/// `hupall [<cause> [<var> <value>]…]`: every channel, or those whose
/// variables all match; FreeSWITCH's three reply forms (the colon only in
/// the filtered ones).
fn hupall(core: &Arc<Core>, args: &str) -> String {
    let a: Vec<&str> = args.split_whitespace().collect();
    let cause = a
        .first()
        .map(|c| str2cause(c))
        .filter(|c| *c != CallCause::NONE)
        .unwrap_or(CallCause::MANAGER_REQUEST);
    let filters: Vec<(&str, &str)> = a
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|p| (p[0], p[1]))
        .collect();
    let mut n = 0;
    for s in core.sessions.all() {
        let matches = filters
            .iter()
            .all(|(var, val)| s.ch().var_or_field(var).as_deref() == Some(*val));
        if matches && state_machine::hangup(core, &s, cause) {
            n += 1;
        }
    }
    let name = cause.name().unwrap_or("");
    log::info!("hupall: {n} channel(s) hung up with {name}");
    match filters.as_slice() {
        [] => format!("+OK hangup all channels with cause {name}\n"),
        [(var, val)] => {
            format!("+OK hangup all channels matching [{var}]=[{val}] with cause: {name}\n")
        }
        [(var, val), ..] => {
            format!("+OK hangup all channels matching [{var}]=[{val}]... with cause: {name}\n")
        }
    }
}

fn media_stats(_core: &Arc<Core>, args: &str) -> String {
    let mut p = crate::media_io::PACING.lock();
    if args.trim() == "reset" {
        *p = None;
        return "+OK\n".into();
    }
    let st = p.get_or_insert_with(crate::media::pacer::Stats::new);
    format!(
        "frames: {}\nlate_p50_us: {}\nlate_p99_us: {}\nlate_max_us: {}\n",
        st.count(),
        st.p50().as_micros(),
        st.p99().as_micros(),
        st.max().as_micros()
    )
}

fn create_uuid(_core: &Arc<Core>, _args: &str) -> String {
    uuid::Uuid::new_v4().to_string()
}

fn global_getvar(core: &Arc<Core>, args: &str) -> String {
    let name = args.trim();
    if name.is_empty() {
        let mut out = String::new();
        for (k, v) in core.globals() {
            let _ = writeln!(out, "{k}={v}");
        }
        return out;
    }
    core.global(name).unwrap_or_default()
}

/// `global_setvar <var>=<value> [=<expected>]`: with `=<expected>` the
/// variable is set only while it still holds that value. FreeSWITCH
/// replies `+OK` with no newline.
fn global_setvar(core: &Arc<Core>, args: &str) -> String {
    let mut parts = args.splitn(3, '=').map(str::trim);
    let name = parts.next().unwrap_or("");
    if name.is_empty() {
        return usage("<var>=<value> [=<value2>]");
    }
    let value = parts.next().unwrap_or("");
    match parts.next().filter(|e| !e.is_empty()) {
        Some(expected) if core.global(name).as_deref() != Some(expected) => {}
        _ => core.set_global(name, value),
    }
    "+OK".into()
}

/// `uuid:<u> rest` → (session, rest). As FreeSWITCH, a uuid that names no
/// channel just leaves the channel's variables out.
fn with_uuid<'a>(core: &Arc<Core>, args: &'a str) -> (Option<Arc<Session>>, &'a str) {
    let args = args.trim();
    match args.strip_prefix("uuid:") {
        Some(rest) => {
            let (uuid, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            (find(core, uuid), rest.trim_start())
        }
        None => (None, args),
    }
}

fn expand_with(core: &Arc<Core>, s: &Option<Arc<Session>>, text: &str) -> String {
    match s {
        Some(s) => crate::expand::expand(text, &ChannelVars { core, session: s }),
        None => crate::expand::expand(text, &GlobalVars(core)),
    }
}

fn eval(core: &Arc<Core>, args: &str) -> String {
    let (s, text) = with_uuid(core, args);
    expand_with(core, &s, text)
}

/// `expand [uuid:<u> ]<cmd> <args>`: the arguments are expanded, the
/// command name is not.
fn expand_cmd(core: &Arc<Core>, args: &str) -> String {
    let (s, text) = with_uuid(core, args);
    if text.is_empty() {
        return "-ERR No input\n".into();
    }
    let (cmd, cmd_args) = text.split_once(' ').unwrap_or((text, ""));
    let expanded = expand_with(core, &s, cmd_args);
    match core.execute_api(cmd, &expanded, hotswitch_plugin_api::SessionRef::NULL) {
        Ok(out) => out,
        Err(_) => "-ERR Cannot execute command\n".into(),
    }
}

fn sched_api(core: &Arc<Core>, args: &str) -> String {
    const SYNTAX: &str = "[+@]<time> <group_name> <command_string>[&]";
    let mut w = args.trim().splitn(3, char::is_whitespace);
    let bad = || format!("-ERR Invalid syntax. USAGE: {SYNTAX}\n");
    let (Some(when), Some(group), Some(cmd)) = (w.next(), w.next(), w.next()) else {
        return bad();
    };
    let Some((at, every)) = crate::scheduler::parse_when(when) else {
        return bad();
    };
    // A trailing `&` asks FreeSWITCH for a thread of its own; the scheduler
    // thread runs every task here, so it is accepted and dropped.
    let cmd = cmd.trim();
    let cmd = cmd.strip_suffix('&').unwrap_or(cmd);
    let id = core.scheduler.add(at, every, group, cmd);
    format!("+OK Added: {id}\n")
}

fn sched_del(core: &Arc<Core>, args: &str) -> String {
    let key = args.trim();
    if key.is_empty() {
        return "-ERR Invalid syntax\n".into();
    }
    format!("+OK Deleted: {}\n", core.scheduler.remove(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_at_spaces_but_not_inside_quotes_or_blocks() {
        assert_eq!(
            split_args("{a=b c}loopback/1 &park() XML 'my ctx'"),
            vec!["{a=b c}loopback/1", "&park()", "XML", "'my ctx'"]
        );
    }

    #[test]
    fn an_application_and_its_arguments_come_out_of_the_ampersand_form() {
        assert_eq!(parse_app("&park()"), Some(("park".into(), String::new())));
        assert_eq!(
            parse_app("&sleep(100)"),
            Some(("sleep".into(), "100".into()))
        );
        assert_eq!(parse_app("&echo"), Some(("echo".into(), String::new())));
        assert_eq!(parse_app("&sleep(5"), Some(("sleep".into(), "5".into())));
        assert_eq!(parse_app("9664"), None);
    }
}

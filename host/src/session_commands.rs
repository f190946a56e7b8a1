//! The core's call commands: `originate`, `show channels|calls`,
//! `uuid_kill`, `uuid_exists`, `uuid_getvar`, `uuid_setvar`, `uuid_answer`,
//! `uuid_park`, `uuid_transfer`, `uuid_bridge`, `uuid_display`, `hupall`, `create_uuid`,
//! `global_getvar`, `global_setvar`, `eval`, `expand`, `sched_api`,
//! `sched_del` — with FreeSWITCH's reply texts.

use crate::commands::{usage, Format, Table};
use crate::core::{ChannelVars, Core, GlobalVars};
use crate::interfaces::HostApiFn;
use crate::originate::{self, Request};
use crate::session::{state_name, Session};
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
    ("uuid_answer", "Answer a channel", "<uuid>", uuid_answer),
    ("uuid_park", "Park a channel", "<uuid>", uuid_park),
    (
        "uuid_transfer",
        "Transfer a session",
        "<uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]",
        uuid_transfer,
    ),
    ("uuid_bridge", "Bridge two channels", "<uuid> <other_uuid>", uuid_bridge),
    (
        "uuid_send_dtmf",
        "Send DTMF digits to the far end",
        "<uuid> <digits>[@<tone_duration>]",
        uuid_send_dtmf,
    ),
    (
        "uuid_recv_dtmf",
        "Receive DTMF digits as if from the far end",
        "<uuid> <digits>[@<tone_duration>]",
        uuid_recv_dtmf,
    ),
    (
        "uuid_display",
        "Update the far party's name and number shown by a phone",
        "<uuid> <name>[|<number>]",
        uuid_display,
    ),
    ("hupall", "Hangup all channels", "<cause> [<var> <value>]", hupall),
    (
        "media_stats",
        "Lateness of the real-time media timer (p50/p99/max)",
        "[reset]",
        media_stats,
    ),
    ("create_uuid", "Create a uuid", "", create_uuid),
    ("global_getvar", "Get global var", "<var>", global_getvar),
    ("global_setvar", "Set global var", "<var>=<value>", global_setvar),
    ("eval", "eval (noop)", "[uuid:<uuid> ]<expression>", eval),
    ("expand", "Execute an api with variable expansion", "[uuid:<uuid> ]<cmd> <args>", expand_cmd),
    (
        "sched_api",
        "Schedule an api command",
        "[+@]<time> <group_name> <command_string>",
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

/// `&app(args)` → (app, args).
fn parse_app(s: &str) -> Option<(String, String)> {
    let s = s.strip_prefix('&')?;
    match s.find('(') {
        Some(i) => {
            let args = s[i + 1..].strip_suffix(')')?;
            Some((s[..i].to_string(), args.to_string()))
        }
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
    let dialplan = a.get(2).map(String::as_str).unwrap_or("XML");
    let context = a.get(3).map(String::as_str).unwrap_or("default");
    let profile = Profile {
        caller_id_name: a.get(4).cloned().unwrap_or_else(|| "hotswitch".into()),
        caller_id_number: a.get(5).cloned().unwrap_or_else(|| "0000000000".into()),
        dialplan: dialplan.to_string(),
        context: context.to_string(),
        ..Default::default()
    };
    let timeout = a.get(6).and_then(|t| t.parse::<u64>().ok()).unwrap_or(60);
    let app = if a[1].starts_with('&') {
        match parse_app(&a[1]) {
            Some(x) => Some(x),
            None => return format!("-ERR invalid application {}\n", a[1]),
        }
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
    match find(core, uuid) {
        Some(s) => {
            s.ch().set_var(var, value);
            "+OK\n".into()
        }
        None => NO_SUCH_CHANNEL.into(),
    }
}

fn uuid_answer(core: &Arc<Core>, args: &str) -> String {
    match find(core, args) {
        Some(s) => {
            if state_machine::answer(core, &s).is_success() {
                "+OK\n".into()
            } else {
                "-ERR answer failed\n".into()
            }
        }
        None => NO_SUCH_CHANNEL.into(),
    }
}

fn uuid_park(core: &Arc<Core>, args: &str) -> String {
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
    if a.len() < 2 {
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
    if a.len() != 2 {
        return usage("<uuid> <other_uuid>");
    }
    let (Some(x), Some(y)) = (find(core, a[0]), find(core, a[1])) else {
        return "-ERR Invalid uuid\n".into();
    };
    match crate::bridge::bridge(core, &x, &y) {
        Ok(()) => format!("+OK {}\n", y.uuid),
        Err(e) => format!("-ERR {e}\n"),
    }
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

fn dtmf_target(core: &Arc<Core>, args: &str) -> Result<(Arc<Session>, Vec<char>, u32), String> {
    let mut w = args.split_whitespace();
    let (Some(uuid), Some(d)) = (w.next(), w.next()) else {
        return Err(usage("<uuid> <digits>[@<tone_duration>]"));
    };
    let s = find(core, uuid).ok_or_else(|| NO_SUCH_CHANNEL.to_string())?;
    let (digits, ms) = parse_digits(d).ok_or_else(|| format!("-ERR invalid digits {d}\n"))?;
    Ok((s, digits, ms))
}

fn uuid_send_dtmf(core: &Arc<Core>, args: &str) -> String {
    let (s, digits, ms) = match dtmf_target(core, args) {
        Ok(t) => t,
        Err(e) => return e,
    };
    for c in digits {
        let st = state_machine::send_dtmf(&s, c, ms);
        if !st.is_success() {
            return format!("-ERR the endpoint refused the digit ({st:?})\n");
        }
    }
    "+OK Success\n".into()
}

/// FreeSWITCH's `uuid_display`: the endpoint gets a DISPLAY message with
/// `name|number`, and shows it (verto: `verto.display`).
fn uuid_display(core: &Arc<Core>, args: &str) -> String {
    let Some((uuid, display)) = args.trim().split_once(char::is_whitespace) else {
        return usage("<uuid> <name>[|<number>]");
    };
    let Some(s) = find(core, uuid) else {
        return NO_SUCH_CHANNEL.into();
    };
    let st = state_machine::deliver_message(
        &s,
        hotswitch_plugin_api::MessageId::DISPLAY,
        display.trim(),
        0,
    );
    if st.is_success() {
        "+OK Success\n".into()
    } else {
        format!("-ERR the endpoint refused the display ({st:?})\n")
    }
}

fn uuid_recv_dtmf(core: &Arc<Core>, args: &str) -> String {
    let (s, digits, ms) = match dtmf_target(core, args) {
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
    "+OK Success\n".into()
}

fn hupall(core: &Arc<Core>, args: &str) -> String {
    let a: Vec<&str> = args.split_whitespace().collect();
    let cause = a
        .first()
        .map(|c| str2cause(c))
        .filter(|c| *c != CallCause::NONE)
        .unwrap_or(CallCause::MANAGER_REQUEST);
    let filter = match (a.get(1), a.get(2)) {
        (Some(var), Some(val)) => Some((*var, *val)),
        (Some(_), None) => return usage("<cause> [<var> <value>]"),
        _ => None,
    };
    let mut n = 0;
    for s in core.sessions.all() {
        let matches = match filter {
            Some((var, val)) => s.ch().var_or_field(var).as_deref() == Some(val),
            None => true,
        };
        if matches && state_machine::hangup(core, &s, cause) {
            n += 1;
        }
    }
    log::info!(
        "hupall: {n} channel(s) hung up with {}",
        cause.name().unwrap_or("")
    );
    match filter {
        Some((var, val)) => format!(
            "+OK hangup all channels matching [{var}]=[{val}] with cause {}\n",
            cause.name().unwrap_or("")
        ),
        None => format!(
            "+OK hangup all channels with cause {}\n",
            cause.name().unwrap_or("")
        ),
    }
}

fn media_stats(_core: &Arc<Core>, args: &str) -> String {
    let mut p = crate::media_io::PACING
        .lock()
        .unwrap_or_else(|e| e.into_inner());
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

fn global_setvar(core: &Arc<Core>, args: &str) -> String {
    let Some((k, v)) = args.split_once('=') else {
        return usage("<var>=<value>");
    };
    core.set_global(k.trim(), v.trim());
    "+OK\n".into()
}

/// `uuid:<u> rest` → (session, rest).
fn with_uuid<'a>(
    core: &Arc<Core>,
    args: &'a str,
) -> Result<(Option<Arc<Session>>, &'a str), String> {
    let args = args.trim();
    match args.strip_prefix("uuid:") {
        Some(rest) => {
            let (uuid, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match find(core, uuid) {
                Some(s) => Ok((Some(s), rest.trim_start())),
                None => Err(NO_SUCH_CHANNEL.into()),
            }
        }
        None => Ok((None, args)),
    }
}

fn expand_with(core: &Arc<Core>, s: &Option<Arc<Session>>, text: &str) -> String {
    match s {
        Some(s) => crate::expand::expand(text, &ChannelVars { core, session: s }),
        None => crate::expand::expand(text, &GlobalVars(core)),
    }
}

fn eval(core: &Arc<Core>, args: &str) -> String {
    match with_uuid(core, args) {
        Ok((s, text)) => expand_with(core, &s, text),
        Err(e) => e,
    }
}

fn expand_cmd(core: &Arc<Core>, args: &str) -> String {
    match with_uuid(core, args) {
        Ok((s, text)) => {
            let line = expand_with(core, &s, text);
            core.execute_line(&line)
        }
        Err(e) => e,
    }
}

fn sched_api(core: &Arc<Core>, args: &str) -> String {
    const SYNTAX: &str = "[+@]<time> <group_name> <command_string>";
    let mut w = args.trim().splitn(3, char::is_whitespace);
    let (Some(when), Some(group), Some(cmd)) = (w.next(), w.next(), w.next()) else {
        return usage(SYNTAX);
    };
    let Some((at, every)) = crate::scheduler::parse_when(when) else {
        return usage(SYNTAX);
    };
    let id = core.scheduler.add(at, every, group, cmd.trim());
    format!("+OK Added: {id}\n")
}

fn sched_del(core: &Arc<Core>, args: &str) -> String {
    let key = args.trim();
    if key.is_empty() {
        return usage("<task_id>|<group_id>");
    }
    format!("+OK Deleted: {}\n", core.scheduler.remove(key))
}

/// `show channels [count]`: FreeSWITCH's columns.
pub fn channels_table(core: &Arc<Core>) -> Table {
    let mut rows = Vec::new();
    for s in core.sessions.all() {
        let ch = s.ch();
        let p = &ch.profile;
        let created = chrono::DateTime::<chrono::Local>::from(
            std::time::UNIX_EPOCH + Duration::from_micros(ch.times.created),
        );
        let v = |n: &str| ch.var(n).unwrap_or("").to_string();
        rows.push(vec![
            s.uuid.clone(),
            s.direction.as_str().into(),
            created.format("%Y-%m-%d %H:%M:%S").to_string(),
            (ch.times.created / 1_000_000).to_string(),
            ch.name.clone(),
            state_name(ch.state),
            p.caller_id_name.clone(),
            p.caller_id_number.clone(),
            p.network_addr.clone(),
            p.destination_number.clone(),
            v("current_application"),
            v("current_application_data"),
            p.dialplan.clone(),
            p.context.clone(),
            ch.callstate.as_str().into(),
            p.callee_id_name.clone(),
            p.callee_id_number.clone(),
            ch.var("call_uuid").unwrap_or(&s.uuid).to_string(),
            core.hostname.clone(),
        ]);
    }
    Table {
        columns: vec![
            "uuid",
            "direction",
            "created",
            "created_epoch",
            "name",
            "state",
            "cid_name",
            "cid_num",
            "ip_addr",
            "dest",
            "application",
            "application_data",
            "dialplan",
            "context",
            "callstate",
            "callee_name",
            "callee_num",
            "call_uuid",
            "hostname",
        ],
        rows,
    }
}

/// `show calls`: each channel with the leg it is bridged to (`b_*`).
pub fn calls_table(core: &Arc<Core>) -> Table {
    let chans = channels_table(core);
    let mut rows = Vec::new();
    let mut seen_b = std::collections::HashSet::new();
    for s in core.sessions.all() {
        if seen_b.contains(&s.uuid) {
            continue;
        }
        let row = chans
            .rows
            .iter()
            .find(|r| r[0] == s.uuid)
            .cloned()
            .unwrap_or_default();
        let b = s.ch().bridged_to.clone();
        let b_row = b
            .as_ref()
            .and_then(|u| chans.rows.iter().find(|r| &r[0] == u).cloned())
            .unwrap_or_else(|| vec![String::new(); 10]);
        if let Some(u) = b {
            seen_b.insert(u);
        }
        let mut r: Vec<String> = row.into_iter().take(10).collect();
        r.extend(b_row.into_iter().take(10));
        rows.push(r);
    }
    let mut columns: Vec<&'static str> = chans.columns[..10].to_vec();
    columns.extend([
        "b_uuid",
        "b_direction",
        "b_created",
        "b_created_epoch",
        "b_name",
        "b_state",
        "b_cid_name",
        "b_cid_num",
        "b_ip_addr",
        "b_dest",
    ]);
    Table { columns, rows }
}

/// `show channels|calls [count] [as json|csv]`.
pub fn show_sessions(core: &Arc<Core>, what: &str, count: bool, format: Format) -> String {
    let table = if what == "calls" {
        calls_table(core)
    } else {
        channels_table(core)
    };
    if count {
        return format!("\n{} total.\n", table.rows.len());
    }
    table.render(format)
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
        assert_eq!(parse_app("&bad(x"), None);
    }
}

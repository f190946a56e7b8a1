//! # mod_dptools — the dialplan tools
//!
//! The basic applications every dialplan uses, with FreeSWITCH's names and
//! arguments: `answer`, `pre_answer`, `ring_ready [queued]`,
//! `hangup [cause]`, `park`, `sleep <ms>`, `set <var>=<value>`,
//! `export <var>=<value>`, `unset <var>`, `log [level] <text>`, `info`,
//! `event <header>=<value>,…`, `transfer <exten> [dialplan] [context]`,
//! `echo`, and the media ones: `playback`, `record`, `record_session`,
//! `stop_record_session`, `bridge`, `read`, `play_and_get_digits`,
//! `send_dtmf`.

use hotswitch_plugin_api::{
    declare_module, log, saf, CallCause, ModuleContext, Session, Status, PLAY_STOP_ON_ANY_DIGIT,
};

use std::fmt::Write as _;

/// Live reload: nothing to hand over (a running application finishes on the old copy; the next one runs on the new copy).
static HANDOVER: hotswitch_plugin_api::HandoverSpec = hotswitch_plugin_api::HandoverSpec {
    format: "mod_dptools/handover-v1",
    version: 1,
    reads_from: 1,
    export: |_| Ok(hotswitch_plugin_api::Export::default()),
    resume: |_| {},
    deliver: |_, _| false,
};

declare_module! {
    name: "mod_dptools",
    description: "Dialplan tools: the core applications",
    load: load,
    unload: None,
    runtime: None,
    handover: &HANDOVER,
}

type App = fn(Session, &str);

const APPS: &[(&str, &str, &str, u32, App)] = &[
    ("answer", "Answer the call", "", 0, answer),
    (
        "pre_answer",
        "Pre-answer the call (early media)",
        "",
        0,
        pre_answer,
    ),
    (
        "ring_ready",
        "Indicate ringing",
        "[queued]",
        saf::NOMEDIA,
        ring_ready,
    ),
    (
        "hangup",
        "Hang up the call",
        "[<cause>]",
        saf::NOMEDIA,
        hangup,
    ),
    ("park", "Park the call", "", saf::NOMEDIA, park),
    (
        "sleep",
        "Pause the channel for a number of milliseconds",
        "<ms>",
        0,
        sleep,
    ),
    (
        "set",
        "Set a channel variable",
        "<varname>=<value>",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        set,
    ),
    (
        "export",
        "Set a variable that bridged legs inherit",
        "<varname>=<value>",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        export,
    ),
    (
        "unset",
        "Unset a channel variable",
        "<varname>",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        unset,
    ),
    (
        "log",
        "Log a line",
        "[<level>] <text>",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        log_app,
    ),
    (
        "info",
        "Log the channel's variables",
        "",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        info,
    ),
    (
        "event",
        "Fire a CUSTOM event with the channel's data",
        "<header>=<value>[,<header>=<value>…]",
        saf::NOMEDIA | saf::ROUTING_EXEC,
        event,
    ),
    (
        "transfer",
        "Send the call to another extension",
        "<exten> [<dialplan>] [<context>]",
        saf::NOMEDIA,
        transfer,
    ),
    ("echo", "Send the caller's audio back", "", 0, echo),
    ("playback", "Play a file or a tone stream", "<path>", 0, playback),
    ("record", "Record what the caller says", "<path> [<time_limit_secs>]", 0, record),
    ("record_session", "Record both directions in the background", "<path>", saf::MEDIA_TAP, record_session),
    ("stop_record_session", "Stop a background recording", "<path>", saf::NOMEDIA, stop_record_session),
    ("bridge", "Bridge the call to a dial string", "<dialstring>", 0, bridge),
    ("read", "Read digits into a variable", "<min> <max> <sound_file> <variable_name> <timeout_ms> <terminators>", 0, read),
    (
        "play_and_get_digits",
        "Prompt for digits and check them",
        "<min> <max> <tries> <timeout_ms> <terminators> <file> <invalid_file> <var_name> <regexp> [<digit_timeout_ms>] [<transfer_on_failure>]",
        0,
        play_and_get_digits,
    ),
    ("send_dtmf", "Send DTMF digits to the far end", "<digits>[@<tone_duration_ms>]", 0, send_dtmf),
];

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    for (name, desc, syntax, flags, f) in APPS {
        let f = *f;
        m.add_application(name, desc, syntax, *flags, f)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    m.add_api(
        "chat",
        "Send a text message through a chat protocol",
        "<proto>|<from>|<to>|<message>[|<content-type>]",
        |args, out| {
            let _ = out.write_str(&chat_api(args));
        },
    )
    .map_err(|e| format!("chat: {e}"))?;
    Ok(())
}

/// FreeSWITCH's `chat <proto>|<from>|<to>|<message>[|<content-type>]`:
/// the message goes out through the module serving `proto` (`sip`,
/// `verto`, `gsmopen`).
fn chat_api(args: &str) -> String {
    let mut f = args.trim().splitn(5, '|');
    let (Some(proto), Some(from), Some(to), Some(body)) = (f.next(), f.next(), f.next(), f.next())
    else {
        return "-ERR Usage: chat <proto>|<from>|<to>|<message>[|<content-type>]\n".into();
    };
    let mut headers = Vec::new();
    if let Some(t) = f.next().filter(|t| !t.is_empty()) {
        headers.push(("type".to_string(), t.to_string()));
    }
    let chat = hotswitch_plugin_api::Chat {
        proto: proto.into(),
        from: from.into(),
        to: to.into(),
        subject: String::new(),
        body: body.into(),
        hint: String::new(),
        headers,
    };
    match ModuleContext::current().send_chat(&chat) {
        Ok(()) => "+OK Sent\n".into(),
        Err(e) => format!("-ERR Error! Message Not Sent ({e})\n"),
    }
}

fn respond(s: &Session, text: &str) {
    s.set_var("current_application_response", text);
}

fn answer(s: Session, _: &str) {
    if s.answer().is_err() {
        respond(&s, "-ERR answer failed");
    }
}

fn pre_answer(s: Session, _: &str) {
    if s.pre_answer().is_err() {
        respond(&s, "-ERR pre_answer failed");
    }
}

fn ring_ready(s: Session, _: &str) {
    let _ = s.ring_ready();
}

fn hangup(s: Session, data: &str) {
    let data = data.trim();
    let cause = if data.is_empty() {
        CallCause::NORMAL_CLEARING
    } else if let Ok(n) = data.parse::<u32>() {
        CallCause(n)
    } else {
        CallCause::from_name(data).unwrap_or(CallCause::NORMAL_CLEARING)
    };
    s.hangup(cause);
}

fn park(s: Session, _: &str) {
    let _ = s.park();
}

fn sleep(s: Session, data: &str) {
    match data.trim().parse::<u32>() {
        Ok(ms) => {
            if !s.sleep(ms) {
                respond(&s, "interrupted");
            }
        }
        Err(_) => log::warn!("sleep: '{data}' is not a number of milliseconds"),
    }
}

fn split_assign(data: &str) -> Option<(&str, &str)> {
    let (k, v) = data.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()).then_some((k, v))
}

fn set(s: Session, data: &str) {
    match split_assign(data) {
        Some((k, v)) => s.set_var(k, v),
        None => log::warn!("set: expected <var>=<value>, got '{data}'"),
    }
}

fn export(s: Session, data: &str) {
    let Some((k, v)) = split_assign(data) else {
        log::warn!("export: expected <var>=<value>, got '{data}'");
        return;
    };
    let (k, local) = match k.strip_prefix("nolocal:") {
        Some(k) => (k, false),
        None => (k, true),
    };
    if local {
        s.set_var(k, v);
    }
    let list = s.var("export_vars").unwrap_or_default();
    if !list.split(',').any(|x| x == k) {
        let new = if list.is_empty() {
            k.to_string()
        } else {
            format!("{list},{k}")
        };
        s.set_var("export_vars", &new);
    }
}

fn unset(s: Session, data: &str) {
    s.set_var(data.trim(), "");
}

fn log_app(s: Session, data: &str) {
    let (level, text) = match data.split_once(' ') {
        Some((l, t)) if parse_level(l).is_some() => (parse_level(l), t),
        _ => (None, data),
    };
    let level = level.unwrap_or(log::Level::Debug);
    log::log!(level, "{}: {text}", s.uuid());
}

fn parse_level(l: &str) -> Option<log::Level> {
    Some(match l.to_ascii_uppercase().as_str() {
        "CONSOLE" | "ALERT" | "CRIT" | "ERR" | "ERROR" => log::Level::Error,
        "WARNING" | "WARN" => log::Level::Warn,
        "NOTICE" | "INFO" => log::Level::Info,
        "DEBUG" => log::Level::Debug,
        _ => return None,
    })
}

fn info(s: Session, _: &str) {
    let mut lines = vec![format!("channel {} info:", s.uuid())];
    for name in [
        "channel_name",
        "caller_id_name",
        "caller_id_number",
        "destination_number",
        "context",
        "dialplan",
        "state",
    ] {
        if let Some(v) = s.var(name) {
            lines.push(format!("  {name}: [{v}]"));
        }
    }
    log::info!("{}", lines.join("\n"));
}

fn event(s: Session, data: &str) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut subclass = String::new();
    let mut id = hotswitch_plugin_api::EventId::CUSTOM.id();
    for item in data.split(',') {
        let Some((k, v)) = split_assign(item) else {
            continue;
        };
        match k {
            "Event-Subclass" => subclass = v.to_string(),
            // Only CUSTOM carries a subclass; other names are FreeSWITCH's ids.
            "Event-Name" if !v.eq_ignore_ascii_case("CUSTOM") => {
                log::warn!("event: only CUSTOM events can be fired from the dialplan, not {v}");
                return;
            }
            "Event-Name" => id = hotswitch_plugin_api::EventId::CUSTOM.id(),
            _ => headers.push((k.to_string(), v.to_string())),
        }
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Err(e) = s.fire_event(id, &subclass, &refs, "") {
        log::warn!("event: {e}");
    }
}

fn transfer(s: Session, data: &str) {
    let mut w = data.split_whitespace();
    let Some(dest) = w.next() else {
        log::warn!("transfer: no destination");
        return;
    };
    let dp = w.next().unwrap_or("");
    let ctx = w.next().unwrap_or("");
    if let Err(e) = s.transfer(dest, dp, ctx) {
        log::warn!("transfer: {e}");
    }
}

/// FreeSWITCH's `echo`: the core sends the caller's audio back
/// (`switch_ivr_session_echo`), in its shared media loop where the
/// endpoint allows, until the call ends or is transferred.
fn echo(s: Session, _: &str) {
    let st = s.echo();
    if st != Status::SUCCESS && !s.is_down() {
        log::debug!("echo ended: {st:?}");
    }
}

fn var_true(s: &Session, name: &str) -> bool {
    s.var(name)
        .map(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow"
            )
        })
        .unwrap_or(false)
}

fn terminators(s: &Session) -> String {
    match s.var("playback_terminators") {
        Some(t) if t.eq_ignore_ascii_case("none") => String::new(),
        Some(t) => t,
        None => "*".to_string(),
    }
}

fn playback(s: Session, data: &str) {
    let path = data.trim();
    if path.is_empty() {
        log::warn!("playback: no file");
        return;
    }
    let _ = s.play(path, &terminators(&s), 0);
}

fn record(s: Session, data: &str) {
    let mut w = data.split_whitespace();
    let Some(path) = w.next() else {
        log::warn!("record: no file");
        return;
    };
    let limit = w.next().and_then(|l| l.parse::<u32>().ok()).unwrap_or(0);
    let _ = s.record(path, limit, &terminators(&s));
}

fn record_session(s: Session, data: &str) {
    if let Err(e) = s.record_session(data.trim(), true) {
        log::warn!("record_session {data}: {e}");
    }
}

fn stop_record_session(s: Session, data: &str) {
    if let Err(e) = s.record_session(data.trim(), false) {
        log::warn!("stop_record_session {data}: {e}");
    }
}

/// True when `continue_on_fail` lets the dialplan go on after `cause`:
/// `true`, or a list of cause names / numbers that includes it.
fn continue_on(s: &Session, cause: CallCause) -> bool {
    let Some(v) = s.var("continue_on_fail") else {
        return false;
    };
    if var_true(s, "continue_on_fail") {
        return true;
    }
    v.split(',').map(str::trim).any(|c| {
        c.eq_ignore_ascii_case(cause.name().unwrap_or(""))
            || c.parse::<u32>().is_ok_and(|n| n == cause.0)
    })
}

fn bridge(s: Session, data: &str) {
    match s.bridge(data.trim()) {
        Ok(cause) => {
            if var_true(&s, "hangup_after_bridge") {
                s.hangup(if cause == CallCause::NONE {
                    CallCause::NORMAL_CLEARING
                } else {
                    cause
                });
            } else if var_true(&s, "park_after_bridge") {
                let _ = s.park();
            }
        }
        Err(cause) => {
            let name = cause.name().unwrap_or("NORMAL_UNSPECIFIED");
            log::info!("bridge {data}: {name}");
            respond(&s, name);
            if !continue_on(&s, cause) {
                s.hangup(cause);
            }
        }
    }
}

/// Collects up to `max` digits: the first within `first_timeout`, each
/// next within `digit_timeout`; a terminator ends early. None: call ended.
fn collect(
    s: &Session,
    max: usize,
    first_timeout: u32,
    digit_timeout: u32,
    terms: &str,
) -> Option<(String, Option<char>)> {
    let mut digits = String::new();
    loop {
        let timeout = if digits.is_empty() {
            first_timeout
        } else {
            digit_timeout
        };
        match s.read_dtmf(timeout) {
            Ok(Some(c)) if terms.contains(c) => return Some((digits, Some(c))),
            Ok(Some(c)) => {
                digits.push(c);
                if digits.len() >= max {
                    return Some((digits, None));
                }
            }
            Ok(None) => return Some((digits, None)),
            Err(_) => return None,
        }
    }
}

fn prompt(s: &Session, file: &str) -> bool {
    if file.is_empty() || file == "silence" {
        return !s.is_down();
    }
    let (st, _) = s.play(file, "", PLAY_STOP_ON_ANY_DIGIT);
    st != Status::FALSE && !s.is_down()
}

fn read(s: Session, data: &str) {
    let a: Vec<&str> = data.split_whitespace().collect();
    if a.len() < 5 {
        log::warn!(
            "read: usage <min> <max> <sound_file> <variable_name> <timeout_ms> [<terminators>]"
        );
        return;
    }
    let min: usize = a[0].parse().unwrap_or(0);
    let max: usize = a[1].parse().unwrap_or(1).max(1);
    let timeout: u32 = a[4].parse().unwrap_or(5000);
    let terms = a.get(5).copied().unwrap_or("#");
    if !prompt(&s, a[2]) {
        return;
    }
    let Some((digits, term)) = collect(&s, max, timeout, timeout, terms) else {
        return;
    };
    s.set_var(
        "read_result",
        if digits.len() >= min {
            "success"
        } else {
            "failure"
        },
    );
    if let Some(t) = term {
        s.set_var("read_terminator_used", &t.to_string());
    }
    s.set_var(a[3], &digits);
}

fn play_and_get_digits(s: Session, data: &str) {
    let a: Vec<&str> = data.split_whitespace().collect();
    if a.len() < 9 {
        log::warn!("play_and_get_digits: usage <min> <max> <tries> <timeout_ms> <terminators> <file> <invalid_file> <var_name> <regexp> [<digit_timeout_ms>] [<transfer_on_failure>]");
        return;
    }
    let min: usize = a[0].parse().unwrap_or(1);
    let max: usize = a[1].parse().unwrap_or(1).max(1);
    let tries: u32 = a[2].parse().unwrap_or(1).max(1);
    let timeout: u32 = a[3].parse().unwrap_or(5000);
    let terms = a[4];
    let (file, invalid, var) = (a[5], a[6], a[7]);
    let re = match regex::Regex::new(a[8]) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("play_and_get_digits: bad regexp {}: {e}", a[8]);
            return;
        }
    };
    let digit_timeout: u32 = a.get(9).and_then(|t| t.parse().ok()).unwrap_or(timeout);
    for _ in 0..tries {
        if !prompt(&s, file) {
            return;
        }
        let Some((digits, term)) = collect(&s, max, timeout, digit_timeout, terms) else {
            return;
        };
        if let Some(t) = term {
            s.set_var("read_terminator_used", &t.to_string());
        }
        if digits.len() >= min && re.is_match(&digits) {
            s.set_var(var, &digits);
            s.set_var("read_result", "success");
            return;
        }
        s.set_var(&format!("{var}_invalid"), &digits);
        if invalid != "silence" && !invalid.is_empty() && !prompt(&s, invalid) {
            return;
        }
    }
    s.set_var("read_result", "failure");
    if let Some(t) = a.get(10) {
        let mut w = t.split_whitespace();
        if let Some(dest) = w.next() {
            let _ = s.transfer(dest, w.next().unwrap_or(""), w.next().unwrap_or(""));
        }
    }
}

fn send_dtmf(s: Session, data: &str) {
    let (digits, ms) = match data.trim().split_once('@') {
        Some((d, ms)) => (d, ms.parse().unwrap_or(100)),
        None => (data.trim(), 100),
    };
    for c in digits
        .chars()
        .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
    {
        s.send_dtmf(c.to_ascii_uppercase(), ms);
    }
}

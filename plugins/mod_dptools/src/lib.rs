//! # mod_dptools — the dialplan tools
//!
//! The basic applications every dialplan uses, with FreeSWITCH's names and
//! arguments: `answer`, `pre_answer`, `ring_ready [queued]`,
//! `hangup [cause]`, `park`, `sleep <ms>`, `set <var>=<value>`,
//! `export <var>=<value>`, `unset <var>`, `log [level] <text>`, `info`,
//! `event <header>=<value>,…`, `transfer <exten> [dialplan] [context]`,
//! `echo`.

use hotswitch_plugin_api::{
    declare_module, log, saf, CallCause, Frame, ModuleContext, RStr, Session, Status,
};

declare_module! {
    name: "mod_dptools",
    description: "Dialplan tools: the core applications",
    load: load,
    unload: None,
    runtime: None,
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
];

fn load(m: &ModuleContext) -> Result<(), String> {
    for (name, desc, syntax, flags, f) in APPS {
        let f = *f;
        m.add_application(name, desc, syntax, *flags, f)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
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
    let mut id = 0u32;
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
            "Event-Name" => id = 0,
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

fn echo(s: Session, _: &str) {
    let mut buf = vec![0u8; 8192];
    while !s.is_down() {
        let mut f = Frame {
            codec: RStr::EMPTY,
            rate: 0,
            channels: 1,
            samples: 0,
            timestamp: 0,
            seq: 0,
            ssrc: 0,
            payload_type: 0,
            flags: 0,
            data: buf.as_mut_ptr(),
            datalen: 0,
            buflen: buf.len() as u32,
        };
        // SAFETY: `f` points at `buf`, which outlives the call.
        let st = unsafe { s.read_frame(&mut f, 20) };
        match st {
            Status::SUCCESS => {
                if f.datalen > 0 {
                    s.write_frame(&f);
                }
            }
            Status::TIMEOUT | Status::BREAK => {}
            _ => break,
        }
    }
}

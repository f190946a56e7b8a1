//! The console side: `gsm status|reset|sendsms`, `gsmopen_sendsms` and the
//! `gsmopen` chat protocol.

use crate::at::{Link, Phase};
use crate::interface::{Interface, Job, Slot, Snapshot};
use hotswitch_plugin_api::{Chat, HostError, ModuleContext, Status};
use std::fmt::Write;
use std::sync::Arc;

pub fn register(m: &ModuleContext) -> Result<(), HostError> {
    m.add_api(
        "gsm",
        "GSM modems",
        "status | reset <interface> | sendsms <interface|ANY> <number> <text>",
        |args, out| {
            let _ = write!(out, "{}", gsm(args));
        },
    )?;
    m.add_api(
        "gsmopen_sendsms",
        "Send an SMS through a GSM modem",
        "<interface|ANY> <number> <text>",
        |args, out| {
            let _ = write!(out, "{}", sendsms(args));
        },
    )?;
    m.add_chat("gsmopen", chat)
}

fn gsm(args: &str) -> String {
    let (cmd, rest) = args.trim().split_once(' ').unwrap_or((args.trim(), ""));
    match cmd {
        "status" | "list" | "" => status(),
        "reset" => match crate::interface(rest.trim()) {
            Some(i) => {
                i.send(Job::Reset);
                format!("+OK {} reset\n", i.name())
            }
            None => format!("-ERR no interface '{}'\n", rest.trim()),
        },
        "sendsms" => sendsms(rest),
        _ => "-USAGE: gsm status | reset <interface> | sendsms <interface|ANY> <number> <text>\n"
            .into(),
    }
}

fn registration(r: Option<u8>) -> &'static str {
    match r {
        Some(1) => "home",
        Some(5) => "roaming",
        Some(2) => "searching",
        Some(3) => "denied",
        Some(0) => "not-registered",
        Some(_) => "unknown",
        None => "-",
    }
}

/// One line per interface, `key=value` after the name.
fn status() -> String {
    let mut s = String::from("+OK\n");
    for i in crate::interfaces() {
        let st: Snapshot = i.snapshot();
        let state = match st.link {
            Some(Link::Ready) => "UP",
            Some(Link::Initialising) => "INIT",
            _ => "DOWN",
        };
        let call = match (&st.call, st.call_phase) {
            (Slot::Free, _) => "idle".into(),
            (Slot::Reserved, _) => format!("dialing:{}:-", st.call_number),
            (Slot::Session(u), p) => format!(
                "{}:{}:{}",
                match p {
                    Some(Phase::Dialing) => "dialing",
                    Some(Phase::Alerting) => "alerting",
                    Some(Phase::Ringing) => "ringing",
                    Some(Phase::Answering) => "answering",
                    Some(Phase::Active) => "active",
                    None => "ending",
                },
                if st.call_number.is_empty() {
                    "unknown"
                } else {
                    &st.call_number
                },
                u
            ),
        };
        let _ = writeln!(
            s,
            "{} device={} state={state} registration={} signal={} call={call} calls_in={} calls_out={} sms_in={} sms_out={}{}",
            i.name(),
            i.cfg.device,
            registration(st.registration),
            st.signal.map(|v| v.to_string()).unwrap_or("-".into()),
            st.calls_in,
            st.calls_out,
            st.sms_in,
            st.sms_out,
            if state == "DOWN" && !st.last_down.is_empty() {
                format!(" reason=\"{}\"", st.last_down)
            } else {
                String::new()
            }
        );
    }
    s
}

/// `ANY`: the first interface that is up.
fn pick(name: &str) -> Option<Arc<Interface>> {
    if name.eq_ignore_ascii_case("ANY") {
        crate::interfaces()
            .into_iter()
            .find(|i| i.snapshot().link == Some(Link::Ready))
    } else {
        crate::interface(name)
    }
}

fn sendsms(args: &str) -> String {
    let mut it = args.trim_start().splitn(3, ' ');
    let (Some(name), Some(number), Some(text)) = (it.next(), it.next(), it.next()) else {
        return "-USAGE: gsmopen_sendsms <interface|ANY> <number> <text>\n".into();
    };
    let Some(i) = pick(name) else {
        return format!("-ERR no interface '{name}' up\n");
    };
    match i.send_sms(number, text) {
        Ok(()) => format!("+OK SMS sent through {}\n", i.name()),
        Err(e) => format!("-ERR {e}\n"),
    }
}

/// `to` is `<interface>/<number>` or a number (the interface then comes
/// from `hint`, else ANY).
fn chat(c: &Chat) -> Status {
    let (name, number) = match c.to.split_once('/') {
        Some((i, n)) => (i.to_string(), n.to_string()),
        None if !c.hint.is_empty() && crate::interface(&c.hint).is_some() => {
            (c.hint.clone(), c.to.clone())
        }
        None => ("ANY".into(), c.to.clone()),
    };
    let number = number.split('@').next().unwrap_or("").to_string();
    let Some(i) = pick(&name) else {
        log::warn!("gsmopen chat: no interface '{name}' up");
        return Status::FALSE;
    };
    match i.send_sms(&number, &c.body) {
        Ok(()) => Status::SUCCESS,
        Err(e) => {
            log::warn!("gsmopen chat to {number}: {e}");
            Status::FALSE
        }
    }
}

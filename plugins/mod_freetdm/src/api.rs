//! The `ftdm` api command: `list`, `dump <span> [<chan>]`,
//! `start <span>`, `stop <span>`.

use crate::registry::{self, Registry};
use crate::span::Span;
use hotswitch_plugin_api::{CallCause, ModuleContext};
use std::fmt::Write;

/// The command's syntax, as `help` shows it.
pub const SYNTAX: &str = "list | dump <span> [<chan>] | start <span> | stop <span>";

/// Runs `ftdm <args>` and returns the reply.
pub fn ftdm(args: &str) -> String {
    let Some(reg) = registry::current() else {
        return "-ERR freetdm is not running\n".into();
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        ["list"] => list(&reg),
        ["dump", span, rest @ ..] if rest.len() <= 1 => match reg.span(span) {
            Some(s) => dump(s, rest.first().and_then(|c| c.parse().ok())),
            None => format!("-ERR no span {span}\n"),
        },
        ["start", span] => match reg.span(span) {
            Some(s) => {
                s.set_running(true);
                format!("+OK span {} started\n", s.cfg.name)
            }
            None => format!("-ERR no span {span}\n"),
        },
        ["stop", span] => match reg.span(span) {
            Some(s) => {
                s.set_running(false);
                let ctx = ModuleContext::current();
                for u in s.sessions() {
                    if let Some(x) = ctx.session_locate(&u) {
                        x.hangup(CallCause::MANAGER_REQUEST);
                    }
                }
                format!("+OK span {} stopped\n", s.cfg.name)
            }
            None => format!("-ERR no span {span}\n"),
        },
        _ => format!("-USAGE: ftdm {SYNTAX}\n"),
    }
}

fn list(reg: &Registry) -> String {
    let mut out = String::from("+OK\n");
    if reg.spans.is_empty() {
        out.push_str("no spans\n");
    }
    for s in &reg.spans {
        let chans = s.channels();
        let busy = chans
            .iter()
            .filter(|c| c.line != "DOWN" || c.session.is_some())
            .count();
        let _ = writeln!(out, "span: {} ({})", s.cfg.id, s.cfg.name);
        let _ = writeln!(out, "type: {}", s.cfg.signalling.name());
        let _ = writeln!(out, "driver: {}", s.driver_info());
        let _ = writeln!(
            out,
            "state: {}",
            if s.running() { "RUNNING" } else { "STOPPED" }
        );
        let _ = writeln!(out, "codec: {}", s.cfg.law.name());
        let _ = writeln!(out, "chan_count: {}", chans.len());
        let _ = writeln!(out, "busy: {busy}");
        for c in chans {
            let _ = writeln!(
                out,
                "chan {}: {}{}",
                c.number,
                c.line,
                c.session.map(|u| format!(" {u}")).unwrap_or_default()
            );
        }
        let _ = writeln!(out);
    }
    out
}

fn dump(s: &Span, chan: Option<u16>) -> String {
    let mut out = String::new();
    for c in s
        .channels()
        .into_iter()
        .filter(|c| chan.is_none_or(|n| n == c.number))
    {
        let _ = writeln!(out, "span_id: {}", s.cfg.id);
        let _ = writeln!(out, "span_name: {}", s.cfg.name);
        let _ = writeln!(out, "chan_id: {}", c.number);
        let _ = writeln!(out, "type: {}", s.cfg.signalling.name());
        let _ = writeln!(out, "state: {}", c.line);
        let _ = writeln!(out, "session: {}", c.session.unwrap_or_default());
        let _ = writeln!(out, "dnis: {}", c.dnis);
        let _ = writeln!(out, "ani: {}", c.ani);
        let _ = writeln!(out);
    }
    if out.is_empty() {
        return format!(
            "-ERR span {} has no channel {}\n",
            s.cfg.name,
            chan.unwrap_or(0)
        );
    }
    for line in s.isdn_calls() {
        let _ = writeln!(out, "isdn call: {line}");
    }
    out
}

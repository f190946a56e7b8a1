//! `fsctl`, FreeSWITCH's switch controls (mod_commands' `ctl_function` over
//! `switch_core_session_ctl`): log level, session limits, verbose events,
//! and — through [`crate::drain`] — pausing new calls and the graceful
//! shutdown; and `console`, mod_console's
//! command for the console's own log level and colours. The reply texts are
//! FreeSWITCH's, since clients (switchio's `loglevel` property, call
//! generators setting `sps` and `max_sessions`) parse them.

use crate::core::Core;
use crate::drain::{self, When};
use crate::interfaces::HostApiFn;
use hotswitch_plugin_api::CallCause;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

const CTL_SYNTAX: &str = "[recover|send_sighup|hupall|pause [inbound|outbound]|resume [inbound|outbound]|shutdown [cancel|elegant|asap|now]|sps|sps_peak_reset|last_sps|sync_clock|sync_clock_when_idle|reclaim_mem|max_sessions|min_idle_cpu|loglevel [level]|verbose_events [on|off]|pause_check [inbound|outbound]|ready_check|shutdown_check|calibrate_clock|flush_db_handles|save_history]";

const CONSOLE_USAGE: &str = "USAGE:
--------------------------------------------------------------------------------
console help
console loglevel [[0-7] | <loglevel_string>]
console colorize [on|off|toggle]
--------------------------------------------------------------------------------
";

const CONSOLE_LOGLEVEL_USAGE: &str = "USAGE:
--------------------------------------------------------------------------------
console loglevel [[0-7] | <loglevel_string>]

Set the logging verbosity of the console from 0 (least verbose) to
7 (debugging), or specify the loglevel as a string:

  0 console
  1 alert
  2 crit
  3 err
  4 warning
  5 notice
  6 info
  7 debug
--------------------------------------------------------------------------------
";

const CONSOLE_COLORIZE_USAGE: &str = "USAGE:
--------------------------------------------------------------------------------
console colorize [on|off|toggle]

Enable, disable, or toggle console coloring.
--------------------------------------------------------------------------------
";

/// FreeSWITCH's log level names, from DISABLE (-1) to DEBUG (7).
const LEVELS: [&str; 9] = [
    "DISABLE", "CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG",
];

/// The switch-wide settings `fsctl` reads and changes (pausing and the
/// pending shutdown are [`crate::drain::Drain`]'s).
pub struct Controls {
    /// Every channel event carries the channel's variables.
    pub verbose_events: AtomicBool,
    /// FreeSWITCH's hard log level, -1 (DISABLE) to 7 (DEBUG).
    log_level: AtomicI32,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            verbose_events: AtomicBool::new(false),
            log_level: AtomicI32::new(7),
        }
    }
}

const COMMANDS: &[(&str, &str, &str, HostApiFn)] = &[
    ("fsctl", "FS control messages", CTL_SYNTAX, fsctl),
    (
        "console",
        "Console",
        "loglevel [level]|colorize [on|toggle|off]",
        console,
    ),
];

/// Registers `fsctl` and `console`.
pub fn register(core: &Arc<Core>) {
    crate::commands::register_table(core, COMMANDS);
}

fn invalid() -> String {
    format!("-ERR Invalid command\nUSAGE: fsctl {CTL_SYNTAX}\n")
}

fn level_name(level: i32) -> &'static str {
    LEVELS[(level.clamp(-1, 7) + 1) as usize]
}

/// A level as FreeSWITCH reads it: a number (clamped to 0..=7 later) or a
/// name; `None` for an unknown name.
fn parse_fs_level(s: &str) -> Option<i32> {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        return Some(digits.parse::<i32>().unwrap_or(7).min(7));
    }
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(s))
        .map(|i| i as i32 - 1)
}

/// The `log` crate's filter for a FreeSWITCH level.
fn level_filter(level: i32) -> log::LevelFilter {
    match level {
        i32::MIN..=0 => log::LevelFilter::Off,
        1..=3 => log::LevelFilter::Error,
        4 => log::LevelFilter::Warn,
        5 | 6 => log::LevelFilter::Info,
        _ => log::LevelFilter::Trace,
    }
}

/// FreeSWITCH's number for a `log` crate filter.
fn fs_level(f: log::LevelFilter) -> i32 {
    match f {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 3,
        log::LevelFilter::Warn => 4,
        log::LevelFilter::Info => 6,
        log::LevelFilter::Debug | log::LevelFilter::Trace => 7,
    }
}

fn switch_true(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "yes" | "on" | "true" | "t" | "enabled" | "active" | "allow" | "1"
    ) || s.parse::<i64>().is_ok_and(|n| n != 0)
}

fn fsctl(core: &Arc<Core>, args: &str) -> String {
    let argv: Vec<&str> = args.split_whitespace().collect();
    let Some(cmd) = argv.first() else {
        return format!("-USAGE: {CTL_SYNTAX}\n");
    };
    let arg = argv.get(1).copied();
    let c = &core.controls;
    let s = &core.sessions;
    match cmd.to_ascii_lowercase().as_str() {
        "hupall" => {
            for session in s.all() {
                crate::state_machine::hangup(core, &session, CallCause::MANAGER_REQUEST);
            }
            "+OK\n".into()
        }
        "pause" | "resume" => {
            let (inbound, outbound) = match arg.map(str::to_ascii_lowercase).as_deref() {
                None => (true, true),
                Some("inbound") => (true, false),
                Some("outbound") => (false, true),
                Some(_) => return format!("-USAGE: {CTL_SYNTAX}\n"),
            };
            core.drain
                .pause(inbound, outbound, cmd.eq_ignore_ascii_case("pause"));
            "+OK\n".into()
        }
        "pause_check" => {
            let paused = |inbound| !core.drain.accepts(inbound);
            match arg.map(str::to_ascii_lowercase).as_deref() {
                Some("inbound") => paused(true),
                Some("outbound") => paused(false),
                _ => paused(true) && paused(false),
            }
            .to_string()
        }
        "ready_check" => (!core.is_shutting_down()).to_string(),
        "shutdown_check" => core.drain.shutdown_requested().to_string(),
        "shutdown" => shutdown(core, &argv[1..]),
        "verbose_events" => {
            if let Some(a) = arg {
                c.verbose_events.store(switch_true(a), Ordering::Relaxed);
            }
            let on = c.verbose_events.load(Ordering::Relaxed);
            format!("+OK verbose_events is {} \n", if on { "on" } else { "off" })
        }
        "max_sessions" => {
            if let Some(n) = arg.and_then(|a| a.parse::<u64>().ok()).filter(|n| *n > 0) {
                s.max_sessions.store(n, Ordering::Relaxed);
            }
            format!(
                "+OK max sessions: {}\n",
                s.max_sessions.load(Ordering::Relaxed)
            )
        }
        "sps" => {
            if let Some(n) = arg.and_then(|a| a.parse::<u64>().ok()).filter(|n| *n > 0) {
                s.sessions_per_second.store(n, Ordering::Relaxed);
            }
            format!(
                "+OK sessions per second: {}\n",
                s.sessions_per_second.load(Ordering::Relaxed)
            )
        }
        "last_sps" => format!("+OK last sessions per second: {}\n", s.current_sps()),
        "sps_peak_reset" => {
            s.peak_sps.store(0, Ordering::Relaxed);
            "+OK max sessions per second counter reset\n".into()
        }
        // hotswitch never refuses calls for want of idle CPU.
        "min_idle_cpu" => match arg.map(|a| a.parse::<f64>()) {
            None | Some(Ok(0.0)) => "+OK min idle cpu: DISABLED\n".into(),
            _ => "-ERR min_idle_cpu is not supported\n".into(),
        },
        "loglevel" => loglevel(c, arg),
        "recover" => "+OK 0 session(s) recovered in total\n".into(),
        "sync_clock" => "+OK clock synchronized\n".into(),
        "sync_clock_when_idle" => if s.count() == 0 {
            "+OK clock synchronized\n"
        } else {
            "+OK clock will synchronize when there are no more calls\n"
        }
        .into(),
        // Nothing to do: the clock is the monotonic clock, there are no
        // database handles or pools to reclaim, and the console writes its
        // history as it goes.
        "calibrate_clock" | "reclaim_mem" | "flush_db_handles" | "save_history" | "send_sighup" => {
            "+OK\n".into()
        }
        _ => invalid(),
    }
}

/// `fsctl loglevel [level]`: the switch-wide ceiling on logging. Without a
/// level it reports the current one (FreeSWITCH since 1.10.4 reads the
/// missing level as DISABLE; clients such as switchio's `loglevel`
/// property send it to ask).
fn loglevel(c: &Controls, arg: Option<&str>) -> String {
    if let Some(a) = arg {
        let Some(level) = parse_fs_level(a) else {
            return "-ERR syntax error, log level not set!\n".into();
        };
        c.log_level.store(level, Ordering::Relaxed);
        crate::logtap::set_hard_level(level_filter(level));
    }
    let level = c.log_level.load(Ordering::Relaxed);
    format!("+OK log level: {} [{level}]\n", level_name(level))
}

/// `fsctl shutdown [cancel|elegant|asap|now]`: at once (plain or `now`),
/// once the calls have ended (`elegant`, `asap`: [`crate::drain`]), or
/// withdrawn (`cancel`).
fn shutdown(core: &Arc<Core>, words: &[&str]) -> String {
    let mut when = None;
    for w in words {
        match w.to_ascii_lowercase().as_str() {
            "cancel" => {
                drain::cancel(core);
                log::info!("Shutdown Cancelled");
                return "+OK\n".into();
            }
            "restart" | "reincarnate" => {
                return "-ERR restart is not supported: start the switch again\n".into()
            }
            "elegant" => when = Some(When::Elegant),
            "asap" => when = Some(When::Asap),
            "now" => when = None,
            _ => break,
        }
    }
    match when {
        Some(w) => drain::shutdown_when_idle(core, w),
        None => {
            log::info!("Shutting down");
            core.request_shutdown();
        }
    }
    "+OK\n".into()
}

/// mod_console's `console` command.
fn console(_core: &Arc<Core>, args: &str) -> String {
    let argv: Vec<&str> = args.split_whitespace().collect();
    let arg = argv.get(1).copied();
    match argv.first().map(|a| a.to_ascii_lowercase()).as_deref() {
        Some("loglevel") => {
            let level = match arg {
                Some(a) if a.eq_ignore_ascii_case("help") => {
                    return CONSOLE_LOGLEVEL_USAGE.into();
                }
                Some(a) => match parse_fs_level(a) {
                    Some(l) => l,
                    None => return format!("-ERR Invalid console loglevel ({a})!\n\n"),
                },
                None => fs_level(crate::logtap::console_level()),
            };
            crate::logtap::set_console_level(level_filter(level));
            format!("+OK console log level set to {}\n", level_name(level))
        }
        Some("colorize") => {
            match arg.map(str::to_ascii_lowercase).as_deref() {
                Some("help") => return CONSOLE_COLORIZE_USAGE.into(),
                Some("toggle") => crate::logtap::set_colorize(!crate::logtap::colorize()),
                Some(a) => crate::logtap::set_colorize(switch_true(a)),
                None => {}
            }
            format!(
                "+OK console color {}\n",
                if crate::logtap::colorize() {
                    "enabled"
                } else {
                    "disabled"
                }
            )
        }
        _ => CONSOLE_USAGE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_freeswitch_reads_them() {
        assert_eq!(parse_fs_level("WARNING"), Some(4));
        assert_eq!(parse_fs_level("debug"), Some(7));
        assert_eq!(parse_fs_level("9"), Some(7));
        assert_eq!(parse_fs_level("disable"), Some(-1));
        assert_eq!(parse_fs_level("loud"), None);
        assert_eq!(level_name(4), "WARNING");
        assert_eq!(level_name(-1), "DISABLE");
        assert_eq!(level_filter(4), log::LevelFilter::Warn);
        assert_eq!(fs_level(log::LevelFilter::Info), 6);
    }
}

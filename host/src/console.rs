//! The console: commands typed at the switch's own terminal (with line
//! editing, history and completion of command names when stdin is a TTY),
//! or read one per line from a pipe so the switch can be scripted. Replies
//! are FreeSWITCH's `+OK` / `-ERR` texts on stdout; logs go to stderr.
//!
//! Besides api commands it knows fs_cli's slash commands: `/event plain
//! <names>` prints matching events as they fire, `/noevents` stops that,
//! `/log <level>` sets the log level, and `/quit` (or `...`) shuts down.

use hotswitch_core::core::Core;
use hotswitch_core::event::Interest;
use hotswitch_plugin_api::InterfaceKind;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

/// Events a console subscription may queue before it starts dropping.
const CONSOLE_EVENT_QUEUE: usize = 10_000;

const SLASH_COMMANDS: &[&str] = &[
    "/event",
    "/noevents",
    "/log",
    "/quit",
    "/exit",
    "/bye",
    "/help",
];

struct ConsoleState {
    subscription: Option<u64>,
}

enum Flow {
    Continue,
    Quit,
}

/// Runs the console until input ends or a shutdown is asked for.
pub fn run(core: Arc<Core>) {
    let mut state = ConsoleState { subscription: None };
    if std::io::stdin().is_terminal() {
        interactive(&core, &mut state);
    } else {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    log::error!("console input: {e}");
                    break;
                }
            }
            // Bytes that are not UTF-8 are shown as U+FFFD, never fatal.
            let line = String::from_utf8_lossy(&buf);
            if let Flow::Quit = handle(&core, &mut state, &line) {
                return;
            }
            if core.is_shutting_down() {
                return;
            }
        }
        if !core.is_shutting_down() {
            log::info!(
                "console input closed: shutting down (start with -nc to run without a console)"
            );
            core.request_shutdown();
        }
    }
}

fn handle(core: &Arc<Core>, state: &mut ConsoleState, line: &str) -> Flow {
    let line = line.trim();
    if line.is_empty() {
        return Flow::Continue;
    }
    if line == "..." || line == "/quit" || line == "/exit" || line == "/bye" {
        core.console_write("+OK shutting down\n");
        core.request_shutdown();
        return Flow::Quit;
    }
    if let Some(rest) = line.strip_prefix('/') {
        let reply = slash(core, state, rest);
        core.console_write(&reply);
        return Flow::Continue;
    }
    let mut reply = core.execute_line(line);
    if !reply.ends_with('\n') {
        reply.push('\n');
    }
    core.console_write(&reply);
    Flow::Continue
}

fn slash(core: &Arc<Core>, state: &mut ConsoleState, rest: &str) -> String {
    let mut words = rest.split_whitespace();
    match words.next() {
        Some("event") => {
            let mut names: Vec<&str> = words.collect();
            if names.first() == Some(&"plain") {
                names.remove(0);
            } else if matches!(names.first(), Some(&"json") | Some(&"xml")) {
                return "-ERR the console prints events in plain form only\n".into();
            }
            if names.is_empty() {
                return "-ERR no keywords supplied\n".into();
            }
            let interest = match Interest::parse(&names.join(" ")) {
                Ok(i) => i,
                Err(e) => return format!("-ERR {e}\n"),
            };
            if let Some(id) = state.subscription.take() {
                core.bus.unsubscribe(id);
            }
            let sub = core.bus.subscribe(interest, CONSOLE_EVENT_QUEUE);
            state.subscription = Some(sub.id);
            let printer = core.clone();
            let spawned = std::thread::Builder::new()
                .name("console-events".into())
                .spawn(move || {
                    for e in sub.rx.iter() {
                        printer.console_write(e.plain());
                    }
                });
            match spawned {
                Ok(_) => "+OK event listener enabled plain\n".into(),
                Err(e) => format!("-ERR cannot start the event printer: {e}\n"),
            }
        }
        Some("noevents") => {
            if let Some(id) = state.subscription.take() {
                core.bus.unsubscribe(id);
            }
            "+OK no longer listening for events\n".into()
        }
        Some("log") => {
            let level = words.next().unwrap_or("debug");
            match parse_level(level) {
                Some(l) => {
                    hotswitch_core::logtap::set_console_level(l);
                    format!("+OK log level {level} [{}]\n", l as usize)
                }
                None => format!("-ERR unknown log level {level}\n"),
            }
        }
        Some("help") => "/event plain <names>|ALL, /noevents, /log <level>, /quit; any other line is an api command (try 'help')\n".into(),
        _ => format!("-ERR /{rest} Command not found!\n"),
    }
}

/// FreeSWITCH's level names (and the `log` crate's) to a filter.
pub fn parse_level(s: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match s.to_ascii_lowercase().as_str() {
        "0" | "console" | "off" | "none" => Off,
        "1" | "alert" | "2" | "crit" | "3" | "err" | "error" => Error,
        "4" | "warning" | "warn" => Warn,
        "5" | "notice" | "6" | "info" => Info,
        "7" | "debug" => Debug,
        "trace" => Trace,
        _ => return None,
    })
}

struct Completion {
    core: Arc<Core>,
}

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let prefix = &line[..pos];
        if let Some(word) = prefix.strip_prefix("show ") {
            // The form of `show`, the word after it.
            if word.contains(char::is_whitespace) {
                return Ok((pos, Vec::new()));
            }
            let forms = hotswitch_core::show::forms()
                .into_iter()
                .filter(|f| f.starts_with(word))
                .map(str::to_string)
                .collect();
            return Ok((5, forms));
        }
        if prefix.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let mut names: Vec<String> = self
            .core
            .registry
            .rows(Some(InterfaceKind::API))
            .into_iter()
            .map(|r| r.name)
            .chain(SLASH_COMMANDS.iter().map(|s| s.to_string()))
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        Ok((0, names))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

fn interactive(core: &Arc<Core>, state: &mut ConsoleState) {
    let mut rl = match rustyline::Editor::<Completion, rustyline::history::DefaultHistory>::new() {
        Ok(rl) => rl,
        Err(e) => {
            log::error!("cannot start line editing ({e}); the console is off");
            return;
        }
    };
    rl.set_helper(Some(Completion { core: core.clone() }));
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".hotswitch_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    loop {
        match rl.readline("hotswitch> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                if let Flow::Quit = handle(core, state, &line) {
                    break;
                }
                if core.is_shutting_down() {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => {
                core.request_shutdown();
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
}

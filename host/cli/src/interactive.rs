//! The interactive mode: a prompt with history and completion (rustyline)
//! when stdin is a terminal, one command per line otherwise; events and log
//! records printed as they arrive, over the prompt; fs_cli's slash
//! commands.

use super::client::{Client, ClientError, Ending, Notice};
use super::render::Style;
use super::settings::{Settings, HISTORY_FILE};
use super::{EXIT_CONNECTION, EXIT_OK};
use hotswitch_plugin_api::events::EVENT_NAMES;
use hotswitch_plugin_api::sync::Mutex;
use rustyline::completion::Completer;
use rustyline::{Config, ExternalPrinter};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Slash commands, for completion and `/help`.
const SLASH_COMMANDS: &[(&str, &str)] = &[
    ("/help", "this text"),
    ("/log", "<level>: stream log lines of <level> and above (console alert crit err warning notice info debug, or 0-7)"),
    ("/nolog", "stop the log lines"),
    ("/event", "<plain|json|xml> <names...>|ALL: print events as they fire"),
    ("/nixevent", "<names...>: stop printing these events"),
    ("/noevents", "stop printing events"),
    ("/filter", "<header> <value> | delete ...: the event socket's filters"),
    ("/quit", "leave (also /exit, /bye, Ctrl-D)"),
    ("/exit", ""),
    ("/bye", ""),
];

const LOG_LEVELS: &[&str] = &[
    "console", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// What a line of input leads to.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Nothing,
    Quit,
    Help,
    /// A socket command (`log debug`, `event plain ALL`…).
    Command(String),
    /// An api command.
    Api(String),
    Unknown(String),
}

fn classify(line: &str) -> Line {
    let line = line.trim();
    if line.is_empty() {
        return Line::Nothing;
    }
    if line == "..." {
        return Line::Quit;
    }
    let Some(slash) = line.strip_prefix('/') else {
        return Line::Api(line.to_string());
    };
    let (word, rest) = slash.split_once(char::is_whitespace).unwrap_or((slash, ""));
    let rest = rest.trim();
    let with = |cmd: &str| {
        if rest.is_empty() {
            cmd.to_string()
        } else {
            format!("{cmd} {rest}")
        }
    };
    match word {
        "quit" | "exit" | "bye" => Line::Quit,
        "help" => Line::Help,
        "log" => Line::Command(with("log")),
        "nolog" => Line::Command("nolog".into()),
        "event" => Line::Command(with("event")),
        "nixevent" => Line::Command(with("nixevent")),
        "noevents" => Line::Command("noevents".into()),
        "filter" => Line::Command(with("filter")),
        _ => Line::Unknown(line.to_string()),
    }
}

/// Where asynchronous output goes: over the prompt while one is shown,
/// straight to stdout otherwise.
#[derive(Clone)]
struct Printer {
    external: Option<Arc<Mutex<Box<dyn ExternalPrinter + Send>>>>,
}

impl Printer {
    fn print(&self, text: String) {
        if let Some(p) = &self.external {
            let mut p = p.lock();
            let _ = p.print(text);
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

fn print_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// State the printing thread and the prompt share.
struct Shared {
    /// We asked to leave: the goodbye is expected.
    quitting: AtomicBool,
    /// The connection is gone (how, and whether that was said).
    lost: Mutex<Option<(Ending, bool)>>,
}

impl Shared {
    fn set_lost(&self, e: Ending) {
        let mut l = self.lost.lock();
        if l.is_none() {
            *l = Some((e, false));
        }
    }

    fn is_lost(&self) -> bool {
        self.lost.lock().is_some()
    }

    /// How the connection ended, the first time it is asked.
    fn take_unreported(&self) -> Option<Ending> {
        let mut l = self.lost.lock();
        match l.as_mut() {
            Some((e, reported)) if !*reported => {
                *reported = true;
                Some(e.clone())
            }
            _ => None,
        }
    }
}

/// Runs until the user leaves or the connection ends; returns the exit
/// status.
pub fn run(
    mut client: Client,
    notices: Receiver<Notice>,
    settings: &Settings,
    style: Style,
) -> i32 {
    let shared = Arc::new(Shared {
        quitting: AtomicBool::new(false),
        lost: Mutex::new(None),
    });
    // Ctrl-C while waiting for a reply stops the wait, not the CLI (at the
    // prompt, rustyline takes Ctrl-C itself).
    let interrupt = client.interrupt.clone();
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupt);
    let tty = std::io::stdin().is_terminal();
    let mut editor = if tty { new_editor(&mut client) } else { None };
    let printer = Printer {
        external: editor
            .as_mut()
            .and_then(|e| e.create_external_printer().ok())
            .map(|p| Arc::new(Mutex::new(Box::new(p) as Box<dyn ExternalPrinter + Send>))),
    };
    let printing = spawn_printer(
        notices,
        printer.clone(),
        shared.clone(),
        style,
        editor.is_some(),
    );
    if !settings.quiet && tty {
        print_now(&style.info(&format!(
            "hotswitch-cli: connected to {}:{}. Type /help for help, /quit to leave.",
            settings.host, settings.port
        )));
    }
    if let Some(level) = &settings.log_level {
        let _ = run_line(&mut client, &format!("/log {level}"), style);
    }
    let status = match editor {
        Some(mut ed) => {
            let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(HISTORY_FILE));
            if let Some(h) = &history {
                let _ = ed.load_history(h);
            }
            let prompt = format!("hotswitch@{}> ", settings.host);
            let status = loop {
                if let Some(e) = shared.take_unreported() {
                    eprint!("{}", style.notice(&format!("hotswitch-cli: {e}")));
                }
                if shared.is_lost() {
                    break EXIT_CONNECTION;
                }
                match ed.readline(&prompt) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = ed.add_history_entry(line.as_str());
                        }
                        if let Some(status) = step(&mut client, &shared, &line, style) {
                            break status;
                        }
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => continue,
                    Err(rustyline::error::ReadlineError::Eof) => {
                        break quit(&mut client, &shared);
                    }
                    Err(e) => {
                        eprintln!("hotswitch-cli: the terminal failed: {e}");
                        break quit(&mut client, &shared);
                    }
                }
            };
            if let Some(h) = &history {
                let _ = ed.save_history(h);
            }
            status
        }
        None => {
            let mut status = None;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(s) = step(&mut client, &shared, &line, style) {
                    status = Some(s);
                    break;
                }
            }
            status.unwrap_or_else(|| quit(&mut client, &shared))
        }
    };
    // What arrived before the end is printed before the CLI ends.
    if let Some(p) = printing {
        let _ = p.join();
    }
    status
}

type Editor = rustyline::Editor<Completion, rustyline::history::DefaultHistory>;

fn new_editor(client: &mut Client) -> Option<Editor> {
    let config = Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)
        .ok()?
        .build();
    let mut ed = Editor::with_config(config).ok()?;
    ed.set_helper(Some(Completion {
        commands: api_names(client),
    }));
    Some(ed)
}

/// The switch's api command names (`show api as json`, else the CSV form).
fn api_names(client: &mut Client) -> Vec<String> {
    let mut names: Vec<String> = match client.api("show api as json") {
        Ok(json) => serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v.get("rows").and_then(|r| r.as_array()).cloned())
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if names.is_empty() {
        if let Ok(csv) = client.api("show api") {
            names = csv
                .lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.split(',').next())
                .map(str::to_string)
                .collect();
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Handles one line; `Some(status)` ends the session.
fn step(client: &mut Client, shared: &Shared, line: &str, style: Style) -> Option<i32> {
    if classify(line) == Line::Quit {
        return Some(quit(client, shared));
    }
    let status = match run_line(client, line, style) {
        Ok(()) => None,
        Err(ClientError::Closed(e)) => {
            lost(shared, e, style);
            Some(EXIT_CONNECTION)
        }
        Err(e @ (ClientError::Timeout(_) | ClientError::Interrupted | ClientError::Encode(_))) => {
            print_now(&style.reply(&format!("-ERR {e}")));
            None
        }
        Err(e) => {
            eprint!("{}", style.notice(&format!("hotswitch-cli: {e}")));
            Some(EXIT_CONNECTION)
        }
    };
    if let Some(e) = shared.take_unreported() {
        eprint!("{}", style.notice(&format!("hotswitch-cli: {e}")));
    }
    status.or(shared.is_lost().then_some(EXIT_CONNECTION))
}

/// Runs a line (not `/quit`), printing what it gives.
fn run_line(client: &mut Client, line: &str, style: Style) -> Result<(), ClientError> {
    match classify(line) {
        Line::Nothing | Line::Quit => {}
        Line::Help => print_now(&help(style)),
        Line::Command(c) => print_now(&style.reply(&client.command(&c)?)),
        Line::Api(c) => print_now(&style.reply(&client.api(&c)?)),
        Line::Unknown(c) => {
            print_now(&style.reply(&format!("-ERR unknown command {c}; /help lists them")))
        }
    }
    Ok(())
}

fn help(style: Style) -> String {
    let mut s = String::from(
        "Any line is run as an api command (try `help` or `show api`). Slash commands:\n",
    );
    for (name, what) in SLASH_COMMANDS.iter().filter(|(_, w)| !w.is_empty()) {
        s.push_str(&format!("  {name} {what}\n"));
    }
    style.info(&s)
}

fn quit(client: &mut Client, shared: &Shared) -> i32 {
    shared.quitting.store(true, Ordering::SeqCst);
    client.exit();
    EXIT_OK
}

/// Says (once, on stderr) that the connection is gone.
fn lost(shared: &Shared, e: Ending, style: Style) {
    shared.set_lost(e);
    if let Some(e) = shared.take_unreported() {
        eprint!("{}", style.notice(&format!("hotswitch-cli: {e}")));
    }
}

/// Prints events and log records as they come; at the end of the
/// connection, says so and wakes the prompt.
fn spawn_printer(
    notices: Receiver<Notice>,
    printer: Printer,
    shared: Arc<Shared>,
    style: Style,
    prompting: bool,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            for n in notices {
                match n {
                    Notice::Event(p) => printer.print(style.event(&p.body)),
                    Notice::Log(p) => printer.print(style.log(p.log_level(), &p.body)),
                    Notice::Closed(e) => {
                        if shared.quitting.load(Ordering::SeqCst) {
                            return;
                        }
                        if !prompting {
                            // The main thread is blocked reading stdin, and
                            // there is no terminal state to restore.
                            lost(&shared, e, style);
                            std::process::exit(EXIT_CONNECTION);
                        }
                        // The prompt says it (a message printed over the
                        // prompt now could be lost when the prompt ends).
                        shared.set_lost(e);
                        // Wakes rustyline (its SIGINT handler) or, if a
                        // reply is awaited, the wait (ours).
                        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGINT);
                        return;
                    }
                }
            }
        })
        .ok()
}

/// Completes command names, and the arguments of `/event` and `/log`.
struct Completion {
    commands: Vec<String>,
}

impl Completion {
    fn candidates(&self, line: &str) -> (usize, Vec<String>) {
        let start = line.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
        let word = &line[start..];
        let before: Vec<&str> = line[..start].split_whitespace().collect();
        let pick = |list: &mut dyn Iterator<Item = &str>| -> Vec<String> {
            let mut v: Vec<String> = list
                .filter(|c| {
                    c.starts_with(word)
                        || c.to_ascii_lowercase()
                            .starts_with(&word.to_ascii_lowercase())
                })
                .map(str::to_string)
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let found = match before.first().copied() {
            None => pick(
                &mut self
                    .commands
                    .iter()
                    .map(String::as_str)
                    .chain(SLASH_COMMANDS.iter().map(|(n, _)| *n)),
            ),
            Some("/event") if before.len() == 1 => pick(
                &mut ["plain", "json", "xml"]
                    .into_iter()
                    .chain(EVENT_NAMES.iter().copied()),
            ),
            Some("/event" | "/nixevent") => pick(&mut EVENT_NAMES.iter().copied()),
            Some("/log") if before.len() == 1 => pick(&mut LOG_LEVELS.iter().copied()),
            Some("show") if before.len() == 1 => {
                pick(&mut hotswitch_core::show::forms().into_iter())
            }
            _ => Vec::new(),
        };
        (start, found)
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(&line[..pos]))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_api_commands_unless_they_are_slash_commands() {
        assert_eq!(
            classify("  show modules "),
            Line::Api("show modules".into())
        );
        assert_eq!(classify("/log debug"), Line::Command("log debug".into()));
        assert_eq!(classify("/log"), Line::Command("log".into()));
        assert_eq!(classify("/nolog"), Line::Command("nolog".into()));
        assert_eq!(
            classify("/event plain CHANNEL_CREATE"),
            Line::Command("event plain CHANNEL_CREATE".into())
        );
        assert_eq!(classify("/noevents"), Line::Command("noevents".into()));
        for q in ["/quit", "/exit", "/bye", "..."] {
            assert_eq!(classify(q), Line::Quit);
        }
        assert_eq!(classify("/help"), Line::Help);
        assert_eq!(classify("/frob x"), Line::Unknown("/frob x".into()));
        assert_eq!(classify("   "), Line::Nothing);
    }

    fn completion() -> Completion {
        Completion {
            commands: vec!["module_exists".into(), "show".into(), "status".into()],
        }
    }

    #[test]
    fn the_first_word_completes_to_command_names_and_slash_commands() {
        let c = completion();
        assert_eq!(c.candidates("mod"), (0, vec!["module_exists".to_string()]));
        assert_eq!(
            c.candidates("s"),
            (0, vec!["show".to_string(), "status".to_string()])
        );
        assert_eq!(
            c.candidates("/no"),
            (0, vec!["/noevents".to_string(), "/nolog".to_string()])
        );
        assert_eq!(c.candidates("show mod"), (5, vec!["modules".to_string()]));
        assert_eq!(c.candidates("show modules x"), (13, vec![]));
    }

    #[test]
    fn event_names_and_log_levels_complete_after_their_slash_command() {
        let c = completion();
        assert_eq!(c.candidates("/event js"), (7, vec!["json".to_string()]));
        assert_eq!(
            c.candidates("/event plain CHANNEL_CR"),
            (13, vec!["CHANNEL_CREATE".to_string()])
        );
        assert_eq!(c.candidates("/log de"), (5, vec!["debug".to_string()]));
    }
}

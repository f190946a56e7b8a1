//! `hotswitch-cli`: the command-line client of hotswitch, as `fs_cli` is
//! FreeSWITCH's. It talks to the switch's event socket (mod_event_socket),
//! so it works against any switch that speaks that protocol.
//!
//! ```text
//! hotswitch-cli [-H host] [-P port] [-p password] [--config file]
//!               [-x "command"]... [-l level] [-t ms] [-T ms] [-n] [-q]
//! ```
//!
//! - `-x "<command>"` (repeatable): run each api command in order, print its
//!   output, and exit. The exit status is 1 if any reply is `-ERR …` or
//!   `-USAGE: …`, so scripts can test it:
//!   `hotswitch-cli -x "show modules" | grep mod_event_socket`.
//! - Without `-x`: the interactive mode. In a terminal, a prompt
//!   (`hotswitch@127.0.0.1> `) with line editing, history in
//!   `~/.hotswitch_cli_history` and Tab completion of the switch's command
//!   names (from `show api`); with stdin on a pipe, one command per line.
//!   A line is run as `api <line>`, except fs_cli's slash commands:
//!   `/log <level>` and `/nolog` (log lines are printed as they arrive),
//!   `/event <plain|json|xml> <names…>|ALL`, `/nixevent`, `/noevents` (events
//!   printed as they arrive), `/filter …`, `/help`, and `/quit`, `/exit`,
//!   `/bye` or Ctrl-D to leave. Ctrl-C abandons a reply being waited for.
//! - Colours when stdout is a terminal (errors red, log lines by level as
//!   fs_cli colours them, events dim); none on a pipe, with `-n`, with
//!   `NO_COLOR` set or with `TERM=dumb`.
//!
//! Options: `-H/--host` (default 127.0.0.1), `-P/--port` (8021),
//! `-p/--password` (ClueCon), `-c/--config <file>`, `-x/--execute <cmd>`,
//! `-l/--log-level <level>` (ask for log lines at start), `-t/--timeout
//! <ms>` (per reply; 0, the default, waits for ever), `-T/--connect-timeout
//! <ms>` (default 5000), `-n/--no-color`, `-q/--quiet` (no banner),
//! `-h/--help`, `-V/--version`.
//!
//! **Config file.** `~/.hotswitch-cli.conf`, or the file given with
//! `--config`, holds `key = value` lines; the keys are `host`, `port` and
//! `password`; lines starting with `#` or `;` are comments; a value may be
//! quoted (`password = "two words"`). Flags override the file, which
//! overrides the defaults. An unknown key is an error naming the file and
//! line.
//!
//! ```text
//! # ~/.hotswitch-cli.conf
//! host = 127.0.0.1
//! port = 8021
//! password = ClueCon
//! ```
//!
//! **Exit status.** 0: done. 1: a command replied `-ERR` or `-USAGE`.
//! 2: bad arguments or config file. 3: cannot connect or authenticate, no
//! reply within `-t`, or the connection was lost (the server's disconnect
//! notice, or a malformed packet) — with a message on stderr.
//!
//! Inside: [`protocol`] is the sans-IO client side of the protocol,
//! [`client`] the connection and its reader thread, [`settings`] the
//! command line and config file, [`render`] the colours, and
//! [`interactive`] the prompt.

mod client;
mod interactive;
mod protocol;
mod render;
mod settings;

use client::Client;
use render::Style;
use settings::{Action, FileValues, Settings, SettingsError, CONFIG_FILE};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

const EXIT_OK: i32 = 0;
const EXIT_COMMAND_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_CONNECTION: i32 = 3;

const USAGE: &str = "usage: hotswitch-cli [-H host] [-P port] [-p password] [-c config] [-x command]... [-l level] [-t ms] [-T ms] [-n] [-q]

  -H, --host HOST             event socket address (default 127.0.0.1)
  -P, --port PORT             event socket port (default 8021)
  -p, --password PASSWORD     event socket password (default ClueCon)
  -c, --config FILE           config file (default ~/.hotswitch-cli.conf: host, port, password)
  -x, --execute COMMAND       run an api command and exit (repeatable; exit 1 on -ERR)
  -l, --log-level LEVEL       interactive: stream log lines of LEVEL and above from the start
  -t, --timeout MS            give up waiting for a reply after MS (0: never, the default)
  -T, --connect-timeout MS    give up connecting after MS (default 5000; 0: the system's)
  -n, --no-color              no colours, even in a terminal
  -q, --quiet                 no banner
  -h, --help                  this text
  -V, --version               the version

Interactive: any line runs as an api command; /log LEVEL, /nolog, /event plain|json NAMES, /noevents, /help, /quit.
";

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = match load_settings(&args) {
        Ok(Action::Run(s)) => s,
        Ok(Action::Help) => {
            print!("{USAGE}");
            return EXIT_OK;
        }
        Ok(Action::Version) => {
            println!("hotswitch-cli {}", env!("CARGO_PKG_VERSION"));
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("hotswitch-cli: {e}");
            eprint!("{USAGE}");
            return EXIT_USAGE;
        }
    };
    let style = Style {
        color: !settings.no_color && colour_wanted(),
    };
    let (mut client, notices) = match Client::connect(
        &settings.host,
        settings.port,
        &settings.password,
        settings.connect_timeout,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hotswitch-cli: {e}");
            return EXIT_CONNECTION;
        }
    };
    client.timeout = settings.timeout;
    if settings.commands.is_empty() {
        interactive::run(client, notices, &settings, style)
    } else {
        drop(notices);
        one_shot(&mut client, &settings, style)
    }
}

/// The command line, with the config file it names (or the default one,
/// when it exists) under it.
fn load_settings(args: &[String]) -> Result<Action, SettingsError> {
    let flags = settings::parse_flags(args)?;
    let (path, required) = match &flags.config {
        Some(p) => (Some(p.clone()), true),
        None => (
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(CONFIG_FILE)),
            false,
        ),
    };
    let file = match path {
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(text) => settings::parse_config(&p.display().to_string(), &text)?,
            Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SettingsError::ConfigUnreadable(
                    p.display().to_string(),
                    e.to_string(),
                ))
            }
            Err(_) => FileValues::default(),
        },
        None => FileValues::default(),
    };
    Ok(settings::merge(flags, file))
}

fn colour_wanted() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// `-x`: every command in order; 1 if any failed.
fn one_shot(client: &mut Client, settings: &Settings, style: Style) -> i32 {
    let mut status = EXIT_OK;
    for cmd in &settings.commands {
        match client.api(cmd) {
            Ok(out) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(style.reply(&out).as_bytes());
                let _ = stdout.flush();
                if render::is_error(&out) {
                    status = EXIT_COMMAND_FAILED;
                }
            }
            Err(e @ client::ClientError::Encode(_)) => {
                eprintln!("hotswitch-cli: {cmd:?}: {e}");
                status = EXIT_COMMAND_FAILED;
            }
            Err(e @ client::ClientError::Timeout(_)) => {
                eprintln!("hotswitch-cli: {cmd:?}: {e}");
                return EXIT_CONNECTION;
            }
            Err(e) => {
                eprintln!("hotswitch-cli: {e}");
                return EXIT_CONNECTION;
            }
        }
    }
    client.exit();
    status
}

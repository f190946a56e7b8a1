//! From a [`Packet`] to a [`Command`]: which command the client sent and
//! its arguments, sans-IO. What a command *does* lives in `connection`.

use crate::frames::Format;
use crate::packet::Packet;

/// A client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `auth <password>`.
    Auth(String),
    /// `userauth user@domain:password`.
    Userauth,
    /// `exit` (or `...`).
    Exit,
    /// `api <command> [args]`.
    Api { command: String, args: String },
    /// `bgapi <command> [args]`, with the client's `Job-UUID` if it sent one.
    Bgapi {
        command: String,
        args: String,
        job_uuid: Option<String>,
    },
    /// `event [plain|json|xml] <names…>`.
    Event {
        format: Option<Format>,
        names: Vec<String>,
    },
    /// `nixevent <names…>`.
    Nixevent(Vec<String>),
    /// `noevents`.
    Noevents,
    /// `filter …`.
    Filter(FilterCommand),
    /// `sendmsg [uuid]` with its call command.
    Sendmsg {
        uuid: Option<String>,
        message: CallCommand,
    },
    /// `sendevent <NAME>` with the packet's headers and body.
    Sendevent {
        name: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
    },
    /// `myevents [uuid] [format]`.
    Myevents {
        uuid: Option<String>,
        format: Option<Format>,
    },
    /// `divert_events on|off` (`None`: no value given).
    DivertEvents(Option<bool>),
    /// `linger [seconds]` (`None`: until the client closes).
    Linger(Option<i64>),
    /// `nolinger`.
    Nolinger,
    /// `log [level]`.
    Log(String),
    /// `nolog`.
    Nolog,
    /// `resume`.
    Resume,
    /// `getvar <name>`.
    Getvar(String),
    /// `connect` (outbound).
    Connect,
    /// Anything else.
    Unknown(String),
}

/// `filter` and its forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterCommand {
    /// `filter [add] <Header> <value>`.
    Add { header: String, value: String },
    /// `filter delete <Header> [value]`.
    Delete {
        header: String,
        value: Option<String>,
    },
    /// `filter delete all`.
    DeleteAll,
    /// A form FreeSWITCH answers `-ERR invalid syntax`.
    Invalid,
}

/// What `sendmsg` asks of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    /// `call-command: execute`.
    Execute {
        app: String,
        arg: String,
        loops: u32,
        event_lock: bool,
        event_uuid: Option<String>,
    },
    /// `call-command: hangup` with `hangup-cause`.
    Hangup { cause: String },
    /// A call command this switch does not implement.
    Unsupported(String),
    /// No `call-command` header.
    Missing,
}

/// The words of a command line after its first.
fn rest(line: &str) -> &str {
    line.split_once(char::is_whitespace)
        .map(|(_, r)| r.trim())
        .unwrap_or("")
}

fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow"
    )
}

/// True when `hay` contains `needle` (ASCII, case-insensitively).
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Parses a packet into a command.
pub fn parse(mut packet: Packet) -> Command {
    let command_line = std::mem::take(&mut packet.command);
    let line = command_line.trim();
    // FreeSWITCH runs any command that would unload this module through
    // `bgapi`, so that the connection asking is not the one waiting for
    // itself to close.
    if contains_ignore_case(line, "mod_event_socket") {
        for verb in ["unload", "reload"] {
            if contains_ignore_case(line, verb) {
                return Command::Api {
                    command: "bgapi".into(),
                    args: format!("{verb} mod_event_socket"),
                };
            }
        }
    }
    if line.starts_with("...") {
        return Command::Exit;
    }
    let word = line.split_whitespace().next().unwrap_or("");
    let args = rest(line);
    // Every command name is short: lower-cased on the stack.
    let mut lower = [0u8; 16];
    let verb = match lower.get_mut(..word.len()) {
        Some(l) => {
            l.copy_from_slice(word.as_bytes());
            l.make_ascii_lowercase();
            std::str::from_utf8(l).unwrap_or("")
        }
        None => "",
    };
    match verb {
        "exit" => Command::Exit,
        "auth" => Command::Auth(args.to_string()),
        "userauth" => Command::Userauth,
        "api" => {
            let (command, args) = split_command(args);
            Command::Api { command, args }
        }
        "bgapi" => {
            let (command, args) = split_command(args);
            Command::Bgapi {
                command,
                args,
                job_uuid: packet
                    .header("Job-UUID")
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string),
            }
        }
        "event" => {
            let mut words = args.split_whitespace().peekable();
            let format = words.peek().and_then(|w| Format::parse(w));
            if format.is_some() {
                words.next();
            }
            Command::Event {
                format,
                names: words.map(str::to_string).collect(),
            }
        }
        "nixevent" => Command::Nixevent(args.split_whitespace().map(str::to_string).collect()),
        "noevents" => Command::Noevents,
        "filter" => Command::Filter(parse_filter(args)),
        "sendmsg" => {
            let uuid = Some(args)
                .filter(|u| !u.is_empty())
                .or_else(|| packet.header("session-id"))
                .map(|u| u.trim().to_string());
            Command::Sendmsg {
                uuid,
                message: parse_call_command(&packet),
            }
        }
        "sendevent" => Command::Sendevent {
            name: args.split_whitespace().next().unwrap_or("").to_string(),
            headers: std::mem::take(&mut packet.headers),
            body: packet.body.take(),
        },
        "myevents" => {
            let mut uuid = None;
            let mut format = None;
            for w in args.split_whitespace() {
                match Format::parse(w) {
                    Some(f) => format = Some(f),
                    None if uuid.is_none() => uuid = Some(w.to_string()),
                    None => {}
                }
            }
            Command::Myevents { uuid, format }
        }
        "divert_events" => Command::DivertEvents(
            Some(args)
                .filter(|a| !a.is_empty())
                .map(|a| a.eq_ignore_ascii_case("on")),
        ),
        "linger" => Command::Linger(args.parse().ok()),
        "nolinger" => Command::Nolinger,
        "log" => Command::Log(args.split_whitespace().next().unwrap_or("").to_string()),
        "nolog" => Command::Nolog,
        "resume" => Command::Resume,
        "getvar" => Command::Getvar(args.to_string()),
        "connect" => Command::Connect,
        _ => Command::Unknown(line.to_string()),
    }
}

fn split_command(s: &str) -> (String, String) {
    match s.split_once(char::is_whitespace) {
        Some((c, a)) => (c.to_string(), a.trim_start().to_string()),
        None => (s.to_string(), String::new()),
    }
}

fn parse_filter(args: &str) -> FilterCommand {
    let (first, rest) = match args.split_once(' ') {
        Some((f, r)) => (f, Some(r)),
        None => (args, None),
    };
    if first.eq_ignore_ascii_case("delete") {
        let Some(rest) = rest.filter(|r| !r.is_empty()) else {
            return FilterCommand::Invalid;
        };
        let (header, value) = match rest.split_once(' ') {
            Some((h, v)) => (h, Some(v.to_string())),
            None => (rest, None),
        };
        if header.eq_ignore_ascii_case("all") {
            return FilterCommand::DeleteAll;
        }
        return FilterCommand::Delete {
            header: header.to_string(),
            value,
        };
    }
    let (header, value) = if first.eq_ignore_ascii_case("add") {
        match rest.and_then(|r| r.split_once(' ')) {
            Some((h, v)) => (h, Some(v)),
            None => return FilterCommand::Invalid,
        }
    } else {
        (first, rest)
    };
    match value {
        Some(v) if !header.is_empty() => FilterCommand::Add {
            header: header.to_string(),
            value: v.to_string(),
        },
        _ => FilterCommand::Invalid,
    }
}

fn parse_call_command(p: &Packet) -> CallCommand {
    let Some(cc) = p.header("call-command") else {
        return CallCommand::Missing;
    };
    match cc.trim().to_ascii_lowercase().as_str() {
        "execute" => {
            let body_is_arg = p
                .header("content-type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"));
            let arg = match p.header("execute-app-arg") {
                Some(a) => a.to_string(),
                None if body_is_arg => p.body.clone().unwrap_or_default(),
                None => String::new(),
            };
            CallCommand::Execute {
                app: p
                    .header("execute-app-name")
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                arg,
                loops: p
                    .header("loops")
                    .and_then(|l| l.trim().parse::<i64>().ok())
                    .map(|l| l.clamp(1, u32::MAX as i64) as u32)
                    .unwrap_or(1),
                event_lock: p.header("event-lock").is_some_and(is_true),
                event_uuid: p.header("Event-UUID").map(str::to_string),
            }
        }
        "hangup" => CallCommand::Hangup {
            cause: p.header("hangup-cause").unwrap_or("").trim().to_string(),
        },
        other => CallCommand::Unsupported(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parser;
    use hotswitch_plugin_api::sansio::Protocol;

    fn cmd(text: &str) -> Command {
        let mut p = parser();
        p.handle_input(text.as_bytes());
        parse(p.poll_event().unwrap().unwrap())
    }

    #[test]
    fn api_splits_the_command_from_its_arguments() {
        assert_eq!(
            cmd("api show channels as json\n\n"),
            Command::Api {
                command: "show".into(),
                args: "channels as json".into()
            }
        );
        assert_eq!(
            cmd("API status\n\n"),
            Command::Api {
                command: "status".into(),
                args: "".into()
            }
        );
    }

    #[test]
    fn bgapi_honours_the_clients_job_uuid() {
        assert_eq!(
            cmd("bgapi status\nJob-UUID: abc\n\n"),
            Command::Bgapi {
                command: "status".into(),
                args: "".into(),
                job_uuid: Some("abc".into())
            }
        );
    }

    #[test]
    fn reloading_this_module_is_turned_into_a_background_job() {
        for line in [
            "api reload mod_event_socket",
            "bgapi unload mod_event_socket",
        ] {
            match cmd(&format!("{line}\n\n")) {
                Command::Api { command, args } => {
                    assert_eq!(command, "bgapi");
                    assert!(args.ends_with(" mod_event_socket"));
                }
                c => panic!("{c:?}"),
            }
        }
    }

    #[test]
    fn event_takes_an_optional_format_then_names() {
        assert_eq!(
            cmd("event json CHANNEL_CREATE CUSTOM a::b\n\n"),
            Command::Event {
                format: Some(Format::Json),
                names: vec!["CHANNEL_CREATE".into(), "CUSTOM".into(), "a::b".into()]
            }
        );
        assert_eq!(
            cmd("event ALL\n\n"),
            Command::Event {
                format: None,
                names: vec!["ALL".into()]
            }
        );
    }

    #[test]
    fn filter_forms_follow_freeswitch() {
        assert_eq!(
            cmd("filter Event-Name CHANNEL_ANSWER\n\n"),
            Command::Filter(FilterCommand::Add {
                header: "Event-Name".into(),
                value: "CHANNEL_ANSWER".into()
            })
        );
        assert_eq!(
            cmd("filter add Unique-ID /^ab.*/\n\n"),
            Command::Filter(FilterCommand::Add {
                header: "Unique-ID".into(),
                value: "/^ab.*/".into()
            })
        );
        assert_eq!(
            cmd("filter delete all\n\n"),
            Command::Filter(FilterCommand::DeleteAll)
        );
        assert_eq!(
            cmd("filter delete Event-Name\n\n"),
            Command::Filter(FilterCommand::Delete {
                header: "Event-Name".into(),
                value: None
            })
        );
        assert_eq!(
            cmd("filter Event-Name\n\n"),
            Command::Filter(FilterCommand::Invalid)
        );
    }

    #[test]
    fn sendmsg_execute_reads_its_headers_or_a_plain_text_body() {
        let c = cmd("sendmsg u1\ncall-command: execute\nexecute-app-name: playback\nloops: 3\nevent-lock: true\nEvent-UUID: e1\nContent-Type: text/plain\nContent-Length: 4\n\nfile");
        assert_eq!(
            c,
            Command::Sendmsg {
                uuid: Some("u1".into()),
                message: CallCommand::Execute {
                    app: "playback".into(),
                    arg: "file".into(),
                    loops: 3,
                    event_lock: true,
                    event_uuid: Some("e1".into())
                }
            }
        );
    }

    #[test]
    fn sendmsg_hangup_and_unknown_call_commands() {
        assert_eq!(
            cmd("sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"),
            Command::Sendmsg {
                uuid: None,
                message: CallCommand::Hangup {
                    cause: "USER_BUSY".into()
                }
            }
        );
        assert_eq!(
            cmd("sendmsg x\ncall-command: nomedia\n\n"),
            Command::Sendmsg {
                uuid: Some("x".into()),
                message: CallCommand::Unsupported("nomedia".into())
            }
        );
    }

    #[test]
    fn small_commands_parse() {
        assert_eq!(cmd("exit\n\n"), Command::Exit);
        assert_eq!(cmd("...\n\n"), Command::Exit);
        assert_eq!(cmd("linger 30\n\n"), Command::Linger(Some(30)));
        assert_eq!(cmd("linger\n\n"), Command::Linger(None));
        assert_eq!(
            cmd("divert_events on\n\n"),
            Command::DivertEvents(Some(true))
        );
        assert_eq!(
            cmd("myevents abc json\n\n"),
            Command::Myevents {
                uuid: Some("abc".into()),
                format: Some(Format::Json)
            }
        );
        assert_eq!(cmd("frobnicate\n\n"), Command::Unknown("frobnicate".into()));
    }
}

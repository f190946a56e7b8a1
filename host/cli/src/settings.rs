//! Where to connect and what to do: the command line over the config file
//! over the defaults. Pure functions of their input, so they are tested
//! without a file system or a process.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The event socket's defaults (FreeSWITCH's).
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8021;
pub const DEFAULT_PASSWORD: &str = "ClueCon";
/// The config file read when `--config` is not given, under `$HOME`.
pub const CONFIG_FILE: &str = ".hotswitch-cli.conf";
/// The history file of the interactive mode, under `$HOME`.
pub const HISTORY_FILE: &str = ".hotswitch_cli_history";

/// Everything the CLI was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub password: String,
    /// `-x` commands, in order; empty: interactive.
    pub commands: Vec<String>,
    /// `-l`: the log level asked for at start (interactive).
    pub log_level: Option<String>,
    /// `-n`: no colours even in a terminal.
    pub no_color: bool,
    /// `-q`: no banner.
    pub quiet: bool,
    /// `-t`: how long to wait for a reply (None: for ever).
    pub timeout: Option<Duration>,
    /// `-T`: how long to wait for the connection (None: the system's limit).
    pub connect_timeout: Option<Duration>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Run(Settings),
    Help,
    Version,
}

/// A command line or config file that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// An option needs a value and has none.
    MissingValue(String),
    /// An unknown option.
    UnknownOption(String),
    /// A value of the wrong form.
    BadValue { option: String, value: String },
    /// A config file line: (file, line number, what is wrong).
    Config(String, usize, String),
    /// The config file named by `--config` cannot be read.
    ConfigUnreadable(String, String),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::MissingValue(o) => write!(f, "option {o} needs a value"),
            SettingsError::UnknownOption(o) => write!(f, "unknown option {o}"),
            SettingsError::BadValue { option, value } => {
                write!(f, "{option}: {value:?} is not a valid value")
            }
            SettingsError::Config(file, line, what) => write!(f, "{file}:{line}: {what}"),
            SettingsError::ConfigUnreadable(file, e) => write!(f, "cannot read {file}: {e}"),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The command line, before the config file is merged in.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password: Option<String>,
    pub config: Option<PathBuf>,
    pub commands: Vec<String>,
    pub log_level: Option<String>,
    pub no_color: bool,
    pub quiet: bool,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Option<Duration>>,
    pub help: bool,
    pub version: bool,
}

/// Parses the arguments (without the program name). Options take their
/// value as the next argument, glued (`-P8021`) or after `=` (`--port=8021`).
pub fn parse_flags(args: &[String]) -> Result<Flags, SettingsError> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, glued) = split_option(arg);
        let mut value = |name: &str| -> Result<String, SettingsError> {
            match &glued {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| SettingsError::MissingValue(name.to_string())),
            }
        };
        match name.as_str() {
            "-H" | "--host" => f.host = Some(value(&name)?),
            "-P" | "--port" => {
                let v = value(&name)?;
                f.port = Some(parse_port(&name, &v)?);
            }
            "-p" | "--password" => f.password = Some(value(&name)?),
            "-c" | "--config" => f.config = Some(PathBuf::from(value(&name)?)),
            "-x" | "--execute" => f.commands.push(value(&name)?),
            "-l" | "--log-level" => f.log_level = Some(value(&name)?),
            "-t" | "--timeout" => f.timeout = parse_millis(&name, &value(&name)?)?,
            "-T" | "--connect-timeout" => {
                f.connect_timeout = Some(parse_millis(&name, &value(&name)?)?)
            }
            "-n" | "--no-color" => f.no_color = true,
            "-q" | "--quiet" => f.quiet = true,
            "-h" | "--help" => f.help = true,
            "-V" | "--version" => f.version = true,
            _ => return Err(SettingsError::UnknownOption(arg.clone())),
        }
    }
    Ok(f)
}

/// `--name=value` → (`--name`, value); `-Pvalue` → (`-P`, value).
fn split_option(arg: &str) -> (String, Option<String>) {
    if let Some(long) = arg.strip_prefix("--") {
        return match long.split_once('=') {
            Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
            None => (arg.to_string(), None),
        };
    }
    if arg.len() > 2 && arg.starts_with('-') && arg.is_char_boundary(2) {
        let (n, v) = arg.split_at(2);
        if matches!(n, "-H" | "-P" | "-p" | "-c" | "-x" | "-l" | "-t" | "-T") {
            return (n.to_string(), Some(v.to_string()));
        }
    }
    (arg.to_string(), None)
}

fn parse_port(option: &str, v: &str) -> Result<u16, SettingsError> {
    v.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| SettingsError::BadValue {
            option: option.to_string(),
            value: v.to_string(),
        })
}

/// Milliseconds; 0 means no limit.
fn parse_millis(option: &str, v: &str) -> Result<Option<Duration>, SettingsError> {
    let ms: u64 = v.trim().parse().map_err(|_| SettingsError::BadValue {
        option: option.to_string(),
        value: v.to_string(),
    })?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// The config file's values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileValues {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password: Option<String>,
}

/// Reads `key = value` lines (`host`, `port`, `password`); `#` and `;`
/// start comment lines; values may be quoted to keep spaces at their ends.
pub fn parse_config(name: &str, text: &str) -> Result<FileValues, SettingsError> {
    let mut v = FileValues::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let err = |what: String| SettingsError::Config(name.to_string(), i + 1, what);
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("expected `key = value`, got {line:?}")));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = unquote(value.trim());
        match key.as_str() {
            "host" => v.host = Some(value),
            "port" => {
                v.port = Some(
                    parse_port("port", &value)
                        .map_err(|_| err(format!("port {value:?} is not a port number")))?,
                )
            }
            "password" => v.password = Some(value),
            _ => {
                return Err(err(format!(
                    "unknown key {key:?} (known: host, port, password)"
                )))
            }
        }
    }
    Ok(v)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Flags over the config file over the defaults.
pub fn merge(flags: Flags, file: FileValues) -> Action {
    if flags.help {
        return Action::Help;
    }
    if flags.version {
        return Action::Version;
    }
    Action::Run(Settings {
        host: flags
            .host
            .or(file.host)
            .unwrap_or_else(|| DEFAULT_HOST.to_string()),
        port: flags.port.or(file.port).unwrap_or(DEFAULT_PORT),
        password: flags
            .password
            .or(file.password)
            .unwrap_or_else(|| DEFAULT_PASSWORD.to_string()),
        commands: flags.commands,
        log_level: flags.log_level,
        no_color: flags.no_color,
        quiet: flags.quiet,
        timeout: flags.timeout,
        connect_timeout: flags
            .connect_timeout
            .unwrap_or(Some(Duration::from_secs(5))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn run(flags: &[&str], file: &str) -> Settings {
        let f = parse_flags(&args(flags)).expect("flags parse");
        let v = parse_config("test.conf", file).expect("config parses");
        match merge(f, v) {
            Action::Run(s) => s,
            a => panic!("expected a run, got {a:?}"),
        }
    }

    #[test]
    fn with_nothing_given_it_is_fs_clis_defaults() {
        let s = run(&[], "");
        assert_eq!(
            (s.host.as_str(), s.port, s.password.as_str()),
            ("127.0.0.1", 8021, "ClueCon")
        );
        assert!(s.commands.is_empty());
    }

    #[test]
    fn the_config_file_sets_host_port_and_password_and_flags_override_it() {
        let file = "# mine\nhost = 10.0.0.1\n  port=8022\n; old\npassword = \"secret pw\"\n";
        let s = run(&[], file);
        assert_eq!(
            (s.host.as_str(), s.port, s.password.as_str()),
            ("10.0.0.1", 8022, "secret pw")
        );
        let s = run(&["-P", "9000", "--password=x"], file);
        assert_eq!(
            (s.host.as_str(), s.port, s.password.as_str()),
            ("10.0.0.1", 9000, "x")
        );
    }

    #[test]
    fn options_take_separate_glued_and_equals_values() {
        let f = parse_flags(&args(&[
            "-H",
            "h1",
            "-P8023",
            "--password=pw",
            "-x",
            "status",
            "--execute",
            "version",
        ]))
        .unwrap();
        assert_eq!(f.host.as_deref(), Some("h1"));
        assert_eq!(f.port, Some(8023));
        assert_eq!(f.password.as_deref(), Some("pw"));
        assert_eq!(f.commands, vec!["status", "version"]);
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert_eq!(
            parse_flags(&args(&["-P"])),
            Err(SettingsError::MissingValue("-P".into()))
        );
        assert!(matches!(
            parse_flags(&args(&["-P", "http"])),
            Err(SettingsError::BadValue { .. })
        ));
        assert_eq!(
            parse_flags(&args(&["--frobnicate"])),
            Err(SettingsError::UnknownOption("--frobnicate".into()))
        );
    }

    #[test]
    fn config_file_mistakes_name_the_file_and_line() {
        let e = parse_config("my.conf", "host = a\npasword = x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "my.conf:2: unknown key \"pasword\" (known: host, port, password)"
        );
        let e = parse_config("my.conf", "just words\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("my.conf:1: expected `key = value`"),
            "{e}"
        );
        assert!(parse_config("my.conf", "port = 0\n").is_err());
    }

    #[test]
    fn timeouts_are_milliseconds_and_zero_means_none() {
        let s = run(&["-t", "1500", "-T", "0"], "");
        assert_eq!(s.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(s.connect_timeout, None);
        assert_eq!(run(&[], "").connect_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn help_and_version_win_over_everything() {
        assert_eq!(
            merge(
                parse_flags(&args(&["-x", "a", "-h"])).unwrap(),
                FileValues::default()
            ),
            Action::Help
        );
        assert_eq!(
            merge(
                parse_flags(&args(&["--version"])).unwrap(),
                FileValues::default()
            ),
            Action::Version
        );
    }
}

//! `hotswitch-cli` against the real switch with mod_event_socket on a free
//! port: one-shot `-x` use from a shell (output, exit status, messages),
//! the config file, and the interactive mode through a pseudo-terminal
//! (replies, Tab completion, events, log lines, colours, leaving, and the
//! server going away).

use hotswitch_e2e::{build_dir, free_port, Switch, TempDir};
use rexpect::reader::Options;
use rexpect::session::{spawn_with_options, PtySession};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const PTY_TIMEOUT_MS: u64 = 20_000;
const PROMPT: &str = "hotswitch@127.0.0.1> ";

/// The CLI binary, built by `cargo build --workspace` next to the switch.
fn cli() -> PathBuf {
    let b = build_dir().join("hotswitch-cli");
    assert!(
        b.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        b.display()
    );
    b
}

/// A switch with mod_loopback, mod_dptools and mod_event_socket listening
/// on a free port with `password`.
fn esl_switch(password: &str) -> (Switch, u16) {
    esl_switch_with(password, &[])
}

/// [`esl_switch`] with extra command-line arguments for the switch.
fn esl_switch_with(password: &str, args: &[&str]) -> (Switch, u16) {
    hotswitch_e2e::event_socket_switch(password, "", args)
}

/// A private `$HOME`, so that no user's config or history is read or
/// written.
fn home() -> TempDir {
    TempDir::new("cli-home")
}

/// The CLI run to its end with `args`, stdout and stderr on pipes.
fn run_cli(home: &Path, args: &[&str]) -> Output {
    Command::new(cli())
        .args(args)
        .env("HOME", home)
        .env_remove("NO_COLOR")
        .output()
        .expect("run hotswitch-cli")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn show_modules_from_a_shell_script_finds_mod_event_socket() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let script = format!(
        "'{}' -P {port} -x 'show modules' | grep mod_event_socket",
        cli().display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("HOME", h.path())
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{script}: {out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .all(|l| l.split(',').nth(2) == Some("mod_event_socket")),
        "{stdout}"
    );
    assert!(
        stdout.starts_with("application,socket,mod_event_socket,"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "colours on a pipe: {stdout:?}");
}

#[test]
fn an_unknown_command_exits_non_zero_with_the_servers_error() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let out = run_cli(
        h.path(),
        &["-P", &port.to_string(), "-x", "no_such_command"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "-ERR no_such_command Command not found!\n"
    );
    let out = run_cli(h.path(), &["-P", &port.to_string(), "-x", "originate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stdout).starts_with("-USAGE: "), "{out:?}");
}

#[test]
fn a_wrong_password_exits_non_zero_with_a_message() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let out = run_cli(
        h.path(),
        &["-P", &port.to_string(), "-p", "wrong", "-x", "status"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "hotswitch-cli: authentication failed: -ERR invalid\n"
    );
}

#[test]
fn nothing_listening_exits_non_zero_with_a_message() {
    let h = home();
    let port = free_port();
    let out = run_cli(h.path(), &["-P", &port.to_string(), "-x", "status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "hotswitch-cli: cannot connect to 127.0.0.1:{port}: "
        )),
        "{err}"
    );
}

#[test]
fn several_x_commands_run_in_order_and_one_failure_fails_the_run() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let p = port.to_string();
    let out = run_cli(
        h.path(),
        &[
            "-P",
            &p,
            "-x",
            "echo one",
            "-x",
            "echo two",
            "-x",
            "module_exists mod_event_socket",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "one\ntwo\ntrue\n");
    let out = run_cli(
        h.path(),
        &["-P", &p, "-x", "echo one", "-x", "nope", "-x", "echo three"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "one\n-ERR nope Command not found!\nthree\n"
    );
}

#[test]
fn the_config_file_gives_port_and_password_and_flags_override_it() {
    let (_sw, port) = esl_switch("s3cret pass");
    let h = home();
    std::fs::write(
        h.path().join(".hotswitch-cli.conf"),
        format!("# test\nhost = 127.0.0.1\nport = {port}\npassword = \"s3cret pass\"\n"),
    )
    .unwrap();
    let out = run_cli(h.path(), &["-x", "echo from-config"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "from-config\n");
    let out = run_cli(h.path(), &["-p", "ClueCon", "-x", "echo x"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the flag overrides the file: {out:?}"
    );

    let other = h.path().join("other.conf");
    std::fs::write(&other, format!("port = {port}\npassword = wrong\n")).unwrap();
    let out = run_cli(
        h.path(),
        &["--config", other.to_str().unwrap(), "-x", "echo x"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "--config replaces the default file: {out:?}"
    );

    std::fs::write(&other, "pasword = x\n").unwrap();
    let out = run_cli(
        h.path(),
        &["--config", other.to_str().unwrap(), "-x", "echo x"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("other.conf:1: unknown key \"pasword\""),
        "{out:?}"
    );
}

/// The CLI in a pseudo-terminal, with what it printed so far.
struct Pty {
    s: PtySession,
    seen: String,
}

impl Pty {
    fn start(home: &Path, args: &[&str]) -> Pty {
        let mut cmd = Command::new(cli());
        cmd.args(args)
            .env("HOME", home)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        let s = spawn_with_options(
            cmd,
            Options::new()
                .timeout_ms(Some(PTY_TIMEOUT_MS))
                .strip_ansi_escape_codes(false),
        )
        .expect("spawn hotswitch-cli in a pty");
        Pty {
            s,
            seen: String::new(),
        }
    }

    /// Reads until `needle` has been printed; returns what came before it.
    fn expect(&mut self, needle: &str) -> String {
        match self.s.exp_string(needle) {
            Ok(before) => {
                self.seen.push_str(&before);
                self.seen.push_str(needle);
                before
            }
            Err(e) => panic!(
                "hotswitch-cli did not print {needle:?}: {e}\nso far:\n{}",
                self.seen
            ),
        }
    }

    /// Reads until `re` matches; returns the match.
    fn expect_regex(&mut self, re: &str) -> String {
        match self.s.exp_regex(re) {
            Ok((before, m)) => {
                self.seen.push_str(&before);
                self.seen.push_str(&m);
                m
            }
            Err(e) => panic!(
                "hotswitch-cli did not print /{re}/: {e}\nso far:\n{}",
                self.seen
            ),
        }
    }

    fn prompt(&mut self) {
        self.expect(PROMPT);
    }

    /// Types a line at the prompt.
    fn line(&mut self, l: &str) {
        self.s.send_line(l).expect("type into the pty");
    }

    /// The exit code once the CLI has ended.
    fn exit_code(mut self) -> i32 {
        let _ = self.s.exp_eof();
        match self.s.process().wait().expect("wait for hotswitch-cli") {
            rexpect::process::WaitStatus::Exited(_, code) => code,
            other => panic!("hotswitch-cli did not exit normally: {other:?}"),
        }
    }
}

#[test]
fn the_interactive_mode_runs_commands_completes_names_and_prints_events_and_logs() {
    // The switch logs debug records only when it runs at debug.
    let (mut sw, port) = esl_switch_with("ClueCon", &["-loglevel", "debug"]);
    let h = home();
    let p = port.to_string();
    let mut t = Pty::start(h.path(), &["-P", &p]);
    t.expect("connected to 127.0.0.1:");
    t.prompt();

    // A command and its reply.
    t.line("version");
    t.expect("FreeSWITCH Version 1.10.12-hotswitch-");
    t.prompt();

    // An error, red in a terminal.
    t.line("no_such_command");
    t.expect("\x1b[31m-ERR no_such_command Command not found!\x1b[0m");
    t.prompt();

    // Tab completes a command name (typed whole, `module_ex` is unknown).
    t.s.send("module_ex\t").unwrap();
    t.s.flush().unwrap();
    t.expect("module_exists");
    t.line(" mod_event_socket");
    t.expect_regex(r"\ntrue\r?\n");
    t.prompt();

    // hotswitch's own module view completes like any command.
    t.s.send("module_l\t").unwrap();
    t.s.flush().unwrap();
    t.expect("module_list");
    t.line("");
    t.expect("name,version,state,sessions,filename,interfaces,note");
    t.prompt();

    // Events as they fire.
    t.line("/event plain CHANNEL_CREATE");
    t.expect("+OK event listener enabled plain");
    t.prompt();
    t.line("originate null/1 &park()");
    let uuid_re = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    let m = t.expect_regex(&format!(
        r"(?s)(Event-Name: CHANNEL_CREATE.*?Unique-ID: {uuid_re}.*?\+OK {uuid_re}|\+OK {uuid_re}.*?Event-Name: CHANNEL_CREATE.*?Unique-ID: {uuid_re})"
    ));
    assert!(m.contains("\x1b[2m"), "events are dim in a terminal: {m:?}");
    t.prompt();
    t.line("/noevents");
    t.expect("+OK no longer listening for events");
    t.prompt();

    // Log lines as they are logged: this connection's debug line about
    // another client, and an info line, each in its level's colour.
    t.line("/log debug");
    t.expect("+OK log level debug [7]");
    t.prompt();
    let out = run_cli(h.path(), &["-P", &p, "-x", "echo other"]);
    assert!(out.status.success(), "{out:?}");
    t.expect_regex(
        r"\x1b\[33m[^\n]*\[DEBUG\] mod_event_socket: event socket: 127\.0\.0\.1:\d+ connected",
    );
    t.line("load mod_skel");
    // The reply and the log line travel on the same connection in no fixed
    // order: the module logs while `load` is still being answered.
    t.expect_regex(
        r"(?s)(\x1b\[32m[^\n]*\[INFO\] mod_skel: mod_skel loaded.*?\+OK|\+OK.*?\x1b\[32m[^\n]*\[INFO\] mod_skel: mod_skel loaded)",
    );
    t.line("/nolog");
    t.expect("+OK no longer logging");

    t.line("/quit");
    assert_eq!(t.exit_code(), 0);
    let history = std::fs::read_to_string(h.path().join(".hotswitch_cli_history"))
        .expect("the history file is written");
    assert!(history.contains("originate null/1 &park()"), "{history}");
    assert!(sw.cmd("hupall").starts_with("+OK"));
}

#[test]
fn the_interactive_mode_leaves_on_ctrl_d_with_status_zero() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let mut t = Pty::start(h.path(), &["-q", "-P", &port.to_string()]);
    t.prompt();
    t.s.send_control('d').unwrap();
    assert_eq!(t.exit_code(), 0);
}

#[test]
fn the_interactive_mode_says_when_the_server_goes_away_and_exits_non_zero() {
    let (_sw, port) = esl_switch("ClueCon");
    let h = home();
    let p = port.to_string();
    let mut t = Pty::start(h.path(), &["-P", &p]);
    t.prompt();
    // Another client reloads the module: every connection is closed.
    let out = run_cli(h.path(), &["-P", &p, "-x", "reload mod_event_socket"]);
    assert!(out.status.success(), "{out:?}");
    t.expect("hotswitch-cli: the server disconnected: The system is being shut down.");
    assert_eq!(t.exit_code(), 3);
}

#[test]
fn with_stdin_on_a_pipe_lines_run_in_order_and_events_print_plainly() {
    use std::io::{BufRead, BufReader, Write};
    let (mut sw, port) = esl_switch("ClueCon");
    let h = home();
    let mut child = Command::new(cli())
        .args(["-P", &port.to_string()])
        .env("HOME", h.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start hotswitch-cli");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin
        .write_all(b"/event plain CHANNEL_CREATE\noriginate null/1 &park()\n")
        .unwrap();
    stdin.flush().unwrap();
    // The event comes whenever it comes: wait for it, then go on.
    let mut seen = String::new();
    while !seen.contains("Event-Name: CHANNEL_CREATE\n") {
        let mut l = String::new();
        if stdout.read_line(&mut l).unwrap() == 0 {
            panic!("hotswitch-cli ended early: {seen}");
        }
        seen.push_str(&l);
    }
    stdin.write_all(b"nope\n/quit\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {seen}");
    assert!(
        seen.starts_with("+OK event listener enabled plain\n"),
        "{seen}"
    );
    assert!(
        seen.contains("RECV EVENT\nEvent-Name: CHANNEL_CREATE\n"),
        "{seen}"
    );
    assert!(seen.contains("\n-ERR nope Command not found!\n"), "{seen}");
    assert!(!seen.contains('\x1b'), "colours on a pipe: {seen:?}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(sw.cmd("hupall").starts_with("+OK"));
}

/// A fake event socket on a free port: greets, then answers the first
/// packet (the `auth`) with `reply` and closes.
fn fake_server(
    greeting: &'static [u8],
    reply: &'static [u8],
) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let _ = s.write_all(greeting);
        if reply.is_empty() {
            return;
        }
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == b"\n\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(reply);
        std::thread::sleep(Duration::from_millis(200));
    });
    (port, h)
}

#[test]
fn a_malformed_packet_from_the_server_is_a_clear_error_not_a_panic() {
    let h = home();
    let (port, server) = fake_server(
        b"Content-Type: auth/request\n\n",
        b"this is not a header\n\n",
    );
    let out = run_cli(h.path(), &["-P", &port.to_string(), "-x", "status"]);
    let _ = server.join();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "malformed packet from the server (header line without ':': \"this is not a header\")"
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_acl_refusal_is_reported_with_the_servers_words() {
    let h = home();
    let (port, server) = fake_server(
        b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n",
        b"",
    );
    let out = run_cli(h.path(), &["-P", &port.to_string(), "-x", "status"]);
    let _ = server.join();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "hotswitch-cli: the server refused the connection: Access Denied, go away.\n"
    );
}

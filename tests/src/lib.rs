//! Helpers for the end-to-end tests: start the real `hotswitch` binary on a
//! private configuration, talk to its console over pipes, watch the events
//! it prints, read its log and its `/proc/<pid>/maps`, and build the test
//! modules that must be built with special settings.
//!
//! The binary and the workspace's modules come from `cargo build
//! --workspace` (the README's test command runs it first).

pub mod pg;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lines a child prints on its (piped) stdout, read on a thread of
/// their own; the channel closes when the child closes stdout.
pub fn stdout_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The uuid of an `originate` reply (`+OK <uuid>`); fails the test on
/// anything else.
pub fn ok_uuid(reply: &str) -> String {
    let r = reply.trim();
    assert!(r.starts_with("+OK "), "expected +OK <uuid>, got {r}");
    r[4..].to_string()
}

/// Waits until channel `uuid` no longer exists, failing the test after
/// `within`.
pub fn wait_gone(sw: &mut Switch, uuid: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while sw.cmd(&format!("uuid_exists {uuid}")).trim() == "true" {
        assert!(Instant::now() < deadline, "{uuid} did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until some process holds UDP `port` on the machine (a peer such
/// as sipp has started), failing the test after `within`. Read from
/// /proc/net/udp: binding the port to probe it could take it from the peer.
pub fn wait_udp_bound(port: u16, within: Duration) {
    let needle = format!(":{port:04X}");
    let deadline = Instant::now() + within;
    loop {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        let bound = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .any(|local| local.ends_with(&needle));
        if bound {
            return;
        }
        assert!(Instant::now() < deadline, "nothing bound UDP port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Calls `f` until it is true, failing the test after 20 s.
pub fn wait_until(sw: &mut Switch, what: &str, mut f: impl FnMut(&mut Switch) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f(sw) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long one line of an event block may take once the block started.
const EVENT_LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a console command may take before a test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `target/<profile>`, where cargo put the binary and the modules.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `hotswitch` binary.
pub fn binary() -> PathBuf {
    let b = build_dir().join("hotswitch");
    assert!(
        b.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        b.display()
    );
    b
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("hs-e2e-{tag}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

/// An event as the console printed it: headers in order, values decoded.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Event {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or("")
    }
}

/// Decodes `%XX` escapes.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How to start a switch.
#[derive(Default)]
pub struct SwitchConfig {
    /// Modules listed in modules.conf.xml.
    pub autoload: Vec<String>,
    /// Extra module directories (searched before the build directory).
    pub module_dirs: Vec<PathBuf>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Use this configuration directory instead of a generated one.
    pub conf_dir: Option<PathBuf>,
    /// Extra files to write under the generated conf dir: (relative path, text).
    pub files: Vec<(String, String)>,
    /// A command the switch runs under (`ip netns exec <ns>`); it must exec
    /// the switch (same process).
    pub wrapper: Vec<String>,
}

/// A running `hotswitch` with its console on pipes.
pub struct Switch {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pending: VecDeque<Event>,
    notices: VecDeque<String>,
    marker: u64,
    stderr_path: PathBuf,
    pub dir: TempDir,
}

impl Switch {
    /// Starts the switch and waits until its console answers.
    pub fn start(cfg: SwitchConfig) -> Switch {
        let dir = TempDir::new("switch");
        let conf = match &cfg.conf_dir {
            Some(c) => c.clone(),
            None => {
                let conf = dir.path().join("conf");
                std::fs::create_dir_all(conf.join("autoload_configs")).unwrap();
                let loads: String = cfg
                    .autoload
                    .iter()
                    .map(|m| format!("    <load module=\"{m}\"/>\n"))
                    .collect();
                std::fs::write(
                    conf.join("autoload_configs/modules.conf.xml"),
                    format!(
                        "<configuration name=\"modules.conf\">\n  <modules>\n{loads}  </modules>\n</configuration>\n"
                    ),
                )
                .unwrap();
                std::fs::write(
                    conf.join("freeswitch.xml"),
                    r#"<document type="freeswitch/xml">
  <section name="configuration"><X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/></section>
  <section name="dialplan"><X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/></section>
  <section name="directory"><X-PRE-PROCESS cmd="include" data="directory/*.xml"/></section>
</document>
"#,
                )
                .unwrap();
                for (rel, text) in &cfg.files {
                    let p = conf.join(rel);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, text).unwrap();
                }
                conf
            }
        };
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match cfg.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        cmd.arg("-conf").arg(&conf);
        for d in &cfg.module_dirs {
            cmd.arg("-mod").arg(d);
        }
        cmd.arg("-mod").arg(build_dir());
        // The switch's files (logs, databases, module copies in <dir>/run)
        // stay in the test's directory; a test's own -base comes later
        // and wins.
        cmd.arg("-base").arg(dir.path());
        cmd.args(&cfg.args);
        cmd.env_remove("RUST_LOG");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start hotswitch");
        let stdin = child.stdin.take().unwrap();
        let rx = stdout_lines(&mut child);
        let mut s = Switch {
            child,
            stdin,
            lines: rx,
            pending: VecDeque::new(),
            notices: VecDeque::new(),
            marker: 0,
            stderr_path,
            dir,
        };
        let v = s.cmd("version");
        assert!(
            v.contains("FreeSWITCH Version"),
            "switch did not start: {v}\n{}",
            s.log()
        );
        s
    }

    /// `show channels count`.
    pub fn channel_count(&mut self) -> usize {
        let r = self.cmd("show channels count");
        r.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("show channels count: {r}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads one console line, setting aside event blocks and watch notices.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            };
            if line.starts_with("Event-Name: ") {
                let ev = self.read_event(line)?;
                self.pending.push_back(ev);
                continue;
            }
            if line.starts_with("+OK watch:") || line.starts_with("-ERR watch:") {
                self.notices.push_back(line);
                continue;
            }
            return Some(line);
        }
    }

    /// Reads the rest of an event block. Its lines come together, so each
    /// gets a timeout of its own: the caller's deadline may be about to pass
    /// and must not cut an event in half.
    fn read_event(&mut self, first: String) -> Option<Event> {
        let mut ev = Event::default();
        let mut line = first;
        loop {
            if line.is_empty() {
                return Some(ev);
            }
            let (k, v) = line.split_once(": ").unwrap_or((line.as_str(), ""));
            if k == "Content-Length" {
                let n: usize = v.parse().unwrap_or(0);
                let _blank = self.lines.recv_timeout(EVENT_LINE_TIMEOUT).ok()?;
                let mut body = String::new();
                while body.len() < n {
                    let l = self.lines.recv_timeout(EVENT_LINE_TIMEOUT).ok()?;
                    body.push_str(&l);
                    body.push('\n');
                }
                ev.body = Some(body);
                return Some(ev);
            }
            ev.headers.push((k.to_string(), url_decode(v)));
            line = self.lines.recv_timeout(EVENT_LINE_TIMEOUT).ok()?;
        }
    }

    /// Sends a console line and returns its reply (every line up to the
    /// echo marker sent after it).
    pub fn cmd(&mut self, line: &str) -> String {
        self.marker += 1;
        let marker = format!("__reply_end_{}__", self.marker);
        writeln!(self.stdin, "{line}\necho {marker}").expect("write to the console");
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut out = Vec::new();
        loop {
            match self.next_line(deadline) {
                Some(l) if l == marker => break,
                Some(l) => out.push(l),
                None => panic!(
                    "no reply to '{line}' within {REPLY_TIMEOUT:?}; got so far: {out:?}\nlog:\n{}",
                    self.log()
                ),
            }
        }
        let mut s = out.join("\n");
        s.push('\n');
        s
    }

    /// Waits for an event matching `pred` (events seen earlier count too).
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.pending.iter().position(&pred) {
                return self.pending.remove(pos);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Pull more output; a reply line arriving here is unexpected.
            if let Some(l) =
                self.next_line(deadline.min(Instant::now() + Duration::from_millis(200)))
            {
                panic!("unexpected console output while waiting for an event: {l}");
            }
        }
    }

    /// Waits for an event matching `pred` and returns a copy, leaving it
    /// among the events seen (for a later [`drain_events`](Self::drain_events)).
    pub fn wait_event_kept(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let e = self.wait_event(timeout, pred)?;
        self.pending.push_back(e.clone());
        Some(e)
    }

    /// Takes every event seen so far.
    pub fn drain_events(&mut self, settle: Duration) -> Vec<Event> {
        let deadline = Instant::now() + settle;
        if let Some(l) = self.next_line(deadline) {
            panic!("unexpected console output while draining events: {l}");
        }
        self.pending.drain(..).collect()
    }

    /// Waits for a watch-mode notice containing `needle`.
    pub fn wait_notice(&mut self, timeout: Duration, needle: &str) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.notices.iter().position(|n| n.contains(needle)) {
                return self.notices.remove(pos);
            }
            if Instant::now() >= deadline {
                return None;
            }
            if let Some(l) =
                self.next_line(deadline.min(Instant::now() + Duration::from_millis(200)))
            {
                panic!("unexpected console output while waiting for a notice: {l}");
            }
        }
    }

    /// The switch's log so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `/proc/<pid>/maps` now.
    pub fn maps(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap_or_default()
    }

    /// Paths of the module shadow copies mapped now.
    pub fn mapped_shadows(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .maps()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.contains("hotswitch-shadow-"))
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks for a shutdown and waits for the process to end.
    pub fn shutdown(mut self) -> ExitStatus {
        let _ = writeln!(self.stdin, "shutdown");
        let _ = self.stdin.flush();
        self.wait_exit(Duration::from_secs(20))
            .expect("switch did not exit after shutdown")
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Module builds share one target directory; one build at a time, and a
/// build's result is copied before the next build can change it.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds the test module crate `tests/modules/<name>` with `features` and
/// `env`, and copies the result to `dest_dir/lib<name>.so` (atomically, as a
/// build tool replaces its output). Returns the installed path.
pub fn build_module_into(
    name: &str,
    features: &[&str],
    env: &[(&str, &str)],
    dest_dir: &Path,
) -> PathBuf {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let manifest = workspace_root()
        .join("tests/modules")
        .join(name)
        .join("Cargo.toml");
    let target = workspace_root().join("target/e2e-modules");
    let built = cargo_build(&manifest, &target, features, env);
    let so = built.join(format!("lib{name}.so"));
    install(&so, dest_dir, &format!("lib{name}.so"))
}

/// Runs `cargo build` for a manifest; returns the output directory.
pub fn cargo_build(
    manifest: &Path,
    target: &Path,
    features: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target);
    if !features.is_empty() {
        c.arg("--features").arg(features.join(","));
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug")
}

/// Copies `src` into `dir/name` through a temporary file and a rename.
pub fn install(src: &Path, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let dst = dir.join(name);
    std::fs::rename(&tmp, &dst).unwrap();
    dst
}

/// A port nobody uses now, for TCP and for UDP alike (SIP peers such as
/// sipp take both).
pub fn free_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// The first of four UDP ports in a row that are free now, for a media
/// peer such as sipp (`-mp p` takes p for audio RTP and p + 2 for video).
/// Taken from 20000–29999, below the kernel's ephemeral ports and the
/// switch's RTP ranges in the tests, so that neither takes them meanwhile.
pub fn free_media_ports() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20000 + ((std::process::id() as u16) % 2500) * 4;
    for _ in 0..2500 {
        let off = NEXT.fetch_add(4, Ordering::Relaxed) % 10000;
        let p = 20000 + (base - 20000 + off) % 10000 / 4 * 4;
        let free = (p..p + 4).all(|q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok());
        if free {
            return p;
        }
    }
    panic!("no four free UDP ports in a row in 20000-29999");
}

/// A switch with mod_loopback, mod_dptools and mod_event_socket listening
/// on a free port with `password`; `params` are extra `<param>`s for
/// event_socket.conf, `args` extra command-line arguments.
pub fn event_socket_switch(password: &str, params: &str, args: &[&str]) -> (Switch, u16) {
    let port = free_port();
    let conf = format!(
        r#"<configuration name="event_socket.conf"><settings>
             <param name="listen-ip" value="127.0.0.1"/>
             <param name="listen-port" value="{port}"/>
             <param name="password" value="{password}"/>
             {params}
           </settings></configuration>"#
    );
    let sw = Switch::start(SwitchConfig {
        autoload: vec![
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_event_socket".into(),
        ],
        files: vec![
            ("autoload_configs/event_socket.conf.xml".into(), conf),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
                     <param name="max-sessions" value="10000"/>
                     <param name="sessions-per-second" value="10000"/>
                   </settings></configuration>"#
                    .into(),
            ),
        ],
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    });
    (sw, port)
}

/// Lines of a reply, for assertions.
pub fn lines(reply: &str) -> Vec<&str> {
    reply.lines().collect()
}

/// A minimal event-socket client for `api` commands, returning each reply's
/// body byte for byte (the console adds a newline where a reply has none;
/// the event socket does not).
pub struct EslApi {
    r: BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl EslApi {
    /// Connects to 127.0.0.1:`port` and authenticates with `password`.
    pub fn connect(port: u16, password: &str) -> EslApi {
        let w = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        w.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut c = EslApi {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        };
        let greeting = c.packet();
        assert!(greeting.0.contains("auth/request"), "{greeting:?}");
        c.send(&format!("auth {password}"));
        let reply = c.packet();
        assert!(reply.0.contains("+OK accepted"), "{reply:?}");
        c
    }

    fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\n\n").as_bytes())
            .expect("send");
    }

    /// One packet: (header block, body).
    fn packet(&mut self) -> (String, String) {
        use std::io::Read;
        let mut head = String::new();
        loop {
            let mut l = String::new();
            let n = self.r.read_line(&mut l).expect("read a packet");
            assert!(n > 0, "the switch closed the connection");
            if l == "\n" && !head.is_empty() {
                break;
            }
            if l != "\n" {
                head.push_str(&l);
            }
        }
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).expect("read the body");
        (head, String::from_utf8_lossy(&body).into_owned())
    }

    /// `api <line>`: the reply's body exactly.
    pub fn api(&mut self, line: &str) -> String {
        self.send(&format!("api {line}"));
        loop {
            let (head, body) = self.packet();
            if head.contains("Content-Type: api/response") {
                return body;
            }
        }
    }
}

//! # hotswitch-modemsim — a GSM modem on a pseudo-terminal
//!
//! Stands in for a USB GSM modem in mod_gsmopen's tests. It opens a
//! pseudo-terminal, links its slave side at `--link <path>` (the path the
//! switch's configuration names, stable across unplug/plug) and answers AT
//! commands as a registered modem would. Audio for calls goes over a Unix
//! stream socket it listens on (`--audio <path>`): 20 ms frames of 8 kHz
//! 16-bit little-endian samples, a tone towards the switch, and what the
//! switch sends kept for `save-audio`.
//!
//! Scripted over stdin, one command a line, each acknowledged with
//! `OK <command>` (or `ERR <why>`) on stdout:
//!
//! | command | effect |
//! |---|---|
//! | `ring <number>` | an incoming call: RING and +CLIP every 2 s until ATA |
//! | `policy answer [ms]` / `busy` / `noanswer [ms]` / `ring` / `cme <n>` | what the next ATD gets |
//! | `hangup` | the far end hangs up (NO CARRIER) |
//! | `dtmf <digit>` | the far end presses a key (`+DTMF: <digit>`) |
//! | `sms <from> <text>` | a message arrives (stored, +CMTI per part) |
//! | `tone <hz>` | the tone sent during calls (0: silence) |
//! | `save-audio <path>` | what the switch sent in the last call, raw s16le |
//! | `garbage` | writes a garbled line to the port |
//! | `mute on/off` | stop / resume answering AT commands |
//! | `keep on/off` | refuse / allow deleting messages (AT+CMGD) |
//! | `smsfail on/off` | refuse / allow sending messages (AT+CMGS) |
//! | `register <stat>` | the registration (+CREG) status: 1 home, 2 searching… |
//! | `unplug` / `plug` | the modem disappears / comes back |
//! | `stored` | how many messages are on the SIM |
//!
//! Events on stdout: `READY <slave>`, `UNPLUGGED`, `CMD <AT line>`,
//! `CALL <dialing number|alerting|active|ended why>`, `DTMF <digit>`,
//! `SMS <to> <text>` (a message the switch sent, parts joined, `\n` and `\\`
//! escaped), `SMS-DELETED <index>`.

#[allow(dead_code)]
#[path = "../../src/pdu.rs"]
mod pdu;

use hotswitch_plugin_api::sync::Mutex;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME_BYTES: usize = 320;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallState {
    Dialing,
    Alerting,
    Active,
    Incoming,
}

struct Call {
    outbound: bool,
    number: String,
    state: CallState,
    /// When the next scripted step happens (alerting, answer, busy…).
    next: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Answer(u64),
    Busy,
    NoAnswer(u64),
    Ring,
    /// ATD fails with `+CME ERROR: <n>`.
    Cme(u32),
}

struct Stored {
    from: String,
    text: String,
    pdu: Option<pdu::EncodedPdu>,
    read: bool,
}

/// What the audio thread needs.
#[derive(Default)]
struct Audio {
    in_call: bool,
    tone_hz: f64,
    received: Vec<i16>,
    /// Dropped at unplug.
    conn: Option<UnixStream>,
}

struct Port {
    master: File,
    /// Held so the line stays up (and raw) while the switch has it closed.
    _slave: OwnedFd,
}

struct Modem {
    link: PathBuf,
    port: Option<Port>,
    buf: Vec<u8>,
    echo: bool,
    pdu_mode: bool,
    muted: bool,
    /// Refuse deletes (messages stay on the SIM).
    keep: bool,
    /// Refuse to send messages (`+CMS ERROR: 38`, network out of order).
    sms_fail: bool,
    /// The +CREG status: 1 home, 2 searching, 5 roaming…
    registration: u8,
    policy: Policy,
    call: Option<Call>,
    store: BTreeMap<u32, Stored>,
    next_index: u32,
    /// SMS body after the `>` prompt: (AT+CMGS argument).
    body: Option<String>,
    sent_parts: HashMap<(String, u16), BTreeMap<u8, String>>,
    next_ring: Option<Instant>,
    mr: u8,
    sms_ref: u8,
    audio: Arc<Mutex<Audio>>,
}

fn open_port(link: &Path) -> std::io::Result<(Port, PathBuf)> {
    let pty = openpty(None, None).map_err(std::io::Error::from)?;
    let mut t = tcgetattr(pty.slave.as_fd()).map_err(std::io::Error::from)?;
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
    let flags = fcntl(pty.master.as_fd(), FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    fcntl(
        pty.master.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))?;
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&slave_path, link)?;
    Ok((
        Port {
            master: File::from(pty.master),
            _slave: pty.slave,
        },
        slave_path,
    ))
}

impl Modem {
    fn write(&mut self, text: &str) {
        if let Some(p) = self.port.as_mut() {
            let _ = p.master.write_all(text.as_bytes());
        }
    }

    fn respond(&mut self, lines: &[&str]) {
        let mut s = String::new();
        for l in lines {
            s.push_str("\r\n");
            s.push_str(l);
            s.push_str("\r\n");
        }
        self.write(&s);
    }

    fn set_in_call(&self, on: bool) {
        let mut a = self.audio.lock();
        if on && !a.in_call {
            a.received.clear();
        }
        a.in_call = on;
    }

    fn end_call(&mut self, why: &str, urc: Option<&str>) {
        if self.call.take().is_some() {
            self.set_in_call(false);
            self.next_ring = None;
            say(&format!("CALL ended {why}"));
            if let Some(u) = urc {
                self.respond(&[u]);
            }
        }
    }

    fn plug(&mut self) -> std::io::Result<()> {
        let (port, slave) = open_port(&self.link)?;
        self.port = Some(port);
        self.buf.clear();
        self.body = None;
        self.echo = true;
        say(&format!("READY {}", slave.display()));
        Ok(())
    }

    fn unplug(&mut self) {
        self.end_call("unplugged", None);
        self.port = None;
        let _ = std::fs::remove_file(&self.link);
        if let Some(c) = self.audio.lock().conn.take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        say("UNPLUGGED");
    }

    /// Reads what the switch wrote.
    fn read_port(&mut self) {
        let mut chunk = [0u8; 1024];
        loop {
            let Some(p) = self.port.as_mut() else { return };
            match p.master.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EIO while nobody has the slave open: nothing to read.
                Err(_) => break,
            }
        }
        loop {
            if let Some(arg) = self.body.clone() {
                let Some(end) = self.buf.iter().position(|b| *b == 0x1a || *b == 0x1b) else {
                    return;
                };
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                self.body = None;
                if raw[end] == 0x1b {
                    self.respond(&["OK"]);
                    continue;
                }
                let text = String::from_utf8_lossy(&raw[..end]).trim().to_string();
                self.sms_body(&arg, &text);
                continue;
            }
            let Some(end) = self.buf.iter().position(|b| *b == b'\r' || *b == b'\n') else {
                return;
            };
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..end]).trim().to_string();
            if line.is_empty() {
                continue;
            }
            if self.echo {
                self.write(&format!("{line}\r"));
            }
            say(&format!("CMD {line}"));
            if !self.muted {
                self.command(&line);
            }
        }
    }

    fn command(&mut self, line: &str) {
        let up = line.to_ascii_uppercase();
        if !up.starts_with("AT") {
            self.respond(&["ERROR"]);
            return;
        }
        let cmd = &line[2..];
        let upc = &up[2..];
        if upc == "Z" {
            self.echo = true;
            self.respond(&["OK"]);
        } else if upc == "E0" {
            self.echo = false;
            self.respond(&["OK"]);
        } else if upc == "E1" {
            self.echo = true;
            self.respond(&["OK"]);
        } else if let Some(m) = upc.strip_prefix("+CMGF=") {
            self.pdu_mode = m.trim() == "0";
            self.respond(&["OK"]);
        } else if upc == "+CREG?" {
            let r = format!("+CREG: 0,{}", self.registration);
            self.respond(&[&r, "OK"]);
        } else if upc == "+CSQ" {
            self.respond(&["+CSQ: 23,99", "OK"]);
        } else if upc == "+CLCC" {
            let l = self.call.as_ref().map(|c| {
                let stat = match c.state {
                    CallState::Active => 0,
                    CallState::Dialing => 2,
                    CallState::Alerting => 3,
                    CallState::Incoming => 4,
                };
                format!(
                    "+CLCC: 1,{},{stat},0,0,\"{}\",129",
                    if c.outbound { 0 } else { 1 },
                    c.number
                )
            });
            match l {
                Some(l) => self.respond(&[&l, "OK"]),
                None => self.respond(&["OK"]),
            }
        } else if let Some(rest) = cmd.strip_prefix('D').or_else(|| cmd.strip_prefix('d')) {
            let number = rest.trim_end_matches(';').to_string();
            if self.call.is_some() {
                self.respond(&["+CME ERROR: 3"]);
                return;
            }
            if let Policy::Cme(n) = self.policy {
                self.respond(&[&format!("+CME ERROR: {n}")]);
                return;
            }
            say(&format!("CALL dialing {number}"));
            self.call = Some(Call {
                outbound: true,
                number,
                state: CallState::Dialing,
                next: Some(Instant::now() + Duration::from_millis(200)),
            });
            self.respond(&["OK"]);
        } else if upc == "A" {
            match self.call.as_mut() {
                Some(c) if c.state == CallState::Incoming => {
                    c.state = CallState::Active;
                    self.next_ring = None;
                    self.set_in_call(true);
                    say("CALL active");
                    self.respond(&["OK"]);
                }
                _ => self.respond(&["NO CARRIER"]),
            }
        } else if upc == "H" || upc == "+CHUP" {
            self.end_call("local", None);
            self.respond(&["OK"]);
        } else if let Some(d) = upc.strip_prefix("+VTS=") {
            let d = d.trim_matches('"');
            if self
                .call
                .as_ref()
                .is_some_and(|c| c.state == CallState::Active)
            {
                say(&format!("DTMF {d}"));
                self.respond(&["OK"]);
            } else {
                self.respond(&["+CME ERROR: 3"]);
            }
        } else if let Some(i) = upc.strip_prefix("+CMGR=") {
            let i: u32 = i.trim().parse().unwrap_or(u32::MAX);
            match self.store.get(&i).map(|s| self.listing(s, None)) {
                Some(lines) => {
                    if let Some(s) = self.store.get_mut(&i) {
                        s.read = true;
                    }
                    let mut l: Vec<&str> = lines.iter().map(String::as_str).collect();
                    l.push("OK");
                    self.respond(&l);
                }
                None => self.respond(&["+CMS ERROR: 321"]),
            }
        } else if upc.starts_with("+CMGL") {
            let mut lines = Vec::new();
            for (i, s) in &self.store {
                lines.extend(self.listing(s, Some(*i)));
            }
            lines.push("OK".into());
            let l: Vec<&str> = lines.iter().map(String::as_str).collect();
            self.respond(&l);
        } else if let Some(i) = upc.strip_prefix("+CMGD=") {
            let i: u32 = i
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .parse()
                .unwrap_or(0);
            if self.keep {
                self.respond(&["+CMS ERROR: 500"]);
                return;
            }
            if self.store.remove(&i).is_some() {
                say(&format!("SMS-DELETED {i}"));
            }
            self.respond(&["OK"]);
        } else if upc.starts_with("+CMGS=") {
            self.body = Some(cmd["+CMGS=".len()..].trim().to_string());
            self.write("\r\n> ");
        } else {
            self.respond(&["OK"]);
        }
    }

    /// A stored message as +CMGR (index None) or +CMGL shows it.
    fn listing(&self, s: &Stored, index: Option<u32>) -> Vec<String> {
        let stat_n = if s.read { 1 } else { 0 };
        match (&s.pdu, self.pdu_mode) {
            (Some(p), true) => vec![
                match index {
                    Some(i) => format!("+CMGL: {i},{stat_n},,{}", p.tpdu_len),
                    None => format!("+CMGR: {stat_n},,{}", p.tpdu_len),
                },
                p.hex.clone(),
            ],
            _ => {
                let stat = if s.read { "REC READ" } else { "REC UNREAD" };
                let head = format!("\"{stat}\",\"{}\",,\"26/11/22,15:00:00+00\"", s.from);
                vec![
                    match index {
                        Some(i) => format!("+CMGL: {i},{head}"),
                        None => format!("+CMGR: {head}"),
                    },
                    s.text.clone(),
                ]
            }
        }
    }

    fn sms_body(&mut self, arg: &str, body: &str) {
        if self.sms_fail {
            self.respond(&["+CMS ERROR: 38"]);
            return;
        }
        self.mr = self.mr.wrapping_add(1);
        let mr = self.mr;
        if self.pdu_mode {
            match pdu::decode_submit(body) {
                Ok(s) => match s.concat {
                    Some((r, total, seq)) if total > 1 => {
                        let parts = self.sent_parts.entry((s.to.clone(), r)).or_default();
                        parts.insert(seq, s.text);
                        if parts.len() == total as usize {
                            let parts = self.sent_parts.remove(&(s.to.clone(), r));
                            let text: String = parts.unwrap_or_default().into_values().collect();
                            say(&format!("SMS {} {}", s.to, escape(&text)));
                        }
                    }
                    _ => say(&format!("SMS {} {}", s.to, escape(&s.text))),
                },
                Err(e) => {
                    say(&format!("BAD-PDU {e}"));
                    self.respond(&["+CMS ERROR: 304"]);
                    return;
                }
            }
        } else {
            say(&format!("SMS {} {}", arg.trim_matches('"'), escape(body)));
        }
        self.respond(&[&format!("+CMGS: {mr}"), "OK"]);
    }

    /// Stores a message (one slot per PDU part; text mode keeps it whole)
    /// and announces each slot.
    fn deliver_sms(&mut self, from: &str, text: &str) {
        let pdus: Vec<Option<pdu::EncodedPdu>> = if self.pdu_mode {
            self.sms_ref = self.sms_ref.wrapping_add(1);
            pdu::encode_deliver(from, text, self.sms_ref)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        for p in pdus {
            let i = self.next_index;
            self.next_index += 1;
            self.store.insert(
                i,
                Stored {
                    from: from.into(),
                    text: text.into(),
                    pdu: p,
                    read: false,
                },
            );
            self.respond(&[&format!("+CMTI: \"SM\",{i}")]);
        }
    }

    /// Scripted call progress and repeated rings.
    fn tick(&mut self, now: Instant) {
        if let Some(t) = self.next_ring {
            if now >= t && self.port.is_some() {
                let number = self
                    .call
                    .as_ref()
                    .map(|c| c.number.clone())
                    .unwrap_or_default();
                self.respond(&["RING", &format!("+CLIP: \"{number}\",129,,,,0")]);
                self.next_ring = Some(now + Duration::from_secs(2));
            }
        }
        let policy = self.policy;
        let Some(c) = self.call.as_mut() else { return };
        if c.next.is_none_or(|t| now < t) {
            return;
        }
        c.next = None;
        match (c.state, policy) {
            (CallState::Dialing, Policy::Busy) => self.end_call("busy", Some("BUSY")),
            (CallState::Dialing, p) => {
                c.state = CallState::Alerting;
                c.next = match p {
                    Policy::Answer(ms) | Policy::NoAnswer(ms) => {
                        Some(now + Duration::from_millis(ms))
                    }
                    _ => None,
                };
                say("CALL alerting");
            }
            (CallState::Alerting, Policy::Answer(_)) => {
                c.state = CallState::Active;
                self.set_in_call(true);
                say("CALL active");
            }
            (CallState::Alerting, Policy::NoAnswer(_)) => {
                self.end_call("no-answer", Some("NO ANSWER"))
            }
            _ => {}
        }
    }

    /// A line from the test script.
    fn script(&mut self, line: &str) -> Result<(), String> {
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "ring" => {
                if self.call.is_some() {
                    return Err("a call is up".into());
                }
                self.call = Some(Call {
                    outbound: false,
                    number: rest.trim().into(),
                    state: CallState::Incoming,
                    next: None,
                });
                self.next_ring = Some(Instant::now());
            }
            "policy" => {
                let mut it = rest.split_whitespace();
                let kind = it.next().unwrap_or("");
                let ms = it.next().and_then(|m| m.parse().ok());
                self.policy = match kind {
                    "answer" => Policy::Answer(ms.unwrap_or(300)),
                    "busy" => Policy::Busy,
                    "noanswer" => Policy::NoAnswer(ms.unwrap_or(1500)),
                    "ring" => Policy::Ring,
                    "cme" => Policy::Cme(ms.map(|n| n as u32).unwrap_or(100)),
                    _ => return Err(format!("unknown policy {kind}")),
                };
            }
            "hangup" => {
                if self.call.is_none() {
                    return Err("no call".into());
                }
                self.end_call("remote", Some("NO CARRIER"));
            }
            "sms" => {
                let (from, text) = rest.split_once(' ').ok_or("sms <from> <text>")?;
                self.deliver_sms(from, text);
            }
            "tone" => {
                let hz: f64 = rest.trim().parse().map_err(|_| "tone <hz>")?;
                self.audio.lock().tone_hz = hz;
            }
            "save-audio" => {
                let samples = self.audio.lock().received.clone();
                let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                std::fs::write(rest.trim(), bytes).map_err(|e| e.to_string())?;
            }
            "dtmf" => {
                let d = rest.trim();
                if d.len() != 1 {
                    return Err("dtmf <digit>".into());
                }
                self.respond(&[&format!("+DTMF: {d}")]);
            }
            "garbage" => self.write("\r\n\u{1}\u{7f}%$#@ \u{fffd}bogus\r\n+XYZ: ??\r\n"),
            "mute" => self.muted = rest.trim() == "on",
            "keep" => self.keep = rest.trim() == "on",
            "smsfail" => self.sms_fail = rest.trim() == "on",
            "register" => {
                self.registration = rest.trim().parse().map_err(|_| "register <stat>")?;
                let urc = format!("+CREG: {}", self.registration);
                self.respond(&[&urc]);
            }
            "unplug" => self.unplug(),
            "plug" => {
                if self.port.is_some() {
                    return Err("already plugged".into());
                }
                self.plug().map_err(|e| e.to_string())?;
            }
            "stored" => say(&format!("STORED {}", self.store.len())),
            "" => {}
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }
}

/// Serves the audio socket: one connection at a time, 20 ms frames.
fn audio_loop(listener: UnixListener, audio: Arc<Mutex<Audio>>) {
    let _ = listener.set_nonblocking(true);
    let mut phase = 0f64;
    let mut next = Instant::now();
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if let Ok((c, _)) = listener.accept() {
            let _ = c.set_nonblocking(true);
            audio.lock().conn = Some(c);
            pending.clear();
        }
        let mut a = audio.lock();
        let in_call = a.in_call;
        let hz = a.tone_hz;
        let mut drop_conn = false;
        let mut got = Vec::new();
        if let Some(c) = a.conn.as_mut() {
            loop {
                match c.read(&mut buf) {
                    Ok(0) => {
                        drop_conn = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        drop_conn = true;
                        break;
                    }
                }
            }
            if in_call {
                let mut frame = [0u8; FRAME_BYTES];
                for ch in frame.chunks_mut(2) {
                    let s = (8000.0 * (phase * std::f64::consts::TAU).sin()) as i16;
                    ch.copy_from_slice(&s.to_le_bytes());
                    phase = (phase + hz / 8000.0).fract();
                }
                if let Err(e) = c.write_all(&frame) {
                    if e.kind() != ErrorKind::WouldBlock {
                        drop_conn = true;
                    }
                }
            }
        }
        if drop_conn {
            a.conn = None;
        }
        if in_call {
            pending.extend_from_slice(&got);
            let whole = pending.len() / 2 * 2;
            let samples: Vec<i16> = pending[..whole]
                .chunks(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            a.received.extend(samples);
            pending.drain(..whole);
        } else {
            pending.clear();
        }
        drop(a);
        next += Duration::from_millis(20);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

fn stdin_lines() -> Receiver<Option<String>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(link), Some(audio_path)) = (arg("--link"), arg("--audio")) else {
        eprintln!("usage: hotswitch-modemsim --link <path> --audio <socket path> [--tone <hz>]");
        std::process::exit(2);
    };
    let tone: f64 = arg("--tone").and_then(|t| t.parse().ok()).unwrap_or(1004.0);
    let _ = std::fs::remove_file(&audio_path);
    let listener = match UnixListener::bind(&audio_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {audio_path}: {e}");
            std::process::exit(1);
        }
    };
    let audio = Arc::new(Mutex::new(Audio {
        tone_hz: tone,
        ..Audio::default()
    }));
    {
        let audio = audio.clone();
        std::thread::spawn(move || audio_loop(listener, audio));
    }
    let mut m = Modem {
        link: PathBuf::from(&link),
        port: None,
        buf: Vec::new(),
        echo: true,
        pdu_mode: true,
        muted: false,
        keep: false,
        sms_fail: false,
        registration: 1,
        policy: Policy::Answer(300),
        call: None,
        store: BTreeMap::new(),
        next_index: 1,
        body: None,
        sent_parts: HashMap::new(),
        next_ring: None,
        mr: 0,
        sms_ref: 0,
        audio,
    };
    if let Err(e) = m.plug() {
        eprintln!("cannot open a pseudo-terminal: {e}");
        std::process::exit(1);
    }
    let script = stdin_lines();
    loop {
        match script.recv_timeout(Duration::from_millis(5)) {
            Ok(Some(line)) => {
                let line = line.trim().to_string();
                match m.script(&line) {
                    Ok(()) => say(&format!("OK {line}")),
                    Err(e) => say(&format!("ERR {e}")),
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        m.read_port();
        m.tick(Instant::now());
    }
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&audio_path);
}

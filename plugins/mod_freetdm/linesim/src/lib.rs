//! # hotswitch-linesim — the other end of mod_freetdm's virtual spans
//!
//! A [`Sim`] attaches to a span's socket directory and plays, per mode:
//! - [`Mode::Phones`]: telephones on an FXS span — off hook, on hook,
//!   digits dialled as real DTMF tones in the audio, answering when rung;
//! - [`Mode::Exchange`]: the exchange behind an FXO span — ringing the
//!   line, noticing seizure, dropping the loop;
//! - [`Mode::Network`] / [`Mode::User`]: the far side of an ISDN PRI — Q.931
//!   on the D channel (the module's own call control, in the other role)
//!   and audio on the B channels.
//!
//! Every active channel sends a 20 ms frame on a drift-free clock (like a
//! TDM card) and captures what it receives, so a test can ask how much of
//! a tone it hears ([`Sim::power`]). Events (ringing, SETUP, DISCONNECT
//! with its cause…) go to the callback given at open. `main.rs` wraps this
//! in a line protocol on stdin/stdout; `bench.rs` measures real time.

pub mod bench;
pub mod protocol;

use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use mod_freetdm::dsp::{tone_share, DtmfDetector, ToneGen, FRAME};
use mod_freetdm::g711::Law;
use mod_freetdm::q931::{CallId, Event, Link, Role};
use mod_freetdm::wire::{Msg, Packet, SIM_SOCKET, SPAN_SOCKET};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the simulator plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Phones on an FXS span.
    Phones,
    /// The exchange behind an FXO span.
    Exchange,
    /// The network side of a PRI (the module is the user side).
    Network,
    /// The user side of a PRI (the module is the network side).
    User,
}

impl Mode {
    /// From its command-line name.
    pub fn from_name(s: &str) -> Option<Mode> {
        Some(match s {
            "phones" | "fxs" => Mode::Phones,
            "exchange" | "fxo" => Mode::Exchange,
            "network" | "pri-network" => Mode::Network,
            "user" | "pri-user" => Mode::User,
            _ => return None,
        })
    }
}

/// What the ISDN side does by itself with an incoming SETUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auto {
    /// Nothing: the commands decide.
    Off,
    /// CALL PROCEEDING, ALERTING.
    Alert,
    /// CALL PROCEEDING, ALERTING, CONNECT.
    Answer,
    /// CALL PROCEEDING, DISCONNECT with cause 17 (user busy).
    Busy,
}

impl Auto {
    /// From its protocol name.
    pub fn from_name(s: &str) -> Option<Auto> {
        Some(match s {
            "off" => Auto::Off,
            "alert" => Auto::Alert,
            "answer" => Auto::Answer,
            "busy" => Auto::Busy,
            _ => return None,
        })
    }
}

/// Seconds of received audio kept per channel.
const CAPTURE_SECONDS: usize = 10;
const PTIME: Duration = Duration::from_millis(20);
/// Channels per datagram on the clock (256 × 164 bytes ≈ 42 KB).
const BATCH: usize = 256;

/// Lateness samples and echo arrivals, for the benchmark.
#[derive(Default)]
pub struct Timing {
    /// How late each frame left, against its slot on the 20 ms clock.
    pub send_lateness: Vec<Duration>,
    /// Round trips (frame sent → frame received back), per channel: what
    /// the switch adds to an echoed frame.
    pub round_trips: BTreeMap<u16, Vec<Duration>>,
    /// Frames sent and received.
    pub sent: u64,
    pub received: u64,
    /// Record arrivals (costs memory; off unless benchmarking).
    pub record_arrivals: bool,
}

#[derive(Default)]
struct Line {
    offhook: bool,
    ringing: bool,
    seized: bool,
    auto_answer: bool,
    tone: Option<ToneGen>,
    digits: VecDeque<i16>,
    capture: VecDeque<i16>,
    call: Option<CallId>,
    /// When the frames not yet answered left (for round trips).
    sent_at: VecDeque<Instant>,
}

impl Line {
    fn active(&self, mode: Mode) -> bool {
        match mode {
            Mode::Phones => self.offhook,
            Mode::Exchange => self.seized,
            Mode::Network | Mode::User => self.call.is_some(),
        }
    }
}

struct Inner {
    mode: Mode,
    law: Law,
    sock: UnixDatagram,
    sim_path: PathBuf,
    span_path: PathBuf,
    d_channel: u16,
    lines: Mutex<BTreeMap<u16, Line>>,
    link: Mutex<Link>,
    /// ISDN calls by id, with their B channel.
    calls: Mutex<BTreeMap<CallId, u16>>,
    events: Box<dyn Fn(String) + Send + Sync>,
    /// What to do with an incoming ISDN call.
    auto: Mutex<Auto>,
    stop: AtomicBool,
    timing: Mutex<Timing>,
}

/// A simulator attached to one span.
pub struct Sim {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

/// How to attach.
pub struct Options {
    /// The span's socket directory (`socket-dir` in freetdm.conf).
    pub dir: PathBuf,
    pub mode: Mode,
    /// The span's law.
    pub law: Law,
    /// The channels simulated.
    pub channels: Vec<u16>,
    /// The D channel (ISDN).
    pub d_channel: u16,
}

impl Sim {
    /// Binds `<dir>/sim.sock`, says hello to the span, and starts the
    /// clock and receive threads. `events` gets one line per event.
    pub fn open(opts: Options, events: impl Fn(String) + Send + Sync + 'static) -> io::Result<Sim> {
        let sim_path = opts.dir.join(SIM_SOCKET);
        let _ = std::fs::remove_file(&sim_path);
        let sock = UnixDatagram::bind(&sim_path)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let role = if opts.mode == Mode::User {
            Role::User
        } else {
            Role::Network
        };
        let inner = Arc::new(Inner {
            mode: opts.mode,
            law: opts.law,
            sock,
            sim_path,
            span_path: opts.dir.join(SPAN_SOCKET),
            d_channel: opts.d_channel,
            lines: Mutex::new(
                opts.channels
                    .iter()
                    .map(|&c| (c, Line::default()))
                    .collect(),
            ),
            link: Mutex::new(Link::new(role, opts.law == Law::Ulaw)),
            calls: Mutex::new(BTreeMap::new()),
            events: Box::new(events),
            auto: Mutex::new(Auto::Off),
            stop: AtomicBool::new(false),
            timing: Mutex::new(Timing::default()),
        });
        inner.send(0, Msg::Hello);
        let (a, b) = (inner.clone(), inner.clone());
        let threads = vec![
            std::thread::Builder::new()
                .name("linesim-clock".into())
                .spawn(move || a.clock())?,
            std::thread::Builder::new()
                .name("linesim-rx".into())
                .spawn(move || b.receive())?,
        ];
        Ok(Sim { inner, threads })
    }

    fn line<R>(&self, ch: u16, f: impl FnOnce(&mut Line) -> R) -> Result<R, String> {
        let mut lines = self.inner.lines.lock();
        lines
            .get_mut(&ch)
            .map(f)
            .ok_or_else(|| format!("no channel {ch}"))
    }

    /// Says hello again (after the module was reloaded).
    pub fn hello(&self) {
        self.inner.send(0, Msg::Hello);
    }

    /// Lifts the phone (answers when it rings).
    pub fn offhook(&self, ch: u16) -> Result<(), String> {
        self.line(ch, |l| {
            l.offhook = true;
            l.ringing = false;
        })?;
        self.inner.send(ch, Msg::OffHook);
        Ok(())
    }

    /// Hangs the phone up (exchange mode: drops the loop).
    pub fn onhook(&self, ch: u16) -> Result<(), String> {
        self.line(ch, |l| {
            l.offhook = false;
            l.seized = false;
            l.digits.clear();
        })?;
        self.inner.send(ch, Msg::OnHook);
        Ok(())
    }

    /// Exchange mode: rings the line (or stops).
    pub fn ring(&self, ch: u16, on: bool) -> Result<(), String> {
        self.line(ch, |_| ())?;
        self.inner
            .send(ch, if on { Msg::RingOn } else { Msg::RingOff });
        Ok(())
    }

    /// Dials `digits` as DTMF tones (100 ms each, 100 ms apart).
    pub fn dial(&self, ch: u16, digits: &str) -> Result<(), String> {
        let mut pcm = Vec::new();
        for d in digits.chars() {
            let mut g = ToneGen::dtmf(d).ok_or_else(|| format!("{d:?} is not a DTMF digit"))?;
            g.fill(800, &mut pcm);
            pcm.extend(std::iter::repeat_n(0, 800));
        }
        self.line(ch, |l| l.digits.extend(pcm))
    }

    /// Plays a steady tone at `hz` (0: silence).
    pub fn tone(&self, ch: u16, hz: f64) -> Result<(), String> {
        self.line(ch, |l| {
            l.tone = (hz > 0.0).then(|| ToneGen::new(&[hz], 8000.0))
        })
    }

    /// Answers automatically when rung.
    pub fn auto_answer(&self, ch: u16, on: bool) -> Result<(), String> {
        self.line(ch, |l| l.auto_answer = on)
    }

    /// Forgets the audio captured so far.
    pub fn clear(&self, ch: u16) -> Result<(), String> {
        self.line(ch, |l| l.capture.clear())
    }

    /// The share of the last `ms` of received audio that is a tone at `hz`
    /// (about 1: only that tone; about 0: none of it).
    pub fn power(&self, ch: u16, hz: f64, ms: usize) -> Result<f64, String> {
        self.line(ch, |l| {
            let n = (ms * 8).min(l.capture.len());
            let last: Vec<i16> = l
                .capture
                .iter()
                .skip(l.capture.len() - n)
                .copied()
                .collect();
            tone_share(&last, hz)
        })
    }

    /// The DTMF digits in the audio received so far.
    pub fn heard_digits(&self, ch: u16) -> Result<String, String> {
        self.line(ch, |l| {
            let pcm: Vec<i16> = l.capture.iter().copied().collect();
            DtmfDetector::new().feed(&pcm).into_iter().collect()
        })
    }

    /// ISDN: places a call (SETUP) on B channel `chan` (or lets the
    /// other side choose); returns its id.
    pub fn call(&self, called: &str, calling: &str, chan: Option<u16>) -> CallId {
        let mut link = self.inner.link.lock();
        let id = link.handle_setup(called, calling, chan.map(|c| c as u8), Instant::now());
        if let Some(c) = chan {
            self.inner.attach_call(id, c);
        }
        self.inner.flush(&mut link);
        id
    }

    /// ISDN: acts on a call: `proceeding`, `alert`, `progress`, `answer`,
    /// or `hangup` with `cause`.
    pub fn isdn(&self, what: &str, call: CallId, cause: u8) -> Result<(), String> {
        let mut link = self.inner.link.lock();
        if link.state(call).is_none() {
            return Err(format!("no call {}", call.0));
        }
        let chan = self.inner.calls.lock().get(&call).map(|&c| c as u8);
        let now = Instant::now();
        match what {
            "proceeding" => link.handle_proceeding(call, chan, now),
            "alert" => link.handle_alerting(call, now),
            "progress" => link.handle_progress(call, now),
            "answer" => link.handle_connect(call, now),
            "hangup" => link.handle_hangup(call, cause, now),
            _ => return Err(format!("unknown isdn action {what}")),
        }
        self.inner.flush(&mut link);
        Ok(())
    }

    /// ISDN: how incoming calls are handled without commands.
    pub fn set_auto(&self, auto: Auto) {
        *self.inner.auto.lock() = auto;
    }

    /// One line per channel and call.
    pub fn status(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .lines
            .lock()
            .iter()
            .map(|(c, l)| {
                format!(
                    "chan {c} offhook={} ringing={} seized={} call={} captured={}",
                    l.offhook,
                    l.ringing,
                    l.seized,
                    l.call
                        .map(|c| c.0.to_string())
                        .unwrap_or_else(|| "-".into()),
                    l.capture.len()
                )
            })
            .collect();
        let link = self.inner.link.lock();
        for c in link.calls() {
            out.push(format!("call {} {c}", c.id.0));
        }
        out
    }

    /// The benchmark's statistics (cleared by [`Sim::reset_timing`]).
    pub fn timing(&self) -> MutexGuard<'_, Timing> {
        self.inner.timing.lock()
    }

    /// Starts a new measurement window.
    pub fn reset_timing(&self, record_arrivals: bool) {
        *self.inner.timing.lock() = Timing {
            record_arrivals,
            ..Timing::default()
        };
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.inner.sim_path);
    }
}

impl Inner {
    fn send(&self, ch: u16, msg: Msg) {
        let _ = self
            .sock
            .send_to(&Packet::new(ch, msg).encode(), &self.span_path);
    }

    fn emit(&self, e: String) {
        (self.events)(e);
    }

    fn attach_call(&self, id: CallId, chan: u16) {
        self.calls.lock().insert(id, chan);
        if let Some(l) = self.lines.lock().get_mut(&chan) {
            l.call = Some(id);
        }
    }

    /// Sends what the link transmits and reports its events, until
    /// reporting them (answering a SETUP by itself) asks nothing more.
    fn flush(&self, link: &mut Link) {
        loop {
            let mut busy = false;
            while let Some(b) = link.poll_transmit() {
                busy = true;
                self.send(self.d_channel, Msg::DFrame(b));
            }
            while let Some(e) = link.poll_event() {
                busy = true;
                self.isdn_event(link, e);
            }
            if !busy {
                return;
            }
        }
    }

    fn isdn_event(&self, link: &mut Link, e: Event) {
        let line = match e {
            Event::Incoming {
                call,
                called,
                calling,
                channel,
            } => {
                if let Some(c) = channel {
                    self.attach_call(call, c as u16);
                }
                let now = Instant::now();
                let auto = *self.auto.lock();
                if auto != Auto::Off {
                    link.handle_proceeding(call, channel, now);
                }
                match auto {
                    Auto::Alert => link.handle_alerting(call, now),
                    Auto::Answer => {
                        link.handle_alerting(call, now);
                        link.handle_connect(call, now);
                    }
                    Auto::Busy => link.handle_hangup(call, 17, now),
                    Auto::Off => {}
                }
                format!(
                    "setup {} chan={} called={called} calling={calling}",
                    call.0,
                    channel.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
                )
            }
            Event::Proceeding { call, channel } => {
                if let Some(c) = channel {
                    self.attach_call(call, c as u16);
                }
                format!("proceeding {}", call.0)
            }
            Event::Alerting { call } => format!("alerting {}", call.0),
            Event::Progress { call } => format!("progress {}", call.0),
            Event::Connected { call } => format!("connect {}", call.0),
            Event::Disconnected { call, cause } => format!("disconnect {} cause={cause}", call.0),
            Event::Released { call, .. } => {
                if let Some(c) = self.calls.lock().remove(&call) {
                    if let Some(l) = self.lines.lock().get_mut(&c) {
                        l.call = None;
                    }
                }
                format!("released {}", call.0)
            }
        };
        self.emit(line);
    }

    /// The 20 ms clock: a frame for every active channel, every 20 ms.
    fn clock(&self) {
        let start = Instant::now();
        let mut tick: u64 = 0;
        let mut pcm = Vec::with_capacity(FRAME);
        let mut out = Vec::with_capacity(FRAME);
        while !self.stop.load(Ordering::Acquire) {
            tick += 1;
            let due = start + PTIME * tick as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let late = Instant::now().saturating_duration_since(due);
            if tick.is_multiple_of(50) {
                // Re-announce, so a reloaded span finds us again.
                self.send(0, Msg::Hello);
            }
            let mut frames = Vec::new();
            {
                let mut lines = self.lines.lock();
                for (&ch, l) in lines.iter_mut() {
                    if !l.active(self.mode) {
                        continue;
                    }
                    pcm.clear();
                    let n = l.digits.len().min(FRAME);
                    pcm.extend(l.digits.drain(..n));
                    if pcm.len() < FRAME {
                        match l.tone.as_mut() {
                            Some(t) if n == 0 => t.fill(FRAME, &mut pcm),
                            _ => pcm.resize(FRAME, 0),
                        }
                    }
                    out.clear();
                    self.law.encode(&pcm, &mut out);
                    frames.push((ch, out.clone()));
                    if l.sent_at.len() >= 50 {
                        l.sent_at.pop_front();
                    }
                    l.sent_at.push_back(due);
                }
            }
            // One datagram per tick (per BATCH channels), as a card
            // delivers one block for all its channels.
            for batch in frames.chunks(BATCH) {
                let p = Packet::new(0, Msg::Frames(batch.to_vec()));
                let _ = self.sock.send_to(&p.encode(), &self.span_path);
            }
            let mut t = self.timing.lock();
            t.sent += frames.len() as u64;
            if !frames.is_empty() {
                t.send_lateness.push(late);
            }
        }
    }

    fn receive(&self) {
        let mut buf = vec![0u8; 256 * 1024];
        let mut pcm = Vec::with_capacity(FRAME);
        while !self.stop.load(Ordering::Acquire) {
            {
                let mut link = self.link.lock();
                if link.poll_timeout().is_some_and(|d| d <= Instant::now()) {
                    link.handle_timeout(Instant::now());
                    self.flush(&mut link);
                }
            }
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => continue,
            };
            let Some(p) = Packet::decode(&buf[..n]) else {
                continue;
            };
            let now = Instant::now();
            for p in p.split() {
                self.handle(p, now, &mut pcm);
            }
        }
    }

    /// One message from the span (`now`: when its datagram arrived).
    fn handle(&self, p: Packet, now: Instant, pcm: &mut Vec<i16>) {
        match p.msg {
            Msg::Audio(b) => {
                pcm.clear();
                self.law.decode(&b, pcm);
                let sent = match self.lines.lock().get_mut(&p.chan) {
                    Some(l) => {
                        l.capture.extend(pcm.iter().copied());
                        let excess = l.capture.len().saturating_sub(CAPTURE_SECONDS * 8000);
                        l.capture.drain(..excess);
                        l.sent_at.pop_front()
                    }
                    None => None,
                };
                let mut t = self.timing.lock();
                t.received += 1;
                if let (true, Some(sent)) = (t.record_arrivals, sent) {
                    t.round_trips
                        .entry(p.chan)
                        .or_default()
                        .push(now.saturating_duration_since(sent));
                }
            }
            Msg::RingOn | Msg::RingOff => {
                let on = p.msg == Msg::RingOn;
                let answer = {
                    let mut lines = self.lines.lock();
                    let Some(l) = lines.get_mut(&p.chan) else {
                        return;
                    };
                    let was = l.ringing;
                    l.ringing = on && !l.offhook;
                    if on && !was && !l.offhook {
                        self.emit(format!("ring {}", p.chan));
                    } else if !on && was {
                        self.emit(format!("ringoff {}", p.chan));
                    }
                    on && l.auto_answer && !l.offhook
                };
                if answer {
                    if let Some(l) = self.lines.lock().get_mut(&p.chan) {
                        l.offhook = true;
                        l.ringing = false;
                    }
                    self.send(p.chan, Msg::OffHook);
                    self.emit(format!("answered {}", p.chan));
                }
            }
            Msg::OffHook | Msg::OnHook => {
                let seized = p.msg == Msg::OffHook;
                if let Some(l) = self.lines.lock().get_mut(&p.chan) {
                    if l.seized != seized {
                        l.seized = seized;
                        self.emit(format!(
                            "{} {}",
                            if seized { "seize" } else { "release" },
                            p.chan
                        ));
                    }
                }
            }
            Msg::DFrame(b) => {
                let mut link = self.link.lock();
                let _ = link.handle_frame(&b, Instant::now());
                self.flush(&mut link);
            }
            Msg::Bye => self.emit("bye".into()),
            Msg::Hello | Msg::Frames(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::mpsc;

    /// A fake span: the socket the simulator talks to.
    fn fake_span(tag: &str) -> (PathBuf, UnixDatagram) {
        let dir = std::env::temp_dir().join(format!("linesim-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SPAN_SOCKET);
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock)
    }

    fn next(sock: &UnixDatagram, want: impl Fn(&Packet) -> bool) -> Packet {
        let mut buf = [0u8; 2048];
        loop {
            let n = sock.recv(&mut buf).expect("a datagram from the simulator");
            for p in Packet::decode(&buf[..n]).unwrap().split() {
                if want(&p) {
                    return p;
                }
            }
        }
    }

    fn open(dir: &Path, mode: Mode) -> (Sim, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let sim = Sim::open(
            Options {
                dir: dir.to_path_buf(),
                mode,
                law: Law::Ulaw,
                channels: vec![1, 2],
                d_channel: 24,
            },
            move |e| {
                let _ = tx.lock().send(e);
            },
        )
        .unwrap();
        (sim, rx)
    }

    #[test]
    fn a_phone_goes_off_hook_dials_dtmf_in_its_audio_and_answers_when_rung() {
        let (dir, span) = fake_span("phone");
        let (sim, events) = open(&dir, Mode::Phones);
        assert_eq!(next(&span, |_| true).msg, Msg::Hello);
        sim.offhook(1).unwrap();
        next(&span, |p| p.msg == Msg::OffHook && p.chan == 1);
        sim.dial(1, "42").unwrap();
        let mut det = mod_freetdm::dsp::DtmfDetector::new();
        let mut digits = Vec::new();
        while digits.len() < 2 {
            if let Msg::Audio(b) = next(&span, |p| matches!(p.msg, Msg::Audio(_))).msg {
                let mut pcm = Vec::new();
                Law::Ulaw.decode(&b, &mut pcm);
                digits.extend(det.feed(&pcm));
            }
        }
        assert_eq!(digits, ['4', '2']);
        // Channel 2 rings and answers by itself.
        sim.auto_answer(2, true).unwrap();
        let sim_path = dir.join(SIM_SOCKET);
        span.send_to(&Packet::new(2, Msg::RingOn).encode(), &sim_path)
            .unwrap();
        assert_eq!(
            events.recv_timeout(Duration::from_secs(5)).unwrap(),
            "ring 2"
        );
        assert_eq!(
            events.recv_timeout(Duration::from_secs(5)).unwrap(),
            "answered 2"
        );
        next(&span, |p| p.msg == Msg::OffHook && p.chan == 2);
        assert!(sim.status()[1].contains("offhook=true"));
        drop(sim);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_network_side_answers_a_setup_by_itself_when_told_to() {
        let (dir, span) = fake_span("net");
        let (sim, events) = open(&dir, Mode::Network);
        sim.set_auto(Auto::Busy);
        let mut user = Link::new(Role::User, true);
        user.handle_setup("1000", "", Some(2), Instant::now());
        let sim_path = dir.join(SIM_SOCKET);
        while let Some(b) = user.poll_transmit() {
            span.send_to(&Packet::new(24, Msg::DFrame(b)).encode(), &sim_path)
                .unwrap();
        }
        assert!(events
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .starts_with("setup 1 chan=2 called=1000"));
        let mut seen = Vec::new();
        while seen.len() < 2 {
            if let Msg::DFrame(b) = next(&span, |p| matches!(p.msg, Msg::DFrame(_))).msg {
                seen.push(mod_freetdm::q931::Message::decode(&b).unwrap());
            }
        }
        use mod_freetdm::q931::MsgType;
        assert_eq!(seen[0].mt, MsgType::CallProceeding);
        assert_eq!((seen[1].mt, seen[1].cause), (MsgType::Disconnect, Some(17)));
        drop(sim);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn protocol_errors_name_what_is_wrong() {
        let (dir, _span) = fake_span("proto");
        let (sim, _) = open(&dir, Mode::Phones);
        assert_eq!(protocol::execute(&sim, "offhook 9"), "-ERR no channel 9");
        assert_eq!(
            protocol::execute(&sim, "dial 1 x"),
            "-ERR 'x' is not a DTMF digit"
        );
        assert!(protocol::execute(&sim, "frobnicate").starts_with("-ERR unknown command"));
        assert_eq!(protocol::execute(&sim, "power 1 1000"), "+OK 0.0000");
        assert_eq!(protocol::execute(&sim, "hangup 5"), "-ERR no call 5");
        drop(sim);
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The I/O shell around the signalling cores: one thread per span reads
//! the driver, feeds line events, audio and D-channel frames to the state
//! machines ([`analog`], [`q931`]) through their `handle_*` inputs, runs
//! their timers at their `poll_timeout`, and carries out what they ask:
//! each core's `poll_transmit` (line actions, D-channel frames) is drained
//! before its `poll_event` (what the switch must learn), again until both
//! are empty. What touches the switch (new sessions, answers, hangups) is
//! collected under the span's lock and done after it is released
//! (`switch`), so a host callback that comes back into the span never
//! waits on it.
//!
//! Audio towards the line outside a call (dial tone, busy tone, in-band
//! digits) is clocked by the line: each frame received is answered with
//! one frame, as a TDM card's clock drives both directions.
//!
//! - `media`: a channel's audio towards its session, outside the lock.
//! - `switch`: what the span asks of the switch.

mod media;
mod switch;

pub use media::{Media, Read};

use crate::analog::{self, Fxo, FxoState, Fxs, FxsState, Input, LineAction, Tone};
use crate::config::{Signalling, SpanConfig};
use crate::driver::{self, Driver};
use crate::dsp::{DtmfDetector, ToneGen, FRAME};
use crate::q931::{self, CallId, Link};
use crate::wire::{Msg, Packet};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::CallCause;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use switch::HostAction;

/// How long the span thread rests after a driver error.
const TICK: Duration = Duration::from_millis(20);
/// The longest the span thread goes without looking at its timers (and
/// its stop flag).
const TIMER_CHECK: Duration = Duration::from_millis(10);

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

enum Sig {
    Fxs(Fxs),
    Fxo(Fxo),
    /// An ISDN B channel.
    B,
}

struct Chan {
    number: u16,
    sig: Sig,
    /// The ISDN call on this B channel.
    call: Option<CallId>,
    /// The session bound to the channel.
    session: Option<String>,
    /// Picked for a call whose session is not bound yet.
    reserved: bool,
    generation: u64,
    /// The line ended the call before its session was bound.
    early_hangup: Option<CallCause>,
    detector: DtmfDetector,
    tone: Option<ToneGen>,
    digits_out: VecDeque<i16>,
    dnis: String,
    ani: String,
}

impl Chan {
    fn line_idle(&self) -> bool {
        match &self.sig {
            Sig::Fxs(f) => f.state() == FxsState::Down,
            Sig::Fxo(f) => f.state() == FxoState::Down,
            Sig::B => self.call.is_none(),
        }
    }

    fn free(&self) -> bool {
        !self.reserved && self.session.is_none() && self.line_idle()
    }

    fn line_state(&self) -> String {
        match &self.sig {
            Sig::Fxs(f) => format!("{:?}", f.state()).to_uppercase(),
            Sig::Fxo(f) => format!("{:?}", f.state()).to_uppercase(),
            Sig::B if self.call.is_some() => "CALL".into(),
            Sig::B => "DOWN".into(),
        }
    }

    /// A new call on the channel (inbound, or reserved for outbound).
    fn reserve(&mut self) -> u64 {
        self.generation = next_generation();
        self.reserved = true;
        self.early_hangup = None;
        self.generation
    }

    fn handle_input(&mut self, input: Input, now: Instant) {
        match &mut self.sig {
            Sig::Fxs(f) => f.handle_input(input, now),
            Sig::Fxo(f) => f.handle_input(input, now),
            Sig::B => {}
        }
    }

    fn poll_transmit(&mut self) -> Option<LineAction> {
        match &mut self.sig {
            Sig::Fxs(f) => f.poll_transmit(),
            Sig::Fxo(f) => f.poll_transmit(),
            Sig::B => None,
        }
    }

    fn poll_event(&mut self) -> Option<analog::Event> {
        match &mut self.sig {
            Sig::Fxs(f) => f.poll_event(),
            Sig::Fxo(f) => f.poll_event(),
            Sig::B => None,
        }
    }
}

struct State {
    chans: Vec<Chan>,
    link: Option<Link>,
}

/// One span: its configuration, driver, channels and thread.
pub struct Span {
    pub cfg: SpanConfig,
    /// Itself, for the private data of the sessions it creates.
    this: Weak<Span>,
    driver: Box<dyn Driver>,
    state: Mutex<State>,
    media: Vec<Arc<Media>>,
    running: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A channel's line as `ftdm list` and `ftdm dump` show it.
pub struct ChanInfo {
    pub number: u16,
    pub line: String,
    pub session: Option<String>,
    pub dnis: String,
    pub ani: String,
}

impl Span {
    /// Opens the span's driver and starts its thread.
    pub fn start(cfg: SpanConfig) -> std::io::Result<Arc<Span>> {
        let driver = driver::open(&cfg)?;
        let chans = cfg
            .channels
            .iter()
            .map(|&number| Chan {
                number,
                sig: match cfg.signalling {
                    Signalling::Fxs => Sig::Fxs(Fxs::new(cfg.timing.clone())),
                    Signalling::Fxo => Sig::Fxo(Fxo::new()),
                    Signalling::Isdn(_) => Sig::B,
                },
                call: None,
                session: None,
                reserved: false,
                generation: 0,
                early_hangup: None,
                detector: DtmfDetector::new(),
                tone: None,
                digits_out: VecDeque::new(),
                dnis: String::new(),
                ani: String::new(),
            })
            .collect();
        let link = match cfg.signalling {
            Signalling::Isdn(role) => Some(Link::new(role, cfg.law == crate::g711::Law::Ulaw)),
            _ => None,
        };
        let span = Arc::new_cyclic(|this| Span {
            this: this.clone(),
            media: cfg
                .channels
                .iter()
                .map(|_| Arc::new(Media::default()))
                .collect(),
            cfg,
            driver,
            state: Mutex::new(State { chans, link }),
            running: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let me = span.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ftdm-{}", span.cfg.name))
            .spawn(move || me.run())?;
        *span.thread.lock() = Some(handle);
        Ok(span)
    }

    /// Stops the thread (joined) and releases the hardware.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
        self.driver.close();
    }

    /// True while the span takes calls (`ftdm start` / `ftdm stop`).
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// `ftdm start` / `ftdm stop`.
    pub fn set_running(&self, on: bool) {
        self.running.store(on, Ordering::Release);
    }

    /// The driver's description.
    pub fn driver_info(&self) -> String {
        self.driver.describe()
    }

    /// The audio of channel slot `slot`.
    pub fn media(&self, slot: usize) -> &Arc<Media> {
        &self.media[slot]
    }

    /// The channel number of slot `slot`.
    pub fn chan_number(&self, slot: usize) -> u16 {
        self.cfg.channels[slot]
    }

    /// Every channel's line state.
    pub fn channels(&self) -> Vec<ChanInfo> {
        let st = self.state.lock();
        st.chans
            .iter()
            .map(|c| ChanInfo {
                number: c.number,
                line: c.line_state(),
                session: c.session.clone(),
                dnis: c.dnis.clone(),
                ani: c.ani.clone(),
            })
            .collect()
    }

    /// The ISDN calls on the D channel, one line each.
    pub fn isdn_calls(&self) -> Vec<String> {
        let st = self.state.lock();
        let Some(link) = &st.link else {
            return Vec::new();
        };
        link.calls().iter().map(ToString::to_string).collect()
    }

    /// True if slot `slot` could take a call now.
    pub fn is_free(&self, slot: usize) -> bool {
        self.running() && self.state.lock().chans.get(slot).is_some_and(Chan::free)
    }

    /// Reserves slot `slot` for an outbound call; its generation.
    pub fn try_reserve(&self, slot: usize) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let mut st = self.state.lock();
        let c = st.chans.get_mut(slot).filter(|c| c.free())?;
        Some(c.reserve())
    }

    /// Gives up a reservation whose session never came.
    pub fn release(&self, slot: usize, generation: u64) {
        let mut st = self.state.lock();
        if let Some(c) = st
            .chans
            .get_mut(slot)
            .filter(|c| c.generation == generation)
        {
            c.reserved = false;
        }
    }

    /// Binds the session `uuid` to the reserved slot; `Err(cause)` if the
    /// line ended the call meanwhile.
    pub fn bind(&self, slot: usize, generation: u64, uuid: &str) -> Result<(), CallCause> {
        let mut st = self.state.lock();
        let c = st
            .chans
            .get_mut(slot)
            .filter(|c| c.generation == generation)
            .ok_or(CallCause::NORMAL_CIRCUIT_CONGESTION)?;
        c.reserved = false;
        if let Some(cause) = c.early_hangup.take() {
            return Err(cause);
        }
        c.session = Some(uuid.to_string());
        self.media[slot].activate(generation);
        Ok(())
    }

    /// Runs `f` on the span's state if slot `slot` still carries call
    /// `generation`, then does what it asked of the switch.
    fn with_chan(
        &self,
        slot: usize,
        generation: u64,
        f: impl FnOnce(&mut State, usize, Instant, &mut Vec<HostAction>),
    ) {
        let mut acts = Vec::new();
        {
            let mut st = self.state.lock();
            if st
                .chans
                .get(slot)
                .is_none_or(|c| c.generation != generation)
            {
                return;
            }
            f(&mut st, slot, Instant::now(), &mut acts);
        }
        self.execute(acts);
    }

    /// The outbound call's session is running: ring the phone, seize the
    /// line or send SETUP.
    pub fn start_outbound(&self, slot: usize, generation: u64, number: &str, ani: &str) {
        self.with_chan(slot, generation, |st, slot, now, acts| {
            let c = &mut st.chans[slot];
            c.dnis = number.to_string();
            c.ani = ani.to_string();
            if let Sig::B = c.sig {
                if let Some(link) = st.link.as_mut() {
                    let call = link.handle_setup(number, ani, Some(c.number as u8), now);
                    c.call = Some(call);
                }
            } else {
                c.handle_input(Input::Call(number.to_string()), now);
            }
            self.drain(st, slot, now, acts);
        });
    }

    /// The switch answered an inbound call.
    pub fn host_answer(&self, slot: usize, generation: u64) {
        self.with_chan(slot, generation, |st, slot, now, acts| {
            let c = &mut st.chans[slot];
            match (&c.sig, st.link.as_mut(), c.call) {
                (Sig::B, Some(link), Some(call)) => link.handle_connect(call, now),
                _ => c.handle_input(Input::Answer, now),
            }
            self.drain(st, slot, now, acts);
        });
    }

    /// The switch signals ringing (`ring`) or early media on an inbound call.
    pub fn host_indicate(&self, slot: usize, generation: u64, ring: bool) {
        self.with_chan(slot, generation, |st, slot, now, acts| {
            if let (Some(link), Some(call)) = (st.link.as_mut(), st.chans[slot].call) {
                if ring {
                    link.handle_alerting(call, now);
                } else {
                    link.handle_progress(call, now);
                }
            }
            self.drain(st, slot, now, acts);
        });
    }

    /// The session hung up with `cause`.
    pub fn host_hangup(&self, slot: usize, generation: u64, cause: CallCause) {
        if self.media[slot].active.load(Ordering::Acquire) == generation {
            self.media[slot].deactivate();
        }
        self.with_chan(slot, generation, |st, slot, now, acts| {
            let c = &mut st.chans[slot];
            if c.session.is_none() && !c.reserved {
                return;
            }
            c.session = None;
            c.reserved = false;
            match (&c.sig, st.link.as_mut(), c.call) {
                (Sig::B, Some(link), Some(call)) => {
                    let q850 = if cause.0 <= 127 { cause.0 as u8 } else { 16 };
                    link.handle_hangup(call, q850, now);
                }
                (Sig::B, _, _) => {}
                _ => c.handle_input(Input::Hangup, now),
            }
            self.drain(st, slot, now, acts);
        });
    }

    /// Sends a digit in-band towards the line.
    pub fn send_digit(&self, slot: usize, generation: u64, digit: char) {
        self.with_chan(slot, generation, |st, slot, _, _| {
            queue_digits(&mut st.chans[slot], &digit.to_string());
            self.media[slot]
                .sending_digits
                .store(true, Ordering::Release);
        });
    }

    /// A frame from the session towards the line (already in the span's law).
    pub fn write_audio(&self, slot: usize, generation: u64, bytes: Vec<u8>) {
        if !self.media[slot].writable(generation) {
            return;
        }
        let _ = self
            .driver
            .send(&Packet::new(self.cfg.channels[slot], Msg::Audio(bytes)));
    }

    /// The sessions on this span.
    pub fn sessions(&self) -> Vec<String> {
        self.state
            .lock()
            .chans
            .iter()
            .filter_map(|c| c.session.clone())
            .collect()
    }

    fn run(&self) {
        log::info!("span {} up ({})", self.cfg.name, self.driver.describe());
        // Timers are looked at when due, and at least every TIMER_CHECK:
        // not after every frame, which would cost O(channels) each.
        let mut next_check = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            // A fixed wait: the driver sets its timeout once.
            match self.driver.recv(TIMER_CHECK) {
                Ok(packets) => {
                    for p in packets {
                        self.packet(p);
                    }
                }
                Err(e) => {
                    log::warn!("span {}: {e}", self.cfg.name);
                    std::thread::sleep(TICK);
                }
            }
            let now = Instant::now();
            if now >= next_check {
                self.timers();
                next_check = self
                    .poll_timeout()
                    .unwrap_or(now + TIMER_CHECK)
                    .clamp(now + Duration::from_millis(1), now + TIMER_CHECK);
            }
        }
        log::info!("span {} down", self.cfg.name);
    }

    /// The earliest `poll_timeout` of the span's cores.
    fn poll_timeout(&self) -> Option<Instant> {
        let st = self.state.lock();
        let chans = st.chans.iter().filter_map(|c| match &c.sig {
            Sig::Fxs(f) => f.poll_timeout(),
            Sig::Fxo(f) => f.poll_timeout(),
            Sig::B => None,
        });
        chans
            .chain(st.link.as_ref().and_then(Link::poll_timeout))
            .min()
    }

    fn timers(&self) {
        let now = Instant::now();
        let mut acts = Vec::new();
        {
            let mut st = self.state.lock();
            for slot in 0..st.chans.len() {
                match &mut st.chans[slot].sig {
                    Sig::Fxs(f) if f.poll_timeout().is_some_and(|d| d <= now) => {
                        f.handle_timeout(now)
                    }
                    Sig::Fxo(f) if f.poll_timeout().is_some_and(|d| d <= now) => {
                        f.handle_timeout(now)
                    }
                    _ => continue,
                }
                self.drain(&mut st, slot, now, &mut acts);
            }
            if let Some(link) = st.link.as_mut() {
                if link.poll_timeout().is_some_and(|d| d <= now) {
                    link.handle_timeout(now);
                    self.drain_link(&mut st, now, &mut acts);
                }
            }
        }
        self.execute(acts);
    }

    fn packet(&self, p: Packet) {
        let now = Instant::now();
        let mut acts = Vec::new();
        {
            let mut st = self.state.lock();
            if let Msg::DFrame(b) = &p.msg {
                if p.chan == self.cfg.d_channel || p.chan == 0 {
                    if let Some(link) = st.link.as_mut() {
                        if let Err(e) = link.handle_frame(b, now) {
                            log::debug!("span {}: D channel: {e:?}", self.cfg.name);
                        }
                        self.drain_link(&mut st, now, &mut acts);
                    }
                }
            } else if let Some(slot) = self.cfg.channels.iter().position(|&c| c == p.chan) {
                // Line events are taken even when the span is stopped (a
                // phone must be able to hang up); new calls are not.
                let input = match p.msg {
                    Msg::Audio(b) => {
                        self.audio(&mut st, slot, b, now, &mut acts);
                        None
                    }
                    Msg::OffHook => Some(Input::OffHook),
                    Msg::OnHook => Some(Input::OnHook),
                    Msg::RingOn => Some(Input::RingOn),
                    Msg::RingOff => Some(Input::RingOff),
                    _ => None,
                };
                if let Some(input) = input {
                    st.chans[slot].handle_input(input, now);
                    self.drain(&mut st, slot, now, &mut acts);
                }
            }
        }
        self.execute(acts);
    }

    fn audio(
        &self,
        st: &mut State,
        slot: usize,
        bytes: Vec<u8>,
        now: Instant,
        acts: &mut Vec<HostAction>,
    ) {
        let law = self.cfg.law;
        let c = &mut st.chans[slot];
        let collecting = match &c.sig {
            Sig::Fxs(f) => matches!(f.state(), FxsState::DialTone | FxsState::Collecting),
            _ => false,
        };
        // Digits are listened for while the FXS port collects a number
        // and, as FreeTDM's in-band detection does, during calls.
        let in_call = c.session.is_some() && self.cfg.dtmf_detect;
        let mut digits = Vec::new();
        if collecting || in_call {
            let mut pcm = Vec::with_capacity(bytes.len());
            law.decode(&bytes, &mut pcm);
            digits = c.detector.feed(&pcm);
        }
        if !collecting {
            if let Some(u) = c.session.as_ref() {
                for d in digits.drain(..) {
                    acts.push(HostAction::Dtmf(u.clone(), d));
                }
            }
        }
        if !digits.is_empty() {
            for d in digits {
                log::debug!("{}:{} digit {d}", self.cfg.name, c.number);
                c.handle_input(Input::Digit(d), now);
            }
            self.drain(st, slot, now, acts);
        }
        let c = &mut st.chans[slot];
        let reply = if !c.digits_out.is_empty() {
            let n = c.digits_out.len().min(bytes.len().max(FRAME));
            let pcm: Vec<i16> = c.digits_out.drain(..n).collect();
            if c.digits_out.is_empty() {
                self.media[slot]
                    .sending_digits
                    .store(false, Ordering::Release);
            }
            Some(pcm)
        } else {
            c.tone.as_mut().map(|t| {
                let mut pcm = Vec::with_capacity(FRAME);
                t.fill(bytes.len().max(1), &mut pcm);
                pcm
            })
        };
        if let Some(pcm) = reply {
            let mut out = Vec::with_capacity(pcm.len());
            law.encode(&pcm, &mut out);
            let _ = self.driver.send(&Packet::new(c.number, Msg::Audio(out)));
        }
        if c.session.is_some() {
            self.media[slot].push(bytes);
        }
    }

    /// Carries out what channel `slot`'s analog machine asks: its line
    /// actions, then its events, until it asks nothing more.
    fn drain(&self, st: &mut State, slot: usize, now: Instant, acts: &mut Vec<HostAction>) {
        if st.link.is_some() {
            return self.drain_link(st, now, acts);
        }
        let c = &mut st.chans[slot];
        loop {
            let mut busy = false;
            while let Some(a) = c.poll_transmit() {
                busy = true;
                self.line_action(c, slot, a);
            }
            while let Some(e) = c.poll_event() {
                busy = true;
                self.line_event(c, slot, e, now, acts);
            }
            if !busy {
                return;
            }
        }
    }

    /// Does on the line what an analog machine asks.
    fn line_action(&self, c: &mut Chan, slot: usize, a: LineAction) {
        let send = |m: Msg| {
            let _ = self.driver.send(&Packet::new(c.number, m));
        };
        match a {
            LineAction::Tone(t) => {
                c.tone = t.map(|t| match t {
                    Tone::Dial => ToneGen::dial_tone(),
                    Tone::Busy => ToneGen::busy_tone(),
                })
            }
            LineAction::Ring(on) => send(if on { Msg::RingOn } else { Msg::RingOff }),
            LineAction::Seize(on) => send(if on { Msg::OffHook } else { Msg::OnHook }),
            LineAction::Dial(number) => {
                queue_digits(c, &number);
                self.media[slot]
                    .sending_digits
                    .store(true, Ordering::Release);
            }
        }
    }

    /// Acts on what an analog machine tells the switch.
    fn line_event(
        &self,
        c: &mut Chan,
        slot: usize,
        e: analog::Event,
        now: Instant,
        acts: &mut Vec<HostAction>,
    ) {
        match e {
            // A stopped span takes no new calls: busy tone (FXS), or
            // let the line ring (FXO).
            analog::Event::Route(_) if !self.running() => c.handle_input(Input::Hangup, now),
            analog::Event::Route(dest) => {
                let generation = c.reserve();
                c.dnis = if dest.is_empty() {
                    self.cfg.fxo_destination.clone()
                } else {
                    dest
                };
                c.ani.clear();
                acts.push(HostAction::Inbound { slot, generation });
            }
            analog::Event::Answered => {
                if let Some(u) = &c.session {
                    acts.push(HostAction::Answered(u.clone()));
                }
            }
            analog::Event::Hangup(cause) => self.line_hangup(c, slot, cause, acts),
        }
    }

    /// The line ended the call on `c`.
    fn line_hangup(&self, c: &mut Chan, slot: usize, cause: CallCause, acts: &mut Vec<HostAction>) {
        c.tone = None;
        if let Some(u) = c.session.take() {
            self.media[slot].deactivate();
            acts.push(HostAction::Hangup(u, cause));
        } else if c.reserved {
            c.early_hangup = Some(cause);
        }
    }

    /// Carries out what the D channel's call control asks.
    fn drain_link(&self, st: &mut State, now: Instant, acts: &mut Vec<HostAction>) {
        let Some(mut link) = st.link.take() else {
            return;
        };
        loop {
            let mut busy = false;
            while let Some(b) = link.poll_transmit() {
                busy = true;
                let _ = self
                    .driver
                    .send(&Packet::new(self.cfg.d_channel, Msg::DFrame(b)));
            }
            while let Some(e) = link.poll_event() {
                busy = true;
                self.link_event(st, &mut link, e, now, acts);
            }
            if !busy {
                break;
            }
        }
        st.link = Some(link);
    }

    /// Acts on what the D channel's call control tells the switch.
    fn link_event(
        &self,
        st: &mut State,
        link: &mut Link,
        e: q931::Event,
        now: Instant,
        acts: &mut Vec<HostAction>,
    ) {
        use q931::Event;
        let call = match e {
            Event::Incoming {
                call,
                called,
                calling,
                channel,
            } => {
                let slot = match channel {
                    Some(ch) => st.chans.iter().position(|c| c.number == ch as u16),
                    None => st.chans.iter().position(Chan::free),
                };
                let slot = slot.filter(|&s| self.running() && st.chans[s].free());
                let Some(slot) = slot else {
                    // 44: the channel asked for is busy; 34: none free.
                    link.handle_hangup(call, if channel.is_some() { 44 } else { 34 }, now);
                    return;
                };
                let c = &mut st.chans[slot];
                let generation = c.reserve();
                c.call = Some(call);
                c.dnis = called;
                c.ani = calling;
                link.handle_proceeding(call, Some(c.number as u8), now);
                acts.push(HostAction::Inbound { slot, generation });
                return;
            }
            Event::Proceeding { call, .. }
            | Event::Alerting { call }
            | Event::Progress { call }
            | Event::Connected { call }
            | Event::Disconnected { call, .. }
            | Event::Released { call, .. } => call,
        };
        let Some(slot) = st.chans.iter().position(|c| c.call == Some(call)) else {
            return;
        };
        let c = &mut st.chans[slot];
        let uuid = c.session.clone();
        match e {
            Event::Alerting { .. } => acts.extend(uuid.map(HostAction::Ringing)),
            Event::Progress { .. } => acts.extend(uuid.map(HostAction::Progress)),
            Event::Connected { .. } => acts.extend(uuid.map(HostAction::Answered)),
            Event::Disconnected { cause, .. } => {
                self.line_hangup(c, slot, CallCause(cause as u32), acts)
            }
            Event::Released { .. } => c.call = None,
            Event::Proceeding { .. } | Event::Incoming { .. } => {}
        }
    }
}

/// Queues the DTMF of `digits` (100 ms tone, 100 ms pause each).
fn queue_digits(c: &mut Chan, digits: &str) {
    let mut pcm = Vec::new();
    for d in digits.chars() {
        if let Some(mut g) = ToneGen::dtmf(d) {
            g.fill(800, &mut pcm);
            pcm.extend(std::iter::repeat_n(0, 800));
        }
    }
    c.digits_out.extend(pcm);
}

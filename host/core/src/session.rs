//! Sessions and channels: one call leg each. A [`Session`] owns its channel
//! (state, call state, flags, variables, caller profile, times), the
//! endpoint's private data (`tech_pvt`, kept by the session and freed
//! through the module when the session is dropped), and
//! a queue of messages for the endpoint. [`Sessions`] is the registry by
//! uuid, with FreeSWITCH's limits and counters.
//!
//! Threads: a session has no thread of its own. [`Session::wake`] schedules
//! its state machine (`state_machine::run`) on the executor whenever there
//! is work — a state change, a message, a hangup — and a parked or waiting
//! session holds no thread at all. At most one worker runs a session at a
//! time.

use crate::core::Core;
use crate::event::{Event, EventType};
use crate::interfaces::EndpointEntry;
use crate::modules::{CallGuard, LoadedModule};
use crate::origin;
use crossbeam_channel::Sender;
use hotswitch_plugin_api::sync::{Condvar, Mutex, MutexGuard, RwLock};
use hotswitch_plugin_api::{
    CallCause, ChannelState, KillSignal, MessageId, Profile, SessionRef, StateHandlers,
};
use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Which way the call goes, seen from the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// FreeSWITCH's call states (`CCS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    Down = 0,
    Dialing = 1,
    Ringing = 2,
    Early = 3,
    Active = 4,
    Held = 5,
    RingWait = 6,
    Hangup = 7,
    Unheld = 8,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Down => "DOWN",
            CallState::Dialing => "DIALING",
            CallState::Ringing => "RINGING",
            CallState::Early => "EARLY",
            CallState::Active => "ACTIVE",
            CallState::Held => "HELD",
            CallState::RingWait => "RING_WAIT",
            CallState::Hangup => "HANGUP",
            CallState::Unheld => "UNHELD",
        }
    }
}

/// Channel flags (a subset of FreeSWITCH's `CF_*`).
pub mod cf {
    pub const ANSWERED: u64 = 1 << 0;
    pub const OUTBOUND: u64 = 1 << 1;
    pub const EARLY_MEDIA: u64 = 1 << 2;
    pub const TRANSFER: u64 = 1 << 3;
    pub const BRIDGED: u64 = 1 << 4;
    pub const RING_READY: u64 = 1 << 5;
    pub const PARK: u64 = 1 << 6;
    /// An outbound leg being originated: ROUTING goes to CONSUME_MEDIA.
    pub const ORIGINATING: u64 = 1 << 7;
    /// The dialplan found an extension.
    pub const DIALPLAN_HIT: u64 = 1 << 8;
    /// The far end holds the call (FreeSWITCH's CF_LEG_HOLDING).
    pub const LEG_HOLDING: u64 = 1 << 9;
}

/// `CS_<NAME>` for a state.
pub fn state_name(s: ChannelState) -> String {
    format!("CS_{}", s.name().unwrap_or("NONE"))
}

/// Microseconds since the epoch, FreeSWITCH's unit for channel times.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The channel times (µs since the epoch, 0 = not yet).
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    pub created: u64,
    pub profile_created: u64,
    pub answered: u64,
    pub progress: u64,
    pub progress_media: u64,
    pub hangup: u64,
    pub transfer: u64,
    pub resurrect: u64,
    pub bridged: u64,
    pub last_hold: u64,
    pub hold_accum: u64,
}

/// State handlers a module attached to one channel; the guard keeps that
/// module loaded while the channel lives.
pub struct ChannelHandlers {
    pub table: StateHandlers,
    pub user_data: usize,
    pub module: Arc<LoadedModule>,
    pub _guard: CallGuard,
}

/// Something queued for the session's own thread.
pub enum Queued {
    /// An indication for the endpoint's `receive_message`.
    Message {
        id: MessageId,
        string_arg: String,
        numeric_arg: i64,
    },
    /// Run an application (sendmsg / uuid_broadcast style), `loops` times.
    Execute {
        app: String,
        arg: String,
        loops: u32,
        app_uuid: Option<String>,
    },
}

/// The mutable part of a session.
pub struct Channel {
    pub name: String,
    pub state: ChannelState,
    pub running_state: ChannelState,
    pub callstate: CallState,
    pub flags: u64,
    pub vars: Vec<(String, String)>,
    pub profile: Profile,
    pub times: Times,
    pub hangup_cause: Option<CallCause>,
    /// Applications left to run in CS_EXECUTE.
    pub extension: VecDeque<(String, String)>,
    pub handlers: Vec<ChannelHandlers>,
    /// The uuid of the session that originated this one.
    pub originator: Option<String>,
    /// The uuid of the leg this one is bridged to.
    pub bridged_to: Option<String>,
}

impl Channel {
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a variable; an empty value removes it.
    pub fn set_var(&mut self, name: &str, value: &str) {
        let pos = self.vars.iter().position(|(k, _)| k == name);
        match (pos, value.is_empty()) {
            (Some(i), true) => {
                self.vars.remove(i);
            }
            (Some(i), false) => self.vars[i].1 = value.to_string(),
            (None, false) => self.vars.push((name.to_string(), value.to_string())),
            (None, true) => {}
        }
    }

    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// A variable, or else a caller-profile field by its variable name.
    pub fn var_or_field(&self, name: &str) -> Option<String> {
        if let Some(v) = self.var(name) {
            return Some(v.to_string());
        }
        let p = &self.profile;
        let v = match name {
            "username" => &p.username,
            "dialplan" => &p.dialplan,
            "caller_id_name" => &p.caller_id_name,
            "caller_id_number" => &p.caller_id_number,
            "orig_caller_id_name" => &p.orig_caller_id_name,
            "orig_caller_id_number" => &p.orig_caller_id_number,
            "callee_id_name" => &p.callee_id_name,
            "callee_id_number" => &p.callee_id_number,
            "network_addr" => &p.network_addr,
            "ani" => &p.ani,
            "aniii" => &p.aniii,
            "rdnis" => &p.rdnis,
            "destination_number" => &p.destination_number,
            "source" => &p.source,
            "context" => &p.context,
            "chan_name" => &p.chan_name,
            "state" => return Some(state_name(self.state)),
            "channel_name" => &self.name,
            _ => return None,
        };
        (!v.is_empty()).then(|| v.clone())
    }

    /// FreeSWITCH's Answer-State.
    pub fn answer_state(&self) -> &'static str {
        if self.state >= ChannelState::HANGUP || self.hangup_cause.is_some() {
            "hangup"
        } else if self.has(cf::ANSWERED) {
            "answered"
        } else if self.has(cf::EARLY_MEDIA) {
            "early"
        } else {
            "ringing"
        }
    }
}

thread_local! {
    /// The session this worker is running now (0: none).
    static CURRENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// True when the calling thread is the one running `s` right now.
pub fn is_current(s: &Session) -> bool {
    CURRENT.with(|c| c.get() == s as *const Session as usize)
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const AGAIN: u8 = 3;

/// One call leg.
pub struct Session {
    pub uuid: String,
    pub id: u64,
    /// The id modules know this session by (`SessionRef`), in
    /// `handles::SESSIONS`.
    handle: u64,
    pub direction: Direction,
    pub endpoint: Arc<EndpointEntry>,
    pub(crate) core: Weak<Core>,
    ch: Mutex<Channel>,
    run: AtomicU8,
    started: AtomicBool,
    pub(crate) queue: Mutex<VecDeque<Queued>>,
    private: AtomicPtr<c_void>,
    /// When the running `read_frame` / `write_frame` began (ms since the
    /// session was created, +1; 0: none running), for the io watchdog.
    io_since: [AtomicU64; 2],
    created: std::time::Instant,
    /// The endpoint module's function that frees `private`.
    private_drop: std::sync::OnceLock<hotswitch_plugin_api::PrivateDropFn>,
    /// Bumped and notified on every change waiters care about.
    signal: (Mutex<u64>, Condvar),
    watchers: Mutex<Vec<Sender<()>>>,
    /// DTMF received from the far end, waiting for an application.
    dtmf: Mutex<VecDeque<hotswitch_plugin_api::Dtmf>>,
    /// `record_session`'s recorder, while recording.
    pub recorder: Mutex<Option<crate::media_io::Recorder>>,
    _endpoint_guard: CallGuard,
}

impl Session {
    /// The channel, locked.
    pub fn ch(&self) -> MutexGuard<'_, Channel> {
        self.ch.lock()
    }

    /// Marks a `read_frame` (0) or `write_frame` (1) call into the
    /// endpoint as running, until the guard drops.
    pub fn io_call(&self, which: usize) -> IoCall<'_> {
        let t = self.created.elapsed().as_millis() as u64 + 1;
        self.io_since[which].store(t, Ordering::Relaxed);
        IoCall { s: self, which }
    }

    /// The io entry running for longer than `limit`, if any.
    pub fn io_stuck(&self, limit: std::time::Duration) -> Option<&'static str> {
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let limit = limit.as_millis() as u64;
        ["read_frame", "write_frame"]
            .into_iter()
            .zip(&self.io_since)
            .find(|(_, t)| {
                let t = t.load(Ordering::Relaxed);
                t != 0 && now.saturating_sub(t) > limit
            })
            .map(|(e, _)| e)
    }

    /// The handle given to modules for this session.
    pub fn as_ref(self: &Arc<Self>) -> SessionRef {
        SessionRef { id: self.handle }
    }

    pub fn core(&self) -> Option<Arc<Core>> {
        self.core.upgrade()
    }

    pub fn private(&self) -> *mut c_void {
        self.private.load(Ordering::Acquire)
    }

    /// Attaches the endpoint's private data once; false if it has some.
    pub fn set_private(&self, p: *mut c_void, drop: hotswitch_plugin_api::PrivateDropFn) -> bool {
        if self.private_drop.set(drop).is_err() {
            return false;
        }
        self.private.store(p, Ordering::Release);
        true
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Lets the state machine run.
    pub fn start(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// Schedules the state machine if there may be work.
    pub fn wake(self: &Arc<Self>) {
        self.notify();
        if !self.is_started() {
            return;
        }
        loop {
            match self.run.load(Ordering::Acquire) {
                IDLE => {
                    if self
                        .run
                        .compare_exchange(IDLE, SCHEDULED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        let Some(core) = self.core() else { return };
                        let me = self.clone();
                        let c = core.clone();
                        core.executor.submit(move || me.run_on_worker(&c));
                        return;
                    }
                }
                RUNNING => {
                    if self
                        .run
                        .compare_exchange(RUNNING, AGAIN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    fn run_on_worker(self: &Arc<Self>, core: &Arc<Core>) {
        let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(self) as usize));
        self.run_loop(core);
        CURRENT.with(|c| c.set(previous));
    }

    fn run_loop(self: &Arc<Self>, core: &Arc<Core>) {
        self.run.store(RUNNING, Ordering::Release);
        loop {
            crate::state_machine::run(core, self);
            if self
                .run
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
            // Woken while running: go round again.
            self.run.store(RUNNING, Ordering::Release);
        }
    }

    /// Wakes anything waiting on this session (sleep, originate).
    pub fn notify(&self) {
        let (m, cv) = &self.signal;
        *m.lock() += 1;
        cv.notify_all();
        let mut w = self.watchers.lock();
        w.retain(|tx| tx.try_send(()).is_ok() || !tx.is_full());
    }

    /// Waits up to `ms` for [`notify`](Self::notify); returns the generation.
    pub fn wait_signal(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let (m, cv) = &self.signal;
        let g = m.lock();
        if *g != seen {
            return *g;
        }
        let (g, _) = cv.wait_timeout(g, timeout);
        *g
    }

    pub fn signal_generation(&self) -> u64 {
        *self.signal.0.lock()
    }

    /// Adds a watcher notified on answer, progress and hangup.
    pub fn watch(&self, tx: Sender<()>) {
        self.watchers.lock().push(tx);
    }

    /// Queues something for the session's thread and wakes it.
    pub fn enqueue(self: &Arc<Self>, q: Queued) {
        self.queue.lock().push_back(q);
        self.wake();
    }

    /// Queues a digit received from the far end, fires DTMF, wakes readers.
    pub fn queue_dtmf(&self, core: &Core, d: hotswitch_plugin_api::Dtmf) {
        let digit = char::from_u32(d.digit).unwrap_or('?');
        self.dtmf.lock().push_back(d);
        let source = match d.source {
            1 => "INBAND_AUDIO",
            2 => "RTP",
            3 => "ENDPOINT",
            4 => "APP",
            _ => "UNKNOWN",
        };
        self.fire(
            core,
            EventType::DTMF,
            true,
            &[
                ("DTMF-Digit", &digit.to_string()),
                ("DTMF-Duration", &(d.duration_ms * 8).to_string()),
                ("DTMF-Source", source),
            ],
        );
        self.notify();
    }

    /// The next queued digit, if any.
    pub fn take_dtmf(&self) -> Option<hotswitch_plugin_api::Dtmf> {
        self.dtmf.lock().pop_front()
    }

    /// Takes the first queued digit that `pred` accepts, leaving the others.
    pub fn take_dtmf_if(&self, pred: impl Fn(char) -> bool) -> Option<char> {
        let mut q = self.dtmf.lock();
        let i = q
            .iter()
            .position(|d| char::from_u32(d.digit).is_some_and(&pred))?;
        q.remove(i).and_then(|d| char::from_u32(d.digit))
    }

    /// Puts a digit back at the front of the queue.
    pub fn requeue_dtmf_front(&self, c: char) {
        self.dtmf.lock().push_front(hotswitch_plugin_api::Dtmf {
            digit: c as u32,
            duration_ms: 100,
            source: 0,
        });
    }

    /// True when a digit is queued.
    pub fn has_dtmf(&self) -> bool {
        !self.dtmf.lock().is_empty()
    }

    /// Drops queued digits.
    pub fn flush_dtmf(&self) {
        self.dtmf.lock().clear();
    }

    pub fn state(&self) -> ChannelState {
        self.ch().state
    }

    pub fn is_down(&self) -> bool {
        let ch = self.ch();
        ch.state >= ChannelState::HANGUP || ch.hangup_cause.is_some()
    }

    /// Sends a kill signal to the endpoint (interrupting a blocking read).
    pub fn signal_endpoint(self: &Arc<Self>, sig: KillSignal) {
        let Some(kill) = self.endpoint.io.kill_channel else {
            return;
        };
        let ud = self.endpoint.user_data;
        let sref = self.as_ref();
        let _ = crate::containment::call_entry(
            &self.endpoint.module,
            "kill_channel",
            Some(self),
            move || {
                // SAFETY: the endpoint's module is held by this session.
                unsafe { kill(ud as *mut c_void, sref, sig) }
            },
        );
    }

    /// Adds the channel data headers of FreeSWITCH's events to `e`.
    pub fn add_channel_data(&self, ch: &Channel, e: &mut Event, with_vars: bool) {
        let h = |e: &mut Event, k: &str, v: &str| e.add_header(k, v);
        h(e, "Channel-State", &state_name(ch.running_state));
        h(e, "Channel-Call-State", ch.callstate.as_str());
        h(e, "Channel-State-Number", &ch.state.0.to_string());
        h(e, "Channel-Name", &ch.name);
        h(e, "Unique-ID", &self.uuid);
        h(e, "Call-Direction", self.direction.as_str());
        h(e, "Presence-Call-Direction", self.direction.as_str());
        h(
            e,
            "Channel-HIT-Dialplan",
            if ch.has(cf::DIALPLAN_HIT) {
                "true"
            } else {
                "false"
            },
        );
        h(
            e,
            "Channel-Call-UUID",
            ch.var("call_uuid").unwrap_or(&self.uuid),
        );
        h(e, "Answer-State", ch.answer_state());
        if let Some(c) = ch.hangup_cause {
            h(e, "Hangup-Cause", c.name().unwrap_or("NONE"));
        }
        let p = &ch.profile;
        let dir = self.direction.as_str();
        for (k, v) in [
            ("Caller-Direction", dir),
            ("Caller-Logical-Direction", dir),
            ("Caller-Username", &p.username),
            ("Caller-Dialplan", &p.dialplan),
            ("Caller-Caller-ID-Name", &p.caller_id_name),
            ("Caller-Caller-ID-Number", &p.caller_id_number),
            ("Caller-Orig-Caller-ID-Name", &p.orig_caller_id_name),
            ("Caller-Orig-Caller-ID-Number", &p.orig_caller_id_number),
            ("Caller-Callee-ID-Name", &p.callee_id_name),
            ("Caller-Callee-ID-Number", &p.callee_id_number),
            ("Caller-Network-Addr", &p.network_addr),
            ("Caller-ANI", &p.ani),
            ("Caller-ANI-II", &p.aniii),
            ("Caller-Destination-Number", &p.destination_number),
            ("Caller-Unique-ID", &self.uuid),
            ("Caller-Source", &p.source),
            ("Caller-Context", &p.context),
            ("Caller-RDNIS", &p.rdnis),
            ("Caller-Channel-Name", &ch.name),
        ] {
            h(e, k, v);
        }
        let t = &ch.times;
        for (k, v) in [
            ("Caller-Profile-Index", 1),
            ("Caller-Profile-Created-Time", t.profile_created),
            ("Caller-Channel-Created-Time", t.created),
            ("Caller-Channel-Answered-Time", t.answered),
            ("Caller-Channel-Progress-Time", t.progress),
            ("Caller-Channel-Progress-Media-Time", t.progress_media),
            ("Caller-Channel-Hangup-Time", t.hangup),
            ("Caller-Channel-Transfer-Time", t.transfer),
            ("Caller-Channel-Resurrect-Time", t.resurrect),
            ("Caller-Channel-Bridged-Time", t.bridged),
            ("Caller-Channel-Last-Hold", t.last_hold),
            ("Caller-Channel-Hold-Accum", t.hold_accum),
        ] {
            h(e, k, &v.to_string());
        }
        h(e, "Caller-Screen-Bit", "true");
        h(e, "Caller-Privacy-Hide-Name", "false");
        h(e, "Caller-Privacy-Hide-Number", "false");
        if with_vars {
            for (k, v) in &ch.vars {
                e.add_header(format!("variable_{k}"), v.as_str());
            }
        }
    }

    /// Fires a channel event (if anyone listens), with the channel data.
    pub fn fire(&self, core: &Core, t: EventType, with_vars: bool, extra: &[(&str, &str)]) {
        if !core.bus.wants(t, None) {
            return;
        }
        let mut e = core.bus.create(t, None, origin!("channel_event"));
        {
            let ch = self.ch();
            let verbose = core.controls.verbose_events.load(Ordering::Relaxed);
            self.add_channel_data(&ch, &mut e, with_vars || verbose);
        }
        for (k, v) in extra {
            e.add_header(*k, *v);
        }
        core.bus.fire(e);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        crate::handles::SESSIONS.remove(self.handle);
        let p = self.private.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if let (false, Some(&free)) = (p.is_null(), self.private_drop.get()) {
            // Through the module, which this session still holds (its
            // guard drops after this); a faulted module's data leaks.
            let p = crate::core::SendPtr(p as *const c_void);
            crate::containment::call_entry(
                &self.endpoint.module,
                "private drop",
                None,
                move || {
                    let p = p;
                    // SAFETY: the data and drop function the module attached.
                    unsafe { free(p.0 as *mut c_void) }
                },
            );
        }
        if let Some(core) = self.core.upgrade() {
            core.sessions.dropped();
        }
    }
}

/// A `read_frame` / `write_frame` in progress (see [`Session::io_call`]).
pub struct IoCall<'a> {
    s: &'a Session,
    which: usize,
}

impl Drop for IoCall<'_> {
    fn drop(&mut self) {
        self.s.io_since[self.which].store(0, Ordering::Relaxed);
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    ShuttingDown,
    MaxSessions(usize),
    RateLimited(u32),
    DuplicateUuid(String),
    ModuleUnavailable(String),
}

impl RequestError {
    /// The call cause FreeSWITCH reports for it.
    pub fn cause(&self) -> CallCause {
        match self {
            RequestError::ShuttingDown => CallCause::SYSTEM_SHUTDOWN,
            RequestError::MaxSessions(_) | RequestError::RateLimited(_) => {
                CallCause::NORMAL_TEMPORARY_FAILURE
            }
            RequestError::DuplicateUuid(_) => CallCause::INVALID_CALL_REFERENCE,
            RequestError::ModuleUnavailable(_) => CallCause::CHAN_NOT_IMPLEMENTED,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::ShuttingDown => write!(f, "the switch is shutting down"),
            RequestError::MaxSessions(n) => write!(f, "max-sessions ({n}) reached"),
            RequestError::RateLimited(n) => write!(f, "sessions-per-second ({n}) exceeded"),
            RequestError::DuplicateUuid(u) => write!(f, "duplicate uuid {u}"),
            RequestError::ModuleUnavailable(m) => write!(f, "{m}"),
        }
    }
}

struct Rate {
    second: u64,
    count: u32,
}

/// The peaks of the current five-minute window (`status`'s `last 5min`):
/// the window number (seconds / 300), concurrent sessions, sessions per
/// second.
#[derive(Default)]
struct FiveMinutes {
    window: AtomicU64,
    peak: AtomicU64,
    peak_sps: AtomicU64,
}

impl FiveMinutes {
    /// Starts a new window when the clock has left the current one.
    fn roll(&self) {
        let w = now_us() / 300_000_000;
        if self.window.swap(w, Ordering::Relaxed) != w {
            self.peak.store(0, Ordering::Relaxed);
            self.peak_sps.store(0, Ordering::Relaxed);
        }
    }
}

/// The registry of live sessions and the counters `status` reports.
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
    next_id: AtomicU64,
    pub total: AtomicU64,
    pub peak: AtomicU64,
    pub peak_sps: AtomicU64,
    /// Session objects not yet freed (registry removal to last reference).
    pub alive: AtomicU64,
    rate: Mutex<Rate>,
    pub max_sessions: AtomicU64,
    pub sessions_per_second: AtomicU64,
    five: FiveMinutes,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            map: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            total: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            peak_sps: AtomicU64::new(0),
            alive: AtomicU64::new(0),
            rate: Mutex::new(Rate {
                second: 0,
                count: 0,
            }),
            max_sessions: AtomicU64::new(1000),
            sessions_per_second: AtomicU64::new(30),
            five: FiveMinutes::default(),
        }
    }
}

impl Sessions {
    pub fn get(&self, uuid: &str) -> Option<Arc<Session>> {
        self.map.read().get(uuid).cloned()
    }

    pub fn count(&self) -> usize {
        self.map.read().len()
    }

    /// Every live session, oldest first.
    pub fn all(&self) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Sessions per second in the current second.
    pub fn current_sps(&self) -> u32 {
        let r = self.rate.lock();
        if r.second == now_us() / 1_000_000 {
            r.count
        } else {
            0
        }
    }

    /// The peaks of concurrent sessions and of sessions per second in the
    /// current five-minute window.
    pub fn five_minute_peaks(&self) -> (u64, u64) {
        self.five.roll();
        (
            self.five.peak.load(Ordering::Relaxed),
            self.five.peak_sps.load(Ordering::Relaxed),
        )
    }

    /// Creates a session on `endpoint` (FreeSWITCH's session request).
    pub fn request(
        &self,
        core: &Arc<Core>,
        endpoint: Arc<EndpointEntry>,
        direction: Direction,
        uuid: Option<String>,
    ) -> Result<Arc<Session>, RequestError> {
        if core.is_shutting_down() || !core.drain.accepts(direction == Direction::Inbound) {
            return Err(RequestError::ShuttingDown);
        }
        let max = self.max_sessions.load(Ordering::Relaxed) as usize;
        if self.count() >= max {
            return Err(RequestError::MaxSessions(max));
        }
        {
            let sps = self.sessions_per_second.load(Ordering::Relaxed) as u32;
            let mut r = self.rate.lock();
            let sec = now_us() / 1_000_000;
            if r.second != sec {
                r.second = sec;
                r.count = 0;
            }
            if r.count >= sps {
                return Err(RequestError::RateLimited(sps));
            }
            r.count += 1;
            self.peak_sps.fetch_max(r.count as u64, Ordering::Relaxed);
            self.five.roll();
            self.five
                .peak_sps
                .fetch_max(r.count as u64, Ordering::Relaxed);
        }
        let guard = endpoint
            .module
            .enter()
            .map_err(|e| RequestError::ModuleUnavailable(e.to_string()))?;
        let uuid = uuid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = now_us();
        let mut ch = Channel {
            name: String::new(),
            state: ChannelState::NEW,
            running_state: ChannelState::NONE,
            callstate: CallState::Down,
            flags: if direction == Direction::Outbound {
                cf::OUTBOUND
            } else {
                0
            },
            vars: Vec::with_capacity(8),
            profile: Profile::default(),
            times: Times {
                created: now,
                profile_created: now,
                ..Default::default()
            },
            hangup_cause: None,
            extension: VecDeque::new(),
            handlers: Vec::new(),
            originator: None,
            bridged_to: None,
        };
        ch.set_var("uuid", &uuid);
        ch.set_var("call_uuid", &uuid);
        ch.set_var("session_id", &id.to_string());
        let s = Arc::new_cyclic(|me| Session {
            uuid: uuid.clone(),
            id,
            handle: crate::handles::SESSIONS.insert(me.clone()),
            direction,
            endpoint,
            core: Arc::downgrade(core),
            ch: Mutex::new(ch),
            run: AtomicU8::new(IDLE),
            started: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            private: AtomicPtr::new(std::ptr::null_mut()),
            private_drop: std::sync::OnceLock::new(),
            io_since: [AtomicU64::new(0), AtomicU64::new(0)],
            created: std::time::Instant::now(),
            signal: (Mutex::new(0), Condvar::new()),
            watchers: Mutex::new(Vec::new()),
            dtmf: Mutex::new(VecDeque::new()),
            recorder: Mutex::new(None),
            _endpoint_guard: guard,
        });
        {
            let mut map = self.map.write();
            if map.contains_key(&uuid) {
                return Err(RequestError::DuplicateUuid(uuid));
            }
            map.insert(uuid, s.clone());
            self.peak.fetch_max(map.len() as u64, Ordering::Relaxed);
            self.five
                .peak
                .fetch_max(map.len() as u64, Ordering::Relaxed);
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.alive.fetch_add(1, Ordering::Relaxed);
        Ok(s)
    }

    /// Removes a destroyed session from the registry.
    pub fn remove(&self, uuid: &str) {
        let removed = self.map.write().remove(uuid);
        // Dropped outside the lock: the last reference frees the
        // endpoint's private state through its module, which may call back.
        drop(removed);
    }

    fn dropped(&self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

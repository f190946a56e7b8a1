//! One modem: the I/O shell around the [`Driver`].
//!
//! A thread per interface owns the serial port: it opens it (again and
//! again while it is missing), feeds the driver (`handle_*`) what it reads
//! and the switch's requests, runs its timer, writes what it transmits, and
//! turns the events it polls into session operations, MESSAGE events and
//! replies. Session threads reach it only through [`Interface::send`] and
//! the shared [`Snapshot`]. The thread ends when [`Interface::stop`] is
//! called and is joined in the module's unload.

use crate::at::{Driver, Event, Link, Phase, Request};
use crate::audio::AudioPort;
use crate::config::InterfaceConfig;
use crate::endpoint::Leg;
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{CallCause, ChannelState, Chat, ModuleContext, Profile};
use serialport::TTYPort;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// FreeSWITCH's MESSAGE event id.
const EVENT_MESSAGE: u32 = hotswitch_plugin_api::EventId::MESSAGE.id();
/// How long the port read waits (and so how fast requests are served).
const READ_WAIT: Duration = Duration::from_millis(10);

/// What the interface thread is asked.
pub enum Job {
    Driver(Request),
    SendSms {
        to: String,
        text: String,
        reply: Sender<Result<(), String>>,
    },
    Reset,
}

/// Who holds the interface's one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Slot {
    #[default]
    Free,
    /// Taken by an outbound call whose session is being made.
    Reserved,
    /// The session carrying the call.
    Session(String),
}

/// The interface as others see it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub link: Option<Link>,
    pub registration: Option<u8>,
    pub signal: Option<u8>,
    pub call: Slot,
    pub call_number: String,
    pub call_phase: Option<Phase>,
    pub calls_in: u64,
    pub calls_out: u64,
    pub sms_in: u64,
    pub sms_out: u64,
    pub last_down: String,
}

/// One configured modem.
pub struct Interface {
    pub cfg: InterfaceConfig,
    pub audio: AudioPort,
    jobs: Mutex<Sender<Job>>,
    chats: Mutex<Sender<Chat>>,
    state: Mutex<Snapshot>,
    stopping: AtomicBool,
}

impl Interface {
    /// Creates the interface and starts its threads.
    pub fn start(cfg: InterfaceConfig) -> std::io::Result<(Arc<Interface>, Vec<JoinHandle<()>>)> {
        let (tx, rx) = channel();
        let (chat_tx, chat_rx) = channel();
        let iface = Arc::new(Interface {
            audio: AudioPort::new(&cfg.audio_device),
            cfg,
            jobs: Mutex::new(tx),
            chats: Mutex::new(chat_tx),
            state: Mutex::new(Snapshot::default()),
            stopping: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        let i = iface.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("gsm-{}", iface.cfg.name))
                .spawn(move || run(i, rx))?,
        );
        let i = iface.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("gsm-{}-chat", iface.cfg.name))
                .spawn(move || route_chats(i, chat_rx))?,
        );
        if !iface.cfg.audio_device.is_empty() {
            let i = iface.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("gsm-{}-audio", iface.cfg.name))
                    .spawn(move || i.audio.run(|| i.stopping.load(Ordering::Acquire)))?,
            );
        }
        Ok((iface, threads))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Asks the threads to end (they close the port on the way out).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn send(&self, job: Job) {
        let _ = self.jobs.lock().send(job);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.state.lock().clone()
    }

    /// Up, registered and idle: what `gsmopen/ANY/…` takes.
    pub fn available(&self) -> bool {
        let s = self.state.lock();
        s.link == Some(Link::Ready)
            && matches!(s.registration, Some(1) | Some(5))
            && s.call == Slot::Free
    }

    /// Takes the interface for a call; false when it is busy or down.
    pub fn reserve(&self, number: &str) -> Result<(), CallCause> {
        let mut s = self.state.lock();
        if s.link != Some(Link::Ready) {
            return Err(CallCause::NETWORK_OUT_OF_ORDER);
        }
        if s.call != Slot::Free {
            return Err(CallCause::NORMAL_CIRCUIT_CONGESTION);
        }
        s.call = Slot::Reserved;
        s.call_number = number.into();
        s.calls_out += 1;
        Ok(())
    }

    /// Records the session that took the reservation.
    pub fn bind(&self, uuid: &str) {
        self.state.lock().call = Slot::Session(uuid.into());
    }

    /// Lets go of the call if session `uuid` holds it (or it is still only
    /// reserved); true if it did.
    pub fn release(&self, uuid: &str) -> bool {
        let mut s = self.state.lock();
        let held = match &s.call {
            Slot::Reserved => true,
            Slot::Session(u) => u == uuid,
            Slot::Free => false,
        };
        if held {
            s.call = Slot::Free;
            s.call_number.clear();
            true
        } else {
            false
        }
    }

    /// Sends a message and waits for the modem's verdict.
    pub fn send_sms(&self, to: &str, text: &str) -> Result<(), String> {
        let (tx, rx) = channel();
        self.send(Job::SendSms {
            to: to.into(),
            text: text.into(),
            reply: tx,
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| Err("timed out".into()))
    }
}

/// Sends incoming messages on through the host's chat routing. Its own
/// thread, because the chat protocol may be this very module, whose send
/// waits for the interface thread.
fn route_chats(iface: Arc<Interface>, chats: Receiver<Chat>) {
    loop {
        match chats.recv_timeout(Duration::from_millis(100)) {
            Ok(chat) => {
                if let Err(e) = ModuleContext::current().send_chat(&chat) {
                    log::warn!(
                        "gsmopen {}: routing the SMS through '{}': {e}",
                        iface.name(),
                        chat.proto
                    );
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if iface.stopping.load(Ordering::Acquire) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The serial port, opened as a tty (a pseudo-terminal in tests).
fn open(cfg: &InterfaceConfig) -> Result<TTYPort, String> {
    serialport::new(&cfg.device, cfg.speed)
        .timeout(READ_WAIT)
        .open_native()
        .map_err(|e| e.to_string())
}

struct Shell {
    iface: Arc<Interface>,
    driver: Driver,
    port: Option<TTYPort>,
    next_open: Instant,
    sms_waiting: HashMap<u64, Sender<Result<(), String>>>,
}

static SMS_IDS: AtomicU64 = AtomicU64::new(1);

fn run(iface: Arc<Interface>, jobs: Receiver<Job>) {
    let mut sh = Shell {
        driver: Driver::new(iface.cfg.driver.clone()),
        iface,
        port: None,
        next_open: Instant::now(),
        sms_waiting: HashMap::new(),
    };
    let mut buf = [0u8; 2048];
    let mut warned_missing = false;
    while !sh.iface.stopping.load(Ordering::Acquire) {
        let now = Instant::now();
        if sh.port.is_none() && now >= sh.next_open {
            match open(&sh.iface.cfg) {
                Ok(p) => {
                    log::info!(
                        "gsmopen {}: opened {}",
                        sh.iface.name(),
                        sh.iface.cfg.device
                    );
                    warned_missing = false;
                    sh.port = Some(p);
                    sh.driver.handle_opened(now);
                }
                Err(e) => {
                    if !warned_missing {
                        log::warn!(
                            "gsmopen {}: cannot open {}: {e}; trying again",
                            sh.iface.name(),
                            sh.iface.cfg.device
                        );
                        warned_missing = true;
                    }
                    sh.next_open = now + sh.iface.cfg.reopen_interval;
                }
            }
        }
        while let Ok(job) = jobs.try_recv() {
            sh.job(job);
        }
        let read = match sh.port.as_mut() {
            Some(p) => Some(p.read(&mut buf)),
            None => {
                // Nothing to read: wait for a request instead.
                match jobs.recv_timeout(Duration::from_millis(50)) {
                    Ok(job) => sh.job(job),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
                }
                None
            }
        };
        let now = Instant::now();
        match read {
            Some(Ok(0)) => sh.lost("the port closed"),
            Some(Ok(n)) => sh.driver.handle_bytes(&buf[..n], now),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Some(Err(e)) => sh.lost(&format!("the port failed: {e}")),
            None => {}
        }
        if sh.driver.poll_timeout().is_some_and(|t| now >= t) {
            sh.driver.handle_timeout(now);
        }
        sh.outputs();
        sh.publish();
    }
    if sh.port.is_some() {
        sh.lost("the module is unloading");
        sh.outputs();
    }
    log::info!("gsmopen {}: stopped", sh.iface.name());
}

impl Shell {
    fn job(&mut self, job: Job) {
        let now = Instant::now();
        match job {
            Job::Driver(r) => self.driver.handle_request(r, now),
            Job::SendSms { to, text, reply } => {
                let id = SMS_IDS.fetch_add(1, Ordering::Relaxed);
                self.sms_waiting.insert(id, reply);
                self.driver
                    .handle_request(Request::SendSms { id, to, text }, now);
            }
            Job::Reset => {
                log::info!("gsmopen {}: reset", self.iface.name());
                self.lost("reset by the api");
                self.next_open = now;
            }
        }
        self.outputs();
    }

    /// The port is gone (or given up): close it and try again later.
    fn lost(&mut self, why: &str) {
        self.port = None;
        self.driver.handle_closed(why, Instant::now());
        self.iface.audio.disconnect();
        self.next_open = Instant::now() + self.iface.cfg.reopen_interval;
    }

    fn publish(&self) {
        let mut s = self.iface.state.lock();
        s.link = Some(self.driver.link());
        s.registration = self.driver.registration();
        s.signal = self.driver.signal();
        s.call_phase = self.driver.call().map(|c| c.phase);
    }

    /// Writes what the driver transmits, then acts on its events; again
    /// while acting on them (a refused call's hangup) asks for more.
    fn outputs(&mut self) {
        loop {
            let mut busy = false;
            while let Some(bytes) = self.driver.poll_transmit() {
                busy = true;
                let failed = match self.port.as_mut() {
                    Some(p) => p.write_all(&bytes).and_then(|()| p.flush()).err(),
                    None => None,
                };
                if let Some(e) = failed {
                    self.lost(&format!("write failed: {e}"));
                }
            }
            while let Some(e) = self.driver.poll_event() {
                busy = true;
                self.event(e);
            }
            if !busy {
                return;
            }
        }
    }

    fn call_session(&self) -> Option<hotswitch_plugin_api::OwnedSession> {
        let Slot::Session(uuid) = self.iface.state.lock().call.clone() else {
            return None;
        };
        ModuleContext::current().session_locate(&uuid)
    }

    fn event(&mut self, e: Event) {
        let name = self.iface.name().to_string();
        match e {
            Event::Up => log::info!("gsmopen {name}: interface up"),
            Event::Down(why) => {
                log::warn!("gsmopen {name}: interface down: {why}");
                self.iface.state.lock().last_down = why;
                // The driver gave up on the modem: close the port and
                // open it again later.
                self.port = None;
                self.iface.audio.disconnect();
                self.next_open = Instant::now() + self.iface.cfg.reopen_interval;
            }
            Event::Incoming { number } => self.incoming(&number),
            Event::Ringing => {
                if let Some(s) = self.call_session() {
                    s.mark_ring_ready();
                }
            }
            Event::Answered => {
                if let Some(s) = self.call_session() {
                    s.mark_answered();
                }
            }
            Event::CallEnded(cause) => {
                let session = self.call_session();
                {
                    let mut st = self.iface.state.lock();
                    st.call = Slot::Free;
                    st.call_number.clear();
                }
                if let Some(s) = session {
                    log::info!(
                        "gsmopen {name}: call ended: {}",
                        cause.name().unwrap_or("?")
                    );
                    if cause == CallCause::NETWORK_OUT_OF_ORDER {
                        s.set_var("gsmopen_hangup_reason", "interface down");
                    }
                    s.hangup(cause);
                }
                self.iface.audio.wake();
            }
            Event::Dtmf(d) => {
                if let Some(s) = self.call_session() {
                    s.queue_dtmf(d, 100);
                }
            }
            Event::SmsReceived {
                from,
                text,
                timestamp,
            } => self.sms_received(&from, &text, &timestamp),
            Event::SmsSent { id, result } => {
                if result.is_ok() {
                    self.iface.state.lock().sms_out += 1;
                }
                if let Some(tx) = self.sms_waiting.remove(&id) {
                    let _ = tx.send(result);
                }
            }
        }
    }

    /// A new inbound session, routed by the interface's dialplan.
    fn incoming(&mut self, number: &str) {
        let name = self.iface.name().to_string();
        {
            let mut st = self.iface.state.lock();
            if st.call != Slot::Free {
                // An outbound call took the interface just before the RING.
                drop(st);
                log::warn!("gsmopen {name}: busy, refusing the call from '{number}'");
                self.driver.handle_request(Request::Hangup, Instant::now());
                return;
            }
            st.call = Slot::Reserved;
            st.call_number = number.into();
            st.calls_in += 1;
        }
        let ctx = ModuleContext::current();
        let s = match ctx.session_request("gsmopen", false) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("gsmopen {name}: cannot take the call from '{number}': {e}");
                self.iface.state.lock().call = Slot::Free;
                self.driver.handle_request(Request::Hangup, Instant::now());
                return;
            }
        };
        let cfg = &self.iface.cfg;
        let chan = format!(
            "gsmopen/{name}/{}",
            if number.is_empty() { "unknown" } else { number }
        );
        let profile = Profile {
            username: name.clone(),
            dialplan: cfg.dialplan.clone(),
            caller_id_name: if number.is_empty() {
                "gsmopen".into()
            } else {
                number.into()
            },
            caller_id_number: number.into(),
            ani: number.into(),
            destination_number: cfg.destination.clone(),
            source: "mod_gsmopen".into(),
            context: cfg.context.clone(),
            chan_name: chan.clone(),
            ..Profile::default()
        };
        s.set_name(&chan);
        s.set_profile(&profile);
        s.set_var("gsmopen_interface", &name);
        Leg::attach(&s, self.iface.clone());
        self.iface.bind(&s.uuid());
        self.iface.audio.flush();
        log::info!(
            "gsmopen {name}: incoming call from '{number}' to {}",
            cfg.destination
        );
        if s.set_state(ChannelState::INIT).is_err() || s.start().is_err() {
            s.hangup(CallCause::DESTINATION_OUT_OF_ORDER);
        }
    }

    fn sms_received(&mut self, from: &str, text: &str, timestamp: &str) {
        let cfg = &self.iface.cfg;
        let name = cfg.name.as_str();
        self.iface.state.lock().sms_in += 1;
        log::info!(
            "gsmopen {name}: SMS from '{from}' ({} characters)",
            text.chars().count()
        );
        let headers = [
            ("proto", "gsmopen"),
            ("login", name),
            ("from", from),
            ("from_user", from),
            ("to", name),
            ("subject", "SMS Message"),
            ("type", "text/plain"),
            ("hint", name),
            ("interface_name", name),
            ("gsmopen_sms_datetime", timestamp),
        ];
        let ctx = ModuleContext::current();
        if let Err(e) = ctx.fire_event(EVENT_MESSAGE, "", &headers, text) {
            log::warn!("gsmopen {name}: MESSAGE event: {e}");
        }
        if !cfg.sms_chat_proto.is_empty() {
            let chat = Chat {
                proto: cfg.sms_chat_proto.clone(),
                from: from.into(),
                to: cfg.sms_chat_to.clone(),
                subject: "SMS Message".into(),
                body: text.into(),
                hint: name.into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let _ = self.iface.chats.lock().send(chat);
        }
    }
}

//! The AT-command driver, sans-IO in the one shape of every protocol core
//! ([`Protocol`]): the port opening and closing, the bytes the modem sent
//! and the switch's requests go in ([`Driver::handle_opened`],
//! [`Driver::handle_closed`], [`Driver::handle_bytes`],
//! [`Driver::handle_request`], each with `now`), and time passing
//! ([`Protocol::handle_timeout`]); what to write to the serial port comes
//! out of [`Protocol::poll_transmit`], what the switch must learn
//! ([`Event`]) out of [`Protocol::poll_event`], and when to be woken out of
//! [`Protocol::poll_timeout`]. Within one step every write was asked for
//! before every event, so a shell drains transmits, then events. It never
//! reads a clock or touches a port, so whole conversations are unit-tested
//! by passing time.
//!
//! One command is in flight at a time; call control goes ahead of polling.
//! Lines that belong to no command (RING, +CLIP, +CMTI, NO CARRIER…) are
//! unsolicited result codes; a line that is neither is logged and skipped.

use codes::{cause_of, fields, line_is_final};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::CallCause;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// What the driver needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// PDU mode (`AT+CMGF=0`) rather than text mode.
    pub sms_pdu: bool,
    /// Sent before the standard initialisation.
    pub at_preinit: Vec<String>,
    /// Sent after it.
    pub at_postinit: Vec<String>,
    /// Hangs up (`ATH` or `AT+CHUP`).
    pub at_hangup: String,
    /// Answers.
    pub at_answer: String,
    /// Before and after the number in a dial command.
    pub at_dial_pre: String,
    pub at_dial_post: String,
    /// `AT+CNMI` setting for new-message indications.
    pub at_cnmi: String,
    /// How often registration and signal are polled.
    pub poll_interval: Duration,
    /// How often `AT+CLCC` is polled during a call.
    pub clcc_interval: Duration,
    /// How long a command may go unanswered.
    pub command_timeout: Duration,
    /// Unanswered commands in a row that mean the modem is gone.
    pub max_timeouts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sms_pdu: true,
            at_preinit: Vec::new(),
            at_postinit: Vec::new(),
            at_hangup: "ATH".into(),
            at_answer: "ATA".into(),
            at_dial_pre: "ATD".into(),
            at_dial_post: ";".into(),
            at_cnmi: "AT+CNMI=2,1,0,0,0".into(),
            poll_interval: Duration::from_secs(10),
            clcc_interval: Duration::from_millis(500),
            command_timeout: Duration::from_secs(5),
            max_timeouts: 2,
        }
    }
}

/// What the switch asks of the modem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Dial(String),
    Answer,
    Hangup,
    Dtmf(char),
    SendSms { id: u64, to: String, text: String },
}

/// What happened, for the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Initialisation finished: the interface can carry calls.
    Up,
    /// The modem stopped answering; the port should be closed and reopened.
    Down(String),
    /// An incoming call (caller id, possibly empty).
    Incoming { number: String },
    /// The far end of an outbound call is alerted.
    Ringing,
    /// The far end answered.
    Answered,
    /// The call ended (either direction), with the cause.
    CallEnded(CallCause),
    /// A digit from the far end.
    Dtmf(char),
    /// A complete message (all its parts).
    SmsReceived {
        from: String,
        text: String,
        timestamp: String,
    },
    /// The outcome of [`Request::SendSms`].
    SmsSent { id: u64, result: Result<(), String> },
}

/// The link to the modem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Closed,
    Initialising,
    Ready,
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Outbound, ATD sent.
    Dialing,
    /// Outbound, the far end rings.
    Alerting,
    /// Inbound, ringing here.
    Ringing,
    /// Inbound, ATA sent.
    Answering,
    Active,
}

/// The call on this modem.
#[derive(Clone, Debug)]
pub struct Call {
    pub outbound: bool,
    pub phase: Phase,
    pub number: String,
    /// Inbound: announced to the switch (after +CLIP or its wait).
    announced: bool,
    /// Inbound: when the caller id wait ends / when ringing stopped.
    clip_deadline: Instant,
    last_ring: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Init {
        last: bool,
    },
    Creg,
    Csq,
    Clcc,
    Dial,
    Answer,
    Hangup,
    Vts,
    Cmgr(u32),
    Cmgl,
    Cmgd(u32),
    Mode,
    /// `AT+CMGS=…`: waiting for the `>` prompt, then the body.
    CmgsHead {
        id: u64,
        body: String,
        last: bool,
    },
    CmgsBody {
        id: u64,
        last: bool,
    },
}

#[derive(Clone, Debug)]
struct Cmd {
    text: String,
    kind: Kind,
}

struct InFlight {
    cmd: Cmd,
    deadline: Instant,
    lines: Vec<String>,
}

/// The driver.
pub struct Driver {
    settings: Settings,
    link: Link,
    queue: VecDeque<Cmd>,
    in_flight: Option<InFlight>,
    buf: Vec<u8>,
    /// Bytes for the serial port, in order.
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    call: Option<Call>,
    registration: Option<u8>,
    signal: Option<u8>,
    timeouts: u32,
    next_poll: Option<Instant>,
    next_clcc: Option<Instant>,
    parts: HashMap<(String, u16, u8), sms::Parts>,
    /// Messages delivered whose delete is still queued: a second read of
    /// the same slot (a stale +CMTI, the start-up listing) skips them.
    deleting: HashSet<u32>,
    sms_ref: u8,
}

impl Driver {
    pub fn new(settings: Settings) -> Driver {
        Driver {
            settings,
            link: Link::Closed,
            queue: VecDeque::new(),
            in_flight: None,
            buf: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            call: None,
            registration: None,
            signal: None,
            timeouts: 0,
            next_poll: None,
            next_clcc: None,
            parts: HashMap::new(),
            deleting: HashSet::new(),
            sms_ref: 0,
        }
    }

    pub fn link(&self) -> Link {
        self.link
    }
    pub fn call(&self) -> Option<&Call> {
        self.call.as_ref()
    }
    /// `+CREG` status: 1 home, 5 roaming, 2 searching, 0/3 not registered.
    pub fn registration(&self) -> Option<u8> {
        self.registration
    }
    pub fn registered(&self) -> bool {
        matches!(self.registration, Some(1) | Some(5))
    }
    /// `+CSQ` rssi (0–31, 99 unknown).
    pub fn signal(&self) -> Option<u8> {
        self.signal
    }

    /// The port is open: initialise the modem.
    pub fn handle_opened(&mut self, now: Instant) {
        self.reset_state();
        self.link = Link::Initialising;
        let s = &self.settings;
        let mut cmds: Vec<String> = s.at_preinit.clone();
        cmds.extend(
            [
                "ATZ",
                "ATE0",
                "AT+CMEE=1",
                "AT+CLIP=1",
                if s.sms_pdu { "AT+CMGF=0" } else { "AT+CMGF=1" },
            ]
            .map(String::from),
        );
        cmds.push(s.at_cnmi.clone());
        cmds.extend(s.at_postinit.iter().cloned());
        let n = cmds.len();
        for (i, text) in cmds.into_iter().enumerate() {
            self.queue.push_back(Cmd {
                text,
                kind: Kind::Init { last: i + 1 == n },
            });
        }
        self.pump(now);
    }

    /// The port closed (or the shell gave up on it).
    pub fn handle_closed(&mut self, reason: &str, _now: Instant) {
        if self.link == Link::Closed {
            return;
        }
        log::warn!("modem down: {reason}");
        self.fail_all(reason);
        self.reset_state();
        self.event(Event::Down(reason.into()));
    }

    fn reset_state(&mut self) {
        self.link = Link::Closed;
        self.queue.clear();
        self.in_flight = None;
        self.buf.clear();
        self.call = None;
        self.registration = None;
        self.signal = None;
        self.timeouts = 0;
        self.next_poll = None;
        self.next_clcc = None;
        // Parts not yet deleted stay on the SIM and are read again.
        self.parts.clear();
        self.deleting.clear();
    }

    /// Ends the call and fails pending messages.
    fn fail_all(&mut self, reason: &str) {
        if self.call.take().is_some() {
            self.event(Event::CallEnded(CallCause::NETWORK_OUT_OF_ORDER));
        }
        let mut ids: Vec<u64> = self
            .queue
            .iter()
            .chain(self.in_flight.as_ref().map(|f| &f.cmd))
            .filter_map(|c| match c.kind {
                Kind::CmgsHead { id, .. } | Kind::CmgsBody { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        ids.dedup();
        for id in ids {
            self.event(Event::SmsSent {
                id,
                result: Err(format!("modem down: {reason}")),
            });
        }
    }

    fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    /// A request from the switch.
    pub fn handle_request(&mut self, r: Request, now: Instant) {
        match r {
            Request::Dial(number) => {
                if self.link != Link::Ready || self.call.is_some() {
                    self.event(Event::CallEnded(CallCause::NORMAL_CIRCUIT_CONGESTION));
                    return;
                }
                self.call = Some(Call {
                    outbound: true,
                    phase: Phase::Dialing,
                    number: number.clone(),
                    announced: true,
                    clip_deadline: now,
                    last_ring: now,
                });
                let text = format!(
                    "{}{}{}",
                    self.settings.at_dial_pre, number, self.settings.at_dial_post
                );
                self.urgent(Cmd {
                    text,
                    kind: Kind::Dial,
                });
                self.next_clcc = Some(now + self.settings.clcc_interval);
            }
            Request::Answer => {
                if let Some(c) = self.call.as_mut().filter(|c| c.phase == Phase::Ringing) {
                    c.phase = Phase::Answering;
                    let text = self.settings.at_answer.clone();
                    self.urgent(Cmd {
                        text,
                        kind: Kind::Answer,
                    });
                }
            }
            Request::Hangup => {
                if self.call.take().is_none() {
                    return;
                }
                let before = self.queue.len();
                self.queue.retain(|c| c.kind != Kind::Dial);
                let dial_in_flight = self
                    .in_flight
                    .as_ref()
                    .is_some_and(|f| f.cmd.kind == Kind::Dial);
                if before == self.queue.len() || dial_in_flight {
                    let text = self.settings.at_hangup.clone();
                    self.urgent(Cmd {
                        text,
                        kind: Kind::Hangup,
                    });
                }
            }
            Request::Dtmf(d) => {
                if self.call.as_ref().is_some_and(|c| c.phase == Phase::Active) {
                    self.queue.push_back(Cmd {
                        text: format!("AT+VTS={d}"),
                        kind: Kind::Vts,
                    });
                }
            }
            Request::SendSms { id, to, text } => {
                if self.link != Link::Ready {
                    self.event(Event::SmsSent {
                        id,
                        result: Err("interface not ready".into()),
                    });
                    return;
                }
                self.queue_sms(id, &to, &text);
            }
        }
        self.pump(now);
    }

    /// Call control goes before queued polls and messages.
    fn urgent(&mut self, cmd: Cmd) {
        self.queue.push_front(cmd);
    }

    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.link == Link::Closed {
            return;
        }
        let Some(cmd) = self.queue.pop_front() else {
            return;
        };
        let wait = match cmd.kind {
            Kind::Dial | Kind::Answer => self.settings.command_timeout * 6,
            _ => self.settings.command_timeout,
        };
        log::debug!("> {}", cmd.text);
        self.transmits
            .push_back(format!("{}\r", cmd.text).into_bytes());
        self.in_flight = Some(InFlight {
            cmd,
            deadline: now + wait,
            lines: Vec::new(),
        });
    }

    /// Runs what is due at `now` (the body of [`Protocol::handle_timeout`]).
    fn run_timers(&mut self, now: Instant) {
        if let Some(f) = &self.in_flight {
            if now >= f.deadline {
                let f = self.in_flight.take().expect("checked");
                self.timeouts += 1;
                log::warn!("no answer to '{}' ({} in a row)", f.cmd.text, self.timeouts);
                if self.timeouts >= self.settings.max_timeouts {
                    self.handle_closed("the modem stopped answering", now);
                    return;
                }
                self.finish(now, f.cmd, Vec::new(), "ERROR");
            }
        }
        if self.link == Link::Ready && self.next_poll.is_some_and(|t| now >= t) {
            self.next_poll = Some(now + self.settings.poll_interval);
            self.poll_status();
        }
        if self.call.is_some() && self.next_clcc.is_some_and(|t| now >= t) {
            self.next_clcc = Some(now + self.settings.clcc_interval);
            let already = self.queue.iter().any(|c| c.kind == Kind::Clcc)
                || self
                    .in_flight
                    .as_ref()
                    .is_some_and(|f| f.cmd.kind == Kind::Clcc);
            if !already {
                self.queue.push_back(Cmd {
                    text: "AT+CLCC".into(),
                    kind: Kind::Clcc,
                });
            }
        }
        if let Some(c) = self.call.as_mut() {
            if c.phase == Phase::Ringing && !c.announced && now >= c.clip_deadline {
                c.announced = true;
                let number = c.number.clone();
                self.event(Event::Incoming { number });
            } else if c.phase == Phase::Ringing && c.announced && now >= c.last_ring + RING_GONE {
                log::info!("the caller stopped ringing");
                self.call = None;
                self.event(Event::CallEnded(CallCause::ORIGINATOR_CANCEL));
            }
        }
        self.pump(now);
    }

    fn poll_status(&mut self) {
        for (text, kind) in [("AT+CREG?", Kind::Creg), ("AT+CSQ", Kind::Csq)] {
            if !self.queue.iter().any(|c| c.kind == kind) {
                self.queue.push_back(Cmd {
                    text: text.into(),
                    kind,
                });
            }
        }
    }

    /// Bytes from the modem.
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant) {
        self.buf.extend_from_slice(data);
        loop {
            // The SMS prompt comes without a line end.
            let awaiting_prompt = matches!(
                self.in_flight.as_ref().map(|f| &f.cmd.kind),
                Some(Kind::CmgsHead { .. })
            );
            let start = self
                .buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if awaiting_prompt && self.buf.first() == Some(&b'>') {
                let n = if self.buf.get(1) == Some(&b' ') { 2 } else { 1 };
                self.buf.drain(..n);
                self.prompt(now);
                continue;
            }
            let Some(end) = self.buf.iter().position(|b| *b == b'\r' || *b == b'\n') else {
                break;
            };
            let raw: Vec<u8> = self.buf.drain(..end).collect();
            let line = String::from_utf8_lossy(&raw).trim().to_string();
            if !line.is_empty() {
                self.line(now, line);
            }
        }
        if self.buf.len() > 4096 {
            log::warn!("discarding {} bytes without a line end", self.buf.len());
            self.buf.clear();
        }
        self.pump(now);
    }

    fn prompt(&mut self, now: Instant) {
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        if let Kind::CmgsHead { id, body, last } = f.cmd.kind.clone() {
            self.transmits.push_back(body.into_bytes());
            f.cmd.kind = Kind::CmgsBody { id, last };
            // A message may take a while to go out.
            f.deadline = now + self.settings.command_timeout * 6;
        }
    }

    fn line(&mut self, now: Instant, line: String) {
        log::debug!("< {line}");
        if self.in_flight.is_some() {
            self.timeouts = 0;
            let kind = self.in_flight.as_ref().map(|f| f.cmd.kind.clone());
            let call_result = matches!(kind, Some(Kind::Dial) | Some(Kind::Answer));
            let is_call_end = matches!(line.as_str(), "NO CARRIER" | "BUSY" | "NO ANSWER");
            if line_is_final(&line) && (call_result || !is_call_end) {
                let f = self.in_flight.take().expect("checked");
                self.finish(now, f.cmd, f.lines, &line);
                return;
            }
            if !self.unsolicited(now, &line) {
                if let Some(f) = self.in_flight.as_mut() {
                    f.lines.push(line);
                }
            }
            return;
        }
        if !self.unsolicited(now, &line) {
            log::warn!("unexpected line from the modem, skipped: {line:?}");
        }
    }

    /// Handles an unsolicited result code; false if `line` is not one.
    fn unsolicited(&mut self, now: Instant, line: &str) -> bool {
        let kind = self.in_flight.as_ref().map(|f| f.cmd.kind.clone());
        if line == "RING" || line.starts_with("+CRING") {
            match self.call.as_mut() {
                Some(c) if !c.outbound => c.last_ring = now,
                Some(_) => {}
                None if self.link == Link::Ready => {
                    self.call = Some(Call {
                        outbound: false,
                        phase: Phase::Ringing,
                        number: String::new(),
                        announced: false,
                        clip_deadline: now + CLIP_WAIT,
                        last_ring: now,
                    });
                    self.next_clcc = Some(now + self.settings.clcc_interval);
                }
                None => log::warn!("RING before the modem is ready, ignored"),
            }
            return true;
        }
        if line.starts_with("+CLIP:") {
            let number = fields(line, "+CLIP:")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default();
            if let Some(c) = self.call.as_mut().filter(|c| !c.outbound) {
                c.last_ring = now;
                if !c.announced {
                    c.announced = true;
                    c.number = number.clone();
                    self.event(Event::Incoming { number });
                }
            }
            return true;
        }
        if matches!(line, "NO CARRIER" | "BUSY" | "NO ANSWER") || line.starts_with("^CEND") {
            if let Some(c) = self.call.take() {
                let cause = if c.phase == Phase::Active {
                    CallCause::NORMAL_CLEARING
                } else if !c.outbound {
                    CallCause::ORIGINATOR_CANCEL
                } else {
                    cause_of(line)
                };
                self.event(Event::CallEnded(cause));
            }
            return true;
        }
        if line == "CONNECT" || line.starts_with("^CONN") {
            self.answered();
            return true;
        }
        if let Some(rest) = line
            .strip_prefix("+CMTI:")
            .or_else(|| line.strip_prefix("+CDSI:"))
        {
            match rest.rsplit(',').next().and_then(|i| i.trim().parse().ok()) {
                Some(index) => self.queue.push_back(Cmd {
                    text: format!("AT+CMGR={index}"),
                    kind: Kind::Cmgr(index),
                }),
                None => log::warn!("bad new-message indication, skipped: {line:?}"),
            }
            return true;
        }
        if let Some(rest) = line
            .strip_prefix("+DTMF:")
            .or_else(|| line.strip_prefix("^DTMF:"))
        {
            if let Some(d) = rest.trim().chars().next() {
                self.event(Event::Dtmf(d));
            }
            return true;
        }
        if line.starts_with("+CREG:") && kind != Some(Kind::Creg) {
            let f = fields(line, "+CREG:");
            self.registration = f.first().and_then(|s| s.parse().ok());
            return true;
        }
        false
    }

    fn answered(&mut self) {
        if let Some(c) = self.call.as_mut() {
            if c.outbound && c.phase != Phase::Active {
                c.phase = Phase::Active;
                self.event(Event::Answered);
            }
        }
    }

    /// A command ended with `result` after `lines`.
    fn finish(&mut self, now: Instant, cmd: Cmd, lines: Vec<String>, result: &str) {
        let ok = result == "OK";
        match cmd.kind {
            Kind::Init { last } => {
                if !ok {
                    log::warn!("init command '{}' failed: {result}", cmd.text);
                }
                if last {
                    self.link = Link::Ready;
                    log::info!("modem initialised");
                    self.event(Event::Up);
                    self.poll_status();
                    self.queue.push_back(Cmd {
                        text: if self.settings.sms_pdu {
                            "AT+CMGL=4".into()
                        } else {
                            "AT+CMGL=\"ALL\"".into()
                        },
                        kind: Kind::Cmgl,
                    });
                    self.next_poll = Some(now + self.settings.poll_interval);
                }
            }
            Kind::Creg => {
                if let Some(l) = lines.iter().find(|l| l.starts_with("+CREG:")) {
                    let f = fields(l, "+CREG:");
                    // `+CREG: <n>,<stat>` (or just `<stat>`)
                    let stat = if f.len() >= 2 { f[1] } else { f[0] };
                    self.registration = stat.parse().ok();
                }
            }
            Kind::Csq => {
                if let Some(l) = lines.iter().find(|l| l.starts_with("+CSQ:")) {
                    self.signal = fields(l, "+CSQ:").first().and_then(|s| s.parse().ok());
                }
            }
            Kind::Clcc => self.clcc(&lines),
            Kind::Dial => {
                if ok {
                    // Voice calls: OK at once on most modems; progress comes
                    // from +CLCC and result codes.
                } else if result == "CONNECT" {
                    self.answered();
                } else if self.call.take().is_some() {
                    self.event(Event::CallEnded(cause_of(result)));
                }
            }
            Kind::Answer => {
                if ok {
                    if let Some(c) = self.call.as_mut() {
                        c.phase = Phase::Active;
                    }
                } else if self.call.take().is_some() {
                    let cause = if result == "NO CARRIER" {
                        CallCause::ORIGINATOR_CANCEL
                    } else {
                        CallCause::NORMAL_TEMPORARY_FAILURE
                    };
                    self.event(Event::CallEnded(cause));
                }
            }
            Kind::Cmgd(index) => {
                self.deleting.remove(&index);
                if !ok {
                    log::warn!("'{}' failed: {result}", cmd.text);
                }
            }
            Kind::Hangup | Kind::Vts | Kind::Mode => {
                if !ok {
                    log::warn!("'{}' failed: {result}", cmd.text);
                }
            }
            Kind::Cmgr(index) => {
                if ok {
                    self.read_messages(&lines, Some(index));
                } else {
                    log::warn!("cannot read message {index}: {result}");
                }
            }
            Kind::Cmgl => {
                if ok {
                    self.read_messages(&lines, None);
                }
            }
            Kind::CmgsHead { id, .. } => {
                self.sms_failed(id, format!("no prompt: {result}"));
            }
            Kind::CmgsBody { id, last } => {
                if !ok {
                    self.sms_failed(id, result.to_string());
                } else if last {
                    self.event(Event::SmsSent { id, result: Ok(()) });
                }
            }
        }
    }

    fn clcc(&mut self, lines: &[String]) {
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let calls: Vec<Vec<&str>> = lines
            .iter()
            .filter(|l| l.starts_with("+CLCC:"))
            .map(|l| fields(l, "+CLCC:"))
            .collect();
        // +CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>]
        let voice = calls
            .iter()
            .find(|f| f.get(3).copied() == Some("0"))
            .or(calls.first());
        match voice.and_then(|f| f.get(2).copied()) {
            Some("0") if call.outbound => self.answered(),
            Some("3") if call.outbound && call.phase == Phase::Dialing => {
                if let Some(c) = self.call.as_mut() {
                    c.phase = Phase::Alerting;
                }
                self.event(Event::Ringing);
            }
            None if call.phase == Phase::Active => {
                // The call is gone without a result code.
                self.call = None;
                self.event(Event::CallEnded(CallCause::NORMAL_CLEARING));
            }
            _ => {}
        }
    }
}

impl Protocol for Driver {
    /// Bytes for the serial port.
    type Transmit = Vec<u8>;
    type Event = Event;

    fn handle_timeout(&mut self, now: Instant) {
        self.run_timers(now);
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        t.extend(self.in_flight.as_ref().map(|f| f.deadline));
        t.extend(self.next_poll);
        if self.call.is_some() {
            t.extend(self.next_clcc);
        }
        if let Some(c) = &self.call {
            if c.phase == Phase::Ringing {
                t.push(if c.announced {
                    c.last_ring + RING_GONE
                } else {
                    c.clip_deadline
                });
            }
        }
        t.into_iter().min()
    }
}

/// How long to wait for +CLIP after RING.
const CLIP_WAIT: Duration = Duration::from_millis(600);
/// No RING for this long: the caller gave up.
const RING_GONE: Duration = Duration::from_secs(10);

mod codes;
mod sms;
#[cfg(test)]
mod tests;

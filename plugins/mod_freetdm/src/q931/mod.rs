//! ISDN PRI basic call control (Q.931), sans-IO: [`message`] turns
//! messages into bytes and back; [`Link`] is the call-control state
//! machine of one D channel, in the one shape of every protocol core
//! ([`Protocol`]). Inputs are `handle_*(…, now)`: a frame received
//! ([`Link::handle_frame`]) and the owner's commands ([`Link::handle_setup`],
//! [`Link::handle_connect`], [`Link::handle_hangup`]…); time passing is
//! [`Protocol::handle_timeout`] at [`Protocol::poll_timeout`]. Outputs are
//! pulled: [`Protocol::poll_transmit`] gives the layer-3 frames for the D
//! channel, [`Protocol::poll_event`] the call [`Event`]s for the owner.
//! The same machine serves the user side (the module on a CPE trunk) and
//! the network side (the module as a PBX towards phones, or the line
//! simulator playing the exchange).
//!
//! Layer 2 (Q.921 LAPD) is not implemented: the virtual driver carries
//! layer-3 frames as datagrams, which deliver in order and whole.

pub mod message;

pub use message::{DecodeError, Message, MsgType};

use hotswitch_plugin_api::sansio::Protocol;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which side of the interface this link plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The customer's equipment (TE).
    User,
    /// The exchange (NT).
    Network,
}

/// A call on the link (not the wire call reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

/// Q.931 call states (user-side numbering; the network's are the same
/// numbers with N).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// U1: SETUP sent.
    CallInitiated,
    /// U3: CALL PROCEEDING received.
    OutgoingProceeding,
    /// U4: ALERTING received.
    CallDelivered,
    /// U6: SETUP received.
    CallPresent,
    /// U7: ALERTING sent.
    CallReceived,
    /// U8: CONNECT sent.
    ConnectRequest,
    /// U9: CALL PROCEEDING sent.
    IncomingProceeding,
    /// U10: active.
    Active,
    /// U11: DISCONNECT sent.
    DisconnectRequest,
    /// U19: RELEASE sent.
    ReleaseRequest,
}

impl CallState {
    /// `U10`-style number for the side `role`.
    pub fn code(self, role: Role) -> String {
        let n = match self {
            CallState::CallInitiated => 1,
            CallState::OutgoingProceeding => 3,
            CallState::CallDelivered => 4,
            CallState::CallPresent => 6,
            CallState::CallReceived => 7,
            CallState::ConnectRequest => 8,
            CallState::IncomingProceeding => 9,
            CallState::Active => 10,
            CallState::DisconnectRequest => 11,
            CallState::ReleaseRequest => 19,
        };
        format!("{}{n}", if role == Role::User { 'U' } else { 'N' })
    }
}

/// What the link tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A SETUP arrived.
    Incoming {
        call: CallId,
        called: String,
        calling: String,
        channel: Option<u8>,
    },
    /// Our SETUP is being handled (CALL PROCEEDING), on `channel`.
    Proceeding { call: CallId, channel: Option<u8> },
    /// The far end rings.
    Alerting { call: CallId },
    /// In-band progress (early media).
    Progress { call: CallId },
    /// The far end answered.
    Connected { call: CallId },
    /// The far end (or a timer) cleared the call, with this Q.850 cause.
    Disconnected { call: CallId, cause: u8 },
    /// The call is gone; its B channel is free again.
    Released { call: CallId, channel: Option<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// No answer to SETUP.
    T303,
    /// No RELEASE after our DISCONNECT.
    T305,
    /// No RELEASE COMPLETE after our RELEASE.
    T308,
    /// No CONNECT ACKNOWLEDGE after our CONNECT.
    T313,
}

impl Timer {
    fn duration(self) -> Duration {
        match self {
            Timer::T303 | Timer::T308 | Timer::T313 => Duration::from_secs(4),
            Timer::T305 => Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Call {
    id: CallId,
    cr: u16,
    /// We allocated the call reference (we sent the SETUP).
    ours: bool,
    state: CallState,
    channel: Option<u8>,
    timer: Option<(Timer, Instant)>,
    /// The owner already knows the call is clearing.
    clearing_known: bool,
    called: String,
    calling: String,
}

/// A summary of one call, for `ftdm dump`.
#[derive(Clone, Debug)]
pub struct CallInfo {
    pub id: CallId,
    pub cr: u16,
    pub state: CallState,
    pub channel: Option<u8>,
    pub called: String,
    pub calling: String,
    pub outgoing: bool,
    pub role: Role,
}

impl std::fmt::Display for CallInfo {
    /// `cr 1 out U10 chan 3 5551234 -> 1000`, as `ftdm dump` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cr {} {} {} chan {} {} -> {}",
            self.cr,
            if self.outgoing { "out" } else { "in" },
            self.state.code(self.role),
            self.channel
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            self.calling,
            self.called
        )
    }
}

/// Call control on one D channel.
#[derive(Debug)]
pub struct Link {
    role: Role,
    ulaw: bool,
    calls: Vec<Call>,
    next_cr: u16,
    next_id: u32,
    /// Layer-3 frames for the D channel, in order.
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

const NORMAL_CLEARING: u8 = 16;
const INVALID_CALL_REFERENCE: u8 = 81;
const RECOVERY_ON_TIMER_EXPIRE: u8 = 102;

impl Link {
    /// A link with no calls; `ulaw` is the law SETUP's bearer announces.
    pub fn new(role: Role, ulaw: bool) -> Link {
        Link {
            role,
            ulaw,
            calls: Vec::new(),
            next_cr: 1,
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Which side this link plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The calls in progress.
    pub fn calls(&self) -> Vec<CallInfo> {
        self.calls
            .iter()
            .map(|c| CallInfo {
                id: c.id,
                cr: c.cr,
                state: c.state,
                channel: c.channel,
                called: c.called.clone(),
                calling: c.calling.clone(),
                outgoing: c.ours,
                role: self.role,
            })
            .collect()
    }

    /// A call's state, `None` once it is gone.
    pub fn state(&self, call: CallId) -> Option<CallState> {
        self.find(call).map(|c| self.calls[c].state)
    }

    fn find(&self, call: CallId) -> Option<usize> {
        self.calls.iter().position(|c| c.id == call)
    }

    fn send(&mut self, at: usize, mt: MsgType, f: impl FnOnce(&mut Message)) {
        let c = &self.calls[at];
        let mut m = Message::new(mt, c.cr, !c.ours);
        f(&mut m);
        self.transmits.push_back(m.encode());
    }

    fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    fn set_timer(&mut self, at: usize, now: Instant, t: Option<Timer>) {
        self.calls[at].timer = t.map(|t| (t, now + t.duration()));
    }

    /// Tells the owner (once) that the call is clearing.
    fn disconnected(&mut self, at: usize, cause: u8) {
        if !self.calls[at].clearing_known {
            self.calls[at].clearing_known = true;
            let call = self.calls[at].id;
            self.event(Event::Disconnected { call, cause });
        }
    }

    fn remove(&mut self, at: usize, cause: u8) {
        self.disconnected(at, cause);
        let c = self.calls.remove(at);
        self.event(Event::Released {
            call: c.id,
            channel: c.channel,
        });
    }

    /// Places a call: SETUP with the called and calling numbers on
    /// `channel` (the network side must name one).
    pub fn handle_setup(
        &mut self,
        called: &str,
        calling: &str,
        channel: Option<u8>,
        now: Instant,
    ) -> CallId {
        let mut cr = self.next_cr;
        while self.calls.iter().any(|c| c.ours && c.cr == cr) {
            cr = cr % 0x7fff + 1;
        }
        self.next_cr = cr % 0x7fff + 1;
        let id = CallId(self.next_id);
        self.next_id += 1;
        self.calls.push(Call {
            id,
            cr,
            ours: true,
            state: CallState::CallInitiated,
            channel,
            timer: None,
            clearing_known: false,
            called: called.to_string(),
            calling: calling.to_string(),
        });
        let at = self.calls.len() - 1;
        let ulaw = self.ulaw;
        self.send(at, MsgType::Setup, |m| {
            m.bearer_ulaw = Some(ulaw);
            m.channel = channel;
            m.called = Some(called.to_string());
            m.calling = (!calling.is_empty()).then(|| calling.to_string());
        });
        self.set_timer(at, now, Some(Timer::T303));
        id
    }

    fn answering(&mut self, call: CallId, from: &[CallState]) -> Option<usize> {
        self.find(call)
            .filter(|&at| !self.calls[at].ours && from.contains(&self.calls[at].state))
    }

    /// Accepts an incoming call on `channel`: CALL PROCEEDING.
    pub fn handle_proceeding(&mut self, call: CallId, channel: Option<u8>, _now: Instant) {
        if let Some(at) = self.answering(call, &[CallState::CallPresent]) {
            self.calls[at].channel = channel.or(self.calls[at].channel);
            let ch = self.calls[at].channel;
            self.calls[at].state = CallState::IncomingProceeding;
            self.send(at, MsgType::CallProceeding, |m| m.channel = ch);
        }
    }

    /// The called party rings: ALERTING.
    pub fn handle_alerting(&mut self, call: CallId, _now: Instant) {
        let from = [CallState::CallPresent, CallState::IncomingProceeding];
        if let Some(at) = self.answering(call, &from) {
            let ch = self.calls[at].channel;
            self.calls[at].state = CallState::CallReceived;
            self.send(at, MsgType::Alerting, |m| m.channel = ch);
        }
    }

    /// In-band information is available: PROGRESS.
    pub fn handle_progress(&mut self, call: CallId, _now: Instant) {
        let from = [
            CallState::CallPresent,
            CallState::IncomingProceeding,
            CallState::CallReceived,
        ];
        if let Some(at) = self.answering(call, &from) {
            self.send(at, MsgType::Progress, |m| m.progress = Some(8));
        }
    }

    /// Answers: CONNECT.
    pub fn handle_connect(&mut self, call: CallId, now: Instant) {
        let from = [
            CallState::CallPresent,
            CallState::IncomingProceeding,
            CallState::CallReceived,
        ];
        if let Some(at) = self.answering(call, &from) {
            let ch = self.calls[at].channel;
            self.calls[at].state = CallState::ConnectRequest;
            self.send(at, MsgType::Connect, |m| m.channel = ch);
            self.set_timer(at, now, Some(Timer::T313));
        }
    }

    /// Clears the call with `cause`: RELEASE COMPLETE for a SETUP not yet
    /// answered at all, DISCONNECT otherwise.
    pub fn handle_hangup(&mut self, call: CallId, cause: u8, now: Instant) {
        let Some(at) = self.find(call) else { return };
        self.calls[at].clearing_known = true;
        match self.calls[at].state {
            CallState::CallPresent => {
                self.send(at, MsgType::ReleaseComplete, |m| m.cause = Some(cause));
                self.remove(at, cause);
            }
            CallState::DisconnectRequest | CallState::ReleaseRequest => {}
            _ => {
                self.send(at, MsgType::Disconnect, |m| m.cause = Some(cause));
                self.calls[at].state = CallState::DisconnectRequest;
                self.set_timer(at, now, Some(Timer::T305));
            }
        }
    }

    /// A frame from the D channel.
    pub fn handle_frame(&mut self, bytes: &[u8], now: Instant) -> Result<(), DecodeError> {
        let m = Message::decode(bytes)?;
        // The flag is set by the side that did not allocate the reference:
        // set means the reference is ours.
        let ours = m.cr_flag;
        let Some(at) = self
            .calls
            .iter()
            .position(|c| c.cr == m.cr && c.ours == ours)
        else {
            self.unknown_call(&m);
            return Ok(());
        };
        let state = self.calls[at].state;
        let outgoing_early = [
            CallState::CallInitiated,
            CallState::OutgoingProceeding,
            CallState::CallDelivered,
        ];
        let call = self.calls[at].id;
        match m.mt {
            MsgType::CallProceeding if state == CallState::CallInitiated => {
                self.calls[at].channel = m.channel.or(self.calls[at].channel);
                self.calls[at].state = CallState::OutgoingProceeding;
                self.set_timer(at, now, None);
                let channel = self.calls[at].channel;
                self.event(Event::Proceeding { call, channel });
            }
            MsgType::Alerting if outgoing_early[..2].contains(&state) => {
                self.calls[at].channel = m.channel.or(self.calls[at].channel);
                self.calls[at].state = CallState::CallDelivered;
                self.set_timer(at, now, None);
                self.event(Event::Alerting { call });
            }
            MsgType::Progress if outgoing_early.contains(&state) => {
                self.set_timer(at, now, None);
                self.event(Event::Progress { call });
            }
            MsgType::Connect if outgoing_early.contains(&state) => {
                self.calls[at].channel = m.channel.or(self.calls[at].channel);
                self.calls[at].state = CallState::Active;
                self.set_timer(at, now, None);
                self.send(at, MsgType::ConnectAck, |_| {});
                self.event(Event::Connected { call });
            }
            MsgType::ConnectAck if state == CallState::ConnectRequest => {
                self.calls[at].state = CallState::Active;
                self.set_timer(at, now, None);
            }
            MsgType::Disconnect if state != CallState::ReleaseRequest => {
                let cause = m.cause.unwrap_or(NORMAL_CLEARING);
                self.disconnected(at, cause);
                self.send(at, MsgType::Release, |_| {});
                self.calls[at].state = CallState::ReleaseRequest;
                self.set_timer(at, now, Some(Timer::T308));
            }
            MsgType::Release => {
                self.send(at, MsgType::ReleaseComplete, |_| {});
                self.remove(at, m.cause.unwrap_or(NORMAL_CLEARING));
            }
            MsgType::ReleaseComplete => self.remove(at, m.cause.unwrap_or(NORMAL_CLEARING)),
            _ => {}
        }
        Ok(())
    }

    fn unknown_call(&mut self, m: &Message) {
        match m.mt {
            MsgType::Setup if !m.cr_flag => {
                let id = CallId(self.next_id);
                self.next_id += 1;
                self.calls.push(Call {
                    id,
                    cr: m.cr,
                    ours: false,
                    state: CallState::CallPresent,
                    channel: m.channel,
                    timer: None,
                    clearing_known: false,
                    called: m.called.clone().unwrap_or_default(),
                    calling: m.calling.clone().unwrap_or_default(),
                });
                self.event(Event::Incoming {
                    call: id,
                    called: m.called.clone().unwrap_or_default(),
                    calling: m.calling.clone().unwrap_or_default(),
                    channel: m.channel,
                });
            }
            MsgType::ReleaseComplete | MsgType::Setup => {}
            _ => {
                let mut r = Message::new(MsgType::ReleaseComplete, m.cr, !m.cr_flag);
                r.cause = Some(INVALID_CALL_REFERENCE);
                self.transmits.push_back(r.encode());
            }
        }
    }
}

impl Protocol for Link {
    /// A layer-3 frame for the D channel.
    type Transmit = Vec<u8>;
    type Event = Event;

    /// Runs the timers that are due at `now`.
    fn handle_timeout(&mut self, now: Instant) {
        while let Some(at) = self
            .calls
            .iter()
            .position(|c| c.timer.is_some_and(|(_, when)| when <= now))
        {
            let (timer, _) = self.calls[at].timer.take().expect("due timer");
            match timer {
                Timer::T303 => {
                    let cause = RECOVERY_ON_TIMER_EXPIRE;
                    self.send(at, MsgType::ReleaseComplete, |m| m.cause = Some(cause));
                    self.remove(at, cause);
                }
                Timer::T313 => {
                    let cause = RECOVERY_ON_TIMER_EXPIRE;
                    self.disconnected(at, cause);
                    self.send(at, MsgType::Disconnect, |m| m.cause = Some(cause));
                    self.calls[at].state = CallState::DisconnectRequest;
                    self.set_timer(at, now, Some(Timer::T305));
                }
                Timer::T305 => {
                    self.send(at, MsgType::Release, |m| m.cause = Some(NORMAL_CLEARING));
                    self.calls[at].state = CallState::ReleaseRequest;
                    self.set_timer(at, now, Some(Timer::T308));
                }
                Timer::T308 => self.remove(at, RECOVERY_ON_TIMER_EXPIRE),
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.calls.iter().filter_map(|c| c.timer.map(|t| t.1)).min()
    }
}

#[cfg(test)]
mod tests;

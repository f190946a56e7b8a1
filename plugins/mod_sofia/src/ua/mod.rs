//! The transaction user: dialogs and calls, the registrar and digest
//! challenges, gateways, and what they do to sessions. Runs on the SIP
//! thread only (no locks around it); sessions talk to it through
//! [`Input`]s, and it reaches them through the host's session services.
//!
//! [`Stack`] is a sans-IO core in the shape of
//! [`hotswitch_plugin_api::sansio::Protocol`], driven by the shell
//! ([`crate::shell`]), which reads the clock once per wake-up: the inputs
//! are [`Stack::handle_bytes`] (a message from the network),
//! [`Stack::handle_input`] (a session's or the API's command),
//! [`Stack::handle_transport_error`], [`Stack::handle_resolved`] (the
//! answer to a name it asked for), [`Stack::handle_wall_clock`] and
//! [`Protocol::handle_timeout`]; the outputs are [`Protocol::poll_transmit`]
//! (bytes for a socket), [`Protocol::poll_event`] (an [`Event`]: socket
//! work, a name to resolve) and [`Protocol::poll_timeout`]. It never
//! blocks on DNS: names go through `dns`.
//!
//! - `inbound`: calls we answer (INVITE, re-INVITE, ACK, BYE, CANCEL,
//!   INFO, MESSAGE) and the responses the core asks for;
//! - `outbound`: calls we place and in-dialog requests we send;
//! - `register`: digest challenges, the registrar, gateways;
//! - `dial`: the dial string of an outbound leg;
//! - `checks`: RFC 3261 §8.2's checks every request passes first;
//! - `recover`: `track-calls` snapshots and `sofia recover`'s legs;
//! - `dns`: names resolved by the shell, and what waits for them;
//! - `keepalive`: NAT keep-alive OPTIONS.

use crate::causes::{cause_to_sip, sip_to_cause};
use crate::config::{Config, Gateway, ProfileConfig};
use crate::leg::{ApiRequest, ChatMessage, Input, Leg, Outbound};
#[cfg(test)]
use crate::registrar::now_secs;
use crate::registrar::{Registrar, Registration};
use crate::sdp::{self, Direction, Local};
use crate::sip::digest::{self, Algorithm, Credentials};
use crate::sip::headers::{NameAddr, Uri, Via};
use crate::sip::message::{error_response, Message, ParseError};
use crate::sip::text::{escape_str, log_lines};
use crate::sip::transaction::{ClientKey, Proto, ServerKey, Target, Transactions, TxEvent};
use dns::{Dns, Lookup, Waiting};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{CallCause, ModuleContext, OwnedSession, Profile};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;

mod checks;
mod dial;
mod dns;
mod inbound;
mod keepalive;
mod outbound;
mod recover;
mod register;

pub use dial::{dial_target, DialTarget};
pub use register::{core_table_add, core_table_del};

use checks::ALLOW;
/// Issued nonces stay valid this long.
const NONCE_LIFE: Duration = Duration::from_secs(300);

/// Event ids (FreeSWITCH's numbering) this module fires.
const EV_CUSTOM: u32 = hotswitch_plugin_api::EventId::CUSTOM.id();

/// A gateway as dialers see it: its profile, settings and state.
pub type GatewayEntry = (usize, Gateway, &'static str);
/// The gateways' states, shared with dialers on session threads.
pub type GatewayView = Arc<Mutex<Vec<GatewayEntry>>>;

/// What the stack asks of its shell besides sending bytes
/// ([`Protocol::poll_event`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Socket work: a profile's sockets started or stopped (`sofia profile
    /// <name> start|stop|restart`).
    Profile(crate::api::ShellAction),
    /// Resolve this `host:port` off the SIP thread and answer with
    /// [`Stack::handle_resolved`].
    Resolve(String),
}

/// A profile at run time.
pub struct ProfileRt {
    pub cfg: ProfileConfig,
    /// The address its sockets are bound to.
    pub addr: SocketAddr,
    pub running: bool,
    /// Calls and registrations it served.
    pub calls_in: u64,
    pub calls_out: u64,
    pub failed_in: u64,
    /// When its NAT keep-alives are next due (`nat-options-ping`).
    next_nat_ping: Option<Instant>,
}

impl ProfileRt {
    fn sdp_ip(&self) -> IpAddr {
        self.cfg.ext_rtp_ip.unwrap_or(self.cfg.rtp_ip)
    }

    fn host_port(&self) -> String {
        format!(
            "{}:{}",
            self.cfg.ext_rtp_ip.unwrap_or(self.cfg.sip_ip),
            self.cfg.sip_port
        )
    }

    /// Our address in a Via or Contact for `proto`: TLS has its own port.
    pub(super) fn host_port_for(&self, proto: Proto) -> String {
        let port = match proto {
            Proto::Tls => self.cfg.tls.port,
            Proto::Ws => self.cfg.ws_binding.map_or(self.cfg.sip_port, |a| a.port()),
            Proto::Wss => self.cfg.wss_binding.map_or(self.cfg.sip_port, |a| a.port()),
            _ => return self.host_port(),
        };
        format!(
            "{}:{}",
            self.cfg.ext_rtp_ip.unwrap_or(self.cfg.sip_ip),
            port
        )
    }

    /// Our Contact URI.
    pub fn contact(&self, proto: Proto) -> String {
        match proto {
            Proto::Udp => format!("<sip:mod_sofia@{}>", self.host_port()),
            Proto::Tcp => format!("<sip:mod_sofia@{};transport=tcp>", self.host_port()),
            Proto::Tls | Proto::Ws | Proto::Wss => format!(
                "<sip:mod_sofia@{};transport={}>",
                self.host_port_for(proto),
                proto.as_str().to_ascii_lowercase()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// INVITE sent or received, no final response.
    Early,
    /// 2xx sent or received.
    Confirmed,
}

/// One call's dialog and transactions.
struct Call {
    leg: Arc<Leg>,
    uas: bool,
    phase: Phase,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our From (UAC) / To (UAS) value without tag.
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    peer: Target,
    invite_key: Option<ServerKey>,
    invite_req: Option<Message>,
    /// A re-INVITE answered 2xx and its CSeq number: its ACK (a request of
    /// its own, matched by the dialog and CSeq) ends the retransmissions.
    reinvite: Option<(ServerKey, u32)>,
    client_invite: Option<ClientKey>,
    /// The session hung up before a final response (UAC: CANCEL when
    /// possible; ACK and BYE a late 2xx).
    cancel_pending: bool,
    sdp_session: u64,
    sdp_version: u64,
    remote_version: Option<u64>,
    hold: bool,
    auth_tries: u32,
    outbound: Option<Box<Outbound>>,
    /// Our last offer (UAC) to resend with credentials.
    offer: Option<String>,
    /// The call's own codecs (`absolute_codec_string`, `codec_string`),
    /// else its profile's `codec-prefs`.
    codecs: Option<Vec<crate::sdp::Codec>>,
    /// A 183 with our SDP has gone (UAS): the answer keeps its codec.
    early_sdp: bool,
}

/// A gateway at run time.
struct GatewayRt {
    cfg: Gateway,
    profile: usize,
    state: &'static str,
    call_id: String,
    cseq: u32,
    next: Option<Instant>,
    key: Option<ClientKey>,
    tries: u32,
    last_challenge: Option<String>,
}

impl GatewayRt {
    /// A gateway loaded at `now` (it registers at once when it should).
    fn new(g: &Gateway, profile: usize, now: Instant) -> GatewayRt {
        GatewayRt {
            cfg: g.clone(),
            profile,
            state: if g.register { "UNREGED" } else { "NOREG" },
            call_id: uuid::Uuid::new_v4().to_string(),
            cseq: 0,
            next: g.register.then_some(now),
            key: None,
            tries: 0,
            last_challenge: None,
        }
    }
}

/// The SIP thread's state.
pub struct Stack {
    pub profiles: Vec<ProfileRt>,
    pub tx: Transactions,
    /// Calls by their leg's session uuid: a UAC and a UAS dialog may share a
    /// Call-ID (the switch calling itself), so the Call-ID alone names no
    /// dialog (RFC 3261 §12).
    calls: HashMap<String, Call>,
    /// Call-ID → the uuids of the calls with it (one, or two when looped).
    by_call_id: HashMap<String, Vec<String>>,
    gateways: Vec<GatewayRt>,
    pub registrar: Arc<Registrar>,
    /// The network lists profiles' ACLs name.
    pub acls: crate::acl::Acls,
    nonces: HashMap<String, Instant>,
    pub trace: Arc<AtomicBool>,
    input: UnboundedSender<Input>,
    rtp: (u16, u16),
    next_purge: Instant,
    next_media_check: Instant,
    /// Calls (by leg uuid) with digits going out as RFC 4733 events, and when to send
    /// their next packets (every 20 ms while any remain).
    dtmf_pacing: Vec<String>,
    next_dtmf: Option<Instant>,
    /// Malformed messages seen (logged once a second at most).
    pub malformed: u64,
    last_malformed_log: Option<Instant>,
    /// Gateway states for dialers on other threads.
    pub gateway_view: GatewayView,
    /// What the shell is asked to do ([`Protocol::poll_event`]).
    events: VecDeque<Event>,
    /// Names asked of the shell and what waits for them.
    dns: Dns,
    /// The wall clock as the shell last read it, and the instant it read
    /// it at ([`Stack::handle_wall_clock`]).
    wall: (Instant, SystemTime),
    /// `sofia recover`'s re-INVITEs in flight, and their legs' uuids.
    recovering: HashMap<ClientKey, String>,
    /// Handed over to a newer version (live reload): the calls in progress
    /// go on, but gateways no longer register and registered phones get no
    /// NAT keep-alive pings from this version (the new one sends them).
    pub draining: bool,
}

fn new_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn new_branch() -> String {
    format!(
        "z9hG4bK{}",
        &uuid::Uuid::new_v4().simple().to_string()[..20]
    )
}

impl Stack {
    /// The stack for `config` (profiles bound by the shell at `addrs`),
    /// made at `now`, when the wall clock read `wall`.
    pub fn new(
        config: &Config,
        addrs: Vec<SocketAddr>,
        registrar: Arc<Registrar>,
        input: UnboundedSender<Input>,
        (now, wall): (Instant, SystemTime),
    ) -> Stack {
        let trace = config.profiles.iter().any(|p| p.trace);
        let profiles: Vec<ProfileRt> = config
            .profiles
            .iter()
            .zip(addrs)
            .map(|(cfg, addr)| ProfileRt {
                cfg: cfg.clone(),
                addr,
                running: true,
                calls_in: 0,
                calls_out: 0,
                failed_in: 0,
                next_nat_ping: None,
            })
            .collect();
        let gateways = profiles
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.cfg
                    .gateways
                    .iter()
                    .map(move |g| GatewayRt::new(g, i, now))
            })
            .collect();
        Stack {
            profiles,
            tx: Transactions::default(),
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            gateways,
            registrar,
            acls: config.acls.clone(),
            nonces: HashMap::new(),
            trace: Arc::new(AtomicBool::new(trace)),
            input,
            rtp: (config.rtp_start, config.rtp_end),
            next_purge: now + Duration::from_secs(30),
            next_media_check: now + Duration::from_secs(1),
            dtmf_pacing: Vec::new(),
            next_dtmf: None,
            malformed: 0,
            last_malformed_log: None,
            gateway_view: Arc::new(Mutex::new(Vec::new())),
            events: VecDeque::new(),
            dns: Dns::default(),
            wall: (now, wall),
            recovering: HashMap::new(),
            draining: false,
        }
        .with_gateway_view()
    }

    /// `sofia profile <name> rescan`: gateways added to or removed from the
    /// profile's configuration since load; unchanged ones keep their state.
    /// Returns (added, removed).
    pub fn rescan(&mut self, profile: usize, config: &Config, now: Instant) -> (usize, usize) {
        let name = self.profiles[profile].cfg.name.clone();
        let Some(fresh) = config.profiles.iter().find(|p| p.name == name) else {
            return (0, 0);
        };
        let before = self.gateways.len();
        self.gateways
            .retain(|g| g.profile != profile || fresh.gateways.contains(&g.cfg));
        let removed = before - self.gateways.len();
        let mut added = 0;
        for g in &fresh.gateways {
            let known = self
                .gateways
                .iter()
                .any(|x| x.profile == profile && x.cfg == *g);
            if !known {
                self.gateways.push(GatewayRt::new(g, profile, now));
                added += 1;
            }
        }
        self.profiles[profile].cfg.gateways = fresh.gateways.clone();
        self.publish_gateways();
        (added, removed)
    }

    fn with_gateway_view(self) -> Stack {
        self.publish_gateways();
        self
    }

    fn publish_gateways(&self) {
        let v = self
            .gateways
            .iter()
            .map(|g| (g.profile, g.cfg.clone(), g.state))
            .collect();
        *self.gateway_view.lock() = v;
    }

    /// The bindings kept across a restart go into the core's
    /// registrations table when the stack starts serving (`add`), and
    /// leave it when it stops.
    pub fn publish_registrations(&self, add: bool) {
        for p in &self.profiles {
            for r in self.registrar.all(&p.cfg.name) {
                if add {
                    core_table_add(&r);
                } else {
                    core_table_del(&r.user, &r.domain);
                }
            }
        }
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The Call-IDs this stack still has work under: its calls' dialogs
    /// and every transaction alive (what a live reload's successor hands
    /// back to it).
    pub fn call_ids(&self) -> std::collections::HashSet<String> {
        self.by_call_id
            .keys()
            .map(String::as_str)
            .chain(self.tx.call_ids())
            .map(str::to_string)
            .collect()
    }

    /// The stream connections (by peer address) this stack's calls and
    /// transactions use: a draining version closes the others so their
    /// phones reconnect to the new version.
    pub fn stream_peers(&self) -> std::collections::HashSet<std::net::SocketAddr> {
        self.calls
            .values()
            .map(|c| c.peer)
            .filter(|t| t.proto.reliable())
            .map(|t| t.addr)
            .chain(self.tx.stream_peers())
            .collect()
    }

    /// The codecs `call` offers and accepts: its own
    /// (`absolute_codec_string`, `codec_string`) or its profile's.
    fn call_codecs<'a>(&'a self, call: &'a Call) -> &'a [crate::sdp::Codec] {
        call.codecs
            .as_deref()
            .unwrap_or(&self.profiles[call.leg.profile].cfg.codecs)
    }

    /// Keeps a new call under its leg's uuid and indexes its Call-ID.
    fn add_call(&mut self, call: Call) {
        let uuid = call.leg.uuid.clone();
        self.by_call_id
            .entry(call.leg.call_id.clone())
            .or_default()
            .push(uuid.clone());
        self.calls.insert(uuid, call);
    }

    /// Forgets a call for good (a call taken out to be put back keeps its
    /// index entry and goes through `calls` directly).
    fn remove_call(&mut self, uuid: &str) -> Option<Call> {
        let call = self.calls.remove(uuid)?;
        if call.phase == Phase::Confirmed {
            crate::tracking::untrack(uuid);
        }
        if let Some(uuids) = self.by_call_id.get_mut(&call.leg.call_id) {
            uuids.retain(|u| u != uuid);
            if uuids.is_empty() {
                self.by_call_id.remove(&call.leg.call_id);
            }
        }
        Some(call)
    }

    /// The uuid of the call with this Call-ID for which `f` holds.
    fn find_call(&self, call_id: &str, f: impl Fn(&Call) -> bool) -> Option<String> {
        self.by_call_id
            .get(call_id)?
            .iter()
            .find(|u| self.calls.get(u.as_str()).is_some_and(&f))
            .cloned()
    }

    /// The dialog a request within a dialog belongs to: its Call-ID and our
    /// tag in its To (§12.2.2).
    fn dialog_of(&self, msg: &Message) -> Option<String> {
        let to = msg.headers.get("To").and_then(NameAddr::parse)?;
        let tag = to.tag()?;
        self.find_call(msg.call_id(), |c| c.local_tag == tag)
    }

    /// The wall clock read `wall` at `now` (the shell reads both once per
    /// wake-up, before the other inputs): registrations' expiry, SDP
    /// session ids and `sip_invite_stamp` are reckoned from it.
    pub fn handle_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = (now, wall);
    }

    /// The wall clock at `now`, from the shell's last reading.
    fn wall_at(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall;
        match now.checked_duration_since(at) {
            Some(d) => wall + d,
            None => wall
                .checked_sub(at.duration_since(now))
                .unwrap_or(UNIX_EPOCH),
        }
    }

    /// Seconds since 1970 at `now`.
    fn unix_secs(&self, now: Instant) -> u64 {
        self.wall_at(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Timers: transactions, gateway registrations, lapsed registrations.
    fn timers(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_events(now);
        for i in 0..self.gateways.len() {
            if !self.draining && self.gateways[i].next.is_some_and(|n| n <= now) {
                self.gateways[i].next = None;
                self.gateway_register(i, None, now);
            }
        }
        if self.next_dtmf.is_some_and(|d| d <= now) {
            self.pace_dtmf(now);
        }
        if now >= self.next_media_check {
            self.next_media_check = now + Duration::from_secs(1);
            self.check_media(now);
            if !self.draining {
                self.nat_ping(now);
            }
        }
        if now >= self.next_purge {
            self.next_purge = now + Duration::from_secs(30);
            let n = self.registrar.purge(self.unix_secs(now));
            if n > 0 {
                log::info!("{n} registrations expired");
            }
            self.dns.purge(now);
            self.nonces
                .retain(|_, t| now.duration_since(*t) < NONCE_LIFE);
            let calls = &self.calls;
            self.by_call_id.retain(|_, uuids| {
                uuids.retain(|u| calls.contains_key(u));
                !uuids.is_empty()
            });
        }
    }

    /// When [`Stack::timers`] next has work: the transactions', the
    /// gateways', DTMF pacing's, and the periodic checks'.
    fn next_timer(&self) -> Instant {
        let mut t = self.next_purge.min(self.next_media_check);
        if let Some(d) = self.next_dtmf {
            t = t.min(d);
        }
        if let Some(d) = self.tx.poll_timeout() {
            t = t.min(d);
        }
        for g in self.gateways.iter().filter(|_| !self.draining) {
            if let Some(n) = g.next {
                t = t.min(n);
            }
        }
        t
    }

    /// The next RFC 4733 packets of every call with digits going out
    /// (legs whose audio is written send them with their frames instead).
    fn pace_dtmf(&mut self, now: Instant) {
        let calls = &self.calls;
        self.dtmf_pacing
            .retain(|id| calls.get(id).is_some_and(|c| c.leg.media.tick_dtmf(now)));
        self.next_dtmf = (!self.dtmf_pacing.is_empty()).then(|| now + Duration::from_millis(20));
    }

    /// Legs no session thread reads (parked calls): their RTP is drained
    /// here, digits handed to the session, and a silent leg hung up
    /// MEDIA_TIMEOUT, as a reading thread would.
    fn check_media(&mut self, now: Instant) {
        let mut dead = Vec::new();
        let ctx = ModuleContext::current();
        for c in self.calls.values().filter(|c| c.phase == Phase::Confirmed) {
            let (timed_out, digits) = c.leg.media.check_idle(now);
            if !digits.is_empty() {
                if let Some(s) = ctx.session_locate(&c.leg.uuid) {
                    for (d, ms) in digits {
                        s.queue_dtmf(d, ms);
                    }
                }
            }
            if timed_out {
                dead.push(c.leg.uuid.clone());
            }
        }
        for uuid in dead {
            if let Some(s) = ctx.session_locate(&uuid) {
                log::warn!("{uuid}: no RTP for the media timeout; hanging up");
                s.hangup(CallCause::MEDIA_TIMEOUT);
            }
        }
    }

    /// Bytes from the network.
    pub fn handle_bytes(&mut self, from: Target, data: &[u8], now: Instant) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        if self.trace.load(Ordering::Relaxed) {
            let title = format!(
                "recv {} bytes from {}/{}:",
                data.len(),
                from.proto.as_str().to_ascii_lowercase(),
                from.addr
            );
            log_lines(&title, data);
        }
        match Message::parse(data) {
            Ok(mut msg) => {
                if msg.is_request() {
                    if !self.profiles[from.profile].running {
                        return;
                    }
                    // NDLB-force-rport: as if every UDP Via asked for rport.
                    let rport =
                        from.proto.reliable() || self.profiles[from.profile].cfg.nat.force_rport;
                    stamp_via(&mut msg, from.addr, rport);
                    self.tx.handle_request(msg, from, now);
                } else {
                    self.tx.handle_response(msg, now);
                }
                self.drain_events(now);
            }
            Err(e) => self.malformed(from, data, &e, now),
        }
    }

    /// A message that did not parse: a request whose Via can address an
    /// answer gets 400 (505 for a version); an ACK, a response or a
    /// request without a Via is dropped. One log line a second at most,
    /// the network's bytes escaped.
    fn malformed(&mut self, from: Target, data: &[u8], e: &ParseError, now: Instant) {
        self.malformed += 1;
        let (code, reason) = e.status();
        let reply = error_response(data, code, &reason);
        if self
            .last_malformed_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_malformed_log = Some(now);
            let fate = match &reply {
                Some(_) => format!("answered {code} {reason}"),
                None if data.starts_with(b"ACK ") => "dropped: an ACK is never answered".into(),
                None => "dropped: nothing to address an answer by".into(),
            };
            log::warn!(
                "malformed SIP from {}/{} ({e}); {fate}; {} so far",
                from.proto.as_str().to_ascii_lowercase(),
                from.addr,
                self.malformed
            );
        }
        if let Some(r) = reply {
            self.tx.send_stateless(from, r.to_bytes());
        }
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            self.on_event(ev, now);
        }
    }

    fn on_event(&mut self, ev: TxEvent, now: Instant) {
        match ev {
            TxEvent::Request { key, msg, from } => self.on_request(key, msg, from, now),
            TxEvent::Ack { msg, .. } => self.on_ack(msg),
            TxEvent::Response { key, msg } => self.on_response(key, msg, now),
            TxEvent::Timeout { key } => self.on_client_timeout(key, now),
            TxEvent::NoAck { key } => self.on_no_ack(key, now),
            TxEvent::TransportError { key } => self.on_transport_failure(key, now),
        }
    }

    /// A connection the shell could not open: what was sent over it fails.
    pub fn handle_transport_error(&mut self, addr: SocketAddr, error: &str, now: Instant) {
        log::warn!("tcp/{addr} unreachable ({error}): its requests fail");
        self.tx.transport_failed(addr);
        self.drain_events(now);
    }

    /// A request the transport could not carry, treated as the 503 a
    /// transport error stands for (RFC 3261 §8.1.3.1): the call fails at
    /// once with NORMAL_TEMPORARY_FAILURE, as FreeSWITCH's does.
    fn on_transport_failure(&mut self, key: ClientKey, now: Instant) {
        if key.method == "REGISTER" {
            return self.on_client_timeout(key, now);
        }
        if key.method != "INVITE" {
            return;
        }
        let cause = sip_to_cause(503);
        self.fail_client_invite(&key, 503, Some(cause), cause);
    }

    /// An INVITE we sent got no final answer (a transport failure or Timer
    /// B): its call ends with `status` as sip_term_status and `cause`.
    fn fail_client_invite(
        &mut self,
        key: &ClientKey,
        status: u16,
        term_cause: Option<CallCause>,
        cause: CallCause,
    ) {
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.client_invite.as_ref() == Some(key))
            .map(|(id, c)| (id.clone(), c.leg.uuid.clone()));
        if let Some((id, uuid)) = found {
            self.remove_call(&id);
            if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                s.set_var("sip_term_status", &status.to_string());
                if let Some(c) = term_cause {
                    s.set_var("sip_term_cause", &c.0.to_string());
                }
                s.hangup(cause);
            }
        }
    }

    // ---- replies ----------------------------------------------------------

    fn reply(
        &mut self,
        key: &ServerKey,
        req: &Message,
        (code, reason): (u16, &str),
        to_tag: Option<&str>,
        now: Instant,
        extra: impl FnOnce(&mut Message),
    ) {
        let mut r = Message::response_to(req, code, reason, to_tag);
        extra(&mut r);
        self.tx.respond(key, &r, now);
    }

    /// A final response with nothing but the status (a new To tag when the
    /// request has none).
    fn refuse(&mut self, key: &ServerKey, req: &Message, status: (u16, &str), now: Instant) {
        self.reply(key, req, status, Some(&new_tag()), now, |_| {});
    }

    /// FreeSWITCH's answer while the core takes no new call (a limit,
    /// `fsctl pause inbound`, a shutdown draining the calls): `503
    /// Maximum Calls In Progress` with `Retry-After: 300`, which sends a
    /// dispatcher in front to another node.
    pub(super) fn refuse_busy(&mut self, key: &ServerKey, req: &Message, now: Instant) {
        self.reply(
            key,
            req,
            (503, "Maximum Calls In Progress"),
            Some(&new_tag()),
            now,
            |r| r.headers.push("Retry-After", "300"),
        );
    }

    /// While the core takes no new inbound call, an out-of-dialog INVITE,
    /// REGISTER, OPTIONS or INFO is refused (as FreeSWITCH does): so a
    /// dispatcher's OPTIONS probe marks this node down, and phones register
    /// elsewhere. Calls up go on (their requests are in a dialog).
    fn turned_away(&mut self, key: &ServerKey, msg: &Message, now: Instant) -> bool {
        let starts = matches!(msg.method(), "INVITE" | "REGISTER" | "OPTIONS" | "INFO")
            && msg
                .headers
                .get("To")
                .is_some_and(|to| crate::sip::headers::param(to, "tag").is_none());
        if !starts || ModuleContext::current().core_ready(false) {
            return false;
        }
        log::info!("{} refused: the switch takes no new call", msg.method());
        self.refuse_busy(key, msg, now);
        true
    }

    fn server_header(&self, profile: usize) -> String {
        self.profiles[profile].cfg.user_agent.clone()
    }

    // ---- requests ---------------------------------------------------------

    fn on_request(&mut self, key: ServerKey, msg: Message, from: Target, now: Instant) {
        if let Err(r) = checks::check(&msg) {
            log::info!(
                "{} {} from {}: {} {}",
                escape_str(msg.method(), 40),
                escape_str(msg.uri().unwrap_or(""), 200),
                from.addr,
                r.code,
                r.reason
            );
            let headers = r.headers;
            self.reply(&key, &msg, (r.code, r.reason), Some(&new_tag()), now, |m| {
                for (n, v) in headers {
                    m.headers.push(n, v);
                }
            });
            return;
        }
        if self.turned_away(&key, &msg, now) {
            return;
        }
        let profile = from.profile;
        let ua = self.server_header(profile);
        match msg.method() {
            "INVITE" => self.on_invite(key, msg, from, now),
            "BYE" => self.on_bye(key, msg, now),
            "CANCEL" => self.on_cancel(key, msg, now),
            "OPTIONS" => self.reply(&key, &msg, (200, "OK"), Some(&new_tag()), now, |r| {
                r.headers.push("Allow", ALLOW);
                r.headers.push("Accept", "application/sdp");
                r.headers.push("Server", ua);
            }),
            "REGISTER" => self.on_register(key, msg, from, now),
            "INFO" => self.on_info(key, msg, now),
            "MESSAGE" => self.on_message(key, msg, from, now),
            // Every other method was answered by the checks.
            _ => self.refuse(&key, &msg, (200, "OK"), now),
        }
    }

    /// `apply-inbound-acl` for a new INVITE from `ip`, as FreeSWITCH's
    /// sofia does: the first list that matches names the caller trusted,
    /// with the token of its matching node (`user@domain`); `None` when no
    /// list matches (or none is set).
    fn inbound_acl_match(&self, profile: usize, ip: IpAddr) -> Option<(String, Option<String>)> {
        self.profiles[profile].cfg.inbound_acl.iter().find_map(|l| {
            match self.acls.check_token(l, ip) {
                (true, token) => Some((l.clone(), token)),
                (false, _) => None,
            }
        })
    }

    /// `apply-register-acl`: `Ok(true)` when every list matches (register
    /// without a challenge), `Ok(false)` when none is set, `Err(list)` with
    /// the first list that does not match.
    fn register_acl_check(&self, profile: usize, ip: IpAddr) -> Result<bool, String> {
        let lists = &self.profiles[profile].cfg.register_acl;
        match lists.iter().find(|l| !self.acls.check(l, ip)) {
            Some(miss) => Err(miss.clone()),
            None => Ok(!lists.is_empty()),
        }
    }

    fn fire_custom(&self, subclass: &str, headers: &[(&str, &str)]) {
        let _ = ModuleContext::current().fire_event(EV_CUSTOM, subclass, headers, "");
    }

    // ---- commands from sessions ---------------------------------------------

    /// One input that is not network bytes.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Answer { uuid, codecs } => {
                self.answer_codecs(&uuid, codecs);
                self.answer(&uuid, now)
            }
            Input::Progress { uuid, codecs } => {
                self.answer_codecs(&uuid, codecs);
                self.provisional(&uuid, 183, now)
            }
            Input::Ringing { uuid } => self.provisional(&uuid, 180, now),
            Input::Hangup { uuid, cause } => self.hangup(&uuid, cause, now),
            Input::Invite(o) => self.invite(o, now),
            Input::Info {
                uuid,
                digit,
                duration_ms,
            } => self.send_info(&uuid, digit, duration_ms, now),
            Input::Message(chat) => self.send_message(chat, now),
            Input::Api(req) => self.api(req, now),
            Input::Recover { calls, reply } => {
                let done = self.recover(calls, now);
                let _ = reply.try_send(done);
            }
            Input::PaceDtmf { uuid } => {
                if !self.dtmf_pacing.contains(&uuid) {
                    self.dtmf_pacing.push(uuid);
                }
                self.next_dtmf.get_or_insert(now);
            }
            _ => {}
        }
        self.drain_events(now);
    }

    fn on_response(&mut self, key: ClientKey, msg: Message, now: Instant) {
        match key.method.as_str() {
            "INVITE" if self.is_recovery(&key) => self.on_recovery_response(key, msg),
            "INVITE" => self.on_invite_response(key, msg, now),
            "REGISTER" => {
                if let Some(i) = self
                    .gateways
                    .iter()
                    .position(|g| g.key.as_ref() == Some(&key))
                {
                    self.on_gateway_response(i, msg, now);
                }
            }
            _ => {}
        }
    }

    fn on_client_timeout(&mut self, key: ClientKey, now: Instant) {
        if key.method == "REGISTER" {
            if let Some(i) = self
                .gateways
                .iter()
                .position(|g| g.key.as_ref() == Some(&key))
            {
                let g = &mut self.gateways[i];
                log::warn!("gateway {}: no answer to REGISTER", g.cfg.name);
                g.state = "FAIL_WAIT";
                g.next = Some(now + Duration::from_secs(g.cfg.retry_seconds as u64));
                self.fire_gateway_state(i);
            }
            return;
        }
        if key.method != "INVITE" {
            return;
        }
        self.fail_client_invite(&key, 408, None, CallCause::RECOVERY_ON_TIMER_EXPIRE);
    }

    fn on_no_ack(&mut self, key: ServerKey, now: Instant) {
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.invite_key.as_ref() == Some(&key))
            .map(|(id, c)| (id.clone(), c.leg.uuid.clone(), c.phase));
        if let Some((id, uuid, phase)) = found {
            if phase == Phase::Confirmed {
                log::warn!("call {id}: the 200 OK was never acknowledged; hanging up");
                self.hangup(&id, CallCause::RECOVERY_ON_TIMER_EXPIRE, now);
                if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                    s.hangup(CallCause::RECOVERY_ON_TIMER_EXPIRE);
                }
            }
        }
    }

    // ---- gateways -------------------------------------------------------------

    // ---- api ------------------------------------------------------------------

    fn api(&mut self, req: ApiRequest, now: Instant) {
        let (out, action) = crate::api::run(self, &req.args, now);
        self.events.extend(action.map(Event::Profile));
        let _ = req.reply.try_send(out);
    }

    /// `(name, state, detail)` of every gateway.
    pub fn gateway_rows(&self) -> Vec<(String, String, &'static str, String)> {
        self.gateways
            .iter()
            .map(|g| {
                (
                    format!("{}::{}", self.profiles[g.profile].cfg.name, g.cfg.name),
                    format!("sip:{}@{}", g.cfg.username, g.cfg.realm),
                    g.state,
                    g.cfg.proxy.clone(),
                )
            })
            .collect()
    }

    /// Calls by profile index.
    pub fn calls_of(&self, profile: usize) -> usize {
        self.calls
            .values()
            .filter(|c| c.leg.profile == profile)
            .count()
    }
}

impl Protocol for Stack {
    /// Bytes for a socket, and where they go.
    type Transmit = (Target, Vec<u8>);
    type Event = Event;

    /// Timers: transactions, gateway registrations, DTMF pacing, parked
    /// calls' media, NAT keep-alives, lapsed registrations.
    fn handle_timeout(&mut self, now: Instant) {
        self.timers(now);
    }

    fn poll_transmit(&mut self) -> Option<(Target, Vec<u8>)> {
        self.tx.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Always some: the periodic checks run every second.
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_timer())
    }
}

/// Whether the core must find this leg's digits in its audio: RFC 2833
/// was wanted but the far end's SDP offered no telephone-event, so its
/// phone can only send tones (the core's bridge then detects them and
/// passes them on out of band).
fn set_dtmf_vars(s: &hotswitch_plugin_api::Session, leg: &crate::leg::Leg) {
    let inband =
        leg.dtmf_type == crate::config::DtmfType::Rfc2833 && !leg.media.has_telephone_event();
    s.set_var("dtmf_inband_detect", if inband { "true" } else { "false" });
}

/// The negotiated codec on the channel, as FreeSWITCH's media core sets
/// it (switch_core_codec.c; CDR templates read these): read/write codec
/// and rate, `original_read_*` from the first negotiation on, and the
/// `rtp_use_codec_*` of the SDP answer.
fn set_codec_vars(s: &hotswitch_plugin_api::Session, codec: crate::sdp::Codec) {
    // FreeSWITCH's rates: the codec's samples per second (Opus 48000,
    // G.722 16000), not its RTP clock.
    let rate = match codec {
        crate::sdp::Codec::Opus => "48000",
        crate::sdp::Codec::G722 => "16000",
        _ => "8000",
    };
    let name = codec.name();
    if s.var("original_read_codec").is_none_or(|v| v.is_empty()) {
        s.set_var("original_read_codec", name);
        s.set_var("original_read_rate", rate);
    }
    for (k, v) in [
        ("rtp_use_codec_name", name),
        ("rtp_use_codec_rate", rate),
        ("rtp_use_codec_ptime", "20"),
        ("read_codec", name),
        ("read_rate", rate),
        ("write_codec", name),
        ("write_rate", rate),
    ] {
        s.set_var(k, v);
    }
}

/// RFC 3261 §18.2.1 and RFC 3581, as sofia-sip does: the top Via of a
/// request gets `received` (the source address, when it differs from the
/// sent-by host or when `rport` asks) and `rport` the source port (when
/// asked, and always over TCP), so that every response copies where the
/// request really came from. The transaction layer sends responses there
/// (see `Transactions::handle_request`).
fn stamp_via(msg: &mut Message, src: SocketAddr, stream: bool) {
    let Some(i) = msg.headers.0.iter().position(|(n, _)| n == "Via") else {
        return;
    };
    let value = &msg.headers.0[i].1;
    let Some(via) = Via::parse(value) else {
        return;
    };
    let ip = src.ip().to_string();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let want_rport = via.rport.is_some() || stream;
    if !want_rport && host == ip {
        return;
    }
    let mut out: Vec<&str> = value
        .split(';')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("").trim();
            let stamped = name.eq_ignore_ascii_case("received")
                || (want_rport && name.eq_ignore_ascii_case("rport"));
            !stamped
        })
        .collect();
    let received = format!("received={ip}");
    let rport = format!("rport={}", src.port());
    out.push(&received);
    if want_rport {
        out.push(&rport);
    }
    msg.headers.0[i].1 = out.join(";");
}

fn strip_tag(v: &str) -> String {
    match v.find(";tag=") {
        Some(i) => {
            let rest = &v[i + 5..];
            let end = rest.find(';').map(|j| i + 5 + j).unwrap_or(v.len());
            format!("{}{}", &v[..i], &v[end..])
        }
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_via_gets_received_and_rport_from_the_source_address() {
        let text = "OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let mut m = Message::parse(text.as_bytes()).unwrap();
        stamp_via(&mut m, "192.0.2.7:40001".parse().unwrap(), false);
        let r = Message::response_to(&m, 200, "OK", Some("t"));
        let top = Via::parse(r.headers.get("Via").unwrap()).unwrap();
        assert_eq!(top.received.as_deref(), Some("192.0.2.7"));
        assert_eq!(top.rport, Some(Some(40001)));
        assert_eq!(top.branch.as_deref(), Some("z9hG4bK1"));
        let second: Vec<&str> = r.headers.get_all("Via").collect();
        assert_eq!(second[1], "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0");
        // No rport asked, same host: untouched; another host: received only.
        let mut m = Message::parse(text.replace(";rport", "").as_bytes()).unwrap();
        stamp_via(&mut m, "10.0.0.5:5062".parse().unwrap(), false);
        assert_eq!(
            m.headers.get("Via"),
            Some("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1")
        );
        stamp_via(&mut m, "192.0.2.7:5062".parse().unwrap(), false);
        assert_eq!(
            m.headers.get("Via"),
            Some("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;received=192.0.2.7")
        );
        // Over a stream, rport always.
        let mut m = Message::parse(text.replace(";rport", "").as_bytes()).unwrap();
        stamp_via(&mut m, "10.0.0.5:40002".parse().unwrap(), true);
        assert_eq!(
            m.headers.get("Via"),
            Some("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;received=10.0.0.5;rport=40002")
        );
    }

    #[test]
    fn tags_are_stripped_from_header_values() {
        assert_eq!(strip_tag("<sip:a@h>;tag=12;x=y"), "<sip:a@h>;x=y");
        assert_eq!(strip_tag("<sip:a@h>;tag=12"), "<sip:a@h>");
        assert_eq!(strip_tag("<sip:a@h>"), "<sip:a@h>");
    }
}

//! The transaction user: dialogs and calls, the registrar and digest
//! challenges, gateways, and what they do to sessions. Runs on the SIP
//! thread only (no locks around it); sessions talk to it through
//! [`Input`]s, and it reaches them through the host's session services.
//!
//! - `inbound`: calls we answer (INVITE, re-INVITE, ACK, BYE, CANCEL,
//!   INFO, MESSAGE) and the responses the core asks for;
//! - `outbound`: calls we place and in-dialog requests we send;
//! - `register`: digest challenges, the registrar, gateways;
//! - `dial`: the dial string of an outbound leg.

use crate::causes::{cause_to_sip, sip_to_cause};
use crate::config::{acl_allows, Config, Gateway, ProfileConfig};
use crate::leg::{ApiRequest, Input, Leg, Outbound};
use crate::registrar::{now_secs, Registrar, Registration};
use crate::sdp::{self, Direction, Local};
use crate::sip::digest::{self, Algorithm, Credentials};
use crate::sip::headers::{NameAddr, Uri, Via};
use crate::sip::message::{Message, StartLine};
use crate::sip::transaction::{ClientKey, Proto, ServerKey, Target, Transactions, TxEvent};
use hotswitch_plugin_api::{CallCause, ModuleContext, OwnedSession, Profile};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

mod dial;
mod inbound;
mod outbound;
mod register;

pub use dial::{dial_target, DialTarget};

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, REGISTER, UPDATE";
/// Issued nonces stay valid this long.
const NONCE_LIFE: Duration = Duration::from_secs(300);

/// Event ids (FreeSWITCH's numbering) this module fires.
const EV_CUSTOM: u32 = 0;
const EV_CHANNEL_HOLD: u32 = 11;
const EV_CHANNEL_UNHOLD: u32 = 12;

/// A gateway as dialers see it: its profile, settings and state.
pub type GatewayEntry = (usize, Gateway, &'static str);
/// The gateways' states, shared with dialers on session threads.
pub type GatewayView = Arc<std::sync::Mutex<Vec<GatewayEntry>>>;

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

    /// Our Contact URI.
    pub fn contact(&self, proto: Proto) -> String {
        match proto {
            Proto::Udp => format!("<sip:mod_sofia@{}>", self.host_port()),
            Proto::Tcp => format!("<sip:mod_sofia@{};transport=tcp>", self.host_port()),
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
    fn new(g: &Gateway, profile: usize) -> GatewayRt {
        GatewayRt {
            cfg: g.clone(),
            profile,
            state: if g.register { "UNREGED" } else { "NOREG" },
            call_id: uuid::Uuid::new_v4().to_string(),
            cseq: 0,
            next: g.register.then(Instant::now),
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
    nonces: HashMap<String, Instant>,
    pub trace: Arc<AtomicBool>,
    input: UnboundedSender<Input>,
    rtp: (u16, u16),
    next_purge: Instant,
    next_media_check: Instant,
    /// Malformed messages seen (logged once a second at most).
    pub malformed: u64,
    last_malformed_log: Option<Instant>,
    /// Gateway states for dialers on other threads.
    pub gateway_view: GatewayView,
    /// Socket work for the shell (profile start/stop).
    pub actions: Vec<crate::api::ShellAction>,
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

fn resolve(host_port: &str) -> Option<SocketAddr> {
    if let Ok(a) = host_port.parse() {
        return Some(a);
    }
    host_port.to_socket_addrs().ok()?.next()
}

impl Stack {
    /// The stack for `config` (profiles bound by the shell at `addrs`).
    pub fn new(
        config: &Config,
        addrs: Vec<SocketAddr>,
        registrar: Arc<Registrar>,
        input: UnboundedSender<Input>,
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
            })
            .collect();
        let gateways = profiles
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.cfg.gateways.iter().map(move |g| GatewayRt::new(g, i)))
            .collect();
        Stack {
            profiles,
            tx: Transactions::default(),
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            gateways,
            registrar,
            nonces: HashMap::new(),
            trace: Arc::new(AtomicBool::new(trace)),
            input,
            rtp: (config.rtp_start, config.rtp_end),
            next_purge: Instant::now() + Duration::from_secs(30),
            next_media_check: Instant::now() + Duration::from_secs(1),
            malformed: 0,
            last_malformed_log: None,
            gateway_view: Arc::new(std::sync::Mutex::new(Vec::new())),
            actions: Vec::new(),
        }
        .with_gateway_view()
    }

    /// `sofia profile <name> rescan`: gateways added to or removed from the
    /// profile's configuration since load; unchanged ones keep their state.
    /// Returns (added, removed).
    pub fn rescan(&mut self, profile: usize, config: &Config) -> (usize, usize) {
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
                self.gateways.push(GatewayRt::new(g, profile));
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
        *self.gateway_view.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
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

    /// The next time [`Stack::on_timer`] has work.
    pub fn next_deadline(&self) -> Instant {
        let mut t = self.next_purge.min(self.next_media_check);
        if let Some(d) = self.tx.next_deadline() {
            t = t.min(d);
        }
        for g in &self.gateways {
            if let Some(n) = g.next {
                t = t.min(n);
            }
        }
        t
    }

    /// Timers: transactions, gateway registrations, lapsed registrations.
    pub fn on_timer(&mut self, now: Instant) {
        self.tx.on_timer(now);
        self.drain_events(now);
        for i in 0..self.gateways.len() {
            if self.gateways[i].next.is_some_and(|n| n <= now) {
                self.gateways[i].next = None;
                self.gateway_register(i, None, now);
            }
        }
        if now >= self.next_media_check {
            self.next_media_check = now + Duration::from_secs(1);
            self.check_media(now);
        }
        if now >= self.next_purge {
            self.next_purge = now + Duration::from_secs(30);
            let n = self.registrar.purge(now_secs());
            if n > 0 {
                log::info!("{n} registrations expired");
            }
            self.nonces
                .retain(|_, t| now.duration_since(*t) < NONCE_LIFE);
            let calls = &self.calls;
            self.by_call_id.retain(|_, uuids| {
                uuids.retain(|u| calls.contains_key(u));
                !uuids.is_empty()
            });
        }
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
    pub fn on_bytes(&mut self, from: Target, data: &[u8], now: Instant) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        if self.trace.load(Ordering::Relaxed) {
            log::info!(
                "recv {} bytes from {}/{}:\n{}",
                data.len(),
                from.proto.as_str().to_ascii_lowercase(),
                from.addr,
                String::from_utf8_lossy(data)
            );
        }
        match Message::parse(data) {
            Ok(msg) => {
                if msg.is_request() {
                    if !self.profiles[from.profile].running {
                        return;
                    }
                    self.tx.on_request(msg, from, now);
                } else {
                    self.tx.on_response(msg, now);
                }
                self.drain_events(now);
            }
            Err(e) => self.malformed(from, data, &e.to_string()),
        }
    }

    /// A message that did not parse: 400 when a reply can be addressed
    /// (a request with a Via, From, To, Call-ID and CSeq), else dropped.
    fn malformed(&mut self, from: Target, data: &[u8], why: &str) {
        self.malformed += 1;
        let now = Instant::now();
        if self
            .last_malformed_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_malformed_log = Some(now);
            log::warn!(
                "malformed SIP from {} ({why}); {} so far",
                from.addr,
                self.malformed
            );
        }
        let Some(reply) = bad_request(data, why) else {
            return;
        };
        self.tx.outbox.push((from, reply));
    }

    fn drain_events(&mut self, now: Instant) {
        while !self.tx.events.is_empty() {
            let events = std::mem::take(&mut self.tx.events);
            for ev in events {
                self.on_event(ev, now);
            }
        }
    }

    fn on_event(&mut self, ev: TxEvent, now: Instant) {
        match ev {
            TxEvent::Request { key, msg, from } => self.on_request(key, msg, from, now),
            TxEvent::Ack { msg, .. } => self.on_ack(msg),
            TxEvent::Response { key, msg } => self.on_response(key, msg, now),
            TxEvent::Timeout { key } => self.on_client_timeout(key, now),
            TxEvent::NoAck { key } => self.on_no_ack(key, now),
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

    fn server_header(&self, profile: usize) -> String {
        self.profiles[profile].cfg.user_agent.clone()
    }

    // ---- requests ---------------------------------------------------------

    fn on_request(&mut self, key: ServerKey, msg: Message, from: Target, now: Instant) {
        let profile = from.profile;
        if !acl_allows(&self.profiles[profile].cfg.acl, from.addr.ip())
            && matches!(msg.method(), "INVITE" | "REGISTER" | "MESSAGE")
        {
            log::warn!(
                "{} from {} refused by apply-inbound-acl of profile {}",
                msg.method(),
                from.addr,
                self.profiles[profile].cfg.name
            );
            self.refuse(&key, &msg, (403, "Forbidden"), now);
            return;
        }
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
            "UPDATE" => self.refuse(&key, &msg, (200, "OK"), now),
            _ => self.reply(
                &key,
                &msg,
                (405, "Method Not Allowed"),
                Some(&new_tag()),
                now,
                |r| {
                    r.headers.push("Allow", ALLOW);
                },
            ),
        }
    }

    fn fire_custom(&self, subclass: &str, headers: &[(&str, &str)]) {
        let _ = ModuleContext::current().fire_event(EV_CUSTOM, subclass, headers, "");
    }

    // ---- commands from sessions ---------------------------------------------

    /// One input that is not network bytes.
    pub fn on_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Answer { uuid } => self.answer(&uuid, now),
            Input::Progress { uuid } => self.provisional(&uuid, 183, now),
            Input::Ringing { uuid } => self.provisional(&uuid, 180, now),
            Input::Hangup { uuid, cause } => self.hangup(&uuid, cause, now),
            Input::Invite(o) => self.invite(o, now),
            Input::Info {
                uuid,
                digit,
                duration_ms,
            } => self.send_info(&uuid, digit, duration_ms, now),
            Input::Message {
                profile,
                to,
                from,
                body,
                content_type,
            } => self.send_message(profile, &to, &from, &body, &content_type, now),
            Input::Api(req) => self.api(req),
            _ => {}
        }
        self.drain_events(now);
    }

    fn on_response(&mut self, key: ClientKey, msg: Message, now: Instant) {
        match key.method.as_str() {
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
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.client_invite.as_ref() == Some(&key))
            .map(|(id, c)| (id.clone(), c.leg.uuid.clone()));
        if let Some((id, uuid)) = found {
            self.remove_call(&id);
            if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                s.set_var("sip_term_status", "408");
                s.hangup(CallCause::RECOVERY_ON_TIMER_EXPIRE);
            }
        }
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

    fn api(&mut self, req: ApiRequest) {
        let (out, action) = crate::api::run(self, &req.args);
        self.actions.extend(action);
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

/// A 400 for a request that carries enough to be answered.
fn bad_request(data: &[u8], why: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.lines();
    let first = lines.next()?;
    if first.starts_with("SIP/") || !first.ends_with("SIP/2.0") {
        return None;
    }
    let mut r = Message {
        start: StartLine::Response {
            code: 400,
            reason: format!(
                "Bad Request ({})",
                why.replace(['\r', '\n'], " ")
                    .chars()
                    .take(80)
                    .collect::<String>()
            ),
        },
        headers: Default::default(),
        body: Vec::new(),
    };
    let mut have = [false; 4];
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let n = crate::sip::message::canonical(n.trim());
        let i = match n.as_str() {
            "Via" => 0,
            "From" => 1,
            "To" => 2,
            "Call-ID" => 3,
            "CSeq" => {
                r.headers.push("CSeq", v.trim());
                continue;
            }
            _ => continue,
        };
        have[i] = true;
        r.headers.push(&n, v.trim());
    }
    (have.iter().all(|h| *h) && Via::parse(r.headers.get("Via")?).is_some()).then(|| r.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_request_with_its_dialog_headers_gets_a_400() {
        let bad = b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h:5;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: many\r\n\r\n";
        let r = bad_request(bad, "bad Max-Forwards").unwrap();
        let m = Message::parse(&r).unwrap();
        assert_eq!(m.code(), Some(400));
        assert_eq!(m.call_id(), "c");
        assert!(bad_request(b"\x00\x01garbage", "x").is_none());
        assert!(bad_request(b"SIP/2.0 200 OK\r\n\r\n", "x").is_none());
    }

    #[test]
    fn tags_are_stripped_from_header_values() {
        assert_eq!(strip_tag("<sip:a@h>;tag=12;x=y"), "<sip:a@h>;x=y");
        assert_eq!(strip_tag("<sip:a@h>;tag=12"), "<sip:a@h>");
        assert_eq!(strip_tag("<sip:a@h>"), "<sip:a@h>");
    }
}

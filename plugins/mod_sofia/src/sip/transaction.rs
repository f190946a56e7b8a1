//! Transactions (RFC 3261 §17, with RFC 6026's Accepted state): the four
//! state machines, their timers A–K, retransmission and matching.
//!
//! Sans-IO, in the shape of every protocol core
//! ([`hotswitch_plugin_api::sansio::Protocol`]): the inputs are
//! [`Transactions::handle_request`], [`Transactions::handle_response`] and
//! the TU's calls ([`Transactions::respond`], [`Transactions::send_request`],
//! …), each with the current time, and [`Protocol::handle_timeout`] when
//! [`Protocol::poll_timeout`]'s instant has come; the outputs are pulled:
//! [`Protocol::poll_transmit`] (what to send, and where),
//! [`Protocol::poll_event`] (a [`TxEvent`] for the transaction user).
//! Nothing here reads a clock or touches a socket, so the timers are tested
//! by passing time.

use crate::sip::headers::Via;
use crate::sip::message::Message;
use hotswitch_plugin_api::sansio::Protocol;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RTT estimate.
pub const T1: Duration = Duration::from_millis(500);
/// Longest retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Longest a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);

/// Transport of a hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    /// TCP with TLS on it (RFC 3261 §26).
    Tls,
    /// A WebSocket (RFC 7118), plain or over TLS.
    Ws,
    Wss,
}

impl Proto {
    /// The Via token.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        }
    }

    /// Parses a Via or `transport=` token (any case).
    pub fn from_token(t: &str) -> Option<Proto> {
        [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
    }

    /// A stream: no retransmissions, messages framed by Content-Length.
    pub fn reliable(self) -> bool {
        self != Proto::Udp
    }
}

/// Where a message goes or came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// The profile (socket set) it belongs to.
    pub profile: usize,
}

/// A server transaction's key: branch, sent-by and method (ACK matches
/// INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub branch: String,
    pub sent_by: String,
    pub method: String,
}

/// A client transaction's key: our branch and the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: String,
}

/// What the TU is told.
#[derive(Debug)]
pub enum TxEvent {
    /// A new request (not a retransmission); INVITE has been answered 100.
    Request {
        key: ServerKey,
        msg: Message,
        from: Target,
    },
    /// An ACK that matches no transaction: the ACK of a 2xx.
    Ack { msg: Message, from: Target },
    /// A response to one of our requests (retransmitted finals filtered).
    Response { key: ClientKey, msg: Message },
    /// Timer B or F fired: no final response came.
    Timeout { key: ClientKey },
    /// Timer H / L fired: our 2xx or final response was never acknowledged.
    NoAck { key: ServerKey },
    /// The transport could not carry our request (a connection refused):
    /// the transaction ended at once, as with a 503 (RFC 3261 §8.1.3.1).
    TransportError { key: ClientKey },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

struct Server {
    invite: bool,
    /// The request's Call-ID (a live reload hands what is in flight over by it).
    call_id: String,
    state: SState,
    last: Option<Vec<u8>>,
    to: Target,
    interval: Duration,
    gen: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

struct Client {
    invite: bool,
    state: CState,
    request: Vec<u8>,
    /// The ACK for a non-2xx final (built here) or for the 2xx (given by the TU).
    ack: Option<Vec<u8>>,
    to: Target,
    interval: Duration,
    gen: u64,
    /// The request, kept for building the ACK.
    req: Message,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A (client INVITE), E (client non-INVITE), G (server INVITE final).
    Retransmit,
    /// B, F (client), H (server INVITE), L (Accepted).
    Timeout,
    /// D, K (client), I, J (server): the end of absorbing retransmissions.
    End,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Server(String, String, String),
    Client(String, String),
}

/// All transactions of a stack.
#[derive(Default)]
pub struct Transactions {
    servers: HashMap<ServerKey, Server>,
    clients: HashMap<ClientKey, Client>,
    timers: BinaryHeap<Reverse<(Instant, u64, Kind, Owner)>>,
    seq: u64,
    /// Bytes to send, in order ([`Protocol::poll_transmit`]).
    outbox: VecDeque<(Target, Vec<u8>)>,
    /// Events for the TU, in order ([`Protocol::poll_event`]).
    events: VecDeque<TxEvent>,
}

fn server_key(msg: &Message) -> Option<ServerKey> {
    let via = Via::parse(msg.headers.get("Via")?)?;
    let method = match msg.method() {
        "ACK" => "INVITE",
        m => m,
    };
    Some(ServerKey {
        branch: via
            .branch
            .unwrap_or_else(|| format!("rfc2543-{}", msg.call_id())),
        sent_by: format!("{}:{}", via.host, via.port.unwrap_or(5060)),
        method: method.to_string(),
    })
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4): over
/// a stream, back on its connection; over UDP, to the source address and
/// port when the top Via asks for `rport`, else to the source address and
/// the Via's sent-by port.
fn response_target(msg: &Message, from: Target) -> Target {
    if from.proto.reliable() {
        return from;
    }
    match msg.headers.get("Via").and_then(Via::parse) {
        Some(v) if v.rport.is_none() => Target {
            addr: SocketAddr::new(from.addr.ip(), v.port.unwrap_or(5060)),
            ..from
        },
        _ => from,
    }
}

impl Transactions {
    /// The Call-IDs of every transaction alive, server and client.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.servers
            .values()
            .map(|s| s.call_id.as_str())
            .chain(self.clients.values().map(|c| c.req.call_id()))
    }

    /// The stream connections (by peer address) a transaction alive sends
    /// on: a draining version keeps them open until it ends.
    pub fn stream_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.servers
            .values()
            .map(|s| s.to)
            .chain(self.clients.values().map(|c| c.to))
            .filter(|t| t.proto.reliable())
            .map(|t| t.addr)
    }

    /// Transactions alive.
    pub fn len(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    fn arm(&mut self, at: Instant, kind: Kind, owner: Owner) {
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, kind, owner)));
    }

    /// A request from the network.
    pub fn handle_request(&mut self, msg: Message, from: Target, now: Instant) {
        let Some(key) = server_key(&msg) else {
            return;
        };
        if let Some(tx) = self.servers.get_mut(&key) {
            if msg.method() == "ACK" {
                if tx.state == SState::Completed {
                    tx.state = SState::Confirmed;
                    tx.gen += 1;
                    let wait = if from.proto.reliable() {
                        Duration::ZERO
                    } else {
                        T4
                    };
                    let owner = Owner::Server(key.branch, key.sent_by, key.method);
                    self.arm(now + wait, Kind::End, owner);
                }
                // An ACK on an Accepted transaction is the 2xx's ACK that
                // reused the INVITE's branch (RFC 2543 peers): hand it up.
                else if tx.state == SState::Accepted {
                    self.events.push_back(TxEvent::Ack { msg, from });
                }
                return;
            }
            // A retransmitted request: answer with the last response.
            if let Some(last) = &tx.last {
                self.outbox.push_back((tx.to, last.clone()));
            }
            return;
        }
        if msg.method() == "ACK" {
            self.events.push_back(TxEvent::Ack { msg, from });
            return;
        }
        let invite = msg.method() == "INVITE";
        let mut tx = Server {
            invite,
            call_id: msg.call_id().to_string(),
            state: if invite {
                SState::Proceeding
            } else {
                SState::Trying
            },
            last: None,
            to: response_target(&msg, from),
            interval: T1,
            gen: 0,
        };
        if invite {
            // §17.2.1: 100 Trying at once, so the client stops Timer A.
            let trying = Message::response_to(&msg, 100, "Trying", None).to_bytes();
            self.outbox.push_back((tx.to, trying.clone()));
            tx.last = Some(trying);
        }
        self.servers.insert(key.clone(), tx);
        self.events.push_back(TxEvent::Request { key, msg, from });
    }

    /// The TU's response on a server transaction.
    pub fn respond(&mut self, key: &ServerKey, resp: &Message, now: Instant) {
        let code = resp.code().unwrap_or(500);
        let Some(tx) = self.servers.get_mut(key) else {
            return;
        };
        if matches!(tx.state, SState::Completed | SState::Confirmed) {
            return;
        }
        if tx.state == SState::Accepted && !(200..300).contains(&code) {
            return;
        }
        let bytes = resp.to_bytes();
        self.outbox.push_back((tx.to, bytes.clone()));
        tx.last = Some(bytes);
        if code < 200 {
            tx.state = SState::Proceeding;
            return;
        }
        tx.gen += 1;
        let reliable = tx.to.proto.reliable();
        let owner = Owner::Server(key.branch.clone(), key.sent_by.clone(), key.method.clone());
        if !tx.invite {
            tx.state = SState::Completed;
            let wait = if reliable { Duration::ZERO } else { 64 * T1 };
            self.arm(now + wait, Kind::End, owner);
        } else if code < 300 {
            // RFC 6026 Accepted: the 2xx is retransmitted until its ACK.
            tx.state = SState::Accepted;
            tx.interval = T1;
            if !reliable {
                self.arm(now + T1, Kind::Retransmit, owner.clone());
            }
            self.arm(now + 64 * T1, Kind::Timeout, owner);
        } else {
            tx.state = SState::Completed;
            tx.interval = T1;
            if !reliable {
                self.arm(now + T1, Kind::Retransmit, owner.clone());
            }
            self.arm(now + 64 * T1, Kind::Timeout, owner);
        }
    }

    /// The TU saw the ACK of a 2xx: stop retransmitting it.
    pub fn confirmed(&mut self, key: &ServerKey) {
        self.servers.remove(key);
    }

    /// Sends a request in a new client transaction.
    pub fn send_request(&mut self, msg: Message, to: Target, now: Instant) -> Option<ClientKey> {
        let via = Via::parse(msg.headers.get("Via")?)?;
        let key = ClientKey {
            branch: via.branch?,
            method: msg.method().to_string(),
        };
        let bytes = msg.to_bytes();
        self.outbox.push_back((to, bytes.clone()));
        if msg.method() == "ACK" {
            return None;
        }
        let invite = msg.method() == "INVITE";
        let owner = Owner::Client(key.branch.clone(), key.method.clone());
        if !to.proto.reliable() {
            self.arm(now + T1, Kind::Retransmit, owner.clone());
        }
        self.arm(now + 64 * T1, Kind::Timeout, owner);
        self.clients.insert(
            key.clone(),
            Client {
                invite,
                state: CState::Calling,
                request: bytes,
                ack: None,
                to,
                interval: T1,
                gen: 0,
                req: msg,
            },
        );
        Some(key)
    }

    /// A connection to `addr` could not be made: client transactions
    /// waiting for an answer over it end with [`TxEvent::TransportError`].
    pub fn transport_failed(&mut self, addr: SocketAddr) {
        let failed: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.to.proto.reliable()
                    && c.to.addr == addr
                    && matches!(c.state, CState::Calling | CState::Proceeding)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in failed {
            self.clients.remove(&key);
            self.events.push_back(TxEvent::TransportError { key });
        }
    }

    /// The TU's ACK for a 2xx, resent when the 2xx is retransmitted.
    pub fn set_ack(&mut self, key: &ClientKey, ack: Vec<u8>) {
        if let Some(tx) = self.clients.get_mut(key) {
            tx.ack = Some(ack);
        }
    }

    /// The request a client transaction sent (to build CANCEL from it).
    pub fn client_request(&self, key: &ClientKey) -> Option<&Message> {
        self.clients.get(key).map(|c| &c.req)
    }

    /// True while a client INVITE has had a provisional response but no
    /// final one (when CANCEL may be sent, §9.1).
    pub fn cancellable(&self, key: &ClientKey) -> bool {
        self.clients
            .get(key)
            .is_some_and(|c| c.invite && c.state == CState::Proceeding)
    }

    /// A response from the network.
    pub fn handle_response(&mut self, msg: Message, now: Instant) {
        let Some(via) = msg.headers.get("Via").and_then(Via::parse) else {
            return;
        };
        let Some(branch) = via.branch else {
            return;
        };
        let key = ClientKey {
            branch,
            method: msg.method().to_string(),
        };
        let code = msg.code().unwrap_or(0);
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        let reliable = tx.to.proto.reliable();
        let owner = Owner::Client(key.branch.clone(), key.method.clone());
        match tx.state {
            CState::Completed => {
                // A retransmitted final: ACK again (INVITE), else ignore.
                if let Some(ack) = &tx.ack {
                    self.outbox.push_back((tx.to, ack.clone()));
                }
                return;
            }
            CState::Accepted => {
                if (200..300).contains(&code) {
                    if let Some(ack) = &tx.ack {
                        self.outbox.push_back((tx.to, ack.clone()));
                    }
                }
                return;
            }
            _ => {}
        }
        if code < 200 {
            if tx.state == CState::Calling {
                tx.state = CState::Proceeding;
                if !tx.invite {
                    // Timer E continues at T2 in Proceeding.
                    tx.interval = T2;
                } else {
                    // Timer A stops; Timer B stops too (the TU now waits for
                    // the final response as long as its own timeout says).
                    tx.gen += 1;
                }
            }
            self.events.push_back(TxEvent::Response { key, msg });
            return;
        }
        tx.gen += 1;
        if tx.invite && code < 300 {
            tx.state = CState::Accepted;
            self.arm(now + 64 * T1, Kind::End, owner);
        } else if tx.invite {
            let ack = build_ack(&tx.req, &msg).to_bytes();
            self.outbox.push_back((tx.to, ack.clone()));
            tx.ack = Some(ack);
            tx.state = CState::Completed;
            let wait = if reliable {
                Duration::ZERO
            } else {
                Duration::from_secs(32)
            };
            self.arm(now + wait, Kind::End, owner);
        } else {
            tx.state = CState::Completed;
            let wait = if reliable { Duration::ZERO } else { T4 };
            self.arm(now + wait, Kind::End, owner);
        }
        self.events.push_back(TxEvent::Response { key, msg });
    }

    /// A message sent outside any transaction: the ACK of a 2xx (a
    /// transaction of its own, RFC 3261 §17.1.1.3) or a stateless answer
    /// to a request that did not parse.
    pub fn send_stateless(&mut self, to: Target, bytes: Vec<u8>) {
        self.outbox.push_back((to, bytes));
    }
}

impl Protocol for Transactions {
    type Transmit = (Target, Vec<u8>);
    type Event = TxEvent;

    /// Runs every timer due at `now`.
    fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, ..))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, kind, owner))) = self.timers.pop() else {
                break;
            };
            match owner {
                Owner::Server(branch, sent_by, method) => {
                    let key = ServerKey {
                        branch,
                        sent_by,
                        method,
                    };
                    self.server_timer(key, kind, now);
                }
                Owner::Client(branch, method) => {
                    self.client_timer(ClientKey { branch, method }, kind, now);
                }
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<(Target, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// When the earliest timer (A–K) is due.
    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, ..))| *t)
    }
}

impl Transactions {
    fn server_timer(&mut self, key: ServerKey, kind: Kind, now: Instant) {
        let Some(tx) = self.servers.get_mut(&key) else {
            return;
        };
        match kind {
            Kind::Retransmit => {
                if !matches!(tx.state, SState::Completed | SState::Accepted) {
                    return;
                }
                if let Some(last) = &tx.last {
                    self.outbox.push_back((tx.to, last.clone()));
                }
                tx.interval = (tx.interval * 2).min(T2);
                let at = now + tx.interval;
                let owner = Owner::Server(key.branch, key.sent_by, key.method);
                self.arm(at, Kind::Retransmit, owner);
            }
            Kind::Timeout => {
                if matches!(tx.state, SState::Completed | SState::Accepted) {
                    self.servers.remove(&key);
                    self.events.push_back(TxEvent::NoAck { key });
                }
            }
            Kind::End => {
                if matches!(tx.state, SState::Completed | SState::Confirmed) {
                    self.servers.remove(&key);
                }
            }
        }
    }

    fn client_timer(&mut self, key: ClientKey, kind: Kind, now: Instant) {
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        match kind {
            Kind::Retransmit => {
                let active = match tx.state {
                    CState::Calling => true,
                    CState::Proceeding => !tx.invite,
                    _ => false,
                };
                if !active {
                    return;
                }
                self.outbox.push_back((tx.to, tx.request.clone()));
                tx.interval = if tx.invite {
                    tx.interval * 2
                } else {
                    (tx.interval * 2).min(T2)
                };
                let at = now + tx.interval;
                self.arm(at, Kind::Retransmit, Owner::Client(key.branch, key.method));
            }
            Kind::Timeout => {
                let waiting =
                    tx.state == CState::Calling || (!tx.invite && tx.state == CState::Proceeding);
                if waiting {
                    self.clients.remove(&key);
                    self.events.push_back(TxEvent::Timeout { key });
                }
            }
            Kind::End => {
                if matches!(tx.state, CState::Completed | CState::Accepted) {
                    self.clients.remove(&key);
                }
            }
        }
    }
}

/// The ACK of a non-2xx final response (§17.1.1.3): same Request-URI, top
/// Via, From, Call-ID and CSeq number as the INVITE, To from the response.
pub fn build_ack(invite: &Message, resp: &Message) -> Message {
    let mut ack = Message::request("ACK", invite.uri().unwrap_or(""));
    if let Some(v) = invite.headers.get("Via") {
        ack.headers.push("Via", v);
    }
    ack.headers.push("Max-Forwards", "70");
    for n in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(n) {
            ack.headers.push(n, v);
        }
    }
    if let Some(v) = resp.headers.get("To") {
        ack.headers.push("To", v);
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    ack.headers.push("CSeq", format!("{n} ACK"));
    for r in invite.headers.get_all("Route") {
        ack.headers.push("Route", r);
    }
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            proto: Proto::Udp,
            addr: "127.0.0.1:5062".parse().unwrap(),
            profile: 0,
        }
    }

    fn req(method: &str, branch: &str) -> Message {
        let text = format!(
            "{method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch={branch}\r\n\
From: <sip:a@h>;tag=f\r\nTo: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 1 {m}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            m = if method == "ACK" { "INVITE" } else { method }
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    /// Everything waiting to be sent, taken.
    fn sent(tx: &mut Transactions) -> Vec<(Target, Vec<u8>)> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    /// Every event waiting, taken.
    fn events(tx: &mut Transactions) -> Vec<TxEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    fn count_code(tx: &mut Transactions, code: &str) -> usize {
        sent(tx)
            .iter()
            .filter(|(_, b)| String::from_utf8_lossy(b).starts_with(&format!("SIP/2.0 {code}")))
            .count()
    }

    #[test]
    fn an_invite_gets_100_at_once_and_a_retransmission_gets_the_last_response() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        tx.handle_request(req("INVITE", "z9hG4bK1"), target(), t0);
        assert_eq!(count_code(&mut tx, "100"), 1);
        assert_eq!(events(&mut tx).len(), 1);
        tx.handle_request(req("INVITE", "z9hG4bK1"), target(), t0);
        assert_eq!(count_code(&mut tx, "100"), 1);
        assert!(
            events(&mut tx).is_empty(),
            "a retransmission is not a new request"
        );
    }

    #[test]
    fn a_final_error_is_retransmitted_by_timer_g_until_the_ack() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        let invite = req("INVITE", "z9hG4bK2");
        tx.handle_request(invite.clone(), target(), t0);
        let Some(TxEvent::Request { key, .. }) = tx.poll_event() else {
            panic!()
        };
        sent(&mut tx);
        tx.respond(
            &key,
            &Message::response_to(&invite, 486, "Busy Here", Some("t")),
            t0,
        );
        assert_eq!(count_code(&mut tx, "486"), 1);
        tx.handle_timeout(t0 + T1);
        assert_eq!(count_code(&mut tx, "486"), 1, "G fires at T1");
        tx.handle_timeout(t0 + T1 + T1);
        assert_eq!(count_code(&mut tx, "486"), 0, "then at 2·T1 after that");
        tx.handle_timeout(t0 + 3 * T1);
        assert_eq!(count_code(&mut tx, "486"), 1);
        tx.handle_request(req("ACK", "z9hG4bK2"), target(), t0 + 4 * T1);
        tx.handle_timeout(t0 + 20 * T1);
        assert_eq!(count_code(&mut tx, "486"), 0, "the ACK stops G");
        assert_eq!(tx.len().0, 0, "timer I ended the transaction");
        assert!(
            tx.poll_event().is_none(),
            "an absorbed ACK does not reach the TU"
        );
    }

    #[test]
    fn timer_h_reports_a_final_response_never_acknowledged() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        let invite = req("INVITE", "z9hG4bK3");
        tx.handle_request(invite.clone(), target(), t0);
        let Some(TxEvent::Request { key, .. }) = tx.poll_event() else {
            panic!()
        };
        tx.respond(
            &key,
            &Message::response_to(&invite, 200, "OK", Some("t")),
            t0,
        );
        tx.handle_timeout(t0 + 64 * T1);
        assert!(matches!(tx.poll_event(), Some(TxEvent::NoAck { .. })));
        assert_eq!(tx.len().0, 0);
    }

    #[test]
    fn a_client_invite_retransmits_on_a_until_b_times_out() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        tx.send_request(req("INVITE", "z9hG4bKc1"), target(), t0)
            .unwrap();
        sent(&mut tx);
        let mut retransmitted = 0;
        let mut t = t0;
        while t < t0 + 64 * T1 {
            t += Duration::from_millis(100);
            tx.handle_timeout(t);
            retransmitted += sent(&mut tx).len();
        }
        // A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(retransmitted, 6);
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout { .. })));
    }

    #[test]
    fn a_client_invite_acks_a_failure_itself_and_absorbs_its_retransmission() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        let invite = req("INVITE", "z9hG4bKc2");
        tx.send_request(invite.clone(), target(), t0).unwrap();
        sent(&mut tx);
        let busy = Message::response_to(&invite, 486, "Busy Here", Some("x"));
        tx.handle_response(busy.clone(), t0);
        assert_eq!(events(&mut tx).len(), 1);
        let acks = |tx: &mut Transactions| {
            sent(tx)
                .iter()
                .filter(|(_, b)| b.starts_with(b"ACK "))
                .count()
        };
        assert_eq!(acks(&mut tx), 1);
        tx.handle_response(busy, t0);
        assert_eq!(acks(&mut tx), 1, "a retransmitted final is ACKed again");
        assert!(events(&mut tx).is_empty(), "and not reported twice");
    }

    #[test]
    fn a_non_invite_client_retransmits_at_most_every_t2_and_times_out_on_f() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        tx.send_request(req("OPTIONS", "z9hG4bKc3"), target(), t0)
            .unwrap();
        sent(&mut tx);
        let mut times = Vec::new();
        let mut t = t0;
        while t < t0 + 64 * T1 {
            t += Duration::from_millis(50);
            tx.handle_timeout(t);
            if !sent(&mut tx).is_empty() {
                times.push(t - t0);
            }
        }
        let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= T2 + Duration::from_millis(50)));
        assert!(matches!(tx.poll_event(), Some(TxEvent::Timeout { .. })));
    }

    #[test]
    fn a_refused_connection_ends_the_requests_sent_over_it() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        let tcp = Target {
            proto: Proto::Tcp,
            ..target()
        };
        tx.send_request(req("INVITE", "z9hG4bKt1"), tcp, t0)
            .unwrap();
        tx.send_request(req("OPTIONS", "z9hG4bKt2"), target(), t0)
            .unwrap();
        tx.transport_failed(tcp.addr);
        assert!(matches!(
            tx.poll_event(),
            Some(TxEvent::TransportError { key }) if key.method == "INVITE"
        ));
        assert!(tx.poll_event().is_none(), "UDP requests are not affected");
        assert_eq!(tx.len().1, 1);
    }

    #[test]
    fn responses_go_to_the_rport_or_to_the_via_port_at_the_source_address() {
        let mut tx = Transactions::default();
        let t0 = Instant::now();
        let from = Target {
            addr: "192.0.2.7:40001".parse().unwrap(),
            ..target()
        };
        let with_rport = Message::parse(
            String::from_utf8_lossy(&req("OPTIONS", "z9hG4bKr1").to_bytes())
                .replace("z9hG4bKr1", "z9hG4bKr1;rport=40001")
                .as_bytes(),
        )
        .unwrap();
        tx.handle_request(with_rport, from, t0);
        tx.handle_request(req("INVITE", "z9hG4bKr2"), from, t0);
        let to: Vec<SocketAddr> = sent(&mut tx).iter().map(|(t, _)| t.addr).collect();
        assert_eq!(
            to,
            vec!["192.0.2.7:5062".parse().unwrap()],
            "the INVITE's 100"
        );
        for ev in events(&mut tx) {
            if let TxEvent::Request { key, msg, .. } = ev {
                tx.respond(&key, &Message::response_to(&msg, 200, "OK", Some("t")), t0);
            }
        }
        let to: Vec<SocketAddr> = sent(&mut tx).iter().map(|(t, _)| t.addr).collect();
        assert_eq!(
            to,
            [
                "192.0.2.7:40001".parse().unwrap(),
                "192.0.2.7:5062".parse().unwrap()
            ]
        );
    }

    #[test]
    fn an_unmatched_ack_goes_to_the_tu() {
        let mut tx = Transactions::default();
        tx.handle_request(req("ACK", "z9hG4bKnew"), target(), Instant::now());
        assert!(matches!(tx.poll_event(), Some(TxEvent::Ack { .. })));
    }
}

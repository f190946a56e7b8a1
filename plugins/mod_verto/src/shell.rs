//! The module's I/O shell around [`Conn`]: listeners bound at load (a busy
//! port fails the load), a single-threaded tokio runtime on the module's
//! runtime thread serving every WebSocket connection (wss through rustls),
//! and the stop at unload that ends the runtime — listeners, connections
//! and their tasks are dropped before the runtime thread returns.
//!
//! Live reload: [`hand_over`] stops accepting on every listener (they stay
//! open) and names their descriptors `"<ws|wss> <ip>:<port>"`; the next
//! version's [`prepare`] adopts a handed listener of the same name instead
//! of binding, so the port never closes. The connections this version
//! accepted, their logins and calls stay here to their end; [`resume`]
//! (the reload failed) accepts again. While handed over, a connection
//! without calls is closed (1001, going away) as soon as it has none, so
//! its client reconnects — to the new version — and can be called again:
//! the new version does not know the logins of the old one.
//!
//! It also keeps what outlives one connection: client sessions (`sessid`)
//! and the answered calls they carry, so a client that reconnects within
//! `detach-timeout-sec` gets its calls back (`verto.attach`) and an older
//! connection of the same session is punted (`verto.punt`); event-channel
//! subscriptions (`verto.subscribe` / `verto.broadcast` → `verto.event`);
//! chat delivery to every connection of a user.

use crate::config::{Config, Profile};
use crate::conn::{self, ChatOut, Conn, Invite, Reattach, Subscribed, Switch};
use crate::endpoint::{self, Accepted, ClientCall, Leg, Withdrawn, PLACEHOLDER_SDP};
use crate::{media, tls};
use futures_util::{SinkExt, StreamExt};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{
    CallCause, ChannelState, Chat, ModuleContext, Profile as CallerProfile, Status,
};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{channel, error::TrySendError, Sender};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The largest message a client may send (FreeSWITCH's clients send SDP
/// of a few KiB); a bigger one closes the connection.
const MAX_MESSAGE: usize = 256 * 1024;

/// How long a client has for the TLS and WebSocket handshakes.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What the switch may queue for one connection (calls' news, events,
/// chat); past it a client that does not read loses them, and one that
/// does not take a frame within [`WRITE_WAIT`] is disconnected.
const QUEUE: usize = 1024;
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// The event channels one connection may subscribe to.
const MAX_SUBSCRIPTIONS: usize = 1000;

/// Event ids (FreeSWITCH's numbering) this module fires.
const EV_CUSTOM: u32 = hotswitch_plugin_api::EventId::CUSTOM.id();

/// What the switch tells a connection.
#[derive(Debug)]
pub enum ToConn {
    /// The switch answered the client's call.
    Answered { call_id: String, sdp: String },
    /// Early media on the client's call.
    EarlyMedia { call_id: String, sdp: String },
    /// The call ended on the switch's side.
    HungUp { call_id: String, cause: CallCause },
    /// Digits towards the client.
    Dtmf { call_id: String, digits: String },
    /// An outbound call to offer the client.
    Invite {
        call_id: String,
        uuid: String,
        caller_id_name: String,
        caller_id_number: String,
        sdp: String,
    },
    /// The far party's name and number changed.
    Display {
        call_id: String,
        name: String,
        number: String,
    },
    /// A newer connection took the client's session: say so and close.
    Punt,
    /// A request to pass on as it is (`verto.event`, chat's `verto.info`).
    Request {
        method: &'static str,
        params: Map<String, Value>,
    },
    /// The listeners are handed over: close when no call is left.
    Drain,
}

struct Client {
    tx: Sender<ToConn>,
    /// Messages dropped because it did not read.
    dropped: AtomicU64,
    /// Where its calls' media is offered.
    rtp_ip: IpAddr,
    /// `user@domain` once logged in.
    user: Option<String>,
    /// Its client session once logged in.
    sessid: Option<String>,
}

/// A client session: the connection it is on (none while detached) and
/// the answered calls it carries.
struct Sess {
    conn: Option<u64>,
    user: String,
    calls: HashSet<String>,
    detached_at: Option<Instant>,
}

struct Sub {
    conn: u64,
    serno: u64,
}

impl Client {
    /// Queues `m`; false (and a warning) when the connection's queue is
    /// full or gone.
    fn tell(&self, m: ToConn) -> bool {
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    log::warn!(
                        "verto connection of {} is not reading: {n} message(s) dropped",
                        self.user.as_deref().unwrap_or("a client")
                    );
                }
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
struct State {
    clients: HashMap<u64, Client>,
    sessions: HashMap<String, Sess>,
    channels: HashMap<String, Vec<Sub>>,
    detach_timeout: Duration,
}

struct Prepared {
    listeners: Vec<(Arc<Profile>, std::net::TcpListener, Option<TlsAcceptor>)>,
    stop: watch::Receiver<bool>,
    accepting: watch::Receiver<bool>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);
static STOP: Mutex<Option<watch::Sender<bool>>> = Mutex::new(None);
static STOPPING: AtomicBool = AtomicBool::new(false);
static RUNTIME: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
/// Every listener's handover name and descriptor (valid until the runtime
/// ends: the accept tasks own the sockets).
static LISTENING: Mutex<Vec<(String, RawFd)>> = Mutex::new(Vec::new());
/// false while the listeners are handed over: the accept tasks wait.
static ACCEPTING: Mutex<Option<watch::Sender<bool>>> = Mutex::new(None);
/// Handed over: connections close once they carry no call.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Runs `f` on the module's state (none once stopped).
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.lock().as_mut().map(f)
}

/// A fresh uuid (session ids, outbound call ids).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Queues `m` for the connection that carries client session `sessid`
/// (dropped while the session is detached).
pub fn send_to(sessid: &str, m: ToConn) {
    with_state(|st| {
        let conn = st.sessions.get(sessid).and_then(|s| s.conn)?;
        st.clients.get(&conn).map(|c| c.tell(m))
    });
}

/// The client sessions a `verto.rtc` dial string reaches, and where their
/// media goes: `u:<sessid>` one session, `<user>@<domain>` every
/// connection logged in as that user.
pub fn clients_for(target: &str) -> Vec<(String, IpAddr)> {
    with_state(|st| {
        st.clients
            .values()
            .filter_map(|c| {
                let sessid = c.sessid.as_ref()?;
                let hit = match target.strip_prefix("u:") {
                    Some(id) => sessid == id,
                    None => c
                        .user
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(target)),
                };
                hit.then(|| (sessid.clone(), c.rtp_ip))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The session `sessid` carries answered call `uuid`.
fn own_call(sessid: &str, uuid: &str) {
    with_state(|st| {
        if let Some(s) = st.sessions.get_mut(sessid) {
            s.calls.insert(uuid.to_string());
        }
    });
}

/// Call `uuid` of session `sessid` ended.
pub fn call_gone(sessid: &str, uuid: &str) {
    with_state(|st| {
        let Some(s) = st.sessions.get_mut(sessid) else {
            return;
        };
        s.calls.remove(uuid);
        if s.conn.is_none() && s.calls.is_empty() {
            st.sessions.remove(sessid);
        } else if s.calls.is_empty() && DRAINING.load(Ordering::Acquire) {
            if let Some(c) = s.conn.and_then(|c| st.clients.get(&c)) {
                c.tell(ToConn::Drain);
            }
        }
    });
}

/// Whether client session `sessid` (none: not logged in) carries no
/// answered call: while handed over, its connection may close.
fn idle_session(sessid: Option<&str>) -> bool {
    with_state(|st| {
        sessid
            .and_then(|s| st.sessions.get(s))
            .is_none_or(|s| s.calls.is_empty())
    })
    .unwrap_or(true)
}

/// Delivers a chat message to every connection logged in as `to`; how
/// many got it.
pub fn deliver_chat(from: &str, to: &str, body: &str, headers: &[(String, String)]) -> usize {
    let mut msg = Map::new();
    msg.insert("from".into(), json!(from));
    msg.insert("to".into(), json!(to));
    msg.insert("body".into(), json!(body));
    let mut call_id = None;
    for (k, v) in headers {
        if k.starts_with("from_") || k.starts_with("to_") {
            msg.insert(k.clone(), json!(v));
        } else if k == "call_id" {
            call_id = Some(v.clone());
        }
    }
    with_state(|st| {
        let mut hits = 0;
        for c in st.clients.values() {
            if c.sessid.is_some()
                && c.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(to))
            {
                let mut params = Map::new();
                if let Some(id) = &call_id {
                    params.insert("callID".into(), json!(id));
                }
                params.insert("msg".into(), Value::Object(msg.clone()));
                if c.tell(ToConn::Request {
                    method: "verto.info",
                    params,
                }) {
                    hits += 1;
                }
            }
        }
        hits
    })
    .unwrap_or(0)
}

/// Runs `f` in the module's runtime (to start tasks from a host thread).
pub fn on_runtime<R>(f: impl FnOnce() -> R) -> Option<R> {
    let h = RUNTIME.lock().clone()?;
    let _entered = h.enter();
    Some(f())
}

/// `rtp-ip`, else the first listener's address.
fn rtp_ip(p: &Profile) -> IpAddr {
    p.rtp_ip
        .or_else(|| p.binds.first().map(|a| a.ip()))
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
}

/// A listener's handover name: `"ws 127.0.0.1:8081"`, `"wss [::1]:8082"`.
pub fn listener_name(secure: bool, addr: SocketAddr) -> String {
    format!("{} {addr}", if secure { "wss" } else { "ws" })
}

/// Load: binds every profile's listeners (and reads or makes the
/// certificate of its secure ones). A listener `inherited` hands over by
/// its name (the previous version's, on a live reload) is adopted instead
/// of bound.
pub fn prepare(
    config: Config,
    inherited: &mut dyn FnMut(&str) -> Option<OwnedFd>,
) -> Result<(), String> {
    let mut listeners = Vec::new();
    let mut names = Vec::new();
    for p in config.profiles {
        let p = Arc::new(p);
        let acceptor = if p.secure_binds.is_empty() {
            None
        } else {
            Some(tls::acceptor(&p).map_err(|e| format!("profile {}: {e}", p.name))?)
        };
        let all = p
            .binds
            .iter()
            .map(|a| (*a, None))
            .chain(p.secure_binds.iter().map(|a| (*a, acceptor.clone())));
        for (addr, tls) in all {
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            let name = listener_name(tls.is_some(), addr);
            let l = match inherited(&name) {
                Some(fd) => {
                    log::info!(
                        "verto profile {} listening on {scheme}://{addr} (handed over by the previous version)",
                        p.name
                    );
                    std::net::TcpListener::from(fd)
                }
                None => {
                    let l = std::net::TcpListener::bind(addr)
                        .map_err(|e| format!("profile {}: cannot bind {addr}: {e}", p.name))?;
                    log::info!("verto profile {} listening on {scheme}://{addr}", p.name);
                    l
                }
            };
            l.set_nonblocking(true)
                .map_err(|e| format!("profile {}: {addr}: {e}", p.name))?;
            names.push((name, l.as_raw_fd()));
            listeners.push((p.clone(), l, tls));
        }
    }
    let (tx, rx) = watch::channel(false);
    let (accept_tx, accept_rx) = watch::channel(true);
    STOPPING.store(false, Ordering::Release);
    DRAINING.store(false, Ordering::Release);
    *STOP.lock() = Some(tx);
    *ACCEPTING.lock() = Some(accept_tx);
    *LISTENING.lock() = names;
    *STATE.lock() = Some(State {
        detach_timeout: Duration::from_secs(config.detach_timeout_secs),
        ..State::default()
    });
    *PREPARED.lock() = Some(Prepared {
        listeners,
        stop: rx,
        accepting: accept_rx,
    });
    Ok(())
}

/// Live reload, old version: stops accepting on every listener (each
/// stays open, its backlog for the successor) and returns their names and
/// descriptors. Once it returns no connection is accepted here any more:
/// a round on the runtime thread lets an accept already under way finish
/// first (that connection stays here, as every one accepted before).
pub fn hand_over() -> Vec<(String, RawFd)> {
    if let Some(tx) = ACCEPTING.lock().as_ref() {
        tx.send_replace(false);
    }
    DRAINING.store(true, Ordering::Release);
    with_state(|st| {
        for c in st.clients.values() {
            c.tell(ToConn::Drain);
        }
    });
    if let Some(h) = RUNTIME.lock().clone() {
        let (tx, rx) = std::sync::mpsc::channel();
        h.spawn(async move {
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(2)).is_err() {
            log::warn!("verto: the runtime did not take the handover within 2 s");
        }
    }
    let fds = LISTENING.lock().clone();
    for (name, _) in &fds {
        log::info!("verto: {name} handed over; no longer accepting here");
    }
    fds
}

/// Live reload failed after [`hand_over`]: accept again.
pub fn resume() {
    DRAINING.store(false, Ordering::Release);
    if let Some(tx) = ACCEPTING.lock().as_ref() {
        tx.send_replace(true);
    }
    log::info!("verto: accepting again (the reload did not complete)");
}

/// The connections this version serves (logged in or not).
pub fn connections() -> usize {
    with_state(|st| st.clients.len()).unwrap_or(0)
}

/// The runtime thread: serves until unload.
pub fn run() -> Status {
    let Some(p) = PREPARED.lock().take() else {
        return Status::TERM;
    };
    if STOPPING.load(Ordering::Acquire) {
        return Status::TERM;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the verto runtime: {e}");
            return Status::TERM;
        }
    };
    *RUNTIME.lock() = Some(rt.handle().clone());
    rt.block_on(serve(p));
    *RUNTIME.lock() = None;
    // Drops every connection task (and its socket) still pending.
    drop(rt);
    *STATE.lock() = None;
    log::info!("mod_verto stopped");
    Status::TERM
}

/// Unload: the runtime thread ends.
pub fn stop() {
    STOPPING.store(true, Ordering::Release);
    if let Some(tx) = STOP.lock().take() {
        let _ = tx.send(true);
    }
    drop(PREPARED.lock().take());
    LISTENING.lock().clear();
}

async fn serve(p: Prepared) {
    let Prepared {
        listeners,
        mut stop,
        accepting,
    } = p;
    for (profile, l, tls) in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => {
                tokio::spawn(accept(profile, l, tls, accepting.clone()));
            }
            Err(e) => log::error!("profile {}: {e}", profile.name),
        }
    }
    tokio::spawn(expire_detached());
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
}

/// Hangs up the calls of sessions detached for longer than
/// `detach-timeout-sec` (FreeSWITCH's cause: RECOVERY_ON_TIMER_EXPIRE).
async fn expire_detached() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let expired: Vec<(String, Vec<String>)> = with_state(|st| {
            let limit = st.detach_timeout;
            let gone: Vec<String> = st
                .sessions
                .iter()
                .filter(|(_, s)| s.detached_at.is_some_and(|t| t.elapsed() >= limit))
                .map(|(id, _)| id.clone())
                .collect();
            gone.into_iter()
                .filter_map(|id| {
                    let s = st.sessions.remove(&id)?;
                    Some((id, s.calls.into_iter().collect()))
                })
                .collect()
        })
        .unwrap_or_default();
        for (sessid, calls) in expired {
            for uuid in calls {
                log::info!("verto session {sessid} did not come back: hanging up {uuid}");
                if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                    s.hangup(CallCause::RECOVERY_ON_TIMER_EXPIRE);
                }
            }
        }
    }
}

/// Accepts on `l` while `accepting` says so; while it does not (the
/// listener is handed over) the socket stays open and untouched.
async fn accept(
    profile: Arc<Profile>,
    l: TcpListener,
    tls: Option<TlsAcceptor>,
    mut accepting: watch::Receiver<bool>,
) {
    loop {
        if !*accepting.borrow_and_update() {
            if accepting.changed().await.is_err() {
                return;
            }
            continue;
        }
        // A handover seen first: never accept once it is asked for.
        let got = tokio::select! {
            biased;
            r = accepting.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
            got = l.accept() => got,
        };
        match got {
            Ok((s, peer)) => {
                let profile = profile.clone();
                match tls.clone() {
                    None => tokio::spawn(client(profile, s, peer)),
                    Some(tls) => tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE, tls.accept(s)).await {
                            Ok(Ok(s)) => client(profile, s, peer).await,
                            Ok(Err(e)) => log::info!("verto {peer}: TLS handshake failed: {e}"),
                            Err(_) => log::info!("verto {peer}: TLS handshake timed out"),
                        }
                    }),
                };
            }
            Err(e) => {
                log::debug!("verto accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One WebSocket connection: the client's frames and the switch's news go
/// into the [`Conn`] (`handle_*`); after each, its events are acted on
/// (`poll_event`), then what it transmits is written (`poll_transmit`).
async fn client<S>(profile: Arc<Profile>, s: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let handshake = tokio_tungstenite::accept_async_with_config(s, Some(cfg));
    let ws = match tokio::time::timeout(HANDSHAKE, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            log::debug!("verto {peer}: handshake failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("verto {peer}: handshake timed out");
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = channel(QUEUE);
    let rtp_ip = rtp_ip(&profile);
    with_state(|st| {
        st.clients.insert(
            id,
            Client {
                tx: tx.clone(),
                dropped: AtomicU64::new(0),
                rtp_ip,
                user: None,
                sessid: None,
            },
        )
    });
    log::info!("verto {peer} connected to profile {}", profile.name);
    let mut conn = Conn::new(profile.settings.clone());
    let mut sw = HostSwitch {
        conn: id,
        rtp_ip,
        profile: profile.clone(),
        peer,
    };
    loop {
        let mut punted = false;
        tokio::select! {
            m = source.next() => {
                let now = Instant::now();
                match m {
                    Some(Ok(Message::Text(t))) => conn.handle_text(t.as_str(), &mut sw, &new_id(), now),
                    Some(Ok(Message::Binary(_))) => conn.handle_text("", &mut sw, "", now),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log::info!("verto {peer}: {e}; closing");
                        break;
                    }
                }
            },
            ev = rx.recv() => {
                let now = Instant::now();
                match ev {
                    Some(ToConn::Answered { call_id, sdp }) => conn.handle_answered(&call_id, &sdp, now),
                    Some(ToConn::EarlyMedia { call_id, sdp }) => conn.handle_early_media(&call_id, &sdp, now),
                    Some(ToConn::HungUp { call_id, cause }) => conn.handle_hung_up(&call_id, cause, now),
                    Some(ToConn::Dtmf { call_id, digits }) => conn.handle_dtmf(&call_id, &digits, now),
                    Some(ToConn::Invite { call_id, uuid, caller_id_name, caller_id_number, sdp }) => {
                        conn.handle_invite(&call_id, &uuid, (&caller_id_name, &caller_id_number), &sdp, now)
                    }
                    Some(ToConn::Display { call_id, name, number }) => conn.handle_display(&call_id, &name, &number, now),
                    Some(ToConn::Punt) => {
                        log::warn!("verto {peer}: a new connection took session {}; dropping this one", conn.sessid().unwrap_or(""));
                        punted = true;
                        conn.handle_notify("verto.punt", Map::new(), now);
                    }
                    Some(ToConn::Request { method, params }) => conn.handle_notify(method, params, now),
                    Some(ToConn::Drain) | None => {}
                }
            },
        };
        // Events first: a login's event is fired before its reply is sent.
        while let Some(e) = conn.poll_event() {
            sw.event(e);
        }
        let mut failed = false;
        while let Some(f) = conn.poll_transmit() {
            match tokio::time::timeout(WRITE_WAIT, sink.send(Message::text(f))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    failed = true;
                    break;
                }
                Err(_) => {
                    log::warn!("verto {peer}: not reading for {WRITE_WAIT:?}; disconnecting");
                    failed = true;
                    break;
                }
            }
        }
        if failed || punted || conn.must_close() {
            let _ = sink.close().await;
            break;
        }
        if DRAINING.load(Ordering::Acquire) && !conn.has_calls() && idle_session(conn.sessid()) {
            // Handed over: the client reconnects to the new version.
            log::info!("verto {peer}: no call left on the version handed over; closing");
            let away = CloseFrame {
                code: CloseCode::Away,
                reason: "reload".into(),
            };
            let _ = tokio::time::timeout(WRITE_WAIT, sink.send(Message::Close(Some(away)))).await;
            break;
        }
    }
    conn.handle_closed(Instant::now());
    while let Some(e) = conn.poll_event() {
        sw.event(e);
    }
    log::info!("verto {peer} disconnected");
}

/// Connection `id` is gone: its subscriptions end; calls still ringing
/// it are withdrawn; answered calls stay with its client session, which
/// detaches (kept `detach-timeout-sec` for the client to come back),
/// unless a newer connection already took the session.
fn closed(id: u64, sessid: Option<String>, calls: Vec<(String, String)>, peer: SocketAddr) {
    let (owner, keep) = with_state(|st| {
        st.clients.remove(&id);
        for subs in st.channels.values_mut() {
            subs.retain(|s| s.conn != id);
        }
        st.channels.retain(|_, subs| !subs.is_empty());
        let owner = sessid
            .as_ref()
            .and_then(|s| st.sessions.get(s))
            .is_some_and(|s| s.conn == Some(id));
        (owner, !st.detach_timeout.is_zero())
    })
    .unwrap_or((false, false));
    let sessid = sessid.unwrap_or_default();
    for (call_id, uuid) in calls {
        let Some(s) = ModuleContext::current().session_locate(&uuid) else {
            continue;
        };
        let Some(leg) = endpoint::leg_of(&s) else {
            continue;
        };
        let by = ClientCall {
            sessid: sessid.clone(),
            call_id: call_id.clone(),
        };
        match leg.withdraw(&by) {
            Withdrawn::Last => {
                log::info!("verto {peer} gone: hanging up unanswered call {call_id}");
                s.hangup(CallCause::DESTINATION_OUT_OF_ORDER);
            }
            Withdrawn::Owner if owner && !keep => {
                log::info!("verto {peer} gone: hanging up call {call_id}");
                s.hangup(CallCause::NORMAL_CLEARING);
            }
            Withdrawn::Owner if owner => {
                log::info!(
                    "verto {peer} gone: call {call_id} waits for session {sessid} to come back"
                );
            }
            _ => {}
        }
    }
    if owner {
        with_state(|st| {
            if let Some(s) = st.sessions.get_mut(&sessid) {
                s.conn = None;
                if s.calls.is_empty() {
                    st.sessions.remove(&sessid);
                } else {
                    s.detached_at = Some(Instant::now());
                }
            }
        });
    }
}

/// The switch as a connection sees it: the directory, sessions.
struct HostSwitch {
    /// The connection's id.
    conn: u64,
    rtp_ip: IpAddr,
    profile: Arc<Profile>,
    peer: SocketAddr,
}

fn user_data(user: &str, domain: &str, what: &str) -> Option<String> {
    if !hotswitch_plugin_api::is_api_word(user) || !hotswitch_plugin_api::is_api_word(domain) {
        return None;
    }
    ModuleContext::current()
        .execute_api("user_data", &format!("{user}@{domain} {what}"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with("-ERR"))
}

impl Switch for HostSwitch {
    fn password(&mut self, user: &str, domain: &str) -> Option<String> {
        user_data(user, domain, "param password")
    }

    fn user_var(&mut self, user: &str, domain: &str, name: &str) -> Option<String> {
        user_data(user, domain, &format!("var {name}"))
    }

    fn invite(&mut self, i: &Invite) -> Result<String, String> {
        let s = ModuleContext::current()
            .session_request("verto.rtc", false)
            .map_err(|e| format!("no session: {e}"))?;
        let name = format!("verto.rtc/{}", i.destination);
        let number = if i.caller_id_number.is_empty() {
            i.user.clone()
        } else {
            i.caller_id_number.clone()
        };
        let profile = CallerProfile {
            username: i.user.clone(),
            dialplan: i.dialplan.clone(),
            caller_id_name: if i.caller_id_name.is_empty() {
                number.clone()
            } else {
                i.caller_id_name.clone()
            },
            caller_id_number: number,
            network_addr: self.peer.ip().to_string(),
            destination_number: i.destination.clone(),
            source: "mod_verto".into(),
            context: i.context.clone(),
            chan_name: name.clone(),
            ..Default::default()
        };
        s.set_name(&name);
        s.set_profile(&profile);
        for (k, v) in [
            ("verto_user", i.user.as_str()),
            ("verto_host", i.domain.as_str()),
            ("verto_profile_name", self.profile.name.as_str()),
            ("verto_client_address", &self.peer.to_string()),
            ("verto_call_id", i.call_id.as_str()),
            ("switch_r_sdp", i.sdp.as_str()),
        ] {
            if !v.is_empty() {
                s.set_var(k, v);
            }
        }
        let (media, local_sdp) = match media::answer(&i.sdp, self.rtp_ip) {
            Ok((m, sdp)) => (Some(m), sdp),
            Err(e) => {
                log::info!("verto.invite {}: no WebRTC media ({e})", i.call_id);
                (None, PLACEHOLDER_SDP.to_string())
            }
        };
        s.set_var("switch_l_sdp", &local_sdp);
        s.set_var("jsock_uuid_str", &i.sessid);
        let owner = ClientCall {
            sessid: i.sessid.clone(),
            call_id: i.call_id.clone(),
        };
        endpoint::attach(&s, Leg::inbound(owner, media, local_sdp));
        own_call(&i.sessid, &s.uuid());
        s.set_state(ChannelState::INIT)
            .map_err(|e| format!("CS_INIT: {e}"))?;
        s.start().map_err(|e| format!("start: {e}"))?;
        Ok(s.uuid())
    }

    fn answer(&mut self, uuid: &str, by: &ClientCall, sdp: &str) -> bool {
        let Some(s) = ModuleContext::current().session_locate(uuid) else {
            return false;
        };
        let Some(leg) = endpoint::leg_of(&s) else {
            return false;
        };
        let was_answered = leg.is_answered();
        let Accepted::Won(lost) = leg.accept(by, sdp) else {
            return false;
        };
        for l in lost {
            send_to(
                &l.to.sessid,
                ToConn::HungUp {
                    call_id: l.to.call_id,
                    cause: CallCause::LOSE_RACE,
                },
            );
        }
        s.set_var("switch_r_sdp", sdp);
        if was_answered {
            log::info!("{uuid} reattached to verto session {}", by.sessid);
        } else {
            own_call(&by.sessid, uuid);
            s.set_var("jsock_uuid_str", &by.sessid);
            s.mark_answered();
        }
        true
    }

    fn hangup(&mut self, uuid: &str, by: &ClientCall, cause: CallCause) -> bool {
        let Some(s) = ModuleContext::current().session_locate(uuid) else {
            return false;
        };
        let Some(leg) = endpoint::leg_of(&s) else {
            return false;
        };
        match leg.withdraw(by) {
            // One of several clients rung declined: the others still ring.
            Withdrawn::Offer => true,
            Withdrawn::None => false,
            Withdrawn::Last | Withdrawn::Owner => {
                s.set_var("verto_hangup_disposition", "recv_bye");
                s.hangup(cause);
                true
            }
        }
    }

    fn hold(&mut self, uuid: &str, held: bool) -> bool {
        let Some(s) = ModuleContext::current().session_locate(uuid) else {
            return false;
        };
        s.set_var("verto_hold", if held { "true" } else { "" });
        s.mark_hold(held);
        log::info!("{uuid} {}", if held { "on hold" } else { "off hold" });
        true
    }

    fn bind_session(&mut self, sessid: &str, user: &str) -> Option<Vec<Reattach>> {
        let calls = with_state(|st| {
            if let Some(c) = st.clients.get_mut(&self.conn) {
                c.user = Some(user.to_string());
                c.sessid = Some(sessid.to_string());
            }
            match st.sessions.get_mut(sessid) {
                Some(s) if !s.user.eq_ignore_ascii_case(user) => {
                    log::warn!(
                        "verto {}: {user} may not take over session {sessid} of {}",
                        self.peer,
                        s.user
                    );
                    None
                }
                Some(s) => {
                    if let Some(old) = s.conn.filter(|c| *c != self.conn) {
                        if let Some(c) = st.clients.get(&old) {
                            c.tell(ToConn::Punt);
                        }
                    }
                    s.conn = Some(self.conn);
                    s.detached_at = None;
                    Some(s.calls.iter().cloned().collect::<Vec<_>>())
                }
                None => {
                    st.sessions.insert(
                        sessid.to_string(),
                        Sess {
                            conn: Some(self.conn),
                            user: user.to_string(),
                            calls: HashSet::new(),
                            detached_at: None,
                        },
                    );
                    Some(Vec::new())
                }
            }
        })
        .flatten();
        let Some(calls) = calls else {
            with_state(|st| {
                if let Some(c) = st.clients.get_mut(&self.conn) {
                    c.sessid = None;
                }
            });
            return None;
        };
        // Each answered call gets new media, offered to the client.
        let mut out = Vec::new();
        for uuid in calls {
            let Some(s) = ModuleContext::current().session_locate(&uuid) else {
                continue;
            };
            let Some(leg) = endpoint::leg_of(&s) else {
                continue;
            };
            let Some(owner) = leg.owner().filter(|_| leg.is_answered()) else {
                continue;
            };
            let (media, sdp) = match media::offer(self.rtp_ip) {
                Ok((m, sdp)) => (Some(m), sdp),
                Err(e) => {
                    log::warn!("reattaching {uuid}: no WebRTC media ({e})");
                    (None, PLACEHOLDER_SDP.to_string())
                }
            };
            let to = ClientCall {
                sessid: sessid.to_string(),
                call_id: owner.call_id,
            };
            leg.offer(endpoint::Offer {
                to: to.clone(),
                media,
            });
            log::info!(
                "verto {}: offering call {uuid} again to session {sessid}",
                self.peer
            );
            out.push(Reattach {
                call_id: to.call_id,
                uuid,
                sdp,
            });
        }
        Some(out)
    }

    fn subscribe(&mut self, user: &str, channel: &str) -> Subscribed {
        if !self.may_use(user, channel) {
            return Subscribed::Unauthorized;
        }
        with_state(|st| {
            let subscribed = |subs: &Vec<Sub>| subs.iter().any(|s| s.conn == self.conn);
            if st.channels.get(channel).is_some_and(subscribed) {
                return Subscribed::Already;
            }
            if st.channels.values().filter(|subs| subscribed(subs)).count() >= MAX_SUBSCRIPTIONS {
                log::warn!(
                    "verto {}: more than {MAX_SUBSCRIPTIONS} event channels refused",
                    self.peer
                );
                return Subscribed::Unauthorized;
            }
            st.channels
                .entry(channel.to_string())
                .or_default()
                .push(Sub {
                    conn: self.conn,
                    serno: 0,
                });
            Subscribed::Now
        })
        .unwrap_or(Subscribed::Unauthorized)
    }

    fn unsubscribe(&mut self, channel: &str) -> bool {
        with_state(|st| {
            let Some(subs) = st.channels.get_mut(channel) else {
                return false;
            };
            let before = subs.len();
            subs.retain(|s| s.conn != self.conn);
            let gone = subs.len() != before;
            if subs.is_empty() {
                st.channels.remove(channel);
            }
            gone
        })
        .unwrap_or(false)
    }

    fn broadcast(&mut self, user: &str, event: Value) -> bool {
        let Some(channel) = event.get("eventChannel").and_then(Value::as_str) else {
            return false;
        };
        if !self.may_use(user, channel) {
            return false;
        }
        publish(channel, &event);
        true
    }

    fn chat(&mut self, chat: &ChatOut) -> bool {
        if chat.proto == "verto" {
            return deliver_chat(&chat.from, &chat.to, &chat.body, &chat.headers) > 0;
        }
        let mut headers = chat.headers.clone();
        headers.push(("verto_profile".into(), self.profile.name.clone()));
        ModuleContext::current()
            .send_chat(&Chat {
                proto: chat.proto.clone(),
                from: chat.from.clone(),
                to: chat.to.clone(),
                subject: String::new(),
                body: chat.body.clone(),
                hint: String::new(),
                headers,
            })
            .is_ok()
    }

    fn dtmf(&mut self, uuid: &str, digits: &str) -> bool {
        match ModuleContext::current().session_locate(uuid) {
            Some(s) => {
                for d in digits.chars() {
                    s.queue_dtmf(d, 100);
                }
                true
            }
            None => false,
        }
    }
}

impl HostSwitch {
    /// What the connection told the switch without asking.
    fn event(&self, e: conn::Event) {
        match e {
            conn::Event::Login {
                login,
                sessid,
                result,
            } => self.login_event(&login, sessid.as_deref(), result),
            conn::Event::Closed { sessid, calls } => closed(self.conn, sessid, calls, self.peer),
        }
    }

    /// FreeSWITCH's `verto::login` event.
    fn login_event(&self, login: &str, sessid: Option<&str>, result: &str) {
        let success = if sessid.is_some() { "1" } else { "0" };
        let peer = self.peer.to_string();
        let mut headers = vec![
            ("verto_profile_name", self.profile.name.as_str()),
            ("verto_client_address", peer.as_str()),
            ("verto_login", login),
            ("verto_success", success),
            ("verto_result_txt", result),
        ];
        if let Some(s) = sessid {
            headers.push(("verto_sessid", s));
        }
        let _ = ModuleContext::current().fire_event(EV_CUSTOM, "verto::login", &headers, "");
    }

    /// FreeSWITCH's `jsonrpc-allowed-event-channels` user parameter: when
    /// set, only the channels it lists (or whose part before the first `.`
    /// it lists) may be used; when not, every channel.
    fn may_use(&self, user: &str, channel: &str) -> bool {
        let Some((u, d)) = user.split_once('@') else {
            return true;
        };
        let Some(allowed) = user_data(u, d, "param jsonrpc-allowed-event-channels") else {
            return true;
        };
        let main = channel.split('.').next().unwrap_or(channel);
        allowed
            .split(',')
            .map(str::trim)
            .any(|a| a.eq_ignore_ascii_case(channel) || a.eq_ignore_ascii_case(main))
    }
}

/// Delivers `event` as `verto.event`: straight to the connection whose
/// client session is the channel's name, else to every subscriber of the
/// channel and of its main channel (the part before the first `.`), each
/// with its own `eventSerno`.
fn publish(channel: &str, event: &Value) {
    with_state(|st| {
        let direct = st.sessions.get(channel).and_then(|s| s.conn);
        if let Some(c) = direct.and_then(|c| st.clients.get(&c)) {
            let params = event.as_object().cloned().unwrap_or_default();
            c.tell(ToConn::Request {
                method: "verto.event",
                params,
            });
            return;
        }
        let main = channel.split_once('.').map(|(m, _)| m.to_string());
        for name in std::iter::once(channel.to_string()).chain(main) {
            let Some(subs) = st.channels.get_mut(&name) else {
                continue;
            };
            for sub in subs.iter_mut() {
                let Some(c) = st.clients.get(&sub.conn) else {
                    continue;
                };
                let mut params = event.as_object().cloned().unwrap_or_default();
                params.insert("eventSerno".into(), json!(sub.serno));
                params.insert("subscribedChannel".into(), json!(name));
                sub.serno += 1;
                c.tell(ToConn::Request {
                    method: "verto.event",
                    params,
                });
            }
        }
    });
}

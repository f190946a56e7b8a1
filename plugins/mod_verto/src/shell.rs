//! The module's I/O shell around [`Conn`]: listeners bound at load (a busy
//! port fails the load), a single-threaded tokio runtime on the module's
//! runtime thread serving every WebSocket connection, and the stop at
//! unload that ends the runtime — listeners, connections and their tasks
//! are dropped before the runtime thread returns.

use crate::config::{Config, Profile};
use crate::conn::{Conn, Invite, Switch};
use crate::endpoint::{self, Leg, PLACEHOLDER_SDP};
use crate::media;
use futures_util::{SinkExt, StreamExt};
use hotswitch_plugin_api::{
    CallCause, ChannelState, ModuleContext, Profile as CallerProfile, Status,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The largest message a client may send (FreeSWITCH's clients send SDP
/// of a few KiB); a bigger one closes the connection.
const MAX_MESSAGE: usize = 256 * 1024;

/// Event ids (FreeSWITCH's numbering) this module fires.
const EV_CUSTOM: u32 = 0;
const EV_CHANNEL_HOLD: u32 = 11;
const EV_CHANNEL_UNHOLD: u32 = 12;

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
}

struct Client {
    tx: UnboundedSender<ToConn>,
    /// Where its calls' media is offered.
    rtp_ip: IpAddr,
    /// `user@domain` once logged in.
    user: Option<String>,
}

struct Prepared {
    listeners: Vec<(Arc<Profile>, std::net::TcpListener)>,
    stop: watch::Receiver<bool>,
}

static CLIENTS: Mutex<Option<HashMap<u64, Client>>> = Mutex::new(None);
static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);
static STOP: Mutex<Option<watch::Sender<bool>>> = Mutex::new(None);
static STOPPING: AtomicBool = AtomicBool::new(false);
static RUNTIME: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh uuid (session ids, outbound call ids).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The queue of a connection logged in as `user@domain`, and where its
/// media goes.
pub fn client_of(user: &str) -> Option<(UnboundedSender<ToConn>, IpAddr)> {
    lock(&CLIENTS).as_ref()?.values().find_map(|c| {
        c.user
            .as_deref()
            .filter(|u| u.eq_ignore_ascii_case(user))
            .map(|_| (c.tx.clone(), c.rtp_ip))
    })
}

/// Runs `f` in the module's runtime (to start tasks from a host thread).
pub fn on_runtime<R>(f: impl FnOnce() -> R) -> Option<R> {
    let h = lock(&RUNTIME).clone()?;
    let _entered = h.enter();
    Some(f())
}

/// `rtp-ip`, else the first listener's address.
fn rtp_ip(p: &Profile) -> IpAddr {
    p.rtp_ip
        .or_else(|| p.binds.first().map(|a| a.ip()))
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
}

/// Load: binds every profile's listeners.
pub fn prepare(config: Config) -> Result<(), String> {
    let mut listeners = Vec::new();
    for p in config.profiles {
        let p = Arc::new(p);
        for addr in &p.binds {
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("profile {}: cannot bind {addr}: {e}", p.name))?;
            log::info!("verto profile {} listening on ws://{addr}", p.name);
            listeners.push((p.clone(), l));
        }
    }
    let (tx, rx) = watch::channel(false);
    STOPPING.store(false, Ordering::Release);
    *lock(&STOP) = Some(tx);
    *lock(&CLIENTS) = Some(HashMap::new());
    *lock(&PREPARED) = Some(Prepared {
        listeners,
        stop: rx,
    });
    Ok(())
}

/// The runtime thread: serves until unload.
pub fn run() -> Status {
    let Some(p) = lock(&PREPARED).take() else {
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
    *lock(&RUNTIME) = Some(rt.handle().clone());
    rt.block_on(serve(p));
    *lock(&RUNTIME) = None;
    // Drops every connection task (and its socket) still pending.
    drop(rt);
    *lock(&CLIENTS) = None;
    log::info!("mod_verto stopped");
    Status::TERM
}

/// Unload: the runtime thread ends.
pub fn stop() {
    STOPPING.store(true, Ordering::Release);
    if let Some(tx) = lock(&STOP).take() {
        let _ = tx.send(true);
    }
    drop(lock(&PREPARED).take());
}

async fn serve(p: Prepared) {
    let Prepared {
        listeners,
        mut stop,
    } = p;
    for (profile, l) in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => {
                tokio::spawn(accept(profile, l));
            }
            Err(e) => log::error!("profile {}: {e}", profile.name),
        }
    }
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
}

async fn accept(profile: Arc<Profile>, l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                tokio::spawn(client(profile.clone(), s, peer));
            }
            Err(e) => {
                log::debug!("verto accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// One WebSocket connection: frames to the [`Conn`], its replies and the
/// switch's news back.
async fn client(profile: Arc<Profile>, s: TcpStream, peer: SocketAddr) {
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = match tokio_tungstenite::accept_async_with_config(s, Some(cfg)).await {
        Ok(ws) => ws,
        Err(e) => {
            log::debug!("verto {peer}: handshake failed: {e}");
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = unbounded_channel();
    if let Some(c) = lock(&CLIENTS).as_mut() {
        c.insert(
            id,
            Client {
                tx: tx.clone(),
                rtp_ip: rtp_ip(&profile),
                user: None,
            },
        );
    }
    log::info!("verto {peer} connected to profile {}", profile.name);
    let mut conn = Conn::new(profile.settings.clone());
    let mut sw = HostSwitch {
        tx,
        profile: profile.clone(),
        peer,
    };
    loop {
        let frames = tokio::select! {
            m = source.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let before = conn.user();
                    let out = conn.on_text(t.as_str(), &mut sw, &new_id());
                    let now = conn.user();
                    if now != before {
                        if let Some(c) = lock(&CLIENTS).as_mut().and_then(|c| c.get_mut(&id)) {
                            c.user = now;
                        }
                    }
                    out
                }
                Some(Ok(Message::Binary(_))) => conn.on_text("", &mut sw, ""),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => {
                    log::info!("verto {peer}: {e}; closing");
                    break;
                }
            },
            ev = rx.recv() => match ev {
                Some(ToConn::Answered { call_id, sdp }) => conn.answered(&call_id, &sdp).into_iter().collect(),
                Some(ToConn::EarlyMedia { call_id, sdp }) => conn.early_media(&call_id, &sdp).into_iter().collect(),
                Some(ToConn::HungUp { call_id, cause }) => conn.hung_up(&call_id, cause).into_iter().collect(),
                Some(ToConn::Dtmf { call_id, digits }) => conn.dtmf_out(&call_id, &digits).into_iter().collect(),
                Some(ToConn::Invite { call_id, uuid, caller_id_name, caller_id_number, sdp }) => {
                    vec![conn.invite_out(&call_id, &uuid, (&caller_id_name, &caller_id_number), &sdp)]
                }
                None => Vec::new(),
            },
        };
        let mut failed = false;
        for f in frames {
            if sink.send(Message::text(f)).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
    }
    if let Some(c) = lock(&CLIENTS).as_mut() {
        c.remove(&id);
    }
    // No verto.attach yet: a client that goes away ends its calls.
    for (call_id, uuid) in conn.closed() {
        log::info!("verto {peer} gone: hanging up call {call_id}");
        sw.hangup(&uuid, CallCause::NORMAL_CLEARING);
    }
    log::info!("verto {peer} disconnected");
}

/// The switch as a connection sees it: the directory, sessions.
struct HostSwitch {
    tx: UnboundedSender<ToConn>,
    profile: Arc<Profile>,
    peer: SocketAddr,
}

fn user_data(user: &str, domain: &str, what: &str) -> Option<String> {
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
        let (media, local_sdp) = match media::answer(&i.sdp, rtp_ip(&self.profile)) {
            Ok((m, sdp)) => (Some(m), sdp),
            Err(e) => {
                log::info!("verto.invite {}: no WebRTC media ({e})", i.call_id);
                (None, PLACEHOLDER_SDP.to_string())
            }
        };
        s.set_var("switch_l_sdp", &local_sdp);
        endpoint::attach(
            &s,
            Leg {
                call_id: i.call_id.clone(),
                tx: self.tx.clone(),
                local_sdp,
                media,
            },
        );
        s.set_state(ChannelState::INIT)
            .map_err(|e| format!("CS_INIT: {e}"))?;
        s.start().map_err(|e| format!("start: {e}"))?;
        Ok(s.uuid())
    }

    fn answer(&mut self, uuid: &str, sdp: &str) -> bool {
        match ModuleContext::current().session_locate(uuid) {
            Some(s) => {
                if let Some(m) = endpoint::leg_of(&s).and_then(|l| l.media.as_ref()) {
                    m.remote_answer(sdp);
                }
                s.set_var("switch_r_sdp", sdp);
                s.mark_answered();
                true
            }
            None => false,
        }
    }

    fn hangup(&mut self, uuid: &str, cause: CallCause) -> bool {
        match ModuleContext::current().session_locate(uuid) {
            Some(s) => {
                s.set_var("verto_hangup_disposition", "recv_bye");
                s.hangup(cause);
                true
            }
            None => false,
        }
    }

    fn hold(&mut self, uuid: &str, held: bool) -> bool {
        let Some(s) = ModuleContext::current().session_locate(uuid) else {
            return false;
        };
        s.set_var("verto_hold", if held { "true" } else { "" });
        let _ = s.fire_event(
            if held {
                EV_CHANNEL_HOLD
            } else {
                EV_CHANNEL_UNHOLD
            },
            "",
            &[],
            "",
        );
        log::info!("{uuid} {}", if held { "on hold" } else { "off hold" });
        true
    }

    fn login_event(&mut self, login: &str, sessid: Option<&str>, result: &str) {
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

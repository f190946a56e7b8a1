//! The module's I/O shell around the sans-IO stack: sockets bound at load
//! (so a busy port fails the load), one SIP thread — the host's runtime
//! thread for this module — running the stack's loop on a tokio runtime
//! whose two workers run a reader task per socket, a resolver thread for
//! the names the stack asks for, and the stop at unload that drops every
//! socket and task (and joins the workers and the resolver) before the
//! runtime thread returns.
//!
//! The loop drives the [`Stack`] as every sans-IO core is driven
//! ([`Protocol`]): at each wake-up it reads the clock once, hands the stack
//! what came (`handle_bytes`, `handle_input`, `handle_resolved`, …) or
//! [`Protocol::handle_timeout`], then writes what
//! [`Protocol::poll_transmit`] gives to the sockets, does what
//! [`Protocol::poll_event`] asks (a profile's sockets, a name to resolve),
//! and sleeps until [`Protocol::poll_timeout`].
//!
//! TCP connections live by the profile's [`TcpLimits`]: an idle timeout,
//! a deadline for a message begun, optional keep-alive pings, and caps on
//! accepted connections per address and in total; TLS connections (on
//! `tls-sip-port`) live by the same limits, and a TLS handshake that does
//! not complete within the message timeout is closed. A response too large for a datagram goes over an open TCP
//! connection to its Via or becomes 513.
//!
//! Live reload ([`crate::handover`]): a socket handed by the previous
//! version is adopted instead of bound when its name
//! (`"<transport> <ip>:<port>"`) matches; [`export`] stops the readers and
//! acceptors (the sockets stay open for sending, connections that carry a
//! call keep being read, the others are closed — and so is each later,
//! once its last call ends — so their phones reconnect to the new
//! version), [`resume`] starts them again, and [`deliver`] puts a message
//! the successor forwards into the SIP thread as if read here.

use crate::api::ShellAction;
use crate::config::{Config, ProfileConfig, TcpLimits};
use crate::leg::{ApiRequest, Input};
use crate::registrar::{Registrar, Registration};
use crate::sip::message;
use crate::sip::transaction::{Proto, Target};
use crate::tls::TlsContext;
use crate::ua::{Event, Stack};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::{Mutex, RwLock};
use hotswitch_plugin_api::Status;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

/// What session threads and api calls read without the SIP thread.
pub struct Shared {
    /// `(name, bound address)` per profile.
    pub profiles: Vec<(String, SocketAddr)>,
    pub profile_cfg: Vec<ProfileConfig>,
    pub registrar: Arc<Registrar>,
    pub gateways: crate::ua::GatewayView,
    pub input: UnboundedSender<Input>,
    pub rtp: (u16, u16),
    /// TCP connections phones opened to us, while they live: a phone
    /// registered over one is reached through it (RFC 5626's flow).
    pub flows: Mutex<HashSet<SocketAddr>>,
    /// Each profile's certificates (TLS, wss).
    pub tls: Vec<ProfileCerts>,
    /// The network lists (`apply-nat-acl` reads them when dialing).
    pub acls: crate::acl::Acls,
}

/// A profile's certificates: for SIP over TLS and for wss, each when the
/// profile listens there.
#[derive(Clone, Default)]
pub struct ProfileCerts {
    pub tls: Option<Arc<TlsContext>>,
    pub wss: Option<Arc<TlsContext>>,
}

/// A profile's bound sockets.
#[derive(Default)]
struct Listeners {
    /// `None` under `tls-only`.
    udp: Option<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<std::net::TcpListener>,
    ws: Option<std::net::TcpListener>,
    wss: Option<std::net::TcpListener>,
}

/// What an accepting listener serves.
#[derive(Clone)]
enum Kind {
    Tcp,
    Tls(Arc<TlsContext>),
    Ws,
    Wss(Arc<TlsContext>),
}

impl Kind {
    /// The transport in a socket's handover name.
    fn transport(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls(_) => "tls",
            Kind::Ws => "ws",
            Kind::Wss(_) => "wss",
        }
    }
}

/// A socket's name in a live reload's handover: `"<transport> <ip>:<port>"`.
fn channel_name(transport: &str, addr: std::io::Result<SocketAddr>) -> Arc<str> {
    match addr {
        Ok(a) => format!("{transport} {a}").into(),
        Err(_) => format!("{transport} ?").into(),
    }
}

impl Shared {
    /// True while the connection from `addr` is open.
    pub fn flow_alive(&self, addr: SocketAddr) -> bool {
        self.flows.lock().contains(&addr)
    }
}

struct Prepared {
    listeners: Vec<Listeners>,
    stack: Stack,
    rx: UnboundedReceiver<Input>,
    control: UnboundedReceiver<Control>,
}

/// Live-reload requests to the SIP thread.
enum Control {
    /// Stop reading, close the store, say what the successor needs.
    Export(std::sync::mpsc::SyncSender<Result<Exported, String>>),
    /// The reload failed: read again as before.
    Resume,
}

/// What [`export`] returns: the handover's data and the sockets to hand,
/// by name (the descriptors stay open: this version keeps sending on them).
pub struct Exported {
    pub data: Vec<u8>,
    pub fds: Vec<(String, std::os::fd::RawFd)>,
}

static SHARED: RwLock<Option<Arc<Shared>>> = RwLock::new(None);
static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);
static STOPPING: AtomicBool = AtomicBool::new(false);
static CONTROL: Mutex<Option<UnboundedSender<Control>>> = Mutex::new(None);
/// Each listening socket's name → its profile and transport (what a
/// forwarded message's channel names).
static CHANNELS: RwLock<Vec<(String, usize, Proto)>> = RwLock::new(Vec::new());

/// The running module's shared state.
pub fn shared() -> Option<Arc<Shared>> {
    SHARED.read().clone()
}

/// Bytes the kernel may queue on a SIP socket: bursts at thousands of
/// calls a second overflow Linux's default (~200 KiB) and cost a T1
/// retransmission each. Linux caps the request at `net.core.rmem_max`.
const SOCKET_BUFFER: libc::c_int = 8 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::AsRawFd;
    if let Some(fd) = crate::handover::take_fd(&format!("udp {addr}")) {
        // The previous version's socket: already sized, the port never closed.
        let s = std::net::UdpSocket::from(fd);
        s.set_nonblocking(true)?;
        log::info!("udp {addr}: socket taken over from the previous version");
        return Ok(s);
    }
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    // The FORCE forms pass rmem_max when the switch may (CAP_NET_ADMIN).
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt| {
            // SAFETY: a valid socket and a c_int option value for the call.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    &SOCKET_BUFFER as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 {
            set(plain);
        }
    }
    Ok(s)
}

fn bind_tcp(what: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let name = format!("{} {addr}", what.to_ascii_lowercase());
    if let Some(fd) = crate::handover::take_fd(&name) {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        log::info!("{name}: listener taken over from the previous version");
        return Ok(l);
    }
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Load: reads the configuration, binds every profile, opens the
/// registration store.
pub fn prepare(config: Config, handed_registrations: Vec<Registration>) -> Result<(), String> {
    // The store first: a store another instance holds fails the load
    // before any port is taken.
    let store = registration_store(&config.profiles)?;
    let mut listeners = Vec::new();
    let mut certs = Vec::new();
    let mut addrs = Vec::new();
    for p in &config.profiles {
        let addr = SocketAddr::new(p.sip_ip, p.sip_port);
        let c = load_certs(p);
        listeners.push(bind_profile(p, addr, &c)?);
        certs.push(c);
        addrs.push(addr);
    }
    crate::handover::drop_unclaimed();
    let registrar = Arc::new(Registrar::new(store)?);
    registrar.adopt(handed_registrations);
    let (tx, rx) = unbounded_channel();
    let (ctl_tx, control) = unbounded_channel();
    *CONTROL.lock() = Some(ctl_tx);
    let stack = Stack::new(
        &config,
        addrs.clone(),
        registrar.clone(),
        tx.clone(),
        (Instant::now(), SystemTime::now()),
    );
    let shared = Shared {
        profiles: config
            .profiles
            .iter()
            .map(|p| p.name.clone())
            .zip(addrs)
            .collect(),
        profile_cfg: config.profiles.clone(),
        registrar,
        gateways: stack.gateway_view.clone(),
        input: tx,
        rtp: (config.rtp_start, config.rtp_end),
        flows: Mutex::new(HashSet::new()),
        tls: certs,
        acls: config.acls.clone(),
    };
    STOPPING.store(false, Ordering::Release);
    *SHARED.write() = Some(Arc::new(shared));
    *PREPARED.lock() = Some(Prepared {
        listeners,
        stack,
        rx,
        control,
    });
    Ok(())
}

/// A profile's certificates under `tls` and `wss-binding`. Certificates
/// that cannot be read leave the profile without that listener
/// (FreeSWITCH's behaviour), said in the log.
fn load_certs(p: &ProfileConfig) -> ProfileCerts {
    let load = |what: &str, s: &crate::tls::TlsSettings| match TlsContext::load(s) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            log::error!("profile {}: {what} not started: {e}", p.name);
            None
        }
    };
    ProfileCerts {
        tls: p.tls.enabled.then(|| load("TLS", &p.tls)).flatten(),
        wss: p
            .wss_binding
            .is_some()
            .then(|| load("wss", &p.tls.for_wss()))
            .flatten(),
    }
}

/// Binds a profile's sockets; one that cannot be bound fails (the load,
/// or the restart).
fn bind_profile(
    p: &ProfileConfig,
    addr: SocketAddr,
    certs: &ProfileCerts,
) -> Result<Listeners, String> {
    let name = &p.name;
    let tcp_at = |what: &str, a: SocketAddr| {
        bind_tcp(what, a).map_err(|e| format!("profile {name}: cannot bind {what} {a}: {e}"))
    };
    // tls-only: nothing but TLS (when TLS could start).
    let plain = !(p.tls.only && certs.tls.is_some());
    let mut l = Listeners::default();
    if plain {
        l.udp = Some(
            bind_udp(addr).map_err(|e| format!("profile {name}: cannot bind UDP {addr}: {e}"))?,
        );
        if p.tcp {
            l.tcp = Some(tcp_at("TCP", addr)?);
        }
    }
    if certs.tls.is_some() {
        l.tls = Some(tcp_at("TLS", SocketAddr::new(addr.ip(), p.tls.port))?);
    }
    if let Some(a) = p.ws_binding {
        l.ws = Some(tcp_at("WS", a)?);
    }
    if let (Some(a), Some(_)) = (p.wss_binding, &certs.wss) {
        l.wss = Some(tcp_at("WSS", a)?);
    }
    let mut what = Vec::new();
    for (on, w) in [
        (l.udp.is_some(), format!("udp {addr}")),
        (l.tcp.is_some(), format!("tcp {addr}")),
        (l.tls.is_some(), format!("tls port {}", p.tls.port)),
        (
            l.ws.is_some(),
            format!("ws {}", p.ws_binding.unwrap_or(addr)),
        ),
        (
            l.wss.is_some(),
            format!("wss {}", p.wss_binding.unwrap_or(addr)),
        ),
    ] {
        if on {
            what.push(w);
        }
    }
    log::info!("profile {name} listening on {}", what.join(", "));
    Ok(l)
}

/// Where registrations are kept: the profiles' `odbc-dsn` (PostgreSQL,
/// one database for the module), else the `registration-db` redb file,
/// else memory.
fn registration_store(
    profiles: &[ProfileConfig],
) -> Result<Box<dyn crate::registrar::RegistrationStore>, String> {
    let mut dsns: Vec<&str> = profiles
        .iter()
        .filter_map(|p| p.odbc_dsn.as_deref())
        .collect();
    dsns.sort_unstable();
    dsns.dedup();
    match dsns.as_slice() {
        [] => {}
        [dsn] => return Ok(Box::new(crate::registrar_pg::PgStore::open(dsn)?)),
        _ => {
            return Err(
                "profiles name different odbc-dsn databases; registrations are kept in one".into(),
            )
        }
    }
    Ok(
        match profiles
            .iter()
            .find_map(|p| p.registration_db.clone())
            .filter(|p| p != "none")
        {
            Some(path) => Box::new(crate::registrar::RedbStore::open(&path)?),
            None => Box::new(crate::registrar::MemoryStore),
        },
    )
}

/// The SIP thread: serves until unload, then drops every socket and task.
pub fn run() -> Status {
    let Some(p) = PREPARED.lock().take() else {
        return Status::TERM;
    };
    if STOPPING.load(Ordering::Acquire) {
        return Status::TERM;
    }
    // The stack's loop runs on this thread (block_on); the socket readers
    // run on the runtime's workers, so the sockets drain while the stack
    // works through a burst.
    raise_priority();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sofia-io")
        .on_thread_start(raise_priority)
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the SIP runtime: {e}");
            return Status::TERM;
        }
    };
    rt.block_on(serve(p));
    drop(rt);
    log::info!("mod_sofia stopped");
    Status::TERM
}

/// Signalling before media: under a full load of calls, the threads that
/// answer INVITEs and ACKs get the CPU ahead of the calls' media threads,
/// as FreeSWITCH raises its own (`-rp`). Needs CAP_SYS_NICE; without it the
/// threads stay at the default priority.
fn raise_priority() {
    // SAFETY: plain system calls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10);
    }
}

/// Unload: stop serving; the runtime thread ends.
pub fn stop() {
    STOPPING.store(true, Ordering::Release);
    drop(CONTROL.lock().take());
    if let Some(s) = SHARED.write().take() {
        let _ = s.input.send(Input::Stop);
    }
    drop(PREPARED.lock().take());
}

/// Live reload, old version (a host thread): the SIP thread stops reading
/// its sockets, closes the registration store, stops gateway and NAT
/// keep-alive timers, and says what the successor needs.
pub fn export() -> Result<Exported, String> {
    let Some(ctl) = CONTROL.lock().clone() else {
        return Err("mod_sofia is not running".into());
    };
    let (reply, rx) = std::sync::mpsc::sync_channel(1);
    ctl.send(Control::Export(reply))
        .map_err(|_| "the SIP thread has stopped".to_string())?;
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the SIP thread did not answer the handover".to_string())?
}

/// Live reload, old version: the reload failed; read again as before.
pub fn resume() {
    if let Some(ctl) = CONTROL.lock().as_ref() {
        let _ = ctl.send(Control::Resume);
    }
}

/// Live reload, old version (a host thread): a message the successor
/// received on `channel` from `peer`. When this version still has its
/// Call-ID it is enqueued as if read from that socket (the answer goes out
/// on the socket this version still holds) and true returned; false lets
/// the host offer it to the next older version.
pub fn deliver(channel: &str, peer: &str, data: &[u8]) -> bool {
    if channel == crate::handover::PROBE {
        return crate::handover::probed(data);
    }
    if !crate::handover::claim(data) {
        return false;
    }
    let Ok(from) = peer.parse::<SocketAddr>() else {
        return false;
    };
    let Some((profile, proto)) = CHANNELS
        .read()
        .iter()
        .find(|(n, _, _)| n == channel)
        .map(|(_, i, p)| (*i, *p))
    else {
        log::warn!("handover: a message for {channel}, a socket this version does not have");
        return false;
    };
    let Some(s) = shared() else {
        return false;
    };
    let data = data.to_vec();
    let msg = match proto {
        Proto::Udp => Input::Datagram {
            profile,
            from,
            data,
        },
        proto => Input::Stream {
            profile,
            proto,
            from,
            data,
        },
    };
    s.input.send(msg).is_ok()
}

/// Runs `sofia <args>` on the SIP thread and waits for its reply.
pub fn api(args: &str) -> String {
    let Some(s) = shared() else {
        return "-ERR mod_sofia is not running\n".into();
    };
    let (reply, rx) = std::sync::mpsc::sync_channel(1);
    let _ = s.input.send(Input::Api(ApiRequest {
        args: args.to_string(),
        reply,
    }));
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| "-ERR the SIP thread did not answer\n".into())
}

struct Sockets {
    udp: Vec<Option<Arc<UdpSocket>>>,
    /// Each profile's listeners: kept while reading stops for a reload.
    listening: Vec<Vec<(Kind, Arc<TcpListener>)>>,
    /// The readers and acceptors of each profile's sockets.
    tasks: Vec<Vec<JoinHandle<()>>>,
    /// False once a reload's export stopped the readers.
    reading: bool,
    conns: HashMap<SocketAddr, UnboundedSender<Vec<u8>>>,
    input: UnboundedSender<Input>,
    /// Each profile's TCP limits (as loaded).
    tcp_limits: Vec<TcpLimits>,
    /// Each profile's certificates.
    tls: Vec<ProfileCerts>,
    /// Resolves the names the stack asks for.
    resolver: Resolver,
}

/// The SIP thread's resolver: one thread that resolves the names the stack
/// asks for ([`Event::Resolve`]) and hands each answer back as an
/// [`Input::Resolved`], so the SIP thread never waits on DNS. Started with
/// the stack's loop and joined when the loop ends (after the lookup in
/// progress, if any), before the runtime thread returns and the library
/// can be closed. The stack keeps what it learns (`ua::dns`).
struct Resolver {
    ask: Option<std::sync::mpsc::Sender<String>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    fn start(input: UnboundedSender<Input>) -> Resolver {
        let (ask, asked) = std::sync::mpsc::channel::<String>();
        let worker = std::thread::Builder::new()
            .name("sofia-dns".into())
            .spawn(move || {
                for host_port in asked {
                    let result = resolve(&host_port);
                    if input.send(Input::Resolved { host_port, result }).is_err() {
                        return;
                    }
                }
            });
        match worker {
            Ok(w) => Resolver {
                ask: Some(ask),
                worker: Some(w),
            },
            Err(e) => {
                log::error!("cannot start the resolver thread: {e}; host names do not resolve");
                Resolver {
                    ask: None,
                    worker: None,
                }
            }
        }
    }

    /// Asks for `host_port`; false when no resolver runs.
    fn ask(&self, host_port: String) -> bool {
        self.ask.as_ref().is_some_and(|a| a.send(host_port).is_ok())
    }

    /// Ends the thread (after its lookup in progress) and joins it.
    fn stop(&mut self) {
        drop(self.ask.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `host:port` through the system's resolver (on the resolver thread).
fn resolve(host_port: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())
}

impl Sockets {
    fn stop_profile(&mut self, i: usize) {
        for t in self.tasks[i].drain(..) {
            t.abort();
        }
        self.udp[i] = None;
        self.listening[i].clear();
        self.publish_channels();
    }

    fn start_profile(&mut self, i: usize, l: Listeners) -> std::io::Result<()> {
        if let Some(udp) = l.udp {
            self.udp[i] = Some(Arc::new(UdpSocket::from_std(udp)?));
        }
        let certs = self.tls.get(i).cloned().unwrap_or_default();
        let streams = [
            (l.tcp, Some(Kind::Tcp)),
            (l.tls, certs.tls.map(Kind::Tls)),
            (l.ws, Some(Kind::Ws)),
            (l.wss, certs.wss.map(Kind::Wss)),
        ];
        for (listener, kind) in streams {
            let (Some(listener), Some(kind)) = (listener, kind) else {
                continue;
            };
            let listener = TcpListener::from_std(listener)?;
            self.listening[i].push((kind, Arc::new(listener)));
        }
        self.publish_channels();
        if self.reading {
            self.spawn_readers(i);
        }
        Ok(())
    }

    /// Starts reading profile `i`'s sockets.
    fn spawn_readers(&mut self, i: usize) {
        if let Some(u) = &self.udp[i] {
            let input = self.input.clone();
            let channel = channel_name("udp", u.local_addr());
            self.tasks[i].push(tokio::spawn(udp_reader(i, u.clone(), input, channel)));
        }
        for (kind, l) in self.listening[i].clone() {
            let input = self.input.clone();
            let limits = self.limits(i);
            let channel = channel_name(kind.transport(), l.local_addr());
            self.tasks[i].push(tokio::spawn(tcp_acceptor(
                i, l, input, limits, kind, channel,
            )));
        }
    }

    /// Live reload: no more reading from the sockets (accepted
    /// connections go on); returns when no reader runs any more.
    async fn stop_reading(&mut self) {
        self.reading = false;
        for t in self.tasks.iter_mut().flat_map(|t| t.drain(..)) {
            t.abort();
            let _ = t.await;
        }
    }

    /// The reload failed: read again.
    fn start_reading(&mut self) {
        if self.reading {
            return;
        }
        self.reading = true;
        for i in 0..self.udp.len() {
            self.spawn_readers(i);
        }
    }

    /// A draining version: closes every stream connection none of its
    /// calls or transactions uses, as a server closing a flow (TCP FIN,
    /// TLS close_notify, WebSocket close 1001, after what is queued on it),
    /// so that the phone on it reconnects — RFC 5626 flow recovery — and
    /// its REGISTER refreshes and new calls reach the new version.
    fn close_unused_flows(&mut self, used: &HashSet<SocketAddr>) {
        let unused: Vec<SocketAddr> = self
            .conns
            .keys()
            .filter(|a| !used.contains(a))
            .copied()
            .collect();
        for addr in unused {
            // Dropping the writer ends the connection's task, which closes it.
            self.conns.remove(&addr);
            if let Some(s) = shared() {
                s.flows.lock().remove(&addr);
            }
            log::info!(
                "handover: connection with {addr} carries no call of this draining version; closed so that its phone reconnects to the new version"
            );
        }
    }

    /// Every socket to hand over, by name (the descriptors stay ours).
    fn handed(&self) -> Vec<(String, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        let mut v = Vec::new();
        for i in 0..self.udp.len() {
            if let Some(u) = &self.udp[i] {
                v.push((
                    channel_name("udp", u.local_addr()).to_string(),
                    u.as_raw_fd(),
                ));
            }
            for (kind, l) in &self.listening[i] {
                v.push((
                    channel_name(kind.transport(), l.local_addr()).to_string(),
                    l.as_raw_fd(),
                ));
            }
        }
        v
    }

    /// Names the sockets for [`deliver`].
    fn publish_channels(&self) {
        let mut v = Vec::new();
        for i in 0..self.udp.len() {
            if let Some(u) = &self.udp[i] {
                v.push((
                    channel_name("udp", u.local_addr()).to_string(),
                    i,
                    Proto::Udp,
                ));
            }
            for (kind, l) in &self.listening[i] {
                let proto = match kind {
                    Kind::Tcp => Proto::Tcp,
                    Kind::Tls(_) => Proto::Tls,
                    Kind::Ws => Proto::Ws,
                    Kind::Wss(_) => Proto::Wss,
                };
                v.push((
                    channel_name(kind.transport(), l.local_addr()).to_string(),
                    i,
                    proto,
                ));
            }
        }
        *CHANNELS.write() = v;
    }

    fn limits(&self, profile: usize) -> TcpLimits {
        self.tcp_limits.get(profile).cloned().unwrap_or_default()
    }

    /// RFC 3261 §18.2.1/§18.2.2: a response too large for a datagram goes
    /// over TCP when a connection to its Via's sent-by (received/rport when
    /// filled in) is open; otherwise the peer gets a 513 instead.
    fn send_too_large(&mut self, stack: &Stack, t: Target, bytes: Vec<u8>) {
        let Ok(resp) = message::Message::parse_any_size(&bytes) else {
            log::warn!(
                "{} bytes for {} do not fit a datagram; dropped",
                bytes.len(),
                t.addr
            );
            return;
        };
        if resp.is_request() {
            log::warn!(
                "a {} request of {} bytes does not fit a datagram; dropped",
                resp.method(),
                bytes.len()
            );
            return;
        }
        let tcp_to = resp
            .headers
            .get("Via")
            .and_then(crate::sip::headers::Via::parse)
            .and_then(|v| {
                let host = v.received.as_deref().unwrap_or(&v.host);
                let ip: IpAddr = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()?;
                let port = v.rport.flatten().or(v.port).unwrap_or(5060);
                Some(SocketAddr::new(ip, port))
            })
            .filter(|addr| self.conns.contains_key(addr));
        if let Some(addr) = tcp_to {
            log::info!(
                "response of {} bytes for {} sent over TCP to {addr}",
                bytes.len(),
                t.addr
            );
            let tcp = Target {
                proto: Proto::Tcp,
                addr,
                profile: t.profile,
            };
            return self.send(stack, tcp, bytes);
        }
        log::warn!(
            "response of {} bytes does not fit a datagram to {}; sending 513",
            bytes.len(),
            t.addr
        );
        let mut small = message::Message::response_to(&resp, 513, "Message Too Large", None);
        // Only the top Via: the others are what made the response too large.
        let mut vias = 0;
        small.headers.0.retain(|(n, _)| {
            vias += usize::from(n == "Via");
            n != "Via" || vias == 1
        });
        if small.to_bytes().len() <= MAX_DATAGRAM {
            self.send(stack, t, small.to_bytes());
        }
    }

    fn send(&mut self, stack: &Stack, t: Target, bytes: Vec<u8>) {
        if t.proto == Proto::Udp && bytes.len() > MAX_DATAGRAM {
            return self.send_too_large(stack, t, bytes);
        }
        if stack.trace.load(Ordering::Relaxed) {
            let title = format!(
                "send {} bytes to {}/{}:",
                bytes.len(),
                t.proto.as_str().to_ascii_lowercase(),
                t.addr
            );
            crate::sip::text::log_lines(&title, &bytes);
        }
        match t.proto {
            Proto::Udp => {
                let Some(sock) = self.udp.get(t.profile).and_then(|s| s.clone()) else {
                    return;
                };
                match sock.try_send_to(&bytes, t.addr) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        tokio::spawn(async move {
                            let _ = sock.send_to(&bytes, t.addr).await;
                        });
                    }
                    Err(e) => log::debug!("send to {}: {e}", t.addr),
                }
            }
            Proto::Tcp | Proto::Tls | Proto::Ws | Proto::Wss => {
                if let Some(w) = self.conns.get(&t.addr) {
                    if w.send(bytes.clone()).is_ok() {
                        return;
                    }
                }
                if matches!(t.proto, Proto::Ws | Proto::Wss) {
                    // A browser is reached only over the connection it
                    // opened (RFC 7118 §5.2).
                    log::warn!(
                        "no WebSocket connection from {} is open; message dropped",
                        t.addr
                    );
                    let _ = self.input.send(Input::TcpUnreachable {
                        to: t.addr,
                        error: "no WebSocket connection".into(),
                    });
                    return;
                }
                let tls = match t.proto {
                    Proto::Tls => match self.tls.get(t.profile).and_then(|c| c.tls.clone()) {
                        Some(ctx) => Some(ctx.connector()),
                        None => {
                            log::warn!(
                                "a message for tls/{} on a profile without TLS; dropped",
                                t.addr
                            );
                            return;
                        }
                    },
                    _ => None,
                };
                // No connection yet: queue on a new one, connected in the
                // background.
                let (w, rx) = unbounded_channel();
                let _ = w.send(bytes);
                self.conns.insert(t.addr, w);
                let input = self.input.clone();
                let limits = self.limits(t.profile);
                tokio::spawn(connect(t, tls, rx, input, limits));
            }
        }
    }
}

/// Opens a connection to `t` (TLS with `tls`), then carries `out` on it.
async fn connect(
    t: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    out: UnboundedReceiver<Vec<u8>>,
    input: UnboundedSender<Input>,
    limits: TcpLimits,
) {
    let fail = |input: &UnboundedSender<Input>, error: String| {
        log::warn!("cannot connect to {}/{}: {error}", t.proto.as_str(), t.addr);
        let _ = input.send(Input::TcpUnreachable { to: t.addr, error });
    };
    let s = match TcpStream::connect(t.addr).await {
        Ok(s) => s,
        Err(e) => return fail(&input, e.to_string()),
    };
    let conn = |proto| Conn {
        profile: t.profile,
        proto,
        from: t.addr,
        channel: None,
    };
    let Some(tls) = tls else {
        return stream_conn(conn(Proto::Tcp), s, out, input, limits).await;
    };
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(t.addr.ip().into());
    match tokio::time::timeout(limits.message, tls.connect(name, s)).await {
        Ok(Ok(s)) => stream_conn(conn(Proto::Tls), s, out, input, limits).await,
        Ok(Err(e)) => fail(&input, format!("TLS handshake: {e}")),
        Err(_) => fail(&input, "TLS handshake did not complete".into()),
    }
}

/// Where a message handed back to older versions goes when none of them
/// took it: this version's SIP thread, as `make` frames it.
pub(crate) fn back_to(
    input: &UnboundedSender<Input>,
    make: impl FnOnce(Vec<u8>) -> Input + Send + 'static,
) -> impl FnOnce(Vec<u8>) + Send + 'static {
    let input = input.clone();
    move |data| {
        let _ = input.send(make(data));
    }
}

async fn udp_reader(
    profile: usize,
    sock: Arc<UdpSocket>,
    input: UnboundedSender<Input>,
    channel: Arc<str>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                // A previous version's dialog: back to it, through the host.
                let back = back_to(&input, move |data| Input::Datagram {
                    profile,
                    from,
                    data,
                });
                if crate::handover::forward(&channel, &from.to_string(), &buf[..n], back) {
                    continue;
                }
                if input
                    .send(Input::Datagram {
                        profile,
                        from,
                        data: buf[..n].to_vec(),
                    })
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port unreachable and the like: keep reading.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// The largest UDP payload (IPv4: 65,535 less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// Accepted connections open on one profile, by source address.
#[derive(Default)]
struct ConnCounts {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One accepted connection counted; uncounted when dropped.
struct Counted {
    counts: Arc<ConnCounts>,
    ip: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut m = self.counts.by_ip.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl ConnCounts {
    /// Counts a connection from `ip` unless a cap is reached; the refusal
    /// says which cap and how many are open.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &TcpLimits) -> Result<Counted, String> {
        let mut m = self.by_ip.lock();
        let total: usize = m.values().sum();
        let from_ip = m.get(&ip).copied().unwrap_or(0);
        if from_ip >= limits.max_per_ip {
            return Err(format!(
                "{from_ip} connections from {ip} already open (tcp-max-connections-per-ip {})",
                limits.max_per_ip
            ));
        }
        if total >= limits.max_total {
            return Err(format!(
                "{total} connections already open (tcp-max-connections {})",
                limits.max_total
            ));
        }
        *m.entry(ip).or_insert(0) += 1;
        Ok(Counted {
            counts: self.clone(),
            ip,
        })
    }
}

/// Accepts a profile's TCP, TLS, WS or WSS connections.
async fn tcp_acceptor(
    profile: usize,
    l: Arc<TcpListener>,
    input: UnboundedSender<Input>,
    limits: TcpLimits,
    kind: Kind,
    channel: Arc<str>,
) {
    let counts = Arc::new(ConnCounts::default());
    let mut refused = 0u64;
    let mut last_log: Option<Instant> = None;
    loop {
        let Ok((s, from)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let counted = match counts.admit(from.ip(), &limits) {
            Ok(c) => c,
            Err(why) => {
                // Closed at once; one line a second at most says why.
                drop(s);
                refused += 1;
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    last_log = Some(now);
                    log::warn!(
                        "TCP connection from {from} refused: {why}; {refused} refused so far"
                    );
                }
                continue;
            }
        };
        if input.is_closed() {
            return;
        }
        let input = input.clone();
        let limits = limits.clone();
        let kind = kind.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let (acceptor, proto) = match kind {
                Kind::Tcp => {
                    return opened(profile, Proto::Tcp, s, from, input, limits, channel).await
                }
                Kind::Ws => {
                    return crate::ws::serve(profile, Proto::Ws, s, from, input, limits, channel)
                        .await
                }
                Kind::Tls(c) => (c.acceptor(), Proto::Tls),
                Kind::Wss(c) => (c.acceptor(), Proto::Wss),
            };
            // A handshake that stalls holds its slot no longer than a
            // message may take.
            match tokio::time::timeout(limits.message, acceptor.accept(s)).await {
                Ok(Ok(s)) if proto == Proto::Wss => {
                    crate::ws::serve(profile, proto, s, from, input, limits, channel).await
                }
                Ok(Ok(s)) => opened(profile, proto, s, from, input, limits, channel).await,
                Ok(Err(e)) => log::warn!("TLS {from}: handshake failed: {e}; closing"),
                Err(_) => log::warn!(
                    "TLS {from}: handshake not complete after {} ms (tcp-message-timeout); closing",
                    limits.message.as_millis()
                ),
            }
        });
    }
}

/// An accepted connection, ready: announced to the SIP thread, then served.
async fn opened<S>(
    profile: usize,
    proto: Proto,
    s: S,
    from: SocketAddr,
    input: UnboundedSender<Input>,
    limits: TcpLimits,
    channel: Arc<str>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (w, rx) = unbounded_channel();
    if input.send(Input::TcpOpen { from, writer: w }).is_err() {
        return;
    }
    let conn = Conn {
        profile,
        proto,
        from,
        channel: Some(channel),
    };
    stream_conn(conn, s, rx, input, limits).await
}

/// A stream connection: whose, from where, and (accepted ones) the
/// listener's handover name.
struct Conn {
    profile: usize,
    proto: Proto,
    from: SocketAddr,
    channel: Option<Arc<str>>,
}

/// Why a connection's reader stops waiting.
fn tcp_deadline(
    limits: &TcpLimits,
    last_rx: Instant,
    partial_since: Option<Instant>,
    ping_sent: Option<Instant>,
) -> (Instant, &'static str) {
    let mut d = (last_rx + limits.idle, "idle");
    if let Some(t) = partial_since {
        d = d.min((t + limits.message, "message"));
    }
    if let (Some(t), Some(p)) = (ping_sent, limits.pingpong) {
        d = d.min((t + p, "pong"));
    }
    d
}

/// One TCP or TLS connection: messages framed by Content-Length in,
/// queued messages (and keep-alive pings) out; closed when idle, when a
/// message begun does not complete in time, or when a ping gets no answer.
async fn stream_conn<S>(
    conn: Conn,
    s: S,
    mut out: UnboundedReceiver<Vec<u8>>,
    input: UnboundedSender<Input>,
    limits: TcpLimits,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Conn {
        profile,
        proto,
        from,
        channel,
    } = conn;
    let peer = from.to_string();
    let (mut r, mut w) = tokio::io::split(s);
    let ping_sent: Arc<Mutex<Option<Instant>>> = Arc::default();
    let keepalive = limits.keepalive;
    let pinged = ping_sent.clone();
    let writer = tokio::spawn(async move {
        loop {
            let b = match keepalive {
                Some(k) => match tokio::time::timeout(k, out.recv()).await {
                    Ok(b) => b,
                    Err(_) => {
                        pinged.lock().get_or_insert_with(Instant::now);
                        Some(b"\r\n\r\n".to_vec())
                    }
                },
                None => out.recv().await,
            };
            let Some(b) = b else {
                // The SIP thread closed the connection (a draining
                // version's unused flow): FIN, or close_notify then FIN.
                let _ = w.shutdown().await;
                break;
            };
            if w.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut writer = writer;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    let mut last_rx = Instant::now();
    let mut partial_since: Option<Instant> = None;
    'conn: loop {
        let ping = *ping_sent.lock();
        let (deadline, why) = tcp_deadline(&limits, last_rx, partial_since, ping);
        // A ping sent while we wait moves the deadline: look again soon.
        let wake = match limits.pingpong {
            Some(p) if ping.is_none() => {
                deadline.min(Instant::now() + p.min(Duration::from_secs(1)))
            }
            _ => deadline,
        };
        let read =
            tokio::time::timeout_at(tokio::time::Instant::from_std(wake), r.read(&mut chunk));
        let read = tokio::select! {
            r = read => r,
            // The writer ended (closed by us, or a write failed): so does
            // the connection.
            _ = &mut writer => break,
        };
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) if Instant::now() >= deadline => {
                match why {
                    "message" => log::warn!(
                        "TCP {from}: a message still incomplete after {} ms (tcp-message-timeout); closing",
                        limits.message.as_millis()
                    ),
                    "pong" => log::info!("TCP {from}: no answer to a keep-alive ping (tcp-pingpong); closing"),
                    _ => log::info!(
                        "TCP {from}: idle for {} ms (tcp-idle-timeout); closing",
                        limits.idle.as_millis()
                    ),
                }
                break;
            }
            Err(_) => continue,
        };
        let now = Instant::now();
        last_rx = now;
        *ping_sent.lock() = None;
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match message::frame(&buf) {
                Ok(Some(len)) => {
                    let data: Vec<u8> = buf.drain(..len).collect();
                    let back = back_to(&input, move |data| Input::Stream {
                        profile,
                        proto,
                        from,
                        data,
                    });
                    if channel
                        .as_deref()
                        .is_some_and(|c| crate::handover::forward(c, &peer, &data, back))
                    {
                        continue;
                    }
                    if input
                        .send(Input::Stream {
                            profile,
                            proto,
                            from,
                            data,
                        })
                        .is_err()
                    {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("TCP {from}: {e}; closing the connection");
                    break 'conn;
                }
            }
        }
        partial_since = if buf.is_empty() {
            None
        } else {
            partial_since.or(Some(now))
        };
    }
    writer.abort();
    let _ = input.send(Input::TcpClosed { from });
}

async fn serve(p: Prepared) {
    let Prepared {
        listeners,
        mut stack,
        mut rx,
        mut control,
    } = p;
    let n = listeners.len();
    let mut sockets = Sockets {
        udp: vec![None; n],
        listening: (0..n).map(|_| Vec::new()).collect(),
        tasks: (0..n).map(|_| Vec::new()).collect(),
        reading: true,
        conns: HashMap::new(),
        input: shared()
            .map(|s| s.input.clone())
            .unwrap_or_else(|| unbounded_channel().0),
        tcp_limits: stack
            .profiles
            .iter()
            .map(|p| p.cfg.tcp_limits.clone())
            .collect(),
        tls: shared().map(|s| s.tls.clone()).unwrap_or_default(),
        resolver: Resolver::start(
            shared()
                .map(|s| s.input.clone())
                .unwrap_or_else(|| unbounded_channel().0),
        ),
    };
    for (i, l) in listeners.into_iter().enumerate() {
        if let Err(e) = sockets.start_profile(i, l) {
            log::error!("profile {}: {e}", stack.profiles[i].cfg.name);
        }
    }
    stack.publish_registrations(true);
    let mut next_owned = Instant::now();
    // The first prune soon after a live reload: a version may be current
    // for only seconds (a reload every 2 s in the benchmark), and one
    // that never pruned handed its whole inherited set on, so the set
    // grew with every reload (19,416 Call-IDs after 90 reloads, of ≈ 1,000
    // calls up; 570 KB of handover data and half a second to adopt it).
    let mut next_prune = Instant::now() + PRUNE_FIRST;
    loop {
        let mut wake = stack
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        if crate::handover::any_inherited() {
            wake = wake.min(next_prune);
        }
        if stack.draining {
            wake = wake.min(next_owned);
        }
        let deadline = tokio::time::Instant::from_std(wake);
        tokio::select! {
            biased;
            // Control first: under a steady load `rx` is never empty, and a
            // handover asked for behind it would wait forever.
            Some(c) = control.recv() => on_control(&mut stack, &mut sockets, &mut rx, c).await,
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = clock(&mut stack);
                if !handle(&mut stack, &mut sockets, msg, now) {
                    break;
                }
                // Take what else is waiting before sending (fewer wakeups).
                let mut more = 0;
                while more < 256 {
                    match rx.try_recv() {
                        Ok(m) => {
                            if !handle(&mut stack, &mut sockets, m, now) {
                                flush(&mut stack, &mut sockets);
                                return finish(stack, sockets);
                            }
                            more += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = clock(&mut stack);
                stack.handle_timeout(now);
                if stack.draining && now >= next_owned {
                    // Calls ended since: their Call-IDs are no longer ours.
                    next_owned = now + Duration::from_secs(1);
                    crate::handover::set_owned(stack.call_ids());
                    // Connections whose last call ended since.
                    sockets.close_unused_flows(&stack.stream_peers());
                }
                if now >= next_prune {
                    // Inherited Call-IDs no older version has any more:
                    // asked one by one through the host, so off this thread.
                    next_prune = now + PRUNE_EVERY;
                    tokio::task::spawn_blocking(crate::handover::prune);
                }
            }
        }
        events(&mut stack, &mut sockets);
        flush(&mut stack, &mut sockets);
    }
    finish(stack, sockets)
}

/// Reads the clock, once per wake-up: the instant the stack's inputs are
/// stamped with, and the wall clock with it.
fn clock(stack: &mut Stack) -> Instant {
    let now = Instant::now();
    stack.handle_wall_clock(now, SystemTime::now());
    now
}

/// What the stack asked for since: socket work and names to resolve.
fn events(stack: &mut Stack, sockets: &mut Sockets) {
    while let Some(ev) = stack.poll_event() {
        match ev {
            Event::Resolve(host_port) => {
                if !sockets.resolver.ask(host_port.clone()) {
                    let now = clock(stack);
                    let e = Err("no resolver runs".to_string());
                    stack.handle_resolved(&host_port, e, now);
                }
            }
            Event::Profile(a) => match a {
                ShellAction::Stop(i) => {
                    sockets.stop_profile(i);
                    log::info!("profile {} stopped", stack.profiles[i].cfg.name);
                }
                ShellAction::Start(i) => {
                    sockets.stop_profile(i);
                    let cfg = &stack.profiles[i].cfg;
                    let addr = stack.profiles[i].addr;
                    let certs = sockets.tls.get(i).cloned().unwrap_or_default();
                    let started = bind_profile(cfg, addr, &certs)
                        .and_then(|l| sockets.start_profile(i, l).map_err(|e| e.to_string()));
                    match started {
                        Ok(()) => log::info!("profile {} started on {addr}", cfg.name),
                        Err(e) => {
                            log::error!("profile {}: {e}", cfg.name);
                            stack.profiles[i].running = false;
                        }
                    }
                }
            },
        }
    }
}

/// When a version first asks older ones which inherited Call-IDs they
/// still have, and how often after that (a question per generation of
/// older versions, so cheap).
const PRUNE_FIRST: Duration = Duration::from_secs(1);
const PRUNE_EVERY: Duration = Duration::from_secs(2);

/// A live-reload request on the SIP thread.
async fn on_control(
    stack: &mut Stack,
    sockets: &mut Sockets,
    rx: &mut UnboundedReceiver<Input>,
    c: Control,
) {
    match c {
        Control::Export(reply) => {
            sockets.stop_reading().await;
            // What the readers queued before they stopped is this
            // version's: handled now, so that a call it starts is among
            // the Call-IDs handed over.
            // Only what is queued now: session threads go on sending for
            // the calls already here, and those can wait for the loop.
            let queued = rx.len();
            let now = clock(stack);
            for _ in 0..queued {
                let Ok(m) = rx.try_recv() else { break };
                if matches!(m, Input::Stop) {
                    // Unload meanwhile: put it back for the loop.
                    if let Some(s) = shared() {
                        let _ = s.input.send(Input::Stop);
                    }
                    break;
                }
                handle(stack, sockets, m, now);
            }
            flush(stack, sockets);
            stack.draining = true;
            let registrations = stack.registrar.close_store();
            let own = stack.call_ids();
            crate::handover::set_owned(own.clone());
            sockets.close_unused_flows(&stack.stream_peers());
            let fds = sockets.handed();
            let h = crate::handover::Handed {
                profiles: stack.profiles.iter().map(|p| p.cfg.name.clone()).collect(),
                sockets: fds.iter().map(|(n, _)| n.clone()).collect(),
                generation: Some(crate::handover::generation()),
                own: own.into_iter().collect(),
                forward: crate::handover::inherited(),
                registrations,
            };
            log::info!(
                "handover: {} sockets, {} Call-IDs of this version, {} forwarded further, {} registrations in memory; this version drains",
                h.sockets.len(),
                h.own.len(),
                h.forward.len(),
                h.registrations.len()
            );
            let sent = reply.send(Ok(Exported {
                data: h.encode(),
                fds,
            }));
            if sent.is_err() {
                // The host gave up waiting: no successor takes these
                // sockets, so this version serves them again.
                log::warn!("handover: the reload gave up waiting for it; undone");
                resume_serving(stack, sockets);
            }
        }
        Control::Resume => resume_serving(stack, sockets),
    }
}

/// A handover undone (the reload failed or gave up): this version reads
/// its sockets again, with its registration store.
fn resume_serving(stack: &mut Stack, sockets: &mut Sockets) {
    // Once: an export the host gave up waiting for undoes itself when its
    // reply finds nobody, and the host's Resume, queued behind it, comes
    // next (a second store opened beside the first was refused "in use",
    // and the readers would have been started twice).
    if !stack.draining {
        return;
    }
    crate::handover::clear_owned();
    stack.draining = false;
    let profiles: Vec<ProfileConfig> = stack.profiles.iter().map(|p| p.cfg.clone()).collect();
    match registration_store(&profiles) {
        Ok(store) => stack.registrar.reopen_store(store),
        Err(e) => log::error!("handover undone: the registration store: {e}"),
    }
    sockets.start_reading();
    log::info!("handover undone: this version serves its sockets again");
}

fn finish(stack: Stack, mut sockets: Sockets) {
    // A draining version's bindings are the current version's now.
    if !stack.draining {
        stack.publish_registrations(false);
    }
    for i in 0..sockets.udp.len() {
        sockets.stop_profile(i);
    }
    sockets.conns.clear();
    sockets.resolver.stop();
    log::info!(
        "SIP stack stopping with {} calls and {:?} transactions",
        stack.call_count(),
        stack.tx.len()
    );
}

/// Hands `msg`, which came by `now`, to the stack; false on Stop.
fn handle(stack: &mut Stack, sockets: &mut Sockets, msg: Input, now: Instant) -> bool {
    match msg {
        Input::Stop => return false,
        Input::Datagram {
            profile,
            from,
            data,
        } => stack.handle_bytes(
            Target {
                proto: Proto::Udp,
                addr: from,
                profile,
            },
            &data,
            now,
        ),
        Input::Stream {
            profile,
            proto,
            from,
            data,
        } => stack.handle_bytes(
            Target {
                proto,
                addr: from,
                profile,
            },
            &data,
            now,
        ),
        Input::TcpOpen { from, writer } => {
            sockets.conns.insert(from, writer);
            if let Some(s) = shared() {
                s.flows.lock().insert(from);
            }
        }
        Input::TcpClosed { from } => {
            sockets.conns.remove(&from);
            if let Some(s) = shared() {
                s.flows.lock().remove(&from);
            }
        }
        Input::TcpUnreachable { to, error } => {
            sockets.conns.remove(&to);
            stack.handle_transport_error(to, &error, now);
        }
        Input::Resolved { host_port, result } => stack.handle_resolved(&host_port, result, now),
        other => stack.handle_input(other, now),
    }
    true
}

/// Writes what the stack has to send.
fn flush(stack: &mut Stack, sockets: &mut Sockets) {
    while let Some((t, bytes)) = stack.poll_transmit() {
        sockets.send(stack, t, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_are_capped_per_address_and_in_total_and_uncounted_when_closed() {
        let limits = TcpLimits {
            max_total: 3,
            max_per_ip: 2,
            ..TcpLimits::default()
        };
        let counts = Arc::new(ConnCounts::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = counts.admit(a, &limits).unwrap();
        let _a2 = counts.admit(a, &limits).unwrap();
        let e = counts.admit(a, &limits).err().unwrap();
        assert_eq!(
            e,
            "2 connections from 10.0.0.1 already open (tcp-max-connections-per-ip 2)"
        );
        let _b1 = counts.admit(b, &limits).unwrap();
        let e = counts.admit(b, &limits).err().unwrap();
        assert_eq!(e, "3 connections already open (tcp-max-connections 3)");
        drop(a1);
        assert!(counts.admit(b, &limits).is_ok());
    }

    #[test]
    fn a_connection_waits_for_the_nearest_of_its_deadlines() {
        let limits = TcpLimits {
            idle: Duration::from_secs(60),
            message: Duration::from_secs(5),
            pingpong: Some(Duration::from_secs(2)),
            ..TcpLimits::default()
        };
        let t = Instant::now();
        assert_eq!(
            tcp_deadline(&limits, t, None, None),
            (t + limits.idle, "idle")
        );
        assert_eq!(
            tcp_deadline(&limits, t, Some(t), None),
            (t + limits.message, "message")
        );
        assert_eq!(
            tcp_deadline(&limits, t, Some(t), Some(t)),
            (t + Duration::from_secs(2), "pong")
        );
    }
}

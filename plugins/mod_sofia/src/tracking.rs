//! `track-calls` and `sofia recover`: answered calls' dialog and media
//! state kept in PostgreSQL so that another node can take them over, as
//! FreeSWITCH's `switch_core_recovery_track` / `sofia recover` do.
//!
//! A profile with `track-calls` (and an `odbc-dsn`, the database the nodes
//! share) hands each call it confirms (the ACK of our 2xx, or our ACK of
//! theirs) to [`track`]: a snapshot of the dialog — Call-ID, tags, URIs,
//! remote target, route set, CSeq, where requests go — and of the media —
//! where RTP goes, the codec. The SIP thread only queues it. The worker
//! thread here (a current-thread tokio runtime with tokio-postgres) adds
//! what the session knows (caller profile, variables, the leg it is
//! bridged to — its `bridge_uuid`, looked at again every second so that
//! a bridge made after the answer is seen) and writes one row of FreeSWITCH's `recovery` table:
//! `runtime_uuid` (this switch process, as FreeSWITCH's core uuid: every
//! copy of the module a live reload loads shares it, so `sofia recover`
//! never takes calls an older copy in the same process still carries),
//! `technology` (`sofia`), `profile_name`,
//! `hostname` (the `switchname` of switch.conf.xml, else the host name),
//! `uuid`, `metadata`. A call that ends is removed ([`untrack`]). While the
//! database is down the changes wait in memory (one per call, the newest)
//! and are written when it is back; the SIP thread never waits.
//!
//! `sofia recover` (any thread but the SIP thread: the api's) takes the
//! rows other runtimes of the same switchname left for the profiles that
//! track calls — deleted as they are read, in one statement, so two nodes
//! recovering at once never take the same call — and hands them to the
//! SIP thread (`ua::recover`), which makes each a channel again and
//! re-INVITEs the far end with new media from this node. Legs that were
//! bridged to each other and both come back are bridged again.
//!
//! The same worker keeps the gateways' states of every profile with an
//! `odbc-dsn` in `sip_gateways` (one row per gateway and runtime: proxy,
//! username, register, state, when written), replaced when a state
//! changes and removed at unload: what every node's gateways are doing,
//! in one place.

use crate::leg::Input;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::ModuleContext;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_postgres::{Client, NoTls};

/// Between two connection attempts while the database is down.
const RETRY: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often tracked calls are looked at again (a bridge made after the
/// answer, variables set since).
const REFRESH: Duration = Duration::from_secs(1);
/// How long `sofia recover` waits for the database.
const API_WAIT: Duration = Duration::from_secs(10);
/// Variables a recovered channel does not get back: they describe the
/// old channel's media, its bridge or its run, not the call.
const NOT_RESTORED: &[&str] = &[
    "rtp_",
    "bridge_",
    "signal_bond",
    "current_application",
    "uuid",
    "call_uuid",
    "originat",
    "switch_r_sdp",
    "switch_m_sdp",
    "last_bridge",
    "hangup",
    "endpoint_disposition",
    "sip_term",
    "recovered",
];

/// Schema versions of the `recovery` and `sip_gateways` tables, applied
/// in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS recovery (
        runtime_uuid text NOT NULL,
        technology text NOT NULL,
        profile_name text NOT NULL,
        hostname text NOT NULL,
        uuid text PRIMARY KEY,
        metadata text NOT NULL
    );
    CREATE INDEX IF NOT EXISTS recovery_profile ON recovery (technology, profile_name, hostname);",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS sip_gateways (
        runtime_uuid text NOT NULL,
        hostname text NOT NULL,
        profile_name text NOT NULL,
        gateway_name text NOT NULL,
        proxy text NOT NULL,
        username text NOT NULL,
        register boolean NOT NULL,
        state text NOT NULL,
        updated bigint NOT NULL,
        PRIMARY KEY (runtime_uuid, profile_name, gateway_name)
    );",
    ),
];

/// One gateway's row in `sip_gateways`: profile, name, proxy, username,
/// register, state.
type GatewayRow = (String, String, String, String, bool, String);

/// A profile that keeps state in a database: its name, its `odbc-dsn`,
/// whether it tracks calls.
pub struct SharedProfile {
    pub name: String,
    pub dsn: String,
    pub track_calls: bool,
}

/// One tracked call leg: what another node needs to take its dialog over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// The leg's session uuid on the node that tracked it.
    pub uuid: String,
    pub profile: String,
    /// We answered the INVITE (UAS) or sent it (UAC).
    pub uas: bool,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our URI (From of our requests) and theirs, without tags.
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: String,
    /// As the stack keeps it (a UAC's reversed).
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Where in-dialog requests went: transport and address.
    pub peer_proto: String,
    pub peer: Option<SocketAddr>,
    /// Where RTP went and in which codec.
    pub remote_media: Option<SocketAddr>,
    pub codec: String,
    /// Our RTP stream when the snapshot was taken, so that a node taking
    /// the call over goes on with it.
    pub stream: Option<crate::rtp::StreamPosition>,
    /// From the session (filled by the worker).
    pub channel_name: String,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub destination_number: String,
    pub context: String,
    pub dialplan: String,
    pub network_addr: String,
    pub username: String,
    /// The leg it was bridged to (its uuid on the old node).
    pub partner: String,
    pub vars: Vec<(String, String)>,
}

fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c => o.push(c),
        }
    }
    o
}

fn unesc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            o.push(c);
            continue;
        }
        match it.next() {
            Some('n') => o.push('\n'),
            Some('r') => o.push('\r'),
            Some('t') => o.push('\t'),
            Some(c) => o.push(c),
            None => {}
        }
    }
    o
}

impl Tracked {
    /// The `metadata` column: one `key<TAB>value` line per field, values
    /// escaped; `var` lines carry the channel variables.
    pub fn encode(&self) -> String {
        let mut o = String::new();
        let mut put = |k: &str, v: &str| {
            o.push_str(k);
            o.push('\t');
            o.push_str(&esc(v));
            o.push('\n');
        };
        put("uuid", &self.uuid);
        put("profile", &self.profile);
        put("uas", if self.uas { "true" } else { "false" });
        put("call_id", &self.call_id);
        put("local_tag", &self.local_tag);
        put("remote_tag", &self.remote_tag);
        put("local_uri", &self.local_uri);
        put("remote_uri", &self.remote_uri);
        put("remote_target", &self.remote_target);
        for r in &self.route_set {
            put("route", r);
        }
        put("local_cseq", &self.local_cseq.to_string());
        put("peer_proto", &self.peer_proto);
        put(
            "peer",
            &self.peer.map(|a| a.to_string()).unwrap_or_default(),
        );
        put(
            "remote_media",
            &self.remote_media.map(|a| a.to_string()).unwrap_or_default(),
        );
        put("codec", &self.codec);
        if let Some(p) = self.stream {
            put(
                "rtp_stream",
                &format!("{} {} {} {}", p.ssrc, p.seq, p.ts, p.at_ms),
            );
        }
        put("channel_name", &self.channel_name);
        put("caller_id_name", &self.caller_id_name);
        put("caller_id_number", &self.caller_id_number);
        put("destination_number", &self.destination_number);
        put("context", &self.context);
        put("dialplan", &self.dialplan);
        put("network_addr", &self.network_addr);
        put("username", &self.username);
        put("partner", &self.partner);
        for (k, v) in &self.vars {
            put("var", &format!("{k}={v}"));
        }
        o
    }

    /// Reads [`Tracked::encode`]'s form; `None` without a uuid and Call-ID.
    pub fn decode(text: &str) -> Option<Tracked> {
        let mut t = Tracked::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('\t') else {
                continue;
            };
            let v = unesc(v);
            match k {
                "uuid" => t.uuid = v,
                "profile" => t.profile = v,
                "uas" => t.uas = v == "true",
                "call_id" => t.call_id = v,
                "local_tag" => t.local_tag = v,
                "remote_tag" => t.remote_tag = v,
                "local_uri" => t.local_uri = v,
                "remote_uri" => t.remote_uri = v,
                "remote_target" => t.remote_target = v,
                "route" => t.route_set.push(v),
                "local_cseq" => t.local_cseq = v.parse().unwrap_or(0),
                "peer_proto" => t.peer_proto = v,
                "peer" => t.peer = v.parse().ok(),
                "remote_media" => t.remote_media = v.parse().ok(),
                "codec" => t.codec = v,
                "rtp_stream" => {
                    let f: Vec<u64> = v.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if let [ssrc, seq, ts, at_ms] = f[..] {
                        t.stream = Some(crate::rtp::StreamPosition {
                            ssrc: ssrc as u32,
                            seq: seq as u16,
                            ts: ts as u32,
                            at_ms,
                        });
                    }
                }
                "channel_name" => t.channel_name = v,
                "caller_id_name" => t.caller_id_name = v,
                "caller_id_number" => t.caller_id_number = v,
                "destination_number" => t.destination_number = v,
                "context" => t.context = v,
                "dialplan" => t.dialplan = v,
                "network_addr" => t.network_addr = v,
                "username" => t.username = v,
                "partner" => t.partner = v,
                "var" => {
                    if let Some((a, b)) = v.split_once('=') {
                        t.vars.push((a.to_string(), b.to_string()));
                    }
                }
                _ => {}
            }
        }
        (!t.uuid.is_empty() && !t.call_id.is_empty()).then_some(t)
    }

    /// Adds what the session knows: caller profile, variables, partner.
    /// False when the session is gone.
    fn read_session(&mut self) -> bool {
        let Some(s) = ModuleContext::current().session_locate(&self.uuid) else {
            return false;
        };
        let Some(data) = s.channel_data() else {
            return false;
        };
        let mut vars = Vec::new();
        let mut partner = String::new();
        for (k, v) in data.headers {
            match k.as_str() {
                "Channel-Name" => self.channel_name = v,
                "Caller-Caller-ID-Name" => self.caller_id_name = v,
                "Caller-Caller-ID-Number" => self.caller_id_number = v,
                "Caller-Destination-Number" => self.destination_number = v,
                "Caller-Context" => self.context = v,
                "Caller-Dialplan" => self.dialplan = v,
                "Caller-Network-Addr" => self.network_addr = v,
                "Caller-Username" => self.username = v,
                _ => {
                    if let Some(name) = k.strip_prefix("variable_") {
                        if name == "bridge_uuid" {
                            partner = v.clone();
                        }
                        if !NOT_RESTORED.iter().any(|p| name.starts_with(p)) {
                            vars.push((name.to_string(), v));
                        }
                    }
                }
            }
        }
        self.partner = partner;
        self.vars = vars;
        true
    }
}

/// What the worker is asked.
enum Op {
    Track(Box<Tracked>),
    Untrack(String),
    /// Take (delete and return) other runtimes' rows of these profiles.
    Take {
        profiles: Vec<String>,
        reply: SyncSender<Result<Vec<Tracked>, String>>,
    },
    /// Delete every row of these profiles (`sofia recover flush`).
    Flush {
        profiles: Vec<String>,
        reply: SyncSender<Result<u64, String>>,
    },
    Stop,
}

/// The tracking worker of this load.
pub struct Tracker {
    ops: UnboundedSender<Op>,
    /// Profiles with `track-calls`.
    profiles: Vec<String>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

static TRACKER: Mutex<Option<Arc<Tracker>>> = Mutex::new(None);

fn tracker() -> Option<Arc<Tracker>> {
    TRACKER.lock().clone()
}

/// Starts the worker when a profile has an `odbc-dsn`: the tracking
/// profiles' database (they must name one), else the first profile's;
/// every profile of that database gets its gateways' states written.
pub fn start(shared: &[SharedProfile], switchname: &str) -> Result<(), String> {
    let tracking: Vec<&SharedProfile> = shared.iter().filter(|p| p.track_calls).collect();
    let Some(dsn) = tracking
        .first()
        .copied()
        .or(shared.first())
        .map(|p| p.dsn.clone())
    else {
        return Ok(());
    };
    if let Some(p) = tracking.iter().find(|p| p.dsn != dsn) {
        return Err(format!(
            "profile {}: track-calls: every tracking profile must name the same odbc-dsn",
            p.name
        ));
    }
    let gateway_profiles = shared
        .iter()
        .filter(|p| p.dsn == dsn)
        .map(|p| p.name.clone())
        .collect();
    let tracking_names: Vec<String> = tracking.iter().map(|p| p.name.clone()).collect();
    let config = crate::registrar_pg::parse_dsn(&dsn).map_err(|e| e.to_string())?;
    let (tx, rx) = unbounded_channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("track-calls: {e}"))?;
    let w = Worker {
        config,
        runtime_uuid: process_runtime_id(),
        load_uuid: uuid::Uuid::new_v4().to_string(),
        hostname: switchname.to_string(),
        client: None,
        down_logged: false,
        retry_at: tokio::time::Instant::now(),
        live: HashMap::new(),
        pending: HashMap::new(),
        tracking: !tracking_names.is_empty(),
        gateway_profiles,
        gw_written: None,
        gw_pending: None,
    };
    let worker = std::thread::Builder::new()
        .name("sofia-track".into())
        .spawn(move || rt.block_on(w.run(rx)))
        .map_err(|e| format!("track-calls: {e}"))?;
    *TRACKER.lock() = Some(Arc::new(Tracker {
        ops: tx,
        profiles: tracking_names,
        worker: Mutex::new(Some(worker)),
    }));
    Ok(())
}

/// Stops the worker (unload): what is queued gets one bounded try.
pub fn stop() {
    let t = TRACKER.lock().take();
    if let Some(t) = t {
        let _ = t.ops.send(Op::Stop);
        if let Some(h) = t.worker.lock().take() {
            let _ = h.join();
        }
    }
}

/// Whether `profile` tracks calls.
pub fn tracks(profile: &str) -> bool {
    tracker().is_some_and(|t| t.profiles.iter().any(|p| p == profile))
}

/// Queues a confirmed call's snapshot (SIP thread: never waits).
pub fn track(t: Tracked) {
    if let Some(tr) = tracker() {
        let _ = tr.ops.send(Op::Track(Box::new(t)));
    }
}

/// Queues a tracked call's removal (its dialog ended).
pub fn untrack(uuid: &str) {
    if let Some(tr) = tracker() {
        let _ = tr.ops.send(Op::Untrack(uuid.to_string()));
    }
}

/// `sofia recover [flush]` and `sofia profile <name> recover [flush]`,
/// FreeSWITCH's replies; `None` for any other command. Runs on the api's
/// thread: it waits on the database and the SIP thread, never the other
/// way round.
pub fn api(args: &str) -> Option<String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let (profile, flush) = match words.as_slice() {
        ["recover"] => (None, false),
        ["recover", "flush"] => (None, true),
        ["profile", name, "recover"] => (Some(*name), false),
        ["profile", name, "recover", "flush"] => (Some(*name), true),
        _ => return None,
    };
    let (one, many) = if profile.is_some() {
        ("No sessions to recover.\n", "session(s)")
    } else {
        ("No calls to recover.\n", "call(s)")
    };
    let nothing = || {
        if !flush && profile.is_none() {
            recovered_event(0);
        }
        Some(if flush {
            "Flushing recovery database.\n".to_string()
        } else {
            one.to_string()
        })
    };
    let Some(tr) = tracker() else {
        // No profile tracks calls: nothing was ever kept.
        return nothing();
    };
    let profiles: Vec<String> = match profile {
        Some(p) => {
            let known =
                crate::shell::shared().is_some_and(|s| s.profiles.iter().any(|(n, _)| n == p));
            if !known {
                return Some("Invalid Profile!\n".into());
            }
            tr.profiles.iter().filter(|n| *n == p).cloned().collect()
        }
        None => tr.profiles.clone(),
    };
    if profiles.is_empty() {
        return nothing();
    }
    if flush {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        let _ = tr.ops.send(Op::Flush { profiles, reply });
        return Some(match rx.recv_timeout(API_WAIT) {
            Ok(Ok(_)) => "Flushing recovery database.\n".into(),
            Ok(Err(e)) => format!("-ERR {e}\n"),
            Err(_) => "-ERR the recovery database did not answer\n".into(),
        });
    }
    let (reply, rx) = std::sync::mpsc::sync_channel(1);
    let _ = tr.ops.send(Op::Take { profiles, reply });
    let calls = match rx.recv_timeout(API_WAIT) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Some(format!("-ERR {e}\n")),
        Err(_) => return Some("-ERR the recovery database did not answer\n".into()),
    };
    let n = if calls.is_empty() { 0 } else { recover(calls) };
    if profile.is_none() {
        recovered_event(n);
    }
    Some(if n > 0 {
        format!("Recovered {n} {many}\n")
    } else {
        one.into()
    })
}

/// FreeSWITCH's CUSTOM `sofia::recovery_recovered` after `sofia recover`
/// (zero included).
fn recovered_event(n: usize) {
    let _ = ModuleContext::current().fire_event(
        hotswitch_plugin_api::EventId::CUSTOM.id(),
        "sofia::recovery_recovered",
        &[("recovered_calls", &n.to_string())],
        "",
    );
}

/// Hands taken calls to the SIP thread, then bridges again the pairs that
/// both came back. Returns how many legs are channels again.
fn recover(calls: Vec<Tracked>) -> usize {
    let Some(s) = crate::shell::shared() else {
        return 0;
    };
    let (reply, rx) = std::sync::mpsc::sync_channel(1);
    let _ = s.input.send(Input::Recover { calls, reply });
    let Ok(done) = rx.recv_timeout(API_WAIT) else {
        log::error!("sofia recover: the SIP thread did not answer");
        return 0;
    };
    let new_of: HashMap<&str, &str> = done
        .iter()
        .map(|r| (r.old.as_str(), r.new.as_str()))
        .collect();
    let mut bridged = HashSet::new();
    let ctx = ModuleContext::current();
    for r in &done {
        if r.partner.is_empty() || bridged.contains(&r.old) {
            continue;
        }
        let Some(other) = new_of.get(r.partner.as_str()) else {
            continue;
        };
        bridged.insert(r.old.clone());
        bridged.insert(r.partner.clone());
        // Both were parked by their dialplan (`inline:park`); a leg still
        // on its way there is tried again for a moment.
        let args = format!("{} {}", r.new, other);
        let mut ok = false;
        for _ in 0..20 {
            match ctx.execute_api("uuid_bridge", &args) {
                Ok(out) if out.starts_with("+OK") => {
                    ok = true;
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if ok {
            log::info!("sofia recover: {} and {other} bridged again", r.new);
        } else {
            log::warn!(
                "sofia recover: {} and {other} could not be bridged again",
                r.new
            );
        }
    }
    done.len()
}

/// A leg the SIP thread made a channel again.
pub struct Recovered {
    /// Its uuid on the old node, its new one, and its old partner's.
    pub old: String,
    pub new: String,
    pub partner: String,
}

/// What `Input::Recover` answers on.
pub type RecoverReply = SyncSender<Vec<Recovered>>;

struct Worker {
    config: tokio_postgres::Config,
    runtime_uuid: String,
    /// This copy of the module: the key of its `sip_gateways` rows (an
    /// older copy draining after a live reload removes its own at unload).
    load_uuid: String,
    hostname: String,
    client: Option<Client>,
    down_logged: bool,
    retry_at: tokio::time::Instant,
    /// This node's tracked calls, as last written (or to be written).
    live: HashMap<String, Tracked>,
    /// Rows to write: `Some` upsert, `None` delete.
    pending: HashMap<String, Option<Tracked>>,
    /// Some profile tracks calls (else only gateway states are kept).
    tracking: bool,
    /// Profiles whose gateways' states go to `sip_gateways`.
    gateway_profiles: Vec<String>,
    /// The gateway rows as written, and as to be written.
    gw_written: Option<Vec<GatewayRow>>,
    gw_pending: Option<Vec<GatewayRow>>,
}

impl Worker {
    async fn run(mut self, mut ops: UnboundedReceiver<Op>) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.client.is_none() && tokio::time::Instant::now() >= self.retry_at {
                self.connect().await;
            }
            if self.client.is_some() && !self.pending.is_empty() {
                self.flush().await;
            }
            if self.client.is_some() && self.gw_pending.is_some() {
                self.flush_gateways().await;
            }
            tokio::select! {
                op = ops.recv() => match op {
                    None | Some(Op::Stop) => break,
                    Some(op) => self.on_op(op).await,
                },
                _ = tick.tick() => {
                    self.refresh();
                    self.refresh_gateways();
                }
            }
        }
        // Bounded: unload does not wait on a database that is gone. This
        // node's gateways go away with it.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if self.client.is_some() && !self.pending.is_empty() {
                self.flush().await;
            }
            if let Some(c) = &self.client {
                let _ = c
                    .execute(
                        "DELETE FROM sip_gateways WHERE runtime_uuid = $1",
                        &[&self.load_uuid],
                    )
                    .await;
            }
        })
        .await;
    }

    /// The gateways' states now (the SIP thread publishes them); written
    /// when they changed.
    fn refresh_gateways(&mut self) {
        let Some(s) = crate::shell::shared() else {
            return;
        };
        let view = s.gateways.lock().clone();
        let rows: Vec<GatewayRow> = view
            .iter()
            .filter_map(|(profile, g, state)| {
                let name = &s.profiles.get(*profile)?.0;
                self.gateway_profiles.contains(name).then(|| {
                    (
                        name.clone(),
                        g.name.clone(),
                        g.proxy.clone(),
                        g.username.clone(),
                        g.register,
                        state.to_string(),
                    )
                })
            })
            .collect();
        if self.gw_written.as_ref() != Some(&rows) {
            self.gw_pending = Some(rows);
        }
    }

    /// Replaces this runtime's gateway rows, in one transaction.
    async fn flush_gateways(&mut self) {
        let (Some(client), Some(rows)) = (&self.client, &self.gw_pending) else {
            return;
        };
        let now = i64::try_from(crate::registrar::now_secs()).unwrap_or(i64::MAX);
        let done = async {
            client.batch_execute("BEGIN").await?;
            client
                .execute(
                    "DELETE FROM sip_gateways WHERE runtime_uuid = $1",
                    &[&self.load_uuid],
                )
                .await?;
            for (profile, name, proxy, user, register, state) in rows {
                client
                    .execute(
                        "INSERT INTO sip_gateways (runtime_uuid, hostname, profile_name, \
                         gateway_name, proxy, username, register, state, updated) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[
                            &self.load_uuid,
                            &self.hostname,
                            profile,
                            name,
                            proxy,
                            user,
                            register,
                            state,
                            &now,
                        ],
                    )
                    .await?;
            }
            client.batch_execute("COMMIT").await
        }
        .await;
        match done {
            Ok(()) => self.gw_written = self.gw_pending.take(),
            Err(e) if client.is_closed() => self.lost(&pg_error(&e)),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                log::error!("gateway states refused by the database: {}", pg_error(&e));
                self.gw_pending = None;
            }
        }
    }

    async fn on_op(&mut self, op: Op) {
        match op {
            Op::Track(mut t) => {
                if t.read_session() {
                    self.live.insert(t.uuid.clone(), (*t).clone());
                    self.pending.insert(t.uuid.clone(), Some(*t));
                }
            }
            Op::Untrack(uuid) => {
                if self.live.remove(&uuid).is_some() {
                    self.pending.insert(uuid, None);
                }
            }
            Op::Take { profiles, reply } => {
                let r = match &self.client {
                    Some(c) => take(c, &profiles, &self.hostname, &self.runtime_uuid)
                        .await
                        .map_err(|e| pg_error(&e)),
                    None => Err("the recovery database is unreachable".into()),
                };
                let _ = reply.try_send(r);
            }
            Op::Flush { profiles, reply } => {
                let r = match &self.client {
                    Some(c) => c
                        .execute(
                            "DELETE FROM recovery WHERE technology = 'sofia' \
                             AND profile_name = ANY($1)",
                            &[&profiles],
                        )
                        .await
                        .map_err(|e| pg_error(&e)),
                    None => Err("the recovery database is unreachable".into()),
                };
                let _ = reply.try_send(r);
            }
            Op::Stop => {}
        }
    }

    /// Looks at every tracked call's bridge again (one variable each): a
    /// leg bridged, unbridged or bridged anew since it was written is read
    /// in full and written again.
    fn refresh(&mut self) {
        let ctx = ModuleContext::current();
        let mut gone = Vec::new();
        for (uuid, t) in self.live.iter_mut() {
            let Some(s) = ctx.session_locate(uuid) else {
                gone.push(uuid.clone());
                continue;
            };
            let partner = s.var("bridge_uuid").unwrap_or_default();
            drop(s);
            if partner == t.partner {
                continue;
            }
            if !t.read_session() {
                gone.push(uuid.clone());
                continue;
            }
            self.pending.insert(uuid.clone(), Some(t.clone()));
        }
        // A session gone without its dialog ending here (it should not
        // happen): its row goes too.
        for uuid in gone {
            self.live.remove(&uuid);
            self.pending.insert(uuid, None);
        }
    }

    fn lost(&mut self, why: &str) {
        self.client = None;
        self.retry_at = tokio::time::Instant::now() + RETRY;
        if !self.down_logged {
            self.down_logged = true;
            log::error!(
                "recovery database unreachable ({why}): tracked calls are kept in memory \
                 until it is back"
            );
        }
    }

    async fn connect(&mut self) {
        let (client, conn) =
            match tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(NoTls)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return self.lost(&e.to_string()),
                Err(_) => return self.lost("connection timed out"),
            };
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::warn!("recovery database connection: {e}");
            }
        });
        // Two components (or nodes) creating the shared schema table at
        // once: the loser's CREATE fails; a moment later the table is there.
        let mut tries = 0;
        while let Err(e) = migrate(&client).await {
            tries += 1;
            if tries == 3 || client.is_closed() {
                log::error!("recovery database schema: {}", pg_error(&e));
                return self.lost(&pg_error(&e));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.client = Some(client);
        // This node's calls, as they are now (written again in full: the
        // database may have lost them, or another node taken them).
        for (uuid, t) in &self.live {
            self.pending.insert(uuid.clone(), Some(t.clone()));
        }
        // The gateway rows too (another node's recovery may have run, or
        // the database lost them).
        self.gw_written = None;
        self.refresh_gateways();
        let what = if self.tracking {
            "recovery database"
        } else {
            "gateway states database"
        };
        if self.down_logged {
            log::info!("{what} reachable again");
        } else {
            log::info!("{what} connected");
        }
        self.down_logged = false;
    }

    /// Writes what is pending: in one transaction (one commit for a burst
    /// of answers and hangups), else — a change the database refuses —
    /// row by row, the refused one dropped.
    async fn flush(&mut self) {
        if self.pending.len() > 1 && self.flush_batch().await {
            return;
        }
        let uuids: Vec<String> = self.pending.keys().cloned().collect();
        for uuid in uuids {
            let Some(client) = &self.client else { return };
            let Some(change) = self.pending.get(&uuid) else {
                continue;
            };
            match write(client, &self.runtime_uuid, &self.hostname, &uuid, change).await {
                Ok(()) => {
                    self.pending.remove(&uuid);
                }
                Err(e) if client.is_closed() => return self.lost(&e.to_string()),
                Err(e) => {
                    log::error!("recovery database refused a change: {}", pg_error(&e));
                    self.pending.remove(&uuid);
                }
            }
        }
    }

    /// Everything pending in one transaction; false when the database
    /// refused part of it (rolled back, to be written row by row).
    async fn flush_batch(&mut self) -> bool {
        let Some(client) = &self.client else {
            return true;
        };
        let done = async {
            client.batch_execute("BEGIN").await?;
            for (uuid, change) in &self.pending {
                write(client, &self.runtime_uuid, &self.hostname, uuid, change).await?;
            }
            client.batch_execute("COMMIT").await
        }
        .await;
        match done {
            Ok(()) => {
                self.pending.clear();
                true
            }
            Err(e) if client.is_closed() => {
                self.lost(&e.to_string());
                true
            }
            Err(_) => {
                let _ = client.batch_execute("ROLLBACK").await;
                false
            }
        }
    }
}

/// One tracked leg's row written (`Some`) or deleted (`None`).
async fn write(
    client: &Client,
    runtime_uuid: &str,
    hostname: &str,
    uuid: &str,
    change: &Option<Tracked>,
) -> Result<(), tokio_postgres::Error> {
    match change {
        Some(t) => {
            client
                .execute(
                    "INSERT INTO recovery (runtime_uuid, technology, profile_name, \
                     hostname, uuid, metadata) VALUES ($1, 'sofia', $2, $3, $4, $5) \
                     ON CONFLICT (uuid) DO UPDATE SET runtime_uuid = EXCLUDED.runtime_uuid, \
                     profile_name = EXCLUDED.profile_name, hostname = EXCLUDED.hostname, \
                     metadata = EXCLUDED.metadata",
                    &[&runtime_uuid, &t.profile, &hostname, &t.uuid, &t.encode()],
                )
                .await?;
        }
        None => {
            client
                .execute(
                    "DELETE FROM recovery WHERE uuid = $1 AND runtime_uuid = $2",
                    &[&uuid, &runtime_uuid],
                )
                .await?;
        }
    }
    Ok(())
}

/// This switch process's identity, the same in every copy of the module
/// it loads and different in every other run: the boot, the pid and the
/// process's start time.
fn process_runtime_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default();
    // Field 22 of /proc/self/stat, after the parenthesised command name.
    let start = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|st| {
            let rest = st.rsplit_once(')')?.1.to_string();
            rest.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_default();
    format!("{boot}-{}-{start}", std::process::id())
}

/// A database error with the server's message (tokio-postgres' own
/// display says only "db error").
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// Deletes and returns the rows other runtimes of `hostname` left.
async fn take(
    client: &Client,
    profiles: &[String],
    hostname: &str,
    runtime_uuid: &str,
) -> Result<Vec<Tracked>, tokio_postgres::Error> {
    let rows = client
        .query(
            "DELETE FROM recovery WHERE technology = 'sofia' AND profile_name = ANY($1) \
             AND hostname = $2 AND runtime_uuid <> $3 RETURNING metadata",
            &[&profiles, &hostname, &runtime_uuid],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let m: String = row.get(0);
        match Tracked::decode(&m) {
            Some(t) => out.push(t),
            None => log::warn!("sofia recover: skipping an unreadable recovery row"),
        }
    }
    Ok(out)
}

async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let done = async {
        // The registrations store migrates under the same lock.
        client
            .batch_execute("SELECT pg_advisory_xact_lock(3327)")
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS hotswitch_schema \
                 (component text PRIMARY KEY, version integer NOT NULL)",
            )
            .await?;
        let row = client
            .query_opt(
                "SELECT version FROM hotswitch_schema WHERE component = 'sofia_recovery'",
                &[],
            )
            .await?;
        let have: i32 = row.map(|r| r.get(0)).unwrap_or(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO hotswitch_schema (component, version) \
                     VALUES ('sofia_recovery', $1) \
                     ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    &[version],
                )
                .await?;
            log::info!("recovery table schema now at version {version}");
        }
        client.batch_execute("COMMIT").await
    }
    .await;
    if done.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    done
}

/// The `switchname` of switch.conf.xml's settings, else the host name
/// (FreeSWITCH's default): tracked calls are kept under it and `sofia
/// recover` takes only calls of the same switchname.
pub fn switchname(switch_conf: Option<&str>) -> String {
    let from_conf = switch_conf
        .and_then(|x| crate::config::Element::parse(x).ok())
        .and_then(|root| {
            let settings = root.child("settings")?;
            settings
                .params()
                .into_iter()
                .find(|(k, v)| k == "switchname" && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        });
    from_conf.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_metadata_form() {
        let t = Tracked {
            uuid: "u1".into(),
            profile: "internal".into(),
            uas: true,
            call_id: "c@h".into(),
            local_tag: "a".into(),
            remote_tag: "b".into(),
            local_uri: "<sip:9196@127.0.0.1>".into(),
            remote_uri: "\"Tab\tName\" <sip:1000@127.0.0.1>".into(),
            remote_target: "sip:1000@127.0.0.1:5062".into(),
            route_set: vec!["<sip:127.0.0.1:5070;lr>".into(), "<sip:x;lr>".into()],
            local_cseq: 3,
            peer_proto: "UDP".into(),
            peer: "127.0.0.1:5070".parse().ok(),
            remote_media: "127.0.0.1:4000".parse().ok(),
            codec: "PCMU".into(),
            stream: Some(crate::rtp::StreamPosition {
                ssrc: 0xdead_beef,
                seq: 65535,
                ts: 4_000_000_000,
                at_ms: 1_796_000_000_000,
            }),
            channel_name: "sofia/internal/1000@127.0.0.1".into(),
            destination_number: "9196".into(),
            partner: "u2".into(),
            vars: vec![("sip_from_user".into(), "a=b\nc\\".into())],
            ..Default::default()
        };
        assert_eq!(Tracked::decode(&t.encode()), Some(t));
        assert_eq!(Tracked::decode("junk"), None);
    }

    #[test]
    fn recover_commands_are_recognised_and_others_left_alone() {
        assert!(api("status").is_none());
        assert!(api("profile internal start").is_none());
        assert_eq!(api("recover").as_deref(), Some("No calls to recover.\n"));
        assert_eq!(
            api("recover flush").as_deref(),
            Some("Flushing recovery database.\n")
        );
    }

    #[test]
    fn the_runtime_is_the_process_not_the_load() {
        let id = process_runtime_id();
        assert_eq!(id, process_runtime_id());
        assert!(id.contains(&format!("-{}-", std::process::id())), "{id}");
    }

    #[test]
    fn the_switchname_comes_from_switch_conf_else_the_host() {
        let conf = r#"<configuration name="switch.conf"><settings>
            <param name="switchname" value="cluster-1"/></settings></configuration>"#;
        assert_eq!(switchname(Some(conf)), "cluster-1");
        assert!(!switchname(None).is_empty());
    }
}

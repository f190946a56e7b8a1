//! Registrations in PostgreSQL, shared by every node that names the same
//! database in a profile's `odbc-dsn` (FreeSWITCH's param; the
//! `pgsql://hostaddr=… dbname=… user=… password=…` form and
//! `postgresql://` URLs).
//!
//! The SIP thread never waits on the database. [`PgStore`] is written
//! behind: `save` and `delete` queue the change for a worker thread of the
//! store's own (a current-thread tokio runtime running tokio-postgres) and
//! return; the registrar answers every lookup from its memory. The worker
//! applies the queue in order, announces each change with `NOTIFY` on
//! channel `sofia_registrations`, and `LISTEN`s there for the other
//! nodes' changes, which the registrar folds into its memory at its next
//! lookup ([`RegistrationStore::remote_changes`]). On every (re)connection
//! it first writes what queued while it was away, then reads the whole
//! table, so a node that starts, or comes back, knows every live binding.
//!
//! While the database is down: a REGISTER is answered 200 as before and
//! its binding is kept in memory and queued (written when the database is
//! back); a call to a user is routed from memory — this node's bindings
//! and the other nodes' as last heard. Bindings another node makes during
//! the outage are learnt when it ends. Answering 503 instead would turn a
//! database outage into a phone outage, for a cache that stays right for
//! the bindings this node serves.
//!
//! The schema is created on first start and versioned in
//! `hotswitch_schema` (one row per component); migrations run under an
//! advisory lock, so nodes starting together apply each once.

use crate::registrar::{now_secs, Registration, RegistrationStore, RemoteChange};
use hotswitch_plugin_api::sync::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The NOTIFY channel.
const CHANNEL: &str = "sofia_registrations";
/// Between two connection attempts while the database is down.
const RETRY: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long unload waits for queued changes to be written.
const FLUSH_AT_STOP: Duration = Duration::from_secs(2);

/// Schema versions, applied in order; the number is the version reached.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE sip_registrations (
        profile_name text NOT NULL,
        sip_user text NOT NULL,
        sip_host text NOT NULL,
        contact text NOT NULL,
        network_ip text NOT NULL,
        network_port integer NOT NULL,
        transport text NOT NULL,
        expires bigint NOT NULL,
        call_id text NOT NULL,
        user_agent text NOT NULL,
        hostname text NOT NULL,
        PRIMARY KEY (profile_name, sip_user, sip_host, contact)
    );
    CREATE INDEX sip_registrations_expires ON sip_registrations (expires);",
    ),
    (
        2,
        "ALTER TABLE sip_registrations ADD COLUMN path text[] NOT NULL DEFAULT '{}'",
    ),
];

/// A DSN that is not a PostgreSQL one, or a broken one.
#[derive(Debug, PartialEq, Eq)]
pub struct DsnError(pub String);

impl std::fmt::Display for DsnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DsnError {}

/// Reads an `odbc-dsn`: `pgsql://<libpq keyword=value pairs>`, or a
/// `postgresql://` (`postgres://`) URL. Any other form (an ODBC DSN,
/// `sqlite://`) is refused with its reason.
pub fn parse_dsn(dsn: &str) -> Result<tokio_postgres::Config, DsnError> {
    let dsn = dsn.trim();
    let text = if let Some(rest) = dsn.strip_prefix("pgsql://") {
        rest
    } else if dsn.starts_with("postgresql://") || dsn.starts_with("postgres://") {
        dsn
    } else {
        return Err(DsnError(format!(
            "odbc-dsn {dsn:?}: only PostgreSQL is supported here, as \
             pgsql://hostaddr=… dbname=… user=… password=… or postgresql://…"
        )));
    };
    let c: tokio_postgres::Config = text
        .parse()
        .map_err(|e| DsnError(format!("odbc-dsn {dsn:?}: {e}")))?;
    if c.get_hosts().is_empty() && c.get_hostaddrs().is_empty() {
        return Err(DsnError(format!("odbc-dsn {dsn:?}: no host or hostaddr")));
    }
    Ok(c)
}

/// The DSN as `sofia status` shows it (FreeSWITCH's DBName line), its
/// password hidden.
pub fn masked(dsn: &str) -> String {
    let mut out = String::with_capacity(dsn.len());
    let mut rest = dsn;
    // keyword/value form: password=… or password='…'
    while let Some(i) = rest.find("password=") {
        out.push_str(&rest[..i + "password=".len()]);
        let v = &rest[i + "password=".len()..];
        let end = if let Some(q) = v.strip_prefix('\'') {
            q.find('\'').map_or(v.len(), |e| e + 2)
        } else {
            v.find(char::is_whitespace).unwrap_or(v.len())
        };
        out.push_str("****");
        rest = &v[end..];
    }
    out.push_str(rest);
    // URL form: scheme://user:password@host
    if let Some(scheme) = out.find("://") {
        let after = scheme + 3;
        if let Some(at) = out[after..].find('@').map(|a| a + after) {
            if let Some(colon) = out[after..at].find(':').map(|c| c + after) {
                out.replace_range(colon + 1..at, "****");
            }
        }
    }
    out
}

enum Op {
    Save(Registration),
    Delete(Registration),
    Stop,
}

/// The PostgreSQL store.
pub struct PgStore {
    ops: UnboundedSender<Op>,
    remote: Arc<Mutex<Vec<RemoteChange>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl PgStore {
    /// Starts the worker; it connects in the background (a database that is
    /// down at start is not an error: the switch serves from memory).
    pub fn open(dsn: &str) -> Result<PgStore, String> {
        let config = parse_dsn(dsn).map_err(|e| e.to_string())?;
        let (tx, rx) = unbounded_channel();
        let remote = Arc::new(Mutex::new(Vec::new()));
        let node = uuid::Uuid::new_v4().to_string();
        let shared = remote.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("registrations database: {e}"))?;
        let worker = std::thread::Builder::new()
            .name("sofia-pg".into())
            .spawn(move || {
                rt.block_on(Worker::new(config, node, shared).run(rx));
            })
            .map_err(|e| format!("registrations database: {e}"))?;
        Ok(PgStore {
            ops: tx,
            remote,
            worker: Mutex::new(Some(worker)),
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let _ = self.ops.send(Op::Stop);
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
    }
}

impl RegistrationStore for PgStore {
    fn save(&self, r: &Registration) -> Result<(), String> {
        self.ops
            .send(Op::Save(r.clone()))
            .map_err(|_| "the registrations database worker is gone".to_string())
    }

    fn delete(&self, r: &Registration) -> Result<(), String> {
        self.ops
            .send(Op::Delete(r.clone()))
            .map_err(|_| "the registrations database worker is gone".to_string())
    }

    /// Empty: the worker reads the table once connected and hands the rows
    /// over as remote changes, so a slow database does not hold the load up.
    fn load_all(&self) -> Result<Vec<Registration>, String> {
        Ok(Vec::new())
    }

    fn remote_changes(&self) -> Vec<RemoteChange> {
        match self.remote.try_lock() {
            Some(mut v) if !v.is_empty() => std::mem::take(&mut *v),
            _ => Vec::new(),
        }
    }
}

/// `<node>\x01<S|D>\x01<registration>`: what a NOTIFY carries.
fn payload(node: &str, op: char, r: &Registration) -> String {
    format!("{node}\u{1}{op}\u{1}{}", r.encode())
}

fn parse_payload(p: &str) -> Option<(&str, RemoteChange)> {
    let mut it = p.splitn(3, '\u{1}');
    let node = it.next()?;
    let op = it.next()?;
    let r = Registration::decode(it.next()?)?;
    match op {
        "S" => Some((node, RemoteChange::Bind(r))),
        "D" => Some((node, RemoteChange::Unbind(r))),
        _ => None,
    }
}

struct Worker {
    config: tokio_postgres::Config,
    node: String,
    remote: Arc<Mutex<Vec<RemoteChange>>>,
    queue: VecDeque<Op>,
    client: Option<Client>,
    notes: Option<UnboundedReceiver<String>>,
    down_logged: bool,
    /// No connection attempt before this.
    retry_at: tokio::time::Instant,
}

impl Worker {
    fn new(
        config: tokio_postgres::Config,
        node: String,
        remote: Arc<Mutex<Vec<RemoteChange>>>,
    ) -> Worker {
        Worker {
            config,
            node,
            remote,
            queue: VecDeque::new(),
            client: None,
            notes: None,
            down_logged: false,
            retry_at: tokio::time::Instant::now(),
        }
    }

    fn push_remote(&self, c: RemoteChange) {
        self.remote.lock().push(c);
    }

    async fn run(mut self, mut ops: UnboundedReceiver<Op>) {
        let mut stopping = false;
        loop {
            if self.client.is_none() && tokio::time::Instant::now() >= self.retry_at {
                self.connect().await;
            }
            if self.client.is_some() {
                self.flush().await;
            }
            if stopping {
                break;
            }
            let retry = tokio::time::sleep_until(self.retry_at);
            tokio::select! {
                op = ops.recv() => match op {
                    Some(Op::Stop) | None => {
                        // One last flush, bounded: unload does not wait on a
                        // database that is gone.
                        if self.client.is_some() && !self.queue.is_empty() {
                            let _ = tokio::time::timeout(FLUSH_AT_STOP, self.flush()).await;
                        }
                        if !self.queue.is_empty() {
                            log::warn!(
                                "{} registration changes not written to the database at unload",
                                self.queue.len()
                            );
                        }
                        break;
                    }
                    Some(op) => {
                        self.queue.push_back(op);
                        while let Ok(op) = ops.try_recv() {
                            if matches!(op, Op::Stop) {
                                stopping = true;
                                break;
                            }
                            self.queue.push_back(op);
                        }
                    }
                },
                note = recv_note(&mut self.notes) => match note {
                    Some(p) => self.note(&p),
                    None => self.lost("the connection ended"),
                },
                _ = retry, if self.client.is_none() => {}
            }
        }
        self.client = None;
    }

    fn note(&self, p: &str) {
        match parse_payload(p) {
            Some((node, _)) if node == self.node => {}
            Some((_, change)) => self.push_remote(change),
            None => log::warn!("unreadable {CHANNEL} notification: {:?}", p.escape_debug()),
        }
    }

    fn lost(&mut self, why: &str) {
        self.client = None;
        self.notes = None;
        self.retry_at = tokio::time::Instant::now() + RETRY;
        if !self.down_logged {
            self.down_logged = true;
            log::error!(
                "registrations database unreachable ({why}): serving from memory, \
                 changes are queued until it is back"
            );
        }
    }

    async fn connect(&mut self) {
        let (client, mut conn) =
            match tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(NoTls)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return self.lost(&e.to_string()),
                Err(_) => return self.lost("connection timed out"),
            };
        let (tx, rx) = unbounded_channel();
        // The connection is driven here; its notifications go to the loop.
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log::warn!("registrations database connection: {e}");
                        break;
                    }
                    None => break,
                }
            }
        });
        if let Err(e) = migrate(&client).await {
            log::error!(
                "registrations database schema: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            );
            return self.lost(&e.to_string());
        }
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return self.lost(&e.to_string());
        }
        self.client = Some(client);
        self.notes = Some(rx);
        // What queued while away goes first, then everyone's bindings.
        self.flush().await;
        let Some(client) = &self.client else { return };
        match load(client).await {
            Ok(rows) => {
                let n = rows.len();
                for r in rows {
                    self.push_remote(RemoteChange::Bind(r));
                }
                if self.down_logged {
                    log::info!("registrations database reachable again ({n} live bindings)");
                } else {
                    log::info!("registrations database connected ({n} live bindings)");
                }
                self.down_logged = false;
            }
            Err(e) => self.lost(&e.to_string()),
        }
    }

    /// Writes the queue in order; stops at the first failure (kept queued).
    async fn flush(&mut self) {
        while let Some(op) = self.queue.front() {
            let Some(client) = &self.client else { return };
            let done = match op {
                Op::Save(r) => save(client, &self.node, r).await,
                Op::Delete(r) => delete(client, &self.node, r).await,
                Op::Stop => Ok(()),
            };
            match done {
                Ok(()) => {
                    self.queue.pop_front();
                }
                Err(e) if client.is_closed() => return self.lost(&e.to_string()),
                Err(e) => {
                    // Refused, not lost: nothing would make it succeed.
                    log::error!("registrations database refused a change: {e}");
                    self.queue.pop_front();
                }
            }
        }
    }
}

async fn recv_note(rx: &mut Option<UnboundedReceiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Brings the schema to the newest version.
async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let done = async {
        // Nodes starting together (and this node's recovery worker, which
        // shares the schema table): one migrates, the others wait and see.
        // The table is created under the lock too: two CREATE TABLE IF NOT
        // EXISTS at once fail one of them.
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
                "SELECT version FROM hotswitch_schema WHERE component = 'sofia'",
                &[],
            )
            .await?;
        let have: i32 = row.map(|r| r.get(0)).unwrap_or(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO hotswitch_schema (component, version) VALUES ('sofia', $1) \
                     ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    &[version],
                )
                .await?;
            log::info!("registrations database schema now at version {version}");
        }
        client.batch_execute("COMMIT").await
    }
    .await;
    if done.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    done
}

async fn save(client: &Client, node: &str, r: &Registration) -> Result<(), tokio_postgres::Error> {
    let port = i32::from(r.network.port());
    let expires = i64::try_from(r.expires_at).unwrap_or(i64::MAX);
    client
        .execute(
            "INSERT INTO sip_registrations (profile_name, sip_user, sip_host, contact, \
             network_ip, network_port, transport, expires, call_id, user_agent, hostname, path) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (profile_name, sip_user, sip_host, contact) DO UPDATE SET \
             network_ip = EXCLUDED.network_ip, network_port = EXCLUDED.network_port, \
             transport = EXCLUDED.transport, expires = EXCLUDED.expires, \
             call_id = EXCLUDED.call_id, user_agent = EXCLUDED.user_agent, \
             hostname = EXCLUDED.hostname, path = EXCLUDED.path",
            &[
                &r.profile,
                &r.user,
                &r.domain,
                &r.contact,
                &r.network.ip().to_string(),
                &port,
                &r.transport,
                &expires,
                &r.call_id,
                &r.user_agent,
                &node,
                &r.path,
            ],
        )
        .await?;
    notify(client, &payload(node, 'S', r)).await
}

async fn delete(
    client: &Client,
    node: &str,
    r: &Registration,
) -> Result<(), tokio_postgres::Error> {
    // A lapsed binding is removed only if nobody refreshed it meanwhile
    // (every node purges; the phone may have registered again elsewhere).
    let now = i64::try_from(now_secs()).unwrap_or(i64::MAX);
    let lapsed = r.expires_at <= now_secs();
    client
        .execute(
            "DELETE FROM sip_registrations WHERE profile_name = $1 AND sip_user = $2 \
             AND sip_host = $3 AND contact = $4 AND (NOT $5 OR expires <= $6)",
            &[&r.profile, &r.user, &r.domain, &r.contact, &lapsed, &now],
        )
        .await?;
    notify(client, &payload(node, 'D', r)).await
}

async fn notify(client: &Client, payload: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map(|_| ())
}

/// Every live binding in the table.
async fn load(client: &Client) -> Result<Vec<Registration>, tokio_postgres::Error> {
    let now = i64::try_from(now_secs()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT profile_name, sip_user, sip_host, contact, network_ip, network_port, \
             transport, expires, call_id, user_agent, path FROM sip_registrations \
             WHERE expires > $1",
            &[&now],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let ip: String = row.get(4);
        let port: i32 = row.get(5);
        let expires: i64 = row.get(7);
        let (Ok(ip), Ok(port), Ok(expires_at)) = (
            ip.parse::<std::net::IpAddr>(),
            u16::try_from(port),
            u64::try_from(expires),
        ) else {
            log::warn!("skipping an unreadable sip_registrations row");
            continue;
        };
        out.push(Registration {
            profile: row.get(0),
            user: row.get(1),
            domain: row.get(2),
            contact: row.get(3),
            network: std::net::SocketAddr::new(ip, port),
            transport: row.get(6),
            expires_at,
            call_id: row.get(8),
            user_agent: row.get(9),
            path: row.get(10),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeswitchs_pgsql_dsn_and_urls_are_read_and_other_forms_refused() {
        let c = parse_dsn("pgsql://hostaddr=127.0.0.1 port=5433 dbname=fs user=fs password='x y'")
            .unwrap();
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("fs"));
        assert_eq!(c.get_password(), Some(&b"x y"[..]));
        let c = parse_dsn("postgresql://fs:pw@127.0.0.1:5434/fs").unwrap();
        assert_eq!(c.get_ports(), &[5434]);
        assert!(parse_dsn("postgres://fs@db.example/fs").is_ok());
        for bad in [
            "freeswitch:user:pass",
            "sqlite:///var/lib/fs.db",
            "pgsql://dbname=fs",
            "pgsql://hostaddr=127.0.0.1 port=nope",
            "/var/lib/hotswitch/reg.redb",
        ] {
            assert!(parse_dsn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_shows_the_dsn_without_its_password() {
        assert_eq!(
            masked("pgsql://hostaddr=127.0.0.1 dbname=fs user=fs password='x y' port=5432"),
            "pgsql://hostaddr=127.0.0.1 dbname=fs user=fs password=**** port=5432"
        );
        assert_eq!(
            masked("pgsql://hostaddr=127.0.0.1 password=secret"),
            "pgsql://hostaddr=127.0.0.1 password=****"
        );
        assert_eq!(
            masked("postgresql://fs:secret@db/fs"),
            "postgresql://fs:****@db/fs"
        );
        assert_eq!(masked("postgresql://fs@db/fs"), "postgresql://fs@db/fs");
    }

    #[test]
    fn notifications_carry_the_change_and_its_node() {
        let r = Registration {
            profile: "internal".into(),
            user: "1000".into(),
            domain: "127.0.0.1".into(),
            contact: "sip:1000@127.0.0.1:5062".into(),
            network: "127.0.0.1:5062".parse().unwrap(),
            transport: "UDP".into(),
            expires_at: 42,
            call_id: "c".into(),
            user_agent: "sipp".into(),
            path: vec!["<sip:127.0.0.1:5070;lr>".into()],
        };
        let p = payload("node-a", 'S', &r);
        assert_eq!(
            parse_payload(&p),
            Some(("node-a", RemoteChange::Bind(r.clone())))
        );
        let p = payload("node-b", 'D', &r);
        assert_eq!(parse_payload(&p), Some(("node-b", RemoteChange::Unbind(r))));
        assert_eq!(parse_payload("junk"), None);
    }
}

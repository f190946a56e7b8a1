//! Outbound mode: the dialplan application `socket <host[:port]> [async]
//! [full]` (port 8084 by default; several hosts may be given as `a|b`).
//!
//! It runs on the call's own thread, connects, and hands the socket to a
//! connection task on the module's runtime. Then:
//! - static (the default): the thread stays in the application and runs
//!   the applications `sendmsg` sends for this call, one by one, replying
//!   when each is done; when the socket closes (or the call hangs up) the
//!   application returns and the dialplan continues;
//! - `async`: once the client has sent `connect`, the call parks and
//!   `sendmsg` applications are queued to it; when the socket closes the
//!   dialplan continues only after `resume` (or with `socket_resume=true`),
//!   as in FreeSWITCH.

use crate::connection::{self, Origin};
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{ModuleContext, Session};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// FreeSWITCH's default outbound port.
const DEFAULT_PORT: u16 = 8084;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an `async` socket may take to send `connect`.
const CONNECT_WAIT: Duration = Duration::from_secs(25);
const TICK: Duration = Duration::from_millis(100);

/// An application the connection asks the call's thread to run.
pub struct Run {
    app: String,
    arg: String,
    loops: u32,
    done: oneshot::Sender<()>,
}

/// What an outbound connection knows about its call.
pub struct Link {
    /// The call's uuid.
    pub uuid: String,
    /// `async` given.
    pub async_mode: bool,
    /// `full` given: the inbound command set too.
    pub full: bool,
    /// Static mode: the call's thread, waiting for applications.
    call_thread: Option<mpsc::Sender<Run>>,
    /// Told when `connect` arrives or the connection ends.
    ready: Mutex<Option<mpsc::Sender<()>>>,
}

impl Link {
    /// `connect` arrived.
    pub fn connected(&self) {
        if let Some(tx) = self.ready.lock().take() {
            let _ = tx.send(());
        }
    }

    /// The connection ended.
    pub fn disconnected(&self) {
        self.ready.lock().take();
    }

    /// Static mode: runs an application on the call's thread and waits for
    /// it; false when there is no such thread (async mode, or the
    /// application has returned).
    pub async fn run_on_call_thread(&self, app: &str, arg: &str, loops: u32) -> bool {
        let Some(tx) = &self.call_thread else {
            return false;
        };
        let (done, finished) = oneshot::channel();
        let run = Run {
            app: app.to_string(),
            arg: arg.to_string(),
            loops,
            done,
        };
        if tx.send(run).is_err() {
            return false;
        }
        finished.await.is_ok()
    }
}

/// What `socket`'s data says.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    hosts: Vec<String>,
    async_mode: bool,
    full: bool,
}

fn parse(data: &str) -> Option<Target> {
    // originate's `&socket('host:port async')` keeps the quotes.
    let data = data.trim().trim_matches('\'');
    let mut words = data.split_whitespace();
    let hosts: Vec<String> = words
        .next()?
        .split('|')
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    let mut t = Target {
        hosts,
        async_mode: false,
        full: false,
    };
    for w in words {
        if w.eq_ignore_ascii_case("async") {
            t.async_mode = true;
        } else if w.eq_ignore_ascii_case("full") {
            t.full = true;
        }
    }
    (!t.hosts.is_empty()).then_some(t)
}

/// `host`, `host:port`, `[v6]:port`, `v6` → addresses to try.
fn addresses(host: &str) -> Vec<SocketAddr> {
    let host = host.split('/').next().unwrap_or(host);
    if let Ok(a) = host.parse::<SocketAddr>() {
        return vec![a];
    }
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return vec![SocketAddr::new(ip, DEFAULT_PORT)];
    }
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

fn connect(hosts: &[String]) -> Option<(TcpStream, String)> {
    for host in hosts {
        for addr in addresses(host) {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => return Some((s, host.clone())),
                Err(e) => log::error!("socket: cannot connect to {addr}: {e}"),
            }
        }
    }
    None
}

/// The `socket` application.
pub fn socket_app(session: Session, data: &str) {
    let Some(target) = parse(data) else {
        log::error!("socket: usage: socket <host>[:<port>] [async] [full]");
        session.set_var("current_application_response", "-ERR usage");
        return;
    };
    let Some((service, runtime)) = crate::service::current(CONNECT_TIMEOUT) else {
        log::error!("socket: the event socket is not running");
        return;
    };
    let Some((stream, host)) = connect(&target.hosts) else {
        session.set_var("current_application_response", "-ERR connect failed");
        return;
    };
    session.set_var("socket_host", &host);
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_nonblocking(true) {
        log::error!("socket: {e}");
        return;
    }
    let uuid = session.uuid();
    let (run_tx, run_rx) = mpsc::channel::<Run>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let link = Link {
        uuid: uuid.clone(),
        async_mode: target.async_mode,
        full: target.full,
        call_thread: (!target.async_mode).then_some(run_tx),
        ready: Mutex::new(Some(ready_tx)),
    };
    let live = service.enter();
    runtime.spawn(async move {
        match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => connection::serve(s, Origin::Outbound(link), service, live).await,
            Err(e) => log::error!("socket: {e}"),
        }
    });
    log::info!("socket: call {uuid} connected to {host}");
    if target.async_mode {
        wait_for_connect(&session, &ready_rx);
    } else {
        serve_call_thread(&session, &run_rx);
    }
}

fn wait_for_connect(session: &Session, ready: &mpsc::Receiver<()>) {
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        match ready.recv_timeout(TICK) {
            Ok(()) => {
                if !session.is_down() {
                    let _ = session.park();
                }
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                if session.is_down() || Instant::now() >= deadline {
                    return;
                }
            }
        }
    }
}

fn serve_call_thread(session: &Session, runs: &mpsc::Receiver<Run>) {
    let m = ModuleContext::current();
    loop {
        match runs.recv_timeout(TICK) {
            Ok(run) => {
                for _ in 0..run.loops.max(1) {
                    if session.is_down() {
                        break;
                    }
                    if let Err(e) = session.execute(&run.app, &run.arg) {
                        log::warn!("socket: {} {}: {e}", run.app, run.arg);
                    }
                }
                let _ = run.done.send(());
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                if session.is_down() || !m.running() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_names_hosts_and_flags() {
        assert_eq!(
            parse("127.0.0.1:9000 async full"),
            Some(Target {
                hosts: vec!["127.0.0.1:9000".into()],
                async_mode: true,
                full: true
            })
        );
        assert_eq!(parse("a|b").unwrap().hosts, vec!["a", "b"]);
        assert!(parse("'127.0.0.1:1 async'").unwrap().async_mode);
        assert_eq!(parse("  "), None);
    }

    #[test]
    fn the_port_defaults_to_8084() {
        assert_eq!(
            addresses("127.0.0.1"),
            vec!["127.0.0.1:8084".parse().unwrap()]
        );
        assert_eq!(addresses("[::1]:99"), vec!["[::1]:99".parse().unwrap()]);
        assert_eq!(addresses("::1"), vec!["[::1]:8084".parse().unwrap()]);
    }
}

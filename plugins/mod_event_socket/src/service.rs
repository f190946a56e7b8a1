//! The module's life around its tokio runtime.
//!
//! `load` reads the configuration and binds the listening socket (so a
//! busy port fails the load). The host's runtime thread for this module
//! then builds a multi-thread runtime (two workers), serves until unload,
//! drops the runtime — which waits for and joins every thread it started —
//! and joins the subscription threads before it returns. The host joins
//! that thread before closing the library; if it cannot finish in time
//! (an api command that does not return), the host leaves the library
//! mapped and reports it pinned instead of crashing.

use crate::config::Config;
use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use hotswitch_plugin_api::{ModuleContext, Status};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};

/// What every connection shares.
pub struct Service {
    /// The settings read at load.
    pub config: Config,
    /// Becomes true at unload.
    pub shutdown: watch::Sender<bool>,
    /// Connections alive (inbound and outbound).
    pub live: AtomicUsize,
    /// Signalled when `live` drops.
    pub idle: Notify,
    /// Threads started by connections (event pumps), joined at the end.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Counts a connection as alive while held.
pub struct LiveGuard(Arc<Service>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.idle.notify_waiters();
    }
}

impl Service {
    /// Counts a new connection.
    pub fn enter(self: &Arc<Self>) -> LiveGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }

    /// Starts a thread that is joined before the module unloads.
    pub fn spawn_thread(
        &self,
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let h = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(256 * 1024)
            .spawn(f)?;
        let mut threads = lock(&self.threads);
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|h| h.is_finished());
        *threads = running;
        threads.push(h);
        drop(threads);
        for h in done {
            let _ = h.join();
        }
        Ok(())
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for h in threads {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// Bound at load, served by the runtime thread.
static PREPARED: Mutex<Option<(TcpListener, Config)>> = Mutex::new(None);
/// The running service and its runtime, for the `socket` application.
static RUNNING: Mutex<Option<(Arc<Service>, Handle)>> = Mutex::new(None);
/// Set at unload; a runtime thread starting late sees it.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Load: reads `event_socket.conf` and binds the listening socket.
pub fn prepare(m: &ModuleContext) -> Result<(), String> {
    let xml = m.config_section("event_socket.conf");
    let config = Config::from_xml(xml.as_deref()).map_err(|e| e.to_string())?;
    let addr = std::net::SocketAddr::new(config.listen_ip, config.listen_port);
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    log::info!("event socket listening on {addr}");
    STOPPING.store(false, Ordering::Release);
    *lock(&PREPARED) = Some((listener, config));
    Ok(())
}

/// The module's runtime: serves until unload, then stops everything it
/// started. Returns `TERM` so that the host does not call it again.
pub fn run(_m: &ModuleContext) -> Status {
    let Some((listener, config)) = lock(&PREPARED).take() else {
        return Status::TERM;
    };
    if STOPPING.load(Ordering::Acquire) {
        return Status::TERM;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(512)
        .thread_name("esl")
        .thread_keep_alive(Duration::from_secs(10))
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the event socket runtime: {e}");
            return Status::TERM;
        }
    };
    let (shutdown, _) = watch::channel(false);
    let service = Arc::new(Service {
        config,
        shutdown,
        live: AtomicUsize::new(0),
        idle: Notify::new(),
        threads: Mutex::new(Vec::new()),
    });
    *lock(&RUNNING) = Some((service.clone(), rt.handle().clone()));
    // An unload that came before RUNNING was set did not see the service.
    if STOPPING.load(Ordering::Acquire) {
        service.shutdown.send_replace(true);
    }
    rt.block_on(crate::server::serve(listener, service.clone()));
    *lock(&RUNNING) = None;
    // Waits for blocking tasks (api commands in progress) and joins every
    // runtime thread.
    drop(rt);
    service.join_threads();
    log::info!("event socket stopped");
    Status::TERM
}

/// Unload: tells the runtime to close every connection and stop.
pub fn stop() {
    STOPPING.store(true, Ordering::Release);
    drop(lock(&PREPARED).take());
    if let Some((s, _)) = lock(&RUNNING).as_ref() {
        s.shutdown.send_replace(true);
    }
}

/// The running service and a handle to its runtime, waiting up to
/// `patience` for the runtime thread to come up (it starts after load).
pub fn current(patience: Duration) -> Option<(Arc<Service>, Handle)> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(running) = lock(&RUNNING).clone() {
            return Some(running);
        }
        let starting = lock(&PREPARED).is_some() && !STOPPING.load(Ordering::Acquire);
        if !starting || std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

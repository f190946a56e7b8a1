//! The session executor: a pool of host threads that run session state
//! machines, growing when every worker is busy (a blocking application
//! holds its worker) and shrinking when idle. A parked or waiting session
//! holds no thread at all.
//!
//! Plugin code runs on these workers, so they carry the plugin-boundary
//! rule with them: a worker remembers every module whose code it ran
//! ([`touch`]), and when a module unloads, every worker that touched it
//! retires (ends) before the library is closed ([`Executor::retire_module`]).

use crate::modules::{contained, LoadedModule};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use hotswitch_plugin_api::sync::Mutex;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
    static TOUCHED: RefCell<Vec<Arc<LoadedModule>>> = const { RefCell::new(Vec::new()) };
}

/// The pool.
pub struct Executor {
    tx: Sender<Job>,
    pool: Pool,
    /// Asks the spawner thread for one more worker.
    spawn: Sender<()>,
}

/// What a worker shares with the pool.
#[derive(Clone)]
struct Pool {
    rx: Receiver<Job>,
    idle: Arc<AtomicUsize>,
    /// Jobs submitted and not yet taken by a worker.
    pending: Arc<AtomicUsize>,
    workers: Arc<AtomicUsize>,
    /// Workers asked for and not yet idle.
    spawning: Arc<AtomicUsize>,
    min_idle: usize,
    idle_timeout: Arc<Mutex<Duration>>,
}

impl Executor {
    pub fn new(min_idle: usize, idle_timeout: Duration) -> Executor {
        let (tx, rx) = unbounded();
        let pool = Pool {
            rx,
            idle: Arc::new(AtomicUsize::new(0)),
            pending: Arc::new(AtomicUsize::new(0)),
            workers: Arc::new(AtomicUsize::new(0)),
            spawning: Arc::new(AtomicUsize::new(0)),
            min_idle,
            idle_timeout: Arc::new(Mutex::new(idle_timeout)),
        };
        // Starting a thread takes milliseconds on a loaded machine: the
        // spawner does it, so that whoever submits a job (mod_sofia's SIP
        // thread starting a call) never waits for a thread to be created.
        let (spawn, spawn_rx) = unbounded::<()>();
        let p = pool.clone();
        let spawner = std::thread::Builder::new()
            .name("worker-spawner".into())
            .spawn(move || {
                for () in spawn_rx {
                    p.start_worker();
                }
            });
        if let Err(e) = spawner {
            log::error!("cannot start the worker spawner: {e}");
        }
        Executor { tx, pool, spawn }
    }

    pub fn set_idle_timeout(&self, d: Duration) {
        *self.pool.idle_timeout.lock() = d;
    }

    /// Live worker threads.
    pub fn workers(&self) -> usize {
        self.pool.workers.load(Ordering::Relaxed)
    }

    /// Runs `job` on a worker.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        // Counted before sending so that a worker taking it can never make
        // `pending` go below zero.
        let p = &self.pool;
        let pending = p.pending.fetch_add(1, Ordering::SeqCst) + 1;
        if self.tx.send(Box::new(job)).is_err() {
            p.pending.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // More jobs waiting than idle workers (and workers on their way) to
        // take them: a job could otherwise wait behind workers that block
        // for a whole call.
        let coming = p.idle.load(Ordering::SeqCst) + p.spawning.load(Ordering::SeqCst);
        if pending > coming {
            p.spawning.fetch_add(1, Ordering::AcqRel);
            if self.spawn.send(()).is_err() {
                p.spawning.fetch_sub(1, Ordering::AcqRel);
                p.start_worker();
            }
        }
    }
}

impl Pool {
    /// Starts one worker; it counts itself idle, then no longer spawning.
    fn start_worker(&self) {
        let rx = self.rx.clone();
        let idle = self.idle.clone();
        let pending = self.pending.clone();
        let workers = self.workers.clone();
        let spawning = self.spawning.clone();
        let min_idle = self.min_idle;
        let timeout = *self.idle_timeout.lock();
        let pool = self.clone();
        workers.fetch_add(1, Ordering::AcqRel);
        let spawned = crate::stackpool::spawn(
            c"session-worker",
            Box::new(move || {
                IS_WORKER.with(|w| w.set(true));
                crate::loader::thread_accounted();
                idle.fetch_add(1, Ordering::AcqRel);
                let _ = spawning
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                let mut retired = false;
                loop {
                    match rx.recv_timeout(timeout) {
                        Ok(job) => {
                            pending.fetch_sub(1, Ordering::AcqRel);
                            idle.fetch_sub(1, Ordering::AcqRel);
                            job();
                            idle.fetch_add(1, Ordering::AcqRel);
                            if must_retire() {
                                retired = true;
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if must_retire() {
                                retired = true;
                                break;
                            }
                            // Claim the exit first, then look again: a job
                            // submitted meanwhile may have counted on this
                            // worker being idle (submit counts `pending`
                            // before it reads `idle`; both are SeqCst).
                            let others = idle.fetch_sub(1, Ordering::SeqCst) - 1;
                            if others >= min_idle && pending.load(Ordering::SeqCst) == 0 {
                                idle.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            idle.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let left = idle.fetch_sub(1, Ordering::SeqCst) - 1;
                // A retiring worker may leave a job behind with nobody
                // idle to take it: start its replacement first.
                if retired && left == 0 && pending.load(Ordering::SeqCst) > 0 {
                    pool.start_worker();
                }
                release_touched();
                crate::loader::thread_unaccounted();
                workers.fetch_sub(1, Ordering::AcqRel);
            }),
        );
        if let Err(e) = spawned {
            self.workers.fetch_sub(1, Ordering::AcqRel);
            let _ = self
                .spawning
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            log::error!("cannot start a session worker: {e}");
        }
    }
}

impl Executor {
    /// Makes every worker that ran `module`'s code end, and waits (up to
    /// `timeout`) until none is left. False if some are still busy.
    pub fn retire_module(&self, module: &LoadedModule, timeout: Duration) -> bool {
        module.set_retiring();
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if module.worker_threads() == 0 {
                return true;
            }
            // Idle workers only look at the retire flag when they wake:
            // give each idle one a no-op job. Busy ones look after the job
            // they run (a whole call): nothing to send them, and a no-op
            // per worker every round would flood the queue under load.
            for _ in 0..self.pool.idle.load(Ordering::SeqCst).max(1) {
                self.pool.pending.fetch_add(1, Ordering::AcqRel);
                if self.tx.send(Box::new(|| {})).is_err() {
                    self.pool.pending.fetch_sub(1, Ordering::AcqRel);
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// True when a module whose code this worker ran is being retired, or
/// drains behind a newer copy: the worker ends after the job it ran
/// rather than take the next call (which could last as long as any call,
/// and keep the old copy mapped all that time).
fn must_retire() -> bool {
    TOUCHED.with(|t| {
        t.borrow()
            .iter()
            .any(|m| m.is_retiring() || m.is_draining())
    })
}

/// True when a module whose code this worker ran is being retired (its
/// library is about to close): a long job (the media loop) moves to a
/// fresh worker then, and this one ends.
pub(crate) fn touched_retiring() -> bool {
    TOUCHED.with(|t| t.borrow().iter().any(|m| m.is_retiring()))
}

fn release_touched() {
    TOUCHED.with(|t| {
        for m in t.borrow_mut().drain(..) {
            m.worker_thread_ended();
        }
    })
}

thread_local! {
    /// The module whose runtime thread this is (null elsewhere).
    static RUNTIME_OF: Cell<*const LoadedModule> = const { Cell::new(std::ptr::null()) };
}

/// Marks the calling thread as `module`'s runtime thread, which the host
/// joins before the module's library closes: the module's own code may run
/// on it directly.
pub fn mark_runtime_thread(module: &Arc<LoadedModule>) {
    RUNTIME_OF.with(|r| r.set(Arc::as_ptr(module)));
}

pub fn on_runtime_of(module: &Arc<LoadedModule>) -> bool {
    RUNTIME_OF.with(|r| std::ptr::eq(r.get(), Arc::as_ptr(module)))
}

/// True on a session worker.
pub fn on_worker() -> bool {
    IS_WORKER.with(|w| w.get())
}

/// Records that this worker ran `module`'s code.
pub fn touch(module: &Arc<LoadedModule>) {
    TOUCHED.with(|t| {
        let mut t = t.borrow_mut();
        if !t.iter().any(|m| Arc::ptr_eq(m, module)) {
            module.worker_thread_started();
            t.push(module.clone());
        }
    })
}

/// Calls into `module`'s code: directly on a worker (which then remembers
/// it) or on the module's own runtime thread (joined before its library
/// closes, e.g. mod_sofia's SIP thread hanging up one of its calls),
/// otherwise on a contained thread joined before returning.
pub fn call_into<R: Send>(
    module: &Arc<LoadedModule>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, String> {
    if on_worker() {
        touch(module);
        Ok(f())
    } else if on_runtime_of(module) {
        Ok(f())
    } else {
        contained(&module.name, f)
    }
}

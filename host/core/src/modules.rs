//! The module manager: FreeSWITCH's `load` / `unload [-f]` / `reload`
//! semantics over the shadow-copy loader, plus fault containment and watch
//! mode.
//!
//! A module's life: copy → dlopen → check ABI → `module_load` → serve
//! (interfaces registered, runtime thread running) → drain (no new calls,
//! wait for running ones) → unregister → `module_unload` → join runtime →
//! dlclose → verify unmapped (else *pinned*).
//!
//! Invariant: plugin code runs only on host threads that are joined before
//! its library is closed — [`contained`] for every call the host makes, the
//! runtime thread joined at unload. A runtime that will not stop leaves the
//! library mapped on purpose (unmapping running code would crash the switch)
//! and the module is reported pinned.

use crate::core::Core;
use crate::event::EventType;
use crate::interfaces::InterfaceRow;
use crate::loader::{find_module, CloseOutcome, FileId, HandoverInfo, LoadError, ShadowLib};
use crate::origin;
use crate::services::SERVICES;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use hotswitch_plugin_api::module::{
    ModuleLoadFn, ModuleRuntimeFn, ModuleUnloadFn, MODULE_FLAG_NOBLOCK_READ, MODULE_FLAG_PANIC_SAFE,
};
use hotswitch_plugin_api::sync::{Condvar, Mutex, RwLock};
use hotswitch_plugin_api::{ModuleHandle, Status};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long `unload -f` waits for running calls to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a draining copy's purge waits, outside the module operations'
/// lock, for the busy session workers that ran its code to end (each ends
/// after the call it runs: a long call keeps the copy mapped that long).
const PURGE_RETIRE_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long unload waits for a runtime thread to return.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a loaded module is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Loading,
    Loaded,
    Faulted,
    Unloading,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Loaded => "loaded",
            Phase::Faulted => "faulted",
            Phase::Unloading => "unloading",
        }
    }
}

struct Usage {
    phase: Phase,
    calls: usize,
    fault: Option<String>,
}

/// A module in service.
pub struct LoadedModule {
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: PathBuf,
    pub shadow: PathBuf,
    pub source_id: Option<FileId>,
    pub loaded_at: SystemTime,
    order: u64,
    core: Weak<Core>,
    usage: Mutex<Usage>,
    idle: Condvar,
    running: AtomicBool,
    lib: Mutex<Option<ShadowLib>>,
    load_fn: ModuleLoadFn,
    unload_fn: Option<ModuleUnloadFn>,
    runtime_fn: Option<ModuleRuntimeFn>,
    runtime: Mutex<Option<(JoinHandle<()>, Receiver<()>)>>,
    /// Session workers that ran this module's code and are still alive.
    worker_threads: AtomicUsize,
    retiring: AtomicBool,
    /// Set with `Phase::Faulted`, read without a lock on every call into
    /// the module (20 ms media paths).
    faulted: AtomicBool,
    /// The module declared that a panic leaves its other calls sound.
    panic_safe: bool,
    /// The module's endpoints return at once from a non-blocking read:
    /// their bridged legs may be served by the shared media loop.
    noblock_read: bool,
    /// The id the module knows itself by (`ModuleHandle`), in
    /// `handles::MODULES`.
    handle: u64,
    /// The `ModuleError` its load reported, while loading.
    load_error: Mutex<Option<String>>,
    /// Its live-reload contract, if it declared one.
    pub handover: Option<HandoverInfo>,
    /// Its allocator's gauge, read only while `lib` is open.
    memory: Option<GaugePtr>,
    /// The version this one replaces, while this one loads in a live reload.
    replacing: Mutex<Option<Weak<LoadedModule>>>,
    /// The predecessor's handover, until this version's load takes it.
    pending: Mutex<Option<crate::reload::Pending>>,
    /// Set when a newer version took its place: no new work, purged when
    /// its last call ends.
    draining: AtomicBool,
    purge_scheduled: AtomicBool,
    /// Its endpoints as they were registered, kept while it drains so that
    /// its own code can still create legs of them.
    retired_endpoints: Mutex<Vec<Arc<crate::interfaces::EndpointEntry>>>,
    /// The host thread that runs newer versions' deliveries into it, once
    /// one came ([`crate::reload::forward`]); joined before it closes.
    forwarder: Mutex<Option<crate::reload::Forwarder>>,
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        crate::handles::MODULES.remove(self.handle);
    }
}

/// Why a module's interface cannot be called now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub module: String,
    pub reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module {} is {}", self.module, self.reason)
    }
}

/// A call in progress into a module; the module cannot be unloaded (without
/// `-f`) while one exists, and is never closed while one exists.
pub struct CallGuard {
    module: Arc<LoadedModule>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut u = self.module.lock_usage();
        u.calls -= 1;
        if u.calls == 0 {
            self.module.idle.notify_all();
            drop(u);
            if self.module.is_draining() {
                crate::reload::schedule_purge(&self.module);
            }
        }
    }
}

impl LoadedModule {
    fn lock_usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock()
    }

    /// The core this module serves, while it exists.
    pub fn core(&self) -> Option<Arc<Core>> {
        self.core.upgrade()
    }

    /// True while `self` loads as the next version of `old`.
    pub fn replaces(&self, old: &LoadedModule) -> bool {
        self.replacing
            .lock()
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), old))
    }

    /// True once a newer version took this one's place.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Load order: a later version has a larger one.
    pub fn order(&self) -> u64 {
        self.order
    }

    pub(crate) fn take_pending(&self) -> Option<crate::reload::Pending> {
        if self.phase() != Phase::Loading {
            return None;
        }
        self.pending.lock().take()
    }

    pub(crate) fn claim_purge(&self) -> bool {
        !self.purge_scheduled.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn unclaim_purge(&self) {
        self.purge_scheduled.store(false, Ordering::Release);
    }

    /// One of this version's own endpoints by name, while it drains.
    pub fn retired_endpoint(&self, name: &str) -> Option<Arc<crate::interfaces::EndpointEntry>> {
        self.retired_endpoints
            .lock()
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The handle given to the module.
    pub fn handle(&self) -> ModuleHandle {
        ModuleHandle { id: self.handle }
    }

    /// Starts a call into the module, unless it is faulted or going away.
    pub fn enter(self: &Arc<Self>) -> Result<CallGuard, Unavailable> {
        let mut u = self.lock_usage();
        match u.phase {
            Phase::Loaded | Phase::Loading => {
                u.calls += 1;
                Ok(CallGuard {
                    module: self.clone(),
                })
            }
            Phase::Faulted | Phase::Unloading => Err(unavailable(&self.name, &u)),
        }
    }

    /// Why the module cannot be called now.
    pub fn unavailable(&self) -> Unavailable {
        unavailable(&self.name, &self.lock_usage())
    }

    /// Marks the module faulted: its interfaces stop being called. True
    /// for the call that faulted it (the first).
    pub fn fault(&self, what: &str) -> bool {
        let mut u = self.lock_usage();
        if matches!(u.phase, Phase::Loaded | Phase::Loading) {
            u.phase = Phase::Faulted;
        }
        let first = u.fault.is_none();
        if first {
            u.fault = Some(what.to_string());
        }
        self.faulted.store(true, Ordering::Release);
        drop(u);
        log::error!(
            "module {} faulted: {what}; its interfaces are disabled until it is unloaded or reloaded",
            self.name
        );
        first
    }

    /// What its allocator holds, when one of its threads is parked over
    /// the limit (see [`hotswitch_plugin_api::alloc`]).
    pub fn memory_over(&self) -> Option<MemoryOver> {
        let g = self.memory.as_ref()?;
        let lib = self.lib.lock();
        lib.as_ref()?;
        // SAFETY: the gauge is static data of the library, open while we
        // hold its lock.
        let g = unsafe { &*g.0 };
        if g.parked.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(MemoryOver {
            // SAFETY: the library is mapped (lock held above).
            entry: unsafe { g.entry() }.unwrap_or("").to_string(),
            live: g.live.load(Ordering::Relaxed),
            limit: g.limit.load(Ordering::Relaxed),
            refused: g.refused.load(Ordering::Relaxed),
        })
    }

    /// Sets the bytes its allocator may hold (`usize::MAX`: no limit).
    fn set_memory_limit(&self, bytes: usize) {
        if let Some(g) = &self.memory {
            // SAFETY: called while the library is open (at load).
            unsafe { &*g.0 }.limit.store(bytes, Ordering::Relaxed);
        }
    }

    /// True once its allocator parked a thread over the limit: its calls
    /// cannot end and its unload must not run (it would allocate too).
    pub fn memory_faulted(&self) -> bool {
        self.memory_over().is_some()
    }

    /// True once the module faulted: the host calls none of its code but
    /// its unload.
    pub fn is_faulted(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
    }

    /// The module declared itself panic-safe (a panic ends only that call).
    pub fn panic_safe(&self) -> bool {
        self.panic_safe
    }

    /// The module declared `MODULE_FLAG_NOBLOCK_READ`.
    pub fn noblock_read(&self) -> bool {
        self.noblock_read
    }

    /// Records why the load failed (the module's `ModuleError`).
    pub(crate) fn set_load_error(&self, reason: &str) {
        if self.phase() == Phase::Loading {
            *self.load_error.lock() = Some(reason.to_string());
        }
    }

    pub fn phase(&self) -> Phase {
        self.lock_usage().phase
    }

    pub fn fault_reason(&self) -> Option<String> {
        self.lock_usage().fault.clone()
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.lock_usage().calls
    }

    pub(crate) fn worker_thread_started(&self) {
        self.worker_threads.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn worker_thread_ended(&self) {
        self.worker_threads.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn worker_threads(&self) -> usize {
        self.worker_threads.load(Ordering::Acquire)
    }

    pub(crate) fn set_retiring(&self) {
        self.retiring.store(true, Ordering::Release);
    }

    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Acquire)
    }

    /// False once unloading began (what `module_running` tells the module).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    fn start_runtime(self: &Arc<Self>) {
        let Some(rt) = self.runtime_fn else { return };
        let (tx, rx) = bounded(1);
        let m = self.clone();
        let spawned = std::thread::Builder::new()
            .name(thread_name(&self.name, "rt"))
            .spawn(move || {
                crate::executor::mark_runtime_thread(&m);
                while m.is_running() && m.phase() == Phase::Loaded {
                    // SAFETY: the runtime entry of a module whose library
                    // stays open until this thread has been joined.
                    let st = unsafe { rt() };
                    if st == Status::PANIC {
                        // Its main loop is gone: a fault even when the
                        // module is panic-safe.
                        crate::containment::faulted_in(&m, "runtime", "panicked", None, true);
                        break;
                    }
                    if st == Status::TERM {
                        break;
                    }
                }
                let _ = tx.send(());
            });
        match spawned {
            Ok(h) => *self.runtime.lock() = Some((h, rx)),
            Err(e) => log::error!("{}: cannot start its runtime thread: {e}", self.name),
        }
    }

    /// Runs `job` on this version's forwarder thread, started on first
    /// use; gives the job back when no thread could be started.
    pub(crate) fn on_forwarder(
        self: &Arc<Self>,
        job: crate::reload::Job,
    ) -> Result<(), crate::reload::Job> {
        let mut f = self.forwarder.lock();
        if f.is_none() {
            *f = crate::reload::Forwarder::start(self);
        }
        match f.as_ref() {
            Some(f) => f.send(job),
            None => Err(job),
        }
    }

    /// Ends and joins the forwarder thread, if one was started.
    fn stop_forwarder(&self) {
        let f = self.forwarder.lock().take();
        if let Some(f) = f {
            f.stop();
        }
    }

    /// Joins the runtime thread (and the forwarder); false if the runtime
    /// did not stop in time.
    fn stop_runtime(&self) -> bool {
        self.stop_forwarder();
        let Some((h, rx)) = self.runtime.lock().take() else {
            return true;
        };
        match rx.recv_timeout(RUNTIME_STOP_TIMEOUT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = h.join();
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Calls the module's unload entry on a contained thread.
    fn call_unload(&self) {
        let Some(f) = self.unload_fn else { return };
        // SAFETY: the module's own unload entry, library still open.
        match contained(&self.name, || unsafe { f() }) {
            Ok(st) if st == Status::PANIC => {
                self.fault("panicked in its unload");
            }
            Ok(st) if !st.is_success() => {
                log::warn!("{}: module_unload returned {st:?}", self.name)
            }
            Ok(_) => {}
            Err(e) => log::error!("{}: {e}", self.name),
        }
    }

    /// Closes the library (after everything else has stopped), unless a
    /// thread that may still run its code is alive (`keep_mapped` says which).
    fn close(&self, keep_mapped: Option<String>) -> CloseOutcome {
        self.stop_forwarder();
        let Some(mut lib) = self.lib.lock().take() else {
            return CloseOutcome::Unmapped;
        };
        match keep_mapped {
            None => lib.close(),
            Some(why) => {
                lib.leak();
                CloseOutcome::Pinned(format!("{why}, so its library was left mapped"))
            }
        }
    }
}

fn unavailable(module: &str, u: &Usage) -> Unavailable {
    let reason = match u.phase {
        Phase::Unloading => "unloading".into(),
        _ => format!(
            "faulted ({}); unload or reload it",
            u.fault.as_deref().unwrap_or("panic")
        ),
    };
    Unavailable {
        module: module.to_string(),
        reason,
    }
}

fn thread_name(module: &str, what: &str) -> String {
    let m = module.strip_prefix("mod_").unwrap_or(module);
    let mut n = format!("{m}:{what}");
    n.truncate(15);
    n
}

/// Runs plugin code on a fresh host thread and joins it before returning, so
/// that whatever the code leaves in thread-local storage is destroyed while
/// its library is still mapped.
pub fn contained<R: Send>(label: &str, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name(thread_name(label, "call"))
            .spawn_scoped(s, f)
            .map_err(|e| format!("cannot start a thread to call {label}: {e}"))?;
        h.join()
            .map_err(|_| format!("host panic while calling into {label}"))
    })
}

/// A module's allocator gauge (static data of its library).
struct GaugePtr(*const hotswitch_plugin_api::alloc::MemoryGauge);

// SAFETY: the gauge is atomics only, and is read only while the library
// is open (under `LoadedModule::lib`'s lock).
unsafe impl Send for GaugePtr {}
// SAFETY: as above.
unsafe impl Sync for GaugePtr {}

/// A module over its memory limit, as its gauge says.
#[derive(Clone, Debug)]
pub struct MemoryOver {
    /// The entry the first parked thread was in.
    pub entry: String,
    pub live: usize,
    pub limit: usize,
    /// The allocation refused.
    pub refused: usize,
}

/// The memory a module may hold unless `switch.conf` says otherwise
/// (`module-memory-limit`, in MiB): 1 GiB.
pub const DEFAULT_MODULE_MEMORY_LIMIT: usize = 1 << 30;

/// A module whose library stayed mapped after unload.
#[derive(Clone, Debug)]
pub struct Pinned {
    pub name: String,
    pub version: String,
    pub source: PathBuf,
    pub shadow: PathBuf,
    pub reason: String,
}

/// Why a module operation failed; `Display` gives FreeSWITCH's bracketed
/// text (the console prints `-ERR [<text>]`).
#[derive(Debug)]
pub enum ModError {
    AlreadyLoaded,
    NoSuchModule,
    InUse,
    Load(LoadError),
    LoadFailed {
        module: String,
        reason: String,
    },
    /// A live reload refused before anything ran: the new copy cannot read
    /// the old one's handover (or the old one could not write it).
    Handover(String),
    Internal(String),
}

impl fmt::Display for ModError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModError::AlreadyLoaded => write!(f, "Module already loaded"),
            ModError::NoSuchModule => write!(f, "No such module!"),
            ModError::InUse => write!(f, "Module in use."),
            ModError::Load(e) => write!(f, "{e}"),
            ModError::LoadFailed { module, reason } => {
                write!(
                    f,
                    "{module}: module load routine returned an error: {reason}"
                )
            }
            ModError::Internal(e) => write!(f, "{e}"),
            ModError::Handover(e) => write!(f, "{e}"),
        }
    }
}

/// What became of the version a reload replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// None was loaded.
    NotLoaded,
    /// It was unloaded (idle).
    Unloaded(UnloadReport),
    /// It drains: its calls go on on its code.
    Draining { calls: usize },
}

/// How an unload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadReport {
    /// Set when the library is still mapped.
    pub pinned: Option<String>,
}

/// Loaded and pinned modules.
pub struct ModuleManager {
    dirs: RwLock<Vec<PathBuf>>,
    shadow_dir: PathBuf,
    seq: AtomicU64,
    loaded: Mutex<BTreeMap<String, Arc<LoadedModule>>>,
    /// Older versions still serving the calls they started, oldest first.
    draining: Mutex<Vec<Arc<LoadedModule>>>,
    pinned: Mutex<Vec<Pinned>>,
    /// Serialises load/unload/reload so that two never interleave.
    ops: Mutex<()>,
    /// Bytes each module's allocator may hold (`module-memory-limit`).
    pub memory_limit: AtomicUsize,
}

impl ModuleManager {
    pub fn new(dirs: Vec<PathBuf>, shadow_dir: PathBuf) -> ModuleManager {
        ModuleManager {
            dirs: RwLock::new(dirs),
            shadow_dir,
            seq: AtomicU64::new(1),
            loaded: Mutex::new(BTreeMap::new()),
            draining: Mutex::new(Vec::new()),
            pinned: Mutex::new(Vec::new()),
            ops: Mutex::new(()),
            memory_limit: AtomicUsize::new(DEFAULT_MODULE_MEMORY_LIMIT),
        }
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.read().clone()
    }

    pub fn shadow_dir(&self) -> &PathBuf {
        &self.shadow_dir
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<LoadedModule>>> {
        self.loaded.lock()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedModule>> {
        self.lock_loaded().get(stem(name)).cloned()
    }

    /// Loaded modules in load order.
    pub fn list(&self) -> Vec<Arc<LoadedModule>> {
        let mut v: Vec<_> = self.lock_loaded().values().cloned().collect();
        v.sort_by_key(|m| m.order);
        v
    }

    pub fn pinned(&self) -> Vec<Pinned> {
        self.pinned.lock().clone()
    }

    /// `load mod_x`.
    pub fn load(&self, core: &Arc<Core>, name: &str) -> Result<Arc<LoadedModule>, ModError> {
        let _op = self.ops.lock();
        let name = stem(name);
        if self.lock_loaded().contains_key(name) {
            return Err(ModError::AlreadyLoaded);
        }
        let lib = self.prepare(name)?;
        self.activate(core, name, lib)
    }

    /// `unload [-f] mod_x`.
    pub fn unload(
        &self,
        core: &Arc<Core>,
        name: &str,
        force: bool,
    ) -> Result<UnloadReport, ModError> {
        let _op = self.ops.lock();
        self.unload_locked(core, stem(name), force)
    }

    /// `reload [-f] mod_x`: the new file is opened and checked before the old
    /// module goes, so a broken build leaves the running one in service.
    ///
    /// A module with a handover contract takes the live path (without
    /// `-f`, and unless it faulted): the old version exports, the new one
    /// loads with the handover and takes the old one's interface entries'
    /// places, and the old one drains. Any failure puts the old one back in
    /// service.
    pub fn reload(
        &self,
        core: &Arc<Core>,
        name: &str,
        force: bool,
    ) -> Result<(Replaced, Arc<LoadedModule>), ModError> {
        let _op = self.ops.lock();
        let name = stem(name);
        let tp = Instant::now();
        let lib = self.prepare(name)?;
        let prepared = tp.elapsed();
        let Some(old) = self.get(name) else {
            let m = self.activate(core, name, lib)?;
            return Ok((Replaced::NotLoaded, m));
        };
        let idle = old.calls() == 0 && self.draining_of(name).is_empty();
        let live = match (&old.handover, lib.handover()) {
            _ if force || old.is_faulted() => None,
            (None, _) => None,
            (Some(_), None) if idle => None,
            (Some(o), None) => {
                return Err(ModError::Handover(format!(
                    "{name}: the new copy declares no handover format, so it cannot take over from the running one ({} version {}) while it has calls",
                    o.format, o.version
                )))
            }
            (Some(o), Some(n)) => Some(crate::reload::check_formats(name, o, &n)?),
        };
        let Some(()) = live else {
            // On failure `lib` drops here, closing the new copy.
            let report = self.unload_locked(core, name, force)?;
            let m = self.activate(core, name, lib)?;
            return Ok((Replaced::Unloaded(report), m));
        };
        let te = Instant::now();
        let pending = crate::reload::export(&old)?;
        let exported = te.elapsed();
        let ta = Instant::now();
        *old.retired_endpoints.lock() = core.registry.endpoints_of(&old);
        match self.activate_as(core, name, lib, Some((old.clone(), pending))) {
            Ok(new) => {
                log::info!(
                    "{name}: live reload: copy and dlopen {:.1} ms, export {:.1} ms, load and take over {:.1} ms",
                    prepared.as_secs_f64() * 1e3,
                    exported.as_secs_f64() * 1e3,
                    ta.elapsed().as_secs_f64() * 1e3
                );
                let calls = old.calls();
                let drained = self.drain_version(core, &old);
                // The old version is among the draining ones now (or gone).
                *new.replacing.lock() = None;
                match drained {
                    Some(report) => Ok((Replaced::Unloaded(report), new)),
                    None => Ok((Replaced::Draining { calls }, new)),
                }
            }
            Err(e) => {
                // The new version's entries went with its failed load; the
                // old one's come back, and it takes work again.
                core.registry.restore_displaced(&old);
                old.retired_endpoints.lock().clear();
                crate::reload::resume(&old);
                log::error!("{name}: reload failed, the running copy serves on: {e}");
                Err(ModError::Handover(format!(
                    "{e}; the running copy serves on"
                )))
            }
        }
    }

    /// Unloads every module, newest first (shutdown).
    pub fn unload_all(&self, core: &Arc<Core>) {
        let mut mods = self.list();
        mods.reverse();
        for m in mods {
            if let Err(e) = self.unload(core, &m.name, true) {
                log::error!("shutdown: unload {}: {e}", m.name);
            }
        }
    }

    /// The bytes module `name` may hold: its `memory-limit` in
    /// modules.conf (MiB), else switch.conf's `module-memory-limit`.
    fn memory_limit_of(&self, core: &Core, name: &str) -> usize {
        let own = core
            .config
            .modules_to_load()
            .ok()
            .and_then(|l| l.into_iter().find(|m| stem(&m.name) == name))
            .and_then(|m| m.memory_limit_mib);
        match own {
            Some(0) => usize::MAX,
            Some(mib) => usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            None => self.memory_limit.load(Ordering::Relaxed),
        }
    }

    fn prepare(&self, name: &str) -> Result<ShadowLib, ModError> {
        let source = find_module(name, &self.dirs()).map_err(ModError::Load)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let shadow = self.shadow_dir.join(format!("{name}.{seq}.so"));
        ShadowLib::open(&source, shadow).map_err(ModError::Load)
    }

    fn activate(
        &self,
        core: &Arc<Core>,
        name: &str,
        lib: ShadowLib,
    ) -> Result<Arc<LoadedModule>, ModError> {
        self.activate_as(core, name, lib, None)
    }

    /// Loads `lib`; with `replacing`, as the next version of a module in a
    /// live reload (its registrations take the old version's entries'
    /// places, its load may take the handover).
    pub(crate) fn activate_as(
        &self,
        core: &Arc<Core>,
        name: &str,
        lib: ShadowLib,
        replacing: Option<(Arc<LoadedModule>, crate::reload::Pending)>,
    ) -> Result<Arc<LoadedModule>, ModError> {
        let d = lib.descriptor();
        // SAFETY: the descriptor's strings live in the open library; we copy them.
        let (declared, version, description) = unsafe {
            (
                d.name.to_str().into_owned(),
                d.version.to_str().into_owned(),
                d.description.to_str().into_owned(),
            )
        };
        if declared != name {
            log::warn!("{name}: the module declares itself as '{declared}'");
        }
        let (load_fn, unload_fn, runtime_fn, flags) = (d.load, d.unload, d.runtime, d.flags);
        let m = Arc::new_cyclic(|me| LoadedModule {
            handle: crate::handles::MODULES.insert(me.clone()),
            name: name.to_string(),
            version,
            description,
            source: lib.source.clone(),
            shadow: lib.shadow.clone(),
            source_id: lib.source_id,
            loaded_at: SystemTime::now(),
            order: self.seq.fetch_add(1, Ordering::Relaxed),
            core: Arc::downgrade(core),
            usage: Mutex::new(Usage {
                phase: Phase::Loading,
                calls: 0,
                fault: None,
            }),
            idle: Condvar::new(),
            running: AtomicBool::new(true),
            load_fn,
            unload_fn,
            runtime_fn,
            runtime: Mutex::new(None),
            worker_threads: AtomicUsize::new(0),
            retiring: AtomicBool::new(false),
            faulted: AtomicBool::new(false),
            load_error: Mutex::new(None),
            panic_safe: flags & MODULE_FLAG_PANIC_SAFE != 0,
            noblock_read: flags & MODULE_FLAG_NOBLOCK_READ != 0,
            handover: lib.handover(),
            memory: lib.memory_gauge().map(GaugePtr),
            replacing: Mutex::new(replacing.as_ref().map(|(o, _)| Arc::downgrade(o))),
            pending: Mutex::new(replacing.map(|(_, p)| p)),
            draining: AtomicBool::new(false),
            purge_scheduled: AtomicBool::new(false),
            retired_endpoints: Mutex::new(Vec::new()),
            forwarder: Mutex::new(None),
            lib: Mutex::new(Some(lib)),
        });
        m.set_memory_limit(self.memory_limit_of(core, name));
        let handle = m.handle();
        let load = m.load_fn;
        // SAFETY: the module's load entry with our services table; the
        // library is open and stays so while `m` holds it.
        let st = contained(name, move || unsafe { load(&SERVICES, handle) })
            .map_err(ModError::Internal)?;
        if !st.is_success() {
            let said = m.load_error.lock().take();
            let reason = if st == Status::PANIC {
                "it panicked".to_string()
            } else {
                said.unwrap_or_else(|| format!("{st:?}"))
            };
            core.registry.remove_module(&m);
            drop(m.pending.lock().take());
            *m.replacing.lock() = None;
            m.running.store(false, Ordering::Release);
            m.lock_usage().phase = Phase::Unloading;
            m.call_unload();
            let retired = core.executor.retire_module(&m, DRAIN_TIMEOUT);
            let keep =
                (!retired).then(|| "a session worker that ran its code is still busy".to_string());
            if let CloseOutcome::Pinned(why) = m.close(keep) {
                self.record_pinned(&m, why);
            }
            return Err(ModError::LoadFailed {
                module: name.to_string(),
                reason,
            });
        }
        {
            let mut u = m.lock_usage();
            if u.phase == Phase::Loading {
                u.phase = Phase::Loaded;
            }
        }
        // What the load did not take closes now (its fds). `replacing`
        // stays until the reload puts the old version to draining.
        drop(m.pending.lock().take());
        self.lock_loaded().insert(name.to_string(), m.clone());
        let rows = core.registry.rows_of(&m);
        fire_module_events(core, EventType::MODULE_LOAD, &m, &rows);
        m.start_runtime();
        log::info!(
            "loaded {name} {} from {} ({} interface(s))",
            m.version,
            m.source.display(),
            rows.len()
        );
        Ok(m)
    }

    /// `unload [-f]` of every version of `name`: refused while any has
    /// calls (without `-f`); `-f` ends the calls of them all.
    fn unload_locked(
        &self,
        core: &Arc<Core>,
        name: &str,
        force: bool,
    ) -> Result<UnloadReport, ModError> {
        let current = self.get(name);
        let older = self.draining_of(name);
        if current.is_none() && older.is_empty() {
            return Err(ModError::NoSuchModule);
        }
        let busy = |m: &Arc<LoadedModule>| m.calls() > 0 && !m.is_faulted();
        if !force && (current.as_ref().is_some_and(busy) || older.iter().any(busy)) {
            return Err(ModError::InUse);
        }
        let mut report = UnloadReport { pinned: None };
        for o in older {
            let r = self.retire_version(core, &o, force, false)?;
            report.pinned = report.pinned.or(r.pinned);
        }
        match current {
            Some(m) => {
                let r = self.retire_version(core, &m, force, true)?;
                report.pinned = r.pinned.or(report.pinned);
                Ok(report)
            }
            None => Ok(report),
        }
    }

    /// The draining versions of `name`, oldest first.
    pub fn draining_of(&self, name: &str) -> Vec<Arc<LoadedModule>> {
        self.lock_draining()
            .iter()
            .filter(|m| m.name == stem(name))
            .cloned()
            .collect()
    }

    /// Every draining version, oldest first.
    pub fn draining(&self) -> Vec<Arc<LoadedModule>> {
        self.lock_draining().clone()
    }

    fn lock_draining(&self) -> std::sync::MutexGuard<'_, Vec<Arc<LoadedModule>>> {
        self.draining.lock()
    }

    /// The newest version of `m`'s module older than `m` (draining).
    ///
    /// While `m` loads in a live reload (and until its predecessor is put
    /// to draining) that predecessor is not among the draining versions
    /// yet, but `m` reads the handed sockets already: the version `m`
    /// replaces counts too, or the messages of its calls that arrive
    /// meanwhile would find no older version (and their Call-IDs be
    /// forgotten: ACKs and BYEs lost for good).
    pub fn older_than(&self, m: &LoadedModule) -> Option<Arc<LoadedModule>> {
        let replaced = m.replacing.lock().as_ref().and_then(Weak::upgrade);
        self.lock_draining()
            .iter()
            .filter(|o| o.name == m.name && o.order < m.order)
            .cloned()
            .chain(replaced)
            .max_by_key(|o| o.order)
    }

    /// Purges a draining version whose last call ended (a host thread of
    /// its own runs this, never a call's).
    pub fn purge(&self, core: &Arc<Core>, m: &Arc<LoadedModule>) {
        // First, without the module operations' lock (a reload meanwhile
        // must not wait for this): the session workers that ran the old
        // copy's code end, each after the call it runs now.
        core.executor.retire_module(m, PURGE_RETIRE_TIMEOUT);
        let purged = {
            let _op = self.ops.lock();
            self.purge_locked(core, m).is_some()
        };
        if purged {
            let t = std::time::Instant::now();
            crate::arenas::trim();
            log::debug!(
                "{}: malloc_trim after the purge {:.1} ms",
                m.name,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }

    fn purge_locked(&self, core: &Arc<Core>, m: &Arc<LoadedModule>) -> Option<UnloadReport> {
        if !self.lock_draining().iter().any(|o| Arc::ptr_eq(o, m)) {
            return None;
        }
        match self.retire_version(core, m, false, false) {
            Ok(r) => Some(r),
            Err(_) => {
                // A call began meanwhile: the next one to end purges.
                m.unclaim_purge();
                if m.calls() == 0 {
                    crate::reload::schedule_purge(m);
                }
                None
            }
        }
    }

    /// Puts `old` to draining after its successor took its place: its
    /// remaining entries go, its sessions and runtime go on; purged at once
    /// when it has no call.
    fn drain_version(&self, core: &Arc<Core>, old: &Arc<LoadedModule>) -> Option<UnloadReport> {
        core.registry.forget_displaced(old);
        core.registry.remove_module(old);
        core.state_handlers
            .remove_where(|h| Arc::ptr_eq(&h.module, old));
        old.draining.store(true, Ordering::Release);
        self.lock_draining().push(old.clone());
        log::info!(
            "{}: the copy loaded {} drains ({} call(s) in flight)",
            old.name,
            old.shadow.display(),
            old.calls()
        );
        if old.calls() == 0 && old.claim_purge() {
            self.purge_locked(core, old)
        } else {
            None
        }
    }

    /// Unloads one version: `current` for the one in service, else a
    /// draining one.
    fn retire_version(
        &self,
        core: &Arc<Core>,
        m: &Arc<LoadedModule>,
        force: bool,
        current: bool,
    ) -> Result<UnloadReport, ModError> {
        let m = m.clone();
        let name = m.name.clone();
        let name = name.as_str();
        // A faulted module's sessions are already hanging up (CRASH):
        // wait for them rather than refuse, so `reload` brings it back.
        let force = force || m.is_faulted();
        if m.calls() > 0 && !force {
            return Err(ModError::InUse);
        }
        if force {
            // FreeSWITCH's `unload -f`: the module's calls are hung up.
            for s in core.sessions.all() {
                if Arc::ptr_eq(&s.endpoint.module, &m) {
                    crate::state_machine::hangup(
                        core,
                        &s,
                        hotswitch_plugin_api::CallCause::MANAGER_REQUEST,
                    );
                }
            }
        }
        let mut abandoned = false;
        {
            let mut u = m.lock_usage();
            if u.calls > 0 && !force {
                return Err(ModError::InUse);
            }
            let before = u.phase;
            u.phase = Phase::Unloading;
            // Tell the module now, so that its own blocking work (an
            // outbound socket, a long api command) can end and let the
            // drain finish.
            m.running.store(false, Ordering::Release);
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while u.calls > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                let parked = m.is_faulted() && m.memory_faulted();
                if (left.is_zero() || parked) && m.is_faulted() {
                    // A call into it never returned (the io watchdog
                    // faulted it): its copy cannot close while that code
                    // runs, so it is abandoned — left mapped, never called
                    // again, not even its unload (which would free what the
                    // stuck call uses) — and a reload maps a fresh copy.
                    log::warn!(
                        "{name}: {} call(s) never returned; abandoning this copy",
                        u.calls
                    );
                    abandoned = true;
                    break;
                }
                if left.is_zero() {
                    u.phase = before;
                    m.running.store(true, Ordering::Release);
                    return Err(ModError::InUse);
                }
                u = m.idle.wait_timeout(u, left).0;
            }
        }
        if current {
            self.lock_loaded().remove(name);
        } else {
            self.lock_draining().retain(|o| !Arc::ptr_eq(o, &m));
        }
        m.retired_endpoints.lock().clear();
        let rows = core.registry.remove_module(&m);
        core.state_handlers
            .remove_where(|h| Arc::ptr_eq(&h.module, &m));
        crate::services::close_module_subscriptions(core, &m);
        if current {
            fire_module_events(core, EventType::MODULE_UNLOAD, &m, &rows);
        }
        m.running.store(false, Ordering::Release);
        if !abandoned && m.is_faulted() && m.memory_faulted() {
            // A thread of its own is parked over its memory limit: its
            // unload would allocate and park too, so its copy is left as
            // it is.
            log::warn!(
                "{name}: a thread of it is parked over its memory limit; abandoning this copy"
            );
            abandoned = true;
        }
        if abandoned {
            m.stop_runtime();
            let why = if m.memory_faulted() {
                "it is over its memory limit".to_string()
            } else {
                "a call into it never returned".to_string()
            };
            let outcome = m.close(Some(why));
            if let CloseOutcome::Pinned(why) = outcome {
                self.record_pinned(&m, why.clone());
                return Ok(UnloadReport { pinned: Some(why) });
            }
        }
        let t0 = Instant::now();
        m.call_unload();
        let t1 = Instant::now();
        let stopped = m.stop_runtime();
        let t2 = Instant::now();
        let retired = core.executor.retire_module(&m, DRAIN_TIMEOUT);
        let t3 = Instant::now();
        let strays = crate::loader::threads_running_code_of(&m.shadow);
        let t4 = Instant::now();
        let keep = if !stopped {
            Some(format!(
                "its runtime thread did not stop within {} s",
                RUNTIME_STOP_TIMEOUT.as_secs()
            ))
        } else if !retired {
            Some("a session worker that ran its code is still busy".to_string())
        } else if strays > 0 {
            log::error!(
                "{name}: {strays} thread(s) it started still run its code after its unload"
            );
            Some(format!(
                "{strays} thread(s) it started still run its code after its unload"
            ))
        } else {
            None
        };
        let outcome = m.close(keep);
        let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1e3;
        log::info!(
            "{name}: unload {:.1} ms, runtime stopped {:.1} ms, workers retired {:.1} ms, thread check {:.1} ms, dlclose and maps {:.1} ms",
            ms(t0, t1),
            ms(t1, t2),
            ms(t2, t3),
            ms(t3, t4),
            ms(t4, Instant::now())
        );
        let pinned = match outcome {
            CloseOutcome::Unmapped => {
                log::info!("unloaded {name}; {} is unmapped", m.shadow.display());
                None
            }
            CloseOutcome::Pinned(why) => {
                self.record_pinned(&m, why.clone());
                Some(why)
            }
        };
        Ok(UnloadReport { pinned })
    }

    fn record_pinned(&self, m: &LoadedModule, reason: String) {
        log::warn!(
            "{} is pinned: {} stays mapped: {reason}",
            m.name,
            m.shadow.display()
        );
        self.pinned.lock().push(Pinned {
            name: m.name.clone(),
            version: m.version.clone(),
            source: m.source.clone(),
            shadow: m.shadow.clone(),
            reason,
        });
    }

    /// Watch mode: reloads modules whose file changed on disk, once the new
    /// file has been stable for one poll (through [`reload`](Self::reload):
    /// live for a module with the handover contract, else once it is idle).
    pub fn spawn_watcher(core: &Arc<Core>, interval: Duration) {
        let weak = Arc::downgrade(core);
        let spawned = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                // module name -> (file id seen last poll)
                let mut candidates: BTreeMap<String, FileId> = BTreeMap::new();
                loop {
                    std::thread::sleep(interval);
                    let Some(core) = weak.upgrade() else { return };
                    if core.is_shutting_down() {
                        return;
                    }
                    for m in core.modules.list() {
                        let Some(now) = FileId::of(&m.source) else {
                            continue;
                        };
                        if Some(now) == m.source_id {
                            candidates.remove(&m.name);
                            continue;
                        }
                        // Changed: wait for the same id twice (a build may
                        // still be writing), then for the module to be idle.
                        if candidates.get(&m.name) != Some(&now) {
                            candidates.insert(m.name.clone(), now);
                            continue;
                        }
                        // A module with the handover contract reloads
                        // with calls up; one without waits to be idle.
                        if m.calls() > 0 && m.handover.is_none() {
                            continue;
                        }
                        candidates.remove(&m.name);
                        match core.modules.reload(&core, &m.name, false) {
                            Ok(_) => core.console_notice(&format!(
                                "+OK watch: {} changed on disk and was reloaded",
                                m.name
                            )),
                            Err(e) => core.console_notice(&format!(
                                "-ERR watch: {} changed on disk but did not reload: [{e}]",
                                m.name
                            )),
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start the module watcher: {e}");
        }
    }
}

fn stem(name: &str) -> &str {
    name.strip_suffix(".so").unwrap_or(name)
}

fn fire_module_events(core: &Core, t: EventType, m: &LoadedModule, rows: &[InterfaceRow]) {
    let file = m.source.display().to_string();
    let fire = |kind: &str, name: &str, description: &str, syntax: &str| {
        let mut e = core.bus.create(t, None, origin!("fire_module_events"));
        e.add_header("type", kind);
        e.add_header("name", name);
        e.add_header("description", description);
        e.add_header("syntax", syntax);
        e.add_header("key", m.name.as_str());
        e.add_header("filename", file.as_str());
        core.bus.fire(e);
    };
    if rows.is_empty() {
        fire("generic", &m.name, &m.description, "");
    }
    for r in rows {
        fire(r.kind.as_str(), &r.name, &r.description, &r.syntax);
    }
}

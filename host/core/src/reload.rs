//! Live reload: the host's side of the handover contract
//! (`hotswitch_plugin_api::handover`), design (a) of `ARCHITECTURE.md`.
//!
//! [`check_formats`] decides, from the two copies' static tables and before
//! any of the new copy's code runs, whether it can read the old one's
//! handover. [`export`] runs the old version's `export` on a host thread and
//! dups the descriptors it names; the new version's load takes the result
//! ([`take`], `handover_take`). While both live, a version hands a message
//! that belongs to an older one back through [`forward`]
//! (`handover_forward`): the host calls the older version's `deliver` on a
//! host thread, never on the caller's own. A draining version whose last
//! call ends is purged by [`schedule_purge`] on a thread of its own.

use crate::loader::HandoverInfo;
use crate::modules::{LoadedModule, ModError};
use hotswitch_plugin_api::handover::{DeliveryDesc, HandoverSink};
use hotswitch_plugin_api::{RStr, Status};
use std::ffi::c_void;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

/// The old version's handover, until the new version's load takes it.
/// Descriptors not taken close when it drops.
#[derive(Debug, Default)]
pub struct Pending {
    pub version: u32,
    pub data: Vec<u8>,
    pub fds: Vec<(String, OwnedFd)>,
    error: Option<String>,
}

/// Whether the new copy (`new`) reads what the running one (`old`) writes:
/// the same format, and `new.reads_from <= old.version <= new.version`.
pub fn check_formats(name: &str, old: &HandoverInfo, new: &HandoverInfo) -> Result<(), ModError> {
    if old.format != new.format {
        return Err(ModError::Handover(format!(
            "{name}: handover format {} version {} cannot be read by the new copy (it reads {} {}..={})",
            old.format, old.version, new.format, new.reads_from, new.version
        )));
    }
    if !(new.reads_from <= old.version && old.version <= new.version) {
        return Err(ModError::Handover(format!(
            "{name}: handover format {} version {} cannot be read by the new copy (reads {}..={})",
            old.format, old.version, new.reads_from, new.version
        )));
    }
    Ok(())
}

unsafe extern "C" fn sink_version(ctx: *mut c_void, version: u32) {
    (*(ctx as *mut Pending)).version = version;
}

unsafe extern "C" fn sink_data(ctx: *mut c_void, bytes: RStr) {
    (*(ctx as *mut Pending))
        .data
        .extend_from_slice(bytes.as_bytes());
}

unsafe extern "C" fn sink_fd(ctx: *mut c_void, name: RStr, fd: i32) {
    let p = &mut *(ctx as *mut Pending);
    let name = name.to_str().into_owned();
    if fd < 0 {
        p.error
            .get_or_insert(format!("invalid descriptor for {name}"));
        return;
    }
    // SAFETY: the module lends its own open descriptor for this call; we
    // dup it and keep only the copy.
    match BorrowedFd::borrow_raw(fd).try_clone_to_owned() {
        Ok(own) => p.fds.push((name, own)),
        Err(e) => {
            p.error
                .get_or_insert(format!("cannot dup the descriptor for {name}: {e}"));
        }
    }
}

unsafe extern "C" fn sink_error(ctx: *mut c_void, reason: RStr) {
    (*(ctx as *mut Pending))
        .error
        .get_or_insert(reason.to_str().into_owned());
}

/// Runs the old version's `export` on a host thread; its descriptors are
/// dupped during the call.
pub fn export(old: &Arc<LoadedModule>) -> Result<Pending, ModError> {
    let Some(h) = old.handover.clone() else {
        return Err(ModError::Internal(format!(
            "{}: no handover contract",
            old.name
        )));
    };
    let fail =
        |why: String| ModError::Handover(format!("{}: handover export failed: {why}", old.name));
    let _call = old.enter().map_err(|e| fail(e.to_string()))?;
    let run = move || {
        let mut p = Pending {
            version: h.version,
            ..Default::default()
        };
        let sink = HandoverSink {
            ctx: &mut p as *mut Pending as *mut c_void,
            version: sink_version,
            data: sink_data,
            fd: sink_fd,
            error: sink_error,
        };
        // SAFETY: the old version's own export entry; its library is open
        // while `_call` is held; the sink outlives the call.
        let st = unsafe { (h.export)(&sink) };
        (st, p)
    };
    let (st, p) = crate::executor::call_into(old, run).map_err(fail)?;
    if st == Status::PANIC {
        crate::containment::faulted_in(old, "handover export", "panicked", None, true);
        return Err(fail("it panicked".into()));
    }
    if let Some(e) = p.error.clone() {
        resume(old);
        return Err(fail(e));
    }
    if !st.is_success() {
        resume(old);
        return Err(fail(format!("{st:?}")));
    }
    log::info!(
        "{}: exported handover {} version {} ({} byte(s), {} descriptor(s))",
        old.name,
        old.handover.as_ref().map_or("", |h| h.format.as_str()),
        p.version,
        p.data.len(),
        p.fds.len()
    );
    Ok(p)
}

/// The reload failed after `export`: the old version takes new work again.
pub fn resume(old: &Arc<LoadedModule>) {
    let Some(h) = old.handover.clone() else {
        return;
    };
    let Ok(_call) = old.enter() else { return };
    // SAFETY: the old version's resume entry, its library open while
    // `_call` is held.
    match crate::executor::call_into(old, move || unsafe { (h.resume)() }) {
        Ok(st) if st == Status::PANIC => {
            crate::containment::faulted_in(old, "handover resume", "panicked", None, true);
        }
        Ok(_) => log::info!("{}: the running copy resumed", old.name),
        Err(e) => log::error!("{}: resume: {e}", old.name),
    }
}

/// `handover_take`: the predecessor's handover for `m` (during its load),
/// written into the module's sink; the descriptors become the module's.
/// `NOTFOUND` when there is none.
pub fn take(m: &Arc<LoadedModule>, sink: &HandoverSink) -> Status {
    let Some(p) = m.take_pending() else {
        return Status::NOTFOUND;
    };
    // SAFETY: the module's sink, lent for this call; every view is of data
    // that outlives it; each fd is handed over (the module owns it now).
    unsafe {
        (sink.version)(sink.ctx, p.version);
        (sink.data)(sink.ctx, RStr::from_bytes(&p.data));
        for (name, fd) in p.fds {
            (sink.fd)(sink.ctx, RStr::new(&name), fd.into_raw_fd());
        }
    }
    Status::SUCCESS
}

/// `handover_forward`: offers `d` to every version older than `m` at once;
/// true when one took it.
pub fn forward(m: &Arc<LoadedModule>, d: &DeliveryDesc) -> bool {
    let Some(core) = m.core() else { return false };
    let mut older = Vec::new();
    let mut cur = m.clone();
    while let Some(old) = core.modules.older_than(&cur) {
        older.push(old.clone());
        cur = old;
    }
    // Offered to every older version at once, each on its own forwarder,
    // and this thread waits for all their answers: at most one has the
    // message (a version's Call-IDs are its own), none is kept busy while
    // another looks, and the wait is one hand-off, not one per version
    // (under load each hand-off waits for a CPU; one after another they
    // made a hand-back take longer than the SIP timers).
    let (tx, rx) = crossbeam_channel::bounded(older.len());
    let mut guards = Vec::with_capacity(older.len());
    let mut asked = 0;
    for old in &older {
        let Some(h) = old.handover.clone() else {
            continue;
        };
        let Ok(call) = old.enter() else { continue };
        guards.push(call);
        struct Lent(DeliveryDesc);
        // SAFETY: the views are the caller's, alive until it returns, and
        // it returns only after every job below has answered or is gone.
        unsafe impl Send for Lent {}
        let lent = Lent(DeliveryDesc {
            channel: d.channel,
            peer: d.peer,
            data: d.data,
        });
        let tx = tx.clone();
        // SAFETY: the older version's deliver entry, its library open
        // while its guard is held.
        let job: Job = Box::new(move || {
            let lent = lent;
            let _ = tx.send(unsafe { (h.deliver)(&lent.0) } == 1);
        });
        let ran = if crate::executor::on_worker() || crate::executor::on_runtime_of(old) {
            crate::executor::call_into(old, job).is_ok()
        } else {
            match old.on_forwarder(job) {
                Ok(()) => true,
                // No forwarder thread: a thread of the call's own.
                Err(job) => crate::modules::contained(&old.name, job).is_ok(),
            }
        };
        asked += ran as usize;
    }
    drop(tx);
    let mut taken = false;
    for _ in 0..asked {
        match rx.recv() {
            Ok(t) => taken |= t,
            // Every job is gone (a forwarder ended without running one).
            Err(_) => break,
        }
    }
    drop(guards);
    taken
}

/// Work for a version's forwarder thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// One host thread per older version that newer ones hand messages to:
/// it runs the version's `deliver` entries one after another, and is
/// joined before the version's library closes (when it is purged), so
/// its code only ever runs on a thread that ends first.
pub struct Forwarder {
    tx: crossbeam_channel::Sender<Job>,
    handle: std::thread::JoinHandle<()>,
}

impl Forwarder {
    /// Starts the thread; `None` (logged) when it cannot.
    pub fn start(m: &Arc<LoadedModule>) -> Option<Forwarder> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let weak = Arc::downgrade(m);
        let name = format!("{}:fwd", m.name.strip_prefix("mod_").unwrap_or(&m.name));
        let spawned = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                // Its own thread, joined before its library closes: calls
                // back into the version from here run directly.
                if let Some(m) = weak.upgrade() {
                    crate::executor::mark_runtime_thread(&m);
                }
                crate::loader::thread_accounted();
                for job in rx {
                    job();
                }
                crate::loader::thread_unaccounted();
            });
        match spawned {
            Ok(handle) => Some(Forwarder { tx, handle }),
            Err(e) => {
                log::error!("{}: cannot start its forwarder thread: {e}", m.name);
                None
            }
        }
    }

    pub fn send(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).map_err(|e| e.0)
    }

    /// Ends the thread once its queue is empty, and joins it (unless this
    /// is that thread).
    pub fn stop(self) {
        drop(self.tx);
        if self.handle.thread().id() != std::thread::current().id() {
            let _ = self.handle.join();
        }
    }
}

/// A draining version's last call ended: purge it on a host thread of its
/// own (the thread that ended the call may be one the purge waits for).
pub fn schedule_purge(m: &Arc<LoadedModule>) {
    if !m.claim_purge() {
        return;
    }
    let Some(core) = m.core() else { return };
    let m = m.clone();
    let spawned = std::thread::Builder::new()
        .name("purge".into())
        .spawn(move || core.modules.purge(&core, &m));
    if let Err(e) = spawned {
        log::error!("cannot start a thread to purge a draining module: {e}");
    }
}

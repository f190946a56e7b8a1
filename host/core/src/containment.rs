//! Containment: every call the host makes into a module's code goes through
//! [`call_entry`], which refuses a faulted module and turns a panic the
//! module caught (`Status::PANIC`) into a fault.
//!
//! A fault is what FreeSWITCH would never survive and we must: the module's
//! invariants are gone. So the session whose callback panicked hangs up
//! with `CRASH`; the module is marked faulted and never called again; its
//! other sessions hang up with `CRASH` too — unless the module declared
//! itself panic-safe (`MODULE_FLAG_PANIC_SAFE`), in which case only the
//! call and its session end and the module stays in service. Either way the
//! log says which module and which entry, and a CUSTOM `module::fault`
//! event carries the same. Nothing else in the switch notices; `reload`
//! brings a working copy back.
//!
//! The one call a faulted module still gets is its unload, which stops the
//! threads it started before its library is closed.
//!
//! A media call that never returns is a fault too: the [`watchdog`] sees a
//! `read_frame` / `write_frame` running longer than [`IO_STUCK`], faults
//! the module (`blocked in read_frame`) and hangs its calls up; its unload
//! then abandons the copy still running (left mapped, reported pinned) so
//! `reload` can bring a fresh one.
//!
//! So is a module over its memory limit (its `memory-limit` in
//! modules.conf, else switch.conf's `module-memory-limit`, 1 GiB by
//! default): its allocator parks the
//! thread that asked (plugin-api's `alloc`), the watchdog sees that in the
//! module's gauge, faults it (`over its memory limit in <entry>`) and hangs
//! its calls up; its unload abandons the copy, memory and all.

use crate::core::Core;
use crate::event::EventType;
use crate::modules::LoadedModule;
use crate::origin;
use crate::session::Session;
use hotswitch_plugin_api::{CallCause, Status};
use std::sync::Arc;

/// FreeSWITCH-style CUSTOM subclass of the event fired when a module panics.
pub const FAULT_SUBCLASS: &str = "module::fault";

/// Calls `f`, module code run for `entry` (`read_frame`, `on_hangup`,
/// `application park`, …), unless `module` is faulted; `session` is the
/// session the call is for, if any. `None` when the module was not called.
pub fn call_entry(
    module: &Arc<LoadedModule>,
    entry: &str,
    session: Option<&Arc<Session>>,
    f: impl FnOnce() -> Status + Send,
) -> Option<Status> {
    if module.is_faulted() {
        return None;
    }
    let st = match crate::executor::call_into(module, f) {
        Ok(st) => st,
        Err(e) => {
            log::error!("{}: {entry}: {e}", module.name);
            Status::GENERR
        }
    };
    if st == Status::PANIC {
        panicked(module, entry, session);
    }
    Some(st)
}

/// What follows a panic caught in `module`'s `entry` (see the file doc).
pub fn panicked(module: &Arc<LoadedModule>, entry: &str, session: Option<&Arc<Session>>) {
    faulted_in(module, entry, "panicked", session, false);
}

/// [`panicked`] for any `why` (`panicked`, `blocked`), faulting even a
/// panic-safe module when `always` (its runtime loop, which cannot go on;
/// a call that never returns).
pub fn faulted_in(
    module: &Arc<LoadedModule>,
    entry: &str,
    why: &str,
    session: Option<&Arc<Session>>,
    always: bool,
) {
    let core = module.core();
    let uuid = session.map(|s| s.uuid.as_str()).unwrap_or("");
    let fault = always || !module.panic_safe();
    let faulted = fault && module.fault(&format!("{why} in {entry}"));
    if !fault {
        log::error!(
            "module {} {why} in {entry}{}{uuid}; it is panic-safe and stays in service",
            module.name,
            if uuid.is_empty() { "" } else { " on " },
        );
    }
    let Some(core) = core else { return };
    fire_fault_event(&core, module, entry, why, uuid, faulted);
    if let Some(s) = session {
        crate::state_machine::hangup(&core, s, CallCause::CRASH);
    }
    if faulted {
        for s in core.sessions.all() {
            if Arc::ptr_eq(&s.endpoint.module, module) {
                crate::state_machine::hangup(&core, &s, CallCause::CRASH);
            }
        }
    }
}

fn fire_fault_event(
    core: &Core,
    module: &LoadedModule,
    entry: &str,
    why: &str,
    uuid: &str,
    faulted: bool,
) {
    let mut e = core
        .bus
        .create(EventType::CUSTOM, Some(FAULT_SUBCLASS), origin!("panicked"));
    e.add_header("Module-Name", module.name.as_str());
    e.add_header("Module-Entry", entry);
    e.add_header("Module-File", module.source.display().to_string().as_str());
    e.add_header("Module-Faulted", if faulted { "true" } else { "false" });
    e.add_header("Module-Fault", why);
    if !uuid.is_empty() {
        e.add_header("Unique-ID", uuid);
    }
    core.bus.fire(e);
}

/// How long one `read_frame` / `write_frame` may run before the module is
/// taken as stuck (endpoints wait at most a frame time or so).
pub const IO_STUCK: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the thread that looks, once a second, for media calls stuck in a
/// module (see the file doc).
pub fn watchdog(core: &Arc<Core>) {
    let weak = Arc::downgrade(core);
    let spawned = std::thread::Builder::new()
        .name("io-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let Some(core) = weak.upgrade() else { return };
            if core.is_shutting_down() {
                return;
            }
            for m in core.modules.list() {
                if m.is_faulted() {
                    continue;
                }
                if let Some(over) = m.memory_over() {
                    log::error!(
                        "module {} is over its memory limit in {}: {} bytes live, limit {}, an allocation of {} refused; its thread is parked",
                        m.name,
                        over.entry,
                        over.live,
                        over.limit,
                        over.refused
                    );
                    faulted_in(&m, &over.entry, "over its memory limit", None, true);
                }
            }
            for s in core.sessions.all() {
                let Some(entry) = s.io_stuck(IO_STUCK) else {
                    continue;
                };
                let m = &s.endpoint.module;
                if !m.is_faulted() {
                    faulted_in(m, entry, "blocked", Some(&s), true);
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the io watchdog: {e}");
    }
}

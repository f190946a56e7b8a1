//! Taking a switch out of service without cutting calls, as FreeSWITCH's
//! `fsctl` does: `pause inbound|outbound` (and `resume`) refuse new
//! sessions of that direction; `shutdown elegant` refuses new inbound
//! calls, lets the calls up finish (their outbound legs still start),
//! then shuts the switch down; `shutdown asap` refuses every new session
//! meanwhile; `shutdown cancel` takes the request back and serves again.
//!
//! An endpoint learns it through the session request it makes for a new
//! call, refused with `SYSTEM_SHUTDOWN`: mod_sofia answers that INVITE
//! `503 Maximum Calls In Progress` with `Retry-After: 300`, as FreeSWITCH
//! does, so a dispatcher in front moves the call to another node.

use crate::core::Core;
use crate::event::EventType;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The switch's pause and pending-shutdown flags.
#[derive(Default)]
pub struct Drain {
    no_inbound: AtomicBool,
    no_outbound: AtomicBool,
    /// A shutdown waits for the last call; bumped to cancel it.
    pending: AtomicU64,
    requested: AtomicBool,
}

/// How a shutdown request treats new sessions meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// New inbound calls refused; calls up finish.
    Elegant,
    /// Every new session refused; calls up finish.
    Asap,
}

impl Drain {
    /// Whether a new session of this direction may start.
    pub fn accepts(&self, inbound: bool) -> bool {
        if inbound {
            !self.no_inbound.load(Ordering::Acquire)
        } else {
            !self.no_outbound.load(Ordering::Acquire)
        }
    }

    /// `fsctl pause|resume inbound|outbound`.
    pub fn pause(&self, inbound: bool, outbound: bool, paused: bool) {
        if inbound {
            self.no_inbound.store(paused, Ordering::Release);
        }
        if outbound {
            self.no_outbound.store(paused, Ordering::Release);
        }
    }

    /// True while a shutdown waits for calls to end.
    pub fn shutdown_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// `fsctl shutdown elegant|asap`: refuses new calls, then shuts the switch
/// down once no session is left (a thread of its own watches).
pub fn shutdown_when_idle(core: &Arc<Core>, when: When) {
    let d = &core.drain;
    d.pause(true, when == When::Asap, true);
    d.requested.store(true, Ordering::Release);
    let generation = d.pending.fetch_add(1, Ordering::AcqRel) + 1;
    let mut e = core.bus.create(
        EventType::from_name("SHUTDOWN_REQUESTED").unwrap_or(EventType::CUSTOM),
        None,
        crate::origin!("fsctl"),
    );
    e.add_header(
        "Event-Info",
        if when == When::Asap {
            "ASAP"
        } else {
            "elegant"
        },
    );
    core.bus.fire(e);
    let c = core.clone();
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            let mut ticks = 0u32;
            loop {
                if c.drain.pending.load(Ordering::Acquire) != generation {
                    return;
                }
                let n = c.sessions.count();
                if n == 0 {
                    break;
                }
                if ticks.is_multiple_of(20) {
                    log::warn!(
                        "Shutdown in progress, {n} session(s) remain. Shutting down once there are no active calls."
                    );
                }
                ticks += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            log::info!("no call left: shutting down");
            c.request_shutdown();
        });
    if let Err(e) = spawned {
        log::error!("cannot watch the calls for the shutdown: {e}; shutting down now");
        core.request_shutdown();
    }
}

/// `fsctl shutdown cancel`: the pending shutdown is dropped, and new
/// calls are taken again.
pub fn cancel(core: &Core) {
    let d = &core.drain;
    d.pending.fetch_add(1, Ordering::AcqRel);
    d.requested.store(false, Ordering::Release);
    d.pause(true, true, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pausing_one_direction_leaves_the_other_open() {
        let d = Drain::default();
        assert!(d.accepts(true) && d.accepts(false));
        d.pause(true, false, true);
        assert!(!d.accepts(true) && d.accepts(false));
        d.pause(true, true, false);
        assert!(d.accepts(true) && d.accepts(false));
    }
}

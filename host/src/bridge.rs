//! Bridging two legs: the signalling (flags, variables, CHANNEL_BRIDGE /
//! CHANNEL_UNBRIDGE) and the frame relay each leg runs on its own worker
//! while in CS_EXCHANGE_MEDIA — read a frame from this leg's endpoint, write
//! it to the peer's — as FreeSWITCH's bridge threads do.

use crate::core::Core;
use crate::event::EventType;
use crate::executor::call_into;
use crate::session::{cf, now_us, Session};
use crate::state_machine::{hangup, set_state};
use hotswitch_plugin_api::{CallCause, ChannelState as CS, Frame, RStr, Status};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// Bridges `a` and `b` (one of them must be answered).
pub fn bridge(core: &Arc<Core>, a: &Arc<Session>, b: &Arc<Session>) -> Result<(), String> {
    if Arc::ptr_eq(a, b) {
        return Err("cannot bridge a channel to itself".into());
    }
    if a.is_down() || b.is_down() {
        return Err("channel is hanging up".into());
    }
    if !a.ch().has(cf::ANSWERED) && !b.ch().has(cf::ANSWERED) {
        return Err("neither channel is answered".into());
    }
    let now = now_us();
    for (me, other) in [(a, b), (b, a)] {
        let mut ch = me.ch();
        ch.bridged_to = Some(other.uuid.clone());
        ch.flags |= cf::BRIDGED;
        ch.flags &= !cf::ORIGINATING;
        ch.times.bridged = now;
        ch.extension.clear();
        ch.set_var("bridge_uuid", &other.uuid);
        ch.set_var("signal_bond", &other.uuid);
        ch.set_var("last_bridge_to", &other.uuid);
    }
    a.ch().set_var("bridge_role", "a");
    a.fire(
        core,
        EventType::CHANNEL_BRIDGE,
        true,
        &[
            ("Bridge-A-Unique-ID", &a.uuid),
            ("Bridge-B-Unique-ID", &b.uuid),
        ],
    );
    for s in [a, b] {
        {
            let mut ch = s.ch();
            if ch.state < CS::HANGUP {
                if ch.running_state == CS::EXCHANGE_MEDIA {
                    ch.running_state = CS::NONE;
                }
                ch.state = CS::EXCHANGE_MEDIA;
            }
        }
        s.wake();
    }
    Ok(())
}

fn read(s: &Arc<Session>, buf: &mut [u8]) -> (Status, Frame) {
    let mut f = Frame {
        codec: RStr::EMPTY,
        rate: 0,
        channels: 1,
        samples: 0,
        timestamp: 0,
        seq: 0,
        ssrc: 0,
        payload_type: 0,
        flags: 0,
        data: buf.as_mut_ptr(),
        datalen: 0,
        buflen: buf.len() as u32,
    };
    let Some(rf) = s.endpoint.io.read_frame else {
        return (Status::NOTIMPL, f);
    };
    let (ud, sref) = (s.endpoint.user_data, s.as_ref());
    let fp = crate::core::SendPtr(&mut f as *mut Frame as *const Frame);
    let st = call_into(&s.endpoint.module, move || {
        let fp = fp;
        // SAFETY: the session holds its endpoint's module; the frame and
        // its buffer outlive the call.
        unsafe { rf(ud as *mut c_void, sref, fp.0 as *mut Frame, 0) }
    })
    .unwrap_or(Status::GENERR);
    (st, f)
}

fn write(s: &Arc<Session>, f: &Frame) -> Status {
    let Some(wf) = s.endpoint.io.write_frame else {
        return Status::NOTIMPL;
    };
    let (ud, sref) = (s.endpoint.user_data, s.as_ref());
    let fp = crate::core::SendPtr(f as *const Frame);
    call_into(&s.endpoint.module, move || {
        let fp = fp;
        // SAFETY: as in `read`.
        unsafe { wf(ud as *mut c_void, sref, fp.0, 0) }
    })
    .unwrap_or(Status::GENERR)
}

/// The relay a bridged leg runs in CS_EXCHANGE_MEDIA; returns when the
/// bridge ends, and decides what this leg does next.
pub fn relay(core: &Arc<Core>, s: &Arc<Session>) {
    let mut buf = vec![0u8; 8192];
    let mut peer_cause = None;
    loop {
        let peer = s
            .ch()
            .bridged_to
            .clone()
            .and_then(|u| core.sessions.get(&u));
        let Some(peer) = peer else { break };
        if s.is_down() || s.state() != CS::EXCHANGE_MEDIA {
            break;
        }
        if peer.is_down() {
            peer_cause = peer.ch().hangup_cause;
            break;
        }
        let gen = s.signal_generation();
        let (st, f) = read(s, &mut buf);
        if st == Status::SUCCESS && f.datalen > 0 {
            write(&peer, &f);
        } else if st == Status::PANIC {
            s.endpoint.module.fault("panicked in read_frame");
            break;
        } else {
            s.wait_signal(gen, Duration::from_millis(20));
        }
    }
    unbridge(core, s);
    if s.is_down() || s.state() != CS::EXCHANGE_MEDIA {
        return;
    }
    let park = s.ch().var("park_after_bridge") == Some("true");
    if park {
        set_state(s, CS::PARK);
    } else {
        hangup(core, s, peer_cause.unwrap_or(CallCause::NORMAL_CLEARING));
    }
}

fn unbridge(core: &Arc<Core>, s: &Arc<Session>) {
    let other = {
        let mut ch = s.ch();
        let Some(o) = ch.bridged_to.take() else {
            return;
        };
        ch.flags &= !cf::BRIDGED;
        o
    };
    if let Some(o) = core.sessions.get(&other) {
        let mut ch = o.ch();
        if ch.bridged_to.as_deref() == Some(s.uuid.as_str()) {
            ch.bridged_to = None;
            ch.flags &= !cf::BRIDGED;
        }
    }
    let (a, b) = if s.ch().var("bridge_role") == Some("a") {
        (s.uuid.clone(), other)
    } else {
        (other, s.uuid.clone())
    };
    if let Some(a_leg) = core.sessions.get(&a) {
        a_leg.fire(
            core,
            EventType::CHANNEL_UNBRIDGE,
            true,
            &[("Bridge-A-Unique-ID", &a), ("Bridge-B-Unique-ID", &b)],
        );
    }
    s.ch().set_var("bridge_role", "");
}

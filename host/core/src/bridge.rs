//! Bridging two legs: the signalling (flags, variables, CHANNEL_BRIDGE /
//! CHANNEL_UNBRIDGE) and the frame relay each leg runs on its own worker
//! while in CS_EXCHANGE_MEDIA — read a frame from this leg's endpoint, write
//! it to the peer's — as FreeSWITCH's bridge threads do. A leg whose
//! endpoint reads without blocking is handed to the shared media loop
//! (`media_loop.rs`) instead, its worker asleep until the loop gives it
//! back; hold music and the decisions stay here.

use crate::core::Core;
use crate::event::EventType;
use crate::media_io::PacedSound;
use crate::media_loop::{MediaLoop, Served};
use crate::session::{cf, now_us, Session};
use crate::state_machine::{hangup, set_state};
use hotswitch_plugin_api::{CallCause, ChannelState as CS, Status};
use std::sync::Arc;
use std::time::Duration;

/// Marks `a` and `b` bridged to each other (flags, variables) and fires
/// CHANNEL_BRIDGE on `a`. A leg keeps its remaining applications unless
/// its `clear` says otherwise (a leg running the bridge application keeps
/// them: they run after the bridge).
fn link(core: &Arc<Core>, a: &Arc<Session>, b: &Arc<Session>, clear: [bool; 2]) {
    let now = now_us();
    for (me, other, clear) in [(a, b, clear[0]), (b, a, clear[1])] {
        let mut ch = me.ch();
        ch.bridged_to = Some(other.uuid.clone());
        ch.flags |= cf::BRIDGED;
        ch.flags &= !cf::ORIGINATING;
        ch.times.bridged = now;
        if clear {
            ch.extension.clear();
        }
        ch.set_var("bridge_uuid", &other.uuid);
        ch.set_var("signal_bond", &other.uuid);
        ch.set_var("last_bridge_to", &other.uuid);
    }
    {
        let mut ch = a.ch();
        ch.set_var("bridge_role", "a");
        ch.set_var("bleg_uuid", &b.uuid);
    }
    // The peer joins the call of the leg that bridges it (FreeSWITCH's
    // bridge sets the peer's call_uuid to the A leg's uuid).
    b.ch().set_var("call_uuid", &a.uuid);
    a.fire(
        core,
        EventType::CHANNEL_BRIDGE,
        true,
        &[
            ("Bridge-A-Unique-ID", &a.uuid),
            ("Bridge-B-Unique-ID", &b.uuid),
        ],
    );
}

/// Moves a leg into CS_EXCHANGE_MEDIA, where it relays frames.
fn to_exchange_media(s: &Arc<Session>) {
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

/// Bridges `a` and `b` (one of them must be answered) — `uuid_bridge`.
///
/// A leg that is bridged already keeps relaying where it is (in the
/// bridge application, or in CS_EXCHANGE_MEDIA) and only changes peers:
/// its old peer is left without one, which ends that peer's bridge (its
/// `hangup_after_bridge`/`park_after_bridge` then apply). That is how a
/// loopback pair drops out of a call between two real legs (bowout).
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
    let old = [a, b].map(|s| s.ch().bridged_to.clone());
    for (s, o) in [a, b].into_iter().zip(&old) {
        if let Some(o) = o {
            fire_unbridge(core, s, o);
        }
    }
    // The peers change in one step, so that a relaying leg never sees
    // itself without a peer (which would end its bridge).
    link(core, a, b, [old[0].is_none(), old[1].is_none()]);
    for (s, o) in [a, b].into_iter().zip(old) {
        match o {
            Some(o) => release(core, s, &o),
            None => to_exchange_media(s),
        }
    }
    Ok(())
}

/// `s` has a new peer: its old one, `old`, is left without one.
fn release(core: &Arc<Core>, s: &Arc<Session>, old: &str) {
    if let Some(o) = core.sessions.get(old) {
        let mut ch = o.ch();
        if ch.bridged_to.as_deref() == Some(s.uuid.as_str()) {
            ch.bridged_to = None;
            ch.flags &= !cf::BRIDGED;
            ch.set_var("bridge_uuid", "");
            ch.set_var("bridge_role", "");
        }
    }
}

/// Bridges `a` (running an application on this thread) to `b`: `b` relays
/// on its own worker in CS_EXCHANGE_MEDIA, `a` relays here until the bridge
/// ends — FreeSWITCH's bridge application. Returns the peer's hangup cause
/// if it hung up.
pub fn bridge_inline(
    core: &Arc<Core>,
    a: &Arc<Session>,
    b: &Arc<Session>,
) -> Result<Option<CallCause>, String> {
    if a.is_down() || b.is_down() {
        return Err("channel is hanging up".into());
    }
    link(core, a, b, [false, true]);
    to_exchange_media(b);
    let state = a.state();
    let peer_cause = relay_loop(core, a, state);
    unbridge(core, a);
    Ok(peer_cause)
}

/// The relay a bridged leg runs in CS_EXCHANGE_MEDIA; returns when the
/// bridge ends, and decides what this leg does next.
pub fn relay(core: &Arc<Core>, s: &Arc<Session>) {
    let peer_cause = relay_loop(core, s, CS::EXCHANGE_MEDIA);
    unbridge(core, s);
    if s.is_down() || s.state() != CS::EXCHANGE_MEDIA {
        return;
    }
    let park = s.ch().var("park_after_bridge") == Some("true");
    if park {
        // A B leg that lives on after the bridge is a call of its own again.
        {
            let mut ch = s.ch();
            if ch.var("call_uuid").is_some() && ch.var("call_uuid") == ch.var("last_bridge_to") {
                let own = s.uuid.clone();
                ch.set_var("call_uuid", &own);
            }
        }
        set_state(s, CS::PARK);
    } else {
        hangup(core, s, peer_cause.unwrap_or(CallCause::NORMAL_CLEARING));
    }
}

/// Moves frames from `s` to its bridged peer while `s` stays in `state`
/// and both are up; returns the peer's cause if the peer hung up.
fn relay_loop(core: &Arc<Core>, s: &Arc<Session>, state: CS) -> Option<CallCause> {
    let mut buf = vec![0u8; 8192];
    let mut peer_cause = None;
    // While this leg's far end holds the call, its peer hears music
    // instead of it (`None` inside: no music is configured).
    let mut hold_music: Option<Option<PacedSound>> = None;
    // A leg whose far end sends digits only as tones in its audio (its
    // endpoint set `dtmf_inband_detect`): the core finds them, so that the
    // peer gets them out of band as from any other leg.
    let mut inband = crate::media_io::var_true(s, "dtmf_inband_detect")
        .then(crate::media::goertzel::DtmfDetector::new);
    // Set when the shared media loop stopped serving this leg: it is
    // relayed here, a read at a time, for the rest of the bridge.
    let mut own_relay = false;
    loop {
        let peer = s
            .ch()
            .bridged_to
            .clone()
            .and_then(|u| core.sessions.get(&u));
        let Some(peer) = peer else { break };
        if s.is_down() || s.state() != state {
            break;
        }
        if peer.is_down() {
            peer_cause = peer.ch().hangup_cause;
            break;
        }
        if s.ch().has(cf::LEG_HOLDING) {
            if hold_music.is_none() {
                hold_music = Some(open_hold_music(core, s));
            }
            if let Some(Some(music)) = hold_music.as_mut() {
                if music.step(s, &peer) {
                    crate::media_io::drain(s, &mut buf);
                }
                continue;
            }
        } else {
            hold_music = None;
        }
        if !own_relay && MediaLoop::takes(s) {
            match core
                .media_loop
                .serve(core, s, Some(&peer), state, inband.take())
            {
                Served::Returned(det) => {
                    inband = det;
                    continue;
                }
                Served::Panicked | Served::Failed => break,
                Served::Stalled => {
                    own_relay = true;
                    inband = crate::media_io::var_true(s, "dtmf_inband_detect")
                        .then(crate::media::goertzel::DtmfDetector::new);
                }
            }
        }
        let gen = s.signal_generation();
        let (st, f) = crate::media_io::read_frame(s, &mut buf);
        if st == Status::SUCCESS && f.datalen > 0 {
            pass_frame(core, s, &peer, inband.as_mut(), &f);
            continue;
        }
        relay_dtmf(s, &peer);
        if st == Status::PANIC {
            break;
        }
        s.wait_signal(gen, Duration::from_millis(20));
    }
    peer_cause
}

/// One frame read from `s`, on its way to `peer` (this relay's step and
/// the shared media loop's): digits heard in its audio, where `inband`
/// listens, are queued on `s` as received digits; every digit `s` holds
/// goes to `peer`; then the frame does.
pub(crate) fn pass_frame(
    core: &Arc<Core>,
    s: &Arc<Session>,
    peer: &Arc<Session>,
    inband: Option<&mut crate::media::goertzel::DtmfDetector>,
    f: &hotswitch_plugin_api::Frame,
) {
    if let Some(det) = inband {
        for digit in det.feed(&crate::media_io::frame_samples(f)) {
            let d = hotswitch_plugin_api::Dtmf {
                digit: digit as u32,
                duration_ms: 100,
                source: 1,
            };
            s.queue_dtmf(core, d);
        }
    }
    relay_dtmf(s, peer);
    crate::media_io::write_frame(peer, f);
}

/// What the peer of a held leg hears: the held leg's `temp_hold_music`
/// or `hold_music`, else the global `hold_music` (FreeSWITCH's
/// `switch_channel_get_hold_music` and the profile's `hold-music`).
fn open_hold_music(core: &Core, s: &Session) -> Option<PacedSound> {
    let value = {
        let ch = s.ch();
        ch.var("temp_hold_music")
            .or_else(|| ch.var("hold_music"))
            .map(str::to_string)
    }
    .or_else(|| core.global("hold_music"))
    .filter(|v| !v.trim().is_empty())?;
    PacedSound::open(&value)
        .map_err(|e| log::warn!("{}: hold music {value}: {e}", s.uuid))
        .ok()
}

/// Digits this leg received go to its peer, as FreeSWITCH's bridge passes
/// DTMF: out of band where the peer's endpoint can (RFC 4733 or SIP INFO,
/// per its `dtmf-type`), each with the duration it came with.
pub(crate) fn relay_dtmf(s: &Arc<Session>, peer: &Arc<Session>) {
    while let Some(d) = s.take_dtmf() {
        let Some(digit) = char::from_u32(d.digit) else {
            continue;
        };
        let st = crate::state_machine::send_dtmf(peer, digit, d.duration_ms);
        if st != Status::SUCCESS {
            log::debug!(
                "{}: digit {digit} not passed to {}: {st:?}",
                s.uuid,
                peer.uuid
            );
        }
    }
}

/// Ends `s`'s bridge: both legs lose their peer (`bridge_uuid` cleared, as
/// FreeSWITCH does) and CHANNEL_UNBRIDGE fires on the A leg.
fn unbridge(core: &Arc<Core>, s: &Arc<Session>) {
    let other = {
        let mut ch = s.ch();
        let Some(o) = ch.bridged_to.take() else {
            return;
        };
        ch.flags &= !cf::BRIDGED;
        ch.set_var("bridge_uuid", "");
        o
    };
    if let Some(o) = core.sessions.get(&other) {
        let mut ch = o.ch();
        if ch.bridged_to.as_deref() == Some(s.uuid.as_str()) {
            ch.bridged_to = None;
            ch.flags &= !cf::BRIDGED;
            ch.set_var("bridge_uuid", "");
        }
    }
    fire_unbridge(core, s, &other);
    s.ch().set_var("bridge_role", "");
}

/// CHANNEL_UNBRIDGE for the bridge of `s` and `other`, on its A leg.
fn fire_unbridge(core: &Arc<Core>, s: &Arc<Session>, other: &str) {
    let (a, b) = if s.ch().var("bridge_role") == Some("a") {
        (s.uuid.clone(), other.to_string())
    } else {
        (other.to_string(), s.uuid.clone())
    };
    if let Some(a_leg) = core.sessions.get(&a) {
        a_leg.fire(
            core,
            EventType::CHANNEL_UNBRIDGE,
            true,
            &[("Bridge-A-Unique-ID", &a), ("Bridge-B-Unique-ID", &b)],
        );
    }
}

/// The bridge application: originate `dialstring` from `a`, bridge, relay
/// until the bridge ends. Returns SUCCESS with the far side's cause, or
/// FALSE with why the originate failed.
pub fn bridge_dialstring(
    core: &Arc<Core>,
    a: &Arc<Session>,
    dialstring: &str,
) -> (Status, CallCause) {
    let timeout = a
        .ch()
        .var("call_timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(60);
    let mut profile = a.ch().profile.clone();
    // What the far side sees: the caller's effective caller id (set by
    // the directory for a registered user), as switch_ivr_originate does.
    {
        let ch = a.ch();
        if let Some(v) = ch.var("effective_caller_id_name").filter(|v| !v.is_empty()) {
            profile.caller_id_name = v.to_string();
        }
        if let Some(v) = ch
            .var("effective_caller_id_number")
            .filter(|v| !v.is_empty())
        {
            profile.caller_id_number = v.to_string();
        }
    }
    let peer = crate::originate::originate(
        core,
        crate::originate::Request {
            dialstring,
            timeout: Duration::from_secs(timeout),
            originator: Some(a.clone()),
            profile,
        },
    );
    let b = match peer {
        Ok(b) => b,
        Err(c) => {
            a.ch()
                .set_var("originate_disposition", c.name().unwrap_or(""));
            return (Status::FALSE, c);
        }
    };
    a.ch().set_var("originate_disposition", "SUCCESS");
    // The caller hears the answer: answer it if it was not yet.
    crate::state_machine::answer(core, a);
    match bridge_inline(core, a, &b) {
        Ok(cause) => (Status::SUCCESS, cause.unwrap_or(CallCause::NONE)),
        Err(e) => {
            log::warn!("{}: bridge failed: {e}", a.uuid);
            crate::state_machine::hangup(core, &b, CallCause::NORMAL_CLEARING);
            (Status::FALSE, CallCause::NORMAL_TEMPORARY_FAILURE)
        }
    }
}

//! Originate: place outbound legs from a dial string (FreeSWITCH's
//! `switch_ivr_originate`). Groups separated by `|` are tried in turn; the
//! legs of a group (`,`) ring at once, the first to answer wins and the
//! others hang up with LOSE_RACE. Timeouts: `originate_timeout` (else the
//! argument, else 60 s) for the whole attempt, `leg_timeout` per leg.

use crate::core::Core;
use crate::dialstring::{self, DialLeg};
use crate::event::EventType;
use crate::executor::call_into;
use crate::ringback::Ringback;
use crate::session::{cf, Session};
use crate::state_machine::{hangup, str2cause};
use crossbeam_channel::{bounded, Receiver, Sender};
use hotswitch_plugin_api::{
    CallCause, ChannelState, KeyValue, OutgoingRequest, Profile, RStr, SessionRef,
};
use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// The uuid the next session requested on this thread must take (set
    /// around `outgoing_channel` for `origination_uuid`). The endpoint's
    /// session request runs on the thread that called `outgoing_channel`,
    /// inside that call, and the boundary's `session_request` has no room
    /// for it; it stays private to this file.
    static ORIGINATION_UUID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The uuid the session an endpoint requests now must take: `Some` only
/// inside an originate's `outgoing_channel` with `origination_uuid` set,
/// and only once.
pub(crate) fn take_origination_uuid() -> Option<String> {
    ORIGINATION_UUID.with(|u| u.borrow_mut().take())
}

/// What to originate.
pub struct Request<'a> {
    pub dialstring: &'a str,
    pub timeout: Duration,
    pub originator: Option<Arc<Session>>,
    /// Caller id and other defaults for the new legs' profiles.
    pub profile: Profile,
}

struct Leg {
    session: Arc<Session>,
    deadline: Option<Instant>,
}

/// Places the call; returns the answered leg (started, still flagged
/// ORIGINATING: the caller decides what it does next with
/// [`crate::state_machine`]'s helpers or [`resume`]).
pub fn originate(core: &Arc<Core>, req: Request<'_>) -> Result<Arc<Session>, CallCause> {
    let ds = dialstring::parse(req.dialstring).map_err(|e| {
        log::warn!("originate: bad dial string '{}': {e}", req.dialstring);
        CallCause::INVALID_URL
    })?;
    let started = Instant::now();
    let mut last = CallCause::NO_ANSWER;
    for group in &ds.groups {
        let (tx, rx) = bounded::<()>(256);
        let mut legs = Vec::new();
        let mut timeout = req.timeout;
        for leg in &group.legs {
            let vars = leg.effective_vars(&ds, group);
            if let Some(t) = var(&vars, "originate_timeout").and_then(|v| v.parse::<u64>().ok()) {
                timeout = Duration::from_secs(t);
            }
            match create_leg(core, leg, &vars, &req, tx.clone()) {
                Ok(s) => {
                    let deadline = var(&vars, "leg_timeout")
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|t| Instant::now() + Duration::from_secs(t));
                    legs.push(Leg {
                        session: s,
                        deadline,
                    });
                }
                Err(c) => last = c,
            }
        }
        if legs.is_empty() {
            continue;
        }
        let mut ringback = req.originator.as_ref().map(|a| {
            let vars = group
                .legs
                .first()
                .map(|l| l.effective_vars(&ds, group))
                .unwrap_or_default();
            Ringback::new(a, &vars)
        });
        match wait_for_answer(core, &mut legs, started + timeout, &rx, ringback.as_mut()) {
            Ok(winner) => {
                if let Some(a) = &req.originator {
                    inherit_codec(a, &winner);
                }
                return Ok(winner);
            }
            Err(CallCause::ORIGINATOR_CANCEL) => return Err(CallCause::ORIGINATOR_CANCEL),
            Err(c) => last = c,
        }
    }
    Err(last)
}

/// `inherit_codec=true` on the calling leg: it is to answer in the codec
/// the answering leg negotiated (FreeSWITCH's originate sets the caller's
/// `absolute_codec_string` to it), so that a caller that offered that
/// codec is bridged without transcoding. A caller already answered, or one
/// whose early media went out, keeps its codec.
fn inherit_codec(a: &Session, b: &Session) {
    let codec = {
        let ach = a.ch();
        if ach.has(cf::ANSWERED)
            || !ach
                .var("inherit_codec")
                .is_some_and(crate::dialplan_xml::switch_true)
        {
            return;
        }
        match b.ch().var("read_codec") {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => return,
        }
    };
    log::debug!("{}: inherit_codec: answers in {codec}", a.uuid);
    a.ch().set_var("absolute_codec_string", &codec);
}

/// `user/<id>[@<domain>]`: the directory's dial string for the user,
/// placed as the leg (its first leg, with the user's variables under the
/// leg's own).
fn user_leg(
    core: &Arc<Core>,
    leg: &DialLeg,
    vars: &[(String, String)],
    req: &Request<'_>,
    tx: Sender<()>,
) -> Result<Arc<Session>, CallCause> {
    let (ds, user_vars) =
        crate::directory::dialstring(core, &leg.data).ok_or(CallCause::SUBSCRIBER_ABSENT)?;
    let parsed = dialstring::parse(&ds).map_err(|e| {
        log::warn!("user/{}: bad dial string '{ds}': {e}", leg.data);
        CallCause::INVALID_URL
    })?;
    let group = parsed.groups.first().ok_or(CallCause::INVALID_URL)?;
    let inner = group.legs.first().ok_or(CallCause::INVALID_URL)?;
    if inner.endpoint.eq_ignore_ascii_case("user") {
        return Err(CallCause::INVALID_URL);
    }
    let mut merged = user_vars;
    merged.extend(inner.effective_vars(&parsed, group));
    merged.extend(vars.iter().cloned());
    create_leg(core, inner, &merged, req, tx)
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn create_leg(
    core: &Arc<Core>,
    leg: &DialLeg,
    vars: &[(String, String)],
    req: &Request<'_>,
    tx: Sender<()>,
) -> Result<Arc<Session>, CallCause> {
    if leg.endpoint.eq_ignore_ascii_case("error") {
        return Err(error_cause(&leg.data));
    }
    if leg.endpoint.eq_ignore_ascii_case("user") {
        return user_leg(core, leg, vars, req, tx);
    }
    let ep = core
        .registry
        .endpoint(&leg.endpoint)
        .ok_or(CallCause::CHAN_NOT_IMPLEMENTED)?;
    let _call = ep.module.enter().map_err(|e| {
        log::warn!("originate {}: {e}", leg.endpoint);
        CallCause::CHAN_NOT_IMPLEMENTED
    })?;
    let Some(outgoing) = ep.io.outgoing_channel else {
        return Err(CallCause::CHAN_NOT_IMPLEMENTED);
    };
    // A leg originated from a call has one hop less than the call
    // (`max_forwards`, from the INVITE's Max-Forwards); with none left the
    // call is looping (FreeSWITCH's switch_core_session_outgoing_channel).
    let hops = match &req.originator {
        Some(o) => {
            let left = o
                .ch()
                .var("max_forwards")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map_or(70, |n| n - 1);
            if left <= 0 {
                log::warn!(
                    "{}: no hops left (max_forwards); not calling {}",
                    o.uuid,
                    leg.data
                );
                return Err(CallCause::EXCHANGE_ROUTING_ERROR);
            }
            Some(left.to_string())
        }
        None => None,
    };
    let mut profile = req.profile.clone();
    profile.destination_number = leg.data.clone();
    if let Some(v) = var(vars, "origination_caller_id_name") {
        profile.caller_id_name = v.to_string();
    }
    if let Some(v) = var(vars, "origination_caller_id_number") {
        profile.caller_id_number = v.to_string();
    }
    let uuid = var(vars, "origination_uuid").map(str::to_string);
    let kv: Vec<KeyValue> = vars
        .iter()
        .map(|(k, v)| KeyValue {
            key: RStr::new(k),
            value: RStr::new(v),
        })
        .collect();
    let cancel = AtomicU32::new(0);
    let originator = req
        .originator
        .as_ref()
        .map(|s| s.as_ref())
        .unwrap_or(SessionRef::NULL);
    let ud = ep.user_data;
    let cause_and_session = call_into(&ep.module, || {
        profile.with_raw(|p| {
            let r = OutgoingRequest {
                originator,
                dial_data: RStr::new(&leg.data),
                profile: p,
                vars: kv.as_ptr(),
                var_count: kv.len(),
                flags: 0,
                cancel: &cancel,
            };
            ORIGINATION_UUID.with(|u| *u.borrow_mut() = uuid.clone());
            let mut out = SessionRef::NULL;
            // SAFETY: the endpoint's module is entered; everything the
            // request points at outlives the call.
            let cause = unsafe { outgoing(ud as *mut c_void, &r, &mut out) };
            ORIGINATION_UUID.with(|u| *u.borrow_mut() = None);
            (cause, out)
        })
    })
    .map_err(|e| {
        log::error!("originate {}: {e}", leg.endpoint);
        CallCause::CRASH
    })?;
    let (cause, out) = cause_and_session;
    if cause != CallCause::SUCCESS {
        return Err(if cause == CallCause::CRASH {
            // The endpoint's trampoline answers CRASH for a panic.
            crate::containment::panicked(&ep.module, "outgoing_channel", None);
            CallCause::CRASH
        } else {
            cause
        });
    }
    if out.is_null() {
        log::error!(
            "{}: outgoing_channel succeeded without a session",
            leg.endpoint
        );
        return Err(CallCause::CHAN_NOT_IMPLEMENTED);
    }
    // The endpoint hands over the hold session_request gave it
    // (OwnedSession::into_raw); a handle it does not hold is refused.
    let s = match crate::handles::SESSIONS.release(out.id) {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => {
            log::error!(
                "{}: outgoing_channel returned a session handle it does not hold",
                leg.endpoint
            );
            return Err(CallCause::CHAN_NOT_IMPLEMENTED);
        }
    };
    if let Some(u) = &uuid {
        if &s.uuid != u {
            log::warn!("{}: origination_uuid {u} was not applied", leg.endpoint);
        }
    }
    // `export`ed variables of the originating call go to the new leg.
    let exported: Vec<(String, String)> = req
        .originator
        .as_ref()
        .map(|o| {
            let och = o.ch();
            och.var("export_vars")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .filter_map(|k| och.var(k).map(|v| (k.to_string(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    // Both legs of a call share the originator's call_uuid (FreeSWITCH's
    // switch_ivr_originate); a leg originated from the API keeps its own.
    // The new leg gets one hop less than its originator.
    let call_uuid = req.originator.as_ref().map(|o| {
        let och = o.ch();
        och.var("call_uuid").unwrap_or(&o.uuid).to_string()
    });
    {
        let mut ch = s.ch();
        if let Some(c) = &call_uuid {
            ch.set_var("call_uuid", c);
        }
        if let Some(h) = &hops {
            ch.set_var("max_forwards", h);
        }
        for (k, v) in exported.iter().chain(vars) {
            ch.set_var(k, v);
        }
        ch.flags |= cf::ORIGINATING;
        ch.originator = req.originator.as_ref().map(|o| o.uuid.clone());
        if ch.profile.destination_number.is_empty() {
            ch.profile = profile.clone();
        }
        if ch.state == ChannelState::NEW {
            ch.state = ChannelState::INIT;
        }
    }
    s.fire(core, EventType::CHANNEL_OUTGOING, true, &[]);
    s.watch(tx);
    s.start();
    Ok(s)
}

/// Waits until a leg answers (the others lose the race), every leg has
/// failed, the time is up, or the originator hangs up (every leg is then
/// cancelled with ORIGINATOR_CANCEL). Meanwhile the originator hears the
/// legs' early media or its ringback.
fn wait_for_answer(
    core: &Arc<Core>,
    legs: &mut Vec<Leg>,
    deadline: Instant,
    rx: &Receiver<()>,
    mut ringback: Option<&mut Ringback>,
) -> Result<Arc<Session>, CallCause> {
    let mut last = CallCause::NO_ANSWER;
    // The originator is looked at once a frame, as FreeSWITCH's originate
    // loop does at the caller's frame pace: a leg that answers within the
    // frame its caller hung up in is connected (and then hung up), not
    // cancelled — clients such as switchio count on it.
    let mut caller_check = Instant::now() + CALLER_FRAME;
    loop {
        if let Some(i) = legs.iter().position(|l| l.session.ch().has(cf::ANSWERED)) {
            let winner = legs.swap_remove(i).session;
            for l in legs.drain(..) {
                hangup(core, &l.session, CallCause::LOSE_RACE);
            }
            return Ok(winner);
        }
        let now = Instant::now();
        if now >= caller_check {
            caller_check = now + CALLER_FRAME;
            if ringback.as_deref().is_some_and(|rb| rb.caller_gone()) {
                for l in legs.drain(..) {
                    hangup(core, &l.session, CallCause::ORIGINATOR_CANCEL);
                }
                return Err(CallCause::ORIGINATOR_CANCEL);
            }
        }
        legs.retain(|l| {
            let cause = l.session.ch().hangup_cause;
            if let Some(c) = cause {
                last = c;
                return false;
            }
            if l.deadline.is_some_and(|d| now >= d) {
                hangup(core, &l.session, CallCause::NO_ANSWER);
                last = CallCause::NO_ANSWER;
                return false;
            }
            true
        });
        if legs.is_empty() {
            return Err(last);
        }
        if now >= deadline {
            for l in legs.drain(..) {
                hangup(core, &l.session, CallCause::NO_ANSWER);
            }
            return Err(CallCause::NO_ANSWER);
        }
        if let Some(rb) = ringback.as_deref_mut() {
            let ringing: Vec<Arc<Session>> = legs.iter().map(|l| l.session.clone()).collect();
            if rb.step(core, &ringing) {
                continue;
            }
        }
        let mut wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        if ringback.is_some() {
            wait = wait.min(caller_check.saturating_duration_since(now));
        }
        let _ = rx.recv_timeout(wait);
    }
}

/// How often an originate looks at its originator: one frame.
const CALLER_FRAME: Duration = Duration::from_millis(20);

/// After a successful originate: run `apps` on the leg, or send it to
/// `exten`/`dialplan`/`context` (an `exten` of None with no apps leaves it
/// waiting in CONSUME_MEDIA).
pub fn resume(
    s: &Arc<Session>,
    apps: Option<Vec<(String, String)>>,
    exten: Option<(&str, &str, &str)>,
) {
    if let Some((dest, dp, ctx)) = exten {
        crate::state_machine::transfer(s, dest, dp, ctx);
        return;
    }
    {
        let mut ch = s.ch();
        let has_apps = apps.is_some();
        if let Some(a) = apps {
            ch.extension = a.into();
        }
        ch.flags &= !cf::ORIGINATING;
        // Waiting legs go straight to their applications (FreeSWITCH's
        // originate sets CS_EXECUTE); a leg still routing finds them there.
        if ch.state == ChannelState::CONSUME_MEDIA {
            ch.state = if has_apps {
                ChannelState::EXECUTE
            } else {
                ChannelState::ROUTING
            };
        }
    }
    s.wake();
}

/// `error/<CAUSE>` legs fail with their cause without an endpoint module.
pub fn error_cause(data: &str) -> CallCause {
    match str2cause(data) {
        CallCause::NONE => CallCause::DESTINATION_OUT_OF_ORDER,
        c => c,
    }
}

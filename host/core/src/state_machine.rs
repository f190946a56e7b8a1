//! The channel state machine: FreeSWITCH's states, transition rules and
//! handler order, and the channel operations that move a call along —
//! hangup, answer, pre-answer, ring-ready and their `mark_` forms.
//!
//! For each state the session enters: the endpoint's state handler, then
//! the channel's handlers, then the global handlers modules added, then the
//! core's standard handler — unless one returned non-SUCCESS or the state
//! changed meanwhile. [`run`] is what a worker executes when a session is
//! woken; it returns when the session has nothing left to do (parked,
//! waiting for an answer, or destroyed).

use crate::containment::call_entry;
use crate::core::Core;
use crate::event::EventType;
use crate::session::{cf, now_us, state_name, CallState, Direction, Queued, Session};
use hotswitch_plugin_api::{
    CallCause, ChannelState as CS, CoreMessage, KillSignal, MessageId, RStr, SessionFn,
    StateHandlers, Status,
};
use std::ffi::c_void;
use std::sync::Arc;

/// True when FreeSWITCH's rules let a channel go from `from` to `to`
/// (HANGUP itself is entered only through [`hangup`]).
pub fn can_transition(from: CS, to: CS) -> bool {
    if to == CS::HANGUP || to == CS::NEW || to == CS::NONE {
        return false;
    }
    if from >= CS::HANGUP {
        return (from == CS::HANGUP && to == CS::REPORTING)
            || (from == CS::REPORTING && to == CS::DESTROY);
    }
    if to == CS::REPORTING || to == CS::DESTROY {
        return false;
    }
    if from == CS::NEW || from == CS::RESET {
        return true;
    }
    if to == CS::INIT {
        return from == CS::HIBERNATE;
    }
    true
}

/// Moves a channel to `to`; false (and nothing changes) when not allowed.
pub fn set_state(s: &Arc<Session>, to: CS) -> bool {
    change_state(s, None, to)
}

/// Moves a channel from `from` to `to`, only if it is still in `from`
/// (another thread may have moved it meanwhile).
fn advance(s: &Arc<Session>, from: CS, to: CS) -> bool {
    change_state(s, Some(from), to)
}

/// Parks `s` (the `park` application, `session_park`). Asked on the
/// session's own thread while a state another thread set is still pending
/// (`uuid_bridge` or `uuid_transfer` of a leg whose `&park()` was just
/// starting), the pending state stands: the other thread's command has
/// already answered +OK, and parking over it would strand the leg.
pub fn park(s: &Arc<Session>) -> bool {
    let own = crate::session::is_current(s);
    let pending = std::cell::Cell::new(false);
    let parked = change_state_if(
        s,
        |ch| {
            pending.set(own && ch.state != ch.running_state && ch.state != CS::PARK);
            if pending.get() {
                log::debug!(
                    "{}: not parked: {} is pending",
                    ch.name,
                    state_name(ch.state)
                );
            }
            !pending.get()
        },
        CS::PARK,
    );
    parked || pending.get()
}

fn change_state(s: &Arc<Session>, from: Option<CS>, to: CS) -> bool {
    change_state_if(s, |ch| from.is_none_or(|f| ch.state == f), to)
}

/// Moves a channel to `to` if `ok` says so, under the channel's lock.
fn change_state_if(
    s: &Arc<Session>,
    ok: impl FnOnce(&crate::session::Channel) -> bool,
    to: CS,
) -> bool {
    {
        let mut ch = s.ch();
        if !ok(&ch) {
            return false;
        }
        if ch.state == to {
            return true;
        }
        if !can_transition(ch.state, to) {
            log::debug!(
                "{}: refused state change {} -> {}",
                ch.name,
                state_name(ch.state),
                state_name(to)
            );
            return false;
        }
        ch.state = to;
    }
    // FreeSWITCH sends SIG_BREAK on every state change, so that a blocking
    // read or wait in the endpoint notices; needed only when the change
    // comes from another thread than the session's own.
    if s.is_started() && !crate::session::is_current(s) {
        s.signal_endpoint(KillSignal::BREAK);
    }
    s.wake();
    true
}

fn handler_for(t: &StateHandlers, state: CS) -> Option<SessionFn> {
    match state {
        CS::INIT => t.on_init,
        CS::ROUTING => t.on_routing,
        CS::EXECUTE => t.on_execute,
        CS::HANGUP => t.on_hangup,
        CS::EXCHANGE_MEDIA => t.on_exchange_media,
        CS::SOFT_EXECUTE => t.on_soft_execute,
        CS::CONSUME_MEDIA => t.on_consume_media,
        CS::HIBERNATE => t.on_hibernate,
        CS::RESET => t.on_reset,
        CS::PARK => t.on_park,
        CS::REPORTING => t.on_reporting,
        CS::DESTROY => t.on_destroy,
        _ => None,
    }
}

/// The state handler member's name (`on_routing`), for logs and events.
fn handler_name(state: CS) -> &'static str {
    match state {
        CS::INIT => "on_init",
        CS::ROUTING => "on_routing",
        CS::EXECUTE => "on_execute",
        CS::HANGUP => "on_hangup",
        CS::EXCHANGE_MEDIA => "on_exchange_media",
        CS::SOFT_EXECUTE => "on_soft_execute",
        CS::CONSUME_MEDIA => "on_consume_media",
        CS::HIBERNATE => "on_hibernate",
        CS::RESET => "on_reset",
        CS::PARK => "on_park",
        CS::REPORTING => "on_reporting",
        CS::DESTROY => "on_destroy",
        _ => "state handler",
    }
}

/// Runs the session until it has no more work.
pub fn run(core: &Arc<Core>, s: &Arc<Session>) {
    loop {
        drain_queue(core, s);
        let (state, running) = {
            let ch = s.ch();
            (ch.state, ch.running_state)
        };
        if state == running {
            return;
        }
        if state == CS::DESTROY {
            destroy(core, s);
            return;
        }
        enter_state(core, s, state);
    }
}

/// Delivers queued messages to the endpoint and runs queued applications.
fn drain_queue(core: &Arc<Core>, s: &Arc<Session>) {
    loop {
        let next = s.queue.lock().pop_front();
        match next {
            None => return,
            Some(Queued::Message {
                id,
                string_arg,
                numeric_arg,
            }) => {
                deliver_message(s, id, &string_arg, numeric_arg);
            }
            Some(Queued::Execute {
                app,
                arg,
                loops,
                app_uuid,
            }) => {
                for _ in 0..loops.max(1) {
                    if s.is_down() {
                        break;
                    }
                    execute_app_with_uuid(core, s, &app, &arg, app_uuid.as_deref());
                }
            }
        }
    }
}

/// Calls the endpoint's `receive_message` on this thread.
pub fn deliver_message(
    s: &Arc<Session>,
    id: MessageId,
    string_arg: &str,
    numeric_arg: i64,
) -> Status {
    let Some(f) = s.endpoint.io.receive_message else {
        return Status::SUCCESS;
    };
    let ud = s.endpoint.user_data;
    let sref = s.as_ref();
    let msg = CoreMessage {
        id,
        from: RStr::from_static("core"),
        string_arg: RStr::new(string_arg),
        numeric_arg,
        args: std::ptr::null(),
        arg_count: 0,
    };
    let msg_ptr = crate::core::SendPtr(&msg as *const CoreMessage);
    call_entry(&s.endpoint.module, "receive_message", Some(s), move || {
        let msg_ptr = msg_ptr;
        // SAFETY: the session holds its endpoint's module; `msg` outlives
        // this call.
        unsafe { f(ud as *mut c_void, sref, msg_ptr.0) }
    })
    .unwrap_or(Status::GENERR)
}

fn enter_state(core: &Arc<Core>, s: &Arc<Session>, state: CS) {
    let callstate_change = {
        let mut ch = s.ch();
        let left_park = ch.running_state == CS::PARK && ch.has(cf::PARK);
        if left_park {
            ch.flags &= !cf::PARK;
        }
        ch.running_state = state;
        let mut change = None;
        if s.direction == Direction::Inbound && state < CS::HANGUP {
            let new = if state == CS::ROUTING && ch.callstate == CallState::Down {
                Some(CallState::Ringing)
            } else if ch.has(cf::ANSWERED) {
                Some(CallState::Active)
            } else if ch.has(cf::EARLY_MEDIA) {
                Some(CallState::Early)
            } else {
                None
            };
            if let Some(n) = new.filter(|n| *n != ch.callstate) {
                change = Some(ch.callstate);
                ch.callstate = n;
            }
        }
        (change, left_park)
    };
    if callstate_change.1 {
        s.fire(core, EventType::CHANNEL_UNPARK, true, &[]);
    }
    if let Some(old) = callstate_change.0 {
        fire_callstate(core, s, old);
    }
    s.fire(core, EventType::CHANNEL_STATE, false, &[]);
    let go_on = run_handlers(core, s, state);
    if go_on {
        standard_handler(core, s, state);
    }
    if state == CS::INIT {
        // Whether or not INIT's standard handler ran: a leg that answers
        // in its endpoint's INIT handler (null/) can be moved on by its
        // originator before it, and its creation must still be told.
        s.fire(core, EventType::CHANNEL_CREATE, true, &[]);
        if s.direction == Direction::Outbound {
            s.fire(core, EventType::CHANNEL_ORIGINATE, true, &[]);
        }
    }
}

fn fire_callstate(core: &Core, s: &Session, old: CallState) {
    if !core.bus.wants(EventType::CHANNEL_CALLSTATE, None) {
        return;
    }
    let number = s.ch().callstate as u32;
    s.fire(
        core,
        EventType::CHANNEL_CALLSTATE,
        false,
        &[
            ("Original-Channel-Call-State", old.as_str()),
            ("Channel-Call-State-Number", &number.to_string()),
        ],
    );
}

/// Changes the call state and fires CHANNEL_CALLSTATE (frozen after HANGUP).
pub fn set_callstate(core: &Core, s: &Session, new: CallState) {
    let old = {
        let mut ch = s.ch();
        if ch.callstate == new || ch.callstate == CallState::Hangup {
            return;
        }
        let old = ch.callstate;
        ch.callstate = new;
        old
    };
    fire_callstate(core, s, old);
}

/// Runs the driver's, the channel's and the global handlers for `state`;
/// true when the standard handler should run.
fn run_handlers(core: &Arc<Core>, s: &Arc<Session>, state: CS) -> bool {
    let sref = s.as_ref();
    let entry = handler_name(state);
    // A faulted module's handler is skipped as if it had none.
    let call = |module: &Arc<crate::modules::LoadedModule>, f: SessionFn, ud: usize| -> Status {
        call_entry(module, entry, Some(s), move || {
            // SAFETY: the handler's module is held (endpoint by the session,
            // channel handlers by their guard, globals by a call guard).
            unsafe { f(ud as *mut c_void, sref) }
        })
        .unwrap_or(Status::SUCCESS)
    };
    let ep = &s.endpoint;
    if let Some(f) = handler_for(&ep.state, state) {
        if call(&ep.module, f, ep.user_data) != Status::SUCCESS && state != CS::DESTROY {
            return false;
        }
    }
    let channel: Vec<_> = {
        let ch = s.ch();
        ch.handlers
            .iter()
            .filter_map(|h| {
                handler_for(&h.table, state).map(|f| (h.module.clone(), f, h.user_data))
            })
            .collect()
    };
    for (m, f, ud) in channel {
        if call(&m, f, ud) != Status::SUCCESS && state != CS::DESTROY {
            return false;
        }
    }
    for g in core.state_handlers.snapshot().iter() {
        if let Some(f) = handler_for(&g.table, state) {
            // The snapshot may predate the handler's removal at unload: a
            // module already unloading refuses the call guard, and one that
            // is entered cannot be closed before the call returns.
            let Ok(_guard) = g.module.enter() else {
                continue;
            };
            if call(&g.module, f, g.user_data) != Status::SUCCESS && state != CS::DESTROY {
                return false;
            }
        }
    }
    s.ch().state == state
}

fn standard_handler(core: &Arc<Core>, s: &Arc<Session>, state: CS) {
    match state {
        CS::INIT => {
            // Only from INIT: a leg that answers in its endpoint's INIT
            // handler (null/) can already be bridged by its originator,
            // and routing it would run the dialplan on an outbound leg.
            advance(s, CS::INIT, CS::ROUTING);
        }
        CS::ROUTING => routing(core, s),
        CS::EXECUTE => execute(core, s),
        CS::PARK => {
            s.ch().flags |= cf::PARK;
            s.fire(core, EventType::CHANNEL_PARK, true, &[]);
        }
        CS::HANGUP => {
            set_timestamps(s);
            set_callstate(core, s, CallState::Hangup);
            if let Some(cmd) = s.ch().var("api_hangup_hook").map(str::to_string) {
                let line =
                    crate::expand::expand(&cmd, &crate::core::ChannelVars { core, session: s });
                let out = core.execute_line(&line);
                log::debug!("api_hangup_hook {line}: {}", out.trim());
            }
            set_state(s, CS::REPORTING);
        }
        CS::REPORTING => {
            s.fire(core, EventType::CHANNEL_HANGUP_COMPLETE, true, &[]);
            set_state(s, CS::DESTROY);
        }
        CS::EXCHANGE_MEDIA if s.ch().bridged_to.is_some() => crate::bridge::relay(core, s),
        // CONSUME_MEDIA, SOFT_EXECUTE, HIBERNATE, RESET:
        // nothing to do until something moves the channel on.
        _ => {}
    }
}

fn routing(core: &Arc<Core>, s: &Arc<Session>) {
    // Decided under the lock: originate's `resume` changes the same fields.
    let dialplans = {
        let mut ch = s.ch();
        if ch.state != CS::ROUTING {
            return;
        }
        if !ch.extension.is_empty() {
            ch.state = CS::EXECUTE;
            return;
        }
        // An outbound leg waits for its originator; one its originator
        // already bridged (which clears ORIGINATING) is about to relay.
        if ch.has(cf::ORIGINATING) || ch.has(cf::BRIDGED) {
            ch.state = CS::CONSUME_MEDIA;
            return;
        }
        ch.profile.dialplan.clone()
    };
    let dialplans = if dialplans.is_empty() {
        "XML".to_string()
    } else {
        dialplans
    };
    let mut any_dialplan = false;
    for item in dialplans
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let (name, arg) = item.split_once(':').unwrap_or((item, ""));
        let Some(dp) = core.dialplans.get(name) else {
            continue;
        };
        any_dialplan = true;
        if let Some(apps) = dp.hunt(core, s, arg) {
            {
                let mut ch = s.ch();
                ch.extension = apps.into();
                ch.flags |= cf::DIALPLAN_HIT;
            }
            set_state(s, CS::EXECUTE);
            return;
        }
    }
    if !any_dialplan && s.direction == Direction::Outbound {
        set_state(s, CS::CONSUME_MEDIA);
        return;
    }
    let dest = s.ch().profile.destination_number.clone();
    log::info!("{}: no route for '{dest}' in dialplan {dialplans}", s.uuid);
    hangup(core, s, CallCause::NO_ROUTE_DESTINATION);
}

fn execute(core: &Arc<Core>, s: &Arc<Session>) {
    loop {
        drain_queue(core, s);
        let next = {
            let mut ch = s.ch();
            if ch.state != CS::EXECUTE || ch.hangup_cause.is_some() {
                return;
            }
            ch.extension.pop_front()
        };
        let Some((app, arg)) = next else { break };
        execute_app(core, s, &app, &arg);
    }
    if s.ch().state == CS::EXECUTE && !s.is_down() {
        hangup(core, s, CallCause::NORMAL_CLEARING);
    }
}

/// Runs one application on the session's thread, with its events.
pub fn execute_app(core: &Arc<Core>, s: &Arc<Session>, app: &str, arg: &str) -> Status {
    execute_app_with_uuid(core, s, app, arg, None)
}

/// Runs an application whose events carry `app_uuid` (sendmsg's
/// Event-UUID) as Application-UUID.
pub fn execute_app_with_uuid(
    core: &Arc<Core>,
    s: &Arc<Session>,
    app: &str,
    arg: &str,
    app_uuid: Option<&str>,
) -> Status {
    let data = crate::expand::expand(arg, &crate::core::ChannelVars { core, session: s });
    let app_uuid = app_uuid
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    {
        let mut ch = s.ch();
        ch.set_var("current_application", app);
        ch.set_var("current_application_data", &data);
        ch.set_var("current_application_response", "");
    }
    let exec_headers = [
        ("Application", app),
        ("Application-Data", data.as_str()),
        ("Application-UUID", app_uuid.as_str()),
    ];
    s.fire(core, EventType::CHANNEL_EXECUTE, true, &exec_headers);
    let Some(entry) = core.registry.app(app) else {
        log::error!("{}: invalid application '{app}'", s.uuid);
        hangup(core, s, CallCause::DESTINATION_OUT_OF_ORDER);
        return Status::NOTFOUND;
    };
    let status = match entry.module.enter() {
        Err(e) => {
            log::error!("{}: application '{app}' unavailable: {e}", s.uuid);
            hangup(core, s, CallCause::DESTINATION_OUT_OF_ORDER);
            Status::FALSE
        }
        Ok(_guard) => {
            let (f, ud) = (entry.func, entry.user_data);
            let sref = s.as_ref();
            let label = format!("application {app}");
            let st = call_entry(&entry.module, &label, Some(s), || {
                // SAFETY: the module is entered for the call; `data` outlives it.
                unsafe { f(ud as *mut c_void, sref, RStr::new(&data)) }
            })
            .unwrap_or(Status::GENERR);
            if st == Status::PANIC {
                s.ch()
                    .set_var("current_application_response", "-ERR module panicked");
            }
            st
        }
    };
    let response = s
        .ch()
        .var("current_application_response")
        .unwrap_or("_none_")
        .to_string();
    let done_headers = [
        ("Application", app),
        ("Application-Data", data.as_str()),
        ("Application-Response", response.as_str()),
        ("Application-UUID", app_uuid.as_str()),
    ];
    s.fire(
        core,
        EventType::CHANNEL_EXECUTE_COMPLETE,
        true,
        &done_headers,
    );
    status
}

fn destroy(core: &Arc<Core>, s: &Arc<Session>) {
    s.ch().running_state = CS::DESTROY;
    crate::media_io::finish_recording(core, s);
    s.fire(core, EventType::CHANNEL_DESTROY, true, &[]);
    run_handlers(core, s, CS::DESTROY);
    s.fire(core, EventType::CHANNEL_STATE, false, &[]);
    // Channel handlers hold their modules until here.
    let handlers = std::mem::take(&mut s.ch().handlers);
    drop(handlers);
    core.sessions.remove(&s.uuid);
    s.notify();
}

/// Hangs the call up with `cause` (once; a cause of NONE means
/// NORMAL_CLEARING). Fires CHANNEL_HANGUP and tells the endpoint.
pub fn hangup(core: &Core, s: &Arc<Session>, cause: CallCause) -> bool {
    let cause = if cause == CallCause::NONE {
        CallCause::NORMAL_CLEARING
    } else {
        cause
    };
    {
        let mut ch = s.ch();
        if ch.hangup_cause.is_some() || ch.state >= CS::HANGUP {
            return false;
        }
        ch.hangup_cause = Some(cause);
        ch.times.hangup = now_us();
        ch.set_var("hangup_cause", cause.name().unwrap_or("NONE"));
        ch.set_var("hangup_cause_q850", &q850(cause).to_string());
        ch.state = CS::HANGUP;
    }
    // Hangup-Cause comes with the channel data now that the cause is set.
    s.fire(core, EventType::CHANNEL_HANGUP, true, &[]);
    if s.is_started() {
        s.signal_endpoint(KillSignal::KILL);
    }
    s.wake();
    true
}

/// FreeSWITCH's `switch_channel_set_timestamps`: the `*_stamp`, `*_epoch`
/// and duration variables CDR templates use.
fn set_timestamps(s: &Session) {
    let mut ch = s.ch();
    let t = ch.times;
    let stamp = |us: u64| {
        if us == 0 {
            String::new()
        } else {
            chrono::DateTime::<chrono::Local>::from(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(us),
            )
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
        }
    };
    let end = if t.hangup == 0 { now_us() } else { t.hangup };
    for (name, us) in [
        ("start", t.created),
        ("profile_start", t.profile_created),
        ("answer", t.answered),
        ("progress", t.progress),
        ("progress_media", t.progress_media),
        ("end", end),
    ] {
        ch.set_var(&format!("{name}_stamp"), &stamp(us));
        ch.set_var(&format!("{name}_epoch"), &(us / 1_000_000).to_string());
        ch.set_var(&format!("{name}_uepoch"), &us.to_string());
    }
    let secs = |from: u64, to: u64| {
        if from == 0 || to < from {
            0
        } else {
            (to - from) / 1_000_000
        }
    };
    let ms = |from: u64, to: u64| {
        if from == 0 || to < from {
            0
        } else {
            (to - from) / 1000
        }
    };
    ch.set_var("duration", &secs(t.created, end).to_string());
    ch.set_var("mduration", &ms(t.created, end).to_string());
    ch.set_var("billsec", &secs(t.answered, end).to_string());
    ch.set_var("billmsec", &ms(t.answered, end).to_string());
    ch.set_var("progresssec", &secs(t.created, t.progress).to_string());
    ch.set_var("answersec", &secs(t.created, t.answered).to_string());
    ch.set_var("waitsec", &secs(t.created, t.answered).to_string());
}

/// The Q.850 number FreeSWITCH reports for a cause (its own causes above
/// 127 map to the Q.850 cause they mean).
pub fn q850(c: CallCause) -> u32 {
    match c.0 {
        n if n <= 127 => n,
        487 => 16,
        _ => match c {
            CallCause::USER_NOT_REGISTERED | CallCause::NO_PICKUP => 18,
            CallCause::MEDIA_TIMEOUT | CallCause::PROGRESS_TIMEOUT => 102,
            CallCause::GATEWAY_DOWN | CallCause::INVALID_GATEWAY => 27,
            _ => 16,
        },
    }
}

/// FreeSWITCH's `str2cause`: a number, or a name in any case.
pub fn str2cause(s: &str) -> CallCause {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return CallCause(n);
    }
    CallCause::from_name(s).unwrap_or(CallCause::NONE)
}

/// The full answer: indicate to the endpoint, then mark.
pub fn answer(core: &Core, s: &Arc<Session>) -> Status {
    if s.direction == Direction::Outbound || s.ch().has(cf::ANSWERED) {
        return Status::SUCCESS;
    }
    if s.is_down() {
        return Status::FALSE;
    }
    if deliver_message(s, MessageId::ANSWER, "", 0) != Status::SUCCESS {
        hangup(core, s, CallCause::INCOMPATIBLE_DESTINATION);
        return Status::FALSE;
    }
    mark_answered(core, s);
    Status::SUCCESS
}

/// Records the answer: CF_ANSWERED, CHANNEL_ANSWER, call state ACTIVE.
pub fn mark_answered(core: &Core, s: &Arc<Session>) {
    let originator = {
        let mut ch = s.ch();
        if ch.has(cf::ANSWERED) || ch.hangup_cause.is_some() {
            return;
        }
        ch.flags |= cf::ANSWERED;
        ch.times.answered = now_us();
        if ch.times.progress_media == 0 {
            ch.times.progress_media = ch.times.answered;
        }
        ch.set_var("endpoint_disposition", "ANSWER");
        ch.originator.clone()
    };
    s.fire(core, EventType::CHANNEL_ANSWER, true, &[]);
    set_callstate(core, s, CallState::Active);
    s.notify();
    if let Some(o) = originator.and_then(|u| core.sessions.get(&u)) {
        o.notify();
    }
}

/// Early media: indicate PROGRESS to the endpoint (inbound only), then mark.
pub fn pre_answer(core: &Core, s: &Arc<Session>) -> Status {
    if s.direction == Direction::Outbound {
        return Status::SUCCESS;
    }
    {
        let ch = s.ch();
        if ch.has(cf::ANSWERED) || ch.has(cf::EARLY_MEDIA) {
            return Status::SUCCESS;
        }
    }
    if deliver_message(s, MessageId::PROGRESS, "", 0) != Status::SUCCESS {
        hangup(core, s, CallCause::INCOMPATIBLE_DESTINATION);
        return Status::FALSE;
    }
    mark_pre_answered(core, s);
    Status::SUCCESS
}

/// Records early media: CF_EARLY_MEDIA, CHANNEL_PROGRESS_MEDIA, call state EARLY.
pub fn mark_pre_answered(core: &Core, s: &Arc<Session>) {
    {
        let mut ch = s.ch();
        if ch.has(cf::EARLY_MEDIA) || ch.has(cf::ANSWERED) || ch.hangup_cause.is_some() {
            return;
        }
        ch.flags |= cf::EARLY_MEDIA;
        ch.times.progress_media = now_us();
        ch.set_var("endpoint_disposition", "EARLY MEDIA");
    }
    s.fire(core, EventType::CHANNEL_PROGRESS_MEDIA, true, &[]);
    set_callstate(core, s, CallState::Early);
    s.notify();
}

/// Ringing: indicate RINGING to the endpoint (inbound only), then mark.
pub fn ring_ready(core: &Core, s: &Arc<Session>) -> Status {
    if s.direction == Direction::Outbound {
        return Status::SUCCESS;
    }
    if s.ch().has(cf::RING_READY) {
        return Status::SUCCESS;
    }
    if deliver_message(s, MessageId::RINGING, "", 1) != Status::SUCCESS {
        hangup(core, s, CallCause::INCOMPATIBLE_DESTINATION);
        return Status::FALSE;
    }
    mark_ring_ready(core, s);
    Status::SUCCESS
}

/// Records ringing: CF_RING_READY, CHANNEL_PROGRESS, call state RINGING.
pub fn mark_ring_ready(core: &Core, s: &Arc<Session>) {
    {
        let mut ch = s.ch();
        if ch.has(cf::RING_READY) || ch.hangup_cause.is_some() {
            return;
        }
        ch.flags |= cf::RING_READY;
        if ch.times.progress == 0 {
            ch.times.progress = now_us();
        }
    }
    s.fire(core, EventType::CHANNEL_PROGRESS, true, &[]);
    set_callstate(core, s, CallState::Ringing);
    s.notify();
}

/// The far end put the call on hold or took it off (FreeSWITCH's
/// `switch_channel_mark_hold`): CF_LEG_HOLDING, CHANNEL_HOLD /
/// CHANNEL_UNHOLD, the call state HELD (then UNHELD and ACTIVE), the hold
/// times. A bridged peer hears hold music meanwhile (the bridge's relay).
pub fn mark_hold(core: &Core, s: &Arc<Session>, on: bool) {
    {
        let mut ch = s.ch();
        if ch.has(cf::LEG_HOLDING) == on || ch.hangup_cause.is_some() {
            return;
        }
        let now = now_us();
        if on {
            ch.flags |= cf::LEG_HOLDING;
            ch.times.last_hold = now;
        } else {
            ch.flags &= !cf::LEG_HOLDING;
            if ch.times.last_hold > 0 {
                ch.times.hold_accum += now.saturating_sub(ch.times.last_hold);
            }
        }
    }
    let event = if on {
        EventType::CHANNEL_HOLD
    } else {
        EventType::CHANNEL_UNHOLD
    };
    // FreeSWITCH changes the call state with the flag, before the event.
    if on {
        set_callstate(core, s, CallState::Held);
    } else {
        set_callstate(core, s, CallState::Unheld);
        set_callstate(core, s, CallState::Active);
    }
    s.fire(core, event, true, &[]);
    s.notify();
}

/// Sends a DTMF digit through the session's endpoint (towards the far end).
pub fn send_dtmf(s: &Arc<Session>, digit: char, duration_ms: u32) -> Status {
    let Some(f) = s.endpoint.io.send_dtmf else {
        return Status::NOTIMPL;
    };
    let d = hotswitch_plugin_api::Dtmf {
        digit: digit as u32,
        duration_ms,
        source: 4,
    };
    let (ud, sref) = (s.endpoint.user_data, s.as_ref());
    call_entry(&s.endpoint.module, "send_dtmf", Some(s), move || {
        // SAFETY: the session holds its endpoint's module; `d` outlives the call.
        unsafe { f(ud as *mut c_void, sref, &d) }
    })
    .unwrap_or(Status::GENERR)
}

/// Sends the call to `dest` in `dialplan`/`context` (FreeSWITCH's
/// `switch_ivr_session_transfer`).
pub fn transfer(s: &Arc<Session>, dest: &str, dialplan: &str, context: &str) -> bool {
    {
        let mut ch = s.ch();
        if ch.state >= CS::HANGUP {
            return false;
        }
        let dp = if dialplan.is_empty() { "XML" } else { dialplan };
        let ctx = if context.is_empty() {
            "default"
        } else {
            context
        };
        let entry = format!(
            "{}:{}:{}:{}",
            now_us() / 1_000_000,
            ch.profile.destination_number,
            dp,
            ctx
        );
        let history = match ch.var("transfer_history") {
            Some(h) => format!("{h}|:{entry}"),
            None => entry,
        };
        ch.set_var("transfer_history", &history);
        ch.profile.destination_number = dest.to_string();
        ch.profile.dialplan = dp.to_string();
        ch.profile.context = ctx.to_string();
        ch.extension.clear();
        ch.flags |= cf::TRANSFER;
        ch.flags &= !cf::ORIGINATING;
        ch.times.transfer = now_us();
        // Leaving EXECUTE or PARK for ROUTING again, even from ROUTING.
        ch.state = CS::ROUTING;
        ch.running_state = if ch.running_state == CS::ROUTING {
            CS::NONE
        } else {
            ch.running_state
        };
    }
    s.wake();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_freeswitch_rules() {
        assert!(can_transition(CS::NEW, CS::INIT));
        assert!(can_transition(CS::INIT, CS::ROUTING));
        assert!(can_transition(CS::ROUTING, CS::EXECUTE));
        assert!(can_transition(CS::EXECUTE, CS::PARK));
        assert!(can_transition(CS::PARK, CS::ROUTING));
        assert!(
            !can_transition(CS::EXECUTE, CS::INIT),
            "only HIBERNATE returns to INIT"
        );
        assert!(can_transition(CS::HIBERNATE, CS::INIT));
        assert!(
            !can_transition(CS::EXECUTE, CS::HANGUP),
            "only hangup() enters HANGUP"
        );
        assert!(can_transition(CS::HANGUP, CS::REPORTING));
        assert!(can_transition(CS::REPORTING, CS::DESTROY));
        assert!(
            !can_transition(CS::REPORTING, CS::EXECUTE),
            "never backwards"
        );
        assert!(!can_transition(CS::HANGUP, CS::DESTROY));
        assert!(!can_transition(CS::EXECUTE, CS::DESTROY));
    }

    #[test]
    fn every_cause_round_trips_by_name_and_number() {
        for c in CallCause::ALL {
            let name = c.name().unwrap();
            assert_eq!(str2cause(name), *c, "{name}");
            assert_eq!(str2cause(&name.to_lowercase()), *c, "{name}");
            assert_eq!(str2cause(&c.0.to_string()), *c, "{name}");
        }
        assert_eq!(str2cause("no such cause"), CallCause::NONE);
        assert_eq!(q850(CallCause::USER_BUSY), 17);
        assert_eq!(q850(CallCause::ORIGINATOR_CANCEL), 16);
    }
}

//! The host services table handed to every module's `module_load`: the only
//! way module code reaches the host. Each function is `extern "C"`, takes the
//! module's handle first, copies what it keeps into host memory, and never
//! lets a host panic unwind into the module.

use crate::core::Core;
use crate::event::EventType;
use crate::interfaces::{ApiEntry, ApiImpl, AppEntry, ChatEntry, EndpointEntry};
use crate::modules::LoadedModule;
use crate::origin;
use crate::session::{ChannelHandlers, Direction, Queued, Session};
use crate::state_machine;
use hotswitch_plugin_api::{
    ApiInterface, ApplicationInterface, CallCause, CallerProfile, ChannelState, ChatInterface,
    ChatMessage, CoreMessage, Dtmf, EndpointInterface, EventDesc, EventVisitor, Frame,
    HostServices, InterfaceKind, LogLevel, ModuleHandle, OutStream, Profile, RStr, SessionRef,
    StateHandlers, Status, DIRECTION_INBOUND, DIRECTION_OUTBOUND, EVENT_FORMAT_JSON,
    EVENT_FORMAT_XML, ITEM_EVENT, ITEM_LOG,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The one services table.
pub static SERVICES: HostServices = HostServices {
    log: svc_log,
    log_level: svc_log_level,
    config_section: svc_config_section,
    fire_event: svc_fire_event,
    register_endpoint: svc_register_endpoint,
    register_application: svc_register_application,
    register_api: svc_register_api,
    register_chat: svc_register_chat,
    unregister_interface: svc_unregister_interface,
    execute_api: svc_execute_api,
    module_running: svc_module_running,
    send_chat: svc_send_chat,
    session_request: svc_session_request,
    session_locate: svc_session_locate,
    session_release: svc_session_release,
    session_start: svc_session_start,
    session_uuid: svc_session_uuid,
    session_set_private: svc_session_set_private,
    session_get_private: svc_session_get_private,
    session_queue_message: svc_session_queue_message,
    session_execute_application: svc_session_execute_application,
    session_park: svc_session_park,
    session_sleep: svc_session_sleep,
    session_read_frame: svc_session_read_frame,
    session_write_frame: svc_session_write_frame,
    session_send_dtmf: svc_session_send_dtmf,
    session_transfer: svc_session_transfer,
    session_fire_event: svc_session_fire_event,
    channel_set_name: svc_channel_set_name,
    channel_set_caller_profile: svc_channel_set_caller_profile,
    channel_get_variable: svc_channel_get_variable,
    channel_set_variable: svc_channel_set_variable,
    channel_set_state: svc_channel_set_state,
    channel_get_state: svc_channel_get_state,
    channel_direction: svc_channel_direction,
    channel_hangup: svc_channel_hangup,
    channel_is_down: svc_channel_is_down,
    channel_answer: svc_channel_answer,
    channel_pre_answer: svc_channel_pre_answer,
    channel_ring_ready: svc_channel_ring_ready,
    channel_mark_answered: svc_channel_mark_answered,
    channel_mark_pre_answered: svc_channel_mark_pre_answered,
    channel_mark_ring_ready: svc_channel_mark_ring_ready,
    channel_add_state_handler: svc_channel_add_state_handler,
    add_state_handler: svc_add_state_handler,
    remove_state_handler: svc_remove_state_handler,
    event_subscribe: svc_event_subscribe,
    event_set_interest: svc_event_set_interest,
    log_set_level: svc_log_set_level,
    event_next: svc_event_next,
    event_dropped: svc_event_dropped,
    event_unsubscribe: svc_event_unsubscribe,
    session_queue_application: svc_session_queue_application,
    session_channel_data: svc_session_channel_data,
    channel_queue_dtmf: svc_channel_queue_dtmf,
    session_read_dtmf: svc_session_read_dtmf,
    session_flush_dtmf: svc_session_flush_dtmf,
    session_expand: svc_session_expand,
    session_bridge: svc_session_bridge,
    session_play: svc_session_play,
    session_record: svc_session_record,
    session_record_session: svc_session_record_session,
    channel_mark_hold: svc_channel_mark_hold,
    core_ready: svc_core_ready,
    handover_take: svc_handover_take,
    handover_forward: svc_handover_forward,
    session_echo: svc_session_echo,
};

/// The module behind a handle, checked: `None` for a forged or stale one.
fn module_of(h: ModuleHandle) -> Option<Arc<LoadedModule>> {
    let m = crate::handles::MODULES.get(h.id);
    if m.is_none() {
        log::warn!(
            "a module called the host with an unknown module handle {:#x}",
            h.id
        );
    }
    m
}

/// Runs `f` with the calling module and its core (`default` for a stale
/// handle or a host panic).
///
/// # Safety
/// As [`module_of`].
unsafe fn with_module<T: Clone>(
    module: ModuleHandle,
    default: T,
    f: impl FnOnce(Arc<LoadedModule>, Arc<Core>) -> T,
) -> T {
    let fallback = default.clone();
    shield(default, || {
        let Some(m) = module_of(module) else {
            return fallback;
        };
        let Some(core) = m.core() else {
            return fallback;
        };
        f(m, core)
    })
}

fn shield<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Appends to a host `String` (the `write` of host-made streams).
///
/// # Safety
/// `ctx` must point to a live `String` that nothing else touches during the
/// call.
pub unsafe extern "C" fn write_to_string(ctx: *mut std::ffi::c_void, text: RStr) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        (*(ctx as *mut String)).push_str(&text.to_str());
    }));
}

unsafe extern "C" fn svc_log(
    module: ModuleHandle,
    level: LogLevel,
    _target: RStr,
    message: RStr,
    file: RStr,
    line: u32,
) {
    shield((), || {
        let Some(level) = level.to_log() else { return };
        let m = module_of(module);
        let target = m.as_ref().map(|m| m.name.as_str()).unwrap_or("module");
        let file = file.to_str();
        if let (Some(m), log::Level::Error) = (&m, level) {
            let text = message.to_str();
            if let Some(reason) = text.strip_prefix(hotswitch_plugin_api::module::LOAD_FAILED) {
                m.set_load_error(reason);
            }
        }
        log::logger().log(
            &log::Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{}", message.to_str()))
                .file(Some(&file))
                .line(Some(line))
                .build(),
        );
    })
}

unsafe extern "C" fn svc_log_level() -> LogLevel {
    LogLevel(log::max_level() as u32)
}

unsafe extern "C" fn svc_config_section(
    module: ModuleHandle,
    name: RStr,
    out: *mut OutStream,
) -> Status {
    shield(Status::GENERR, || {
        let Some(core) = module_of(module).and_then(|m| m.core()) else {
            return Status::GENERR;
        };
        match core.config.section(&name.to_str()) {
            Ok(Some((text, _))) => {
                OutStream::write_str(out, &text);
                Status::SUCCESS
            }
            Ok(None) => Status::NOTFOUND,
            Err(e) => {
                log::error!("configuration refused: {e}");
                Status::GENERR
            }
        }
    })
}

unsafe extern "C" fn svc_fire_event(module: ModuleHandle, ev: *const EventDesc) -> Status {
    shield(Status::GENERR, || {
        let (Some(core), Some(d)) = (module_of(module).and_then(|m| m.core()), ev.as_ref()) else {
            return Status::GENERR;
        };
        let Some(t) = EventType::from_id(d.event_id).filter(|t| *t != EventType::ALL) else {
            return Status::FALSE;
        };
        let subclass = d.subclass.to_str();
        let subclass = (!subclass.is_empty()).then_some(subclass.as_ref());
        let mut e = core.bus.create(t, subclass, origin!("module"));
        if !d.headers.is_null() {
            for kv in std::slice::from_raw_parts(d.headers, d.header_count) {
                e.add_header(kv.key.to_str(), kv.value.to_str());
            }
        }
        if !d.body.is_empty() {
            e.body = Some(d.body.to_str().into_owned());
        }
        core.bus.fire(e);
        Status::SUCCESS
    })
}

fn registered(m: &LoadedModule, kind: InterfaceKind, r: Result<(), String>) -> Status {
    match r {
        Ok(()) => Status::SUCCESS,
        Err(e) => {
            log::error!("{}: cannot register {}: {e}", m.name, kind.as_str());
            Status::INUSE
        }
    }
}

unsafe extern "C" fn svc_register_endpoint(
    module: ModuleHandle,
    i: *const EndpointInterface,
) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(i)) = (module_of(module), i.as_ref()) else {
            return Status::GENERR;
        };
        let Some(core) = m.core() else {
            return Status::GENERR;
        };
        let e = EndpointEntry {
            name: i.name.to_str().into_owned(),
            module: m.clone(),
            user_data: i.user_data as usize,
            io: i.io,
            state: i.state,
        };
        registered(&m, InterfaceKind::ENDPOINT, core.registry.add_endpoint(e))
    })
}

unsafe extern "C" fn svc_register_application(
    module: ModuleHandle,
    i: *const ApplicationInterface,
) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(i)) = (module_of(module), i.as_ref()) else {
            return Status::GENERR;
        };
        let Some(core) = m.core() else {
            return Status::GENERR;
        };
        let e = AppEntry {
            name: i.name.to_str().into_owned(),
            description: i.description.to_str().into_owned(),
            syntax: i.syntax.to_str().into_owned(),
            flags: i.flags,
            module: m.clone(),
            func: i.func,
            user_data: i.user_data as usize,
        };
        registered(&m, InterfaceKind::APPLICATION, core.registry.add_app(e))
    })
}

unsafe extern "C" fn svc_register_api(module: ModuleHandle, i: *const ApiInterface) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(i)) = (module_of(module), i.as_ref()) else {
            return Status::GENERR;
        };
        let Some(core) = m.core() else {
            return Status::GENERR;
        };
        let e = ApiEntry {
            name: i.name.to_str().into_owned(),
            description: i.description.to_str().into_owned(),
            syntax: i.syntax.to_str().into_owned(),
            imp: ApiImpl::Module {
                module: m.clone(),
                func: i.func,
                user_data: i.user_data as usize,
            },
        };
        registered(&m, InterfaceKind::API, core.registry.add_api(e))
    })
}

unsafe extern "C" fn svc_register_chat(module: ModuleHandle, i: *const ChatInterface) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(i)) = (module_of(module), i.as_ref()) else {
            return Status::GENERR;
        };
        let Some(core) = m.core() else {
            return Status::GENERR;
        };
        let e = ChatEntry {
            name: i.name.to_str().into_owned(),
            module: m.clone(),
            user_data: i.user_data as usize,
            send: i.send,
        };
        registered(&m, InterfaceKind::CHAT, core.registry.add_chat(e))
    })
}

unsafe extern "C" fn svc_unregister_interface(
    module: ModuleHandle,
    kind: InterfaceKind,
    name: RStr,
) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        if core.registry.remove_one(&m, kind, &name.to_str()) {
            Status::SUCCESS
        } else {
            Status::NOTFOUND
        }
    })
}

unsafe extern "C" fn svc_execute_api(
    module: ModuleHandle,
    command: RStr,
    args: RStr,
    session: SessionRef,
    out: *mut OutStream,
) -> Status {
    shield(Status::GENERR, || {
        let Some(core) = module_of(module).and_then(|m| m.core()) else {
            return Status::GENERR;
        };
        match core.execute_api(&command.to_str(), &args.to_str(), session) {
            Ok(text) => {
                OutStream::write_str(out, &text);
                Status::SUCCESS
            }
            Err(e) => {
                OutStream::write_str(out, &e.to_string());
                Status::FALSE
            }
        }
    })
}

unsafe extern "C" fn svc_module_running(module: ModuleHandle) -> u32 {
    shield(0, || {
        module_of(module).is_some_and(|m| m.is_running()) as u32
    })
}

unsafe extern "C" fn svc_handover_take(
    module: ModuleHandle,
    sink: *const hotswitch_plugin_api::handover::HandoverSink,
) -> Status {
    shield(Status::GENERR, || {
        let Some(m) = module_of(module) else {
            return Status::GENERR;
        };
        // SAFETY: the module lends its sink for this call.
        match unsafe { sink.as_ref() } {
            Some(sink) => crate::reload::take(&m, sink),
            None => Status::GENERR,
        }
    })
}

unsafe extern "C" fn svc_handover_forward(
    module: ModuleHandle,
    delivery: *const hotswitch_plugin_api::handover::DeliveryDesc,
) -> u32 {
    shield(0, || {
        let Some(m) = module_of(module) else {
            return 0;
        };
        // SAFETY: the module lends the delivery for this call.
        match unsafe { delivery.as_ref() } {
            Some(d) => crate::reload::forward(&m, d) as u32,
            None => 0,
        }
    })
}

unsafe extern "C" fn svc_core_ready(module: ModuleHandle, direction: u32) -> u32 {
    shield(0, || {
        module_of(module)
            .and_then(|m| m.core())
            .is_some_and(|core| {
                !core.is_shutting_down()
                    && core
                        .drain
                        .accepts(direction != hotswitch_plugin_api::host::DIRECTION_OUTBOUND)
            }) as u32
    })
}

unsafe extern "C" fn svc_send_chat(module: ModuleHandle, msg: *const ChatMessage) -> Status {
    shield(Status::GENERR, || {
        let (Some(core), Some(msg_ref)) = (module_of(module).and_then(|m| m.core()), msg.as_ref())
        else {
            return Status::GENERR;
        };
        let proto = msg_ref.proto.to_str().into_owned();
        core.send_chat(&proto, msg)
    })
}

// ---- sessions ----

/// The session behind a handle, checked: `None` for a forged or stale one
/// (a session that ended).
fn session_of(s: SessionRef) -> Option<Arc<Session>> {
    if s.is_null() {
        return None;
    }
    let found = crate::handles::SESSIONS.get(s.id);
    if found.is_none() {
        log::warn!(
            "a module called the host with an unknown or ended session handle {:#x}",
            s.id
        );
    }
    found
}

/// A session handle the module holds (one hold taken for it).
fn held_ref(s: &Arc<Session>) -> SessionRef {
    let r = s.as_ref();
    if let Err(e) = crate::handles::SESSIONS.hold(r.id) {
        log::error!("{}: cannot hold its own handle: {e:?}", s.uuid);
    }
    r
}

fn st(b: bool) -> Status {
    if b {
        Status::SUCCESS
    } else {
        Status::FALSE
    }
}

unsafe extern "C" fn svc_session_request(
    module: ModuleHandle,
    endpoint: RStr,
    direction: u32,
    out: *mut SessionRef,
) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        let name = endpoint.to_str();
        // A draining version creates legs of its own endpoints (the
        // registry's entry by that name is its successor's).
        let Some(ep) = m
            .retired_endpoint(&name)
            .or_else(|| core.registry.endpoint(&name))
        else {
            log::error!("{}: session_request for unknown endpoint '{name}'", m.name);
            return Status::NOTFOUND;
        };
        if !Arc::ptr_eq(&ep.module, &m) {
            log::error!(
                "{}: endpoint '{name}' belongs to {}",
                m.name,
                ep.module.name
            );
            return Status::FALSE;
        }
        let dir = if direction == DIRECTION_OUTBOUND {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let uuid = crate::originate::take_origination_uuid();
        match core.sessions.request(&core, ep, dir, uuid) {
            Ok(s) => {
                if let Some(o) = out.as_mut() {
                    *o = held_ref(&s);
                }
                Status::SUCCESS
            }
            Err(e) => {
                log::warn!("{}: session refused: {e}", m.name);
                Status::FALSE
            }
        }
    })
}

unsafe extern "C" fn svc_session_locate(
    module: ModuleHandle,
    uuid: RStr,
    out: *mut SessionRef,
) -> Status {
    shield(Status::GENERR, || {
        let Some(core) = module_of(module).and_then(|m| m.core()) else {
            return Status::GENERR;
        };
        match core.sessions.get(&uuid.to_str()) {
            Some(s) => {
                if let Some(o) = out.as_mut() {
                    *o = held_ref(&s);
                }
                Status::SUCCESS
            }
            None => Status::NOTFOUND,
        }
    })
}

unsafe extern "C" fn svc_session_release(s: SessionRef) {
    shield((), || {
        if s.is_null() {
            return;
        }
        if let Err(e) = crate::handles::SESSIONS.release(s.id) {
            log::warn!(
                "a module released session handle {:#x} it does not hold ({e:?}); refused",
                s.id
            );
        }
    })
}

macro_rules! session_fn {
    ($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty, $default:expr, |$s:ident, $core:ident| $body:expr) => {
        #[allow(clippy::unused_unit)]
        unsafe extern "C" fn $name(session: SessionRef $(, $arg: $ty)*) -> $ret {
            shield($default, || {
                let Some($s) = session_of(session) else { return $default };
                let Some($core) = $s.core() else { return $default };
                #[allow(unused_unsafe)]
                unsafe { $body }
            })
        }
    };
}

session_fn!(svc_session_start() -> Status, Status::GENERR, |s, _core| {
    s.start();
    Status::SUCCESS
});
session_fn!(svc_session_uuid(out: *mut OutStream) -> (), (), |s, _core| OutStream::write_str(out, &s.uuid));
unsafe extern "C" fn svc_session_set_private(
    module: ModuleHandle,
    session: SessionRef,
    data: *mut std::ffi::c_void,
    drop: hotswitch_plugin_api::PrivateDropFn,
) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(s)) = (module_of(module), session_of(session)) else {
            return Status::GENERR;
        };
        if !Arc::ptr_eq(&m, &s.endpoint.module) {
            log::warn!(
                "{}: refused to set private data on {}, a {} session",
                m.name,
                s.uuid,
                s.endpoint.module.name
            );
            return Status::FALSE;
        }
        st(s.set_private(data, drop))
    })
}

unsafe extern "C" fn svc_session_get_private(
    module: ModuleHandle,
    session: SessionRef,
) -> *mut std::ffi::c_void {
    shield(std::ptr::null_mut(), || {
        let (Some(m), Some(s)) = (module_of(module), session_of(session)) else {
            return std::ptr::null_mut();
        };
        if !Arc::ptr_eq(&m, &s.endpoint.module) {
            return std::ptr::null_mut();
        }
        s.private()
    })
}
session_fn!(svc_session_queue_message(msg: *const CoreMessage) -> Status, Status::GENERR, |s, _core| {
    let Some(m) = msg.as_ref() else { return Status::FALSE };
    s.enqueue(Queued::Message {
        id: m.id,
        string_arg: m.string_arg.to_str().into_owned(),
        numeric_arg: m.numeric_arg,
    });
    Status::SUCCESS
});
session_fn!(svc_session_execute_application(app: RStr, arg: RStr, app_uuid: RStr) -> Status, Status::GENERR, |s, core| {
    let u = app_uuid.to_str();
    state_machine::execute_app_with_uuid(&core, &s, &app.to_str(), &arg.to_str(), Some(&u))
});
session_fn!(svc_session_park() -> Status, Status::GENERR, |s, _core| st(state_machine::park(&s)));
session_fn!(svc_session_sleep(ms: u32) -> Status, Status::GENERR, |s, _core| {
    let deadline = Instant::now() + Duration::from_millis(ms as u64);
    let mut seen = s.signal_generation();
    let state = s.state();
    loop {
        // A hangup, a transfer or a park ends the sleep, as in FreeSWITCH.
        if s.is_down() || s.state() != state {
            return Status::BREAK;
        }
        let now = Instant::now();
        if now >= deadline {
            return Status::SUCCESS;
        }
        seen = s.wait_signal(seen, deadline - now);
    }
});
session_fn!(svc_session_read_frame(frame: *mut Frame, _timeout_ms: u32) -> Status, Status::GENERR, |s, _core| {
    let Some(f) = frame.as_mut() else { return Status::FALSE };
    if f.data.is_null() || f.buflen == 0 {
        return Status::FALSE;
    }
    let buf = std::slice::from_raw_parts_mut(f.data, f.buflen as usize);
    let (st, got) = crate::media_io::read_frame(&s, buf);
    *f = got;
    st
});
session_fn!(svc_session_echo() -> Status, Status::GENERR, |s, core| crate::media_loop::echo(&core, &s));
session_fn!(svc_session_write_frame(frame: *const Frame) -> Status, Status::GENERR, |s, _core| {
    match frame.as_ref() {
        Some(f) => crate::media_io::write_frame(&s, f),
        None => Status::FALSE,
    }
});
session_fn!(svc_session_send_dtmf(dtmf: *const Dtmf) -> Status, Status::GENERR, |s, _core| {
    let Some(f) = s.endpoint.io.send_dtmf else { return Status::NOTIMPL };
    let (ud, sref, dp) = (s.endpoint.user_data, s.as_ref(), crate::core::SendPtr(dtmf));
    crate::containment::call_entry(&s.endpoint.module, "send_dtmf", Some(&s), move || {
        let dp = dp;
        f(ud as *mut _, sref, dp.0)
    })
    .unwrap_or(Status::GENERR)
});
session_fn!(svc_session_transfer(dest: RStr, dialplan: RStr, context: RStr) -> Status, Status::GENERR, |s, _core| {
    st(state_machine::transfer(&s, &dest.to_str(), &dialplan.to_str(), &context.to_str()))
});
session_fn!(svc_session_fire_event(ev: *const EventDesc) -> Status, Status::GENERR, |s, core| {
    let Some(d) = ev.as_ref() else { return Status::FALSE };
    let Some(t) = EventType::from_id(d.event_id).filter(|t| *t != EventType::ALL) else {
        return Status::FALSE;
    };
    let subclass = d.subclass.to_str();
    let subclass = (!subclass.is_empty()).then_some(subclass.as_ref());
    let mut e = core.bus.create(t, subclass, origin!("session_fire_event"));
    {
        let ch = s.ch();
        s.add_channel_data(&ch, &mut e, true);
    }
    if !d.headers.is_null() {
        for kv in std::slice::from_raw_parts(d.headers, d.header_count) {
            e.add_header(kv.key.to_str(), kv.value.to_str());
        }
    }
    if !d.body.is_empty() {
        e.body = Some(d.body.to_str().into_owned());
    }
    core.bus.fire(e);
    Status::SUCCESS
});
session_fn!(svc_channel_set_name(name: RStr) -> Status, Status::GENERR, |s, _core| {
    let n = name.to_str().into_owned();
    let mut ch = s.ch();
    ch.set_var("channel_name", &n);
    ch.name = n;
    Status::SUCCESS
});
session_fn!(svc_channel_set_caller_profile(p: *const CallerProfile) -> Status, Status::GENERR, |s, _core| {
    let Some(p) = p.as_ref() else { return Status::FALSE };
    let mut ch = s.ch();
    ch.profile = Profile::from_raw(p);
    ch.times.profile_created = crate::session::now_us();
    Status::SUCCESS
});
session_fn!(svc_channel_get_variable(name: RStr, out: *mut OutStream) -> Status, Status::GENERR, |s, _core| {
    let value = s.ch().var_or_field(&name.to_str());
    match value {
        Some(v) => {
            OutStream::write_str(out, &v);
            Status::SUCCESS
        }
        None => Status::NOTFOUND,
    }
});
session_fn!(svc_channel_set_variable(name: RStr, value: RStr) -> Status, Status::GENERR, |s, _core| {
    s.ch().set_var(&name.to_str(), &value.to_str());
    Status::SUCCESS
});
session_fn!(svc_channel_set_state(state: ChannelState) -> Status, Status::GENERR, |s, _core| st(state_machine::set_state(&s, state)));
session_fn!(svc_channel_get_state() -> ChannelState, ChannelState::NONE, |s, _core| s.state());
session_fn!(svc_channel_direction() -> u32, 0, |s, _core| match s.direction {
    Direction::Inbound => DIRECTION_INBOUND,
    Direction::Outbound => DIRECTION_OUTBOUND,
});
session_fn!(svc_channel_hangup(cause: CallCause) -> Status, Status::GENERR, |s, core| st(state_machine::hangup(&core, &s, cause)));
session_fn!(svc_channel_is_down() -> u32, 1, |s, _core| s.is_down() as u32);
session_fn!(svc_channel_answer() -> Status, Status::GENERR, |s, core| state_machine::answer(&core, &s));
session_fn!(svc_channel_pre_answer() -> Status, Status::GENERR, |s, core| state_machine::pre_answer(&core, &s));
session_fn!(svc_channel_ring_ready() -> Status, Status::GENERR, |s, core| state_machine::ring_ready(&core, &s));
session_fn!(svc_channel_mark_answered() -> Status, Status::GENERR, |s, core| {
    state_machine::mark_answered(&core, &s);
    Status::SUCCESS
});
session_fn!(svc_channel_mark_pre_answered() -> Status, Status::GENERR, |s, core| {
    state_machine::mark_pre_answered(&core, &s);
    Status::SUCCESS
});
session_fn!(svc_channel_mark_hold(on: u32) -> Status, Status::GENERR, |s, core| {
    state_machine::mark_hold(&core, &s, on != 0);
    Status::SUCCESS
});
session_fn!(svc_channel_mark_ring_ready() -> Status, Status::GENERR, |s, core| {
    state_machine::mark_ring_ready(&core, &s);
    Status::SUCCESS
});

unsafe extern "C" fn svc_channel_add_state_handler(
    module: ModuleHandle,
    session: SessionRef,
    handlers: *const StateHandlers,
    user_data: *mut std::ffi::c_void,
) -> Status {
    shield(Status::GENERR, || {
        let (Some(m), Some(s), Some(h)) =
            (module_of(module), session_of(session), handlers.as_ref())
        else {
            return Status::GENERR;
        };
        let Ok(guard) = m.enter() else {
            return Status::FALSE;
        };
        s.ch().handlers.push(ChannelHandlers {
            table: *h,
            user_data: user_data as usize,
            module: m.clone(),
            _guard: guard,
        });
        Status::SUCCESS
    })
}

unsafe extern "C" fn svc_add_state_handler(
    module: ModuleHandle,
    handlers: *const StateHandlers,
    user_data: *mut std::ffi::c_void,
) -> u64 {
    shield(0, || {
        let (Some(m), Some(h)) = (module_of(module), handlers.as_ref()) else {
            return 0;
        };
        let Some(core) = m.core() else { return 0 };
        core.state_handlers.add(*h, user_data as usize, m)
    })
}

unsafe extern "C" fn svc_remove_state_handler(module: ModuleHandle, id: u64) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        let n = core
            .state_handlers
            .remove_where(|h| h.id == id && Arc::ptr_eq(&h.module, &m));
        st(n > 0)
    })
}

// ---- event and log subscriptions ----

/// The event and log subscriptions modules opened, by id: the core's
/// `module_subs`. Only the services below look inside.
#[derive(Default)]
pub struct ModuleSubscriptions(
    hotswitch_plugin_api::sync::Mutex<std::collections::HashMap<u64, Arc<ModuleSub>>>,
);

impl ModuleSubscriptions {
    /// Subscription `id`, if `module` opened it.
    fn get(&self, module: &LoadedModule, id: u64) -> Option<Arc<ModuleSub>> {
        let owner = module as *const LoadedModule as usize;
        self.0.lock().get(&id).filter(|s| s.owner == owner).cloned()
    }

    fn insert(&self, id: u64, sub: ModuleSub) {
        self.0.lock().insert(id, Arc::new(sub));
    }

    fn remove(&self, id: u64) -> Option<Arc<ModuleSub>> {
        self.0.lock().remove(&id)
    }

    /// Takes every subscription `module` opened.
    fn take_all_of(&self, module: &LoadedModule) -> Vec<Arc<ModuleSub>> {
        let owner = module as *const LoadedModule as usize;
        let mut subs = self.0.lock();
        let ids: Vec<u64> = subs
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| subs.remove(id)).collect()
    }
}

/// A module's subscription: events from the bus, log records from the tap.
struct ModuleSub {
    owner: usize,
    bus_id: u64,
    events: crossbeam_channel::Receiver<Arc<crate::event::Fired>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    capacity: usize,
    log: hotswitch_plugin_api::sync::Mutex<Option<LogTap>>,
}

struct LogTap {
    id: u64,
    rx: crossbeam_channel::Receiver<Arc<crate::logtap::LogRecord>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for ModuleSub {
    fn drop(&mut self) {
        if let Some(t) = self.log.lock().take() {
            crate::logtap::untap(t.id);
        }
    }
}

/// Closes every subscription a module opened (at its unload).
pub fn close_module_subscriptions(core: &Core, module: &LoadedModule) {
    for s in core.module_subs.take_all_of(module) {
        core.bus.unsubscribe(s.bus_id);
    }
}

fn module_sub(core: &Core, module: &LoadedModule, id: u64) -> Option<Arc<ModuleSub>> {
    core.module_subs.get(module, id)
}

unsafe extern "C" fn svc_event_subscribe(module: ModuleHandle, capacity: u32) -> u64 {
    shield(0, || {
        let Some(m) = module_of(module) else { return 0 };
        let Some(core) = m.core() else { return 0 };
        let capacity = (capacity as usize).clamp(1, 1 << 20);
        let sub = core
            .bus
            .subscribe(crate::event::Interest::default(), capacity);
        let id = sub.id;
        core.module_subs.insert(
            id,
            ModuleSub {
                owner: Arc::as_ptr(&m) as usize,
                bus_id: sub.id,
                events: sub.rx,
                dropped: sub.dropped,
                capacity,
                log: hotswitch_plugin_api::sync::Mutex::new(None),
            },
        );
        id
    })
}

unsafe extern "C" fn svc_event_set_interest(module: ModuleHandle, sub: u64, spec: RStr) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        let Some(s) = module_sub(&core, &m, sub) else {
            return Status::NOTFOUND;
        };
        match crate::event::Interest::parse(&spec.to_str()) {
            Ok(i) => st(core.bus.set_interest(s.bus_id, i)),
            Err(e) => {
                log::debug!("{}: event interest refused: {e}", m.name);
                Status::FALSE
            }
        }
    })
}

unsafe extern "C" fn svc_log_set_level(module: ModuleHandle, sub: u64, level: LogLevel) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        let Some(s) = module_sub(&core, &m, sub) else {
            return Status::NOTFOUND;
        };
        let mut tap = s.log.lock();
        match level.to_log() {
            None => {
                if let Some(t) = tap.take() {
                    crate::logtap::untap(t.id);
                }
            }
            Some(l) => match tap.as_ref() {
                Some(t) => crate::logtap::set_level(t.id, l.to_level_filter()),
                None => {
                    let (id, rx, dropped) = crate::logtap::tap(l.to_level_filter(), s.capacity);
                    *tap = Some(LogTap { id, rx, dropped });
                }
            },
        }
        Status::SUCCESS
    })
}

unsafe extern "C" fn svc_event_next(
    module: ModuleHandle,
    sub: u64,
    timeout_ms: u32,
    format: u32,
    visitor: *mut EventVisitor,
) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        let Some(s) = module_sub(&core, &m, sub) else {
            return Status::NOTFOUND;
        };
        let Some(v) = visitor.as_ref() else {
            return Status::FALSE;
        };
        let log_rx = s.log.lock().as_ref().map(|t| t.rx.clone());
        let timeout = Duration::from_millis(timeout_ms as u64);
        enum Got {
            Event(Arc<crate::event::Fired>),
            Log(Arc<crate::logtap::LogRecord>),
        }
        let got = match &log_rx {
            None => s.events.recv_timeout(timeout).ok().map(Got::Event),
            Some(lrx) => {
                crossbeam_channel::select! {
                    recv(s.events) -> e => e.ok().map(Got::Event),
                    recv(lrx) -> l => l.ok().map(Got::Log),
                    default(timeout) => None,
                }
            }
        };
        match got {
            None => Status::TIMEOUT,
            Some(Got::Event(e)) => {
                (v.begin)(v.ctx, ITEM_EVENT);
                let routing_only = format & hotswitch_plugin_api::EVENT_FLAG_ROUTING_HEADERS != 0;
                if routing_only {
                    for (k, val) in e.routing_headers() {
                        (v.header)(v.ctx, RStr::new(k), RStr::new(val));
                    }
                } else {
                    for (k, val) in &e.headers {
                        (v.header)(v.ctx, RStr::new(k), RStr::new(val));
                    }
                }
                let text = match format & 0xff {
                    EVENT_FORMAT_JSON => e.json(),
                    EVENT_FORMAT_XML => e.xml(),
                    _ => e.plain(),
                };
                (v.text)(v.ctx, RStr::new(text));
                crate::event::release(e);
                Status::SUCCESS
            }
            Some(Got::Log(r)) => {
                (v.begin)(v.ctx, ITEM_LOG);
                let line = r.line.to_string();
                let level = r.fs_level().to_string();
                for (k, val) in [
                    ("Log-Level", level.as_str()),
                    ("Text-Channel", "3"),
                    ("Log-File", r.file.as_str()),
                    ("Log-Func", r.target.as_str()),
                    ("Log-Line", line.as_str()),
                    ("User-Data", ""),
                ] {
                    (v.header)(v.ctx, RStr::new(k), RStr::new(val));
                }
                (v.text)(v.ctx, RStr::new(&r.formatted()));
                Status::SUCCESS
            }
        }
    })
}

unsafe extern "C" fn svc_event_dropped(module: ModuleHandle, sub: u64) -> u64 {
    shield(0, || {
        let Some(m) = module_of(module) else { return 0 };
        let Some(core) = m.core() else { return 0 };
        let Some(s) = module_sub(&core, &m, sub) else {
            return 0;
        };
        let logs = s
            .log
            .lock()
            .as_ref()
            .map(|t| t.dropped.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0);
        s.dropped.load(std::sync::atomic::Ordering::Relaxed) + logs
    })
}

unsafe extern "C" fn svc_event_unsubscribe(module: ModuleHandle, sub: u64) -> Status {
    with_module(module, Status::GENERR, |m, core| {
        if module_sub(&core, &m, sub).is_none() {
            return Status::NOTFOUND;
        }
        let s = core.module_subs.remove(sub);
        if let Some(s) = s {
            core.bus.unsubscribe(s.bus_id);
        }
        Status::SUCCESS
    })
}

session_fn!(svc_session_queue_application(app: RStr, arg: RStr, loops: u32, app_uuid: RStr) -> Status, Status::GENERR, |s, _core| {
    if s.is_down() {
        return Status::FALSE;
    }
    let u = app_uuid.to_str();
    s.enqueue(Queued::Execute {
        app: app.to_str().into_owned(),
        arg: arg.to_str().into_owned(),
        loops: loops.max(1),
        app_uuid: (!u.is_empty()).then(|| u.into_owned()),
    });
    Status::SUCCESS
});
session_fn!(svc_session_channel_data(visitor: *mut EventVisitor) -> Status, Status::GENERR, |s, core| {
    let Some(v) = visitor.as_ref() else { return Status::FALSE };
    let mut e = core.bus.create(EventType::CHANNEL_DATA, None, origin!("session_channel_data"));
    {
        let ch = s.ch();
        s.add_channel_data(&ch, &mut e, true);
    }
    (v.begin)(v.ctx, ITEM_EVENT);
    for (k, val) in &e.headers {
        (v.header)(v.ctx, RStr::new(k), RStr::new(val));
    }
    (v.text)(v.ctx, RStr::new(&e.to_plain()));
    Status::SUCCESS
});

// ---- media and DTMF ----

session_fn!(svc_channel_queue_dtmf(dtmf: *const Dtmf) -> Status, Status::GENERR, |s, core| {
    let Some(d) = dtmf.as_ref() else { return Status::FALSE };
    s.queue_dtmf(&core, *d);
    Status::SUCCESS
});
session_fn!(svc_session_read_dtmf(timeout_ms: u32, out: *mut Dtmf) -> Status, Status::GENERR, |s, _core| {
    match crate::media_io::read_dtmf(&s, Duration::from_millis(timeout_ms as u64)) {
        Ok(Some(c)) => {
            if let Some(o) = out.as_mut() {
                *o = Dtmf { digit: c as u32, duration_ms: 0, source: 0 };
            }
            Status::SUCCESS
        }
        Ok(None) => Status::TIMEOUT,
        Err(crate::media_io::CallEnded) => Status::BREAK,
    }
});
session_fn!(svc_session_flush_dtmf() -> Status, Status::GENERR, |s, _core| {
    s.flush_dtmf();
    Status::SUCCESS
});
session_fn!(svc_session_expand(text: RStr, out: *mut OutStream) -> Status, Status::GENERR, |s, core| {
    let v = crate::expand::expand(&text.to_str(), &crate::core::ChannelVars { core: &core, session: &s });
    OutStream::write_str(out, &v);
    Status::SUCCESS
});
session_fn!(svc_session_bridge(dialstring: RStr, cause: *mut CallCause) -> Status, Status::GENERR, |s, core| {
    let (st, c) = crate::bridge::bridge_dialstring(&core, &s, &dialstring.to_str());
    if let Some(o) = cause.as_mut() {
        *o = c;
    }
    st
});

fn outcome_status(o: crate::media_io::Outcome, digit: *mut u32) -> Status {
    use crate::media_io::Outcome;
    match o {
        Outcome::Done => Status::SUCCESS,
        Outcome::Digit(d) => {
            // SAFETY: the caller's out-parameter, valid for the call.
            if let Some(p) = unsafe { digit.as_mut() } {
                *p = d as u32;
            }
            Status::BREAK
        }
        Outcome::Interrupted => Status::FALSE,
        Outcome::NotFound(_) => Status::NOTFOUND,
    }
}

session_fn!(svc_session_play(path: RStr, terminators: RStr, flags: u32, digit: *mut u32) -> Status, Status::GENERR, |s, core| {
    let any = flags & hotswitch_plugin_api::PLAY_STOP_ON_ANY_DIGIT != 0;
    let o = crate::media_io::play(&core, &s, &path.to_str(), &terminators.to_str(), any);
    if any {
        if let crate::media_io::Outcome::Digit(d) = &o {
            // With "any digit" the digit stays for the reader.
            s.requeue_dtmf_front(*d);
        }
    }
    outcome_status(o, digit)
});
session_fn!(svc_session_record(path: RStr, limit_secs: u32, terminators: RStr, digit: *mut u32) -> Status, Status::GENERR, |s, core| {
    let o = crate::media_io::record(
        &core,
        &s,
        &path.to_str(),
        Duration::from_secs(limit_secs as u64),
        &terminators.to_str(),
    );
    outcome_status(o, digit)
});
session_fn!(svc_session_record_session(path: RStr, start: u32) -> Status, Status::GENERR, |s, core| {
    match crate::media_io::record_session(&core, &s, &path.to_str(), start != 0) {
        Ok(()) => Status::SUCCESS,
        Err(e) => {
            log::warn!("{}: record_session {}: {e}", s.uuid, path.to_str());
            Status::FALSE
        }
    }
});

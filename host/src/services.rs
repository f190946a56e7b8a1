//! The host services table handed to every module's `module_load`: the only
//! way module code reaches the host. Each function is `extern "C"`, takes the
//! module's handle first, copies what it keeps into host memory, and never
//! lets a host panic unwind into the module.

use crate::event::EventType;
use crate::interfaces::{ApiEntry, ApiImpl, AppEntry, ChatEntry, EndpointEntry};
use crate::modules::LoadedModule;
use crate::origin;
use hotswitch_plugin_api::{
    ApiInterface, ApplicationInterface, ChatInterface, ChatMessage, EndpointInterface, EventDesc,
    HostServices, InterfaceKind, LogLevel, ModuleHandle, OutStream, RStr, SessionRef, Status,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

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
};

/// The module behind a handle, as a new strong reference.
///
/// # Safety
/// `h` must be a handle the host gave out for a module that is still held
/// (the manager holds every module from before its load until after its
/// library is closed, and modules only call while loaded).
unsafe fn module_of(h: ModuleHandle) -> Option<Arc<LoadedModule>> {
    let p = h.ptr as *const LoadedModule;
    if p.is_null() {
        return None;
    }
    Arc::increment_strong_count(p);
    Some(Arc::from_raw(p))
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
                e.add_header(kv.key.to_str().into_owned(), kv.value.to_str().into_owned());
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
    shield(Status::GENERR, || {
        let Some(m) = module_of(module) else {
            return Status::GENERR;
        };
        let Some(core) = m.core() else {
            return Status::GENERR;
        };
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

//! What the host offers a module: one `#[repr(C)]` table of functions,
//! [`HostServices`], handed to `module_load` and valid until the module is
//! unloaded; plus the host-owned output stream and event description those
//! functions use.
//!
//! Every function takes the module's [`ModuleHandle`] first, so the host
//! knows who is calling (for logs, for ownership of what is registered).
//! Module authors use the safe wrappers in [`crate::module`] instead.

use crate::abi::RStr;
use crate::abi_struct;
use crate::interfaces::{ApiInterface, ApplicationInterface, ChatInterface, EndpointInterface};
use crate::types::{InterfaceKind, KeyValue, LogLevel, ModuleHandle, SessionRef, Status};
use core::ffi::c_void;

abi_struct! {
    /// A host-owned text sink: api output, configuration text. The module
    /// writes into it; the host owns the buffer, so nothing the module
    /// allocates outlives the call.
    pub struct OutStream {
        /// The host's buffer.
        pub ctx: *mut c_void,
        /// Appends `text` to the buffer.
        pub write: unsafe extern "C" fn(ctx: *mut c_void, text: RStr),
    }
}

abi_struct! {
    /// An event a module fires: the host adds the base headers (Event-Name,
    /// Core-UUID, dates, sequence, …) before `headers`.
    #[derive(Clone, Copy, Debug)]
    pub struct EventDesc {
        /// FreeSWITCH's event id (`0` CUSTOM, `34` MODULE_LOAD, …).
        pub event_id: u32,
        /// `Event-Subclass` for CUSTOM events, e.g. `sofia::register`.
        pub subclass: RStr,
        /// Headers after the base headers, in order.
        pub headers: *const KeyValue,
        /// How many `headers`.
        pub header_count: usize,
        /// The body, empty for none.
        pub body: RStr,
    }
}

abi_struct! {
    /// The host's services, one table for every module.
    pub struct HostServices {
        /// Writes a log record through the host's logger.
        pub log: unsafe extern "C" fn(
            module: ModuleHandle,
            level: LogLevel,
            target: RStr,
            message: RStr,
            file: RStr,
            line: u32,
        ),
        /// The most verbose level the host currently logs.
        pub log_level: unsafe extern "C" fn() -> LogLevel,
        /// Writes the XML of the `<configuration name="…">` section `name`
        /// (e.g. `skel.conf`) into `out`; `NOTFOUND` if there is none.
        pub config_section:
            unsafe extern "C" fn(module: ModuleHandle, name: RStr, out: *mut OutStream) -> Status,
        /// Fires an event on the host's bus.
        pub fire_event: unsafe extern "C" fn(module: ModuleHandle, event: *const EventDesc) -> Status,
        /// Registers an endpoint (copied by the host).
        pub register_endpoint:
            unsafe extern "C" fn(module: ModuleHandle, iface: *const EndpointInterface) -> Status,
        /// Registers an application (copied by the host).
        pub register_application:
            unsafe extern "C" fn(module: ModuleHandle, iface: *const ApplicationInterface) -> Status,
        /// Registers an api command (copied by the host).
        pub register_api:
            unsafe extern "C" fn(module: ModuleHandle, iface: *const ApiInterface) -> Status,
        /// Registers a chat protocol (copied by the host).
        pub register_chat:
            unsafe extern "C" fn(module: ModuleHandle, iface: *const ChatInterface) -> Status,
        /// Removes one of this module's interfaces.
        pub unregister_interface:
            unsafe extern "C" fn(module: ModuleHandle, kind: InterfaceKind, name: RStr) -> Status,
        /// Runs an api command (the host's or any module's), output to `out`.
        pub execute_api: unsafe extern "C" fn(
            module: ModuleHandle,
            command: RStr,
            args: RStr,
            session: SessionRef,
            out: *mut OutStream,
        ) -> Status,
        /// Non-zero while the module should keep running (its runtime and
        /// its own threads poll this to know when to stop).
        pub module_running: unsafe extern "C" fn(module: ModuleHandle) -> u32,
        /// Sends a text message through a chat protocol.
        pub send_chat: unsafe extern "C" fn(
            module: ModuleHandle,
            msg: *const crate::interfaces::ChatMessage,
        ) -> Status,
    }
}

impl OutStream {
    /// Writes `text` into the stream.
    ///
    /// # Safety
    /// `this` must be a live stream handed over by the host.
    pub unsafe fn write_str(this: *mut OutStream, text: &str) {
        if let Some(s) = this.as_ref() {
            (s.write)(s.ctx, RStr::new(text));
        }
    }
}

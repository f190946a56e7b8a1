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
use crate::interfaces::{
    ApiInterface, ApplicationInterface, CallerProfile, ChatInterface, CoreMessage, Dtmf,
    EndpointInterface, Frame, StateHandlers,
};
use crate::types::{
    CallCause, ChannelState, InterfaceKind, KeyValue, LogLevel, ModuleHandle, SessionRef, Status,
};
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

/// Frees a session's private data (the module's code): what
/// `session_set_private` is given with it.
pub type PrivateDropFn = unsafe extern "C" fn(data: *mut c_void) -> Status;

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

        // ---- sessions: what an endpoint or application does with a call ----

        /// Creates a session on this module's endpoint `endpoint` (state
        /// CS_NEW). `direction`: [`DIRECTION_INBOUND`] or
        /// [`DIRECTION_OUTBOUND`]. The caller holds one reference, released
        /// with `session_release`; the session runs once `session_start` is
        /// called (the core starts outbound legs it originates itself).
        pub session_request: unsafe extern "C" fn(
            module: ModuleHandle,
            endpoint: RStr,
            direction: u32,
            out: *mut SessionRef,
        ) -> Status,
        /// Finds a session by uuid and takes a reference to it.
        pub session_locate:
            unsafe extern "C" fn(module: ModuleHandle, uuid: RStr, out: *mut SessionRef) -> Status,
        /// Drops a reference taken by `session_request` or `session_locate`.
        pub session_release: unsafe extern "C" fn(session: SessionRef),
        /// Lets the session's state machine run (FreeSWITCH's thread launch).
        pub session_start: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Writes the session's uuid into `out`.
        pub session_uuid: unsafe extern "C" fn(session: SessionRef, out: *mut OutStream),
        /// Attaches the endpoint's private data (`tech_pvt`), once: the
        /// host keeps it with the session and, when the session itself is
        /// dropped (after `on_destroy`, once no hold is left), hands it to
        /// `drop`, the module's own function, on a thread joined before the
        /// module can unload. Only the module whose endpoint the session
        /// belongs to may set it; a second set is refused (`FALSE`).
        pub session_set_private: unsafe extern "C" fn(
            module: ModuleHandle,
            session: SessionRef,
            data: *mut c_void,
            drop: PrivateDropFn,
        ) -> Status,
        /// The endpoint's private data (null when unset, or when `module`
        /// is not the session's endpoint's module).
        pub session_get_private:
            unsafe extern "C" fn(module: ModuleHandle, session: SessionRef) -> *mut c_void,
        /// Queues an indication or message; the core delivers it on the
        /// session's own thread (to `receive_message`).
        pub session_queue_message:
            unsafe extern "C" fn(session: SessionRef, msg: *const CoreMessage) -> Status,
        /// Runs an application on the session now, on the calling thread
        /// (which must be the session's). `app_uuid` becomes the events'
        /// Application-UUID (empty: a new one).
        pub session_execute_application: unsafe extern "C" fn(
            session: SessionRef,
            app: RStr,
            arg: RStr,
            app_uuid: RStr,
        ) -> Status,
        /// Parks the session: it waits, without a thread, for a message,
        /// a transfer or a hangup.
        pub session_park: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Waits `ms` milliseconds while handling the session's messages;
        /// returns early with `BREAK` when the call ends or is interrupted.
        pub session_sleep: unsafe extern "C" fn(session: SessionRef, ms: u32) -> Status,
        /// Reads a frame from the session's endpoint into the caller's buffer.
        pub session_read_frame:
            unsafe extern "C" fn(session: SessionRef, frame: *mut Frame, timeout_ms: u32) -> Status,
        /// Writes a frame to the session's endpoint.
        pub session_write_frame:
            unsafe extern "C" fn(session: SessionRef, frame: *const Frame) -> Status,
        /// Sends a DTMF digit through the session's endpoint.
        pub session_send_dtmf: unsafe extern "C" fn(session: SessionRef, dtmf: *const Dtmf) -> Status,
        /// Sends the session to `destination` in `dialplan`/`context` (empty:
        /// keep the current ones), as `transfer` does.
        pub session_transfer: unsafe extern "C" fn(
            session: SessionRef,
            destination: RStr,
            dialplan: RStr,
            context: RStr,
        ) -> Status,
        /// Fires `event` with the session's channel data headers added.
        pub session_fire_event:
            unsafe extern "C" fn(session: SessionRef, event: *const EventDesc) -> Status,

        /// Sets the channel's name (`loopback/1000-a`).
        pub channel_set_name: unsafe extern "C" fn(session: SessionRef, name: RStr) -> Status,
        /// Replaces the caller profile (copied).
        pub channel_set_caller_profile:
            unsafe extern "C" fn(session: SessionRef, profile: *const CallerProfile) -> Status,
        /// A channel variable, or a caller-profile field by its variable
        /// name (`destination_number`, `caller_id_number`, …), into `out`;
        /// `NOTFOUND` when unset.
        pub channel_get_variable:
            unsafe extern "C" fn(session: SessionRef, name: RStr, out: *mut OutStream) -> Status,
        /// Sets a channel variable; an empty value unsets it.
        pub channel_set_variable:
            unsafe extern "C" fn(session: SessionRef, name: RStr, value: RStr) -> Status,
        /// Moves the channel to `state` (by FreeSWITCH's transition rules).
        pub channel_set_state:
            unsafe extern "C" fn(session: SessionRef, state: ChannelState) -> Status,
        /// The channel's current state.
        pub channel_get_state: unsafe extern "C" fn(session: SessionRef) -> ChannelState,
        /// 1 for an inbound channel, 2 for an outbound one.
        pub channel_direction: unsafe extern "C" fn(session: SessionRef) -> u32,
        /// Hangs the call up with `cause` (once; later calls do nothing).
        pub channel_hangup: unsafe extern "C" fn(session: SessionRef, cause: CallCause) -> Status,
        /// 1 once the channel is hanging up or gone.
        pub channel_is_down: unsafe extern "C" fn(session: SessionRef) -> u32,
        /// Answers: indicates ANSWER to the endpoint, then marks it answered.
        pub channel_answer: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Pre-answers (early media): indicates PROGRESS, then marks it.
        pub channel_pre_answer: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Signals ringing: indicates RINGING, then marks it.
        pub channel_ring_ready: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Records that the far end answered (what an endpoint calls).
        pub channel_mark_answered: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Records early media from the far end.
        pub channel_mark_pre_answered: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Records that the far end rings.
        pub channel_mark_ring_ready: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Adds state handlers run for this channel after the endpoint's.
        pub channel_add_state_handler: unsafe extern "C" fn(
            module: ModuleHandle,
            session: SessionRef,
            handlers: *const StateHandlers,
            user_data: *mut c_void,
        ) -> Status,
        /// Adds state handlers run for every channel; returns an id for
        /// `remove_state_handler` (0 on failure). Removed at unload anyway.
        pub add_state_handler: unsafe extern "C" fn(
            module: ModuleHandle,
            handlers: *const StateHandlers,
            user_data: *mut c_void,
        ) -> u64,
        /// Removes global state handlers added by this module.
        pub remove_state_handler: unsafe extern "C" fn(module: ModuleHandle, id: u64) -> Status,

        // ---- event and log subscriptions (what an event socket needs) ----

        /// Opens a subscription with a queue of `capacity` items; it
        /// receives nothing until `event_set_interest` / `log_set_level`.
        /// Returns its id, 0 on failure. A subscriber that does not keep up
        /// loses items (counted), it never slows the switch.
        pub event_subscribe: unsafe extern "C" fn(module: ModuleHandle, capacity: u32) -> u64,
        /// Sets the events a subscription receives: event names separated by
        /// spaces, `ALL`, and after `CUSTOM` the subclasses wanted (none:
        /// every CUSTOM event). An empty spec receives no events.
        pub event_set_interest:
            unsafe extern "C" fn(module: ModuleHandle, sub: u64, spec: RStr) -> Status,
        /// Sets the least severe log level a subscription receives
        /// (`LogLevel::OFF`: no log records).
        pub log_set_level:
            unsafe extern "C" fn(module: ModuleHandle, sub: u64, level: LogLevel) -> Status,
        /// Waits up to `timeout_ms` for the next event or log record and
        /// hands it to `visitor`; events serialised in `format`
        /// ([`EVENT_FORMAT_PLAIN`], `_JSON`, `_XML`). `TIMEOUT` when none
        /// came, `NOTFOUND` for an unknown subscription.
        pub event_next: unsafe extern "C" fn(
            module: ModuleHandle,
            sub: u64,
            timeout_ms: u32,
            format: u32,
            visitor: *mut EventVisitor,
        ) -> Status,
        /// How many items this subscription lost to a full queue.
        pub event_dropped: unsafe extern "C" fn(module: ModuleHandle, sub: u64) -> u64,
        /// Closes a subscription.
        pub event_unsubscribe: unsafe extern "C" fn(module: ModuleHandle, sub: u64) -> Status,
        /// Queues an application to run on the session at its next check
        /// point (parked, between applications, sleeping), `loops` times.
        pub session_queue_application: unsafe extern "C" fn(
            session: SessionRef,
            app: RStr,
            arg: RStr,
            loops: u32,
            app_uuid: RStr,
        ) -> Status,
        /// Hands `visitor` the session's channel data as FreeSWITCH's
        /// CHANNEL_DATA event carries it: base headers, `Channel-*`,
        /// `Caller-*` and every `variable_*`, then the plain text.
        pub session_channel_data:
            unsafe extern "C" fn(session: SessionRef, visitor: *mut EventVisitor) -> Status,

        // ---- media and DTMF ----

        /// An endpoint hands the core a digit received from the far end
        /// (fires DTMF; applications read it with `session_read_dtmf`).
        pub channel_queue_dtmf:
            unsafe extern "C" fn(session: SessionRef, dtmf: *const Dtmf) -> Status,
        /// Waits up to `timeout_ms` for a received digit: `SUCCESS` (written
        /// to `out`), `TIMEOUT`, or `BREAK` when the call ends.
        pub session_read_dtmf:
            unsafe extern "C" fn(session: SessionRef, timeout_ms: u32, out: *mut Dtmf) -> Status,
        /// Drops received digits not yet read.
        pub session_flush_dtmf: unsafe extern "C" fn(session: SessionRef) -> Status,
        /// Expands `${var}`, `$${global}` and `${api args}` for the session.
        pub session_expand:
            unsafe extern "C" fn(session: SessionRef, text: RStr, out: *mut OutStream) -> Status,
        /// Originates `dialstring` from the session and bridges the two
        /// until either side ends it (FreeSWITCH's bridge). `SUCCESS`: the
        /// bridge happened (`cause`: how the other side ended, or NONE);
        /// `FALSE`: it did not (`cause`: why).
        pub session_bridge: unsafe extern "C" fn(
            session: SessionRef,
            dialstring: RStr,
            cause: *mut CallCause,
        ) -> Status,
        /// Plays a file, `tone_stream://…` or `silence_stream://…` to the
        /// session in real time. A digit in `terminators` (any digit when
        /// `flags` has [`PLAY_STOP_ON_ANY_DIGIT`]) stops it: `BREAK` with
        /// the digit in `digit` (left queued with the flag). `SUCCESS` when
        /// played out, `FALSE` when the call ended, `NOTFOUND` for a missing
        /// file or a bad tone script.
        pub session_play: unsafe extern "C" fn(
            session: SessionRef,
            path: RStr,
            terminators: RStr,
            flags: u32,
            digit: *mut u32,
        ) -> Status,
        /// Records what the session hears into a WAV file for up to
        /// `limit_secs` (0: no limit) or until a terminator digit.
        pub session_record: unsafe extern "C" fn(
            session: SessionRef,
            path: RStr,
            limit_secs: u32,
            terminators: RStr,
            digit: *mut u32,
        ) -> Status,
        /// Starts (`start` 1) or stops (0) recording both directions of the
        /// session into a WAV file in the background.
        pub session_record_session:
            unsafe extern "C" fn(session: SessionRef, path: RStr, start: u32) -> Status,
        /// The far end put the call on hold (`on` 1) or took it off (0):
        /// the core marks the channel (CHANNEL_HOLD / CHANNEL_UNHOLD, call
        /// state HELD), and a bridged party hears `temp_hold_music` /
        /// `hold_music` meanwhile (FreeSWITCH's `switch_channel_mark_hold`).
        pub channel_mark_hold: unsafe extern "C" fn(session: SessionRef, on: u32) -> Status,
        /// 1 while the core takes new sessions of `direction`
        /// ([`DIRECTION_INBOUND`] or [`DIRECTION_OUTBOUND`]), 0 while that
        /// direction is paused (`fsctl pause`), a shutdown drains the calls
        /// (`fsctl shutdown elegant|asap`) or the switch stops: FreeSWITCH's
        /// `switch_core_ready_inbound` / `_outbound`. (ABI 6.1)
        [since 1]
        pub core_ready: unsafe extern "C" fn(module: ModuleHandle, direction: u32) -> u32,
        /// During `load` only: writes the predecessor's handover into
        /// `sink` (version, data, then every fd, which the module owns from
        /// then on). `NOTFOUND` on a fresh load or outside `load`. (ABI 6.2)
        [since 2]
        pub handover_take: unsafe extern "C" fn(
            module: ModuleHandle,
            sink: *const crate::handover::HandoverSink,
        ) -> Status,
        /// Hands `delivery` to the newest version of this module older than
        /// the caller (it may forward further): 1 when one took it, 0 when
        /// none did. The host calls the older version's `deliver` on a host
        /// thread, never on the caller's. (ABI 6.2)
        [since 2]
        pub handover_forward: unsafe extern "C" fn(
            module: ModuleHandle,
            delivery: *const crate::handover::DeliveryDesc,
        ) -> u32,
        /// Sends the session's audio back to it until the call ends or
        /// leaves its state (a transfer, a park): FreeSWITCH's
        /// `switch_ivr_session_echo`. The core moves the frames; where the
        /// endpoint reads without blocking (`MODULE_FLAG_NOBLOCK_READ`) the
        /// shared media loop does, and the caller's thread sleeps. `SUCCESS`
        /// when the echo ended, `GENERR` when a read failed. (ABI 6.3)
        [since 3]
        pub session_echo: unsafe extern "C" fn(session: SessionRef) -> Status,
    }
}

/// `session_play` flag: any digit stops the playback (and stays queued).
pub const PLAY_STOP_ON_ANY_DIGIT: u32 = 1;

/// `event_next` flag (or-ed into the format): hand over only the headers
/// that route an event (Event-Name, Event-Subclass, Unique-ID, Channel-Name,
/// Job-UUID, Job-Owner-UUID) instead of all of them — for a subscriber
/// without header filters, the copying is most of the cost.
pub const EVENT_FLAG_ROUTING_HEADERS: u32 = 0x100;

/// `event_next` format: FreeSWITCH's plain text form.
pub const EVENT_FORMAT_PLAIN: u32 = 0;
/// `event_next` format: JSON.
pub const EVENT_FORMAT_JSON: u32 = 1;
/// `event_next` format: XML.
pub const EVENT_FORMAT_XML: u32 = 2;
/// `EventVisitor::begin` kind: an event.
pub const ITEM_EVENT: u32 = 0;
/// `EventVisitor::begin` kind: a log record (headers Log-Level, Log-File,
/// Log-Func, Log-Line, User-Data; text: the formatted line).
pub const ITEM_LOG: u32 = 1;

abi_struct! {
    /// How `event_next` hands an item over: `begin`, then every header in
    /// order, then the serialised text. All views last only for the call.
    pub struct EventVisitor {
        /// The module's own state.
        pub ctx: *mut c_void,
        /// A new item of `kind` ([`ITEM_EVENT`] or [`ITEM_LOG`]).
        pub begin: unsafe extern "C" fn(ctx: *mut c_void, kind: u32),
        /// One header (values unencoded).
        pub header: unsafe extern "C" fn(ctx: *mut c_void, name: RStr, value: RStr),
        /// The item's serialised text.
        pub text: unsafe extern "C" fn(ctx: *mut c_void, text: RStr),
    }
}

/// `session_request` direction: a call coming into the switch.
pub const DIRECTION_INBOUND: u32 = 1;
/// `session_request` direction: a call the switch places.
pub const DIRECTION_OUTBOUND: u32 = 2;

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

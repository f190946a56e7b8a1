//! The interfaces a module registers at load: endpoints (with their
//! `io_routines` and `state_handler` tables), dialplan applications, api
//! commands and chat senders, and the data they exchange with the core.
//!
//! They follow FreeSWITCH's shapes, member for member, so a FreeSWITCH
//! module author finds what they know. Everything here is `#[repr(C)]`;
//! every callback receives the `user_data` pointer the module registered,
//! and the host never frees it: it belongs to the module.

use crate::abi::RStr;
use crate::abi_struct;
use crate::host::{EventDesc, OutStream};
use crate::types::{CallCause, KeyValue, KillSignal, MessageId, SessionRef, Status};
use core::ffi::c_void;
use core::sync::atomic::AtomicU32;

abi_struct! {
    /// A caller profile: who calls whom, and where the call routes.
    /// Empty fields are `RStr::EMPTY`.
    #[derive(Clone, Copy, Debug)]
    pub struct CallerProfile {
        pub username: RStr,
        pub dialplan: RStr,
        pub caller_id_name: RStr,
        pub caller_id_number: RStr,
        pub orig_caller_id_name: RStr,
        pub orig_caller_id_number: RStr,
        pub callee_id_name: RStr,
        pub callee_id_number: RStr,
        pub network_addr: RStr,
        pub ani: RStr,
        pub aniii: RStr,
        pub rdnis: RStr,
        pub destination_number: RStr,
        pub source: RStr,
        pub context: RStr,
        pub chan_name: RStr,
    }
}

abi_struct! {
    /// A media frame. For `read_frame` the host lends a buffer (`data`,
    /// `buflen`) that the endpoint fills, setting `datalen` and the other
    /// fields; for `write_frame` the frame is read-only.
    #[derive(Debug)]
    pub struct Frame {
        /// Codec name as FreeSWITCH spells it: `L16`, `PCMU`, `PCMA`.
        pub codec: RStr,
        pub rate: u32,
        pub channels: u32,
        /// Samples per channel in this frame.
        pub samples: u32,
        pub timestamp: u32,
        pub seq: u32,
        pub ssrc: u32,
        pub payload_type: u32,
        /// `FRAME_FLAG_*` bits.
        pub flags: u32,
        pub data: *mut u8,
        pub datalen: u32,
        pub buflen: u32,
    }
}

impl Frame {
    /// Copies 8 kHz mono audio in `codec` (`L16`, `PCMU` or `PCMA`) into
    /// the buffer the host lent, as much as fits, and describes it; returns
    /// the bytes copied. What every endpoint's `read_frame` ends with.
    ///
    /// # Safety
    /// `data` must point to `buflen` writable bytes (true of the frame the
    /// host passes to `read_frame`).
    pub unsafe fn fill(&mut self, bytes: &[u8], codec: &'static str) -> usize {
        if self.data.is_null() {
            return 0;
        }
        let n = bytes.len().min(self.buflen as usize);
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data, n);
        self.datalen = n as u32;
        self.samples = if codec == "L16" { n / 2 } else { n } as u32;
        self.rate = 8000;
        self.channels = 1;
        self.codec = RStr::from_static(codec);
        n
    }
}

/// The frame carries comfort noise / no audio.
pub const FRAME_FLAG_CNG: u32 = 1;
/// The frame marks the start of a talk spurt (RTP marker bit).
pub const FRAME_FLAG_MARKER: u32 = 2;

abi_struct! {
    /// A DTMF digit, carried beside the audio (RFC 2833/4733 style).
    #[derive(Clone, Copy, Debug)]
    pub struct Dtmf {
        /// The digit as a Unicode scalar: `0`-`9`, `*`, `#`, `A`-`D`.
        pub digit: u32,
        pub duration_ms: u32,
        /// 0 unknown, 1 inband audio, 2 RTP event, 3 signalling (INFO), 4 API.
        pub source: u32,
    }
}

abi_struct! {
    /// An indication or message for a session (`receive_message`).
    #[derive(Clone, Copy, Debug)]
    pub struct CoreMessage {
        pub id: MessageId,
        /// Who sent it (a module or core function name), for logs.
        pub from: RStr,
        pub string_arg: RStr,
        pub numeric_arg: i64,
        /// Extra arguments (e.g. the headers of a MESSAGE).
        pub args: *const KeyValue,
        pub arg_count: usize,
    }
}

abi_struct! {
    /// A text message (SIP MESSAGE, SMS, verto chat).
    #[derive(Clone, Copy, Debug)]
    pub struct ChatMessage {
        /// The chat protocol (`sip`, `gsmopen`, `verto`).
        pub proto: RStr,
        pub from: RStr,
        pub to: RStr,
        pub subject: RStr,
        pub body: RStr,
        /// Routing hint, e.g. the interface or profile to send through.
        pub hint: RStr,
        pub headers: *const KeyValue,
        pub header_count: usize,
    }
}

abi_struct! {
    /// What the core asks of an endpoint's `outgoing_channel`: the data
    /// after `tech/` in the dial string, the originating session if any,
    /// the caller profile to clone, the leg's variables and `SOF_*` flags.
    #[derive(Clone, Copy, Debug)]
    pub struct OutgoingRequest {
        pub originator: SessionRef,
        /// Everything after the first `/` of the dial string (`1000@host`,
        /// `internal/1000`, `1/a/5551234`).
        pub dial_data: RStr,
        pub profile: *const CallerProfile,
        pub vars: *const KeyValue,
        pub var_count: usize,
        /// `SOF_*` bits.
        pub flags: u32,
        /// Set to non-zero by the core when the originate is cancelled.
        pub cancel: *const AtomicU32,
    }
}

/// `SOF_*` originate flags (FreeSWITCH's numbers).
pub mod sof {
    /// Do not block while setting up.
    pub const NOBLOCK: u32 = 1;
    /// Part of a forked (simultaneous) dial.
    pub const FORKED_DIAL: u32 = 2;
    /// Ignore `effective_caller_id_*`-style ANI.
    pub const NO_EFFECTIVE_ANI: u32 = 4;
    /// Ignore the effective ANI II.
    pub const NO_EFFECTIVE_ANIII: u32 = 8;
    /// Ignore `effective_caller_id_number`.
    pub const NO_EFFECTIVE_CID_NUM: u32 = 16;
    /// Ignore `effective_caller_id_name`.
    pub const NO_EFFECTIVE_CID_NAME: u32 = 32;
    /// Skip session limits.
    pub const NO_LIMITS: u32 = 64;
}

/// `outgoing_channel`: create an outbound session for `req`, write it to
/// `*new_session`, and return `CallCause::SUCCESS` or why not.
pub type OutgoingChannelFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    req: *const OutgoingRequest,
    new_session: *mut SessionRef,
) -> CallCause;
/// `read_frame` flag: return at once when no frame is ready (FreeSWITCH's
/// `SWITCH_IO_FLAG_NOBLOCK`), with `TIMEOUT`.
pub const READ_FLAG_NOBLOCK: u32 = 1;

/// `read_frame`: fill the host's frame buffer.
pub type ReadFrameFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    session: SessionRef,
    frame: *mut Frame,
    flags: u32,
) -> Status;
/// `write_frame`: send a frame towards the endpoint.
pub type WriteFrameFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    session: SessionRef,
    frame: *const Frame,
    flags: u32,
) -> Status;
/// `kill_channel`: interrupt or tear down the endpoint side of a session.
pub type KillChannelFn =
    unsafe extern "C" fn(user_data: *mut c_void, session: SessionRef, sig: KillSignal) -> Status;
/// `send_dtmf`: send a digit out of band.
pub type SendDtmfFn =
    unsafe extern "C" fn(user_data: *mut c_void, session: SessionRef, dtmf: *const Dtmf) -> Status;
/// `receive_message`: an indication for the session.
pub type ReceiveMessageFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    session: SessionRef,
    msg: *const CoreMessage,
) -> Status;
/// `receive_event`: an event queued to the session.
pub type ReceiveEventFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    session: SessionRef,
    event: *const EventDesc,
) -> Status;
/// A per-session callback with no other argument (`state_change`,
/// `state_run`, and every state handler).
pub type SessionFn = unsafe extern "C" fn(user_data: *mut c_void, session: SessionRef) -> Status;

abi_struct! {
    /// FreeSWITCH's `switch_io_routines`: how the core drives an endpoint.
    /// A `None` member means the endpoint does not do that.
    #[derive(Clone, Copy, Default)]
    pub struct IoRoutines {
        pub outgoing_channel: Option<OutgoingChannelFn>,
        pub read_frame: Option<ReadFrameFn>,
        pub write_frame: Option<WriteFrameFn>,
        pub kill_channel: Option<KillChannelFn>,
        pub send_dtmf: Option<SendDtmfFn>,
        pub receive_message: Option<ReceiveMessageFn>,
        pub receive_event: Option<ReceiveEventFn>,
        pub state_change: Option<SessionFn>,
        pub state_run: Option<SessionFn>,
    }
}

abi_struct! {
    /// FreeSWITCH's `switch_state_handler_table`: the endpoint's handler for
    /// each channel state, run before the core's standard handler. Returning
    /// anything but `SUCCESS` skips the remaining handlers for that state.
    #[derive(Clone, Copy, Default)]
    pub struct StateHandlers {
        pub on_init: Option<SessionFn>,
        pub on_routing: Option<SessionFn>,
        pub on_execute: Option<SessionFn>,
        pub on_hangup: Option<SessionFn>,
        pub on_exchange_media: Option<SessionFn>,
        pub on_soft_execute: Option<SessionFn>,
        pub on_consume_media: Option<SessionFn>,
        pub on_hibernate: Option<SessionFn>,
        pub on_reset: Option<SessionFn>,
        pub on_park: Option<SessionFn>,
        pub on_reporting: Option<SessionFn>,
        pub on_destroy: Option<SessionFn>,
    }
}

abi_struct! {
    /// An endpoint: `name` is the dial prefix (`sofia`, `loopback`,
    /// `freetdm`, `gsmopen`, `verto.rtc`).
    pub struct EndpointInterface {
        pub name: RStr,
        pub user_data: *mut c_void,
        pub io: IoRoutines,
        pub state: StateHandlers,
    }
}

/// An application's entry point: run on `session` with `data`.
pub type ApplicationFn =
    unsafe extern "C" fn(user_data: *mut c_void, session: SessionRef, data: RStr) -> Status;

/// Application flags (FreeSWITCH's `SAF_*`).
pub mod saf {
    /// Does not need media.
    pub const NOMEDIA: u32 = 1;
    /// May run inline during routing.
    pub const ROUTING_EXEC: u32 = 2;
    /// Taps media.
    pub const MEDIA_TAP: u32 = 4;
    /// May run after hangup.
    pub const ZOMBIE_EXEC: u32 = 8;
    /// Not on loopback channels.
    pub const NO_LOOPBACK: u32 = 16;
}

abi_struct! {
    /// A dialplan application (`answer`, `playback`, `bridge`, …).
    pub struct ApplicationInterface {
        pub name: RStr,
        pub description: RStr,
        pub syntax: RStr,
        /// `saf::*` bits.
        pub flags: u32,
        pub user_data: *mut c_void,
        pub func: ApplicationFn,
    }
}

/// An api command's entry point: `args` is everything after the command
/// name; `session` is set when a session runs the command; output goes to
/// `out`.
pub type ApiFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    args: RStr,
    session: SessionRef,
    out: *mut OutStream,
) -> Status;

abi_struct! {
    /// An api command (console, event socket `api`/`bgapi`, `${api args}`).
    pub struct ApiInterface {
        pub name: RStr,
        pub description: RStr,
        pub syntax: RStr,
        pub user_data: *mut c_void,
        pub func: ApiFn,
    }
}

/// A chat interface's send function.
pub type ChatSendFn =
    unsafe extern "C" fn(user_data: *mut c_void, msg: *const ChatMessage) -> Status;

#[cfg(not(feature = "test-skew-layout"))]
abi_struct! {
    /// A chat protocol: how to send a text message (SMS, SIP MESSAGE, verto).
    pub struct ChatInterface {
        /// The protocol name (`sip`, `gsmopen`, `verto`).
        pub name: RStr,
        pub user_data: *mut c_void,
        pub send: ChatSendFn,
    }
}

// The same type with one field more: only for the test module that checks
// the host refuses a layout it does not share.
#[cfg(feature = "test-skew-layout")]
abi_struct! {
    /// A chat protocol (deliberately skewed layout, for tests).
    pub struct ChatInterface {
        pub name: RStr,
        pub user_data: *mut c_void,
        pub send: ChatSendFn,
        pub skew: u64,
    }
}

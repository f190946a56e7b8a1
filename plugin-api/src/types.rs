//! Plain values that cross the boundary: status codes, log levels, call
//! causes, channel states, signals, message ids, and the opaque handles.
//!
//! Each "enum" is a transparent integer with named constants, so a value one
//! side does not know is just a number to the other. The numbers are
//! FreeSWITCH's wherever FreeSWITCH has one (its users' scripts know them).

use crate::abi::RStr;
use crate::{abi_consts, abi_struct};

abi_consts! {
    /// Result of a call across the boundary (FreeSWITCH's `switch_status_t`
    /// numbers, plus `PANIC`).
    ///
    /// ```
    /// use hotswitch_plugin_api::Status;
    /// assert_eq!(Status::SUCCESS.0, 0);
    /// assert_eq!(Status::from_name("notfound"), Some(Status::NOTFOUND));
    /// assert_eq!(format!("{:?}", Status::PANIC), "PANIC");
    /// ```
    pub struct Status(u32) {
        SUCCESS = 0,
        FALSE = 1,
        TIMEOUT = 2,
        RESTART = 3,
        INTR = 4,
        NOTIMPL = 5,
        MEMERR = 6,
        NOOP = 7,
        GENERR = 9,
        INUSE = 10,
        BREAK = 11,
        SOCKERR = 12,
        NOTFOUND = 14,
        UNLOAD = 15,
        NOUNLOAD = 16,
        IGNORE = 17,
        TOO_SMALL = 18,
        FOUND = 19,
        CONTINUE = 20,
        TERM = 21,
        /// The module panicked inside the call; the host marks it faulted.
        PANIC = 1000,
    }
}

impl Status {
    /// True for [`Status::SUCCESS`].
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

abi_consts! {
    /// A log record's level (the `log` crate's numbering).
    pub struct LogLevel(u32) {
        OFF = 0,
        ERROR = 1,
        WARN = 2,
        INFO = 3,
        DEBUG = 4,
        TRACE = 5,
    }
}

impl LogLevel {
    /// From a `log::Level`.
    pub fn from_log(l: log::Level) -> LogLevel {
        LogLevel(l as u32)
    }
    /// To a `log::Level`, if this is one.
    pub fn to_log(self) -> Option<log::Level> {
        match self.0 {
            1 => Some(log::Level::Error),
            2 => Some(log::Level::Warn),
            3 => Some(log::Level::Info),
            4 => Some(log::Level::Debug),
            5 => Some(log::Level::Trace),
            _ => None,
        }
    }
}

abi_consts! {
    /// The kinds of interface a module registers.
    pub struct InterfaceKind(u32) {
        ENDPOINT = 0,
        APPLICATION = 1,
        API = 2,
        CHAT = 3,
    }
}

impl InterfaceKind {
    /// FreeSWITCH's lower-case name, as `show interfaces` and `MODULE_LOAD`
    /// print it.
    pub fn as_str(self) -> &'static str {
        match self {
            InterfaceKind::ENDPOINT => "endpoint",
            InterfaceKind::APPLICATION => "application",
            InterfaceKind::API => "api",
            InterfaceKind::CHAT => "chat",
            _ => "generic",
        }
    }
}

abi_consts! {
    /// Why a call ended: FreeSWITCH's hangup causes with their Q.850 (or
    /// FreeSWITCH-private) numbers.
    ///
    /// ```
    /// use hotswitch_plugin_api::CallCause;
    /// assert_eq!(CallCause::USER_BUSY.0, 17);
    /// assert_eq!(CallCause::from_name("normal_clearing"), Some(CallCause::NORMAL_CLEARING));
    /// ```
    pub struct CallCause(u32) {
        NONE = 0,
        UNALLOCATED_NUMBER = 1,
        NO_ROUTE_TRANSIT_NET = 2,
        NO_ROUTE_DESTINATION = 3,
        CHANNEL_UNACCEPTABLE = 6,
        CALL_AWARDED_DELIVERED = 7,
        NORMAL_CLEARING = 16,
        USER_BUSY = 17,
        NO_USER_RESPONSE = 18,
        NO_ANSWER = 19,
        SUBSCRIBER_ABSENT = 20,
        CALL_REJECTED = 21,
        NUMBER_CHANGED = 22,
        REDIRECTION_TO_NEW_DESTINATION = 23,
        EXCHANGE_ROUTING_ERROR = 25,
        DESTINATION_OUT_OF_ORDER = 27,
        INVALID_NUMBER_FORMAT = 28,
        FACILITY_REJECTED = 29,
        RESPONSE_TO_STATUS_ENQUIRY = 30,
        NORMAL_UNSPECIFIED = 31,
        NORMAL_CIRCUIT_CONGESTION = 34,
        NETWORK_OUT_OF_ORDER = 38,
        NORMAL_TEMPORARY_FAILURE = 41,
        SWITCH_CONGESTION = 42,
        ACCESS_INFO_DISCARDED = 43,
        REQUESTED_CHAN_UNAVAIL = 44,
        PRE_EMPTED = 45,
        FACILITY_NOT_SUBSCRIBED = 50,
        OUTGOING_CALL_BARRED = 52,
        INCOMING_CALL_BARRED = 54,
        BEARERCAPABILITY_NOTAUTH = 57,
        BEARERCAPABILITY_NOTAVAIL = 58,
        SERVICE_UNAVAILABLE = 63,
        BEARERCAPABILITY_NOTIMPL = 65,
        CHAN_NOT_IMPLEMENTED = 66,
        FACILITY_NOT_IMPLEMENTED = 69,
        SERVICE_NOT_IMPLEMENTED = 79,
        INVALID_CALL_REFERENCE = 81,
        INCOMPATIBLE_DESTINATION = 88,
        INVALID_MSG_UNSPECIFIED = 95,
        MANDATORY_IE_MISSING = 96,
        MESSAGE_TYPE_NONEXIST = 97,
        WRONG_MESSAGE = 98,
        IE_NONEXIST = 99,
        INVALID_IE_CONTENTS = 100,
        WRONG_CALL_STATE = 101,
        RECOVERY_ON_TIMER_EXPIRE = 102,
        MANDATORY_IE_LENGTH_ERROR = 103,
        PROTOCOL_ERROR = 111,
        INTERWORKING = 127,
        SUCCESS = 142,
        ORIGINATOR_CANCEL = 487,
        CRASH = 700,
        SYSTEM_SHUTDOWN = 701,
        LOSE_RACE = 702,
        MANAGER_REQUEST = 703,
        BLIND_TRANSFER = 800,
        ATTENDED_TRANSFER = 801,
        ALLOTTED_TIMEOUT = 802,
        USER_CHALLENGE = 803,
        MEDIA_TIMEOUT = 804,
        PICKED_OFF = 805,
        USER_NOT_REGISTERED = 806,
        PROGRESS_TIMEOUT = 807,
        INVALID_GATEWAY = 808,
        GATEWAY_DOWN = 809,
        INVALID_URL = 810,
        INVALID_PROFILE = 811,
        NO_PICKUP = 812,
        SRTP_READ_ERROR = 813,
        BOWOUT = 814,
        BUSY_EVERYWHERE = 815,
        DECLINE = 816,
        DOES_NOT_EXIST_ANYWHERE = 817,
        NOT_ACCEPTABLE = 818,
        UNWANTED = 819,
        NO_IDENTITY = 820,
        BAD_IDENTITY_INFO = 821,
        UNSUPPORTED_CERTIFICATE = 822,
        INVALID_IDENTITY = 823,
        STALE_DATE = 824,
        REJECT_ALL = 825,
    }
}

abi_consts! {
    /// A channel's state (FreeSWITCH's `CS_*` numbers; events print them as
    /// `CS_<NAME>`).
    pub struct ChannelState(u32) {
        NEW = 0,
        INIT = 1,
        ROUTING = 2,
        SOFT_EXECUTE = 3,
        EXECUTE = 4,
        EXCHANGE_MEDIA = 5,
        PARK = 6,
        CONSUME_MEDIA = 7,
        HIBERNATE = 8,
        RESET = 9,
        HANGUP = 10,
        REPORTING = 11,
        DESTROY = 12,
        NONE = 13,
    }
}

abi_consts! {
    /// What `kill_channel` asks of an endpoint.
    pub struct KillSignal(u32) {
        NONE = 0,
        /// The channel is hanging up: stop everything.
        KILL = 1,
        /// Stop the current blocking read or wait (state change, indication).
        XFER = 2,
        BREAK = 3,
    }
}

abi_consts! {
    /// Indications and messages sent to a session (FreeSWITCH's
    /// `SWITCH_MESSAGE_INDICATE_*` numbering).
    pub struct MessageId(u32) {
        REDIRECT_AUDIO = 0,
        TRANSMIT_TEXT = 1,
        ANSWER = 2,
        ACKNOWLEDGE_CALL = 3,
        PROGRESS = 4,
        BRIDGE = 5,
        UNBRIDGE = 6,
        TRANSFER = 7,
        RINGING = 8,
        ALERTING = 9,
        MEDIA = 10,
        NOMEDIA = 12,
        HOLD = 14,
        UNHOLD = 15,
        REDIRECT = 16,
        RESPOND = 17,
        BROADCAST = 18,
        DEFLECT = 20,
        DISPLAY = 22,
        AUDIO_SYNC = 25,
        APPLICATION_EXEC = 32,
        APPLICATION_EXEC_COMPLETE = 33,
        SIGNAL_DATA = 40,
        MESSAGE = 41,
        INFO = 42,
        REFER_EVENT = 53,
        ANSWER_EVENT = 54,
        PROGRESS_EVENT = 55,
        RING_EVENT = 56,
        HEARTBEAT_EVENT = 58,
        INVALID = 61,
    }
}

abi_struct! {
    /// The host's handle for a loaded module, given to it at load and passed
    /// back on every host-service call: an id in a host table (slot and
    /// generation), checked on every call, never an address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ModuleHandle {
        pub id: u64,
    }
}

abi_struct! {
    /// The host's handle for a session (a call leg): an id in a host table
    /// (slot and generation) that the host checks on every call, so a
    /// forged or stale one gets an error status. Valid for the callback it
    /// is passed to; keeping a session longer takes a hold
    /// ([`OwnedSession`](crate::OwnedSession)). 0 means "no session".
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SessionRef {
        pub id: u64,
    }
}

impl SessionRef {
    /// No session.
    pub const NULL: SessionRef = SessionRef { id: 0 };
    /// True when this names no session.
    pub fn is_null(self) -> bool {
        self.id == 0
    }
}

abi_struct! {
    /// One header or variable: a name and a value.
    #[derive(Clone, Copy, Debug)]
    pub struct KeyValue {
        pub key: RStr,
        pub value: RStr,
    }
}

//! FreeSWITCH's event types by name and number (`switch_event_types_t`,
//! whose order is the wire's: an event's `Event-Name` is its name here, and
//! event-socket clients subscribe by these names). One table for the host,
//! the event socket, the CLI and every module that fires events:
//! `ctx.fire_event(EventId::CUSTOM.id(), "my::subclass", …)` rather than a
//! number.

macro_rules! event_ids {
    ($($name:ident),* $(,)?) => {
        /// An event type; its discriminant is FreeSWITCH's id.
        #[allow(non_camel_case_types, missing_docs)]
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventId {
            $($name),*
        }

        /// The event names, indexed by id (the last, `ALL`, is only a
        /// subscription's).
        pub const EVENT_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl EventId {
            /// Every event type, in id order.
            pub const EVERY: &'static [EventId] = &[$(EventId::$name),*];
        }
    };
}

#[rustfmt::skip]
event_ids! {
    CUSTOM, CLONE, CHANNEL_CREATE, CHANNEL_DESTROY,
    CHANNEL_STATE, CHANNEL_CALLSTATE, CHANNEL_ANSWER, CHANNEL_HANGUP,
    CHANNEL_HANGUP_COMPLETE, CHANNEL_EXECUTE, CHANNEL_EXECUTE_COMPLETE, CHANNEL_HOLD,
    CHANNEL_UNHOLD, CHANNEL_BRIDGE, CHANNEL_UNBRIDGE, CHANNEL_PROGRESS,
    CHANNEL_PROGRESS_MEDIA, CHANNEL_OUTGOING, CHANNEL_PARK, CHANNEL_UNPARK,
    CHANNEL_APPLICATION, CHANNEL_ORIGINATE, CHANNEL_UUID, API,
    LOG, INBOUND_CHAN, OUTBOUND_CHAN, STARTUP,
    SHUTDOWN, PUBLISH, UNPUBLISH, TALK,
    NOTALK, SESSION_CRASH, MODULE_LOAD, MODULE_UNLOAD,
    DTMF, MESSAGE, PRESENCE_IN, NOTIFY_IN,
    PRESENCE_OUT, PRESENCE_PROBE, MESSAGE_WAITING, MESSAGE_QUERY,
    ROSTER, CODEC, BACKGROUND_JOB, DETECTED_SPEECH,
    DETECTED_TONE, PRIVATE_COMMAND, HEARTBEAT, TRAP,
    ADD_SCHEDULE, DEL_SCHEDULE, EXE_SCHEDULE, RE_SCHEDULE,
    RELOADXML, NOTIFY, PHONE_FEATURE, PHONE_FEATURE_SUBSCRIBE,
    SEND_MESSAGE, RECV_MESSAGE, REQUEST_PARAMS, CHANNEL_DATA,
    GENERAL, COMMAND, SESSION_HEARTBEAT, CLIENT_DISCONNECTED,
    SERVER_DISCONNECTED, SEND_INFO, RECV_INFO, RECV_RTCP_MESSAGE,
    SEND_RTCP_MESSAGE, CALL_SECURE, NAT, RECORD_START,
    RECORD_STOP, PLAYBACK_START, PLAYBACK_STOP, CALL_UPDATE,
    FAILURE, SOCKET_DATA, MEDIA_BUG_START, MEDIA_BUG_STOP,
    CONFERENCE_DATA_QUERY, CONFERENCE_DATA, CALL_SETUP_REQ, CALL_SETUP_RESULT,
    CALL_DETAIL, DEVICE_STATE, TEXT, SHUTDOWN_REQUESTED,
    CERT_RELOAD, ALL,
}

impl EventId {
    /// FreeSWITCH's number, as `fire_event` and the wire take it.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The wire name (`CHANNEL_CREATE`).
    pub fn name(self) -> &'static str {
        EVENT_NAMES[self as usize]
    }

    /// By number, if it is one.
    pub fn from_id(id: u32) -> Option<EventId> {
        EventId::EVERY.get(id as usize).copied()
    }

    /// By name, case-insensitively (`channel_create`, `ALL`).
    pub fn from_name(name: &str) -> Option<EventId> {
        EVENT_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .and_then(|i| EventId::from_id(i as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_freeswitchs_numbers_and_names_read_both_ways() {
        // Spot checks against switch_types.h.
        assert_eq!(EventId::CUSTOM.id(), 0);
        assert_eq!(EventId::CHANNEL_CREATE.id(), 2);
        assert_eq!(EventId::MODULE_LOAD.id(), 34);
        assert_eq!(EventId::MESSAGE.id(), 37);
        assert_eq!(EventId::BACKGROUND_JOB.id(), 46);
        assert_eq!(EventId::HEARTBEAT.id(), 50);
        assert_eq!(EventId::SHUTDOWN_REQUESTED.id(), 91);
        assert_eq!(EventId::ALL.id(), 93);
        assert_eq!(EVENT_NAMES.len(), 94);
        for (i, e) in EventId::EVERY.iter().enumerate() {
            assert_eq!(e.id() as usize, i);
            assert_eq!(EventId::from_name(&e.name().to_lowercase()), Some(*e));
            assert_eq!(EventId::from_id(e.id()), Some(*e));
        }
        assert_eq!(EventId::from_id(94), None);
        assert_eq!(EventId::from_name("NO_SUCH"), None);
    }
}

//! The event bus: FreeSWITCH's event types and ids, the event itself (ordered
//! headers and an optional body), its plain wire form, and fan-out to
//! subscribers.
//!
//! Firing never blocks: every subscriber has a bounded queue, and an event
//! that does not fit is dropped for that subscriber and counted, so a slow
//! consumer can never hold up a call.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// FreeSWITCH's event names, indexed by id.
pub const EVENT_NAMES: &[&str] = &[
    "CUSTOM",
    "CLONE",
    "CHANNEL_CREATE",
    "CHANNEL_DESTROY",
    "CHANNEL_STATE",
    "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_APPLICATION",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "API",
    "LOG",
    "INBOUND_CHAN",
    "OUTBOUND_CHAN",
    "STARTUP",
    "SHUTDOWN",
    "PUBLISH",
    "UNPUBLISH",
    "TALK",
    "NOTALK",
    "SESSION_CRASH",
    "MODULE_LOAD",
    "MODULE_UNLOAD",
    "DTMF",
    "MESSAGE",
    "PRESENCE_IN",
    "NOTIFY_IN",
    "PRESENCE_OUT",
    "PRESENCE_PROBE",
    "MESSAGE_WAITING",
    "MESSAGE_QUERY",
    "ROSTER",
    "CODEC",
    "BACKGROUND_JOB",
    "DETECTED_SPEECH",
    "DETECTED_TONE",
    "PRIVATE_COMMAND",
    "HEARTBEAT",
    "TRAP",
    "ADD_SCHEDULE",
    "DEL_SCHEDULE",
    "EXE_SCHEDULE",
    "RE_SCHEDULE",
    "RELOADXML",
    "NOTIFY",
    "PHONE_FEATURE",
    "PHONE_FEATURE_SUBSCRIBE",
    "SEND_MESSAGE",
    "RECV_MESSAGE",
    "REQUEST_PARAMS",
    "CHANNEL_DATA",
    "GENERAL",
    "COMMAND",
    "SESSION_HEARTBEAT",
    "CLIENT_DISCONNECTED",
    "SERVER_DISCONNECTED",
    "SEND_INFO",
    "RECV_INFO",
    "RECV_RTCP_MESSAGE",
    "SEND_RTCP_MESSAGE",
    "CALL_SECURE",
    "NAT",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "CALL_UPDATE",
    "FAILURE",
    "SOCKET_DATA",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "CONFERENCE_DATA_QUERY",
    "CONFERENCE_DATA",
    "CALL_SETUP_REQ",
    "CALL_SETUP_RESULT",
    "CALL_DETAIL",
    "DEVICE_STATE",
    "TEXT",
    "SHUTDOWN_REQUESTED",
    "CERT_RELOAD",
    "ALL",
];

/// An event type: FreeSWITCH's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType(pub u32);

impl EventType {
    pub const CUSTOM: EventType = EventType(0);
    pub const STARTUP: EventType = EventType(27);
    pub const SHUTDOWN: EventType = EventType(28);
    pub const MODULE_LOAD: EventType = EventType(34);
    pub const MODULE_UNLOAD: EventType = EventType(35);
    pub const BACKGROUND_JOB: EventType = EventType(46);
    pub const CHANNEL_CREATE: EventType = EventType(2);
    pub const CHANNEL_DESTROY: EventType = EventType(3);
    pub const CHANNEL_STATE: EventType = EventType(4);
    pub const CHANNEL_CALLSTATE: EventType = EventType(5);
    pub const CHANNEL_ANSWER: EventType = EventType(6);
    pub const CHANNEL_HANGUP: EventType = EventType(7);
    pub const CHANNEL_HANGUP_COMPLETE: EventType = EventType(8);
    pub const CHANNEL_EXECUTE: EventType = EventType(9);
    pub const CHANNEL_EXECUTE_COMPLETE: EventType = EventType(10);
    pub const CHANNEL_BRIDGE: EventType = EventType(13);
    pub const CHANNEL_UNBRIDGE: EventType = EventType(14);
    pub const CHANNEL_PROGRESS: EventType = EventType(15);
    pub const CHANNEL_PROGRESS_MEDIA: EventType = EventType(16);
    pub const CHANNEL_OUTGOING: EventType = EventType(17);
    pub const CHANNEL_PARK: EventType = EventType(18);
    pub const CHANNEL_UNPARK: EventType = EventType(19);
    pub const CHANNEL_ORIGINATE: EventType = EventType(21);
    pub const HEARTBEAT: EventType = EventType(50);
    pub const DTMF: EventType = EventType(36);
    pub const CHANNEL_DATA: EventType = EventType(63);
    pub const RELOADXML: EventType = EventType(56);
    pub const PLAYBACK_START: EventType = EventType(77);
    pub const PLAYBACK_STOP: EventType = EventType(78);
    pub const RECORD_START: EventType = EventType(75);
    pub const RECORD_STOP: EventType = EventType(76);
    pub const ALL: EventType = EventType(93);

    /// The wire name (`MODULE_LOAD`).
    pub fn name(self) -> &'static str {
        EVENT_NAMES
            .get(self.0 as usize)
            .copied()
            .unwrap_or("INVALID")
    }

    /// By name, case-insensitively.
    pub fn from_name(s: &str) -> Option<EventType> {
        EVENT_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| EventType(i as u32))
    }

    /// By id, if it is one.
    pub fn from_id(id: u32) -> Option<EventType> {
        ((id as usize) < EVENT_NAMES.len()).then_some(EventType(id))
    }
}

/// An event: ordered headers (duplicates allowed) and an optional body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    pub subclass: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Event {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header; an empty value adds nothing (FreeSWITCH's rule).
    pub fn add_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.headers.push((name.into(), value));
        }
    }

    /// The plain wire form: `Name: urlenc(value)` lines, then
    /// `Content-Length` and the body, or a final blank line.
    pub fn to_plain(&self) -> String {
        hotswitch_plugin_api::wire::to_plain(&self.headers, self.body.as_deref())
    }
}

impl Event {
    /// The JSON wire form: a flat object of strings in header order; with a
    /// body, `Content-Length` and `_body`.
    pub fn to_json(&self) -> String {
        hotswitch_plugin_api::wire::to_json(&self.headers, self.body.as_deref())
    }

    /// The XML wire form: `<event><headers><Name>urlenc</Name>…</headers>`
    /// then, with a body, `<Content-Length>` and `<body>`.
    pub fn to_xml(&self) -> String {
        hotswitch_plugin_api::wire::to_xml(&self.headers, self.body.as_deref())
    }
}

pub use hotswitch_plugin_api::wire::url_encode_into;

/// An event as delivered to subscribers: its wire forms are made once, on
/// first use, and shared by every subscriber that asks for them.
#[derive(Debug)]
pub struct Fired {
    pub event: Event,
    plain: std::sync::OnceLock<String>,
    json: std::sync::OnceLock<String>,
    xml: std::sync::OnceLock<String>,
}

impl Fired {
    pub fn new(event: Event) -> Fired {
        Fired {
            event,
            plain: std::sync::OnceLock::new(),
            json: std::sync::OnceLock::new(),
            xml: std::sync::OnceLock::new(),
        }
    }
    pub fn plain(&self) -> &str {
        self.plain.get_or_init(|| self.event.to_plain())
    }
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.event.to_json())
    }
    pub fn xml(&self) -> &str {
        self.xml.get_or_init(|| self.event.to_xml())
    }
}

impl std::ops::Deref for Fired {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Where an event comes from, for the `Event-Calling-*` headers.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub file: &'static str,
    pub function: &'static str,
    pub line: u32,
}

/// The origin of the calling code.
#[macro_export]
macro_rules! origin {
    ($func:expr) => {
        $crate::event::Origin {
            file: file!(),
            function: $func,
            line: line!(),
        }
    };
}

/// Which events a subscriber wants.
#[derive(Clone, Debug, Default)]
pub struct Interest {
    pub all: bool,
    pub types: HashSet<u32>,
    /// CUSTOM subclasses; an empty set with CUSTOM in `types` means every one.
    pub subclasses: HashSet<String>,
}

impl Interest {
    /// Parses FreeSWITCH's event list: names separated by spaces, `ALL`,
    /// and after `CUSTOM` the subclasses wanted.
    pub fn parse(spec: &str) -> Result<Interest, String> {
        let mut i = Interest::default();
        let mut custom = false;
        for n in spec.split_whitespace() {
            if custom {
                i.subclasses.insert(n.to_string());
            } else if n.eq_ignore_ascii_case("ALL") {
                i.all = true;
            } else if let Some(t) = EventType::from_name(n) {
                i.types.insert(t.0);
                custom = t == EventType::CUSTOM;
            } else {
                return Err(format!("unknown event {n}"));
            }
        }
        Ok(i)
    }

    fn wants(&self, e: &Event) -> bool {
        if self.all {
            return true;
        }
        if !self.types.contains(&e.event_type.0) {
            return false;
        }
        if e.event_type == EventType::CUSTOM && !self.subclasses.is_empty() {
            return e
                .subclass
                .as_deref()
                .is_some_and(|s| self.subclasses.contains(s));
        }
        true
    }
}

struct Subscriber {
    id: u64,
    interest: Interest,
    tx: Sender<Arc<Fired>>,
    dropped: Arc<AtomicU64>,
}

/// A subscription: events arrive on `rx`; `dropped` counts those that did
/// not fit in its queue.
pub struct Subscription {
    pub id: u64,
    pub rx: Receiver<Arc<Fired>>,
    pub dropped: Arc<AtomicU64>,
}

/// Identity headers every event carries.
#[derive(Clone, Debug)]
pub struct Identity {
    pub core_uuid: String,
    pub hostname: String,
    pub switchname: String,
    pub ipv4: String,
    pub ipv6: String,
}

thread_local! {
    /// The date headers of the current second on this thread: formatting
    /// them for every event was a visible share of firing one.
    static DATES: std::cell::RefCell<(u64, String, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new(), String::new())) };
}

/// Event-Date-Local and Event-Date-GMT for a Unix second.
fn dates_for(secs: u64) -> (String, String) {
    DATES.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let utc = chrono::DateTime::<chrono::Utc>::from(
                UNIX_EPOCH + std::time::Duration::from_secs(secs),
            );
            let local = utc.with_timezone(&chrono::Local);
            *d = (
                secs,
                local.format("%Y-%m-%d %H:%M:%S").to_string(),
                utc.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            );
        }
        (d.1.clone(), d.2.clone())
    })
}

/// The bus.
pub struct EventBus {
    identity: Identity,
    seq: AtomicU64,
    next_sub: AtomicU64,
    subs: Mutex<Vec<Subscriber>>,
    fired: AtomicU64,
    /// One bit per event id some subscriber wants (bit 127: someone wants ALL),
    /// so that events nobody listens to are never built.
    wanted: [AtomicU64; 2],
}

impl EventBus {
    pub fn new(identity: Identity) -> EventBus {
        EventBus {
            identity,
            seq: AtomicU64::new(1),
            next_sub: AtomicU64::new(1),
            subs: Mutex::new(Vec::new()),
            fired: AtomicU64::new(0),
            wanted: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// True when some subscriber would receive an event of type `t`.
    pub fn wants(&self, t: EventType, _subclass: Option<&str>) -> bool {
        let hi = self.wanted[1].load(Ordering::Relaxed);
        if hi & (1 << 63) != 0 {
            return true;
        }
        let id = t.0 as usize;
        let word = self.wanted[id / 64].load(Ordering::Relaxed);
        id < 127 && word & (1 << (id % 64)) != 0
    }

    fn recompute_wanted(&self, subs: &[Subscriber]) {
        let mut bits = [0u64; 2];
        for s in subs {
            if s.interest.all {
                bits[1] |= 1 << 63;
            }
            for &t in &s.interest.types {
                let t = t as usize;
                if t < 127 {
                    bits[t / 64] |= 1 << (t % 64);
                }
            }
        }
        self.wanted[0].store(bits[0], Ordering::Relaxed);
        self.wanted[1].store(bits[1], Ordering::Relaxed);
    }

    /// A new event with the base headers in FreeSWITCH's order.
    pub fn create(&self, t: EventType, subclass: Option<&str>, origin: Origin) -> Event {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (date_local, date_gmt) = dates_for(now.as_secs());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = &self.identity;
        let mut headers = Vec::with_capacity(20);
        let mut push = |k: &str, v: String| headers.push((k.to_string(), v));
        push("Event-Name", t.name().to_string());
        push("Core-UUID", id.core_uuid.clone());
        push("FreeSWITCH-Hostname", id.hostname.clone());
        push("FreeSWITCH-Switchname", id.switchname.clone());
        push("FreeSWITCH-IPv4", id.ipv4.clone());
        push("FreeSWITCH-IPv6", id.ipv6.clone());
        push("Event-Date-Local", date_local);
        push("Event-Date-GMT", date_gmt);
        push("Event-Date-Timestamp", now.as_micros().to_string());
        push("Event-Calling-File", origin.file.to_string());
        push("Event-Calling-Function", origin.function.to_string());
        push("Event-Calling-Line-Number", origin.line.to_string());
        push("Event-Sequence", seq.to_string());
        if let Some(sc) = subclass {
            push("Event-Subclass", sc.to_string());
        }
        Event {
            event_type: t,
            subclass: subclass.map(str::to_string),
            headers,
            body: None,
        }
    }

    /// Delivers `e` to every interested subscriber without blocking.
    pub fn fire(&self, e: Event) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        let e = Arc::new(Fired::new(e));
        let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        for s in subs.iter().filter(|s| s.interest.wants(&e)) {
            match s.tx.try_send(e.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let n = s.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        log::warn!(
                            "event subscriber {} is not keeping up: {n} event(s) dropped",
                            s.id
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Subscribes with a queue of `capacity` events.
    pub fn subscribe(&self, interest: Interest, capacity: usize) -> Subscription {
        let (tx, rx) = bounded(capacity);
        let id = self.next_sub.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.push(Subscriber {
            id,
            interest,
            tx,
            dropped: dropped.clone(),
        });
        self.recompute_wanted(&subs);
        Subscription { id, rx, dropped }
    }

    /// Replaces what a subscription receives.
    pub fn set_interest(&self, id: u64, interest: Interest) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = subs.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        s.interest = interest;
        self.recompute_wanted(&subs);
        true
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, id: u64) {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.id != id);
        self.recompute_wanted(&subs);
    }

    /// How many events were fired since start.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_name_round_trips_through_its_id() {
        for (i, n) in EVENT_NAMES.iter().enumerate() {
            assert_eq!(EventType::from_name(n), Some(EventType(i as u32)));
            assert_eq!(EventType(i as u32).name(), *n);
        }
        assert_eq!(EventType::from_name("module_load"), Some(EventType(34)));
        assert_eq!(EventType::ALL.0, 93);
    }

    #[test]
    fn plain_values_are_url_encoded_and_percent_escapes_kept() {
        let mut s = String::new();
        url_encode_into("a b:c%41%zz\n\u{e9}", &mut s);
        assert_eq!(s, "a%20b%3Ac%41%25zz%0A%C3%A9");
    }

    #[test]
    fn plain_form_ends_with_a_blank_line_or_carries_the_body() {
        let mut e = Event {
            event_type: EventType::MODULE_LOAD,
            subclass: None,
            headers: vec![("A".into(), "x y".into())],
            body: None,
        };
        assert_eq!(e.to_plain(), "A: x%20y\n\n");
        e.body = Some("hello".into());
        assert_eq!(e.to_plain(), "A: x%20y\nContent-Length: 5\n\nhello");
    }

    #[test]
    fn json_and_xml_forms_keep_header_order_and_carry_the_body() {
        let e = Event {
            event_type: EventType::BACKGROUND_JOB,
            subclass: None,
            headers: vec![
                ("Event-Name".into(), "BACKGROUND_JOB".into()),
                ("Job-UUID".into(), "a b".into()),
            ],
            body: Some("+OK \"x\"\n".into()),
        };
        assert_eq!(
            e.to_json(),
            r#"{"Event-Name":"BACKGROUND_JOB","Job-UUID":"a b","Content-Length":"8","_body":"+OK \"x\"\n"}"#
        );
        let x = e.to_xml();
        assert!(x.starts_with("<event>\n  <headers>\n    <Event-Name>BACKGROUND_JOB</Event-Name>\n    <Job-UUID>a%20b</Job-UUID>"), "{x}");
        assert!(x.contains("<Content-Length>8</Content-Length>"), "{x}");
    }

    #[test]
    fn only_subscribed_types_are_wanted() {
        let bus = EventBus::new(Identity {
            core_uuid: "u".into(),
            hostname: "h".into(),
            switchname: "h".into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
        });
        assert!(!bus.wants(EventType::CHANNEL_CREATE, None));
        let mut i = Interest::default();
        i.types.insert(EventType::CHANNEL_CREATE.0);
        let sub = bus.subscribe(i, 4);
        assert!(bus.wants(EventType::CHANNEL_CREATE, None));
        assert!(!bus.wants(EventType::CHANNEL_ANSWER, None));
        let all = bus.subscribe(
            Interest {
                all: true,
                ..Default::default()
            },
            4,
        );
        assert!(bus.wants(EventType::CHANNEL_ANSWER, None));
        bus.unsubscribe(all.id);
        bus.unsubscribe(sub.id);
        assert!(!bus.wants(EventType::CHANNEL_CREATE, None));
    }

    #[test]
    fn a_full_subscriber_loses_events_without_blocking_the_firer() {
        let bus = EventBus::new(Identity {
            core_uuid: "u".into(),
            hostname: "h".into(),
            switchname: "h".into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
        });
        let sub = bus.subscribe(
            Interest {
                all: true,
                ..Default::default()
            },
            2,
        );
        for _ in 0..5 {
            bus.fire(bus.create(EventType::STARTUP, None, origin!("t")));
        }
        assert_eq!(sub.rx.len(), 2);
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 3);
    }
}

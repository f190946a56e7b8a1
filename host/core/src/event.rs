//! The event bus: FreeSWITCH's event types and ids, the event itself (ordered
//! headers and an optional body), its plain wire form, and fan-out to
//! subscribers.
//!
//! Firing never blocks: every subscriber has a bounded queue, and an event
//! that does not fit is dropped for that subscriber and counted, so a slow
//! consumer can never hold up a call.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hotswitch_plugin_api::sync::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use hotswitch_plugin_api::events::EVENT_NAMES;
use hotswitch_plugin_api::EventId;

/// An event type: FreeSWITCH's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType(pub u32);

impl EventType {
    pub const CUSTOM: EventType = EventType(EventId::CUSTOM.id());
    pub const STARTUP: EventType = EventType(EventId::STARTUP.id());
    pub const SHUTDOWN: EventType = EventType(EventId::SHUTDOWN.id());
    pub const SHUTDOWN_REQUESTED: EventType = EventType(EventId::SHUTDOWN_REQUESTED.id());
    pub const MODULE_LOAD: EventType = EventType(EventId::MODULE_LOAD.id());
    pub const MODULE_UNLOAD: EventType = EventType(EventId::MODULE_UNLOAD.id());
    pub const BACKGROUND_JOB: EventType = EventType(EventId::BACKGROUND_JOB.id());
    pub const CHANNEL_CREATE: EventType = EventType(EventId::CHANNEL_CREATE.id());
    pub const CHANNEL_DESTROY: EventType = EventType(EventId::CHANNEL_DESTROY.id());
    pub const CHANNEL_STATE: EventType = EventType(EventId::CHANNEL_STATE.id());
    pub const CHANNEL_CALLSTATE: EventType = EventType(EventId::CHANNEL_CALLSTATE.id());
    pub const CHANNEL_ANSWER: EventType = EventType(EventId::CHANNEL_ANSWER.id());
    pub const CHANNEL_HANGUP: EventType = EventType(EventId::CHANNEL_HANGUP.id());
    pub const CHANNEL_HANGUP_COMPLETE: EventType = EventType(EventId::CHANNEL_HANGUP_COMPLETE.id());
    pub const CHANNEL_EXECUTE: EventType = EventType(EventId::CHANNEL_EXECUTE.id());
    pub const CHANNEL_EXECUTE_COMPLETE: EventType =
        EventType(EventId::CHANNEL_EXECUTE_COMPLETE.id());
    pub const CHANNEL_HOLD: EventType = EventType(EventId::CHANNEL_HOLD.id());
    pub const CHANNEL_UNHOLD: EventType = EventType(EventId::CHANNEL_UNHOLD.id());
    pub const CHANNEL_BRIDGE: EventType = EventType(EventId::CHANNEL_BRIDGE.id());
    pub const CHANNEL_UNBRIDGE: EventType = EventType(EventId::CHANNEL_UNBRIDGE.id());
    pub const CHANNEL_PROGRESS: EventType = EventType(EventId::CHANNEL_PROGRESS.id());
    pub const CHANNEL_PROGRESS_MEDIA: EventType = EventType(EventId::CHANNEL_PROGRESS_MEDIA.id());
    pub const CHANNEL_OUTGOING: EventType = EventType(EventId::CHANNEL_OUTGOING.id());
    pub const CHANNEL_PARK: EventType = EventType(EventId::CHANNEL_PARK.id());
    pub const CHANNEL_UNPARK: EventType = EventType(EventId::CHANNEL_UNPARK.id());
    pub const CHANNEL_ORIGINATE: EventType = EventType(EventId::CHANNEL_ORIGINATE.id());
    pub const HEARTBEAT: EventType = EventType(EventId::HEARTBEAT.id());
    pub const DTMF: EventType = EventType(EventId::DTMF.id());
    pub const CHANNEL_DATA: EventType = EventType(EventId::CHANNEL_DATA.id());
    pub const RELOADXML: EventType = EventType(EventId::RELOADXML.id());
    pub const PLAYBACK_START: EventType = EventType(EventId::PLAYBACK_START.id());
    pub const PLAYBACK_STOP: EventType = EventType(EventId::PLAYBACK_STOP.id());
    pub const RECORD_START: EventType = EventType(EventId::RECORD_START.id());
    pub const RECORD_STOP: EventType = EventType(EventId::RECORD_STOP.id());
    pub const ALL: EventType = EventType(EventId::ALL.id());

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
    pub headers: Headers,
    pub body: Option<String>,
}

impl Event {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The CUSTOM subclass (`Event-Subclass`), if any.
    pub fn subclass(&self) -> Option<&str> {
        self.header("Event-Subclass")
    }

    /// Appends a header; an empty value adds nothing (FreeSWITCH's rule).
    pub fn add_header(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        if !value.is_empty() {
            self.headers.push(name.as_ref(), value);
        }
    }

    /// The plain wire form: `Name: urlenc(value)` lines, then
    /// `Content-Length` and the body, or a final blank line.
    pub fn to_plain(&self) -> String {
        let body = self.body.as_deref();
        // A little room for escapes.
        let room = self.headers.plain_len_hint() + 64 + body.map_or(0, |b| b.len() + 24);
        let mut out = reused_text(room);
        self.headers.write_plain(&mut out);
        match body {
            Some(b) => {
                out.push_str("Content-Length: ");
                push_decimal(&mut out, b.len() as u64);
                out.push_str("\n\n");
                out.push_str(b);
            }
            None => out.push('\n'),
        }
        out
    }

    /// The JSON wire form: a flat object of strings in header order; with a
    /// body, `Content-Length` and `_body`.
    pub fn to_json(&self) -> String {
        let h: Vec<(&str, &str)> = self.headers.iter().collect();
        hotswitch_plugin_api::wire::to_json(&h, self.body.as_deref())
    }

    /// The XML wire form: `<event><headers><Name>urlenc</Name>…</headers>`
    /// then, with a body, `<Content-Length>` and `<body>`.
    pub fn to_xml(&self) -> String {
        let h: Vec<(&str, &str)> = self.headers.iter().collect();
        hotswitch_plugin_api::wire::to_xml(&h, self.body.as_deref())
    }
}

pub use hotswitch_plugin_api::wire::url_encode_into;

mod headers;
use headers::{push_decimal, recycle_text, reused_text, Pool, POOL_SIZE};
pub use headers::{HeaderIter, Headers};

/// Whether a header routes an event (which subscriber, which session, which
/// job): what subscribers that need no other headers are given.
pub fn is_routing_header(name: &str) -> bool {
    ROUTING.contains(&name.as_bytes())
}

const ROUTING: [&[u8]; 6] = [
    b"Event-Name",
    b"Event-Subclass",
    b"Unique-ID",
    b"Channel-Name",
    b"Job-UUID",
    b"Job-Owner-UUID",
];

/// Where an event's routing headers are: up to eight positions, or `None`
/// (more than that: look through them all).
type RoutingAt = Option<([u32; 8], usize)>;

/// An event as delivered to subscribers: its wire forms are made once, on
/// first use, and shared by every subscriber that asks for them.
#[derive(Debug)]
pub struct Fired {
    pub event: Event,
    plain: std::sync::OnceLock<String>,
    json: std::sync::OnceLock<String>,
    xml: std::sync::OnceLock<String>,
    /// Where the routing headers are among the headers.
    routing: std::sync::OnceLock<RoutingAt>,
}

impl Fired {
    pub fn new(event: Event) -> Fired {
        Fired {
            event,
            plain: std::sync::OnceLock::new(),
            json: std::sync::OnceLock::new(),
            xml: std::sync::OnceLock::new(),
            routing: std::sync::OnceLock::new(),
        }
    }

    /// The routing headers (see [`is_routing_header`]) the event has, in
    /// order; found once for all subscribers.
    pub fn routing_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let (found, all) = match self.routing_at() {
            Some((at, n)) => (&at[..*n], None),
            None => (&[][..], Some(self.event.headers.iter())),
        };
        found
            .iter()
            .filter_map(|&i| self.event.headers.at(i as usize))
            .chain(
                all.into_iter()
                    .flatten()
                    .filter(|(k, _)| is_routing_header(k)),
            )
    }

    fn routing_at(&self) -> &RoutingAt {
        self.routing.get_or_init(|| {
            let mut at = [0u32; 8];
            let n = self.event.headers.positions(&ROUTING, &mut at)?;
            Some((at, n))
        })
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

impl Fired {
    /// Empties the event, its buffers back to their pools.
    fn clear(&mut self) {
        std::mem::take(&mut self.event.headers).recycle();
        self.event.body = None;
        if let Some(p) = self.plain.take() {
            recycle_text(p);
        }
        self.json.take();
        self.xml.take();
        self.routing.take();
    }
}

impl Drop for Fired {
    fn drop(&mut self) {
        self.clear();
    }
}

fn fired_pool() -> &'static Pool<Arc<Fired>> {
    static POOL: std::sync::OnceLock<Pool<Arc<Fired>>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| Pool::new(POOL_SIZE))
}

/// Lets go of a fired event. When that was the last reference the event,
/// allocation and all, is kept for the next one to be fired: the shared
/// allocation is otherwise freed on a subscriber's thread, in the firing
/// thread's arena (see `Pool`).
pub fn release(mut e: Arc<Fired>) {
    if let Some(f) = Arc::get_mut(&mut e) {
        f.clear();
        fired_pool().give(e);
    }
}

/// `e` in a fired event kept by [`release`], or a new one.
fn fired(e: Event) -> Arc<Fired> {
    if let Some(mut kept) = fired_pool().take() {
        if let Some(f) = Arc::get_mut(&mut kept) {
            f.event = e;
            return kept;
        }
    }
    Arc::new(Fired::new(e))
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
            return e.subclass().is_some_and(|s| self.subclasses.contains(s));
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

/// A header value with its plain (URL-encoded) form, when that differs.
#[derive(Clone, Debug, Default)]
struct Encoded {
    value: String,
    plain: Option<String>,
}

impl Encoded {
    fn new(value: String) -> Encoded {
        let mut plain = String::with_capacity(value.len());
        url_encode_into(&value, &mut plain);
        let plain = (plain != value).then_some(plain);
        Encoded { value, plain }
    }

    fn push_to(&self, headers: &mut Headers, name: &str) {
        headers.push_with_plain(name, &self.value, self.plain.as_deref());
    }
}

thread_local! {
    /// The date headers of the current second on this thread, and their
    /// plain forms: formatting them for every event was a visible share of
    /// firing one.
    static DATES: std::cell::RefCell<(u64, Encoded, Encoded)> =
        std::cell::RefCell::new((u64::MAX, Encoded::default(), Encoded::default()));
}

/// Appends Event-Date-Local and Event-Date-GMT for a Unix second.
fn push_dates(headers: &mut Headers, secs: u64) {
    DATES.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let utc = chrono::DateTime::<chrono::Utc>::from(
                UNIX_EPOCH + std::time::Duration::from_secs(secs),
            );
            let local = utc.with_timezone(&chrono::Local);
            *d = (
                secs,
                Encoded::new(local.format("%Y-%m-%d %H:%M:%S").to_string()),
                Encoded::new(utc.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
            );
        }
        d.1.push_to(headers, "Event-Date-Local");
        d.2.push_to(headers, "Event-Date-GMT");
    })
}

/// The bus.
pub struct EventBus {
    /// The identity headers' values with their plain forms, in order.
    identity: [(&'static str, Encoded); 5],
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
        let Identity {
            core_uuid,
            hostname,
            switchname,
            ipv4,
            ipv6,
        } = identity;
        EventBus {
            identity: [
                ("Core-UUID", Encoded::new(core_uuid)),
                ("FreeSWITCH-Hostname", Encoded::new(hostname)),
                ("FreeSWITCH-Switchname", Encoded::new(switchname)),
                ("FreeSWITCH-IPv4", Encoded::new(ipv4)),
                ("FreeSWITCH-IPv6", Encoded::new(ipv6)),
            ],
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
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        // Room for the base headers and about as many again: one
        // allocation for most events.
        let mut h = Headers::reused(1024, 32);
        // Event names are capitals and underscores: their own plain form.
        h.push_with_plain("Event-Name", t.name(), None);
        for (name, value) in &self.identity {
            value.push_to(&mut h, name);
        }
        push_dates(&mut h, now.as_secs());
        h.push_number("Event-Date-Timestamp", now.as_micros() as u64);
        h.push("Event-Calling-File", origin.file);
        h.push("Event-Calling-Function", origin.function);
        h.push_number("Event-Calling-Line-Number", origin.line.into());
        h.push_number("Event-Sequence", seq);
        if let Some(sc) = subclass {
            h.push("Event-Subclass", sc);
        }
        Event {
            event_type: t,
            headers: h,
            body: None,
        }
    }

    /// Delivers `e` to every interested subscriber without blocking.
    pub fn fire(&self, e: Event) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        let e = fired(e);
        // The plain form is what every subscriber is sent (the event
        // socket makes JSON and XML from it too), and the routing headers
        // are what an event socket looks at: both made here, on the thread
        // that fires, outside the lock — not on a subscriber's thread,
        // which one client's delivery would then wait for.
        if self.wants(e.event_type, None) {
            e.plain();
            e.routing_at();
        }
        let subs = self.subs.lock();
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
        drop(subs);
        release(e);
    }

    /// Subscribes with a queue of `capacity` events.
    pub fn subscribe(&self, interest: Interest, capacity: usize) -> Subscription {
        let (tx, rx) = bounded(capacity);
        let id = self.next_sub.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subs.lock();
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
        let mut subs = self.subs.lock();
        let Some(s) = subs.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        s.interest = interest;
        self.recompute_wanted(&subs);
        true
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, id: u64) {
        let mut subs = self.subs.lock();
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
            headers: [("A", "x y")].into_iter().collect(),
            body: None,
        };
        assert_eq!(e.to_plain(), "A: x%20y\n\n");
        e.body = Some("hello".into());
        assert_eq!(e.to_plain(), "A: x%20y\nContent-Length: 5\n\nhello");
    }

    /// A bus of core `u` on host `h`.
    fn test_bus() -> EventBus {
        EventBus::new(Identity {
            core_uuid: "u".into(),
            hostname: "h".into(),
            switchname: "h".into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
        })
    }

    #[test]
    fn a_created_event_has_the_base_headers_in_order_and_its_plain_form_matches_the_wire_one() {
        let bus = EventBus::new(Identity {
            core_uuid: "u-1".into(),
            hostname: "h".into(),
            switchname: "s".into(),
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
        });
        let mut e = bus.create(EventType::CUSTOM, Some("a::b"), origin!("t"));
        e.add_header("X-Empty", "");
        e.add_header("X-Value", "a b&c%41");
        e.body = Some("body\n".into());
        let names: Vec<&str> = e.headers.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "Event-Name",
                "Core-UUID",
                "FreeSWITCH-Hostname",
                "FreeSWITCH-Switchname",
                "FreeSWITCH-IPv4",
                "FreeSWITCH-IPv6",
                "Event-Date-Local",
                "Event-Date-GMT",
                "Event-Date-Timestamp",
                "Event-Calling-File",
                "Event-Calling-Function",
                "Event-Calling-Line-Number",
                "Event-Sequence",
                "Event-Subclass",
                "X-Value",
            ]
        );
        assert_eq!(e.subclass(), Some("a::b"));
        assert_eq!(e.header("event-sequence"), Some("1"));
        let pairs: Vec<(&str, &str)> = e.headers.iter().collect();
        assert_eq!(
            e.to_plain(),
            hotswitch_plugin_api::wire::to_plain(&pairs, Some("body\n"))
        );
        let ts: u64 = e.header("Event-Date-Timestamp").unwrap().parse().unwrap();
        assert!(ts > 1_600_000_000_000_000, "{ts}");
    }

    #[test]
    fn routing_headers_are_found_once_and_kept_in_order_even_when_many() {
        let mut e = Event {
            event_type: EventType::CUSTOM,
            headers: [("Event-Name", "CUSTOM"), ("X", "1"), ("Unique-ID", "u")]
                .into_iter()
                .collect(),
            body: None,
        };
        let few = Fired::new(e.clone());
        let got: Vec<_> = few.routing_headers().collect();
        assert_eq!(got, [("Event-Name", "CUSTOM"), ("Unique-ID", "u")]);
        assert_eq!(few.routing_headers().count(), 2);
        for i in 0..10 {
            e.add_header("Job-UUID", i.to_string());
        }
        let many = Fired::new(e);
        assert_eq!(many.routing_headers().count(), 12);
        assert_eq!(many.routing_headers().last(), Some(("Job-UUID", "9")));
    }

    #[test]
    fn a_released_event_is_reused_with_nothing_left_of_the_old_one() {
        let bus = test_bus();
        let sub = bus.subscribe(
            Interest {
                all: true,
                ..Default::default()
            },
            4,
        );
        let mut a = bus.create(EventType::CUSTOM, Some("a::b"), origin!("t"));
        a.add_header("Unique-ID", "first");
        a.body = Some("body".into());
        bus.fire(a);
        let got = sub.rx.try_recv().unwrap();
        assert!(got
            .plain()
            .contains("Unique-ID: first\nContent-Length: 4\n\nbody"));
        assert_eq!(got.json().len(), got.to_json().len());
        // (Other tests fire events too: which shell comes back is not
        // known, only that none carries anything of an older event.)
        release(got);
        let mut b = bus.create(EventType::MODULE_LOAD, None, origin!("t"));
        b.add_header("Channel-Name", "second");
        let plain = b.to_plain();
        bus.fire(b);
        let got = sub.rx.try_recv().unwrap();
        assert_eq!(got.plain(), plain);
        assert!(!got.plain().contains("first") && got.body.is_none());
        assert_eq!(got.json(), got.to_json());
        let routing: Vec<_> = got.routing_headers().collect();
        assert_eq!(
            routing,
            [("Event-Name", "MODULE_LOAD"), ("Channel-Name", "second")]
        );
    }

    #[test]
    fn json_and_xml_forms_keep_header_order_and_carry_the_body() {
        let e = Event {
            event_type: EventType::BACKGROUND_JOB,
            headers: [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "a b")]
                .into_iter()
                .collect(),
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
        let bus = test_bus();
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
        let bus = test_bus();
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

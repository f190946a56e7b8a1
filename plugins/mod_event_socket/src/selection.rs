//! Which events and log records a connection is sent: its event list
//! (`event`, `nixevent`, `noevents`, `myevents`), its filters, and the
//! session it controls. Decided here, per event, from the event's headers;
//! what the host is asked to deliver is derived from the same state.

use crate::filter::Filters;
use crate::frames::Format;
use std::collections::BTreeSet;

pub use hotswitch_plugin_api::events::EVENT_NAMES;
use hotswitch_plugin_api::EventId;

/// The id of ALL.
pub const ALL: u32 = EventId::ALL.id();
/// The id of CUSTOM.
pub const CUSTOM: u32 = EventId::CUSTOM.id();
/// The id of BACKGROUND_JOB.
pub const BACKGROUND_JOB: u32 = EventId::BACKGROUND_JOB.id();

/// The events `myevents` turns on (FreeSWITCH's list).
#[rustfmt::skip]
const MYEVENTS: &[&str] = &[
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE",
    "CHANNEL_DATA", "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID",
    "CHANNEL_OUTGOING", "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK", "DETECTED_SPEECH", "DTMF",
    "NOTALK", "TALK",
];

/// An event id by name (case-insensitive).
pub fn event_id(name: &str) -> Option<u32> {
    EVENT_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}

/// The events a connection asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSet {
    all: bool,
    ids: BTreeSet<u32>,
    /// CUSTOM subclasses asked for by name.
    subclasses: BTreeSet<String>,
    /// Every CUSTOM subclass (what ALL leaves after a `nixevent`).
    any_subclass: bool,
}

impl EventSet {
    /// `event …`: adds names; returns how many were event names.
    pub fn add(&mut self, names: &[String]) -> usize {
        let mut known = 0;
        let mut custom = false;
        for n in names {
            if custom {
                self.subclasses.insert(n.clone());
                continue;
            }
            let Some(id) = event_id(n) else { continue };
            known += 1;
            if id == ALL {
                self.all = true;
                self.any_subclass = true;
                self.ids.extend(0..ALL);
            } else {
                self.ids.insert(id);
            }
            custom = id == CUSTOM;
        }
        known
    }

    /// `nixevent …`: removes names; returns how many were event names.
    pub fn remove(&mut self, names: &[String]) -> usize {
        let mut known = 0;
        let mut custom = false;
        for n in names {
            if custom {
                self.subclasses.remove(n);
                continue;
            }
            let Some(id) = event_id(n) else { continue };
            known += 1;
            if id == CUSTOM {
                custom = true;
            } else if id == ALL {
                *self = EventSet::default();
            } else {
                self.all = false;
                self.ids.remove(&id);
            }
        }
        known
    }

    /// True when nothing is asked for.
    pub fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty()
    }

    /// Whether an event of this name (and CUSTOM subclass) is wanted.
    pub fn wants(&self, name: &str, subclass: Option<&str>) -> bool {
        if self.all {
            return true;
        }
        let Some(id) = event_id(name) else {
            return false;
        };
        if !self.ids.contains(&id) {
            return false;
        }
        match subclass {
            Some(sc) if id == CUSTOM => self.any_subclass || self.subclasses.contains(sc),
            _ => true,
        }
    }

    /// The host's interest spec for this set plus `extra` event names.
    pub fn host_spec(&self, extra: &[&str]) -> String {
        if self.all {
            return "ALL".into();
        }
        let mut names: BTreeSet<&str> = self
            .ids
            .iter()
            .filter(|id| **id != CUSTOM)
            .map(|id| EVENT_NAMES[*id as usize])
            .collect();
        names.extend(extra.iter().copied());
        let mut spec: Vec<&str> = names.into_iter().collect();
        // CUSTOM goes last: the host reads the words after it as subclasses.
        if self.ids.contains(&CUSTOM) {
            spec.push("CUSTOM");
            if !self.any_subclass {
                spec.extend(self.subclasses.iter().map(String::as_str));
            }
        }
        spec.join(" ")
    }
}

/// What to do with one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// Send it to the client.
    pub forward: bool,
    /// The controlled session hung up (its channel name).
    pub hangup: Option<String>,
}

/// Everything that decides what a connection is sent.
#[derive(Default)]
pub struct Selection {
    /// LFLAG_EVENTS: `event`, `nixevent` or `myevents` was used.
    pub events_on: bool,
    /// The event list.
    pub events: EventSet,
    /// The filters.
    pub filters: Filters,
    /// `myevents`: only the controlled session's events.
    pub myevents: bool,
    /// The session this connection controls (outbound, or `myevents <uuid>`).
    pub controlled: Option<String>,
    /// The event format.
    pub format: Option<Format>,
}

/// The first header called `name` (case-insensitive).
pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Selection {
    /// `myevents`: the channel events of the controlled session.
    pub fn enable_myevents(&mut self) {
        let names: Vec<String> = MYEVENTS.iter().map(|s| s.to_string()).collect();
        self.events.add(&names);
        self.myevents = true;
        self.events_on = true;
    }

    /// The host's interest spec: what the client wants, plus what the
    /// connection needs itself (CHANNEL_HANGUP of a controlled session,
    /// BACKGROUND_JOB for `myevents`' job owner rule).
    pub fn host_spec(&self) -> String {
        let mut extra = Vec::new();
        if self.controlled.is_some() {
            extra.push("CHANNEL_HANGUP");
        }
        if self.myevents {
            extra.push("BACKGROUND_JOB");
        }
        if self.events_on {
            self.events.host_spec(&extra)
        } else {
            EventSet::default().host_spec(&extra)
        }
    }

    /// Decides what to do with an event.
    pub fn route(&self, headers: &[(String, String)]) -> Route {
        let name = header(headers, "Event-Name").unwrap_or("");
        let uuid = header(headers, "Unique-ID");
        let hangup = match &self.controlled {
            Some(c) if name == "CHANNEL_HANGUP" && uuid == Some(c.as_str()) => Some(
                header(headers, "Channel-Name")
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => None,
        };
        let mut forward =
            self.events_on && self.events.wants(name, header(headers, "Event-Subclass"));
        if forward && !self.filters.is_empty() {
            forward = self.filters.passes(headers);
        }
        if self.myevents {
            if let Some(c) = &self.controlled {
                if uuid != Some(c.as_str()) {
                    forward = false;
                }
                if header(headers, "Job-Owner-UUID") == Some(c.as_str()) {
                    forward = true;
                }
            }
        }
        Route { forward, hangup }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// Event headers for tests.
    pub(crate) fn ev(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_name_table_has_freeswitchs_ids() {
        assert_eq!(EVENT_NAMES.len(), 94);
        assert_eq!(event_id("background_job"), Some(BACKGROUND_JOB));
        assert_eq!(event_id("HEARTBEAT"), Some(50));
        assert_eq!(event_id("ALL"), Some(ALL));
    }

    #[test]
    fn unknown_names_are_not_keywords() {
        let mut s = EventSet::default();
        assert_eq!(s.add(&names("NOT_AN_EVENT")), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn all_wants_every_event_including_custom_ones() {
        let mut s = EventSet::default();
        s.add(&names("ALL"));
        assert!(s.wants("HEARTBEAT", None));
        assert!(s.wants("CUSTOM", Some("x::y")));
        assert_eq!(s.host_spec(&[]), "ALL");
    }

    #[test]
    fn custom_takes_subclasses_after_it() {
        let mut s = EventSet::default();
        s.add(&names("CHANNEL_CREATE CUSTOM a::b"));
        assert!(s.wants("CUSTOM", Some("a::b")));
        assert!(!s.wants("CUSTOM", Some("c::d")));
        assert!(s.wants("channel_create", None));
        assert_eq!(s.host_spec(&[]), "CHANNEL_CREATE CUSTOM a::b");
    }

    #[test]
    fn nixevent_after_all_keeps_the_rest() {
        let mut s = EventSet::default();
        s.add(&names("ALL"));
        s.remove(&names("HEARTBEAT"));
        assert!(!s.wants("HEARTBEAT", None));
        assert!(s.wants("CHANNEL_CREATE", None));
        assert!(s.wants("CUSTOM", Some("any::thing")));
        s.remove(&names("ALL"));
        assert!(s.is_empty());
    }

    #[test]
    fn a_controlled_sessions_hangup_is_noticed_even_when_not_subscribed() {
        let sel = Selection {
            controlled: Some("u1".into()),
            ..Selection::default()
        };
        assert_eq!(sel.host_spec(), "CHANNEL_HANGUP");
        let r = sel.route(&ev(&[
            ("Event-Name", "CHANNEL_HANGUP"),
            ("Unique-ID", "u1"),
            ("Channel-Name", "loopback/a"),
        ]));
        assert_eq!(
            r,
            Route {
                forward: false,
                hangup: Some("loopback/a".into())
            }
        );
    }

    #[test]
    fn myevents_passes_only_the_sessions_events_and_its_jobs() {
        let mut sel = Selection {
            controlled: Some("u1".into()),
            ..Selection::default()
        };
        sel.enable_myevents();
        let mine = ev(&[("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u1")]);
        let other = ev(&[("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u2")]);
        let job = ev(&[("Event-Name", "BACKGROUND_JOB"), ("Job-Owner-UUID", "u1")]);
        assert!(sel.route(&mine).forward);
        assert!(!sel.route(&other).forward);
        assert!(sel.route(&job).forward);
    }

    #[test]
    fn filters_apply_after_the_event_list() {
        let mut sel = Selection {
            events_on: true,
            ..Selection::default()
        };
        sel.events.add(&names("ALL"));
        sel.filters.add("Event-Name", "CHANNEL_PARK");
        assert!(sel.route(&ev(&[("Event-Name", "CHANNEL_PARK")])).forward);
        assert!(!sel.route(&ev(&[("Event-Name", "CHANNEL_CREATE")])).forward);
    }
}

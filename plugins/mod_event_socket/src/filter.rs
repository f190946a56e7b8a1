//! `filter`: which events a connection is sent, by header value, with
//! FreeSWITCH's rules.
//!
//! A value is compared case-insensitively, or as a regular expression when
//! it is written `/re/`. A leading `-` makes a filter negative (`+` makes it
//! positive, the default). With any filter present an event is sent only
//! when it matches at least one positive filter and no negative one; a
//! filter whose header the event lacks is skipped. So negative filters
//! alone pass nothing.

use crate::selection::header;
use regex::Regex;

struct Filter {
    header: String,
    /// As given, for deletion and replies.
    value: String,
    positive: bool,
    matcher: Matcher,
}

enum Matcher {
    Equal(String),
    Regex(Option<Regex>),
}

/// A connection's filters, in the order they were added.
#[derive(Default)]
pub struct Filters {
    list: Vec<Filter>,
}

impl Filters {
    /// True when no filter is set (every event passes).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds a filter.
    pub fn add(&mut self, header: &str, value: &str) {
        let trimmed = value.trim_start_matches([' ', '+', '-']);
        let positive = !value
            .chars()
            .take_while(|c| matches!(c, ' ' | '+' | '-'))
            .fold(false, |neg, c| match c {
                '-' => true,
                '+' => false,
                _ => neg,
            });
        let matcher = if value.starts_with('/') {
            Matcher::Regex(compile(trimmed))
        } else {
            Matcher::Equal(trimmed.to_string())
        };
        self.list.push(Filter {
            header: header.to_string(),
            value: value.to_string(),
            positive,
            matcher,
        });
    }

    /// Deletes the filters on `header` (with `value`, only that one).
    pub fn delete(&mut self, header: &str, value: Option<&str>) {
        self.list.retain(|f| {
            !(f.header.eq_ignore_ascii_case(header) && value.is_none_or(|v| f.value == v))
        });
    }

    /// Deletes every filter.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Whether an event with these headers passes.
    pub fn passes(&self, headers: &[(String, String)]) -> bool {
        if self.list.is_empty() {
            return true;
        }
        let mut send = false;
        for f in &self.list {
            let Some(value) = header(headers, &f.header) else {
                continue;
            };
            if send && f.positive {
                continue;
            }
            let matched = match &f.matcher {
                Matcher::Equal(want) => value.eq_ignore_ascii_case(want),
                Matcher::Regex(re) => re.as_ref().is_some_and(|re| re.is_match(value)),
            };
            if matched {
                if f.positive {
                    send = true;
                } else {
                    return false;
                }
            }
        }
        send
    }
}

/// `/expr/` or `/expr/i`; an expression that does not compile matches
/// nothing (as in FreeSWITCH).
fn compile(spec: &str) -> Option<Regex> {
    let body = spec.strip_prefix('/').unwrap_or(spec);
    let (expr, flags) = match body.rfind('/') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    let expr = if flags.contains('i') {
        format!("(?i){expr}")
    } else {
        expr.to_string()
    };
    Regex::new(&expr).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::ev;

    #[test]
    fn no_filter_passes_everything() {
        assert!(Filters::default().passes(&ev(&[("Event-Name", "X")])));
    }

    #[test]
    fn equality_is_case_insensitive_on_name_and_value() {
        let mut f = Filters::default();
        f.add("event-name", "channel_answer");
        assert!(f.passes(&ev(&[("Event-Name", "CHANNEL_ANSWER")])));
        assert!(!f.passes(&ev(&[("Event-Name", "CHANNEL_CREATE")])));
    }

    #[test]
    fn any_positive_filter_is_enough() {
        let mut f = Filters::default();
        f.add("Event-Name", "CHANNEL_ANSWER");
        f.add("Event-Name", "CHANNEL_PARK");
        assert!(f.passes(&ev(&[("Event-Name", "CHANNEL_PARK")])));
    }

    #[test]
    fn a_regex_is_written_between_slashes() {
        let mut f = Filters::default();
        f.add("Unique-ID", "/^aaaa/");
        assert!(f.passes(&ev(&[("Unique-ID", "aaaa-1")])));
        assert!(!f.passes(&ev(&[("Unique-ID", "bbbb-1")])));
    }

    #[test]
    fn a_negative_filter_vetoes_and_alone_passes_nothing() {
        let mut f = Filters::default();
        f.add("Event-Name", "-HEARTBEAT");
        assert!(!f.passes(&ev(&[("Event-Name", "CHANNEL_CREATE")])));
        assert!(!f.passes(&ev(&[("Event-Name", "HEARTBEAT")])));
        f.add("Event-Name", "/.*/");
        assert!(f.passes(&ev(&[("Event-Name", "CHANNEL_CREATE")])));
        assert!(!f.passes(&ev(&[("Event-Name", "HEARTBEAT")])));
    }

    #[test]
    fn an_event_without_the_header_is_not_matched_by_that_filter() {
        let mut f = Filters::default();
        f.add("Unique-ID", "abc");
        assert!(!f.passes(&ev(&[("Event-Name", "HEARTBEAT")])));
    }

    #[test]
    fn delete_removes_by_header_or_by_header_and_value() {
        let mut f = Filters::default();
        f.add("Event-Name", "A");
        f.add("Event-Name", "B");
        f.delete("event-name", Some("A"));
        assert!(!f.passes(&ev(&[("Event-Name", "A")])));
        assert!(f.passes(&ev(&[("Event-Name", "B")])));
        f.delete("Event-Name", None);
        assert!(f.is_empty());
    }

    #[test]
    fn a_bad_regex_matches_nothing() {
        let mut f = Filters::default();
        f.add("Event-Name", "/([/");
        assert!(!f.passes(&ev(&[("Event-Name", "([")])));
    }
}

//! The spans of the loaded configuration and the groups over them, and
//! hunting a free channel for a dial string.

use crate::config::{Config, GroupConfig};
use crate::hunt::{self, DialString, Direction, Target};
use crate::span::Span;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::CallCause;
use std::collections::HashMap;
use std::sync::Arc;

/// The running spans.
pub struct Registry {
    pub spans: Vec<Arc<Span>>,
    groups: Vec<GroupConfig>,
    /// Round-robin positions, by span or group.
    cursors: Mutex<HashMap<String, Option<usize>>>,
}

static CURRENT: Mutex<Option<Arc<Registry>>> = Mutex::new(None);

/// The registry while the module is loaded.
pub fn current() -> Option<Arc<Registry>> {
    CURRENT.lock().clone()
}

/// Starts every span of `cfg` (a span whose driver cannot open is left
/// out, with an error in the log).
pub fn start(cfg: Config) {
    let mut spans = Vec::new();
    for s in cfg.spans {
        let name = s.name.clone();
        match Span::start(s) {
            Ok(span) => spans.push(span),
            Err(e) => log::error!("span {name} not started: {e}"),
        }
    }
    *CURRENT.lock() = Some(Arc::new(Registry {
        spans,
        groups: cfg.groups,
        cursors: Mutex::new(HashMap::new()),
    }));
}

/// Stops every span and forgets them (unload).
pub fn stop() {
    let Some(r) = CURRENT.lock().take() else {
        return;
    };
    for s in &r.spans {
        s.shutdown();
    }
}

impl Registry {
    /// A span by name or id.
    pub fn span(&self, name: &str) -> Option<&Arc<Span>> {
        self.spans
            .iter()
            .find(|s| s.cfg.name == name)
            .or_else(|| self.spans.iter().find(|s| s.cfg.id.to_string() == name))
    }

    /// Finds and reserves a free channel for `ds`: (span, slot, generation).
    pub fn reserve(&self, ds: &DialString) -> Result<(Arc<Span>, usize, u64), CallCause> {
        let (key, dir, candidates): (String, Direction, Vec<(Arc<Span>, usize)>) = match &ds.target
        {
            Target::Channel { span, chan } => {
                let s = self.span(span).ok_or(CallCause::NO_ROUTE_DESTINATION)?;
                let slot = s
                    .cfg
                    .channels
                    .iter()
                    .position(|c| c == chan)
                    .ok_or(CallCause::NO_ROUTE_DESTINATION)?;
                return s
                    .try_reserve(slot)
                    .map(|g| (s.clone(), slot, g))
                    .ok_or(CallCause::NORMAL_CIRCUIT_CONGESTION);
            }
            Target::Span { span, dir } => {
                let s = self.span(span).ok_or(CallCause::NO_ROUTE_DESTINATION)?;
                let c = (0..s.cfg.channels.len()).map(|i| (s.clone(), i)).collect();
                (format!("span:{}", s.cfg.name), *dir, c)
            }
            Target::Group { name, dir } => {
                let g = self
                    .groups
                    .iter()
                    .find(|g| &g.name == name)
                    .ok_or(CallCause::NO_ROUTE_DESTINATION)?;
                let c = g
                    .members
                    .iter()
                    .filter_map(|(span, chan)| {
                        let s = self.span(span)?;
                        let slot = s.cfg.channels.iter().position(|c| c == chan)?;
                        Some((s.clone(), slot))
                    })
                    .collect();
                (format!("group:{name}"), *dir, c)
            }
        };
        let mut cursors = self.cursors.lock();
        let cursor = cursors.entry(key).or_default();
        // A channel can be taken between the look and the reservation:
        // look again, at most once per candidate.
        for _ in 0..candidates.len() {
            let Some(i) = hunt::hunt(candidates.len(), dir, cursor, |i| {
                candidates[i].0.is_free(candidates[i].1)
            }) else {
                break;
            };
            let (s, slot) = &candidates[i];
            if let Some(g) = s.try_reserve(*slot) {
                return Ok((s.clone(), *slot, g));
            }
        }
        Err(CallCause::NORMAL_CIRCUIT_CONGESTION)
    }
}

//! Dialplans: what CS_ROUTING asks for the applications a call runs. Each
//! dialplan is found by name from the caller profile's `dialplan` list
//! (`XML`, `inline`, …). Built in today: FreeSWITCH's `inline` dialplan,
//! whose "destination" is the application list itself
//! (`answer,park` or `set:foo=bar,hangup:USER_BUSY`).

use crate::core::Core;
use crate::session::Session;
use hotswitch_plugin_api::sync::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// A dialplan: finds the applications for a session, or nothing.
pub trait Dialplan: Send + Sync {
    /// `arg` is what followed `name:` in the profile's dialplan list.
    fn hunt(&self, core: &Arc<Core>, s: &Arc<Session>, arg: &str) -> Option<Vec<(String, String)>>;
}

/// Dialplans by case-insensitive name.
#[derive(Default)]
pub struct Dialplans {
    map: RwLock<HashMap<String, Arc<dyn Dialplan>>>,
}

impl Dialplans {
    pub fn add(&self, name: &str, d: Arc<dyn Dialplan>) {
        self.map.write().insert(name.to_ascii_lowercase(), d);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Dialplan>> {
        self.map.read().get(&name.to_ascii_lowercase()).cloned()
    }
}

/// FreeSWITCH's `inline` dialplan: `app[:arg],app[:arg]…`, taken from the
/// dialplan argument when given, else from the destination number.
pub struct Inline;

/// Parses an inline application list.
pub fn parse_inline(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once(':') {
            Some((app, arg)) => (app.trim().to_string(), arg.to_string()),
            None => (item.to_string(), String::new()),
        })
        .collect()
}

impl Dialplan for Inline {
    fn hunt(
        &self,
        _core: &Arc<Core>,
        s: &Arc<Session>,
        arg: &str,
    ) -> Option<Vec<(String, String)>> {
        let list = if arg.is_empty() {
            s.ch().profile.destination_number.clone()
        } else {
            arg.to_string()
        };
        let apps = parse_inline(&list);
        (!apps.is_empty()).then_some(apps)
    }
}

/// FreeSWITCH's XML dialplan over the configuration's `dialplan` section.
pub struct Xml;

struct SessionLookup<'a> {
    core: &'a Arc<Core>,
    session: &'a Arc<Session>,
}

impl crate::dialplan_xml::Lookup for SessionLookup<'_> {
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "uuid" => Some(self.session.uuid.clone()),
            _ => self.session.ch().var_or_field(name),
        }
    }
    fn expand(&self, s: &str) -> String {
        crate::expand::expand(
            s,
            &crate::core::ChannelVars {
                core: self.core,
                session: self.session,
            },
        )
    }
    fn run_inline(&mut self, app: &str, data: &str) {
        crate::state_machine::execute_app(self.core, self.session, app, data);
    }
}

impl Dialplan for Xml {
    fn hunt(
        &self,
        core: &Arc<Core>,
        s: &Arc<Session>,
        _arg: &str,
    ) -> Option<Vec<(String, String)>> {
        let doc = core.config.document()?;
        let dp = doc.section("dialplan")?;
        let context = {
            let c = s.ch().profile.context.clone();
            if c.is_empty() {
                "default".to_string()
            } else {
                c
            }
        };
        let mut lookup = SessionLookup { core, session: s };
        let now = chrono::Local::now().naive_local();
        match crate::dialplan_xml::hunt(dp, &context, &mut lookup, now) {
            Ok(Some(h)) => {
                log::debug!("{}: XML dialplan matched {:?}", s.uuid, h.extensions);
                Some(
                    h.actions
                        .into_iter()
                        .map(|a| (a.application, a.data))
                        .collect(),
                )
            }
            Ok(None) => None,
            Err(e) => {
                log::error!("{}: XML dialplan: {e}", s.uuid);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_inline_list_gives_applications_and_their_arguments_in_order() {
        assert_eq!(
            super::parse_inline("answer, set:a=b:c ,park"),
            vec![
                ("answer".to_string(), String::new()),
                ("set".to_string(), "a=b:c".to_string()),
                ("park".to_string(), String::new()),
            ]
        );
        assert!(super::parse_inline(" , ").is_empty());
    }
}

//! The interface registries: api commands, applications, endpoints and chat
//! protocols, by case-insensitive name. The host's own commands live here
//! beside the modules', so the console and (later) the event socket find
//! every command the same way.
//!
//! Invariant: an entry copies the module's names into host strings and keeps
//! only the module's function pointers and `user_data`, which it never frees;
//! every entry of a module is removed before that module's library is closed.

use crate::core::Core;
use crate::modules::LoadedModule;
use hotswitch_plugin_api::{
    ApiFn, ApplicationFn, ChatSendFn, InterfaceKind, IoRoutines, StateHandlers,
};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A host command: `(core, args) -> output`.
pub type HostApiFn = fn(&Arc<Core>, &str) -> String;

/// How an api command runs.
pub enum ApiImpl {
    Host(HostApiFn),
    Module {
        module: Arc<LoadedModule>,
        func: ApiFn,
        user_data: usize,
    },
}

/// An api command.
pub struct ApiEntry {
    pub name: String,
    pub description: String,
    pub syntax: String,
    pub imp: ApiImpl,
}

/// A dialplan application.
pub struct AppEntry {
    pub name: String,
    pub description: String,
    pub syntax: String,
    pub flags: u32,
    pub module: Arc<LoadedModule>,
    pub func: ApplicationFn,
    pub user_data: usize,
}

/// An endpoint.
pub struct EndpointEntry {
    pub name: String,
    pub module: Arc<LoadedModule>,
    pub user_data: usize,
    pub io: IoRoutines,
    pub state: StateHandlers,
}

/// A chat protocol.
pub struct ChatEntry {
    pub name: String,
    pub module: Arc<LoadedModule>,
    pub user_data: usize,
    pub send: ChatSendFn,
}

type Table<T> = RwLock<BTreeMap<String, Arc<T>>>;

/// One row of `show interfaces`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRow {
    pub kind: InterfaceKind,
    pub name: String,
    pub description: String,
    pub syntax: String,
    /// The owning module's name, or `core`.
    pub key: String,
    /// The owning module's file, empty for the core.
    pub filename: String,
}

/// All registries.
#[derive(Default)]
pub struct Registry {
    pub api: Table<ApiEntry>,
    pub apps: Table<AppEntry>,
    pub endpoints: Table<EndpointEntry>,
    pub chat: Table<ChatEntry>,
}

fn insert<T>(
    t: &Table<T>,
    name: &str,
    v: T,
    owner_of: impl Fn(&T) -> String,
) -> Result<(), String> {
    let key = name.to_ascii_lowercase();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("invalid interface name '{name}'"));
    }
    let mut w = t.write().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = w.get(&key) {
        return Err(format!(
            "'{name}' is already registered by {}",
            owner_of(existing)
        ));
    }
    w.insert(key, Arc::new(v));
    Ok(())
}

fn get<T>(t: &Table<T>, name: &str) -> Option<Arc<T>> {
    t.read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&name.to_ascii_lowercase())
        .cloned()
}

fn remove_where<T>(t: &Table<T>, pred: impl Fn(&T) -> bool) -> Vec<Arc<T>> {
    let mut w = t.write().unwrap_or_else(|p| p.into_inner());
    let keys: Vec<String> = w
        .iter()
        .filter(|(_, v)| pred(v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.iter().filter_map(|k| w.remove(k)).collect()
}

impl ApiEntry {
    pub fn owner(&self) -> Option<&Arc<LoadedModule>> {
        match &self.imp {
            ApiImpl::Host(_) => None,
            ApiImpl::Module { module, .. } => Some(module),
        }
    }
}

fn owner_name(m: Option<&Arc<LoadedModule>>) -> String {
    m.map(|m| m.name.clone()).unwrap_or_else(|| "core".into())
}

impl Registry {
    pub fn add_api(&self, e: ApiEntry) -> Result<(), String> {
        let name = e.name.clone();
        insert(&self.api, &name, e, |x| owner_name(x.owner()))
    }
    pub fn add_app(&self, e: AppEntry) -> Result<(), String> {
        let name = e.name.clone();
        insert(&self.apps, &name, e, |x| x.module.name.clone())
    }
    pub fn add_endpoint(&self, e: EndpointEntry) -> Result<(), String> {
        let name = e.name.clone();
        insert(&self.endpoints, &name, e, |x| x.module.name.clone())
    }
    pub fn add_chat(&self, e: ChatEntry) -> Result<(), String> {
        let name = e.name.clone();
        insert(&self.chat, &name, e, |x| x.module.name.clone())
    }

    pub fn api(&self, name: &str) -> Option<Arc<ApiEntry>> {
        get(&self.api, name)
    }
    pub fn app(&self, name: &str) -> Option<Arc<AppEntry>> {
        get(&self.apps, name)
    }
    pub fn endpoint(&self, name: &str) -> Option<Arc<EndpointEntry>> {
        get(&self.endpoints, name)
    }
    pub fn chat(&self, name: &str) -> Option<Arc<ChatEntry>> {
        get(&self.chat, name)
    }

    /// Removes one interface of `module`; false if it has none by that name.
    pub fn remove_one(&self, module: &LoadedModule, kind: InterfaceKind, name: &str) -> bool {
        let key = name.to_ascii_lowercase();
        let mine = |m: &Arc<LoadedModule>| std::ptr::eq(Arc::as_ptr(m), module);
        match kind {
            InterfaceKind::API => !remove_where(&self.api, |e| {
                e.name.eq_ignore_ascii_case(&key) && e.owner().is_some_and(mine)
            })
            .is_empty(),
            InterfaceKind::APPLICATION => !remove_where(&self.apps, |e| {
                e.name.eq_ignore_ascii_case(&key) && mine(&e.module)
            })
            .is_empty(),
            InterfaceKind::ENDPOINT => !remove_where(&self.endpoints, |e| {
                e.name.eq_ignore_ascii_case(&key) && mine(&e.module)
            })
            .is_empty(),
            InterfaceKind::CHAT => !remove_where(&self.chat, |e| {
                e.name.eq_ignore_ascii_case(&key) && mine(&e.module)
            })
            .is_empty(),
            _ => false,
        }
    }

    /// Removes every interface of `module`, returning what was removed.
    pub fn remove_module(&self, module: &LoadedModule) -> Vec<InterfaceRow> {
        let mine = |m: &Arc<LoadedModule>| std::ptr::eq(Arc::as_ptr(m), module);
        let mut rows = Vec::new();
        for e in remove_where(&self.endpoints, |e| mine(&e.module)) {
            rows.push(row(
                InterfaceKind::ENDPOINT,
                &e.name,
                "",
                "",
                Some(&e.module),
            ));
        }
        for e in remove_where(&self.apps, |e| mine(&e.module)) {
            rows.push(row(
                InterfaceKind::APPLICATION,
                &e.name,
                &e.description,
                &e.syntax,
                Some(&e.module),
            ));
        }
        for e in remove_where(&self.api, |e| e.owner().is_some_and(mine)) {
            rows.push(row(
                InterfaceKind::API,
                &e.name,
                &e.description,
                &e.syntax,
                e.owner(),
            ));
        }
        for e in remove_where(&self.chat, |e| mine(&e.module)) {
            rows.push(row(InterfaceKind::CHAT, &e.name, "", "", Some(&e.module)));
        }
        rows
    }

    /// Every interface, optionally of one kind, sorted by kind then name.
    pub fn rows(&self, only: Option<InterfaceKind>) -> Vec<InterfaceRow> {
        let mut rows = Vec::new();
        let want = |k: InterfaceKind| only.is_none_or(|o| o == k);
        if want(InterfaceKind::ENDPOINT) {
            for e in self
                .endpoints
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
            {
                rows.push(row(
                    InterfaceKind::ENDPOINT,
                    &e.name,
                    "",
                    "",
                    Some(&e.module),
                ));
            }
        }
        if want(InterfaceKind::APPLICATION) {
            for e in self.apps.read().unwrap_or_else(|p| p.into_inner()).values() {
                rows.push(row(
                    InterfaceKind::APPLICATION,
                    &e.name,
                    &e.description,
                    &e.syntax,
                    Some(&e.module),
                ));
            }
        }
        if want(InterfaceKind::API) {
            for e in self.api.read().unwrap_or_else(|p| p.into_inner()).values() {
                rows.push(row(
                    InterfaceKind::API,
                    &e.name,
                    &e.description,
                    &e.syntax,
                    e.owner(),
                ));
            }
        }
        if want(InterfaceKind::CHAT) {
            for e in self.chat.read().unwrap_or_else(|p| p.into_inner()).values() {
                rows.push(row(InterfaceKind::CHAT, &e.name, "", "", Some(&e.module)));
            }
        }
        rows
    }

    /// Interfaces owned by `module`.
    pub fn rows_of(&self, module: &LoadedModule) -> Vec<InterfaceRow> {
        self.rows(None)
            .into_iter()
            .filter(|r| r.key == module.name)
            .collect()
    }
}

fn row(
    kind: InterfaceKind,
    name: &str,
    description: &str,
    syntax: &str,
    module: Option<&Arc<LoadedModule>>,
) -> InterfaceRow {
    InterfaceRow {
        kind,
        name: name.to_string(),
        description: description.to_string(),
        syntax: syntax.to_string(),
        key: owner_name(module),
        filename: module
            .map(|m| m.source.display().to_string())
            .unwrap_or_default(),
    }
}

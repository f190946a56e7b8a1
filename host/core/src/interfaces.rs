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
use hotswitch_plugin_api::sync::RwLock;
use hotswitch_plugin_api::{
    ApiFn, ApplicationFn, ChatSendFn, InterfaceKind, IoRoutines, StateHandlers,
};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Entries a live reload's new version displaced, until it succeeds or
    /// fails.
    displaced: hotswitch_plugin_api::sync::Mutex<Vec<Displaced>>,
}

/// Inserts `v`; an existing entry is an error unless `displaces` says the
/// new one takes its place (a module's next version during a live reload),
/// in which case the old entry is returned.
fn insert<T>(
    t: &Table<T>,
    name: &str,
    v: T,
    owner_of: impl Fn(&T) -> String,
    displaces: impl Fn(&T, &T) -> bool,
) -> Result<Option<Arc<T>>, String> {
    let key = name.to_ascii_lowercase();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("invalid interface name '{name}'"));
    }
    let mut w = t.write();
    if let Some(existing) = w.get(&key) {
        if !displaces(existing, &v) {
            return Err(format!(
                "'{name}' is already registered by {}",
                owner_of(existing)
            ));
        }
    }
    Ok(w.insert(key, Arc::new(v)))
}

/// True when `new` is the next version of `old`'s module, loading in a live
/// reload: its entry replaces the old version's in one step, so no lookup
/// finds the name missing.
fn successor(old: Option<&Arc<LoadedModule>>, new: Option<&Arc<LoadedModule>>) -> bool {
    match (old, new) {
        (Some(o), Some(n)) => !Arc::ptr_eq(o, n) && n.replaces(o),
        _ => false,
    }
}

/// An entry a module's next version took the place of, kept so that a
/// failed reload puts it back.
pub enum Displaced {
    Api(Arc<ApiEntry>),
    App(Arc<AppEntry>),
    Endpoint(Arc<EndpointEntry>),
    Chat(Arc<ChatEntry>),
}

fn get<T>(t: &Table<T>, name: &str) -> Option<Arc<T>> {
    t.read().get(&name.to_ascii_lowercase()).cloned()
}

fn remove_where<T>(t: &Table<T>, pred: impl Fn(&T) -> bool) -> Vec<Arc<T>> {
    let mut w = t.write();
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
    fn keep_displaced(&self, d: Displaced) {
        self.displaced.lock().push(d);
    }

    pub fn add_api(&self, e: ApiEntry) -> Result<(), String> {
        let name = e.name.clone();
        let old = insert(
            &self.api,
            &name,
            e,
            |x| owner_name(x.owner()),
            |o, n| successor(o.owner(), n.owner()),
        )?;
        if let Some(o) = old {
            self.keep_displaced(Displaced::Api(o));
        }
        Ok(())
    }
    pub fn add_app(&self, e: AppEntry) -> Result<(), String> {
        let name = e.name.clone();
        let old = insert(
            &self.apps,
            &name,
            e,
            |x| x.module.name.clone(),
            |o, n| successor(Some(&o.module), Some(&n.module)),
        )?;
        if let Some(o) = old {
            self.keep_displaced(Displaced::App(o));
        }
        Ok(())
    }
    pub fn add_endpoint(&self, e: EndpointEntry) -> Result<(), String> {
        let name = e.name.clone();
        let old = insert(
            &self.endpoints,
            &name,
            e,
            |x| x.module.name.clone(),
            |o, n| successor(Some(&o.module), Some(&n.module)),
        )?;
        if let Some(o) = old {
            self.keep_displaced(Displaced::Endpoint(o));
        }
        Ok(())
    }
    pub fn add_chat(&self, e: ChatEntry) -> Result<(), String> {
        let name = e.name.clone();
        let old = insert(
            &self.chat,
            &name,
            e,
            |x| x.module.name.clone(),
            |o, n| successor(Some(&o.module), Some(&n.module)),
        )?;
        if let Some(o) = old {
            self.keep_displaced(Displaced::Chat(o));
        }
        Ok(())
    }

    /// The entries of `old` that its successor took the place of, taken
    /// out of the keeping list.
    fn take_displaced_of(&self, old: &LoadedModule) -> Vec<Displaced> {
        let mine = |m: &Arc<LoadedModule>| std::ptr::eq(Arc::as_ptr(m), old);
        let mut all = self.displaced.lock();
        let (of_old, rest): (Vec<Displaced>, Vec<Displaced>) = std::mem::take(&mut *all)
            .into_iter()
            .partition(|d| match d {
                Displaced::Api(e) => e.owner().is_some_and(mine),
                Displaced::App(e) => mine(&e.module),
                Displaced::Endpoint(e) => mine(&e.module),
                Displaced::Chat(e) => mine(&e.module),
            });
        *all = rest;
        of_old
    }

    /// A live reload failed: the entries the new version displaced from
    /// `old` go back (where the name is free again: the caller removed the
    /// new version's first).
    pub fn restore_displaced(&self, old: &LoadedModule) {
        fn back<T>(t: &Table<T>, name: &str, e: Arc<T>) {
            t.write().entry(name.to_ascii_lowercase()).or_insert(e);
        }
        for d in self.take_displaced_of(old) {
            match d {
                Displaced::Api(e) => back(&self.api, &e.name.clone(), e),
                Displaced::App(e) => back(&self.apps, &e.name.clone(), e),
                Displaced::Endpoint(e) => back(&self.endpoints, &e.name.clone(), e),
                Displaced::Chat(e) => back(&self.chat, &e.name.clone(), e),
            }
        }
    }

    /// A live reload succeeded: forgets what the new version displaced from
    /// `old`.
    pub fn forget_displaced(&self, old: &LoadedModule) {
        drop(self.take_displaced_of(old));
    }

    /// The endpoints `module` has registered now.
    pub fn endpoints_of(&self, module: &LoadedModule) -> Vec<Arc<EndpointEntry>> {
        self.endpoints
            .read()
            .values()
            .filter(|e| std::ptr::eq(Arc::as_ptr(&e.module), module))
            .cloned()
            .collect()
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
            for e in self.endpoints.read().values() {
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
            for e in self.apps.read().values() {
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
            for e in self.api.read().values() {
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
            for e in self.chat.read().values() {
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

//! Registrations: who is reachable where, kept across restarts.
//!
//! [`Registrar`] answers lookups from memory and writes every change
//! through a [`RegistrationStore`]. The default store is an embedded redb
//! file ([`RedbStore`]); PostgreSQL, shared by several nodes, is
//! [`crate::registrar_pg::PgStore`], whose other nodes' changes come back
//! through [`RegistrationStore::remote_changes`].
//!
//! On a live reload the old version closes its store
//! ([`Registrar::close_store`]: the redb file's lock is released, the
//! PostgreSQL worker ends) before the new version opens it; the old one
//! keeps its bindings in memory for the calls it still serves.

use hotswitch_plugin_api::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One binding of an address-of-record to a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub profile: String,
    pub user: String,
    pub domain: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where the REGISTER came from (requests go there when it is behind
    /// NAT, [`crate::nat`]).
    pub network: SocketAddr,
    /// `UDP` or `TCP`.
    pub transport: String,
    /// Unix time the binding lapses.
    pub expires_at: u64,
    pub call_id: String,
    pub user_agent: String,
    /// The REGISTER's Path (RFC 3327), first entry first: the proxies a
    /// request to this contact goes through (as its Route set).
    pub path: Vec<String>,
}

impl Registration {
    /// `user@domain`.
    pub fn aor(&self) -> String {
        format!("{}@{}", self.user, self.domain)
    }

    fn key(&self) -> String {
        format!("{}\u{1}{}\u{1}{}", self.profile, self.aor(), self.contact)
    }

    pub(crate) fn encode(&self) -> String {
        [
            self.profile.as_str(),
            &self.user,
            &self.domain,
            &self.contact,
            &self.network.to_string(),
            &self.transport,
            &self.expires_at.to_string(),
            &self.call_id,
            &self.user_agent,
            &self.path.join("\u{2}"),
        ]
        .join("\u{1}")
    }

    pub(crate) fn decode(s: &str) -> Option<Registration> {
        let f: Vec<&str> = s.split('\u{1}').collect();
        // Nine fields: written before Path was kept.
        if f.len() != 9 && f.len() != 10 {
            return None;
        }
        Some(Registration {
            profile: f[0].into(),
            user: f[1].into(),
            domain: f[2].into(),
            contact: f[3].into(),
            network: f[4].parse().ok()?,
            transport: f[5].into(),
            expires_at: f[6].parse().ok()?,
            call_id: f[7].into(),
            user_agent: f[8].into(),
            path: f
                .get(9)
                .filter(|p| !p.is_empty())
                .map(|p| p.split('\u{2}').map(str::to_string).collect())
                .unwrap_or_default(),
        })
    }
}

/// Unix time now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where registrations persist.
pub trait RegistrationStore: Send + Sync {
    /// Adds or replaces a binding.
    fn save(&self, r: &Registration) -> Result<(), String>;
    /// Removes a binding.
    fn delete(&self, r: &Registration) -> Result<(), String>;
    /// Every stored binding.
    fn load_all(&self) -> Result<Vec<Registration>, String>;
    /// Bindings other nodes sharing the store added or removed since the
    /// last call (a store of this node alone has none). Must not block.
    fn remote_changes(&self) -> Vec<RemoteChange> {
        Vec::new()
    }
    /// False when nothing outlives the process (the memory store): a live
    /// reload then hands the bindings themselves to the new version.
    fn persistent(&self) -> bool {
        true
    }
}

/// A change another node made to a shared store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteChange {
    /// Added or refreshed.
    Bind(Registration),
    /// Removed.
    Unbind(Registration),
}

/// Keeps nothing (tests, or `registration-db` set to `none`).
pub struct MemoryStore;

impl RegistrationStore for MemoryStore {
    fn save(&self, _: &Registration) -> Result<(), String> {
        Ok(())
    }
    fn delete(&self, _: &Registration) -> Result<(), String> {
        Ok(())
    }
    fn load_all(&self) -> Result<Vec<Registration>, String> {
        Ok(Vec::new())
    }
    fn persistent(&self) -> bool {
        false
    }
}

const TABLE: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("registrations");

/// The embedded store: one redb file.
pub struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    /// Opens (or creates) the file.
    pub fn open(path: &str) -> Result<RedbStore, String> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        let db = redb::Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => format!(
                "the registration store {path} is in use by another process (is another \
                 hotswitch running with the same db_dir?); give each instance its own \
                 db_dir (-base or -db) or registration-db in its profile"
            ),
            e => format!("the registration store {path} cannot be opened: {e}"),
        })?;
        Ok(RedbStore { db })
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &str>) -> Result<(), redb::StorageError>,
    ) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| e.to_string())?;
            f(&mut t).map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())
    }
}

impl RegistrationStore for RedbStore {
    fn save(&self, r: &Registration) -> Result<(), String> {
        let (k, v) = (r.key(), r.encode());
        self.write(|t| t.insert(k.as_str(), v.as_str()).map(|_| ()))
    }

    fn delete(&self, r: &Registration) -> Result<(), String> {
        let k = r.key();
        self.write(|t| t.remove(k.as_str()).map(|_| ()))
    }

    fn load_all(&self) -> Result<Vec<Registration>, String> {
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.db.begin_read().map_err(|e| e.to_string())?;
        let t = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| e.to_string())? {
            let (_, v) = row.map_err(|e| e.to_string())?;
            if let Some(r) = Registration::decode(v.value()) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Adds `r`, replacing the binding of the same profile and contact.
fn replace(m: &mut HashMap<String, Vec<Registration>>, r: Registration) {
    let list = m.entry(r.aor()).or_default();
    list.retain(|x| !(x.profile == r.profile && x.contact == r.contact));
    list.push(r);
}

/// Bindings by address-of-record, written through to a store.
pub struct Registrar {
    /// Replaced by a [`MemoryStore`] when a live reload closes it.
    store: RwLock<Arc<dyn RegistrationStore>>,
    by_aor: RwLock<HashMap<String, Vec<Registration>>>,
}

impl Registrar {
    /// Loads what the store kept (dropping lapsed bindings).
    pub fn new(store: Box<dyn RegistrationStore>) -> Result<Registrar, String> {
        let now = now_secs();
        let mut by_aor: HashMap<String, Vec<Registration>> = HashMap::new();
        for r in store.load_all()? {
            if r.expires_at > now {
                by_aor.entry(r.aor()).or_default().push(r);
            } else {
                let _ = store.delete(&r);
            }
        }
        Ok(Registrar {
            store: RwLock::new(Arc::from(store)),
            by_aor: RwLock::new(by_aor),
        })
    }

    fn store(&self) -> Arc<dyn RegistrationStore> {
        self.store.read().clone()
    }

    /// Live reload, old version: closes the store (the redb file, the
    /// PostgreSQL worker) so that the new version can open it; the
    /// bindings stay in memory, changes from now on are not stored.
    /// Returns the bindings when the store kept nothing (memory), for the
    /// new version to take over.
    pub fn close_store(&self) -> Vec<Registration> {
        let old = std::mem::replace(&mut *self.store.write(), Arc::new(MemoryStore));
        let handed = if old.persistent() {
            Vec::new()
        } else {
            self.write().values().flatten().cloned().collect()
        };
        // The last reference (a store call in flight holds another for
        // its duration): dropping it closes the file or joins the worker.
        drop(old);
        handed
    }

    /// Live reload: the store again after a reload failed (the old
    /// version goes on), or the first one of a version that keeps its
    /// bindings in memory. Bindings it holds join those in memory.
    pub fn reopen_store(&self, store: Box<dyn RegistrationStore>) {
        let store: Arc<dyn RegistrationStore> = Arc::from(store);
        let now = now_secs();
        if let Ok(all) = store.load_all() {
            let mut m = self.write();
            for r in all.into_iter().filter(|r| r.expires_at > now) {
                replace(&mut m, r);
            }
        }
        *self.store.write() = store;
    }

    /// Live reload, new version: bindings the old version kept in memory.
    pub fn adopt(&self, regs: Vec<Registration>) {
        let now = now_secs();
        for r in regs.into_iter().filter(|r| r.expires_at > now) {
            self.bind(r);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Vec<Registration>>> {
        self.sync();
        self.by_aor.read()
    }

    /// Folds in what other nodes sharing the store changed.
    fn sync(&self) {
        let changes = self.store().remote_changes();
        if !changes.is_empty() {
            let mut m = self.write();
            for c in changes {
                match c {
                    RemoteChange::Bind(r) => replace(&mut m, r),
                    RemoteChange::Unbind(r) => {
                        if let Some(list) = m.get_mut(&r.aor()) {
                            list.retain(|x| !(x.profile == r.profile && x.contact == r.contact));
                        }
                        m.retain(|_, l| !l.is_empty());
                    }
                }
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Vec<Registration>>> {
        self.by_aor.write()
    }

    /// Adds or refreshes a binding.
    pub fn bind(&self, r: Registration) {
        if let Err(e) = self.store().save(&r) {
            log::error!("registration of {} not stored: {e}", r.aor());
        }
        replace(&mut self.write(), r);
    }

    /// Removes one contact of an AOR, or all of them (`contact` = `None`).
    pub fn unbind(&self, profile: &str, aor: &str, contact: Option<&str>) {
        let mut m = self.write();
        let Some(list) = m.get_mut(aor) else {
            return;
        };
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|x| x.profile == profile && contact.is_none_or(|c| x.contact == c));
        *list = keep;
        if list.is_empty() {
            m.remove(aor);
        }
        drop(m);
        for r in gone {
            let _ = self.store().delete(&r);
        }
    }

    /// Live bindings of `user@domain` (on `profile`, when given), newest
    /// first.
    pub fn lookup(&self, aor: &str, profile: Option<&str>) -> Vec<Registration> {
        let now = now_secs();
        let mut v: Vec<Registration> = self
            .read()
            .get(aor)
            .map(|l| {
                l.iter()
                    .filter(|r| r.expires_at > now && profile.is_none_or(|p| p == r.profile))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|r| std::cmp::Reverse(r.expires_at));
        v
    }

    /// Every live binding of `profile`.
    pub fn all(&self, profile: &str) -> Vec<Registration> {
        let now = now_secs();
        let mut v: Vec<Registration> = self
            .read()
            .values()
            .flatten()
            .filter(|r| r.profile == profile && r.expires_at > now)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.aor());
        v
    }

    /// Drops lapsed bindings; returns how many.
    pub fn purge(&self, now: u64) -> usize {
        // Also drains the other nodes' changes on a node nobody calls.
        self.sync();
        let mut gone = Vec::new();
        {
            let mut m = self.write();
            for list in m.values_mut() {
                let (dead, live): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|r| r.expires_at <= now);
                *list = live;
                gone.extend(dead);
            }
            m.retain(|_, l| !l.is_empty());
        }
        for r in &gone {
            let _ = self.store().delete(r);
        }
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(contact: &str, expires_at: u64) -> Registration {
        Registration {
            profile: "internal".into(),
            user: "1000".into(),
            domain: "127.0.0.1".into(),
            contact: contact.into(),
            network: "127.0.0.1:5062".parse().unwrap(),
            transport: "UDP".into(),
            expires_at,
            call_id: "c".into(),
            user_agent: "sipp".into(),
            path: Vec::new(),
        }
    }

    #[test]
    fn bindings_survive_a_restart_in_the_redb_store() {
        let dir = std::env::temp_dir().join(format!("sofia-reg-{}", std::process::id()));
        let path = dir.join("reg.redb");
        let path = path.to_str().unwrap();
        let _ = std::fs::remove_file(path);
        let later = now_secs() + 3600;
        {
            let r = Registrar::new(Box::new(RedbStore::open(path).unwrap())).unwrap();
            r.bind(reg("sip:1000@127.0.0.1:5062", later));
            r.bind(reg("sip:1000@127.0.0.1:5064", later));
            r.unbind(
                "internal",
                "1000@127.0.0.1",
                Some("sip:1000@127.0.0.1:5064"),
            );
        }
        let r = Registrar::new(Box::new(RedbStore::open(path).unwrap())).unwrap();
        let found = r.lookup("1000@127.0.0.1", None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].contact, "sip:1000@127.0.0.1:5062");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A shared store as another node's changes reach it.
    struct Shared(Arc<hotswitch_plugin_api::sync::Mutex<Vec<RemoteChange>>>);

    impl RegistrationStore for Shared {
        fn save(&self, _: &Registration) -> Result<(), String> {
            Ok(())
        }
        fn delete(&self, _: &Registration) -> Result<(), String> {
            Ok(())
        }
        fn load_all(&self) -> Result<Vec<Registration>, String> {
            Ok(Vec::new())
        }
        fn remote_changes(&self) -> Vec<RemoteChange> {
            std::mem::take(&mut *self.0.lock())
        }
    }

    #[test]
    fn other_nodes_bindings_are_found_and_their_removals_honoured() {
        let feed = Arc::new(hotswitch_plugin_api::sync::Mutex::new(Vec::new()));
        let r = Registrar::new(Box::new(Shared(feed.clone()))).unwrap();
        let theirs = reg("sip:1000@127.0.0.1:5070", now_secs() + 60);
        feed.lock().push(RemoteChange::Bind(theirs.clone()));
        assert_eq!(
            r.lookup("1000@127.0.0.1", None),
            std::slice::from_ref(&theirs)
        );
        r.bind(reg("sip:1000@127.0.0.1:5072", now_secs() + 30));
        feed.lock().push(RemoteChange::Unbind(theirs));
        let left = r.lookup("1000@127.0.0.1", None);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].contact, "sip:1000@127.0.0.1:5072");
        // A node nobody calls still drains the feed (purge runs on a timer).
        feed.lock()
            .push(RemoteChange::Bind(reg("sip:x@h", now_secs() + 60)));
        assert_eq!(r.purge(now_secs()), 0);
        assert!(feed.lock().is_empty());
    }

    #[test]
    fn a_store_another_process_holds_is_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("sofia-lock-{}", std::process::id()));
        let path = dir.join("reg.redb");
        let path = path.to_str().unwrap();
        let _held = RedbStore::open(path).unwrap();
        let e = RedbStore::open(path).err().expect("a second open fails");
        assert!(
            e.contains("in use by another process") && e.contains("db_dir"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lapsed_bindings_are_not_found_and_are_purged() {
        let r = Registrar::new(Box::new(MemoryStore)).unwrap();
        r.bind(reg("sip:a@h", now_secs() - 1));
        r.bind(reg("sip:b@h", now_secs() + 60));
        assert_eq!(r.lookup("1000@127.0.0.1", Some("internal")).len(), 1);
        assert_eq!(r.lookup("1000@127.0.0.1", Some("external")).len(), 0);
        assert_eq!(r.purge(now_secs()), 1);
        assert_eq!(r.all("internal").len(), 1);
    }

    #[test]
    fn closing_the_store_releases_the_file_and_hands_over_only_what_memory_kept() {
        let dir = std::env::temp_dir().join(format!("sofia-close-{}", std::process::id()));
        let path = dir.join("reg.redb");
        let path = path.to_str().unwrap();
        let old = Registrar::new(Box::new(RedbStore::open(path).unwrap())).unwrap();
        old.bind(reg("sip:1000@127.0.0.1:5062", u64::MAX / 2));
        // A persistent store: nothing to hand, the file opens again.
        assert!(old.close_store().is_empty());
        let new = Registrar::new(Box::new(RedbStore::open(path).unwrap())).unwrap();
        assert_eq!(new.lookup("1000@127.0.0.1", None).len(), 1);
        // The old version still answers from memory.
        assert_eq!(old.lookup("1000@127.0.0.1", None).len(), 1);
        drop(new);
        // Reopened after a failed reload: it writes to the file again.
        old.reopen_store(Box::new(RedbStore::open(path).unwrap()));
        old.bind(reg("sip:1000@127.0.0.1:5064", u64::MAX / 2));
        drop(old);
        let again = Registrar::new(Box::new(RedbStore::open(path).unwrap())).unwrap();
        assert_eq!(again.lookup("1000@127.0.0.1", None).len(), 2);
        let _ = std::fs::remove_dir_all(dir);
        // The memory store hands its bindings over.
        let mem = Registrar::new(Box::new(MemoryStore)).unwrap();
        mem.bind(reg("sip:1000@127.0.0.1:5062", u64::MAX / 2));
        assert_eq!(mem.close_store().len(), 1);
    }
}

//! Handles a module holds: opaque ids (a slot index and a generation in a
//! host table), never addresses. Every host service looks its handle up
//! here, so a forged, stale or reused handle finds nothing and gets an
//! error status instead of making the host dereference a bad pointer.
//!
//! A slot refers to its object weakly; what keeps a session alive for a
//! module past a callback is a *hold* (FreeSWITCH's `session_locate` /
//! `rwunlock`), counted in the slot: `hold` takes one, `release` gives one
//! back, and a release without a hold is refused, not a double free.
//!
//! An id is `generation << 32 | (index + 1)`; 0 is "no handle". A slot's
//! generation moves on each time it is freed, so an old id never names the
//! slot's next object.

use crate::modules::LoadedModule;
use crate::session::Session;
use hotswitch_plugin_api::sync::RwLock;
use std::sync::{Arc, Weak};

/// Every session's handle (`SessionRef`).
pub static SESSIONS: HandleTable<Session> = HandleTable::new();
/// Every loaded module's handle (`ModuleHandle`).
pub static MODULES: HandleTable<LoadedModule> = HandleTable::new();

struct Slot<T> {
    generation: u32,
    object: Weak<T>,
    /// One strong reference while the module holds any.
    held: Option<Arc<T>>,
    holds: u32,
}

/// A table of handles to `T`.
pub struct HandleTable<T> {
    inner: RwLock<Inner<T>>,
}

struct Inner<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// Why a handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// Zero, out of range, or of an older generation.
    Invalid,
    /// Valid but nothing to release.
    NotHeld,
}

fn split(id: u64) -> Option<(usize, u32)> {
    let index = (id & 0xffff_ffff) as usize;
    (index != 0).then(|| (index - 1, (id >> 32) as u32))
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> HandleTable<T> {
    pub const fn new() -> Self {
        HandleTable {
            inner: RwLock::new(Inner {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write()
    }

    /// A new id for `object` (weak: `Arc::new_cyclic` gives one before
    /// the object exists, so the object can know its own id).
    pub fn insert(&self, object: Weak<T>) -> u64 {
        let mut w = self.write();
        let index = match w.free.pop() {
            Some(i) => {
                let slot = &mut w.slots[i as usize];
                slot.object = object;
                i
            }
            None => {
                w.slots.push(Slot {
                    generation: 1,
                    object,
                    held: None,
                    holds: 0,
                });
                (w.slots.len() - 1) as u32
            }
        };
        let generation = w.slots[index as usize].generation;
        (u64::from(generation) << 32) | (u64::from(index) + 1)
    }

    /// Frees `id`'s slot (its object is going); later lookups of it fail.
    pub fn remove(&self, id: u64) {
        let Some((index, generation)) = split(id) else {
            return;
        };
        let mut w = self.write();
        let Some(slot) = w.slots.get_mut(index) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        slot.generation = slot.generation.wrapping_add(1).max(1);
        slot.object = Weak::new();
        let held = slot.held.take();
        slot.holds = 0;
        w.free.push(index as u32);
        drop(w);
        drop(held);
    }

    /// The object `id` names, if it is still there.
    pub fn get(&self, id: u64) -> Option<Arc<T>> {
        let (index, generation) = split(id)?;
        let r = self.inner.read();
        let slot = r.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.object.upgrade()
    }

    /// Takes a hold on `id`'s object for a module: it stays alive until
    /// the hold is released.
    pub fn hold(&self, id: u64) -> Result<(), HandleError> {
        let (index, generation) = split(id).ok_or(HandleError::Invalid)?;
        let mut w = self.write();
        let slot = w.slots.get_mut(index).ok_or(HandleError::Invalid)?;
        if slot.generation != generation {
            return Err(HandleError::Invalid);
        }
        if slot.held.is_none() {
            slot.held = Some(slot.object.upgrade().ok_or(HandleError::Invalid)?);
        }
        slot.holds += 1;
        Ok(())
    }

    /// Gives back one hold; the strong reference it kept is returned (to
    /// be dropped by the caller outside the table's lock, or kept: what an
    /// endpoint's `outgoing_channel` hands over).
    pub fn release(&self, id: u64) -> Result<Option<Arc<T>>, HandleError> {
        let (index, generation) = split(id).ok_or(HandleError::Invalid)?;
        let mut w = self.write();
        let slot = w.slots.get_mut(index).ok_or(HandleError::Invalid)?;
        if slot.generation != generation {
            return Err(HandleError::Invalid);
        }
        if slot.holds == 0 {
            return Err(HandleError::NotHeld);
        }
        slot.holds -= 1;
        let object = slot.object.upgrade();
        let kept = if slot.holds == 0 {
            slot.held.take()
        } else {
            None
        };
        drop(w);
        drop(kept);
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_or_stale_id_finds_nothing() {
        let t = HandleTable::new();
        let a = Arc::new(1);
        let id = t.insert(Arc::downgrade(&a));
        assert_eq!(t.get(id).as_deref(), Some(&1));
        assert!(t.get(0).is_none());
        assert!(t.get(id + 1).is_none());
        assert!(t.get(id ^ (1 << 40)).is_none());
        assert!(t.get(u64::MAX).is_none());
        t.remove(id);
        assert!(t.get(id).is_none());
        // The slot is reused under a new generation: the old id stays dead.
        let b = Arc::new(2);
        let id2 = t.insert(Arc::downgrade(&b));
        assert_ne!(id, id2);
        assert!(t.get(id).is_none());
        assert_eq!(t.get(id2).as_deref(), Some(&2));
    }

    #[test]
    fn a_hold_keeps_the_object_and_a_release_without_one_is_refused() {
        let t = HandleTable::new();
        let a = Arc::new(7);
        let id = t.insert(Arc::downgrade(&a));
        t.hold(id).unwrap();
        let weak = Arc::downgrade(&a);
        drop(a);
        assert_eq!(t.get(id).as_deref(), Some(&7), "held");
        assert!(t.release(id).unwrap().is_some());
        assert!(weak.upgrade().is_none(), "released");
        assert_eq!(t.release(id), Err(HandleError::NotHeld));
        assert_eq!(t.hold(12345), Err(HandleError::Invalid));
    }
}

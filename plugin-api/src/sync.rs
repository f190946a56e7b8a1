//! Locks that do not poison: the only `Mutex`, `RwLock` and `Condvar` the
//! host and the modules use.
//!
//! A panic is caught at the plugin boundary and faults one module; the
//! switch goes on. `std`'s locks would then stay *poisoned* and every later
//! `lock()` would return an error that every caller has to unwrap the same
//! way. What a lock guards here is always left consistent between two
//! statements (no invariant spans a panic point), so the data behind a lock
//! whose holder panicked is used as it is, as `parking_lot` does. These are
//! thin wrappers over `std::sync` rather than `parking_lot` because
//! `parking_lot` keeps a global hash table and thread-local state in each
//! `cdylib` that links it, which a module's unload would leave behind.
//!
//! ```
//! use hotswitch_plugin_api::sync::Mutex;
//! let m = Mutex::new(1);
//! let _ = std::panic::catch_unwind(|| {
//!     let _g = m.lock();
//!     panic!("the holder panics");
//! });
//! *m.lock() += 1; // no poison to unwrap
//! assert_eq!(*m.lock(), 2);
//! ```

use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

pub use std::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

/// A mutual-exclusion lock whose [`lock`](Mutex::lock) never fails.
#[derive(Default)]
pub struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    /// The value, the lock consumed.
    pub fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is held.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock if it is free now, `None` if another thread holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The value, through the exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A reader-writer lock whose [`read`](RwLock::read) and
/// [`write`](RwLock::write) never fail.
#[derive(Default)]
pub struct RwLock<T: ?Sized>(std::sync::RwLock<T>);

impl<T> RwLock<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        RwLock(std::sync::RwLock::new(value))
    }

    /// The value, the lock consumed.
    pub fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Blocks until shared access is held.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until exclusive access is held.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value, through the exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A condition variable for [`Mutex`]: its waits hand the guard back
/// whatever another holder did.
#[derive(Default, Debug)]
pub struct Condvar(std::sync::Condvar);

impl Condvar {
    /// A condition variable no one waits on yet.
    pub const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    /// Releases the lock, waits for a notification, takes the lock again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// As [`wait`](Condvar::wait) while `condition` holds.
    pub fn wait_while<'a, T, F>(&self, guard: MutexGuard<'a, T>, condition: F) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        self.0
            .wait_while(guard, condition)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// As [`wait`](Condvar::wait) for at most `timeout`; the flag is true
    /// when the time ran out.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (g, t) = self
            .0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        (g, t.timed_out())
    }

    /// As [`wait_while`](Condvar::wait_while) for at most `timeout`; the
    /// flag is true when the time ran out with `condition` still holding.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: F,
    ) -> (MutexGuard<'a, T>, bool)
    where
        F: FnMut(&mut T) -> bool,
    {
        let (g, t) = self
            .0
            .wait_timeout_while(guard, timeout, condition)
            .unwrap_or_else(PoisonError::into_inner);
        (g, t.timed_out())
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.0.notify_one()
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.0.notify_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_holder_leaves_every_lock_usable() {
        let m = Mutex::new(vec![1]);
        let rw = RwLock::new(0);
        let _ = std::panic::catch_unwind(|| {
            let _g = m.lock();
            let _w = rw.write();
            panic!("holder panics");
        });
        m.lock().push(2);
        *rw.write() += 1;
        assert_eq!(*m.lock(), [1, 2]);
        assert_eq!(*rw.read(), 1);
        assert!(m.try_lock().is_some());
        assert_eq!(m.into_inner(), [1, 2]);
    }

    #[test]
    fn a_wait_that_times_out_says_so() {
        let m = Mutex::new(false);
        let cv = Condvar::new();
        let (g, timed_out) =
            cv.wait_timeout_while(m.lock(), Duration::from_millis(5), |ready| !*ready);
        assert!(timed_out);
        assert!(!*g);
    }
}

//! A module's memory, counted and capped: the global allocator
//! [`declare_module!`](crate::declare_module) installs in every module, and
//! the [`MemoryGauge`] the host reads.
//!
//! Each module is its own `cdylib` with its own allocator, so the bytes it
//! holds can be counted on its side: [`CountingAlloc`] forwards to the
//! system allocator and keeps the live total in the module's gauge. The
//! host finds the gauge by its exported symbol ([`MEMORY_GAUGE_SYMBOL`]),
//! sets its limit before the module's load, and its watchdog reads it.
//!
//! An allocation that would take the module over its limit does not
//! happen: the allocating thread is parked for good, inside the module.
//! It never returns null (Rust aborts the whole process on allocation
//! failure) and never unwinds (unwinding out of an allocator is undefined
//! behaviour). The gauge records that a thread is parked and the entry it
//! was in; the host's watchdog then faults the module (log and `module::fault`
//! event name the module and the entry), hangs up its sessions and, at the
//! next `unload`/`reload`, abandons the copy — left mapped, reported
//! pinned, its memory held — as for a `read_frame` that never returns.
//!
//! Until the host sets a limit (and in a module crate's own unit tests)
//! there is none; counting alone costs two uncontended atomic operations
//! per allocation.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The symbol under which a module exports its [`MemoryGauge`]
/// (NUL-terminated, for `dlsym`).
pub const MEMORY_GAUGE_SYMBOL: &[u8] = b"hotswitch_module_memory\0";

/// Version of [`MemoryGauge`]'s layout; the host reads a gauge only if it
/// knows its version.
pub const MEMORY_GAUGE_VERSION: usize = 1;

/// What a module's allocator counts; written by the module, read (and its
/// `limit` set) by the host.
#[repr(C)]
pub struct MemoryGauge {
    /// [`MEMORY_GAUGE_VERSION`] of the module that exports it.
    pub version: usize,
    /// Bytes allocated and not yet freed.
    pub live: AtomicUsize,
    /// The most `live` has been.
    pub peak: AtomicUsize,
    /// Bytes the module may hold; `usize::MAX`: no limit.
    pub limit: AtomicUsize,
    /// Threads parked because an allocation would have passed `limit`.
    pub parked: AtomicUsize,
    /// The size of the allocation the first parked thread asked for.
    pub refused: AtomicUsize,
    /// The entry (a `&'static str` of the module: `api`, `read_frame`, …)
    /// the first parked thread was in: pointer and length, null if none.
    pub entry_ptr: AtomicPtr<u8>,
    /// See `entry_ptr`.
    pub entry_len: AtomicUsize,
}

impl MemoryGauge {
    /// A gauge with nothing counted and no limit.
    pub const fn new() -> MemoryGauge {
        MemoryGauge {
            version: MEMORY_GAUGE_VERSION,
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
            parked: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            entry_ptr: AtomicPtr::new(core::ptr::null_mut()),
            entry_len: AtomicUsize::new(0),
        }
    }

    /// The entry the first parked thread was in, if one is parked.
    ///
    /// # Safety
    /// The module's library must still be mapped (the name is its static
    /// data).
    pub unsafe fn entry(&self) -> Option<&str> {
        let p = self.entry_ptr.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        let len = self.entry_len.load(Ordering::Acquire);
        // SAFETY: `p`/`len` were stored from one `&'static str` of the
        // module (see `park`), which the caller says is mapped.
        let bytes = unsafe { core::slice::from_raw_parts(p, len) };
        core::str::from_utf8(bytes).ok()
    }
}

impl Default for MemoryGauge {
    fn default() -> Self {
        MemoryGauge::new()
    }
}

thread_local! {
    /// The entry this thread is running in the module (set by the
    /// trampolines; a plain `Cell` of a static string, so reading it from
    /// the allocator never allocates).
    static ENTRY: Cell<&'static str> = const { Cell::new("") };
}

/// Marks the entry the current thread runs (for the gauge, should it
/// park); the previous one comes back when the guard drops.
pub fn enter(entry: &'static str) -> EntryGuard {
    EntryGuard(ENTRY.with(|e| e.replace(entry)))
}

/// Restores the previous entry name on drop; see [`enter`].
pub struct EntryGuard(&'static str);

impl Drop for EntryGuard {
    fn drop(&mut self) {
        let prev = self.0;
        let _ = ENTRY.try_with(|e| e.set(prev));
    }
}

/// The global allocator of a module: the system allocator, counted in
/// `gauge`, capped at its limit (see the file doc).
pub struct CountingAlloc {
    gauge: &'static MemoryGauge,
}

impl CountingAlloc {
    /// An allocator counting into `gauge`.
    pub const fn new(gauge: &'static MemoryGauge) -> CountingAlloc {
        CountingAlloc { gauge }
    }

    /// Counts `size` more bytes; false (nothing counted) when that passes
    /// the limit.
    #[inline]
    fn take(&self, size: usize) -> bool {
        let g = self.gauge;
        let before = g.live.fetch_add(size, Ordering::Relaxed);
        let now = before.wrapping_add(size);
        // A count past isize::MAX can only be an underflow (memory freed
        // here that another allocator gave, which the boundary's rules
        // forbid): never park on that.
        if now > g.limit.load(Ordering::Relaxed) && now <= isize::MAX as usize {
            g.live.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        if now > g.peak.load(Ordering::Relaxed) {
            g.peak.fetch_max(now, Ordering::Relaxed);
        }
        true
    }

    #[inline]
    fn give(&self, size: usize) {
        self.gauge.live.fetch_sub(size, Ordering::Relaxed);
    }

    /// Over the limit: record it and park this thread for good (no
    /// allocation, no unwinding; see the file doc).
    #[cold]
    fn park(&self, size: usize) -> ! {
        let g = self.gauge;
        if g.parked.fetch_add(1, Ordering::AcqRel) == 0 {
            g.refused.store(size, Ordering::Relaxed);
            let entry = ENTRY.try_with(|e| e.get()).unwrap_or("");
            let entry = if entry.is_empty() {
                "a thread of its own"
            } else {
                entry
            };
            g.entry_len.store(entry.len(), Ordering::Release);
            g.entry_ptr
                .store(entry.as_ptr() as *mut u8, Ordering::Release);
        }
        loop {
            // nanosleep: no allocation, no lock.
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

// SAFETY: every call forwards to `System` with the same layout and
// pointer; the counting never changes what is returned, and a refused
// allocation never returns at all.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.take(layout.size()) {
            self.park(layout.size());
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            self.give(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.take(layout.size()) {
            self.park(layout.size());
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            self.give(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        self.give(layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !self.take(new_size - old) {
            self.park(new_size - old);
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                self.give(new_size - old);
            }
        } else if new_size < old {
            self.give(old - new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static G: MemoryGauge = MemoryGauge::new();
    static A: CountingAlloc = CountingAlloc::new(&G);

    #[test]
    fn live_bytes_follow_alloc_realloc_and_free() {
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: pairs of calls with matching layouts.
        unsafe {
            let p = A.alloc(l);
            assert_eq!(G.live.load(Ordering::Relaxed), 100);
            let p = A.realloc(p, l, 300);
            assert_eq!(G.live.load(Ordering::Relaxed), 300);
            let p = A.realloc(p, Layout::from_size_align(300, 8).unwrap(), 50);
            assert_eq!(G.live.load(Ordering::Relaxed), 50);
            A.dealloc(p, Layout::from_size_align(50, 8).unwrap());
        }
        assert_eq!(G.live.load(Ordering::Relaxed), 0);
        assert_eq!(G.peak.load(Ordering::Relaxed), 300);
        // Over the limit the allocator refuses to count (and would park).
        G.limit.store(1000, Ordering::Relaxed);
        assert!(A.take(1000));
        assert!(!A.take(1));
        A.give(1000);
        G.limit.store(usize::MAX, Ordering::Relaxed);
    }

    /// `cargo test -p hotswitch-plugin-api --release alloc_overhead -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn alloc_overhead() {
        const N: usize = 5_000_000;
        let l = Layout::from_size_align(64, 8).unwrap();
        let time = |a: &dyn GlobalAlloc| {
            let t = std::time::Instant::now();
            for _ in 0..N {
                // SAFETY: matching alloc/dealloc.
                unsafe {
                    let p = a.alloc(l);
                    std::hint::black_box(p);
                    a.dealloc(p, l);
                }
            }
            t.elapsed().as_nanos() as f64 / N as f64
        };
        let (sys, counted) = (time(&System), time(&A));
        let (sys, counted) = (sys.min(time(&System)), counted.min(time(&A)));
        println!("alloc+free of 64 bytes: system {sys:.1} ns, counted {counted:.1} ns");
    }
}

//! How many malloc arenas the process keeps. glibc gives each thread that
//! meets contention an arena of its own, up to eight per core, and keeps
//! what each arena grew to. Under live reload (`bench/sofia_reload.py`, 100
//! calls/s, 30 reloads of mod_sofia and mod_dptools) the switch's RSS
//! went from 22 to 102 MB with glibc's default, to 78 MB with two arenas
//! per core and 71 MB with two in all, echoes no later; SIP calls at
//! 2,000/s cost no more CPU (BENCHMARKS.md). `MALLOC_ARENA_MAX` in the
//! environment still decides when it is set. After an old copy of a
//! module is purged, [`trim`] gives back what it had allocated: 30 reloads
//! at 100 calls/s then end at 51 MB, 100 at 200 calls/s at 60 MB.

/// Caps the arenas at two per core unless `MALLOC_ARENA_MAX` is set. Call
/// before other threads start.
pub fn limit() {
    #[cfg(target_env = "gnu")]
    limit_glibc();
}

#[cfg(target_env = "gnu")]
fn limit_glibc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let n = i32::try_from(cores.saturating_mul(2)).unwrap_or(i32::MAX);
    // SAFETY: mallopt only sets a parameter of the allocator.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, n) } != 1 {
        log::debug!("mallopt(M_ARENA_MAX, {n}) refused");
    }
}

/// Gives the free memory in every arena back to the kernel (glibc's
/// `malloc_trim`). Run after an old copy of a module is unloaded: what it
/// had allocated is free then, spread through the arenas, and glibc keeps
/// it otherwise.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

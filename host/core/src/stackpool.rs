//! Session workers on reused stacks.
//!
//! A worker that ran a draining copy's code ends after its job (so that the
//! copy can be purged), and under live reload hundreds of workers end and
//! start a second. With threads from `std::thread`, glibc maps each new
//! stack (`mmap`, `mprotect` for the guard) and unmaps a finished one once
//! its 40 MiB cache is full (`munmap`): each takes the process's map lock
//! for writing, and every other thread's page fault waits behind a writer —
//! a call's media thread among them (BENCHMARKS.md, "Where the delayed
//! echoes come from"). Here stacks are mapped once, handed to
//! `pthread_create` through `pthread_attr_setstack`, and reused: a finished
//! thread's stack goes back to the pool after the reaper has joined the
//! thread (so the thread has really left it), its pages given back to the
//! kernel (`madvise`, which only reads the map lock).

use hotswitch_plugin_api::sync::Mutex;
use std::ffi::c_void;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// A worker's stack, as Rust's default (2 MiB), below a guard region.
const STACK: usize = 2 << 20;
const GUARD: usize = 64 << 10;
/// Stacks kept for reuse at most (address space only: their pages are
/// given back when they are returned).
const KEEP: usize = 8192;

struct Stack {
    base: usize,
}

impl Stack {
    fn map() -> io::Result<Stack> {
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                GUARD + STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            if libc::mprotect(p, GUARD, libc::PROT_NONE) != 0 {
                let e = io::Error::last_os_error();
                libc::munmap(p, GUARD + STACK);
                return Err(e);
            }
            Ok(Stack { base: p as usize })
        }
    }

    fn top_region(&self) -> (*mut c_void, usize) {
        ((self.base + GUARD) as *mut c_void, STACK)
    }
}

static FREE: Mutex<Vec<Stack>> = Mutex::new(Vec::new());
static REAPER: OnceLock<Mutex<Sender<(libc::pthread_t, Stack)>>> = OnceLock::new();

/// Joins each finished thread, then puts its stack back.
fn reaper() -> &'static Mutex<Sender<(libc::pthread_t, Stack)>> {
    REAPER.get_or_init(|| {
        let (tx, rx) = channel::<(libc::pthread_t, Stack)>();
        let spawned = std::thread::Builder::new()
            .name("stack-reaper".into())
            .spawn(move || {
                for (tid, stack) in rx {
                    // SAFETY: `tid` is a joinable thread this module
                    // created, joined once, here.
                    unsafe { libc::pthread_join(tid, std::ptr::null_mut()) };
                    give_back(stack);
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "cannot start the stack reaper: {e}; finished workers' stacks are not reused"
            );
        }
        Mutex::new(tx)
    })
}

fn give_back(stack: Stack) {
    let (p, len) = stack.top_region();
    let mut free = FREE.lock();
    if free.len() < KEEP {
        // SAFETY: the thread that ran on it has been joined.
        unsafe { libc::madvise(p, len, libc::MADV_DONTNEED) };
        free.push(stack);
    } else {
        drop(free);
        // SAFETY: as above; nothing refers to the mapping any more.
        unsafe { libc::munmap(stack.base as *mut c_void, GUARD + STACK) };
    }
}

struct Payload {
    job: Box<dyn FnOnce() + Send>,
    stack: Stack,
    name: &'static std::ffi::CStr,
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `spawn` passed a leaked `Box<Payload>`, taken back once.
    let Payload { job, stack, name } = *unsafe { Box::from_raw(p as *mut Payload) };
    // SAFETY: the name is a NUL-terminated static string.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    let _ = catch_unwind(AssertUnwindSafe(job));
    // SAFETY: this thread's own id.
    let me = unsafe { libc::pthread_self() };
    if reaper().lock().send((me, stack)).is_err() {
        // No reaper: the stack is left mapped (a `Stack` unmaps nothing
        // when dropped) and the thread detached.
        // SAFETY: this thread's own id, not joined by anyone.
        unsafe { libc::pthread_detach(me) };
    }
    std::ptr::null_mut()
}

/// Runs `job` on a new thread called `name` (at most 15 bytes), on a
/// stack from the pool.
pub fn spawn(name: &'static std::ffi::CStr, job: Box<dyn FnOnce() + Send>) -> io::Result<()> {
    reaper();
    let stack = match FREE.lock().pop() {
        Some(s) => s,
        None => Stack::map()?,
    };
    let (p, len) = stack.top_region();
    let payload = Box::into_raw(Box::new(Payload { job, stack, name }));
    // SAFETY: the attribute is initialised before use and destroyed after;
    // the stack region is ours until the reaper has joined the thread.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstack(&mut attr, p, len);
        let mut tid: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut tid, &attr, trampoline, payload as *mut c_void);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            let back = Box::from_raw(payload);
            FREE.lock().push(back.stack);
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn a_finished_threads_stack_is_used_again() {
        let (tx, rx) = channel();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let tx = tx.clone();
            spawn(
                c"stack-test",
                Box::new(move || {
                    let x = 0u8;
                    tx.send(&x as *const u8 as usize).unwrap();
                }),
            )
            .unwrap();
            seen.insert(rx.recv().unwrap() / (GUARD + STACK));
            // Let the reaper put the stack back before the next thread
            // takes one (other tests' workers may take it meanwhile).
            for _ in 0..200 {
                if !FREE.lock().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        assert!(
            seen.len() < 25,
            "{} stacks for 50 threads: not reused",
            seen.len()
        );
    }

    #[test]
    fn a_panicking_job_ends_only_its_thread() {
        let (tx, rx) = channel();
        spawn(c"stack-panic", Box::new(|| panic!("job panics"))).unwrap();
        spawn(c"stack-ok", Box::new(move || tx.send(1).unwrap())).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }
}

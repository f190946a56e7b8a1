//! The library layer of module loading: find a module's file, copy it to a
//! private shadow path, `dlopen` the copy, check its ABI, and after
//! `dlclose` check `/proc/self/maps` to learn whether it is really gone.
//!
//! Invariant: the build output is never mapped. Only shadow copies are, each
//! at a unique path, so a rebuilt file at the same place loads as new code
//! (glibc would hand back the old image for a path, or an inode, it already
//! has), and a build overwriting the file cannot SIGBUS a mapped library.

use hotswitch_plugin_api::abi::{check_header, AbiMismatch, ModuleHeader, MODULE_HEADER_SYMBOL};
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::ModuleDescriptor;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Host threads that call into modules and account for it themselves
/// (session workers: each remembers the modules it ran, and a module's
/// unload waits until those have ended). [`threads_running_code_of`]
/// skips them: their stacks could only mislead — a stack glibc reused
/// from an exited module thread keeps that thread's stale words in the
/// slots the new thread has not written yet, and those looked like a
/// module's frames (measured: `__rust_dealloc`, `handover::probed` in
/// idle session workers) — and reading a thousand workers' /proc files
/// took 70–230 ms of a loaded core at every purge.
static ACCOUNTED_THREADS: Mutex<Option<HashSet<i64>>> = Mutex::new(None);

/// What [`threads_running_code_of`] learnt of each thread it looked at:
/// tid → (start time, the files of its outermost code addresses — the
/// code that started it). A thread started by other code is not looked at
/// again: under load, reading every thread's `syscall` file and stack at
/// each purge took 350–590 ms and stalled the switch's media with it.
#[allow(clippy::type_complexity)]
static THREAD_STARTS: Mutex<Option<HashMap<i64, (u64, Vec<String>)>>> = Mutex::new(None);

/// The calling thread's id (`/proc/thread-self` names it).
fn gettid() -> i64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(-1)
}

/// Marks the calling thread as one that accounts for the module code it
/// runs (until [`thread_unaccounted`]).
pub fn thread_accounted() {
    ACCOUNTED_THREADS
        .lock()
        .get_or_insert_with(HashSet::new)
        .insert(gettid());
}

/// The calling thread is ending.
pub fn thread_unaccounted() {
    if let Some(s) = ACCOUNTED_THREADS.lock().as_mut() {
        s.remove(&gettid());
    }
}

/// Why a module could not be opened.
#[derive(Debug)]
pub enum LoadError {
    BadName(String),
    NotFound {
        name: String,
        dirs: Vec<PathBuf>,
    },
    Copy {
        from: PathBuf,
        reason: String,
    },
    Open {
        file: PathBuf,
        reason: String,
    },
    NotAModule {
        file: PathBuf,
    },
    Abi {
        file: PathBuf,
        mismatch: AbiMismatch,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::BadName(n) => write!(f, "invalid module name '{n}'"),
            LoadError::NotFound { name, dirs } => {
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "module {name} not found (looked for {name}.so and lib{name}.so in: {})",
                    dirs.join(", ")
                )
            }
            LoadError::Copy { from, reason } => {
                write!(
                    f,
                    "cannot copy {} to a shadow path: {reason}",
                    from.display()
                )
            }
            LoadError::Open { file, reason } => {
                write!(f, "cannot open {}: {reason}", file.display())
            }
            LoadError::NotAModule { file } => write!(
                f,
                "{} is not a hotswitch module (no hotswitch_module_header symbol)",
                file.display()
            ),
            LoadError::Abi { file, mismatch } => {
                write!(f, "{} refused: {mismatch}", file.display())
            }
        }
    }
}

/// What identifies one build of a file on disk: a rebuilt module differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub mtime: SystemTime,
    pub size: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            mtime: m.modified().ok()?,
            size: m.len(),
            inode: m.ino(),
        })
    }
}

/// Checks that a module name is a plain file stem (no path tricks).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !name.starts_with('.')
}

/// Finds `mod_x.so` or cargo's `libmod_x.so` in `dirs`, in order.
pub fn find_module(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, LoadError> {
    if !valid_name(name) {
        return Err(LoadError::BadName(name.to_string()));
    }
    let stem = name.strip_suffix(".so").unwrap_or(name);
    for d in dirs {
        for candidate in [format!("{stem}.so"), format!("lib{stem}.so")] {
            let p = d.join(candidate);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(LoadError::NotFound {
        name: stem.to_string(),
        dirs: dirs.to_vec(),
    })
}

/// A module library opened from its shadow copy.
pub struct ShadowLib {
    lib: Option<libloading::Library>,
    pub shadow: PathBuf,
    pub source: PathBuf,
    pub source_id: Option<FileId>,
    /// Set when the file asks the dynamic linker never to unload it.
    pub nodelete: bool,
    descriptor: *const ModuleDescriptor,
    abi_minor: u32,
}

// The library handle and descriptor pointer are used from whichever host
// thread runs the module operation; the module manager serialises them.
/// A module's [`HandoverTable`](hotswitch_plugin_api::handover::HandoverTable),
/// with its strings copied into the host.
#[derive(Clone, Debug)]
pub struct HandoverInfo {
    pub format: String,
    pub version: u32,
    pub reads_from: u32,
    pub export: unsafe extern "C" fn(
        sink: *const hotswitch_plugin_api::handover::HandoverSink,
    ) -> hotswitch_plugin_api::Status,
    pub resume: unsafe extern "C" fn() -> hotswitch_plugin_api::Status,
    pub deliver:
        unsafe extern "C" fn(delivery: *const hotswitch_plugin_api::handover::DeliveryDesc) -> u32,
}

unsafe impl Send for ShadowLib {}
unsafe impl Sync for ShadowLib {}

/// How `close` went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The shadow copy is no longer mapped and was deleted.
    Unmapped,
    /// Still mapped after `dlclose`: the reason we know or suspect.
    Pinned(String),
}

impl ShadowLib {
    /// Copies `source` to `shadow`, opens the copy, and checks its ABI.
    pub fn open(source: &Path, shadow: PathBuf) -> Result<ShadowLib, LoadError> {
        let source_id = FileId::of(source);
        std::fs::copy(source, &shadow).map_err(|e| LoadError::Copy {
            from: source.to_path_buf(),
            reason: e.to_string(),
        })?;
        let nodelete = elf_has_nodelete(&shadow);
        let cleanup = |e: LoadError| {
            let _ = std::fs::remove_file(&shadow);
            e
        };
        // RTLD_NOW: an unresolved symbol fails the load now, not a call later.
        // RTLD_LOCAL: modules never see each other's symbols.
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(&shadow),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
            )
        }
        .map_err(|e| LoadError::Open {
            file: source.to_path_buf(),
            reason: e.to_string(),
        })
        .map_err(cleanup)?;
        let lib: libloading::Library = lib.into();
        let mut me = ShadowLib {
            lib: Some(lib),
            shadow: shadow.clone(),
            source: source.to_path_buf(),
            source_id,
            nodelete,
            descriptor: std::ptr::null(),
            abi_minor: 0,
        };
        match me.check() {
            Ok((d, minor)) => {
                me.descriptor = d;
                me.abi_minor = minor;
                Ok(me)
            }
            Err(e) => {
                // Closing a library whose code never ran; its outcome does
                // not matter beyond deleting the copy.
                let _ = me.close();
                Err(e)
            }
        }
    }

    fn check(&self) -> Result<(*const ModuleDescriptor, u32), LoadError> {
        let lib = self.lib.as_ref().expect("open library");
        // SAFETY: a data symbol; we only read through it after the header's
        // magic and version say how.
        let header: *const ModuleHeader = unsafe {
            match lib
                .get::<*const ModuleHeader>(&MODULE_HEADER_SYMBOL[..MODULE_HEADER_SYMBOL.len() - 1])
            {
                Ok(sym) => *sym,
                Err(_) => {
                    return Err(LoadError::NotAModule {
                        file: self.source.clone(),
                    })
                }
            }
        };
        if header.is_null() {
            return Err(LoadError::NotAModule {
                file: self.source.clone(),
            });
        }
        // SAFETY: the library stays open while we read its header.
        unsafe { check_header(header) }.map_err(|mismatch| LoadError::Abi {
            file: self.source.clone(),
            mismatch,
        })?;
        // SAFETY: the check above proved the descriptor's layout is ours.
        // SAFETY: checked above; the library is open.
        Ok(unsafe {
            (
                (*header).descriptor as *const ModuleDescriptor,
                (*header).abi_minor,
            )
        })
    }

    /// The gauge the module's counting allocator keeps
    /// ([`hotswitch_plugin_api::alloc`]), if it exports one this host
    /// knows. Valid while the library stays mapped.
    pub fn memory_gauge(&self) -> Option<*const hotswitch_plugin_api::alloc::MemoryGauge> {
        use hotswitch_plugin_api::alloc::{MemoryGauge, MEMORY_GAUGE_SYMBOL, MEMORY_GAUGE_VERSION};
        let lib = self.lib.as_ref()?;
        let sym = &MEMORY_GAUGE_SYMBOL[..MEMORY_GAUGE_SYMBOL.len() - 1];
        // SAFETY: a data symbol of the open library, read as the gauge
        // only once its version field says its layout is ours.
        let g: *const MemoryGauge = unsafe { *lib.get::<*const MemoryGauge>(sym).ok()? };
        // SAFETY: `version` is the first field of every gauge layout.
        (!g.is_null() && unsafe { (*g).version } == MEMORY_GAUGE_VERSION).then_some(g)
    }

    /// The module's descriptor.
    /// The module's live-reload contract, copied: read only from a module
    /// built against ABI minor 2 or later (an older one's descriptor ends
    /// before the field).
    pub fn handover(&self) -> Option<HandoverInfo> {
        if self.abi_minor < 2 {
            return None;
        }
        let d = self.descriptor();
        // SAFETY: a module of minor >= 2 has the field; the table is static
        // data of the open library; its strings are copied.
        let t = unsafe { d.handover.as_ref()? };
        Some(HandoverInfo {
            format: unsafe { t.format.to_str().into_owned() },
            version: t.version,
            reads_from: t.reads_from,
            export: t.export,
            resume: t.resume,
            deliver: t.deliver,
        })
    }

    pub fn descriptor(&self) -> &ModuleDescriptor {
        // SAFETY: set by `open` after the ABI check; valid while `lib` is open.
        unsafe { &*self.descriptor }
    }

    /// `dlclose`s the library, then checks whether its shadow copy is still
    /// mapped; deletes the copy if it is gone.
    pub fn close(&mut self) -> CloseOutcome {
        let Some(lib) = self.lib.take() else {
            return CloseOutcome::Unmapped;
        };
        let closed = lib.close();
        if is_mapped(&self.shadow) {
            let why = match closed {
                Err(e) => format!("dlclose failed: {e}"),
                Ok(()) if self.nodelete => "the library is marked NODELETE".to_string(),
                Ok(()) => "still mapped after dlclose (a thread-local destructor registered by its code is pending, or another reference holds it)".to_string(),
            };
            CloseOutcome::Pinned(why)
        } else {
            let _ = std::fs::remove_file(&self.shadow);
            CloseOutcome::Unmapped
        }
    }

    /// Gives up on closing: the library stays mapped for the life of the
    /// process (used when a module's thread would not stop, since unmapping
    /// code that still runs would crash the switch).
    pub fn leak(&mut self) {
        if let Some(lib) = self.lib.take() {
            std::mem::forget(lib);
        }
    }
}

impl Drop for ShadowLib {
    fn drop(&mut self) {
        if self.lib.is_some() {
            let _ = self.close();
        }
    }
}

/// True when `path` appears in `/proc/self/maps`. Maps that cannot be
/// read count as "still mapped": deleting or reusing a copy that may be
/// mapped is what must never happen.
pub fn is_mapped(path: &Path) -> bool {
    match std::fs::read_to_string("/proc/self/maps") {
        Ok(maps) => maps_contain(&maps, path),
        Err(e) => {
            log::warn!(
                "cannot read /proc/self/maps ({e}): {} is taken as still mapped",
                path.display()
            );
            true
        }
    }
}

/// True when a line of `maps` (the `/proc/<pid>/maps` text) maps `path`.
fn maps_contain(maps: &str, path: &Path) -> bool {
    let needle = path.to_string_lossy();
    maps.lines().filter_map(map_path).any(|p| {
        p == needle
            || p.strip_suffix(" (deleted)")
                .is_some_and(|p| p == needle.as_ref())
    })
}

/// The path of one maps line: everything after the fifth field (address,
/// perms, offset, device, inode), which may itself hold spaces.
fn map_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let p = rest.trim_start();
    (!p.is_empty()).then_some(p)
}

/// Threads of this process (other than the caller) started by `path`'s
/// code and still running it (one a module started and did not join),
/// which would crash the switch once the library is unmapped: their
/// program counter is in the library, or one of the outermost return
/// addresses on their stack (the thread's start function) is. Read from
/// `/proc/self/task/*/syscall` (each thread's stack pointer and program
/// counter) and `/proc/self/mem`; a thread busy outside a system call
/// cannot be read this way and is not counted. The threads the host
/// accounts for ([`thread_accounted`]) are skipped.
pub fn threads_running_code_of(path: &Path) -> usize {
    let t0 = std::time::Instant::now();
    let needle = path.to_string_lossy();
    let me = gettid().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let accounted = || ACCOUNTED_THREADS.lock().clone().unwrap_or_default();
    let skip = accounted();
    let mut starts = THREAD_STARTS.lock();
    let starts = starts.get_or_insert_with(HashMap::new);
    let mut alive = HashSet::new();
    let tids: Vec<String> = tasks
        .flatten()
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .filter(|tid| *tid != me && !tid.parse().is_ok_and(|t: i64| skip.contains(&t)))
        .filter(|tid| {
            // A thread known to have been started by other code is not
            // looked at again: only a thread the library started can run
            // its code now (calls into it hold a guard, and it has none).
            let (Ok(t), Some(born)) = (tid.parse::<i64>(), thread_start_time(tid)) else {
                return true;
            };
            alive.insert(t);
            match starts.get(&t) {
                Some((b, libs)) if *b == born => libs.iter().any(|l| is_path(l, &needle)),
                _ => true,
            }
        })
        .collect();
    starts.retain(|t, _| alive.contains(t));
    let n_all = alive.len();
    if tids.is_empty() {
        // Nothing the library may have started: no need for the maps
        // (reading them under load is what costs).
        return 0;
    }
    let t1 = std::time::Instant::now();
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let Ok(mem) = std::fs::File::open("/proc/self/mem") else {
        return 0;
    };
    let mut code: Vec<(u64, u64)> = Vec::new();
    let mut all: Vec<(u64, u64)> = Vec::new();
    let mut exec: Vec<(u64, u64)> = Vec::new();
    let mut exec_paths: Vec<(u64, u64, String)> = Vec::new();
    let mut libc: Vec<(u64, u64)> = Vec::new();
    for l in maps.lines() {
        let mut w = l.split_whitespace();
        let (Some(range), Some(perms)) = (w.next(), w.next()) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else {
            continue;
        };
        all.push((lo, hi));
        if perms.contains('x') {
            exec.push((lo, hi));
            if let Some(p) = map_path(l) {
                exec_paths.push((lo, hi, p.to_string()));
            }
            if map_path(l).is_some_and(is_libc) {
                libc.push((lo, hi));
            }
            if map_path(l).is_some_and(|p| p == needle) {
                code.push((lo, hi));
            }
        }
    }
    if code.is_empty() {
        return 0;
    }
    let in_code = |a: u64| code.iter().any(|&(lo, hi)| a >= lo && a < hi);
    let in_exec = |a: u64| exec.iter().any(|&(lo, hi)| a >= lo && a < hi);
    let in_libc = |a: u64| libc.iter().any(|&(lo, hi)| a >= lo && a < hi);
    // Where a thread runs the library's code: its program counter, or an
    // outermost frame of its stack.
    // Some(None): running now, so unreadable.
    let mut look = |tid: &str| -> Option<Option<(bool, u64)>> {
        let sc = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
        let words: Vec<&str> = sc.split_whitespace().collect();
        if sc.trim() == "running" {
            return Some(None);
        }
        if words.len() < 3 {
            return None; // no user context
        }
        let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
        let sp = hex(words[words.len() - 2])?;
        let pc = hex(words[words.len() - 1])?;
        let outer = outermost_code(&mem, sp, &all, &in_exec, &in_libc);
        // In a system call, so past its start function: what that is
        // stays true for the thread's life (its start time tells a reused
        // tid apart).
        if let (Ok(t), Some(born), Some(outer)) =
            (tid.parse::<i64>(), thread_start_time(tid), outer.as_ref())
        {
            let libs = outer
                .iter()
                .filter_map(|&a| {
                    exec_paths
                        .iter()
                        .find(|(lo, hi, _)| a >= *lo && a < *hi)
                        .map(|(_, _, p)| p.clone())
                })
                .collect();
            starts.insert(t, (born, libs));
        }
        if in_code(pc) {
            return Some(Some((true, pc)));
        }
        outer?
            .into_iter()
            .find(|&a| in_code(a))
            .map(|a| Some((false, a)))
    };
    let n_look = tids.len();
    let mut suspects: Vec<String> = tids
        .into_iter()
        .filter(|t| look(t).is_some_and(|f| f.is_some()))
        .collect();
    log::debug!(
        "thread check of {needle}: {n_all} threads, {n_look} looked at ({:.1} ms to choose them, {:.1} ms to look), {} suspect(s)",
        (t1 - t0).as_secs_f64() * 1e3,
        t1.elapsed().as_secs_f64() * 1e3,
        suspects.len()
    );
    // A session worker the spawner just started has not said it is one
    // yet, and its stack — reused from an exited module thread — may
    // still hold that thread's words: look again once it had time to.
    for _ in 0..5 {
        if suspects.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let skip = accounted();
        suspects.retain(|t| !t.parse().is_ok_and(|t: i64| skip.contains(&t)) && look(t).is_some());
    }
    let base = code.iter().map(|&(lo, _)| lo).min().unwrap_or(0);
    let mut found = 0;
    for tid in suspects {
        let Some(seen) = look(&tid) else {
            continue;
        };
        let name =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        let how = match seen {
            Some((true, addr)) => format!("program counter at {addr:#x}"),
            Some((false, addr)) => format!("on its stack at {addr:#x}"),
            None => "seen on its stack, running now".to_string(),
        };
        log::warn!(
            "thread {tid} ({}) runs code of {} ({how}; its code from {base:#x})",
            name.trim(),
            path.display(),
        );
        found += 1;
    }
    found
}

/// How many code addresses after libc's thread start [`outermost_code`] looks
/// at: the thread's own start function and its caller. Deeper, a stack
/// reused from glibc's cache may still hold stale addresses of an earlier
/// thread's calls.
const OUTERMOST_FRAMES: usize = 2;

/// The C library's own file (`libc.so.6`).
fn is_libc(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("libc.so") || f.starts_with("libc-"))
}

/// The outermost code addresses on the stack from `sp` to the end of its
/// mapping (at most 1 MiB), [`OUTERMOST_FRAMES`] of them.
/// From the top: the thread's descriptor and static TLS (whose values may
/// name any library's code), then libc's thread start, then the thread's
/// own start function — in the library that spawned it (measured: a
/// module's thread has its std's `thread_start` there, a host thread the
/// host's).
fn outermost_code(
    mem: &std::fs::File,
    sp: u64,
    maps: &[(u64, u64)],
    in_exec: &dyn Fn(u64) -> bool,
    in_libc: &dyn Fn(u64) -> bool,
) -> Option<Vec<u64>> {
    use std::os::unix::fs::FileExt;
    let &(_, end) = maps.iter().find(|&&(lo, hi)| sp >= lo && sp < hi)?;
    let len = (end - sp).min(1 << 20) as usize;
    let mut buf = vec![0u8; len];
    let n = mem.read_at(&mut buf, sp).ok()?;
    Some(
        buf[..n]
            .chunks_exact(8)
            .rev()
            .filter_map(|c| c.try_into().ok().map(u64::from_ne_bytes))
            .filter(|&a| in_exec(a))
            .skip_while(|&a| !in_libc(a))
            .skip_while(|&a| in_libc(a))
            .take(OUTERMOST_FRAMES)
            .collect(),
    )
}

/// A thread's start time (`/proc/self/task/<tid>/stat`, field 22, in
/// clock ticks since boot): with the tid, it names one thread for good.
fn thread_start_time(tid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // After the name in parentheses (which may hold anything): field 3 on.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when the maps path `p` is `needle` (or it, deleted).
fn is_path(p: &str, needle: &str) -> bool {
    p == needle || p.strip_suffix(" (deleted)") == Some(needle)
}

/// How many distinct files are mapped into this process whose names end
/// in `.so` under `dir`.
pub fn mapped_count_under(dir: &Path) -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let prefix = dir.to_string_lossy();
    let mut seen: Vec<&str> = maps
        .lines()
        .filter_map(map_path)
        .filter(|p| p.starts_with(prefix.as_ref()))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Reads the ELF dynamic section for `DF_1_NODELETE` (64-bit little-endian
/// only, the only kind we build), reading just the headers and the dynamic
/// section; any trouble answers false.
fn elf_has_nodelete(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    const DT_FLAGS_1: u64 = 0x6fff_fffb;
    const DF_1_NODELETE: u64 = 0x8;
    const PT_DYNAMIC: u32 = 2;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut read_at = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(off)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let word = |b: &[u8], o: usize| -> u64 {
        b.get(o..o + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    let Some(eh) = read_at(0, 64) else {
        return false;
    };
    if &eh[0..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return false;
    }
    let phoff = word(&eh, 0x20);
    let phentsize = u16::from_le_bytes([eh[0x36], eh[0x37]]) as usize;
    let phnum = u16::from_le_bytes([eh[0x38], eh[0x39]]) as usize;
    if phentsize < 56 || phnum > 512 {
        return false;
    }
    let Some(ph) = read_at(phoff, phentsize * phnum) else {
        return false;
    };
    for i in 0..phnum {
        let p = &ph[i * phentsize..(i + 1) * phentsize];
        if u32::from_le_bytes([p[0], p[1], p[2], p[3]]) != PT_DYNAMIC {
            continue;
        }
        let (off, size) = (word(p, 8), word(p, 32) as usize);
        if size > 1 << 20 {
            return false;
        }
        let Some(dynamic) = read_at(off, size) else {
            return false;
        };
        for entry in dynamic.chunks_exact(16) {
            let (tag, val) = (word(entry, 0), word(entry, 8));
            if tag == 0 {
                break;
            }
            if tag == DT_FLAGS_1 && val & DF_1_NODELETE != 0 {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_start_time_is_read_and_names_it_for_good() {
        let tid = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = tid.file_name().unwrap().to_string_lossy().into_owned();
        let born = thread_start_time(&tid).expect("a start time");
        assert_eq!(thread_start_time(&tid), Some(born));
        assert_eq!(thread_start_time("not-a-tid"), None);
        assert!(is_path("/x/m.1.so (deleted)", "/x/m.1.so"));
        assert!(!is_path("/x/m.10.so", "/x/m.1.so"));
    }

    #[test]
    fn module_names_with_paths_are_refused() {
        assert!(valid_name("mod_sofia"));
        assert!(valid_name("libmod_x.so"));
        assert!(!valid_name("../mod_x"));
        assert!(!valid_name("/tmp/mod_x"));
        assert!(!valid_name(""));
        assert!(matches!(
            find_module("../../etc/passwd", &[PathBuf::from("/")]),
            Err(LoadError::BadName(_))
        ));
    }

    #[test]
    fn a_missing_module_lists_where_it_was_looked_for() {
        let e = find_module("mod_nope", &[PathBuf::from("/nonexistent")]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("mod_nope.so") && s.contains("/nonexistent"),
            "{s}"
        );
    }

    #[test]
    fn a_mapped_path_with_spaces_is_found_and_a_prefix_of_it_is_not() {
        let maps =
            "7f00-7f01 r-xp 00000000 08:01 1234                       /tmp/my run/mod_x.1.so\n\
                    7f02-7f03 r--p 00000000 08:01 99 /tmp/gone.so (deleted)\n\
                    7f04-7f05 rw-p 00000000 00:00 0 \n";
        assert!(maps_contain(maps, Path::new("/tmp/my run/mod_x.1.so")));
        assert!(!maps_contain(maps, Path::new("/tmp/my")));
        assert!(!maps_contain(maps, Path::new("/tmp/my run/mod_x.1")));
        assert!(maps_contain(maps, Path::new("/tmp/gone.so")));
    }

    #[test]
    fn the_c_library_is_mapped_and_a_made_up_path_is_not() {
        assert!(!is_mapped(Path::new("/no/such/lib.so")));
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("libc"))
            .expect("libc mapped");
        assert!(is_mapped(Path::new(libc)));
    }

    #[test]
    fn a_library_linked_nodelete_is_recognised_and_a_normal_one_is_not() {
        let dir = std::env::temp_dir().join(format!("hs-nodelete-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.c"), "int f(void) { return 1; }\n").unwrap();
        let build = |out: &str, extra: &[&str]| {
            let st = std::process::Command::new("cc")
                .args(["-shared", "-fPIC", "-o"])
                .arg(dir.join(out))
                .arg(dir.join("a.c"))
                .args(extra)
                .status()
                .expect("a C compiler (cc) to build the test libraries");
            assert!(st.success());
            dir.join(out)
        };
        let pinned = build("libpinned.so", &["-Wl,-z,nodelete"]);
        let normal = build("libnormal.so", &[]);
        assert!(elf_has_nodelete(&pinned));
        assert!(!elf_has_nodelete(&normal));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_file_is_not_taken_for_nodelete() {
        let p = std::env::temp_dir().join(format!("hs-nodelete-{}", std::process::id()));
        std::fs::write(&p, b"not an elf").unwrap();
        assert!(!elf_has_nodelete(&p));
        let _ = std::fs::remove_file(&p);
    }
}

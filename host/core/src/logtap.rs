//! The host's logger: every record goes to env_logger (stderr) and to the
//! subscribers that asked for log records (the event socket's `log`
//! command). Subscribers have bounded queues: a slow one loses records, it
//! never slows whoever is logging.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hotswitch_plugin_api::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// One log record, owned.
#[derive(Clone, Debug)]
pub struct LogRecord {
    pub level: log::Level,
    pub target: String,
    pub file: String,
    pub line: u32,
    pub text: String,
    pub time: chrono::DateTime<chrono::Local>,
}

impl LogRecord {
    /// FreeSWITCH's numeric level (3 error, 4 warning, 6 info, 7 debug).
    pub fn fs_level(&self) -> u32 {
        match self.level {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        }
    }

    /// The line as the console prints it.
    pub fn formatted(&self) -> String {
        format!(
            "{} [{}] {}: {}\n",
            self.time.format("%Y-%m-%d %H:%M:%S%.6f"),
            self.level,
            self.target,
            self.text
        )
    }
}

struct Tap {
    id: u64,
    level: log::LevelFilter,
    tx: Sender<Arc<LogRecord>>,
    dropped: Arc<AtomicU64>,
}

static TAPS: RwLock<Vec<Tap>> = RwLock::new(Vec::new());
/// The console's (stderr's) level; taps have their own, so that an event
/// socket asking for `log debug` gets debug records whatever the console
/// shows. The global `log::max_level` is the larger of them all.
static CONSOLE_LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(3);

fn level_from(n: usize) -> log::LevelFilter {
    match n {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Sets the level written to stderr.
pub fn set_console_level(level: log::LevelFilter) {
    CONSOLE_LEVEL.store(level as usize, Ordering::Release);
    recompute(&TAPS.read());
}

/// The level written to stderr.
pub fn console_level() -> log::LevelFilter {
    level_from(CONSOLE_LEVEL.load(Ordering::Acquire))
}

/// `fsctl loglevel`: the ceiling over the console and every tap.
static HARD_LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(5);
/// `console colorize`: the console's lines coloured by level.
static COLORIZE: AtomicBool = AtomicBool::new(false);

/// Sets the ceiling no record above which is logged anywhere.
pub fn set_hard_level(level: log::LevelFilter) {
    HARD_LEVEL.store(level as usize, Ordering::Release);
    recompute(&TAPS.read());
}

fn hard_level() -> log::LevelFilter {
    level_from(HARD_LEVEL.load(Ordering::Acquire))
}

/// Whether the console colours its lines.
pub fn colorize() -> bool {
    COLORIZE.load(Ordering::Relaxed)
}

pub fn set_colorize(on: bool) {
    COLORIZE.store(on, Ordering::Relaxed);
}

/// The escape sequence mod_console colours a level with.
pub fn color_of(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "\x1b[31m",
        log::Level::Warn => "\x1b[35m",
        log::Level::Info => "\x1b[32m",
        log::Level::Debug | log::Level::Trace => "\x1b[33m",
    }
}

fn recompute(taps: &[Tap]) {
    let max = taps
        .iter()
        .map(|t| t.level)
        .fold(console_level(), |a, b| a.max(b));
    log::set_max_level(max.min(hard_level()));
}
static ANY_TAP: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Starts receiving records at `level` or more severe.
pub fn tap(
    level: log::LevelFilter,
    capacity: usize,
) -> (u64, Receiver<Arc<LogRecord>>, Arc<AtomicU64>) {
    let (tx, rx) = bounded(capacity);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let dropped = Arc::new(AtomicU64::new(0));
    let mut t = TAPS.write();
    t.push(Tap {
        id,
        level,
        tx,
        dropped: dropped.clone(),
    });
    ANY_TAP.store(true, Ordering::Release);
    recompute(&t);
    (id, rx, dropped)
}

/// Changes a tap's level.
pub fn set_level(id: u64, level: log::LevelFilter) {
    let mut t = TAPS.write();
    if let Some(tap) = t.iter_mut().find(|t| t.id == id) {
        tap.level = level;
    }
    recompute(&t);
}

/// Stops a tap.
pub fn untap(id: u64) {
    let mut t = TAPS.write();
    t.retain(|tap| tap.id != id);
    ANY_TAP.store(!t.is_empty(), Ordering::Release);
    recompute(&t);
}

/// env_logger plus the taps.
pub struct HostLogger {
    inner: env_logger::Logger,
}

impl HostLogger {
    pub fn new(inner: env_logger::Logger) -> HostLogger {
        HostLogger { inner }
    }
}

impl log::Log for HostLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        self.inner.enabled(m) || ANY_TAP.load(Ordering::Acquire)
    }

    fn log(&self, r: &log::Record) {
        if r.level() > hard_level() {
            return;
        }
        if r.level() <= console_level() && self.inner.enabled(r.metadata()) {
            self.inner.log(r);
        }
        if !ANY_TAP.load(Ordering::Acquire) {
            return;
        }
        let taps = TAPS.read();
        let mut rec: Option<Arc<LogRecord>> = None;
        for t in taps.iter().filter(|t| r.level() <= t.level) {
            let rec = rec
                .get_or_insert_with(|| {
                    Arc::new(LogRecord {
                        level: r.level(),
                        target: r.target().to_string(),
                        file: r.file().unwrap_or("").to_string(),
                        line: r.line().unwrap_or(0),
                        text: r.args().to_string(),
                        time: chrono::Local::now(),
                    })
                })
                .clone();
            if let Err(TrySendError::Full(_)) = t.tx.try_send(rec) {
                t.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

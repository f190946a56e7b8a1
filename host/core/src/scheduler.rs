//! Timed work: `sched_api` tasks (once at a time, after a delay, or
//! recurring) and the HEARTBEAT event (every 20 s by default,
//! `event-heartbeat-interval` in switch.conf). One host thread sleeps until
//! the next deadline.

use crate::core::Core;
use crate::event::EventType;
use crate::origin;
use hotswitch_plugin_api::sync::{Condvar, Mutex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Task {
    when: Instant,
    id: u64,
    group: String,
    command: String,
    every: Option<Duration>,
}

/// The scheduled tasks.
pub struct Scheduler {
    tasks: Mutex<BinaryHeap<Reverse<Task>>>,
    cv: Condvar,
    next_id: AtomicU64,
    pub heartbeat_secs: AtomicU64,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            tasks: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            heartbeat_secs: AtomicU64::new(20),
        }
    }
}

/// When a `sched_api` task runs: `+N` seconds from now, `@N` every N
/// seconds, or a Unix time.
pub fn parse_when(s: &str) -> Option<(Instant, Option<Duration>)> {
    let now = Instant::now();
    if let Some(n) = s.strip_prefix('+') {
        return Some((now + Duration::from_secs(n.parse().ok()?), None));
    }
    if let Some(n) = s.strip_prefix('@') {
        let every = Duration::from_secs(n.parse::<u64>().ok()?.max(1));
        return Some((now + every, Some(every)));
    }
    let epoch: u64 = s.parse().ok()?;
    let now_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some((
        now + Duration::from_secs(epoch.saturating_sub(now_epoch)),
        None,
    ))
}

impl Scheduler {
    /// Adds a task; returns its id.
    pub fn add(&self, when: Instant, every: Option<Duration>, group: &str, command: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tasks.lock().push(Reverse(Task {
            when,
            id,
            group: group.to_string(),
            command: command.to_string(),
            every,
        }));
        self.cv.notify_all();
        id
    }

    /// Removes tasks by id or group; how many went.
    pub fn remove(&self, id_or_group: &str) -> usize {
        let mut t = self.tasks.lock();
        let before = t.len();
        let keep: Vec<_> = t
            .drain()
            .filter(|Reverse(x)| x.id.to_string() != id_or_group && x.group != id_or_group)
            .collect();
        let removed = before - keep.len();
        t.extend(keep);
        removed
    }

    /// The waiting tasks, soonest first: (id, command, group, when as a
    /// Unix time) — the rows of FreeSWITCH's `show tasks`.
    pub fn list(&self) -> Vec<(u64, String, String, u64)> {
        let now = Instant::now();
        let now_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut v: Vec<_> = self
            .tasks
            .lock()
            .iter()
            .map(|Reverse(t)| {
                let at = now_epoch + t.when.saturating_duration_since(now).as_secs();
                (t.id, t.command.clone(), t.group.clone(), at)
            })
            .collect();
        v.sort_by_key(|t| (t.3, t.0));
        v
    }

    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.tasks.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts the scheduler thread.
pub fn start(core: &Arc<Core>) {
    let weak = Arc::downgrade(core);
    let spawned = std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let mut next_heartbeat = Instant::now();
            loop {
                let Some(core) = weak.upgrade() else { return };
                if core.is_shutting_down() {
                    return;
                }
                let now = Instant::now();
                if now >= next_heartbeat {
                    heartbeat(&core);
                    let secs = core.scheduler.heartbeat_secs.load(Ordering::Relaxed);
                    next_heartbeat = now + Duration::from_secs(secs);
                }
                let due: Vec<Task> = {
                    let mut t = core.scheduler.tasks.lock();
                    let mut due = Vec::new();
                    while t.peek().is_some_and(|Reverse(x)| x.when <= now) {
                        if let Some(Reverse(x)) = t.pop() {
                            due.push(x);
                        }
                    }
                    due
                };
                for task in due {
                    let out = core.execute_line(&task.command);
                    log::debug!("sched_api {} [{}]: {}", task.id, task.command, out.trim());
                    if let Some(every) = task.every {
                        core.scheduler.tasks.lock().push(Reverse(Task {
                            when: Instant::now() + every,
                            ..task
                        }));
                    }
                }
                let wait_until = {
                    let t = core.scheduler.tasks.lock();
                    t.peek()
                        .map(|Reverse(x)| x.when)
                        .unwrap_or(next_heartbeat)
                        .min(next_heartbeat)
                };
                let t = core.scheduler.tasks.lock();
                let wait = wait_until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500));
                drop(core.scheduler.cv.wait_timeout(t, wait));
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the scheduler: {e}");
    }
}

fn heartbeat(core: &Arc<Core>) {
    if !core.bus.wants(EventType::HEARTBEAT, None) {
        return;
    }
    let s = &core.sessions;
    let mut e = core
        .bus
        .create(EventType::HEARTBEAT, None, origin!("heartbeat"));
    let up = core.started.elapsed();
    e.add_header("Event-Info", "System Ready");
    e.add_header(
        "Up-Time",
        crate::commands::uptime_text(core).trim_start_matches("UP "),
    );
    e.add_header("FreeSWITCH-Version", crate::commands::version_full());
    e.add_header("Uptime-msec", up.as_millis().to_string());
    e.add_header("Session-Count", s.count().to_string());
    e.add_header(
        "Max-Sessions",
        s.max_sessions.load(Ordering::Relaxed).to_string(),
    );
    e.add_header(
        "Session-Per-Sec",
        s.sessions_per_second.load(Ordering::Relaxed).to_string(),
    );
    e.add_header("Session-Per-Sec-Last", s.current_sps().to_string());
    e.add_header(
        "Session-Per-Sec-Max",
        s.peak_sps.load(Ordering::Relaxed).to_string(),
    );
    e.add_header(
        "Session-Since-Startup",
        s.total.load(Ordering::Relaxed).to_string(),
    );
    e.add_header(
        "Session-Peak-Max",
        s.peak.load(Ordering::Relaxed).to_string(),
    );
    core.bus.fire(e);
}

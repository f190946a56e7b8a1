//! The shared media loop: a few loops (eight per core) that each wake every
//! 20 ms and move every frame that is ready on the bridged legs they serve
//! — read from one leg's endpoint without blocking, write to its peer —
//! where otherwise each leg's worker would wake for each packet. At 50
//! packets a second each way that is one wake-up per leg per packet; here
//! it is one per loop per 20 ms, whatever the number of legs.
//!
//! Only legs whose endpoint's module declared `MODULE_FLAG_NOBLOCK_READ`
//! come here (a read that waited would hold up every leg of its loop);
//! the others keep their own relay (`bridge.rs`). A leg's worker hands its
//! leg to a loop with [`MediaLoop::serve`] and sleeps until the loop hands
//! it back: when the bridge ends or changes, the leg is held or leaves
//! its state, or its endpoint panicked. The worker then decides, as its
//! own relay would. A loop that stops ticking (a module that broke its
//! promise and blocked) loses its legs: each worker takes its leg back
//! after [`STALL`] and relays it itself.
//!
//! A loop runs as a job on a session worker, so it carries the plugin
//! boundary's rule with it: the worker remembers each module whose code
//! it ran, and when one of them is being retired the loop moves to a
//! fresh worker at its next tick and the old worker ends (see
//! `executor.rs`). A loop with no leg left ends; the next leg starts it.

use crate::bridge::{pass_frame, relay_dtmf};
use crate::core::Core;
use crate::media::goertzel::DtmfDetector;
use crate::session::{cf, Session};
use hotswitch_plugin_api::sync::{Mutex, RwLock};
use hotswitch_plugin_api::{ChannelState as CS, Status, READ_FLAG_NOBLOCK};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a loop serves its legs: one packet time.
pub const TICK: Duration = Duration::from_millis(20);

/// A tick that takes longer is logged (at most every [`SLOW_SAID`]).
const SLOW_TICK: Duration = Duration::from_millis(60);
const SLOW_SAID: Duration = Duration::from_secs(10);
/// The slow-tick line names the slowest leg if it took at least this.
const SLOW_LEG: Duration = Duration::from_millis(1);

/// A loop that has not ticked for this long has lost its legs.
pub const STALL: Duration = Duration::from_millis(1000);

/// Frames moved per leg per tick at most (a burst after a stall of the
/// far end's sender; more wait for the next tick).
const MAX_FRAMES: usize = 8;

/// The loops (`switch.conf`'s `media-loops`; 0, the default: eight per
/// core).
pub struct MediaLoop {
    loops: RwLock<Vec<Arc<Loop>>>,
    next: AtomicUsize,
}

/// One loop: legs handed to it wait in `inbox` until its next tick.
struct Loop {
    inbox: Mutex<Vec<Entry>>,
    /// A job runs this loop (or is about to).
    running: AtomicBool,
    epoch: Instant,
    /// Milliseconds from `epoch` to the start of the last tick.
    last_tick: AtomicU64,
    /// Slow ticks not yet said, and when (ms from `epoch`) they last were.
    slow: AtomicU32,
    slow_said: AtomicU64,
}

/// A leg in a loop.
struct Entry {
    s: Arc<Session>,
    /// Where the frames go: the bridged peer, or `s` itself for an echo.
    peer: Arc<Session>,
    echo: bool,
    /// The state the leg's relay runs in.
    state: CS,
    /// Whether the far end held the call when the leg came (the loop hands
    /// the leg back when that changes).
    holding: bool,
    inband: Option<DtmfDetector>,
    ticket: Arc<Ticket>,
}

const SERVING: u8 = 0;
const RETURNED: u8 = 1;
const PANICKED: u8 = 2;
const WITHDRAWN: u8 = 3;
const FAILED: u8 = 4;

/// What the leg's worker and the loop share about one hand-over.
struct Ticket {
    status: AtomicU8,
    /// The in-band detector, given back with the leg.
    inband: Mutex<Option<DtmfDetector>>,
}

/// How a leg came back from [`MediaLoop::serve`].
pub enum Served {
    /// Something changed (bridge, state, hold, a hang-up): the relay looks
    /// again. The detector comes back with it.
    Returned(Option<DtmfDetector>),
    /// The endpoint's `read_frame` panicked: the relay ends.
    Panicked,
    /// The loop stopped ticking: the relay serves the leg itself from now.
    Stalled,
    /// An echo's read failed: the echo ends.
    Failed,
}

impl Default for MediaLoop {
    fn default() -> Self {
        MediaLoop::new(0)
    }
}

/// `n` loops, or eight per core (up to 64) for 0. Measured under
/// `bench/sofia_reload.py` at 200 calls/s (2,000 echoed legs, 2 cores):
/// with one loop per core a tick over 1,000 legs took 60–170 ms whenever
/// the machine was busy and 500–1,700 echoes came back over 100 ms late;
/// with 8, 16 or 32 loops, 4–22.
fn loops_for(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(16, |n| (n.get() * 8).clamp(1, 64)),
        n => n.min(256),
    }
}

impl MediaLoop {
    pub fn new(loops: usize) -> MediaLoop {
        MediaLoop {
            loops: RwLock::new((0..loops_for(loops)).map(|_| Loop::new()).collect()),
            next: AtomicUsize::new(0),
        }
    }

    /// `switch.conf`'s `media-loops` (0: one per core). Legs served now
    /// stay where they are; new ones go to the new loops.
    pub fn set_loops(&self, n: usize) {
        let n = loops_for(n);
        let mut loops = self.loops.write();
        if loops.len() != n {
            *loops = (0..n).map(|_| Loop::new()).collect();
        }
    }

    /// The next loop in turn; a stalled one is replaced first (its thread
    /// is stuck in a module's read and keeps the legs it had).
    fn pick(&self) -> Arc<Loop> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let loops = self.loops.read();
            let lp = &loops[i % loops.len()];
            if !lp.stalled() {
                return lp.clone();
            }
        }
        let mut loops = self.loops.write();
        let n = loops.len();
        let lp = &mut loops[i % n];
        if lp.stalled() {
            log::error!(
                "media loop {} has not run for over {} ms (a module's read_frame blocked); a new loop takes its place",
                i % n,
                STALL.as_millis()
            );
            *lp = Loop::new();
        }
        lp.clone()
    }

    /// True when `s`'s frames may be moved by a loop: its endpoint's
    /// module promised reads that never wait.
    pub fn takes(s: &Session) -> bool {
        s.endpoint.module.noblock_read()
    }

    /// Hands `s` (bridged to `peer`, or echoed to itself for `None`, its
    /// relay running in `state`) to a loop and waits until the loop hands
    /// it back.
    pub fn serve(
        &self,
        core: &Arc<Core>,
        s: &Arc<Session>,
        peer: Option<&Arc<Session>>,
        state: CS,
        inband: Option<DtmfDetector>,
    ) -> Served {
        let ticket = Arc::new(Ticket {
            status: AtomicU8::new(SERVING),
            inband: Mutex::new(None),
        });
        let holding = s.ch().has(cf::LEG_HOLDING);
        let lp = self.pick();
        lp.add(
            core,
            Entry {
                s: s.clone(),
                peer: peer.unwrap_or(s).clone(),
                echo: peer.is_none(),
                state,
                holding,
                inband,
                ticket: ticket.clone(),
            },
        );
        loop {
            let gen = s.signal_generation();
            match ticket.status.load(Ordering::Acquire) {
                RETURNED => return Served::Returned(ticket.inband.lock().take()),
                PANICKED => return Served::Panicked,
                FAILED => return Served::Failed,
                _ => {}
            }
            if lp.stalled() {
                if ticket
                    .status
                    .compare_exchange(SERVING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    log::warn!(
                        "{}: the media loop has not run for {} ms; the leg's own worker relays it",
                        s.uuid,
                        STALL.as_millis()
                    );
                    return Served::Stalled;
                }
                continue;
            }
            s.wait_signal(gen, STALL / 4);
        }
    }
}

impl Loop {
    fn new() -> Arc<Loop> {
        Arc::new(Loop {
            inbox: Mutex::new(Vec::new()),
            running: AtomicBool::new(false),
            epoch: Instant::now(),
            last_tick: AtomicU64::new(0),
            slow: AtomicU32::new(0),
            slow_said: AtomicU64::new(0),
        })
    }

    fn add(self: &Arc<Self>, core: &Arc<Core>, e: Entry) {
        let mut inbox = self.inbox.lock();
        inbox.push(e);
        // Under the inbox lock: a loop that finds its table and inbox empty
        // clears `running` under the same lock before it ends.
        if !self.running.swap(true, Ordering::AcqRel) {
            self.mark_tick();
            let (lp, c) = (self.clone(), core.clone());
            core.executor.submit(move || lp.run(c, Vec::new()));
        }
    }

    /// Counts a slow tick; says so at most every [`SLOW_SAID`] (with how
    /// many there were), whichever worker the loop runs on.
    fn slow_tick(&self, took: Duration, legs: usize, slowest: &(Duration, String)) {
        let n = self.slow.fetch_add(1, Ordering::AcqRel) + 1;
        let now = self.epoch.elapsed().as_millis() as u64;
        let said = self.slow_said.load(Ordering::Acquire);
        if now.saturating_sub(said) < SLOW_SAID.as_millis() as u64
            || self
                .slow_said
                .compare_exchange(said, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        self.slow.fetch_sub(n, Ordering::AcqRel);
        let leg = if slowest.1.is_empty() {
            format!("no leg took {} ms", SLOW_LEG.as_millis())
        } else {
            format!("the slowest leg {} {} ms", slowest.1, slowest.0.as_millis())
        };
        log::warn!(
            "media loop: {n} tick(s) over {} ms in {} s (the machine is busy?); the last, over {legs} legs, took {} ms, {leg}",
            SLOW_TICK.as_millis(),
            SLOW_SAID.as_secs(),
            took.as_millis(),
        );
    }

    fn mark_tick(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_tick.store(ms, Ordering::Release);
    }

    /// Running, with legs, and no tick for [`STALL`].
    fn stalled(&self) -> bool {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.running.load(Ordering::Acquire)
            && ms.saturating_sub(self.last_tick.load(Ordering::Acquire)) > STALL.as_millis() as u64
    }

    /// The loop, on a session worker: ends when it has no leg, or moves to
    /// a fresh worker when a module it ran is being retired.
    fn run(self: Arc<Self>, core: Arc<Core>, mut table: Vec<Entry>) {
        let mut buf = vec![0u8; 8192];
        let mut next = Instant::now();
        loop {
            self.mark_tick();
            table.append(&mut self.inbox.lock());
            let start = Instant::now();
            let mut slowest = (Duration::ZERO, String::new());
            // One clock read a leg: its end is the next one's start.
            let mut t = start;
            table.retain_mut(|e| {
                let r = serve_one(&core, e, &mut buf);
                let end = Instant::now();
                let took = end - t;
                t = end;
                // Only a leg slow enough to name costs a copy of its uuid.
                if took > slowest.0 && took >= SLOW_LEG {
                    slowest = (took, e.s.uuid.clone());
                }
                r.is_none_or(|status| {
                    *e.ticket.inband.lock() = e.inband.take();
                    let _ = e.ticket.status.compare_exchange(
                        SERVING,
                        status,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    e.s.notify();
                    false
                })
            });
            let took = t - start;
            if took > SLOW_TICK {
                self.slow_tick(took, table.len(), &slowest);
            }
            if table.is_empty() {
                let inbox = self.inbox.lock();
                if inbox.is_empty() {
                    self.running.store(false, Ordering::Release);
                    return;
                }
                continue;
            }
            if crate::executor::touched_retiring() {
                // This worker must end before a library it ran closes.
                let c = core.clone();
                let lp = self.clone();
                core.executor.submit(move || lp.run(c, table));
                return;
            }
            next += TICK;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                // Behind (the machine is loaded): serve again at once, but
                // do not owe the ticks missed.
                next = now;
            }
        }
    }
}

/// One tick of one leg: `None` while it stays, else the status it leaves
/// with.
fn serve_one(core: &Arc<Core>, e: &mut Entry, buf: &mut [u8]) -> Option<u8> {
    if e.ticket.status.load(Ordering::Acquire) != SERVING {
        // Withdrawn by its worker: drop it.
        return Some(WITHDRAWN);
    }
    {
        let ch = e.s.ch();
        if ch.state != e.state || ch.state >= CS::HANGUP || ch.hangup_cause.is_some() {
            return Some(RETURNED);
        }
        if !e.echo
            && (ch.bridged_to.as_deref() != Some(e.peer.uuid.as_str())
                || ch.has(cf::LEG_HOLDING) != e.holding)
        {
            return Some(RETURNED);
        }
    }
    if e.echo {
        return echo_one(e, buf);
    }
    if e.peer.is_down() {
        return Some(RETURNED);
    }
    for _ in 0..MAX_FRAMES {
        let (st, f) = crate::media_io::read_frame_flags(&e.s, buf, READ_FLAG_NOBLOCK);
        if st == Status::SUCCESS && f.datalen > 0 {
            pass_frame(core, &e.s, &e.peer, e.inband.as_mut(), &f);
        } else if st == Status::PANIC {
            return Some(PANICKED);
        } else {
            break;
        }
    }
    relay_dtmf(&e.s, &e.peer);
    None
}

/// One tick of an echoed leg: its frames go back to it; digits stay
/// queued for whoever reads them next.
fn echo_one(e: &mut Entry, buf: &mut [u8]) -> Option<u8> {
    for _ in 0..MAX_FRAMES {
        let (st, f) = crate::media_io::read_frame_flags(&e.s, buf, READ_FLAG_NOBLOCK);
        match st {
            Status::SUCCESS if f.datalen > 0 => {
                crate::media_io::write_frame(&e.s, &f);
            }
            Status::SUCCESS | Status::TIMEOUT | Status::BREAK => break,
            Status::PANIC => return Some(PANICKED),
            _ => return Some(if e.s.is_down() { RETURNED } else { FAILED }),
        }
    }
    None
}

/// The `echo` application's work (`session_echo`): the caller's frames go
/// back to it until the call ends or leaves the state it was in (a
/// transfer, a park), in a shared loop where the endpoint reads without
/// blocking, else here a read at a time.
pub fn echo(core: &Arc<Core>, s: &Arc<Session>) -> Status {
    let state = s.state();
    let mut own = !MediaLoop::takes(s);
    let mut buf = vec![0u8; 8192];
    loop {
        if s.is_down() || s.state() != state {
            return Status::SUCCESS;
        }
        if !own {
            match core.media_loop.serve(core, s, None, state, None) {
                Served::Returned(_) => {}
                Served::Panicked | Served::Failed => return Status::GENERR,
                Served::Stalled => own = true,
            }
            continue;
        }
        let (st, f) = crate::media_io::read_frame(s, &mut buf);
        match st {
            Status::SUCCESS => {
                if f.datalen > 0 {
                    crate::media_io::write_frame(s, &f);
                }
            }
            Status::TIMEOUT | Status::BREAK => {}
            _ if s.is_down() => return Status::SUCCESS,
            _ => return Status::GENERR,
        }
    }
}

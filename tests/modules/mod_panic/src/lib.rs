//! A test module that misbehaves on command, to show that a fault stays
//! inside its module whatever entry of it the host was calling.
//!
//! - `panic_now` panics inside an api call; `panic_echo` answers normally
//!   (to show the module's interfaces are disabled once it is faulted);
//!   `hold <ms>` keeps a call running so tests can try to unload the module
//!   while it is in use.
//! - The `panic/<entry>` endpoint makes calls that panic in `<entry>`:
//!   `outgoing_channel`, `read_frame`, `write_frame`, `kill_channel`,
//!   `send_dtmf`, `receive_message` or a state handler (`on_init`,
//!   `on_routing`, `on_execute`, `on_hangup`, …); any other word makes a
//!   call that behaves (answers, reads silence).
//! - The `panic_app` application panics; `panic_runtime` makes the runtime
//!   thread panic on its next turn.
//!
//! - `panic_forge` calls the host with a made-up session handle;
//!   `panic_keep` (an application) keeps its session's handle past the
//!   call and `panic_use_kept` uses it later: the host must refuse both.
//! - `panic/block` makes a call whose `read_frame` never returns;
//!   `panic_thread` starts a thread that is never joined.
//! - `panic_hog` allocates without bound (1 MiB a step, each written so
//!   that it is resident): its allocator parks it at the module's limit.
//!
//! - It declares reads that never block (`noblock_read`), so the core's
//!   shared media loop serves its bridged legs: a non-blocking read gives
//!   a frame of silence every 20 ms, and `panic_frames <uuid>` says how
//!   many frames were written to that call. `panic/block` breaks that
//!   promise, and so stops the loop that reads it.
//!
//! Built with the `panic-safe` feature it declares itself panic-safe.

use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{
    declare_module, CallCause, ChannelState, Dtmf, Endpoint, FrameBuf, FrameView, KillSignal,
    Message, ModuleContext, Outgoing, OwnedSession, Session, SessionRef, Status, READ_FLAG_NOBLOCK,
};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

declare_module! {
    name: "mod_panic",
    description: "Test module that panics on command",
    load: load,
    unload: None,
    runtime: Some(runtime),
    panic_safe: cfg!(feature = "panic-safe"),
    noblock_read: true,
}

/// Per call: when its last frame was read (paced to one per 20 ms).
static LAST_READ: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
/// Per call: frames written to it.
static WRITTEN: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

static PANIC_RUNTIME: AtomicBool = AtomicBool::new(false);
/// A session handle kept past its callback (what a module must not do).
static KEPT: AtomicU64 = AtomicU64::new(0);

/// What the host answers for a handle: its uuid, or that it refused.
fn probe(raw: SessionRef) -> String {
    // SAFETY: deliberately not what the contract asks: the host must
    // refuse the handle, so nothing it lends is ever borrowed.
    let s = unsafe { Session::from_raw(raw) };
    match (s.uuid(), s.set_state(ChannelState::HANGUP)) {
        (u, Err(e)) if u.is_empty() => format!("+OK refused ({e})"),
        (u, r) => format!(
            "-ERR the host served handle {:#x}: uuid '{u}', {r:?}",
            raw.id
        ),
    }
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    PANIC_RUNTIME.store(false, Ordering::Release);
    m.add_api(
        "panic_now",
        "Panic inside an api call",
        "[message]",
        |args, _out| {
            panic!("panic_now was asked to panic: {args}");
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api("panic_echo", "Echo the arguments", "<text>", |args, out| {
        let _ = writeln!(out, "{args}");
    })
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_frames",
        "Frames written to a call",
        "<uuid>",
        |args, out| {
            let n = WRITTEN
                .lock()
                .as_ref()
                .and_then(|w| w.get(args.trim()).copied())
                .unwrap_or(0);
            let _ = writeln!(out, "{n}");
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "hold",
        "Keep the call running for <ms> milliseconds",
        "<ms>",
        |args, out| {
            let ms: u64 = args.trim().parse().unwrap_or(1000);
            std::thread::sleep(Duration::from_millis(ms));
            let _ = writeln!(out, "+OK held {ms} ms");
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_runtime",
        "Make the runtime thread panic",
        "",
        |_, out| {
            PANIC_RUNTIME.store(true, Ordering::Release);
            let _ = writeln!(out, "+OK");
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_forge",
        "Use a made-up session handle",
        "",
        |_, out| {
            let _ = writeln!(
                out,
                "{}",
                probe(SessionRef {
                    id: 0x0bad_0000_0007
                })
            );
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_use_kept",
        "Use the handle panic_keep kept",
        "",
        |_, out| {
            let raw = SessionRef {
                id: KEPT.load(Ordering::Acquire),
            };
            let _ = writeln!(out, "{}", probe(raw));
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_thread",
        "Start a thread that outlives the module",
        "",
        |_, out| {
            // Deliberately never joined, not even in unload.
            let started = std::thread::Builder::new().spawn(|| loop {
                std::thread::sleep(Duration::from_millis(50));
            });
            let _ = writeln!(out, "{}", if started.is_ok() { "+OK" } else { "-ERR" });
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api(
        "panic_hog",
        "Allocate memory without bound",
        "",
        |_, out| {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![0x5a; 1 << 20]);
                if held.len() == usize::MAX {
                    break;
                }
            }
            let _ = writeln!(out, "-ERR held {} MiB", held.len());
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_application("panic_keep", "Keep the session's handle", "", 0, |s, _| {
        KEPT.store(s.raw().id, Ordering::Release);
        let _ = s.park();
    })
    .map_err(|e| e.to_string())?;
    m.add_application("panic_app", "Panic in an application", "", 0, |_s, data| {
        panic!("panic_app was asked to panic: {data}")
    })
    .map_err(|e| e.to_string())?;
    Ok(m.add_endpoint("panic", Hostile)?)
}

fn runtime(_m: &ModuleContext) -> Status {
    if PANIC_RUNTIME.swap(false, Ordering::AcqRel) {
        panic!("the runtime was asked to panic");
    }
    std::thread::sleep(Duration::from_millis(20));
    Status::SUCCESS
}

/// The entry this call should panic in (its dial data).
fn doomed(s: &Session, entry: &str) {
    if s.var("panic_entry").as_deref() == Some(entry) {
        panic!("asked to panic in {entry}");
    }
}

fn handler_name(state: ChannelState) -> &'static str {
    match state {
        ChannelState::INIT => "on_init",
        ChannelState::ROUTING => "on_routing",
        ChannelState::EXECUTE => "on_execute",
        ChannelState::HANGUP => "on_hangup",
        ChannelState::EXCHANGE_MEDIA => "on_exchange_media",
        ChannelState::CONSUME_MEDIA => "on_consume_media",
        ChannelState::PARK => "on_park",
        ChannelState::REPORTING => "on_reporting",
        ChannelState::DESTROY => "on_destroy",
        _ => "",
    }
}

static SILENCE: [u8; 320] = [0; 320];

struct Hostile;

impl Endpoint for Hostile {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        if req.dial_data == "outgoing_channel" {
            panic!("asked to panic in outgoing_channel");
        }
        let s = ModuleContext::current()
            .session_request("panic", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let name = format!("panic/{}", req.dial_data);
        let mut profile = req.profile.clone();
        profile.destination_number = req.dial_data.clone();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_var("panic_entry", &req.dial_data);
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        doomed(s, handler_name(state));
        if state == ChannelState::INIT {
            s.mark_answered();
        }
        Status::SUCCESS
    }

    fn receive_message(&self, s: &Session, _msg: &Message) -> Status {
        doomed(s, "receive_message");
        Status::SUCCESS
    }

    fn kill_channel(&self, s: &Session, _sig: KillSignal) -> Status {
        doomed(s, "kill_channel");
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        doomed(s, "read_frame");
        if s.var("panic_entry").as_deref() == Some("block") {
            // Never returns, whatever the switch does.
            loop {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if s.is_down() {
            return Status::FALSE;
        }
        if flags & READ_FLAG_NOBLOCK != 0 {
            let now = Instant::now();
            let mut last = LAST_READ.lock();
            let last = last.get_or_insert_with(HashMap::new);
            let uuid = s.uuid();
            if last
                .get(&uuid)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(20))
            {
                return Status::TIMEOUT;
            }
            last.insert(uuid, now);
            f.fill(&SILENCE, "L16");
            return Status::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(20));
        f.fill(&SILENCE, "L16");
        Status::SUCCESS
    }

    fn write_frame(&self, s: &Session, _f: &FrameView) -> Status {
        doomed(s, "write_frame");
        *WRITTEN
            .lock()
            .get_or_insert_with(HashMap::new)
            .entry(s.uuid())
            .or_default() += 1;
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, _d: &Dtmf) -> Status {
        doomed(s, "send_dtmf");
        Status::SUCCESS
    }
}

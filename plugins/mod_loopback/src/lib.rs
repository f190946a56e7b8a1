//! # mod_loopback — the loopback and null endpoints
//!
//! - `loopback/<exten>[/<context>[/<dialplan>]]`: a call into the switch's
//!   own dialplan. `outgoing` creates the A leg (outbound); the A leg's
//!   `on_init` creates the B leg (inbound, routed like any inbound call).
//!   Answer, progress and ringing on B mark A; frames written to one leg
//!   are read from the other; a hangup on either leg hangs up the other
//!   with the same cause. `loopback/app=<app>[:<arg>]` makes B pre-answer
//!   and run that application. When each leg is bridged to a real channel,
//!   the pair bows out and the two are bridged directly (`bowout.rs`).
//! - `null/<anything>`: answers at once, reads silence, discards writes —
//!   the endpoint FreeSWITCH users test with.
//!
//! Each leg's private data (`tech_pvt`) is a `Leg` the host keeps with the
//! session and drops, through this module, with it.

use hotswitch_plugin_api::sync::{Condvar, Mutex};
use hotswitch_plugin_api::{
    declare_module, log, CallCause, ChannelState, Endpoint, FrameBuf, FrameView, KillSignal,
    Message, MessageId, ModuleContext, Outgoing, OwnedSession, Profile, Session, Status,
    READ_FLAG_NOBLOCK,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod bowout;

/// Live reload: nothing to hand over (its legs and their media run in the old copy to their end; new legs are the new copy's).
static HANDOVER: hotswitch_plugin_api::HandoverSpec = hotswitch_plugin_api::HandoverSpec {
    format: "mod_loopback/handover-v1",
    version: 1,
    reads_from: 1,
    export: |_| Ok(hotswitch_plugin_api::Export::default()),
    resume: |_| {},
    deliver: |_, _| false,
};

declare_module! {
    name: "mod_loopback",
    description: "Loopback and null endpoints",
    load: load,
    unload: None,
    runtime: None,
    handover: &HANDOVER,
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    bowout::configure(m);
    m.add_endpoint("loopback", Loopback)
        .map_err(|e| e.to_string())?;
    Ok(m.add_endpoint("null", Null)?)
}

/// Frames waiting to be read by one leg, at most this many.
const MAX_QUEUED_FRAMES: usize = 50;

#[derive(Clone)]
struct QueuedFrame {
    data: Vec<u8>,
    codec: String,
    rate: u32,
    samples: u32,
}

/// What both legs of one loopback call share.
struct Pair {
    exten: String,
    context: String,
    dialplan: String,
    profile: Profile,
    /// Variables the B leg gets: the originate's, and `loopback_export`'s.
    vars: Vec<(String, String)>,
    uuids: Mutex<[String; 2]>,
    /// Frames for leg 0 (A) and leg 1 (B).
    queues: [Mutex<VecDeque<QueuedFrame>>; 2],
    arrived: Condvar,
    /// B answered (and so A was marked answered).
    answered: AtomicBool,
    /// Frames left before a bowout (`bowout::BOWOUT_FRAMES`).
    frames: AtomicI32,
    /// The pair has bowed out: frames written to it are dropped.
    bowed_out: AtomicBool,
}

/// One leg's private data.
pub(crate) struct Leg {
    pair: Arc<Pair>,
    index: usize,
}

fn leg<'s>(s: &'s Session) -> Option<&'s Leg> {
    s.private::<Leg>()
}

pub(crate) fn other_uuid(l: &Leg) -> String {
    let u = l.pair.uuids.lock();
    u[1 - l.index].clone()
}

struct Loopback;

fn parse_dial(data: &str) -> (String, String, String) {
    let mut parts = data.splitn(3, '/');
    let exten = parts.next().unwrap_or("").to_string();
    let context = parts.next().filter(|s| !s.is_empty()).unwrap_or("default");
    let dialplan = parts.next().filter(|s| !s.is_empty()).unwrap_or("XML");
    (exten, context.to_string(), dialplan.to_string())
}

impl Endpoint for Loopback {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let (exten, mut context, mut dialplan) = parse_dial(&req.dial_data);
        if exten.is_empty() {
            return Err(CallCause::INVALID_NUMBER_FORMAT);
        }
        let mut b_exten = exten.clone();
        if let Some(app) = exten.strip_prefix("app=") {
            // B pre-answers, then runs the application: FreeSWITCH builds
            // that extension directly; the inline dialplan is our form of it.
            let (name, arg) = app.split_once(':').unwrap_or((app, ""));
            b_exten = if arg.is_empty() {
                format!("pre_answer,{name}")
            } else {
                format!("pre_answer,{name}:{arg}")
            };
            dialplan = "inline".into();
            context = "default".into();
        }
        let ctx = ModuleContext::current();
        let a = ctx
            .session_request("loopback", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let mut profile = req.profile.clone();
        profile.destination_number = b_exten.clone();
        profile.context = context.clone();
        profile.dialplan = dialplan.clone();
        let name = format!("loopback/{exten}-a");
        profile.chan_name = name.clone();
        a.set_name(&name);
        a.set_profile(&profile);
        let mut vars = req.vars.clone();
        if let Some(list) = req.var("loopback_export") {
            for v in list.split(',').map(str::trim) {
                if let Some(val) = req.var(v) {
                    vars.push((v.to_string(), val.to_string()));
                }
            }
        }
        let pair = Arc::new(Pair {
            exten,
            context,
            dialplan,
            profile,
            vars,
            uuids: Mutex::new([a.uuid(), String::new()]),
            queues: [Mutex::new(VecDeque::new()), Mutex::new(VecDeque::new())],
            arrived: Condvar::new(),
            answered: AtomicBool::new(false),
            frames: AtomicI32::new(bowout::BOWOUT_FRAMES),
            bowed_out: AtomicBool::new(false),
        });
        let _ = b_exten;
        a.set_private(Leg { pair, index: 0 })
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        a.set_var("loopback_leg", "A");
        a.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        Ok(a)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        match state {
            ChannelState::INIT => match leg(s) {
                Some(l) if l.index == 0 => start_b_leg(s, l),
                _ => Status::SUCCESS,
            },
            ChannelState::EXECUTE => match leg(s) {
                Some(l) if bowout::on_execute(s, l) => Status::FALSE,
                _ => Status::SUCCESS,
            },
            ChannelState::HANGUP => {
                if let Some(l) = leg(s) {
                    let cause = s
                        .var("hangup_cause")
                        .and_then(|c| CallCause::from_name(&c))
                        .unwrap_or(CallCause::NORMAL_CLEARING);
                    let other = other_uuid(l);
                    if !other.is_empty() {
                        if let Some(o) = ModuleContext::current().session_locate(&other) {
                            o.hangup(cause);
                        }
                    }
                    l.pair.arrived.notify_all();
                }
                Status::SUCCESS
            }
            _ => Status::SUCCESS,
        }
    }

    fn receive_message(&self, s: &Session, msg: &Message) -> Status {
        let Some(l) = leg(s) else {
            return Status::SUCCESS;
        };
        if l.index != 1 {
            return Status::SUCCESS;
        }
        let other = other_uuid(l);
        let Some(a) = ModuleContext::current().session_locate(&other) else {
            return Status::SUCCESS;
        };
        match msg.id {
            MessageId::ANSWER => {
                a.mark_answered();
                l.pair.answered.store(true, Ordering::Release);
            }
            MessageId::PROGRESS => a.mark_pre_answered(),
            MessageId::RINGING => a.mark_ring_ready(),
            _ => {}
        }
        Status::SUCCESS
    }

    fn kill_channel(&self, s: &Session, _sig: KillSignal) -> Status {
        if let Some(l) = leg(s) {
            l.pair.arrived.notify_all();
        }
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &hotswitch_plugin_api::Dtmf) -> Status {
        let Some(l) = leg(s) else {
            return Status::FALSE;
        };
        let other = other_uuid(l);
        let Some(o) = ModuleContext::current().session_locate(&other) else {
            return Status::FALSE;
        };
        if let Some(c) = char::from_u32(d.digit) {
            o.queue_dtmf(c, d.duration_ms);
        }
        Status::SUCCESS
    }

    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        let Some(l) = leg(s) else {
            return Status::FALSE;
        };
        if f.data().is_empty() {
            return Status::SUCCESS;
        }
        let bowed_out = if l.index == 0 {
            bowout::check(s, l)
        } else {
            l.pair.bowed_out.load(Ordering::Acquire)
        };
        if bowed_out {
            return Status::SUCCESS;
        }
        let frame = QueuedFrame {
            data: f.data().to_vec(),
            codec: f.codec().into_owned(),
            rate: f.rate,
            samples: f.samples,
        };
        let mut q = l.pair.queues[1 - l.index].lock();
        if q.len() >= MAX_QUEUED_FRAMES {
            q.pop_front();
        }
        q.push_back(frame);
        l.pair.arrived.notify_all();
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        let Some(l) = leg(s) else {
            return Status::FALSE;
        };
        let mut q = l.pair.queues[l.index].lock();
        if q.is_empty() && !s.is_down() && flags & READ_FLAG_NOBLOCK == 0 {
            q = l.pair.arrived.wait_timeout(q, Duration::from_millis(20)).0;
        }
        let Some(fr) = q.pop_front() else {
            return if s.is_down() {
                Status::FALSE
            } else {
                Status::TIMEOUT
            };
        };
        let codec = codec_name(&fr.codec);
        let n = f.fill(&fr.data, codec);
        f.describe(n, fr.samples, codec);
        f.set_rate(fr.rate);
        Status::SUCCESS
    }
}

/// The codec name as a static string (the frame may outlive our copy).
fn codec_name(c: &str) -> &'static str {
    match c {
        "PCMU" => "PCMU",
        "PCMA" => "PCMA",
        _ => "L16",
    }
}

fn start_b_leg(a: &Session, l: &Leg) -> Status {
    let pair = &l.pair;
    let ctx = ModuleContext::current();
    let b = match ctx.session_request("loopback", false) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("loopback: cannot create the B leg: {e}");
            a.hangup(CallCause::SWITCH_CONGESTION);
            return Status::FALSE;
        }
    };
    let name = format!("loopback/{}-b", pair.exten);
    b.set_name(&name);
    let mut profile = pair.profile.clone();
    profile.chan_name = name;
    profile.context = pair.context.clone();
    profile.dialplan = pair.dialplan.clone();
    b.set_profile(&profile);
    for (k, v) in &pair.vars {
        b.set_var(k, v);
    }
    let a_uuid = a.uuid();
    let b_uuid = b.uuid();
    b.set_var("loopback_leg", "B");
    b.set_var("other_loopback_leg_uuid", &a_uuid);
    a.set_var("other_loopback_leg_uuid", &b_uuid);
    pair.uuids.lock()[1] = b_uuid;
    let attached = b.set_private(Leg {
        pair: pair.clone(),
        index: 1,
    });
    if attached.is_err() || b.set_state(ChannelState::INIT).is_err() || b.start().is_err() {
        a.hangup(CallCause::DESTINATION_OUT_OF_ORDER);
        return Status::FALSE;
    }
    Status::SUCCESS
}

/// 20 ms of L16 silence at 8 kHz.
static SILENCE: [u8; 320] = [0; 320];

struct Null;

impl Endpoint for Null {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let s = ModuleContext::current()
            .session_request("null", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let name = format!("null/{}", req.dial_data);
        let mut profile = req.profile.clone();
        profile.destination_number = req.dial_data.clone();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        if state == ChannelState::INIT {
            s.mark_answered();
        }
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        if s.is_down() {
            return Status::FALSE;
        }
        if flags & READ_FLAG_NOBLOCK != 0 {
            return Status::TIMEOUT;
        }
        std::thread::sleep(Duration::from_millis(20));
        f.fill(&SILENCE, "L16");
        Status::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_loopback_dial_string_gives_exten_context_and_dialplan_with_defaults() {
        assert_eq!(
            super::parse_dial("9664"),
            ("9664".into(), "default".into(), "XML".into())
        );
        assert_eq!(
            super::parse_dial("answer,park/public/inline"),
            ("answer,park".into(), "public".into(), "inline".into())
        );
    }
}

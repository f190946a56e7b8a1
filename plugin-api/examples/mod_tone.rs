//! The walk-through endpoint of plugin-api's crate documentation, as a
//! module: `tone/<anything>` legs that answer at once, send 20 ms frames of
//! silence and count the bytes the switch writes to them. Built by
//! `cargo build -p hotswitch-plugin-api --examples` (a `cdylib`,
//! `libmod_tone.so`), and by the end-to-end tests as a crate of its own
//! outside the workspace, depending on plugin-api alone.

use hotswitch_plugin_api::{
    declare_module, CallCause, ChannelState, Endpoint, FrameBuf, FrameView, KillSignal,
    ModuleContext, ModuleError, Outgoing, OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::atomic::{AtomicU64, Ordering};

declare_module! {
    name: "mod_tone",
    description: "A leg that plays silence and counts what it hears",
    load: load,
    unload: None,
    runtime: None,
}

fn load(m: &ModuleContext) -> Result<(), ModuleError> {
    Ok(m.add_endpoint("tone", Tone)?)
}

/// Each leg's private state (FreeSWITCH's `tech_pvt`).
struct Leg {
    heard: AtomicU64,
}

struct Tone;

impl Endpoint for Tone {
    // originate tone/<anything> → outgoing_channel → CS_INIT
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let s = ModuleContext::current()
            .session_request("tone", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        s.set_private(Leg {
            heard: AtomicU64::new(0),
        })
        .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        let name = format!("tone/{}", req.dial_data);
        let mut profile = req.profile.clone();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        Ok(s)
    }

    // CS_INIT: ring_ready, then mark_answered; CS_HANGUP: say goodbye.
    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        if state == ChannelState::INIT {
            s.mark_ring_ready();
            s.mark_answered();
        } else if state == ChannelState::HANGUP {
            let heard = s
                .private::<Leg>()
                .map_or(0, |l| l.heard.load(Ordering::Relaxed));
            hotswitch_plugin_api::log::info!("{}: heard {heard} bytes", s.uuid());
        }
        Status::SUCCESS
    }

    // Media towards the switch: 20 ms of L16 silence.
    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        if s.is_down() {
            return Status::FALSE;
        }
        if flags & READ_FLAG_NOBLOCK != 0 {
            return Status::TIMEOUT;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        f.fill(&[0u8; 320], "L16");
        Status::SUCCESS
    }

    // Media from the switch.
    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        if let Some(l) = s.private::<Leg>() {
            l.heard.fetch_add(f.data().len() as u64, Ordering::Relaxed);
        }
        Status::SUCCESS
    }

    // uuid_kill / hangup: wake a blocked read.
    fn kill_channel(&self, _s: &Session, _sig: KillSignal) -> Status {
        Status::SUCCESS
    }
}

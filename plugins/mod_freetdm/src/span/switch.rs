//! What a span asks of the switch — new inbound sessions, answers,
//! ringing, hangups, DTMF — carried out after the span's lock is released,
//! so that a host callback coming back into the span never waits on it.

use super::{Input, Sig, Span};
use hotswitch_plugin_api::{CallCause, ChannelState, ModuleContext, Profile};

/// What the span asks of the switch.
pub(super) enum HostAction {
    /// Create the session of an inbound call on this slot.
    Inbound {
        slot: usize,
        generation: u64,
    },
    Answered(String),
    Ringing(String),
    Progress(String),
    Hangup(String, CallCause),
    Dtmf(String, char),
}

impl Span {
    /// Carries out the switch-side actions, outside the lock.
    pub(super) fn execute(&self, acts: Vec<HostAction>) {
        if acts.is_empty() {
            return;
        }
        let ctx = ModuleContext::current();
        for a in acts {
            let uuid = match &a {
                HostAction::Inbound { slot, generation } => {
                    self.inbound(&ctx, *slot, *generation);
                    continue;
                }
                HostAction::Answered(u)
                | HostAction::Ringing(u)
                | HostAction::Progress(u)
                | HostAction::Hangup(u, _)
                | HostAction::Dtmf(u, _) => u,
            };
            let Some(s) = ctx.session_locate(uuid) else {
                continue;
            };
            match a {
                HostAction::Answered(_) => s.mark_answered(),
                HostAction::Ringing(_) => s.mark_ring_ready(),
                HostAction::Progress(_) => s.mark_pre_answered(),
                HostAction::Hangup(_, cause) => s.hangup(cause),
                HostAction::Dtmf(_, d) => s.queue_dtmf(d, 100),
                HostAction::Inbound { .. } => {}
            }
        }
    }

    /// Creates the session of an inbound call and lets it route.
    fn inbound(&self, ctx: &ModuleContext, slot: usize, generation: u64) {
        let (dnis, ani) = {
            let st = self.state.lock();
            let c = &st.chans[slot];
            (c.dnis.clone(), c.ani.clone())
        };
        let Some(me) = self.this.upgrade() else {
            return;
        };
        let s = match ctx.session_request(crate::ENDPOINT, false) {
            Ok(s) => s,
            Err(e) => {
                log::warn!(
                    "span {}: no session for an inbound call: {e}",
                    self.cfg.name
                );
                self.reject(slot, generation);
                return;
            }
        };
        let chan = self.cfg.channels[slot];
        let name = format!("FreeTDM/{}:{}/{}", self.cfg.id, chan, dnis);
        s.set_name(&name);
        s.set_profile(&Profile {
            username: "FreeTDM".into(),
            dialplan: self.cfg.dialplan.clone(),
            caller_id_name: if ani.is_empty() {
                "FreeTDM".into()
            } else {
                ani.clone()
            },
            caller_id_number: ani.clone(),
            ani: ani.clone(),
            destination_number: dnis.clone(),
            source: "mod_freetdm".into(),
            context: self.cfg.context.clone(),
            chan_name: name,
            ..Profile::default()
        });
        crate::endpoint::attach(&s, me, slot, generation, false, &dnis);
        match self.bind(slot, generation, &s.uuid()) {
            Ok(()) => {
                if s.set_state(ChannelState::INIT).is_err() || s.start().is_err() {
                    s.hangup(CallCause::DESTINATION_OUT_OF_ORDER);
                }
            }
            Err(cause) => {
                let _ = s.start();
                s.hangup(cause);
            }
        }
    }

    /// An inbound call that cannot get a session.
    fn reject(&self, slot: usize, generation: u64) {
        self.with_chan(slot, generation, |st, slot, now, acts| {
            st.chans[slot].reserved = false;
            match &mut st.chans[slot].sig {
                Sig::Fxs(f) => f.handle_input(Input::Hangup, now),
                Sig::Fxo(f) => f.handle_input(Input::Hangup, now),
                Sig::B => {
                    if let (Some(link), Some(call)) = (st.link.as_mut(), st.chans[slot].call) {
                        link.handle_hangup(call, CallCause::SWITCH_CONGESTION.0 as u8, now);
                    }
                }
            }
            self.drain(st, slot, now, acts);
        });
    }
}

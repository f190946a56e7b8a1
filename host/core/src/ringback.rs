//! What a caller hears while the legs it dialled ring: FreeSWITCH's early
//! media handling in `switch_ivr_originate`, in the core so that every
//! endpoint gets it (SIP, verto, loopback, TDM, GSM alike).
//!
//! While an originate with an originator waits for an answer, each step
//! looks at the legs it placed:
//! - a leg with early media (a 183 with SDP, a loopback leg pre-answered):
//!   the originator is pre-answered and hears that leg's media, frame by
//!   frame, unless `ignore_early_media` is set;
//! - a leg that rings (a 180) — or any leg at all with `instant_ringback`:
//!   with `ringback` set on the originator (`transfer_ringback` once it is
//!   answered) the originator is pre-answered and hears that sound;
//!   without, it is told to ring (its endpoint sends 180).
//!
//! A step that moved media takes one frame time (20 ms), so the originate's
//! wait loop keeps real time without a timer of its own.

use crate::core::Core;
use crate::media_io::{self, PacedSound};
use crate::session::{cf, Session};
use crate::state_machine::{pre_answer, ring_ready};
use hotswitch_plugin_api::Status;
use std::sync::Arc;

/// The caller's side of an originate while the legs ring.
pub struct Ringback {
    caller: Arc<Session>,
    ignore_early_media: bool,
    instant: bool,
    /// The sound generated when no leg gives media (`None`: signal ringing).
    tone: Option<PacedSound>,
    buf: Vec<u8>,
}

fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(crate::dialplan_xml::switch_true)
}

impl Ringback {
    /// The ringback of `caller` for an originate whose legs have `vars`.
    pub fn new(caller: &Arc<Session>, vars: &[(String, String)]) -> Ringback {
        let var = |name: &str| -> Option<String> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| caller.ch().var(name).map(str::to_string))
        };
        let answered = caller.ch().has(cf::ANSWERED);
        let sound = if answered {
            var("transfer_ringback")
        } else {
            var("ringback")
        };
        let tone = sound.filter(|v| !v.trim().is_empty()).and_then(|v| {
            PacedSound::open(&v)
                .map_err(|e| log::warn!("{}: ringback {v}: {e}", caller.uuid))
                .ok()
        });
        Ringback {
            caller: caller.clone(),
            ignore_early_media: truthy(var("ignore_early_media").as_deref()),
            instant: truthy(var("instant_ringback").as_deref()),
            tone,
            buf: vec![0u8; 8192],
        }
    }

    /// The caller hung up (or is hanging up): the legs are to be cancelled.
    pub fn caller_gone(&self) -> bool {
        self.caller.is_down()
    }

    /// One step while `legs` ring; true when it took a frame time (the
    /// caller of the step need not wait).
    pub fn step(&mut self, core: &Core, legs: &[Arc<Session>]) -> bool {
        if self.caller.is_down() {
            return false;
        }
        let early = legs
            .iter()
            .find(|l| l.ch().has(cf::EARLY_MEDIA) && !l.is_down());
        if let Some(b) = early.filter(|_| !self.ignore_early_media) {
            if pre_answer(core, &self.caller) != Status::SUCCESS {
                return false;
            }
            return self.pass_through(b);
        }
        let ringing = self.instant
            || legs
                .iter()
                .any(|l| l.ch().has(cf::RING_READY) || l.ch().has(cf::EARLY_MEDIA));
        if !ringing {
            return false;
        }
        if self.tone.is_none() {
            // Nothing to play: the caller's endpoint rings (180) instead.
            if !self.caller.ch().has(cf::ANSWERED) {
                ring_ready(core, &self.caller);
            }
            return false;
        }
        if pre_answer(core, &self.caller) != Status::SUCCESS {
            return false;
        }
        self.play_tone();
        true
    }

    /// Moves one frame of `b`'s early media to the caller.
    fn pass_through(&mut self, b: &Arc<Session>) -> bool {
        let (st, f) = media_io::read_frame(b, &mut self.buf);
        let moved = st == Status::SUCCESS && f.datalen > 0;
        if moved {
            media_io::write_frame(&self.caller, &f);
        }
        media_io::drain(&self.caller, &mut self.buf);
        if moved {
            return true;
        }
        // No frame within the endpoint's own wait: the step still took time
        // unless the read returned at once.
        st == Status::TIMEOUT
    }

    /// Writes the next ringback frame when it is due.
    fn play_tone(&mut self) {
        if let Some(tone) = self.tone.as_mut() {
            if tone.step(&self.caller, &self.caller) {
                media_io::drain(&self.caller, &mut self.buf);
            }
        }
    }
}

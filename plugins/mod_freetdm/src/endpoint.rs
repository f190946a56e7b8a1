//! The `freetdm` endpoint: outbound calls hunt a channel and start its
//! signalling when the session runs; every leg's private data names its
//! span, channel slot and call generation, so that a late callback for a
//! call that is over touches nothing.

use crate::g711::Law;
use crate::registry;
use crate::span::{Read, Span};
use hotswitch_plugin_api::{
    CallCause, ChannelState, Dtmf, Endpoint, FrameBuf, FrameView, KillSignal, Message, MessageId,
    ModuleContext, Outgoing, OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::Arc;
use std::time::Duration;

/// A leg's private data (`tech_pvt`), dropped by the host with the session.
struct Pvt {
    span: Arc<Span>,
    slot: usize,
    generation: u64,
    outbound: bool,
    number: String,
}

fn pvt<'s>(s: &'s Session) -> Option<&'s Pvt> {
    s.private::<Pvt>()
}

/// Gives the session its private data.
pub(crate) fn attach(
    s: &Session,
    span: Arc<Span>,
    slot: usize,
    generation: u64,
    outbound: bool,
    number: &str,
) {
    s.set_var("freetdm_span_name", &span.cfg.name);
    s.set_var("freetdm_span_id", &span.cfg.id.to_string());
    s.set_var("freetdm_chan_number", &span.chan_number(slot).to_string());
    let p = Pvt {
        span,
        slot,
        generation,
        outbound,
        number: number.to_string(),
    };
    if let Err(e) = s.set_private(p) {
        log::error!("{}: cannot attach its private data: {e}", s.uuid());
    }
}

/// The endpoint.
pub struct FreeTdm;

impl Endpoint for FreeTdm {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let ds = crate::hunt::parse(&req.dial_data)?;
        let reg = registry::current().ok_or(CallCause::CHAN_NOT_IMPLEMENTED)?;
        let (span, slot, generation) = reg.reserve(&ds)?;
        let s = match ModuleContext::current().session_request(crate::ENDPOINT, true) {
            Ok(s) => s,
            Err(_) => {
                span.release(slot, generation);
                return Err(CallCause::SWITCH_CONGESTION);
            }
        };
        let name = format!(
            "FreeTDM/{}:{}/{}",
            span.cfg.id,
            span.chan_number(slot),
            ds.number
        );
        let mut profile = req.profile.clone();
        profile.destination_number = ds.number.clone();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        attach(&s, span.clone(), slot, generation, true, &ds.number);
        span.bind(slot, generation, &s.uuid())?;
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        let Some(p) = pvt(s) else {
            return Status::SUCCESS;
        };
        match state {
            ChannelState::INIT if p.outbound => {
                let ani = s.var("caller_id_number").unwrap_or_default();
                p.span.start_outbound(p.slot, p.generation, &p.number, &ani);
            }
            ChannelState::HANGUP => {
                let cause = s
                    .var("hangup_cause")
                    .and_then(|c| CallCause::from_name(&c))
                    .unwrap_or(CallCause::NORMAL_CLEARING);
                p.span.host_hangup(p.slot, p.generation, cause);
            }
            ChannelState::DESTROY => {
                p.span
                    .host_hangup(p.slot, p.generation, CallCause::NORMAL_CLEARING);
            }
            _ => {}
        }
        Status::SUCCESS
    }

    fn receive_message(&self, s: &Session, msg: &Message) -> Status {
        if let Some(p) = pvt(s).filter(|p| !p.outbound) {
            match msg.id {
                MessageId::ANSWER => p.span.host_answer(p.slot, p.generation),
                MessageId::RINGING => p.span.host_indicate(p.slot, p.generation, true),
                MessageId::PROGRESS => p.span.host_indicate(p.slot, p.generation, false),
                _ => {}
            }
        }
        Status::SUCCESS
    }

    fn kill_channel(&self, s: &Session, _sig: KillSignal) -> Status {
        if let Some(p) = pvt(s) {
            p.span.media(p.slot).wake();
        }
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        let Some(p) = pvt(s) else {
            return Status::FALSE;
        };
        let wait =
            (flags & READ_FLAG_NOBLOCK == 0 && !s.is_down()).then_some(Duration::from_millis(20));
        match p.span.media(p.slot).read(p.generation, wait) {
            Read::Gone => Status::FALSE,
            Read::Nothing if s.is_down() => Status::FALSE,
            Read::Nothing => Status::TIMEOUT,
            Read::Frame(bytes) => {
                f.fill(&bytes, p.span.cfg.law.name());
                Status::SUCCESS
            }
        }
    }

    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        let Some(p) = pvt(s) else {
            return Status::FALSE;
        };
        let (data, codec) = (f.data(), f.codec());
        if data.is_empty() {
            return Status::SUCCESS;
        }
        p.span.write_audio(
            p.slot,
            p.generation,
            transcode(&codec, data, p.span.cfg.law),
        );
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &Dtmf) -> Status {
        if let (Some(p), Some(c)) = (pvt(s), char::from_u32(d.digit)) {
            p.span.send_digit(p.slot, p.generation, c);
        }
        Status::SUCCESS
    }
}

/// A frame from the core (L16, PCMU or PCMA) in the span's law.
pub fn transcode(codec: &str, data: &[u8], law: Law) -> Vec<u8> {
    let from = Law::from_name(codec);
    if from == Some(law) {
        return data.to_vec();
    }
    let mut pcm = Vec::with_capacity(data.len());
    match from {
        Some(l) => l.decode(data, &mut pcm),
        None => pcm.extend(
            data.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        ),
    }
    let mut out = Vec::with_capacity(pcm.len());
    law.encode(&pcm, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_any_core_codec_reach_the_line_in_its_law() {
        let l16: Vec<u8> = [1000i16, -1000]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let u = transcode("L16", &l16, Law::Ulaw);
        assert_eq!(
            u,
            [
                crate::g711::ulaw_encode(1000),
                crate::g711::ulaw_encode(-1000)
            ]
        );
        assert_eq!(transcode("PCMU", &u, Law::Ulaw), u);
        let a = transcode("PCMU", &u, Law::Alaw);
        assert_eq!(a.len(), 2);
        assert!((crate::g711::alaw_decode(a[0]) as i32 - 1000).abs() < 64);
    }
}

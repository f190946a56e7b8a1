//! The `gsmopen` endpoint: dial strings `gsmopen/<interface>/<number>` and
//! `gsmopen/ANY/<number>`, call control handed to the interface's thread,
//! audio through the interface's [`AudioPort`](crate::audio::AudioPort).
//!
//! Each session's private data is a `Leg` naming its interface (the host
//! drops it with the session); `on_destroy` releases the interface.

use crate::at::Request;
use crate::audio::FRAME_BYTES;
use crate::interface::{Interface, Job};
use hotswitch_plugin_api::{
    CallCause, ChannelState, Dtmf, Endpoint, FrameBuf, FrameView, KillSignal, Message, MessageId,
    ModuleContext, Outgoing, OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::Arc;
use std::time::Duration;

/// A session's private data.
pub struct Leg {
    pub iface: Arc<Interface>,
    /// Outbound: the number to dial in `on_init`.
    pub dial: Option<String>,
}

impl Leg {
    /// Attaches an inbound leg on `iface` to `s`.
    pub fn attach(s: &Session, iface: Arc<Interface>) {
        if let Err(e) = s.set_private(Leg { iface, dial: None }) {
            log::error!("gsmopen: cannot attach a leg to {}: {e}", s.uuid());
        }
    }
}

fn leg<'s>(s: &'s Session) -> Option<&'s Leg> {
    s.private::<Leg>()
}

/// Splits `<interface>/<number>`.
pub fn parse_dial(data: &str) -> Option<(&str, &str)> {
    let (iface, number) = data.split_once('/')?;
    let number = number.trim();
    let valid = !number.is_empty()
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || "+*#".contains(c));
    (!iface.is_empty() && valid).then_some((iface, number))
}

pub struct Gsm;

impl Endpoint for Gsm {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let (want, number) = parse_dial(&req.dial_data).ok_or(CallCause::INVALID_NUMBER_FORMAT)?;
        let ifaces = crate::interfaces();
        let iface = if want.eq_ignore_ascii_case("ANY") {
            ifaces
                .iter()
                .find(|i| i.available() && i.reserve(number).is_ok())
                .cloned()
                .ok_or(CallCause::NORMAL_CIRCUIT_CONGESTION)?
        } else {
            let i = ifaces
                .iter()
                .find(|i| i.name().eq_ignore_ascii_case(want))
                .cloned()
                .ok_or(CallCause::INVALID_GATEWAY)?;
            i.reserve(number)?;
            i
        };
        let s = match ModuleContext::current().session_request("gsmopen", true) {
            Ok(s) => s,
            Err(_) => {
                iface.release(""); // the reservation
                return Err(CallCause::SWITCH_CONGESTION);
            }
        };
        let name = format!("gsmopen/{}/{number}", iface.name());
        let mut profile = req.profile.clone();
        profile.destination_number = number.into();
        profile.callee_id_number = number.into();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_var("gsmopen_interface", iface.name());
        iface.bind(&s.uuid());
        iface.audio.flush();
        if s.set_private(Leg {
            iface: iface.clone(),
            dial: Some(number.into()),
        })
        .is_err()
        {
            iface.release(&s.uuid());
            return Err(CallCause::DESTINATION_OUT_OF_ORDER);
        }
        if s.set_state(ChannelState::INIT).is_err() {
            iface.release(&s.uuid());
            return Err(CallCause::DESTINATION_OUT_OF_ORDER);
        }
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        match state {
            ChannelState::INIT => {
                if let Some(l) = leg(s) {
                    if let Some(n) = &l.dial {
                        log::info!("gsmopen {}: dialing {n}", l.iface.name());
                        l.iface.send(Job::Driver(Request::Dial(n.clone())));
                    }
                }
            }
            ChannelState::HANGUP => {
                if let Some(l) = leg(s) {
                    if l.iface.release(&s.uuid()) {
                        l.iface.send(Job::Driver(Request::Hangup));
                    }
                    l.iface.audio.wake();
                }
            }
            ChannelState::DESTROY => {
                if let Some(l) = leg(s) {
                    l.iface.release(&s.uuid());
                }
            }
            _ => {}
        }
        Status::SUCCESS
    }

    fn receive_message(&self, s: &Session, msg: &Message) -> Status {
        if msg.id == MessageId::ANSWER && !s.is_outbound() {
            if let Some(l) = leg(s) {
                l.iface.send(Job::Driver(Request::Answer));
            }
        }
        Status::SUCCESS
    }

    fn kill_channel(&self, s: &Session, _sig: KillSignal) -> Status {
        if let Some(l) = leg(s) {
            l.iface.audio.wake();
        }
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &Dtmf) -> Status {
        let (Some(l), Some(c)) = (leg(s), char::from_u32(d.digit)) else {
            return Status::FALSE;
        };
        l.iface.send(Job::Driver(Request::Dtmf(c)));
        Status::SUCCESS
    }

    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        let Some(l) = leg(s) else {
            return Status::FALSE;
        };
        let (data, codec) = (f.data(), f.codec());
        if data.is_empty() {
            return Status::SUCCESS;
        }
        if codec != "L16" || f.rate != 8000 {
            log::debug!("gsmopen: dropping a {codec}/{} frame", f.rate);
            return Status::SUCCESS;
        }
        l.iface.audio.write(data);
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        let Some(l) = leg(s) else {
            return Status::FALSE;
        };
        if s.is_down() {
            return Status::FALSE;
        }
        let wait = if flags & READ_FLAG_NOBLOCK != 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        let Some(frame) = l.iface.audio.read(wait) else {
            return if s.is_down() {
                Status::FALSE
            } else {
                Status::TIMEOUT
            };
        };
        f.fill(&frame[..frame.len().min(FRAME_BYTES)], "L16");
        Status::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dial;

    #[test]
    fn dial_strings_name_an_interface_or_any_and_a_number() {
        assert_eq!(parse_dial("gsm0/5551234"), Some(("gsm0", "5551234")));
        assert_eq!(parse_dial("ANY/+4930123"), Some(("ANY", "+4930123")));
        assert_eq!(parse_dial("gsm0/"), None);
        assert_eq!(parse_dial("5551234"), None);
        assert_eq!(parse_dial("gsm0/12;ATH"), None, "no AT injection");
    }
}

//! The `verto.rtc` endpoint the core calls: what the switch tells a call
//! (answer, hangup, digits) goes to the client's connection; outbound legs
//! (`verto.rtc/<user>@<domain>`) are offered to a logged-in client with a
//! WebRTC offer. Frames cross the call's WebRTC media; a call without media
//! (an offer str0m could not accept) reads paced silence.

use crate::media::{self, Media, Outbound, Read};
use crate::shell::{self, ToConn};
use hotswitch_plugin_api::{
    CallCause, ChannelState, Dtmf, Endpoint, Frame, Message, MessageId, ModuleContext, Outgoing,
    OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// The SDP the switch answers and offers with until WebRTC media exists:
/// an inactive PCMU stream, so a client knows there is no media.
pub const PLACEHOLDER_SDP: &str = "v=0\r\no=hotswitch 0 0 IN IP4 127.0.0.1\r\ns=hotswitch\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=inactive\r\n";

/// A verto call leg: the session's private data (as `Box<Leg>`).
pub struct Leg {
    /// The client's `callID`.
    pub call_id: String,
    /// The queue of the connection the call belongs to.
    pub tx: UnboundedSender<ToConn>,
    /// The SDP the switch answers with.
    pub local_sdp: String,
    pub media: Option<Arc<Media>>,
}

impl Leg {
    fn tell(&self, m: ToConn) {
        // A closed connection has already hung its calls up.
        let _ = self.tx.send(m);
    }
}

/// The leg of a session (set by this module at creation, freed at
/// CS_DESTROY).
pub fn leg_of(s: &Session) -> Option<&Leg> {
    let p = s.private() as *const Leg;
    // SAFETY: the only private data this module sets on its sessions is a
    // `Box<Leg>`, alive until on_destroy, the session's last callback.
    unsafe { p.as_ref() }
}

/// Attaches `leg` to a new session.
pub fn attach(s: &Session, leg: Leg) {
    s.set_private(Box::into_raw(Box::new(leg)) as *mut _);
}

/// How long a blocking read waits for a packet.
const READ_WAIT: Duration = Duration::from_millis(20);

/// 20 ms of L16 silence at 8 kHz.
static SILENCE: [u8; 320] = [0; 320];

/// The endpoint registered as `verto.rtc`.
pub struct Verto;

impl Endpoint for Verto {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let target = req.dial_data.trim();
        let (tx, rtp_ip) = shell::client_of(target).ok_or(CallCause::USER_NOT_REGISTERED)?;
        let (media, local_sdp) = match shell::on_runtime(|| media::offer(rtp_ip)) {
            Some(Ok((m, sdp))) => (Some(m), sdp),
            Some(Err(e)) => {
                log::warn!("verto.rtc/{target}: no WebRTC media ({e})");
                (None, PLACEHOLDER_SDP.to_string())
            }
            None => return Err(CallCause::SERVICE_UNAVAILABLE),
        };
        let s = ModuleContext::current()
            .session_request("verto.rtc", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let call_id = shell::new_id();
        let name = format!("verto.rtc/{target}");
        let mut profile = req.profile.clone();
        profile.destination_number = target.split('@').next().unwrap_or(target).into();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_var("verto_user", target);
        s.set_var("switch_l_sdp", &local_sdp);
        attach(
            &s,
            Leg {
                call_id: call_id.clone(),
                tx: tx.clone(),
                local_sdp: local_sdp.clone(),
                media,
            },
        );
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        let _ = tx.send(ToConn::Invite {
            call_id,
            uuid: s.uuid(),
            caller_id_name: req.profile.caller_id_name.clone(),
            caller_id_number: req.profile.caller_id_number.clone(),
            sdp: local_sdp,
        });
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        match state {
            ChannelState::HANGUP => {
                if let Some(l) = leg_of(s) {
                    let cause = s
                        .var("hangup_cause")
                        .and_then(|c| CallCause::from_name(&c))
                        .unwrap_or(CallCause::NORMAL_CLEARING);
                    l.tell(ToConn::HungUp {
                        call_id: l.call_id.clone(),
                        cause,
                    });
                }
            }
            ChannelState::DESTROY => {
                let p = s.private() as *mut Leg;
                if !p.is_null() {
                    s.set_private(std::ptr::null_mut());
                    // SAFETY: the Box this module put there; on_destroy is
                    // the session's last callback.
                    drop(unsafe { Box::from_raw(p) });
                }
            }
            _ => {}
        }
        Status::SUCCESS
    }

    fn receive_message(&self, s: &Session, msg: &Message) -> Status {
        let Some(l) = leg_of(s) else {
            return Status::SUCCESS;
        };
        let call_id = l.call_id.clone();
        let sdp = l.local_sdp.clone();
        match msg.id {
            MessageId::ANSWER => l.tell(ToConn::Answered { call_id, sdp }),
            MessageId::PROGRESS => l.tell(ToConn::EarlyMedia { call_id, sdp }),
            _ => {}
        }
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut Frame, flags: u32) -> Status {
        if s.is_down() || f.data.is_null() {
            return Status::FALSE;
        }
        let wait = if flags & READ_FLAG_NOBLOCK != 0 {
            Duration::ZERO
        } else {
            READ_WAIT
        };
        if let Some(m) = leg_of(s).and_then(|l| l.media.as_ref()) {
            match m.read(wait) {
                Read::Audio(codec, data) => {
                    // SAFETY: the host lent `buflen` writable bytes at `data`.
                    unsafe { f.fill(&data, codec.name()) };
                    return Status::SUCCESS;
                }
                Read::Timeout => return Status::TIMEOUT,
                // The media ended: silence until the call does.
                Read::Closed => {}
            }
        }
        if flags & READ_FLAG_NOBLOCK != 0 {
            return Status::TIMEOUT;
        }
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: the host lent `buflen` writable bytes at `data`.
        unsafe { f.fill(&SILENCE, "L16") };
        Status::SUCCESS
    }

    fn write_frame(&self, s: &Session, f: &Frame) -> Status {
        let Some(m) = leg_of(s).and_then(|l| l.media.as_ref()) else {
            return Status::SUCCESS;
        };
        if f.data.is_null() || f.datalen == 0 {
            return Status::SUCCESS;
        }
        // SAFETY: the codec view lives as long as the frame.
        let codec = match &*unsafe { f.codec.to_str() } {
            "PCMU" => Some(media::Codec::Pcmu),
            "PCMA" => Some(media::Codec::Pcma),
            "L16" | "" => None,
            _ => return Status::SUCCESS,
        };
        // SAFETY: the frame's data is valid for the call.
        let data = unsafe { std::slice::from_raw_parts(f.data, f.datalen as usize) }.to_vec();
        m.write(Outbound { codec, data });
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &Dtmf) -> Status {
        let (Some(l), Some(digit)) = (leg_of(s), char::from_u32(d.digit)) else {
            return Status::FALSE;
        };
        l.tell(ToConn::Dtmf {
            call_id: l.call_id.clone(),
            digits: digit.to_string(),
        });
        Status::SUCCESS
    }
}

//! The `verto.rtc` endpoint the core calls: what the switch tells a call
//! (answer, hangup, digits, display) goes to the connection of the client
//! session that carries it; outbound legs (`verto.rtc/<user>@<domain>`:
//! every client logged in as that user, rung at once; `verto.rtc/u:<sessid>`:
//! one client session) are offered with a WebRTC offer each, and the first
//! client to answer takes the call while the others get `verto.bye` with
//! `LOSE_RACE`. Frames cross the call's WebRTC media; a call without media
//! (an offer str0m could not accept) reads paced silence.

use crate::media::{self, Media, Outbound, Read};
use crate::shell::{self, ToConn};
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{
    CallCause, ChannelState, Dtmf, Endpoint, FrameBuf, FrameView, Message, MessageId,
    ModuleContext, Outgoing, OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::Arc;
use std::time::Duration;

/// The SDP the switch answers and offers with until WebRTC media exists:
/// an inactive PCMU stream, so a client knows there is no media.
pub const PLACEHOLDER_SDP: &str = "v=0\r\no=hotswitch 0 0 IN IP4 127.0.0.1\r\ns=hotswitch\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=inactive\r\n";

/// A client's `callID` within its session (`sessid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCall {
    pub sessid: String,
    pub call_id: String,
}

/// Media the switch offered a client and that it has not answered yet: one
/// per client an outbound leg rings, or the new media of a reattached call.
pub struct Offer {
    pub to: ClientCall,
    pub media: Option<Arc<Media>>,
}

struct LegState {
    /// The client that carries the call (an outbound leg's: the one that
    /// answered; none while it rings).
    owner: Option<ClientCall>,
    media: Option<Arc<Media>>,
    /// The SDP the switch answered an inbound call with.
    local_sdp: String,
    offers: Vec<Offer>,
    answered: bool,
}

/// A verto call leg: the session's private data (the host drops it with
/// the session).
pub struct Leg {
    state: Mutex<LegState>,
}

/// What accepting an answer to an offer did.
pub enum Accepted {
    /// The answer was to this leg's offer; these other offers lost.
    Won(Vec<Offer>),
    /// No such offer (answered elsewhere already, or never offered).
    Unknown,
}

/// What a client's leaving did to a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// It was one of several clients rung; the others still ring.
    Offer,
    /// It was the last client rung, or carried a call not yet answered.
    Last,
    /// It carries the answered call.
    Owner,
    /// Not this client's call.
    None,
}

impl Leg {
    /// An inbound call's leg: `owner` placed it, `media` answers it.
    pub fn inbound(owner: ClientCall, media: Option<Arc<Media>>, local_sdp: String) -> Leg {
        Leg::with(LegState {
            owner: Some(owner),
            media,
            local_sdp,
            offers: Vec::new(),
            answered: false,
        })
    }

    /// An outbound leg ringing `offers`.
    pub fn outbound(offers: Vec<Offer>) -> Leg {
        Leg::with(LegState {
            owner: None,
            media: None,
            local_sdp: String::new(),
            offers,
            answered: false,
        })
    }

    fn with(state: LegState) -> Leg {
        Leg {
            state: Mutex::new(state),
        }
    }

    /// The media frames cross now.
    pub fn media(&self) -> Option<Arc<Media>> {
        self.state.lock().media.clone()
    }

    /// The client carrying the call.
    pub fn owner(&self) -> Option<ClientCall> {
        self.state.lock().owner.clone()
    }

    pub fn is_answered(&self) -> bool {
        self.state.lock().answered
    }

    /// Adds an offer (a reattach's new media).
    pub fn offer(&self, offer: Offer) {
        let mut st = self.state.lock();
        st.offers.retain(|o| o.to != offer.to);
        st.offers.push(offer);
    }

    /// The client `to` answered its offer with `sdp`: it carries the call
    /// and its media from now on.
    pub fn accept(&self, to: &ClientCall, sdp: &str) -> Accepted {
        let mut st = self.state.lock();
        let Some(i) = st.offers.iter().position(|o| &o.to == to) else {
            return Accepted::Unknown;
        };
        let won = st.offers.remove(i);
        if let Some(m) = &won.media {
            m.remote_answer(sdp);
        }
        let first = st.owner.is_none();
        st.owner = Some(won.to);
        st.media = won.media;
        st.answered = true;
        let lost = if first {
            std::mem::take(&mut st.offers)
        } else {
            Vec::new()
        };
        Accepted::Won(lost)
    }

    /// The switch answered (an inbound call).
    pub fn mark_answered(&self) {
        self.state.lock().answered = true;
    }

    /// Client `to` is gone or declined: drops its offer.
    pub fn withdraw(&self, to: &ClientCall) -> Withdrawn {
        let mut st = self.state.lock();
        if let Some(i) = st.offers.iter().position(|o| &o.to == to) {
            st.offers.remove(i);
            return if st.owner.is_none() && st.offers.is_empty() {
                Withdrawn::Last
            } else {
                Withdrawn::Offer
            };
        }
        match &st.owner {
            Some(o) if o == to && st.answered => Withdrawn::Owner,
            Some(o) if o == to => Withdrawn::Last,
            _ => Withdrawn::None,
        }
    }

    /// Every client that hears of the call's end: the owner, or all those
    /// still rung.
    fn parties(&self) -> Vec<ClientCall> {
        let st = self.state.lock();
        st.owner
            .iter()
            .cloned()
            .chain(st.offers.iter().map(|o| o.to.clone()))
            .collect()
    }

    fn tell_owner(&self, m: impl FnOnce(String) -> ToConn) {
        if let Some(o) = self.owner() {
            shell::send_to(&o.sessid, m(o.call_id));
        }
    }
}

/// The leg of a session (attached by this module at creation).
pub fn leg_of<'s>(s: &'s Session) -> Option<&'s Leg> {
    s.private::<Leg>()
}

/// Attaches `leg` to a new session.
pub fn attach(s: &Session, leg: Leg) {
    if let Err(e) = s.set_private(leg) {
        log::error!("verto: cannot attach a leg to {}: {e}", s.uuid());
    }
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
        let clients = shell::clients_for(target);
        if clients.is_empty() {
            return Err(CallCause::USER_NOT_REGISTERED);
        }
        let mut offers = Vec::new();
        let mut sdps = Vec::new();
        for (sessid, rtp_ip) in clients {
            let (media, sdp) = match shell::on_runtime(|| media::offer(rtp_ip)) {
                Some(Ok((m, sdp))) => (Some(m), sdp),
                Some(Err(e)) => {
                    log::warn!("verto.rtc/{target}: no WebRTC media ({e})");
                    (None, PLACEHOLDER_SDP.to_string())
                }
                None => return Err(CallCause::SERVICE_UNAVAILABLE),
            };
            let to = ClientCall {
                sessid,
                call_id: shell::new_id(),
            };
            sdps.push((to.clone(), sdp));
            offers.push(Offer { to, media });
        }
        let s = ModuleContext::current()
            .session_request("verto.rtc", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let name = format!("verto.rtc/{target}");
        let mut profile = req.profile.clone();
        let user = target.trim_start_matches("u:");
        profile.destination_number = user.split('@').next().unwrap_or(user).into();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        s.set_var("verto_user", target);
        s.set_var("switch_l_sdp", &sdps[0].1);
        attach(&s, Leg::outbound(offers));
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        let uuid = s.uuid();
        for (to, sdp) in sdps {
            shell::send_to(
                &to.sessid,
                ToConn::Invite {
                    call_id: to.call_id,
                    uuid: uuid.clone(),
                    caller_id_name: req.profile.caller_id_name.clone(),
                    caller_id_number: req.profile.caller_id_number.clone(),
                    sdp,
                },
            );
        }
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
                    for p in l.parties() {
                        shell::send_to(
                            &p.sessid,
                            ToConn::HungUp {
                                call_id: p.call_id,
                                cause,
                            },
                        );
                    }
                }
            }
            ChannelState::DESTROY => {
                if let Some(o) = leg_of(s).and_then(Leg::owner) {
                    shell::call_gone(&o.sessid, &s.uuid());
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
        let sdp = l.state.lock().local_sdp.clone();
        match msg.id {
            // An outbound leg has no answer of the switch's to send: the
            // client answered it.
            MessageId::ANSWER | MessageId::PROGRESS if sdp.is_empty() => {}
            MessageId::ANSWER => {
                l.mark_answered();
                l.tell_owner(|call_id| ToConn::Answered { call_id, sdp });
            }
            MessageId::PROGRESS => l.tell_owner(|call_id| ToConn::EarlyMedia { call_id, sdp }),
            // FreeSWITCH's display update: "name|number".
            MessageId::DISPLAY => {
                let (name, number) = msg
                    .string_arg
                    .split_once('|')
                    .unwrap_or((msg.string_arg.as_str(), ""));
                s.set_var("last_sent_display_name", name);
                s.set_var("last_sent_display_number", number);
                let (name, number) = (name.to_string(), number.to_string());
                l.tell_owner(|call_id| ToConn::Display {
                    call_id,
                    name,
                    number,
                });
            }
            _ => {}
        }
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        if s.is_down() || f.buffer().is_empty() {
            return Status::FALSE;
        }
        let wait = if flags & READ_FLAG_NOBLOCK != 0 {
            Duration::ZERO
        } else {
            READ_WAIT
        };
        if let Some(m) = leg_of(s).and_then(Leg::media) {
            match m.read(wait) {
                Read::Audio(codec, data) => {
                    f.fill(&data, codec.name());
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
        f.fill(&SILENCE, "L16");
        Status::SUCCESS
    }

    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        let Some(m) = leg_of(s).and_then(Leg::media) else {
            return Status::SUCCESS;
        };
        if f.data().is_empty() {
            return Status::SUCCESS;
        }
        let codec = match &*f.codec() {
            "PCMU" => Some(media::Codec::Pcmu),
            "PCMA" => Some(media::Codec::Pcma),
            "L16" | "" => None,
            _ => return Status::SUCCESS,
        };
        let data = f.data().to_vec();
        m.write(Outbound { codec, data });
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &Dtmf) -> Status {
        let (Some(l), Some(digit)) = (leg_of(s), char::from_u32(d.digit)) else {
            return Status::FALSE;
        };
        l.tell_owner(|call_id| ToConn::Dtmf {
            call_id,
            digits: digit.to_string(),
        });
        Status::SUCCESS
    }
}

//! What a call leg's session and the SIP thread share, and what they say
//! to each other.

use crate::config::DtmfType;
use crate::rtp::Media;
use crate::sip::headers::Uri;
use crate::sip::transaction::Target;
use hotswitch_plugin_api::{CallCause, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// One SIP call leg: the session's private data (as `Arc<Leg>`) and
/// the SIP thread's view of the same call.
pub struct Leg {
    pub call_id: String,
    pub uuid: String,
    pub profile: usize,
    pub media: Media,
    pub dtmf_type: DtmfType,
    /// The SIP thread's queue.
    pub tx: UnboundedSender<Input>,
    /// An outbound leg's INVITE, sent in the first state after CS_INIT,
    /// once the leg's CHANNEL_CREATE has fired: clients that group legs
    /// into calls (switchio) take the first leg they see as the caller, and
    /// a switch calling itself would otherwise race its own INVITE. Taken
    /// then, or at CS_DESTROY (it holds the leg).
    pub invite: hotswitch_plugin_api::sync::Mutex<Option<Box<Outbound>>>,
    /// The session has run CS_INIT (an outbound leg's call is placed from
    /// then on, even if it is hung up before its next state).
    pub initialized: std::sync::atomic::AtomicBool,
}

impl Leg {
    /// Tells the SIP thread.
    pub fn send(&self, input: Input) {
        let _ = self.tx.send(input);
    }
}

/// The leg of a session (attached by this module at creation; the host
/// drops it with the session).
pub fn of<'s>(s: &'s Session) -> Option<&'s Arc<Leg>> {
    s.private::<Arc<Leg>>()
}

/// An outbound call the SIP thread is to place.
pub struct Outbound {
    pub leg: Arc<Leg>,
    pub uri: Uri,
    /// Where the INVITE goes (a registered contact's network address, the
    /// gateway's proxy, or the URI's host).
    pub target: Target,
    pub from_user: String,
    pub from_display: String,
    pub from_host: String,
    /// `sip_h_X-…` variables as headers.
    pub headers: Vec<(String, String)>,
    /// Credentials for a challenge (gateway or `sip_auth_*` variables).
    pub auth: Option<(String, String)>,
    pub gateway: Option<String>,
    /// The INVITE's Max-Forwards: the leg's `max_forwards` variable (set
    /// by the originate from the caller's hops), else 70.
    pub max_forwards: Option<u32>,
    /// Route headers for the INVITE (a registered contact's Path).
    pub route: Vec<String>,
    /// The leg's own codecs (`absolute_codec_string`, `codec_string`);
    /// `None`: its profile's.
    pub codecs: Option<Vec<crate::sdp::Codec>>,
}

/// A MESSAGE to send, as the chat interface asked for it.
#[derive(Clone)]
pub struct ChatMessage {
    /// The profile to send it from (the chat's hint); `None`: the
    /// registration's, else the first.
    pub profile: Option<String>,
    /// `user@host`: a registered user or an address.
    pub to: String,
    pub from: String,
    pub body: String,
    pub content_type: String,
}

/// A request for the API, answered on `reply`.
pub struct ApiRequest {
    pub args: String,
    pub reply: std::sync::mpsc::SyncSender<String>,
}

/// Everything the SIP thread is told.
pub enum Input {
    /// A datagram on a profile's UDP socket.
    Datagram {
        profile: usize,
        from: SocketAddr,
        data: Vec<u8>,
    },
    /// One framed message from a TCP or TLS connection.
    Stream {
        profile: usize,
        proto: crate::sip::transaction::Proto,
        from: SocketAddr,
        data: Vec<u8>,
    },
    /// A TCP connection opened (accepted or connected): its writer.
    TcpOpen {
        from: SocketAddr,
        writer: UnboundedSender<Vec<u8>>,
    },
    TcpClosed {
        from: SocketAddr,
    },
    /// A connection we opened could not be made: what waits on it fails.
    TcpUnreachable {
        to: SocketAddr,
        error: String,
    },
    /// The core answered / pre-answered / rang an inbound leg (each leg
    /// named by its session's uuid).
    /// `codecs`: the leg's `absolute_codec_string` when it has one (an
    /// inbound leg answers in the first of them the offer has).
    Answer {
        uuid: String,
        codecs: Option<Vec<crate::sdp::Codec>>,
    },
    Progress {
        uuid: String,
        codecs: Option<Vec<crate::sdp::Codec>>,
    },
    Ringing {
        uuid: String,
    },
    /// The session is hanging up.
    Hangup {
        uuid: String,
        cause: CallCause,
    },
    /// Place an outbound call.
    Invite(Box<Outbound>),
    /// Send a digit by SIP INFO.
    Info {
        uuid: String,
        digit: char,
        duration_ms: u32,
    },
    /// Digits were queued on the leg's media: send their events in time.
    PaceDtmf {
        uuid: String,
    },
    /// Send a MESSAGE.
    Message(ChatMessage),
    /// `sofia …` commands.
    Api(ApiRequest),
    /// `sofia recover`: calls another node tracked, to take over.
    Recover {
        calls: Vec<crate::tracking::Tracked>,
        reply: crate::tracking::RecoverReply,
    },
    /// The shell's resolver answered a name the stack asked for.
    Resolved {
        host_port: String,
        result: Result<SocketAddr, String>,
    },
    /// Unload: stop serving.
    Stop,
}

/// Errors of outbound dialing, as hangup causes.
pub type DialResult<T> = Result<T, CallCause>;

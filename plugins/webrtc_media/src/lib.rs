//! # hotswitch-webrtc-media — WebRTC media of a call, for every endpoint
//!
//! str0m (sans-IO: ICE-lite, DTLS-SRTP, RTP/RTCP mux) answers a browser's
//! offer with PCMU/PCMA (or offers them), or with Opus too when the
//! endpoint asks for it (mod_sofia, which codes Opus itself), and a task on
//! the module's runtime drives it over the call's own UDP socket. Audio
//! crosses to the session's frames through two queues: payloads received
//! for `read_frame`, frames written for the task to send. mod_verto's calls
//! and mod_sofia's SIP-over-WebSocket calls use this one stack.

pub mod g711;

use hotswitch_plugin_api::sync::Mutex;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Received payloads waiting for `read_frame`: 200 ms of audio.
const INBOUND_QUEUE: usize = 10;

/// The codec of a payload: a G.711 law, or Opus (48 kHz RTP clock; only
/// when the endpoint enabled it, and coded by the endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    /// The name frames carry.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "OPUS",
        }
    }

    /// A G.711 law (what the task can code from L16 itself).
    pub fn is_law(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma)
    }
}

/// A frame for the far end: G.711 as it is, or L16 to encode.
pub struct Outbound {
    pub codec: Option<Codec>,
    pub data: Vec<u8>,
}

/// What the session tells the media task.
enum ToMedia {
    Frame(Outbound),
    /// A payload the endpoint coded itself, and the 8 kHz samples it
    /// holds (the RTP clock advances by its duration at the codec's rate).
    Encoded(Codec, Vec<u8>, u32),
    /// The far end's answer to the switch's offer.
    Answer(String),
}

/// What a read found.
pub enum Read {
    Audio(Codec, Vec<u8>),
    Timeout,
    /// The media task ended (ICE gone, leg gone).
    Closed,
}

/// The session's side of a call's media.
pub struct Media {
    inbound: Mutex<Receiver<(Codec, Vec<u8>)>>,
    outbound: UnboundedSender<ToMedia>,
}

impl Media {
    /// The next received payload, waiting up to `wait`.
    pub fn read(&self, wait: Duration) -> Read {
        let rx = self.inbound.lock();
        match rx.recv_timeout(wait) {
            Ok((c, d)) => Read::Audio(c, d),
            Err(RecvTimeoutError::Timeout) => Read::Timeout,
            Err(RecvTimeoutError::Disconnected) => Read::Closed,
        }
    }

    /// Queues a frame for the far end.
    pub fn write(&self, frame: Outbound) {
        let _ = self.outbound.send(ToMedia::Frame(frame));
    }

    /// Queues a payload the endpoint coded (Opus): `samples` at 8 kHz.
    pub fn write_encoded(&self, codec: Codec, data: Vec<u8>, samples: u32) {
        let _ = self.outbound.send(ToMedia::Encoded(codec, data, samples));
    }

    /// The far end answered the switch's offer.
    pub fn remote_answer(&self, sdp: &str) {
        let _ = self.outbound.send(ToMedia::Answer(sdp.to_string()));
    }
}

/// The G.711 laws, what [`offer`] and [`answer`] use.
pub const G711: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

fn rtc_and_socket(
    ip: IpAddr,
    codecs: &[Codec],
) -> Result<(Rtc, std::net::UdpSocket, SocketAddr), String> {
    let sock = std::net::UdpSocket::bind((ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    let local = sock.local_addr().map_err(|e| format!("socket: {e}"))?;
    // The payload types in the order given: an answer lists (and the
    // browser then sends) the first both sides have.
    let mut builder = Rtc::builder().set_ice_lite(true).clear_codecs();
    for c in codecs {
        builder = match c {
            Codec::Pcmu => builder.enable_pcmu(true, false),
            Codec::Pcma => builder.enable_pcma(true, false),
            Codec::Opus => builder.enable_opus(true, false),
        };
    }
    let mut rtc = builder.build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(candidate);
    Ok((rtc, sock, local))
}

/// Starts the task that carries a call's media (on the module's runtime).
fn start(
    rtc: Rtc,
    sock: std::net::UdpSocket,
    local: SocketAddr,
    pending: Option<(SdpPendingOffer, Mid)>,
) -> Result<Arc<Media>, String> {
    let sock = UdpSocket::from_std(sock).map_err(|e| format!("socket: {e}"))?;
    let (in_tx, in_rx) = std::sync::mpsc::sync_channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = unbounded_channel();
    tokio::spawn(drive(rtc, sock, local, in_tx, out_rx, pending));
    log::debug!("WebRTC media on {local}");
    Ok(Arc::new(Media {
        inbound: Mutex::new(in_rx),
        outbound: out_tx,
    }))
}

/// Offers media on `ip` for an outbound call (must run on the module's
/// runtime): the media and the offer's SDP; the answer comes through
/// [`Media::remote_answer`].
pub fn offer(ip: IpAddr) -> Result<(Arc<Media>, String), String> {
    offer_with(ip, &G711)
}

/// As [`offer`], with `codecs` in this order of preference.
pub fn offer_with(ip: IpAddr, codecs: &[Codec]) -> Result<(Arc<Media>, String), String> {
    let (mut rtc, sock, local) = rtc_and_socket(ip, codecs)?;
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().ok_or("no media to offer")?;
    let media = start(rtc, sock, local, Some((pending, mid)))?;
    Ok((media, offer.to_sdp_string()))
}

/// Answers `offer` with media on `ip` and starts the task that carries it
/// (must run on the module's runtime): the media and the answer's SDP.
pub fn answer(offer: &str, ip: IpAddr) -> Result<(Arc<Media>, String), String> {
    answer_with(offer, ip, &G711)
}

/// As [`answer`], with `codecs` in this order of preference.
pub fn answer_with(
    offer: &str,
    ip: IpAddr,
    codecs: &[Codec],
) -> Result<(Arc<Media>, String), String> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("offer: {e}"))?;
    let (mut rtc, sock, local) = rtc_and_socket(ip, codecs)?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("offer: {e}"))?;
    let media = start(rtc, sock, local, None)?;
    Ok((media, answer.to_sdp_string()))
}

fn codec_of(c: RtcCodec) -> Option<Codec> {
    match c {
        RtcCodec::PCMU => Some(Codec::Pcmu),
        RtcCodec::PCMA => Some(Codec::Pcma),
        RtcCodec::Opus => Some(Codec::Opus),
        _ => None,
    }
}

/// The run loop: drain str0m's output, then wait for a datagram, a frame
/// to send or str0m's next deadline. Ends when the leg drops its media or
/// ICE disconnects.
async fn drive(
    mut rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    inbound: SyncSender<(Codec, Vec<u8>)>,
    mut outbound: UnboundedReceiver<ToMedia>,
    pending: Option<(SdpPendingOffer, Mid)>,
) {
    let mut buf = vec![0u8; 2048];
    // Our own offer's media is known at once; an answered offer's comes as
    // MediaAdded.
    let (mut pending, mut mid) = match pending {
        Some((p, m)) => (Some(p), Some(m)),
        None => (None, None),
    };
    let mut send_codec: Option<Codec> = None;
    let mut rtp_time: u64 = 0;
    // Opus's RTP clock: 48 kHz (RFC 7587), whatever rate it was coded at.
    let mut opus_time: u64 = 0;
    loop {
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = sock.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::MediaAdded(m) => mid = Some(m.mid),
                    Event::MediaData(d) => {
                        if let Some(c) = codec_of(d.params.spec().codec) {
                            send_codec.get_or_insert(c);
                            // Nobody reading (a parked call): drop, never pile up.
                            let _ = inbound.try_send((c, d.data.to_vec()));
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        log::debug!("WebRTC media on {local}: ICE disconnected");
                        return;
                    }
                    _ => {}
                },
                Err(e) => {
                    log::warn!("WebRTC media on {local}: {e}");
                    return;
                }
            }
        };
        if !rtc.is_alive() {
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let input = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, source)) => match Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    Ok(rx) => Input::Receive(Instant::now(), rx),
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
            m = outbound.recv() => {
                let f = match m {
                    None => return,
                    Some(ToMedia::Frame(f)) => f,
                    Some(ToMedia::Encoded(codec, data, samples)) => {
                        let Some(w) = mid.and_then(|m| rtc.writer(m)) else { continue };
                        let Some(pt) = w
                            .payload_params()
                            .find(|p| codec_of(p.spec().codec) == Some(codec))
                            .map(|p| p.pt())
                        else {
                            continue;
                        };
                        let (at, step) = match codec {
                            Codec::Opus => (MediaTime::new(opus_time, Frequency::FORTY_EIGHT_KHZ), 6),
                            _ => (MediaTime::new(rtp_time, Frequency::EIGHT_KHZ), 1),
                        };
                        match codec {
                            Codec::Opus => opus_time += samples as u64 * step,
                            _ => rtp_time += samples as u64,
                        }
                        if let Err(e) = w.write(pt, Instant::now(), at, data) {
                            log::debug!("WebRTC media on {local}: write: {e}");
                        }
                        continue;
                    }
                    Some(ToMedia::Answer(sdp)) => {
                        let answer = SdpAnswer::from_sdp_string(&sdp);
                        match (pending.take(), answer) {
                            (Some(p), Ok(a)) => {
                                if let Err(e) = rtc.sdp_api().accept_answer(p, a) {
                                    log::info!("WebRTC media on {local}: answer: {e}");
                                }
                            }
                            (_, Err(e)) => log::info!("WebRTC media on {local}: answer: {e}"),
                            (None, _) => {}
                        }
                        continue;
                    }
                };
                if f.codec == Some(Codec::Opus) {
                    // Coded by the endpoint: it comes as Encoded.
                    continue;
                }
                let Some(w) = mid.and_then(|m| rtc.writer(m)) else { continue };
                // L16 or G.711 frames go out in a law: the one the far end
                // sends, else the frame's.
                let want = send_codec
                    .filter(|c| c.is_law())
                    .or(f.codec.filter(|c| c.is_law()))
                    .unwrap_or(Codec::Pcmu);
                let Some(pt) = w
                    .payload_params()
                    .find(|p| codec_of(p.spec().codec) == Some(want))
                    .map(|p| p.pt())
                else {
                    continue;
                };
                let data = match f.codec {
                    Some(c) if c == want => f.data,
                    Some(c) => g711::transcode(c, want, &f.data),
                    None => g711::encode(want, &f.data),
                };
                let samples = data.len() as u64;
                let at = MediaTime::new(rtp_time, Frequency::EIGHT_KHZ);
                rtp_time += samples;
                if let Err(e) = w.write(pt, Instant::now(), at, data) {
                    log::debug!("WebRTC media on {local}: write: {e}");
                }
                // A mutation: drain before waiting again.
                continue;
            }
            _ = tokio::time::sleep(wait) => Input::Timeout(Instant::now()),
        };
        if let Err(e) = rtc.handle_input(input) {
            log::debug!("WebRTC media on {local}: {e}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_that_is_not_webrtc_is_refused() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n";
        assert!(answer(offer, "127.0.0.1".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn a_browser_style_offer_gets_an_ice_lite_g711_answer() {
        let mut peer = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .build(Instant::now());
        let addr = "127.0.0.1:40000".parse().unwrap();
        peer.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = peer.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _pending) = change.apply().unwrap();
        let (_media, sdp) = answer(&offer.to_sdp_string(), "127.0.0.1".parse().unwrap()).unwrap();
        assert!(sdp.contains("a=ice-lite"), "{sdp}");
        assert!(sdp.contains("PCMU/8000"), "{sdp}");
        assert!(!sdp.contains("opus"), "{sdp}");
        assert!(sdp.contains("a=fingerprint:sha-256"), "{sdp}");
    }

    #[tokio::test]
    async fn with_opus_first_the_answer_lists_opus_first_at_48_khz() {
        let mut peer = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .build(Instant::now());
        let addr = "127.0.0.1:40002".parse().unwrap();
        peer.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = peer.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _pending) = change.apply().unwrap();
        let (_media, sdp) = answer_with(
            &offer.to_sdp_string(),
            "127.0.0.1".parse().unwrap(),
            &[Codec::Opus, Codec::Pcmu, Codec::Pcma],
        )
        .unwrap();
        let m = sdp.lines().find(|l| l.starts_with("m=audio")).unwrap();
        let first_pt = m.split(' ').nth(3).unwrap();
        assert!(
            sdp.contains(&format!("a=rtpmap:{first_pt} opus/48000/2")),
            "{sdp}"
        );
    }

    #[tokio::test]
    async fn the_switchs_offer_is_ice_lite_g711_only() {
        let (_media, sdp) = offer("127.0.0.1".parse().unwrap()).unwrap();
        assert!(sdp.contains("a=ice-lite"), "{sdp}");
        assert!(
            sdp.contains("PCMU/8000") && sdp.contains("PCMA/8000"),
            "{sdp}"
        );
        assert!(sdp.contains("a=candidate:"), "{sdp}");
    }
}

//! One call as a browser makes it: a WebRTC offer (str0m, full ICE and
//! controlling, DTLS-SRTP, PCMU only) in `verto.invite`, the switch's SDP
//! from `verto.answer` (or `verto.media`), then 20 ms PCMU packets on the
//! call's own UDP socket until the bench says stop, counting what comes
//! back and comparing it byte for byte; `verto.bye` at the end.

use crate::payload;
use crate::verto::Login;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// Where the bench is: calls send audio while it is not [`Phase::Stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Calls are being set up.
    Ramp,
    /// Every call has been set up (or failed); the measured window.
    Hold,
    /// Stop sending, wait for the last echoes, hang up.
    Stop,
}

/// What a call needs to know.
#[derive(Clone)]
pub struct Spec {
    pub index: usize,
    pub destination: String,
    pub caller: String,
    /// The address the call's UDP socket binds (the host candidate).
    pub ip: IpAddr,
    pub cert: DtlsCert,
    /// From `verto.invite` to DTLS-SRTP up.
    pub setup_timeout: Duration,
    /// How long to wait for echoes after the last packet sent.
    pub drain: Duration,
    /// When in the 20 ms period the call's packets go out: independent
    /// clients are not in step, and calls started 20 ms apart would be.
    pub phase: Duration,
}

/// How a call went.
#[derive(Debug, Default)]
pub struct Report {
    /// Why it failed; `None` for a call that did all it should.
    pub failure: Option<String>,
    /// `verto.invite` sent → its result received.
    pub invite_reply: Option<Duration>,
    /// `verto.invite` sent → `verto.answer` received.
    pub answer: Option<Duration>,
    /// `verto.invite` sent → DTLS-SRTP up.
    pub media: Option<Duration>,
    pub sent: u64,
    /// Echoes identical to a packet this call sent.
    pub matched: u64,
    /// Echoes that are not any packet this call sent.
    pub mismatched: u64,
    pub duplicates: u64,
    /// Round trips of the matched echoes, µs.
    pub rtts_us: Vec<u32>,
    /// Packets of this call the switch had not received, as its last RTCP
    /// receiver report said (`None`: no report came).
    pub lost_inbound: Option<u64>,
}

/// The audio of a call: what went out when, what came back.
struct Audio {
    index: usize,
    started: Instant,
    /// Send time of packet n, µs after `started`.
    sent_at: Vec<u32>,
    seen: Vec<bool>,
}

impl Audio {
    fn echo(&mut self, data: &[u8], at: Instant, r: &mut Report) {
        let Some(n) = payload::number(data) else {
            r.mismatched += 1;
            return;
        };
        let n = n as usize;
        if n >= self.sent_at.len() || data != payload::packet(self.index, n as u32).as_slice() {
            r.mismatched += 1;
        } else if self.seen[n] {
            r.duplicates += 1;
        } else {
            self.seen[n] = true;
            r.matched += 1;
            let back = at.saturating_duration_since(self.started).as_micros() as u32;
            r.rtts_us.push(back.saturating_sub(self.sent_at[n]));
        }
    }
}

/// Runs one call to its end. `setup` hears once whether the call came up.
pub async fn run(
    spec: Spec,
    login: Login,
    mut phase: watch::Receiver<Phase>,
    setup: mpsc::UnboundedSender<bool>,
) -> Report {
    let mut report = Report::default();
    let mut setup = Some(setup);
    let call_id = format!("vertobench-{}-{}", std::process::id(), spec.index);
    let mut from_switch = login.route(&call_id);
    let mut media = match Media::new(&spec) {
        Ok(m) => m,
        Err(e) => {
            ended(&mut setup, &mut report, e);
            return report;
        }
    };
    let (offer, pending) = media.offer();
    let invited = Instant::now();
    let invite = json!({
        "sdp": offer,
        "sessid": login.sessid(),
        "dialogParams": {
            "callID": call_id,
            "destination_number": spec.destination,
            "caller_id_name": spec.caller,
            "caller_id_number": spec.caller,
            "remote_caller_id_name": "Outbound Call",
            "remote_caller_id_number": spec.destination,
            "useVideo": false,
            "useStereo": false,
            "screenShare": false,
            "dedEnc": false,
            "mirrorInput": false,
            "userVariables": {},
        },
    });
    if let Err(e) = login.request("verto.invite", invite).await {
        ended(&mut setup, &mut report, format!("verto.invite: {e}"));
        return report;
    }
    report.invite_reply = Some(invited.elapsed());
    let deadline = invited + spec.setup_timeout;
    let mut pending = Some(pending);
    let mut audio = Audio {
        index: spec.index,
        started: Instant::now(),
        sent_at: Vec::new(),
        seen: Vec::new(),
    };
    let mut tick = tokio::time::interval(payload::PTIME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sending = false;
    let mut stop_at: Option<Instant> = None;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = match media.drain(|data, at| audio.echo(data, at, &mut report)) {
            Ok(Drained::Timeout(t)) => t,
            Ok(Drained::Connected) => {
                report.media = Some(invited.elapsed());
                if let Some(s) = setup.take() {
                    let _ = s.send(true);
                }
                sending = *phase.borrow() != Phase::Stop;
                audio.started = Instant::now();
                tick.reset_at((Instant::now() + spec.phase).into());
                continue;
            }
            Err(why) => {
                ended(&mut setup, &mut report, why);
                break;
            }
        };
        let timeout = match (report.media, stop_at) {
            (None, _) => timeout.min(deadline),
            (Some(_), Some(s)) => timeout.min(s),
            (Some(_), None) => timeout,
        };
        tokio::select! {
            r = media.sock.recv_from(&mut buf) => {
                if let Ok((n, source)) = r {
                    media.receive(source, &buf[..n]);
                }
            }
            _ = tick.tick(), if sending => {
                let n = audio.sent_at.len() as u32;
                let at = audio.started.elapsed().as_micros() as u32;
                audio.sent_at.push(at);
                audio.seen.push(false);
                report.sent += 1;
                media.send(n, payload::packet(spec.index, n));
            }
            m = from_switch.recv() => match m {
                Some(m) => match m.get("method").and_then(Value::as_str) {
                    Some("verto.answer") | Some("verto.media") => {
                        let sdp = m.pointer("/params/sdp").and_then(Value::as_str);
                        if let (Some(sdp), Some(p)) = (sdp, pending.take()) {
                            if let Err(e) = media.answer(p, sdp) {
                                ended(&mut setup, &mut report, e);
                                break;
                            }
                        }
                        if m.get("method").and_then(Value::as_str) == Some("verto.answer") {
                            report.answer.get_or_insert(invited.elapsed());
                        }
                    }
                    Some("verto.bye") => {
                        ended(&mut setup, &mut report, "the switch hung up (verto.bye)".into());
                        return report;
                    }
                    _ => {}
                },
                None => {
                    ended(&mut setup, &mut report, "connection gone".into());
                    return report;
                }
            },
            r = phase.changed(), if stop_at.is_none() => {
                if r.is_err() || *phase.borrow() == Phase::Stop {
                    sending = false;
                    stop_at = Some(Instant::now() + spec.drain);
                }
            }
            _ = tokio::time::sleep_until(timeout.into()) => {
                let now = Instant::now();
                if report.media.is_none() && now >= deadline {
                    let why = if report.answer.is_none() { "no verto.answer" } else { "no DTLS-SRTP" };
                    ended(&mut setup, &mut report, format!("{why} within {:?}", spec.setup_timeout));
                    break;
                }
                if stop_at.is_some_and(|s| now >= s) {
                    break;
                }
                media.timeout(now);
            }
        }
    }
    report.lost_inbound = media.lost_inbound;
    media.rtc.disconnect();
    let bye = json!({
        "sessid": login.sessid(),
        "dialogParams": { "callID": call_id },
    });
    if let Err(e) = login.request("verto.bye", bye).await {
        if report.failure.is_none() && report.media.is_some() {
            report.failure = Some(format!("verto.bye: {e}"));
        }
    }
    report
}

/// Records why the call failed, and that it never came up if it had not.
fn ended(setup: &mut Option<mpsc::UnboundedSender<bool>>, r: &mut Report, why: String) {
    if let Some(s) = setup.take() {
        let _ = s.send(false);
    }
    r.failure.get_or_insert(why);
}

/// What draining str0m's output ended with.
enum Drained {
    /// Nothing more to do before this time.
    Timeout(Instant),
    /// DTLS-SRTP is up: audio can flow.
    Connected,
}

/// A call's str0m instance and socket.
struct Media {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    mid: Option<Mid>,
    /// From the switch's receiver reports.
    lost_inbound: Option<u64>,
}

impl Media {
    fn new(spec: &Spec) -> Result<Media, String> {
        let std_sock = std::net::UdpSocket::bind((spec.ip, 0))
            .map_err(|e| format!("bind {}: {e}", spec.ip))?;
        std_sock
            .set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        let local = std_sock.local_addr().map_err(|e| format!("socket: {e}"))?;
        let sock = UdpSocket::from_std(std_sock).map_err(|e| format!("socket: {e}"))?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(true, false)
            .set_dtls_cert(spec.cert.clone())
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        Ok(Media {
            rtc,
            sock,
            local,
            mid: None,
            lost_inbound: None,
        })
    }

    /// The offer's SDP.
    fn offer(&mut self) -> (String, SdpPendingOffer) {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        self.mid = Some(mid);
        let (offer, pending) = change.apply().expect("one audio m-line to offer");
        (offer.to_sdp_string(), pending)
    }

    fn answer(&mut self, pending: SdpPendingOffer, sdp: &str) -> Result<(), String> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("the switch's SDP: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("the switch's SDP: {e}"))
    }

    /// Sends str0m's datagrams and hands echoed audio to `audio` until it
    /// needs nothing before a time (or has just connected).
    fn drain(&mut self, mut audio: impl FnMut(&[u8], Instant)) -> Result<Drained, String> {
        loop {
            match self.rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
                Output::Timeout(t) => return Ok(Drained::Timeout(t)),
                Output::Transmit(t) => {
                    let _ = self.sock.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => return Ok(Drained::Connected),
                Output::Event(Event::MediaData(d)) => audio(&d.data, d.network_time),
                Output::Event(Event::MediaEgressStats(s)) => {
                    if let Some(r) = s.remote {
                        self.lost_inbound = Some(r.packets_lost);
                    }
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => return Err("ICE disconnected".into()),
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(rx) = Receive::new(Protocol::Udp, source, self.local, data) else {
            return;
        };
        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), rx));
    }

    fn timeout(&mut self, now: Instant) {
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Packet `n` of the call.
    fn send(&mut self, n: u32, data: Vec<u8>) {
        let Some(w) = self.mid.and_then(|m| self.rtc.writer(m)) else {
            return;
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::PCMU)
            .map(|p| p.pt())
        else {
            return;
        };
        let at = MediaTime::new(u64::from(n) * payload::SAMPLES, Frequency::EIGHT_KHZ);
        let _ = w.write(pt, Instant::now(), at, data);
    }
}

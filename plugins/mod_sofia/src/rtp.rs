//! RTP and RTCP for one call leg (RFC 3550, RFC 4733): a socket pair from
//! the profile's port range, packets paced by the session thread that
//! reads and writes frames, sequence/timestamp/SSRC handling, symmetric
//! latching, telephone-events both ways, sender and receiver reports, the
//! media timeout, and SRTP when SDES keyed it ([`crate::srtp`]). A leg
//! whose far end is a browser (a WebRTC offer over SIP-over-WebSocket)
//! carries its audio on the shared WebRTC stack (`hotswitch-webrtc-media`,
//! str0m: ICE, DTLS-SRTP) instead, behind the same read and write.
//!
//! The session's own thread calls [`Media::read`] and [`Media::write`]; the
//! SIP thread only changes where media goes ([`Media::set_remote`]).

use crate::sdp::Codec;
use hotswitch_plugin_api::g711;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_webrtc_media as webrtc;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Free RTP ports by range (even ports; RTCP takes the one above), shared
/// by every leg of the module: taking and returning a port is O(1), so an
/// exhausted range refuses a call at once instead of scanning it.
///
/// A port is taken from a random place in the free list, not its front:
/// ports held by others come in runs — above all, after a live reload, the
/// previous copy's calls hold the run of ports it handed out, which this
/// copy's list still has as free — and taking them in order walked into
/// such a run, each call failing its [`BIND_ATTEMPTS`] binds on it ("no
/// free RTP port" with three quarters of the range free).
static POOLS: Mutex<Vec<PortPool>> = Mutex::new(Vec::new());

struct PortPool {
    range: (u16, u16),
    free: VecDeque<u16>,
    /// xorshift64 state: where in `free` the next port is taken.
    rng: u64,
}

fn take_port(start: u16, end: u16) -> Option<u16> {
    let mut pools = POOLS.lock();
    let i = match pools.iter().position(|p| p.range == (start, end)) {
        Some(i) => i,
        None => {
            let first = start + start % 2;
            let free: VecDeque<u16> = (first..end.saturating_sub(1)).step_by(2).collect();
            pools.push(PortPool {
                range: (start, end),
                free,
                rng: (uuid::Uuid::new_v4().as_u128() as u64) | 1,
            });
            pools.len() - 1
        }
    };
    let p = &mut pools[i];
    if p.free.is_empty() {
        return None;
    }
    p.rng ^= p.rng << 13;
    p.rng ^= p.rng >> 7;
    p.rng ^= p.rng << 17;
    let at = (p.rng % p.free.len() as u64) as usize;
    p.free.swap_remove_back(at)
}

fn give_port(start: u16, end: u16, port: u16) {
    let mut pools = POOLS.lock();
    if let Some(p) = pools.iter_mut().find(|p| p.range == (start, end)) {
        p.free.push_back(port);
    }
}

/// Packets and losses of every leg since load (`sofia status profile`).
pub static TOTAL_IN: AtomicU64 = AtomicU64::new(0);
pub static TOTAL_OUT: AtomicU64 = AtomicU64::new(0);
pub static TOTAL_LOST: AtomicU64 = AtomicU64::new(0);

/// The largest payload one packet carries (a datagram on an Ethernet MTU).
const MAX_PAYLOAD: usize = 1400;

/// Ports tried (other programs may hold some) before a call is refused.
const BIND_ATTEMPTS: usize = 32;

/// What one [`Media::read`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// `len` bytes of audio in the negotiated codec.
    Audio { len: usize, codec: Codec },
    /// `len` bytes of 8 kHz L16 samples (native order): a wideband codec
    /// decoded.
    Linear { len: usize },
    /// A telephone-event ended: the digit and its duration in ms.
    Dtmf(char, u32),
    /// Nothing within the wait.
    Timeout,
    /// Nothing for the media timeout: the call should end MEDIA_TIMEOUT.
    MediaTimeout,
}

/// Counters `sofia status` and RTCP report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_octets: u64,
    pub tx_packets: u64,
    pub tx_octets: u64,
    pub lost: u64,
    pub dtmf_in: u64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    /// SRTP packets dropped for a failed check.
    pub srtp_auth_failures: u64,
}

/// A leg's outgoing stream at one moment ([`Media::stream_position`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamPosition {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    /// Unix time, milliseconds.
    pub at_ms: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct State {
    remote: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    /// Latch onto the address packets actually come from.
    latch: bool,
    latched: bool,
    codec: Codec,
    pt: u8,
    te_pt: Option<u8>,
    /// The telephone-events' clock rate (48000 with Opus, RFC 4733 §2.3).
    te_rate: u32,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// The last RTP timestamp sent (for SR).
    last_ts: u32,
    remote_ssrc: u32,
    /// A NAT rebinding in progress: the new address the same stream
    /// (SSRC) came from, and how many packets in a row.
    moving: Option<(SocketAddr, u32)>,
    /// Highest sequence received (extended) and the first one.
    max_seq: Option<u32>,
    base_seq: u32,
    last_event_ts: Option<u32>,
    hold: bool,
    last_rx: Instant,
    /// When the session thread last read (a leg nobody reads is drained
    /// by [`Media::check_idle`]).
    last_read: Instant,
    last_rtcp: Instant,
    stats: Stats,
    timeout: Option<Duration>,
    hold_timeout: Option<Duration>,
    /// Digits to send as events, paced.
    dtmf: DtmfOut,
    /// When audio was last written (a writer paces the events itself).
    last_write: Option<Instant>,
    /// SDES keys and the SRTP contexts.
    sdes: crate::srtp::Sdes,
    /// Opus and G.722 coder states.
    transcoder: crate::codecs::Transcoder,
}

/// RFC 4733 events going out, one packet per 20 ms frame as RFC 4733
/// §2.5.1 has them: a first packet with the marker, updates with the
/// duration so far, the end packet sent three times, then a gap before the
/// next digit (FreeSWITCH's pacing of `uuid_send_dtmf`).
#[derive(Default)]
struct DtmfOut {
    queue: VecDeque<(char, u32)>,
    current: Option<Sending>,
    /// No new digit before this (the pause between digits).
    gap_until: Option<Instant>,
}

struct Sending {
    code: u8,
    /// The event's timestamp (its first sample), the same in every packet.
    ts: u32,
    /// Its length and what was sent so far, in samples.
    total: u32,
    elapsed: u32,
}

/// The pause between two digits of a string.
const DTMF_GAP: Duration = Duration::from_millis(50);
/// Samples one frame advances at 8 kHz (20 ms).
const DTMF_STEP: u32 = 160;

impl DtmfOut {
    fn pending(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }
}

/// One frame time of outgoing events: the packets to send now (none while
/// waiting out the gap between digits).
fn dtmf_step(st: &mut State, now: Instant) -> Vec<Vec<u8>> {
    let Some(te) = st.te_pt else {
        st.dtmf = DtmfOut::default();
        return Vec::new();
    };
    if st.dtmf.current.is_none() {
        if st.dtmf.gap_until.is_some_and(|g| now < g) {
            return Vec::new();
        }
        st.dtmf.gap_until = None;
        let Some((digit, ms)) = st.dtmf.queue.pop_front() else {
            return Vec::new();
        };
        let Some(code) = dtmf_event(digit) else {
            return Vec::new();
        };
        // Durations on the events' clock: 48 kHz with Opus (RFC 4733
        // §2.3, FreeSWITCH's telephone-event/48000).
        let step = st.te_rate / 50;
        st.dtmf.current = Some(Sending {
            code,
            ts: st.ts,
            total: (ms * (st.te_rate / 1000)).min(0xffff),
            elapsed: step,
        });
        let p = event_packet(st, te, true, false, step);
        return vec![p];
    }
    let step = st.te_rate / 50;
    let Some(cur) = st.dtmf.current.as_mut() else {
        return Vec::new();
    };
    cur.elapsed = (cur.elapsed + step).min(0xffff);
    if cur.elapsed < cur.total {
        let d = cur.elapsed;
        return vec![event_packet(st, te, false, false, d)];
    }
    let d = cur.elapsed;
    let packets = (0..3)
        .map(|_| event_packet(st, te, false, true, d))
        .collect();
    st.dtmf.current = None;
    st.dtmf.gap_until = Some(now + DTMF_GAP);
    packets
}

/// One telephone-event packet of the current event.
/// Packets made under the lock, protected when SRTP is on.
fn protect_all(st: &mut State, packets: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    packets
        .iter()
        .filter_map(|p| st.sdes.protect_rtp(p).map(|p| p.into_owned()))
        .collect()
}

fn event_packet(st: &mut State, te: u8, marker: bool, end: bool, duration: u32) -> Vec<u8> {
    let (code, ts) = st
        .dtmf
        .current
        .as_ref()
        .map(|c| (c.code, c.ts))
        .unwrap_or((0, st.ts));
    let mut p = Vec::with_capacity(16);
    p.push(0x80);
    p.push(te | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&st.seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&st.ssrc.to_be_bytes());
    p.push(code);
    p.push(if end { 0x80 | 10 } else { 10 });
    p.extend_from_slice(&(duration as u16).to_be_bytes());
    st.seq = st.seq.wrapping_add(1);
    st.stats.tx_packets += 1;
    p
}

/// One leg's RTP/RTCP sockets and state.
pub struct Media {
    sock: UdpSocket,
    rtcp: UdpSocket,
    /// The address written in SDP.
    pub ip: IpAddr,
    pub port: u16,
    range: (u16, u16),
    st: Mutex<State>,
    /// WebRTC media and our SDP for it, when the far end is a browser.
    webrtc: std::sync::OnceLock<(std::sync::Arc<webrtc::Media>, String)>,
}

impl Drop for Media {
    fn drop(&mut self) {
        give_port(self.range.0, self.range.1, self.port);
    }
}

/// A DTMF digit's RFC 4733 event code.
pub fn dtmf_event(c: char) -> Option<u8> {
    Some(match c.to_ascii_uppercase() {
        '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => 12 + (c.to_ascii_uppercase() as u8 - b'A'),
        _ => return None,
    })
}

fn event_digit(e: u8) -> Option<char> {
    Some(match e {
        0..=9 => (b'0' + e) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + e - 12) as char,
        _ => return None,
    })
}

/// Of `prefs`, the codecs the WebRTC stack carries, in order; G.711
/// always among them (every browser has it).
fn webrtc_codecs(prefs: &[Codec]) -> Vec<webrtc::Codec> {
    let mut out: Vec<webrtc::Codec> = prefs
        .iter()
        .filter_map(|c| match c {
            Codec::Opus => Some(webrtc::Codec::Opus),
            Codec::Pcmu => Some(webrtc::Codec::Pcmu),
            Codec::Pcma => Some(webrtc::Codec::Pcma),
            Codec::G722 => None,
        })
        .collect();
    for law in webrtc::G711 {
        if !out.contains(&law) {
            out.push(law);
        }
    }
    out
}

/// Packets in a row of the same stream from a new address before media
/// follows it there (a NAT rebinding; 200 ms of audio).
const RELATCH_PACKETS: u32 = 10;

/// How long one blocking receive waits (a frame's time).
const READ_TIMEOUT: Duration = Duration::from_millis(20);

/// A receive that does not wait, on a socket that otherwise blocks.
fn recv_dontwait(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    // SAFETY: zeroed sockaddr_storage is a valid value of the type.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` and `addr` are valid for the lengths given during the call.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
            &mut addr as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut len,
        )
    };
    if n < 0 {
        return None;
    }
    let from = match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            SocketAddr::new(
                IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()),
                u16::from_be(a.sin_port),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            SocketAddr::new(IpAddr::from(a.sin6_addr.s6_addr), u16::from_be(a.sin6_port))
        }
        _ => return None,
    };
    Some((n as usize, from))
}

impl Media {
    /// Binds an even RTP port and the RTCP port above it in
    /// `[start, end)` on `ip`.
    pub fn bind(ip: IpAddr, sdp_ip: IpAddr, start: u16, end: u16) -> std::io::Result<Media> {
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            let Some(port) = take_port(start, end) else {
                break;
            };
            let pair =
                UdpSocket::bind((ip, port)).and_then(|s| Ok((s, UdpSocket::bind((ip, port + 1))?)));
            let (sock, rtcp) = match pair {
                Ok(p) => p,
                Err(e) => {
                    // Held by someone else: try it again later.
                    give_port(start, end, port);
                    last_error = Some((port, e));
                    continue;
                }
            };
            sock.set_read_timeout(Some(READ_TIMEOUT))?;
            rtcp.set_nonblocking(true)?;
            let now = Instant::now();
            let seed = uuid::Uuid::new_v4().as_u128();
            return Ok(Media {
                sock,
                rtcp,
                ip: sdp_ip,
                port,
                range: (start, end),
                st: Mutex::new(State {
                    remote: None,
                    remote_rtcp: None,
                    latch: true,
                    latched: false,
                    codec: Codec::Pcmu,
                    pt: 0,
                    te_pt: None,
                    te_rate: 8000,
                    ssrc: seed as u32,
                    seq: (seed >> 32) as u16,
                    ts: (seed >> 48) as u32,
                    last_ts: 0,
                    remote_ssrc: 0,
                    moving: None,
                    max_seq: None,
                    base_seq: 0,
                    last_event_ts: None,
                    hold: false,
                    last_rx: now,
                    last_read: now,
                    last_rtcp: now,
                    stats: Stats::default(),
                    timeout: None,
                    hold_timeout: None,
                    dtmf: DtmfOut::default(),
                    last_write: None,
                    sdes: crate::srtp::Sdes::default(),
                    transcoder: crate::codecs::Transcoder::default(),
                }),
                webrtc: std::sync::OnceLock::new(),
            });
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            match last_error {
                Some((port, e)) => format!(
                    "no free RTP port in {start}-{end} ({BIND_ATTEMPTS} tried; {ip}:{port}: {e})"
                ),
                None => format!("no free RTP port in {start}-{end}"),
            },
        ))
    }

    /// Where media goes, in which codec (from the negotiation).
    /// `te`: the telephone-event payload type and its clock rate.
    pub fn set_remote(
        &self,
        addr: Option<SocketAddr>,
        codec: Codec,
        pt: u8,
        te: Option<(u8, u32)>,
    ) {
        let mut st = self.st.lock();
        if st.remote != addr {
            st.latched = false;
        }
        st.remote = addr;
        st.remote_rtcp = addr.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
        st.codec = codec;
        st.pt = pt;
        st.te_pt = te.map(|t| t.0);
        st.te_rate = te.map_or(8000, |t| t.1.max(1000));
        st.last_rx = Instant::now();
    }

    /// On hold the far end sends nothing; the hold timeout applies instead.
    pub fn set_hold(&self, hold: bool) {
        let mut st = self.st.lock();
        st.hold = hold;
        st.last_rx = Instant::now();
    }

    /// `rtp-timeout-sec` and `rtp-hold-timeout-sec`.
    pub fn set_timeouts(&self, timeout: Option<Duration>, hold: Option<Duration>) {
        let mut st = self.st.lock();
        st.timeout = timeout;
        st.hold_timeout = hold;
    }

    /// Where this leg's outgoing stream stands now: its SSRC, the next
    /// sequence number and timestamp, and the Unix time in milliseconds
    /// (what `track-calls` keeps so another node can go on with it).
    pub fn stream_position(&self) -> StreamPosition {
        let st = self.st.lock();
        StreamPosition {
            ssrc: st.ssrc,
            seq: st.seq,
            ts: st.ts,
            at_ms: unix_ms(),
        }
    }

    /// Goes on with a stream another node sent (`sofia recover`): the same
    /// SSRC, the sequence number and timestamp carried forward by the time
    /// since `pos` was taken, plus a second, so that the far end sees one
    /// stream moving on, not an older one (FreeSWITCH keeps the SSRC,
    /// `rtp_use_ssrc`; a receiver that tracks timestamps across an SSRC
    /// change, as baresip does, drops frames that seem to go back).
    pub fn continue_stream(&self, pos: StreamPosition) {
        let mut st = self.st.lock();
        // Where the old sender would be by now, wrapping as it would have.
        let elapsed = unix_ms().saturating_sub(pos.at_ms) + 1000;
        let clock = u64::from(st.codec.clock_rate());
        st.ssrc = pos.ssrc;
        st.ts = pos.ts.wrapping_add((elapsed * clock / 1000) as u32);
        st.seq = pos.seq.wrapping_add((elapsed / 20) as u16);
    }

    /// The negotiated codec.
    pub fn codec(&self) -> Codec {
        self.st.lock().codec
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let st = self.st.lock();
        Stats {
            srtp_auth_failures: st.sdes.auth_failures(),
            ..st.stats
        }
    }

    /// Answers a browser's WebRTC offer on the shared WebRTC stack (must
    /// run on the module's runtime) with the codec [`Media::set_remote`]
    /// chose (Opus or a G.711 law) first; our SDP is then
    /// [`Media::webrtc_sdp`].
    pub fn webrtc_answer(&self, offer: &str, ip: IpAddr) -> Result<(), String> {
        let first = self.st.lock().codec;
        let m = webrtc::answer_with(offer, ip, &webrtc_codecs(&[first]))?;
        let _ = self.webrtc.set(m);
        Ok(())
    }

    /// Offers WebRTC media to a browser (must run on the module's runtime):
    /// of `prefs`, the codecs the WebRTC stack carries, in their order.
    pub fn webrtc_offer(&self, ip: IpAddr, prefs: &[Codec]) -> Result<(), String> {
        let m = webrtc::offer_with(ip, &webrtc_codecs(prefs))?;
        let _ = self.webrtc.set(m);
        Ok(())
    }

    /// The browser's answer to our WebRTC offer.
    pub fn webrtc_remote_answer(&self, sdp: &str) {
        if let Some((m, _)) = self.webrtc.get() {
            m.remote_answer(sdp);
        }
    }

    /// Our SDP when the leg's media is WebRTC.
    pub fn webrtc_sdp(&self) -> Option<String> {
        self.webrtc.get().map(|(_, sdp)| sdp.clone())
    }

    fn webrtc_read(&self, m: &webrtc::Media, buf: &mut [u8], wait: Duration) -> Read {
        match m.read(wait) {
            webrtc::Read::Audio(webrtc::Codec::Opus, data) => {
                // Decoded here, as on a plain RTP leg: 8 kHz L16 for the core.
                let mut pcm = Vec::with_capacity(320);
                self.st
                    .lock()
                    .transcoder
                    .decode(Codec::Opus, &data, &mut pcm);
                let n = (pcm.len() * 2).min(buf.len()) / 2;
                for (o, s) in buf.chunks_exact_mut(2).zip(&pcm[..n]) {
                    o.copy_from_slice(&s.to_ne_bytes());
                }
                Read::Linear { len: n * 2 }
            }
            webrtc::Read::Audio(c, data) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                let codec = match c {
                    webrtc::Codec::Pcmu => Codec::Pcmu,
                    _ => Codec::Pcma,
                };
                Read::Audio { len: n, codec }
            }
            // Closed: ICE is gone; the BYE ends the call.
            webrtc::Read::Timeout | webrtc::Read::Closed => Read::Timeout,
        }
    }

    /// Works on the leg's SDES state (offer, answer, our lines).
    pub fn sdes<R>(&self, f: impl FnOnce(&mut crate::srtp::Sdes) -> R) -> R {
        f(&mut self.st.lock().sdes)
    }

    /// One datagram off the RTP socket, through SRTP when it is on.
    fn receive(&self, p: &[u8], from: SocketAddr, buf: &mut [u8]) -> Option<Read> {
        let clear = self.st.lock().sdes.unprotect_rtp(p, self.port, from);
        match clear {
            crate::srtp::Unprotected::Plain => self.packet(p, from, buf),
            crate::srtp::Unprotected::Clear(v) => self.packet(&v, from, buf),
            crate::srtp::Unprotected::Dropped => None,
        }
    }

    /// The address media is sent to.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.st.lock().remote
    }

    /// Waits up to `wait` for audio; `buf` receives the payload. A blocking
    /// receive with the socket's own timeout: one system call per packet
    /// and no timer armed per wait.
    pub fn read(&self, buf: &mut [u8], wait: Duration) -> Read {
        if let Some((m, _)) = self.webrtc.get() {
            return self.webrtc_read(m, buf, wait);
        }
        let deadline = Instant::now() + wait;
        self.st.lock().last_read = deadline;
        let mut pkt = [0u8; 1500];
        loop {
            let got = if wait.is_zero() {
                recv_dontwait(&self.sock, &mut pkt)
            } else {
                self.sock.recv_from(&mut pkt).ok()
            };
            if let Some((n, from)) = got {
                if let Some(r) = self.receive(&pkt[..n], from, buf) {
                    return r;
                }
                continue;
            }
            self.poll_rtcp();
            let now = Instant::now();
            if let Some(r) = self.check_timeout(now) {
                return r;
            }
            if now >= deadline {
                return Read::Timeout;
            }
        }
    }

    /// For a leg no session thread reads (parked, say): takes what arrived
    /// so that liveness is known, and reports the media timeout. Legs being
    /// read are left alone.
    /// Returns whether the media timed out, and the digits that arrived.
    pub fn check_idle(&self, now: Instant) -> (bool, Vec<(char, u32)>) {
        let mut digits = Vec::new();
        if now.duration_since(self.st.lock().last_read) < Duration::from_millis(500) {
            return (false, digits);
        }
        let mut pkt = [0u8; 1500];
        let mut sink = [0u8; 1500];
        while let Some((n, from)) = recv_dontwait(&self.sock, &mut pkt) {
            if let Some(Read::Dtmf(d, ms)) = self.receive(&pkt[..n], from, &mut sink) {
                digits.push((d, ms));
            }
        }
        (self.check_timeout(now).is_some(), digits)
    }

    fn check_timeout(&self, now: Instant) -> Option<Read> {
        let st = self.st.lock();
        let limit = if st.hold { st.hold_timeout } else { st.timeout }?;
        (now.duration_since(st.last_rx) > limit).then_some(Read::MediaTimeout)
    }

    /// One received datagram: `Some` when it ends the read.
    fn packet(&self, p: &[u8], from: SocketAddr, buf: &mut [u8]) -> Option<Read> {
        if p.len() < 12 || p[0] >> 6 != 2 {
            return None;
        }
        let cc = (p[0] & 0x0f) as usize;
        let has_ext = p[0] & 0x10 != 0;
        let padding = p[0] & 0x20 != 0;
        let pt = p[1] & 0x7f;
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        let mut off = 12 + cc * 4;
        if has_ext {
            if p.len() < off + 4 {
                return None;
            }
            let words = u16::from_be_bytes([p[off + 2], p[off + 3]]) as usize;
            off += 4 + words * 4;
        }
        let mut end = p.len();
        if padding {
            end = end.saturating_sub(*p.last()? as usize);
        }
        if off > end {
            return None;
        }
        let payload = &p[off..end];
        let mut st = self.st.lock();
        if st.remote != Some(from) {
            if st.latch && !st.latched {
                // Symmetric RTP: answer where the far end really sends from
                // (NAT), once.
                log::debug!("RTP on port {} latched to {from}", self.port);
                st.remote = Some(from);
                st.remote_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
                st.latched = true;
            } else if st.latched {
                // A NAT that rebinds mid-call: the same stream, steadily
                // from a new address (FreeSWITCH's RTP auto-adjust). Other
                // sources stay ignored; under SRTP the packet passed its
                // check before it got here.
                if st.stats.rx_packets == 0 || ssrc != st.remote_ssrc {
                    return None;
                }
                let n = match st.moving {
                    Some((a, n)) if a == from => n + 1,
                    _ => 1,
                };
                if n < RELATCH_PACKETS {
                    st.moving = Some((from, n));
                    return None;
                }
                log::warn!(
                    "RTP on port {}: the stream moved from {} to {from} (the NAT rebound?); media follows it",
                    self.port,
                    st.remote.map_or("nowhere".to_string(), |a| a.to_string())
                );
                st.remote = Some(from);
                st.remote_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
                st.moving = None;
            }
        } else {
            st.moving = None;
        }
        st.latched = true;
        st.last_rx = Instant::now();
        st.remote_ssrc = ssrc;
        st.stats.rx_packets += 1;
        st.stats.rx_octets += payload.len() as u64;
        TOTAL_IN.fetch_add(1, Ordering::Relaxed);
        let ext = seq as u32;
        match st.max_seq {
            None => {
                st.base_seq = ext;
                st.max_seq = Some(ext);
            }
            Some(m) => {
                let delta = seq.wrapping_sub(m as u16);
                if delta > 0 && delta < 3000 {
                    st.stats.lost += (delta - 1) as u64;
                    TOTAL_LOST.fetch_add((delta - 1) as u64, Ordering::Relaxed);
                    st.max_seq = Some(m + delta as u32);
                }
            }
        }
        if Some(pt) == st.te_pt && payload.len() >= 4 {
            let end_bit = payload[1] & 0x80 != 0;
            let duration = u16::from_be_bytes([payload[2], payload[3]]) as u32;
            if end_bit && st.last_event_ts != Some(ts) {
                st.last_event_ts = Some(ts);
                st.stats.dtmf_in += 1;
                // In ms, from the audio's clock (48 kHz on Opus).
                let per_ms = st.te_rate / 1000;
                return event_digit(payload[0]).map(|d| Read::Dtmf(d, duration / per_ms));
            }
            return None;
        }
        let codec = match pt {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            9 => Codec::G722,
            _ if pt == st.pt => st.codec,
            _ => return None,
        };
        if codec.is_wideband() {
            let mut pcm = std::mem::take(&mut st.transcoder.scratch);
            pcm.clear();
            st.transcoder.decode(codec, payload, &mut pcm);
            let n = (pcm.len() * 2).min(buf.len()) / 2;
            for (o, s) in buf.chunks_exact_mut(2).zip(&pcm[..n]) {
                o.copy_from_slice(&s.to_ne_bytes());
            }
            st.transcoder.scratch = pcm;
            return Some(Read::Linear { len: n * 2 });
        }
        let n = payload.len().min(buf.len());
        buf[..n].copy_from_slice(&payload[..n]);
        Some(Read::Audio { len: n, codec })
    }

    fn poll_rtcp(&self) {
        let mut b = [0u8; 1500];
        while let Ok((n, _)) = self.rtcp.recv_from(&mut b) {
            if n >= 8 && b[0] >> 6 == 2 && (200..=204).contains(&b[1]) {
                let mut st = self.st.lock();
                if st.sdes.unprotect_rtcp(&b[..n]) {
                    st.stats.rtcp_in += 1;
                }
            }
        }
    }

    /// Sends one frame of audio: `data` in `codec` (`None`: L16 samples).
    pub fn write(&self, data: &[u8], codec: Option<Codec>, samples: u32) {
        if let Some((m, _)) = self.webrtc.get() {
            let mut st = self.st.lock();
            if st.codec == Codec::Opus {
                // Coded here (the WebRTC task knows only G.711): 8 kHz
                // samples in, on its 48 kHz clock.
                let mut pcm = [0i16; MAX_PAYLOAD / 2];
                let n = match codec {
                    None => {
                        let n = (data.len() / 2).min(pcm.len());
                        for (o, c) in pcm.iter_mut().zip(data.chunks_exact(2)) {
                            *o = i16::from_ne_bytes([c[0], c[1]]);
                        }
                        n
                    }
                    Some(Codec::Pcmu | Codec::Pcma) => {
                        let f = match codec {
                            Some(Codec::Pcma) => g711::alaw_to_linear,
                            _ => g711::ulaw_to_linear,
                        };
                        let n = data.len().min(pcm.len());
                        for (o, b) in pcm.iter_mut().zip(data) {
                            *o = f(*b);
                        }
                        n
                    }
                    Some(Codec::G722 | Codec::Opus) => return,
                };
                let mut out = [0u8; MAX_PAYLOAD];
                let len = st.transcoder.encode(Codec::Opus, &pcm[..n], &mut out);
                drop(st);
                if len > 0 {
                    m.write_encoded(webrtc::Codec::Opus, out[..len].to_vec(), n as u32);
                }
                return;
            }
            drop(st);
            let codec = match codec {
                None => None,
                Some(Codec::Pcmu) => Some(webrtc::Codec::Pcmu),
                Some(Codec::Pcma) => Some(webrtc::Codec::Pcma),
                // The core hands this leg no wideband frames.
                Some(Codec::G722 | Codec::Opus) => return,
            };
            return m.write(webrtc::Outbound {
                codec,
                data: data.to_vec(),
            });
        }
        let mut st = self.st.lock();
        let Some(to) = st.remote else {
            return;
        };
        if st.hold {
            return;
        }
        let samples = if samples == 0 {
            match codec {
                None => (data.len() / 2) as u32,
                Some(_) => data.len() as u32,
            }
        } else {
            samples
        };
        st.last_write = Some(Instant::now());
        if st.dtmf.pending() {
            // An event replaces the audio of its frames; the audio clock
            // goes on, so audio resumes where real time is.
            let packets = dtmf_step(&mut st, Instant::now());
            let packets = protect_all(&mut st, packets);
            st.ts = st
                .ts
                .wrapping_add(crate::codecs::rtp_clock(st.codec, samples));
            drop(st);
            for p in packets {
                let _ = self.sock.send_to(&p, to);
            }
            return;
        }
        // On the stack: this runs for every packet of every call.
        let mut buf = [0u8; 12 + MAX_PAYLOAD];
        let (pt, ssrc, seq, ts) = (st.pt, st.ssrc, st.seq, st.ts);
        buf[0] = 0x80;
        buf[1] = pt;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&ts.to_be_bytes());
        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
        let out = &mut buf[12..];
        let len = match (codec, st.codec) {
            (Some(c), want) if c == want => {
                let n = data.len().min(MAX_PAYLOAD);
                out[..n].copy_from_slice(&data[..n]);
                n
            }
            // Opus and G.722 go through 8 kHz linear audio and the leg's
            // coder states.
            (from, want) if want.is_wideband() || from.is_some_and(Codec::is_wideband) => {
                let mut pcm = std::mem::take(&mut st.transcoder.scratch);
                pcm.clear();
                match from {
                    None => pcm.extend(
                        data.chunks_exact(2)
                            .map(|c| i16::from_le_bytes([c[0], c[1]])),
                    ),
                    Some(f) => st.transcoder.decode(f, data, &mut pcm),
                }
                let n = st.transcoder.encode(want, &pcm, out);
                st.transcoder.scratch = pcm;
                n
            }
            (None, want) => {
                let mut n = 0;
                for (o, ch) in out.iter_mut().zip(data.chunks_exact(2)) {
                    let s = i16::from_le_bytes([ch[0], ch[1]]);
                    *o = if want == Codec::Pcmu {
                        g711::linear_to_ulaw(s)
                    } else {
                        g711::linear_to_alaw(s)
                    };
                    n += 1;
                }
                n
            }
            (Some(from), want) => {
                let mut n = 0;
                for (o, b) in out.iter_mut().zip(data) {
                    let s = if from == Codec::Pcmu {
                        g711::ulaw_to_linear(*b)
                    } else {
                        g711::alaw_to_linear(*b)
                    };
                    *o = if want == Codec::Pcmu {
                        g711::linear_to_ulaw(s)
                    } else {
                        g711::linear_to_alaw(s)
                    };
                    n += 1;
                }
                n
            }
        };
        let pkt = &buf[..12 + len];
        st.seq = seq.wrapping_add(1);
        st.last_ts = ts;
        st.ts = ts.wrapping_add(crate::codecs::rtp_clock(st.codec, samples));
        st.stats.tx_packets += 1;
        st.stats.tx_octets += (pkt.len() - 12) as u64;
        TOTAL_OUT.fetch_add(1, Ordering::Relaxed);
        let report = st.last_rtcp.elapsed() >= Duration::from_secs(5);
        let Some(pkt) = st.sdes.protect_rtp(pkt) else {
            return;
        };
        drop(st);
        let _ = self.sock.send_to(&pkt, to);
        if report {
            self.send_report();
        }
    }

    /// Whether the far end takes and sends telephone-events (its SDP
    /// offered or accepted them).
    pub fn has_telephone_event(&self) -> bool {
        self.st.lock().te_pt.is_some()
    }

    /// Queues a digit; it goes out as RFC 4733 events in the frames that
    /// follow — in place of the audio while a writer sends audio, else by
    /// [`Media::tick_dtmf`]. Returns false when the far end takes no events.
    pub fn queue_dtmf(&self, digit: char, duration_ms: u32) -> bool {
        let mut st = self.st.lock();
        if st.te_pt.is_none() || st.remote.is_none() || dtmf_event(digit).is_none() {
            return false;
        }
        st.dtmf
            .queue
            .push_back((digit, duration_ms.clamp(40, 2000)));
        true
    }

    /// Sends the next event packet when nobody writes audio (a parked leg,
    /// `uuid_send_dtmf` on a call that only listens); call every 20 ms.
    /// Returns whether digits remain.
    pub fn tick_dtmf(&self, now: Instant) -> bool {
        let mut st = self.st.lock();
        let writing = st
            .last_write
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(60));
        if !st.dtmf.pending() {
            return false;
        }
        if writing {
            return true;
        }
        let Some(to) = st.remote else {
            st.dtmf = DtmfOut::default();
            return false;
        };
        let packets = dtmf_step(&mut st, now);
        let packets = protect_all(&mut st, packets);
        st.ts = st
            .ts
            .wrapping_add(crate::codecs::rtp_clock(st.codec, DTMF_STEP));
        let pending = st.dtmf.pending();
        drop(st);
        for p in packets {
            let _ = self.sock.send_to(&p, to);
        }
        pending
    }

    /// A sender report with one reception report block (RFC 3550 §6.4.1).
    fn send_report(&self) {
        let mut st = self.st.lock();
        let Some(to) = st.remote_rtcp else {
            return;
        };
        st.last_rtcp = Instant::now();
        st.stats.rtcp_out += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ntp_sec = (now.as_secs() + 2_208_988_800) as u32;
        let ntp_frac = ((now.subsec_nanos() as u64) << 32) / 1_000_000_000;
        let has_rx = st.max_seq.is_some();
        let mut p = Vec::with_capacity(52);
        p.push(0x80 | u8::from(has_rx));
        p.push(200);
        let words: u16 = if has_rx { 12 } else { 6 };
        p.extend_from_slice(&words.to_be_bytes());
        p.extend_from_slice(&st.ssrc.to_be_bytes());
        p.extend_from_slice(&ntp_sec.to_be_bytes());
        p.extend_from_slice(&(ntp_frac as u32).to_be_bytes());
        p.extend_from_slice(&st.last_ts.to_be_bytes());
        p.extend_from_slice(&(st.stats.tx_packets as u32).to_be_bytes());
        p.extend_from_slice(&(st.stats.tx_octets as u32).to_be_bytes());
        if let Some(max) = st.max_seq {
            let expected = (max - st.base_seq + 1) as u64;
            let lost = st.stats.lost.min(0x7f_ffff) as u32;
            let fraction = (st.stats.lost * 256)
                .checked_div(expected)
                .map_or(0, |f| f.min(255) as u32);
            p.extend_from_slice(&st.remote_ssrc.to_be_bytes());
            p.extend_from_slice(&((fraction << 24) | lost).to_be_bytes());
            p.extend_from_slice(&max.to_be_bytes());
            p.extend_from_slice(&[0u8; 12]);
        }
        let Some(p) = st.sdes.protect_rtcp(&p).map(|p| p.into_owned()) else {
            return;
        };
        drop(st);
        let _ = self.rtcp.send_to(&p, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Media, UdpSocket) {
        let m = Media::bind(
            "127.0.0.1".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            41000,
            41200,
        )
        .unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        m.set_remote(
            Some(peer.local_addr().unwrap()),
            Codec::Pcmu,
            0,
            Some((101, 8000)),
        );
        (m, peer)
    }

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn audio_sent_by_the_peer_is_read_and_audio_written_reaches_it() {
        let (m, peer) = pair();
        let to = format!("127.0.0.1:{}", m.port);
        peer.send_to(&rtp(0, 1, 160, &[0x55; 160]), &to).unwrap();
        let mut buf = [0u8; 320];
        assert_eq!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Audio {
                len: 160,
                codec: Codec::Pcmu
            }
        );
        assert_eq!(buf[..160], [0x55; 160]);
        // L16 silence goes out as μ-law silence with a fresh header.
        m.write(&[0u8; 320], None, 160);
        let mut got = [0u8; 400];
        let (n, _) = peer.recv_from(&mut got).unwrap();
        assert_eq!(n, 172);
        assert_eq!(got[1], 0);
        assert!(got[12..172].iter().all(|b| *b == 0xff));
    }

    #[test]
    fn a_run_of_ports_held_by_others_does_not_refuse_calls() {
        // 200 pairs; the first 120 held elsewhere (as a previous copy's
        // calls hold the run it handed out): every bind still finds one.
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (start, end) = (47000, 47400);
        let held: Vec<UdpSocket> = (start..start + 240)
            .filter_map(|p| UdpSocket::bind((ip, p)).ok())
            .collect();
        assert!(held.len() > 200, "the test's ports are in use");
        let legs: Vec<Media> = (0..20)
            .map(|i| {
                Media::bind(ip, ip, start, end).unwrap_or_else(|e| panic!("call {i} refused: {e}"))
            })
            .collect();
        assert!(legs.iter().all(|m| m.port >= start + 240));
    }

    #[test]
    fn a_stream_taken_over_goes_on_with_its_ssrc_and_moves_forward() {
        let (old, _) = pair();
        old.write(&[0u8; 320], None, 160);
        let mut pos = old.stream_position();
        // Taken 5 s ago, just below the wrap of both counters.
        pos.seq = 65_500;
        pos.ts = u32::MAX - 1000;
        pos.at_ms -= 5000;
        let (new, peer) = pair();
        new.continue_stream(pos);
        new.write(&[0u8; 320], None, 160);
        let mut got = [0u8; 400];
        let (n, _) = peer.recv_from(&mut got).unwrap();
        assert_eq!(n, 172);
        let seq = u16::from_be_bytes([got[2], got[3]]);
        let ts = u32::from_be_bytes([got[4], got[5], got[6], got[7]]);
        let ssrc = u32::from_be_bytes([got[8], got[9], got[10], got[11]]);
        assert_eq!(ssrc, pos.ssrc);
        // 5 s on and a second more: wrapped, and forward in RTP's sense.
        let dseq = seq.wrapping_sub(pos.seq);
        let dts = ts.wrapping_sub(pos.ts);
        assert!((300..=310).contains(&dseq), "seq moved {dseq}");
        assert!((48_000..=48_800).contains(&dts), "timestamp moved {dts}");
    }

    #[test]
    fn a_telephone_event_is_one_digit_however_often_its_end_is_repeated() {
        let (m, peer) = pair();
        let to = format!("127.0.0.1:{}", m.port);
        let ev = |end: bool| rtp(101, 5, 800, &[5, if end { 0x8a } else { 0x0a }, 0x03, 0x20]);
        for e in [false, true, true, true] {
            peer.send_to(&ev(e), &to).unwrap();
        }
        let mut buf = [0u8; 320];
        assert_eq!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Dtmf('5', 100)
        );
        assert_eq!(m.read(&mut buf, Duration::from_millis(50)), Read::Timeout);
    }

    #[test]
    fn queued_digits_go_out_paced_one_packet_a_frame_with_one_timestamp() {
        let (m, peer) = pair();
        assert!(m.queue_dtmf('#', 100));
        assert!(m.queue_dtmf('1', 40));
        let t0 = Instant::now();
        let mut sent = Vec::new();
        // Nobody writes audio: tick_dtmf paces, one call per 20 ms frame.
        for i in 0..20u32 {
            if !m.tick_dtmf(t0 + Duration::from_millis(20 * i as u64)) {
                break;
            }
        }
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = [0u8; 100];
        while let Ok((n, _)) = peer.recv_from(&mut got) {
            assert_eq!(n, 16);
            sent.push((
                got[1] & 0x80 != 0,
                got[12],
                got[13] & 0x80 != 0,
                u16::from_be_bytes([got[14], got[15]]),
                u32::from_be_bytes([got[4], got[5], got[6], got[7]]),
            ));
        }
        let hash: Vec<_> = sent.iter().filter(|p| p.1 == 11).collect();
        let one: Vec<_> = sent.iter().filter(|p| p.1 == 1).collect();
        // '#' for 100 ms: a start (marker), updates every 20 ms, three ends.
        assert!(hash[0].0, "the first packet has the marker");
        assert_eq!(
            hash.iter().map(|p| p.3).collect::<Vec<_>>(),
            vec![160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(hash.iter().filter(|p| p.2).count(), 3);
        assert!(hash.iter().all(|p| p.4 == hash[0].4), "one timestamp");
        // '1' comes after the gap, with a later timestamp.
        assert!(one[0].0 && one[0].4 > hash[0].4);
        assert_eq!(one.iter().filter(|p| p.2).count(), 3);
    }

    #[test]
    fn on_an_opus_leg_events_count_on_the_48_khz_clock_both_ways() {
        let (m, peer) = pair();
        m.set_remote(
            Some(peer.local_addr().unwrap()),
            Codec::Opus,
            102,
            Some((100, 48000)),
        );
        let to = format!("127.0.0.1:{}", m.port);
        // 100 ms at 48 kHz: 4800 (0x12c0) units.
        peer.send_to(&rtp(100, 5, 4800, &[7, 0x8a, 0x12, 0xc0]), &to)
            .unwrap();
        let mut buf = [0u8; 320];
        assert_eq!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Dtmf('7', 100)
        );
        assert!(m.queue_dtmf('9', 100));
        let t0 = Instant::now();
        for i in 0..10u32 {
            if !m.tick_dtmf(t0 + Duration::from_millis(20 * i as u64)) {
                break;
            }
        }
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = [0u8; 100];
        let mut durations = Vec::new();
        while let Ok((n, _)) = peer.recv_from(&mut got) {
            assert_eq!((n, got[1] & 0x7f, got[12]), (16, 100, 9));
            durations.push(u16::from_be_bytes([got[14], got[15]]));
        }
        assert_eq!(durations, vec![960, 1920, 2880, 3840, 4800, 4800, 4800]);
    }

    #[test]
    fn silence_beyond_the_media_timeout_is_reported() {
        let (m, _peer) = pair();
        m.set_timeouts(Some(Duration::from_millis(30)), None);
        let mut buf = [0u8; 320];
        let mut r = Read::Timeout;
        for _ in 0..10 {
            r = m.read(&mut buf, Duration::from_millis(20));
            if r != Read::Timeout {
                break;
            }
        }
        assert_eq!(r, Read::MediaTimeout);
    }

    #[test]
    fn a_leg_nobody_reads_still_times_out_and_keeps_its_digits() {
        let (m, peer) = pair();
        m.set_timeouts(Some(Duration::from_millis(300)), None);
        let to = format!("127.0.0.1:{}", m.port);
        // Nobody has read for longer than the watchdog waits.
        std::thread::sleep(Duration::from_millis(550));
        peer.send_to(&rtp(101, 9, 80, &[3, 0x8a, 0, 160]), &to)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (dead, digits) = m.check_idle(Instant::now());
        assert!(!dead, "a packet just came");
        assert_eq!(digits, vec![('3', 20)]);
        std::thread::sleep(Duration::from_millis(400));
        let (dead, _) = m.check_idle(Instant::now());
        assert!(dead);
    }

    #[test]
    fn ports_come_back_to_the_pool_when_a_leg_ends() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = Media::bind(ip, ip, 42000, 42004).unwrap();
        let b = Media::bind(ip, ip, 42000, 42004).unwrap();
        assert!(Media::bind(ip, ip, 42000, 42004).is_err(), "two pairs only");
        let port = a.port;
        drop(a);
        let c = Media::bind(ip, ip, 42000, 42004).unwrap();
        assert_eq!(c.port, port);
        drop(b);
    }

    #[test]
    fn the_first_packets_source_is_latched() {
        let (m, _peer) = pair();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .send_to(&rtp(0, 1, 0, &[1; 160]), format!("127.0.0.1:{}", m.port))
            .unwrap();
        let mut buf = [0u8; 320];
        assert!(matches!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Audio { .. }
        ));
        assert_eq!(m.remote(), Some(other.local_addr().unwrap()));
    }

    #[test]
    fn a_stream_that_moves_to_a_new_address_is_followed_and_strangers_are_not() {
        let (m, peer) = pair();
        let to = format!("127.0.0.1:{}", m.port);
        let mut buf = [0u8; 320];
        peer.send_to(&rtp(0, 1, 160, &[1; 160]), &to).unwrap();
        assert!(matches!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Audio { .. }
        ));
        // Another stream (another SSRC) from elsewhere: ignored however long.
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..20u16 {
            let mut p = rtp(0, 100 + i, 0, &[2; 160]);
            p[8..12].copy_from_slice(&99u32.to_be_bytes());
            stranger.send_to(&p, &to).unwrap();
        }
        assert_eq!(m.read(&mut buf, Duration::from_millis(200)), Read::Timeout);
        assert_eq!(m.remote(), Some(peer.local_addr().unwrap()));
        // The same stream from a new port (the NAT rebound): followed after
        // RELATCH_PACKETS in a row.
        let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..RELATCH_PACKETS as u16 {
            moved.send_to(&rtp(0, 2 + i, 320, &[3; 160]), &to).unwrap();
        }
        assert!(matches!(
            m.read(&mut buf, Duration::from_millis(500)),
            Read::Audio { .. }
        ));
        assert_eq!(m.remote(), Some(moved.local_addr().unwrap()));
    }
}

//! A NAT that rebinds mid-call: the far end's RTP stream (same SSRC)
//! suddenly comes from a new port, as it does when a NAT drops its
//! mapping and makes another. The switch says so in one log line and
//! sends the call's media to the new address; a stranger's stream is not
//! followed, and another call going on meanwhile is untouched. The callers
//! are written here (SIP over UDP to 9196, echo), so the move is exact.

mod sofia_common;

use mod_sofia::sip::message::Message;
use sofia_common::{rtp, start, tone_frame};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// One caller: its SIP socket, the dialog's To, the switch's RTP address.
struct Caller {
    sip: UdpSocket,
    call_id: String,
    to: String,
    switch_media: SocketAddr,
    port: u16,
}

fn final_response(sip: &UdpSocket, call_id: &str, method: &str) -> Message {
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no final response to {method}");
        let Ok((n, _)) = sip.recv_from(&mut buf) else {
            continue;
        };
        let m = Message::parse(&buf[..n]).expect("a SIP message");
        let ours = m.call_id() == call_id && m.cseq().is_some_and(|(_, me)| me == method);
        if ours && m.code().is_some_and(|c| c >= 200) {
            return m;
        }
    }
}

impl Caller {
    /// Calls 9196 with media offered at `media`'s port.
    fn call(port: u16, call_id: &str, media: &UdpSocket) -> Caller {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let me = sip.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
            media.local_addr().unwrap().port()
        );
        let invite = format!(
            "INVITE sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-1;rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: <sip:9196@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nMax-Forwards: 70\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), ("127.0.0.1", port)).unwrap();
        let ok = final_response(&sip, call_id, "INVITE");
        assert_eq!(ok.code(), Some(200));
        let answer = mod_sofia::sdp::parse(&ok.body).expect("an SDP answer");
        let c = Caller {
            sip,
            call_id: call_id.into(),
            to: ok.headers.get("To").unwrap().to_string(),
            switch_media: answer.addr.expect("the switch's RTP address"),
            port,
        };
        c.in_dialog("ACK", 1);
        c
    }

    fn in_dialog(&self, method: &str, cseq: u32) {
        let me = self.sip.local_addr().unwrap();
        let m = format!(
            "{method} sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{id}-{method};rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: {to}\r\nCall-ID: {id}\r\n\
CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = self.port,
            id = self.call_id,
            to = self.to
        );
        self.sip
            .send_to(m.as_bytes(), ("127.0.0.1", self.port))
            .unwrap();
    }

    fn hang_up(&self) {
        self.in_dialog("BYE", 2);
        assert_eq!(
            final_response(&self.sip, &self.call_id, "BYE").code(),
            Some(200)
        );
    }
}

/// The packets (by sequence number) that came back to each socket while
/// each sender sent `n` frames, 20 ms apart, from sequence `first` on.
fn talk(senders: &[(&UdpSocket, SocketAddr)], first: u16, n: u16) -> Vec<Vec<u16>> {
    let start_at = Instant::now();
    let mut back = vec![Vec::new(); senders.len()];
    let mut buf = [0u8; 1500];
    for i in first..first + n {
        for (sock, to) in senders {
            let p = rtp(0, false, i, i as u32 * 160, &tone_frame(i as usize));
            sock.send_to(&p, to).unwrap();
        }
        let next = start_at + Duration::from_millis(20 * (i - first + 1) as u64);
        while Instant::now() < next {
            for (k, (sock, _)) in senders.iter().enumerate() {
                sock.set_read_timeout(Some(Duration::from_millis(2)))
                    .unwrap();
                while let Ok((len, _)) = sock.recv_from(&mut buf) {
                    if len >= 12 {
                        back[k].push(u16::from_be_bytes([buf[2], buf[3]]));
                    }
                }
            }
        }
    }
    back
}

#[test]
fn when_the_nat_rebinds_mid_call_media_follows_the_stream_and_the_other_call_goes_on() {
    let s = start("", "", "");
    let (a_media, b_media) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let a = Caller::call(s.port, "rebind-a", &a_media);
    let b = Caller::call(s.port, "rebind-b", &b_media);
    let before = talk(
        &[(&a_media, a.switch_media), (&b_media, b.switch_media)],
        0,
        25,
    );
    assert!(before[0].len() > 15 && before[1].len() > 15, "{before:?}");

    // A's NAT rebinds: the same stream now comes from another port, and
    // the old port hears nothing more.
    let a_moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let after = talk(
        &[
            (&a_moved, a.switch_media),
            (&b_media, b.switch_media),
            (&a_media, "127.0.0.1:9".parse().unwrap()),
        ],
        25,
        50,
    );
    // The echo reaches A's new address; B's call never stopped.
    assert!(
        after[0].len() > 30,
        "A heard {} of 50 frames at its new address\n{}",
        after[0].len(),
        s.sw.log()
    );
    assert!(
        after[1].len() > 40,
        "B heard {} of 50 frames meanwhile",
        after[1].len()
    );
    let log = s.sw.log();
    assert!(
        log.contains("the stream moved from") && log.contains("media follows it"),
        "no log line about the rebinding:\n{log}"
    );
    assert_eq!(
        log.matches("the stream moved from").count(),
        1,
        "only A's leg moved:\n{log}"
    );
    // A stranger's stream (another SSRC) to A's leg is not followed.
    let mut p = rtp(0, false, 500, 0, &tone_frame(0));
    p[8..12].copy_from_slice(&7u32.to_be_bytes());
    for _ in 0..20 {
        stranger.send_to(&p, a.switch_media).unwrap();
    }
    let last = talk(&[(&a_moved, a.switch_media)], 75, 20);
    assert!(last[0].len() > 10, "A still hears its echo: {last:?}");
    stranger
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1500];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "the stranger got A's media"
    );
    a.hang_up();
    b.hang_up();
}

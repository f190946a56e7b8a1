//! SRTP keyed by SDES (RFC 4568) on SIP calls: a caller written here
//! offers RTP/SAVP with an `a=crypto` key to a profile whose
//! `rtp-secure-media` is mandatory, calls 9196 (echo) and gets its audio
//! back protected under the switch's key; packets with a broken
//! authentication tag are dropped, counted and said in the log while the
//! call goes on; an offer without crypto is refused 488; a re-INVITE with
//! a new key re-keys what the switch accepts; a call flooded with bad tags
//! leaves another call talking; and
//! `rtp_secure_media=mandatory` on an outbound leg offers SRTP to baresip,
//! which talks over it. The hand-written caller's SRTP
//! is mod_sofia's own `srtp` module (webrtc-rs' contexts), run with the
//! opposite keys.

mod phones_common;
mod sofia_common;

use mod_sofia::sip::message::Message;
use mod_sofia::srtp::{Crypto, Srtp, Suite};
use sofia_common::{getvar, only_channel, rtp, start, tone_frame};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn invite(call_id: &str, me: std::net::SocketAddr, sip_port: u16, sdp: &str) -> String {
    format!(
        "INVITE sip:9196@127.0.0.1:{sip_port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-1;rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: <sip:9196@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nMax-Forwards: 70\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn offer(media_port: u16, profile: &str, crypto: &str) -> String {
    format!(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {media_port} {profile} 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}a=sendrecv\r\n"
    )
}

/// Reads SIP messages until a final response to `method` of `call_id`
/// (retransmissions of others are passed over).
fn final_response(sip: &UdpSocket, call_id: &str, method: &str) -> Message {
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no final response");
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

/// An ACK or BYE; `branch`: the INVITE's ("1") for the ACK of a failure,
/// which belongs to the INVITE's transaction, a new one otherwise.
fn in_dialog(
    method: &str,
    branch: &str,
    call_id: &str,
    to: &str,
    me: std::net::SocketAddr,
    port: u16,
) -> String {
    let cseq = if method == "ACK" { 1 } else { 2 };
    format!(
        "{method} sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{branch};rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn an_srtp_call_to_echo_comes_back_protected_and_bad_tags_are_dropped_and_counted() {
    let mut s = start(
        r#"<param name="rtp-secure-media" value="mandatory"/>"#,
        "",
        "",
    );
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sip.local_addr().unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();

    // Without crypto: refused.
    let plain = offer(media_port, "RTP/AVP", "");
    sip.send_to(
        invite("plain-1", me, s.port, &plain).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let r = final_response(&sip, "plain-1", "INVITE");
    assert_eq!(
        r.code(),
        Some(488),
        "{}",
        String::from_utf8_lossy(&r.to_bytes())
    );
    let to = r.headers.get("To").unwrap().to_string();
    sip.send_to(
        in_dialog("ACK", "1", "plain-1", &to, me, s.port).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();

    // With a key: answered with the switch's key, same tag and suite.
    let ours = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let sdp = offer(
        media_port,
        "RTP/SAVP",
        &format!("a=crypto:{}\r\n", ours.line()),
    );
    sip.send_to(
        invite("srtp-1", me, s.port, &sdp).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let ok = final_response(&sip, "srtp-1", "INVITE");
    assert_eq!(
        ok.code(),
        Some(200),
        "{}",
        String::from_utf8_lossy(&ok.to_bytes())
    );
    let answer = mod_sofia::sdp::parse(&ok.body).expect("an SDP answer");
    assert!(answer.savp, "{}", String::from_utf8_lossy(&ok.body));
    let theirs = answer.crypto.first().expect("a crypto line").clone();
    assert_eq!((theirs.tag, theirs.suite), (1, Suite::AesCm128HmacSha1_80));
    assert_ne!(theirs.key, ours.key);
    let to = ok.headers.get("To").unwrap().to_string();
    sip.send_to(
        in_dialog("ACK", "ack", "srtp-1", &to, me, s.port).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let uuid = only_channel(&mut s.sw);
    assert_eq!(
        getvar(&mut s.sw, &uuid, "rtp_has_crypto"),
        "AES_CM_128_HMAC_SHA1_80"
    );
    let switch_media = answer.addr.expect("the switch's RTP address");

    let mut srtp = Srtp::new(&ours, &theirs).unwrap();
    let start_at = Instant::now();
    let mut got = Vec::new();
    let mut wrong = 0;
    let mut buf = [0u8; 1500];
    for i in 0..100usize {
        let payload = tone_frame(i);
        let mut p = srtp
            .protect_rtp(&rtp(0, i == 0, i as u16, (i * 160) as u32, &payload))
            .unwrap();
        // Packets 40–49 carry a broken authentication tag.
        if (40..50).contains(&i) {
            let last = p.len() - 1;
            p[last] ^= 0x5a;
        }
        media.send_to(&p, switch_media).unwrap();
        let next = start_at + Duration::from_millis(20 * (i as u64 + 1));
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            media.set_read_timeout(Some(wait)).unwrap();
            let Ok((n, _)) = media.recv_from(&mut buf) else {
                break;
            };
            match srtp.unprotect_rtp(&buf[..n]) {
                Ok(clear) => got.push((i, clear)),
                Err(_) => wrong += 1,
            }
        }
    }
    assert_eq!(wrong, 0, "every packet from the switch passes our check");
    let late: Vec<_> = got.iter().filter(|(i, _)| *i >= 60).collect();
    assert!(
        got.len() > 40 && late.len() > 20,
        "echoed back: {} packets, {} after the bad ones",
        got.len(),
        late.len()
    );
    assert!(got.iter().all(|(_, p)| p[1] & 0x7f == 0 && p.len() == 172));
    let log = s.sw.log();
    assert!(
        log.contains("failed its check") && log.contains("dropped"),
        "no log line about the dropped packets:\n{log}"
    );
    sip.send_to(
        in_dialog("BYE", "bye", "srtp-1", &to, me, s.port).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let bye = final_response(&sip, "srtp-1", "BYE");
    assert_eq!(bye.code(), Some(200));
}

/// The channel variable on an outbound leg: `{rtp_secure_media=mandatory}`
/// makes the switch offer RTP/SAVP with keys; baresip (its srtp module)
/// answers with its own, and the call to it carries audio both ways
/// (the phone hears its tone back from the echo).
#[test]
fn rtp_secure_media_on_an_outbound_leg_offers_srtp_and_the_phone_talks_over_it() {
    use phones_common::{pump_for, share_with, DefaultConf, Phone, PhoneSetup, Transport};
    let conf = DefaultConf::new("srtp-out");
    let mut sw = conf.start();
    let setup = PhoneSetup {
        mediaenc: Some("srtp".into()),
        ..PhoneSetup::new(Transport::Udp, 697.0)
    };
    let mut phone = Phone::start_with("1000", &format!("127.0.0.1:{}", conf.sip_port), &setup);
    phone.wait_registered(&mut sw, "127.0.0.1");
    let t0 = Instant::now();
    let r = sw.cmd("bgapi originate {rtp_secure_media=mandatory}user/1000@127.0.0.1 &echo()");
    assert!(r.contains("+OK"), "{r}");
    phone.wait_event("CALL_INCOMING", t0, &mut []);
    let answered = Instant::now();
    phone.cmd("accept", "");
    phone.wait_event("CALL_ESTABLISHED", answered, &mut []);
    let uuid = only_channel(&mut sw);
    let suite = getvar(&mut sw, &uuid, "rtp_has_crypto");
    pump_for(&mut [&mut phone], Duration::from_secs(3));
    phone.cmd("hangup", "");
    phone.wait_event("CALL_CLOSED", answered, &mut []);
    assert!(suite.contains("AES"), "the leg's crypto: {suite:?}");
    let heard = share_with(&phone.heard(), 697.0);
    assert!(
        heard > 0.3,
        "the phone heard its tone: {:.0}%",
        heard * 100.0
    );
}

/// Sends `n` tone packets from `first` protected by `srtp`, 20 ms apart;
/// returns how many echoes came back that pass its check.
fn talk(
    media: &UdpSocket,
    to: std::net::SocketAddr,
    srtp: &mut Srtp,
    first: usize,
    n: usize,
) -> usize {
    let start_at = Instant::now();
    let mut back = 0;
    let mut buf = [0u8; 1500];
    for i in first..first + n {
        let p = srtp
            .protect_rtp(&rtp(0, i == 0, i as u16, (i * 160) as u32, &tone_frame(i)))
            .unwrap();
        media.send_to(&p, to).unwrap();
        let next = start_at + Duration::from_millis(20 * (i - first + 1) as u64);
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            media.set_read_timeout(Some(wait)).unwrap();
            let Ok((len, _)) = media.recv_from(&mut buf) else {
                break;
            };
            if srtp.unprotect_rtp(&buf[..len]).is_ok() {
                back += 1;
            }
        }
    }
    back
}

#[test]
fn a_reinvite_with_new_crypto_keys_rekeys_what_arrives_and_the_old_key_is_refused() {
    let mut s = start(
        r#"<param name="rtp-secure-media" value="mandatory"/>"#,
        "",
        "",
    );
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sip.local_addr().unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    let first_key = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let sdp = offer(
        media_port,
        "RTP/SAVP",
        &format!("a=crypto:{}\r\n", first_key.line()),
    );
    sip.send_to(
        invite("rekey-1", me, s.port, &sdp).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let ok = final_response(&sip, "rekey-1", "INVITE");
    assert_eq!(ok.code(), Some(200));
    let answer = mod_sofia::sdp::parse(&ok.body).expect("an SDP answer");
    let switch_key = answer.crypto.first().expect("a crypto line").clone();
    let switch_media = answer.addr.expect("the switch's RTP address");
    let to = ok.headers.get("To").unwrap().to_string();
    sip.send_to(
        in_dialog("ACK", "ack", "rekey-1", &to, me, s.port).as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    let mut old = Srtp::new(&first_key, &switch_key).unwrap();
    let before = talk(&media, switch_media, &mut old, 0, 30);
    assert!(before > 15, "echoes under the first key: {before}");

    // The re-INVITE: a new key, same tag and suite, a new SDP version.
    let new_key = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let sdp2 = offer(
        media_port,
        "RTP/SAVP",
        &format!("a=crypto:{}\r\n", new_key.line()),
    )
    .replace("o=caller 1 1", "o=caller 1 2");
    let reinvite = format!(
        "INVITE sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-rekey-1-re;rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: {to}\r\n\
Call-ID: rekey-1\r\nCSeq: 3 INVITE\r\nContact: <sip:caller@{me}>\r\nMax-Forwards: 70\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp2}",
        sdp2.len(),
        port = s.port
    );
    sip.send_to(reinvite.as_bytes(), ("127.0.0.1", s.port))
        .unwrap();
    let ok2 = final_response(&sip, "rekey-1", "INVITE");
    assert_eq!(
        ok2.code(),
        Some(200),
        "{}",
        String::from_utf8_lossy(&ok2.to_bytes())
    );
    let answer2 = mod_sofia::sdp::parse(&ok2.body).expect("an SDP answer");
    let switch_key2 = answer2.crypto.first().expect("a crypto line").clone();
    assert_eq!(
        (switch_key2.tag, switch_key2.suite),
        (1, Suite::AesCm128HmacSha1_80)
    );
    let ack2 = format!(
        "ACK sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-rekey-1-reack;rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: {to}\r\nCall-ID: rekey-1\r\n\
CSeq: 3 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        port = s.port
    );
    sip.send_to(ack2.as_bytes(), ("127.0.0.1", s.port)).unwrap();

    // Under the new key the echo goes on (the switch's own stream keeps
    // the key its answer carries).
    let mut new = Srtp::new(&new_key, &switch_key2).unwrap();
    let after = talk(&media, switch_media, &mut new, 30, 30);
    assert!(after > 15, "echoes under the new key: {after}");
    // The old key no longer passes the switch's check.
    let uuid = only_channel(&mut s.sw);
    let _ = talk(&media, switch_media, &mut old, 60, 5);
    let log = s.sw.log();
    assert!(log.contains("SRTP re-keyed"), "{log}");
    assert!(
        log.contains("failed its check"),
        "packets under the old key were not refused:\n{log}"
    );
    assert!(!uuid.is_empty());
    sip.send_to(
        format!(
            "BYE sip:9196@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-rekey-1-bye;rport\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: {to}\r\nCall-ID: rekey-1\r\n\
CSeq: 4 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = s.port
        )
        .as_bytes(),
        ("127.0.0.1", s.port),
    )
    .unwrap();
    assert_eq!(final_response(&sip, "rekey-1", "BYE").code(), Some(200));
}

/// An SRTP call to 9196 from `sip`, media at `media`: our key, the
/// switch's, its RTP address and the dialog's To.
fn srtp_call(
    port: u16,
    sip: &UdpSocket,
    media: &UdpSocket,
    call_id: &str,
) -> (Crypto, Crypto, std::net::SocketAddr, String) {
    let me = sip.local_addr().unwrap();
    let ours = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let sdp = offer(
        media.local_addr().unwrap().port(),
        "RTP/SAVP",
        &format!("a=crypto:{}\r\n", ours.line()),
    );
    sip.send_to(
        invite(call_id, me, port, &sdp).as_bytes(),
        ("127.0.0.1", port),
    )
    .unwrap();
    let ok = final_response(sip, call_id, "INVITE");
    assert_eq!(ok.code(), Some(200));
    let answer = mod_sofia::sdp::parse(&ok.body).expect("an SDP answer");
    let theirs = answer.crypto.first().expect("a crypto line").clone();
    let to = ok.headers.get("To").unwrap().to_string();
    sip.send_to(
        in_dialog("ACK", "ack", call_id, &to, me, port).as_bytes(),
        ("127.0.0.1", port),
    )
    .unwrap();
    (ours, theirs, answer.addr.expect("an RTP address"), to)
}

#[test]
fn a_call_flooded_with_bad_srtp_tags_is_alone_the_other_call_talks_and_both_end_cleanly() {
    let s = start(
        r#"<param name="rtp-secure-media" value="mandatory"/>"#,
        "",
        "",
    );
    let new_sip = || {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        u
    };
    let (sip_a, sip_b) = (new_sip(), new_sip());
    let (media_a, media_b) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (a_ours, a_theirs, a_switch, a_to) = srtp_call(s.port, &sip_a, &media_a, "flood-a");
    let (b_ours, b_theirs, b_switch, b_to) = srtp_call(s.port, &sip_b, &media_b, "flood-b");
    // A: every packet with a broken tag, for 2 s, from a thread.
    let flood = std::thread::spawn(move || {
        let mut srtp = Srtp::new(&a_ours, &a_theirs).unwrap();
        for i in 0..100usize {
            let mut p = srtp
                .protect_rtp(&rtp(0, i == 0, i as u16, (i * 160) as u32, &tone_frame(i)))
                .unwrap();
            let last = p.len() - 1;
            p[last] ^= 0x5a;
            media_a.send_to(&p, a_switch).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // B meanwhile: its echo comes back as ever.
    let mut b = Srtp::new(&b_ours, &b_theirs).unwrap();
    let back = talk(&media_b, b_switch, &mut b, 0, 75);
    flood.join().unwrap();
    assert!(
        back > 50,
        "B's call heard {back} of 75 echoes during A's flood"
    );
    let log = s.sw.log();
    assert!(
        log.contains("failed its check"),
        "no log line about A's bad packets:\n{log}"
    );
    // One line a second at most, not one per packet.
    let lines = log.matches("failed its check").count();
    assert!(lines <= 4, "{lines} log lines for 100 bad packets");
    for (sip, id, to) in [(&sip_a, "flood-a", &a_to), (&sip_b, "flood-b", &b_to)] {
        let me = sip.local_addr().unwrap();
        sip.send_to(
            in_dialog("BYE", "bye", id, to, me, s.port).as_bytes(),
            ("127.0.0.1", s.port),
        )
        .unwrap();
        assert_eq!(final_response(sip, id, "BYE").code(), Some(200), "{id}");
    }
}

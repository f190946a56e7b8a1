//! A switch behind NAT learns its public address: `ext-rtp-ip` set to
//! `stun:host:port` asks a STUN server (one written here, on loopback,
//! that reports 203.0.113.7) at load; the profile shows it as its
//! Ext-RTP-IP and the SDP of its calls carries it.

mod sofia_common;

use sofia_common::start;
use std::net::UdpSocket;
use std::time::Duration;

/// RFC 5389's magic cookie.
const COOKIE: u32 = 0x2112_A442;

fn stun_server(seen: [u8; 4]) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 20 || buf[0..2] != [0, 1] {
                continue;
            }
            let x = u32::from_be_bytes(seen) ^ COOKIE;
            // Binding success: the request's cookie and id, one
            // XOR-MAPPED-ADDRESS.
            let mut r = vec![0x01, 0x01, 0, 12];
            r.extend_from_slice(&buf[4..20]);
            r.extend_from_slice(&[0x00, 0x20, 0, 8, 0, 1, 0x12, 0x34]);
            r.extend_from_slice(&x.to_be_bytes());
            let _ = sock.send_to(&r, from);
        }
    });
    port
}

#[test]
fn ext_rtp_ip_from_stun_is_the_address_the_switch_advertises() {
    let port = stun_server([203, 0, 113, 7]);
    let mut s = start(
        &format!(r#"<param name="ext-rtp-ip" value="stun:127.0.0.1:{port}"/>"#),
        "",
        "",
    );
    let status = s.sw.cmd("sofia status profile internal");
    assert!(
        status.contains("Ext-RTP-IP       \t203.0.113.7"),
        "{status}"
    );
    // An INVITE's answer carries it in c=.
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = sip.local_addr().unwrap();
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:9196@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKstun1;rport\r\n\
From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:9196@127.0.0.1>\r\nCall-ID: stun-1\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:x@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        p = s.port
    );
    sip.send_to(invite.as_bytes(), ("127.0.0.1", s.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let answer = loop {
        let (n, _) = sip.recv_from(&mut buf).expect("an answer to the INVITE");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    assert!(answer.contains("c=IN IP4 203.0.113.7"), "{answer}");
    s.sw.cmd("hupall");
}

//! mod_sofia against requests RFC 3261 says how to answer, sent by the test
//! itself over raw UDP and TCP sockets: the §8.2 checks (405, 501, 416,
//! 420, 415, 406, 400, 505) before authentication, no answer to an ACK,
//! valid-but-unusual messages served; the TCP caps, idle and message
//! deadlines; and a response too large for a datagram.

use hotswitch_e2e::{free_port, workspace_root, Switch, SwitchConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A switch with profile `internal` (auth-calls on, TCP with `tcp`
/// settings) on a free port.
fn start(tcp: &str) -> (Switch, u16) {
    start_with(tcp, true)
}

/// As [`start`], calls taken without authentication.
fn start_open(tcp: &str) -> (Switch, u16) {
    start_with(tcp, false)
}

fn start_with(tcp: &str, auth: bool) -> (Switch, u16) {
    let port = free_port();
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="internal"><settings>
    <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
    <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="default"/>
    <param name="auth-calls" value="{auth}"/>
    {tcp}
  </settings></profile>
</profiles></configuration>"#
    );
    let dialplan = r#"<include><context name="default">
  <extension name="echo"><condition field="destination_number" expression="^9196$">
    <action application="answer"/><action application="echo"/></condition></extension>
</context></include>"#;
    let directory = r#"<include><domain name="127.0.0.1"><groups><group name="default"><users>
  <user id="1000"><params><param name="password" value="1234"/></params>
    <variables><variable name="user_context" value="default"/></variables></user>
</users></group></groups></domain></include>"#;
    let sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_sofia".into(), "mod_dptools".into()],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
  <param name="rtp-start-port" value="40000"/><param name="rtp-end-port" value="41000"/>
</settings></configuration>"#
                    .into(),
            ),
            ("dialplan/default.xml".into(), dialplan.into()),
            ("directory/default.xml".into(), directory.into()),
        ],
        ..Default::default()
    });
    (sw, port)
}

/// A request from `me` (its Via's sent-by) with `extra` headers and `body`.
fn request(
    method: &str,
    uri: &str,
    me: SocketAddr,
    proto: &str,
    extra: &str,
    body: &str,
) -> String {
    let id = free_port();
    let cseq_method = if method == "ACK" { "INVITE" } else { method };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{proto} {me};branch=z9hG4bK-{id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:1000@127.0.0.1>;tag=f{id}\r\nTo: <sip:9196@127.0.0.1>\r\n\
Call-ID: grammar-{id}\r\nCSeq: 1 {cseq_method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40999 RTP/AVP 0\r\n";

/// A transport the test speaks SIP over.
enum Peer {
    Udp(UdpSocket, u16),
    Tcp(TcpStream, Vec<u8>),
}

impl Peer {
    fn udp(port: u16) -> Peer {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Peer::Udp(s, port)
    }

    fn tcp(port: u16) -> Peer {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Peer::Tcp(s, Vec::new())
    }

    fn me(&self) -> SocketAddr {
        match self {
            Peer::Udp(s, _) => s.local_addr().unwrap(),
            Peer::Tcp(s, _) => s.local_addr().unwrap(),
        }
    }

    fn proto(&self) -> &'static str {
        match self {
            Peer::Udp(..) => "UDP",
            Peer::Tcp(..) => "TCP",
        }
    }

    fn send(&mut self, text: &str) {
        match self {
            Peer::Udp(s, port) => {
                s.send_to(text.as_bytes(), ("127.0.0.1", *port)).unwrap();
            }
            Peer::Tcp(s, _) => s.write_all(text.as_bytes()).unwrap(),
        }
    }

    /// The next whole message, or None after `within`.
    fn recv(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut chunk = vec![0u8; 70_000];
        loop {
            if let Peer::Tcp(_, buf) = self {
                if let Some(m) = take_framed(buf) {
                    return Some(m);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self {
                Peer::Udp(s, _) => {
                    if let Ok(n) = s.recv(&mut chunk) {
                        return Some(String::from_utf8_lossy(&chunk[..n]).into_owned());
                    }
                }
                Peer::Tcp(s, buf) => match s.read(&mut chunk) {
                    Ok(0) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                },
            }
        }
    }

    /// The first message `want` takes, and the ones heard before it.
    fn recv_until(&mut self, want: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv(left).expect("the awaited message");
            if want(&m) {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Sends `req` and returns its final response (provisional ones and
    /// other transactions' retransmissions skipped).
    fn final_response(&mut self, req: &str) -> String {
        let call_id = header(req, "Call-ID").unwrap();
        self.send(req);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .recv(left)
                .unwrap_or_else(|| panic!("no final answer to\n{}", &req[..req.len().min(600)]));
            if header(&m, "Call-ID") == Some(call_id.clone()) && !m.starts_with("SIP/2.0 1") {
                return m;
            }
        }
    }
}

fn take_framed(buf: &mut Vec<u8>) -> Option<String> {
    while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
        buf.remove(0);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = header(&head, "Content-Length")?.parse().ok()?;
    if buf.len() < end + len {
        return None;
    }
    let m: Vec<u8> = buf.drain(..end + len).collect();
    Some(String::from_utf8_lossy(&m).into_owned())
}

fn header(m: &str, name: &str) -> Option<String> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn status(m: &str) -> &str {
    m.lines().next().unwrap_or("")
}

/// A request, the status line it must get, and a header the answer must
/// carry with a text its value contains.
type Case = (String, &'static str, Option<(&'static str, &'static str)>);

fn uas_checks(peer: &mut Peer) {
    let me = peer.me();
    let p = peer.proto();
    let sdp = "Content-Type: application/sdp\r\n";
    let cases: Vec<Case> = vec![
        (
            request(
                "SUBSCRIBE",
                "sip:9196@127.0.0.1",
                me,
                p,
                "Event: presence\r\n",
                "",
            ),
            "SIP/2.0 405 Method Not Allowed",
            Some(("Allow", "INVITE")),
        ),
        (
            request("FROBNICATE", "sip:9196@127.0.0.1", me, p, "", ""),
            "SIP/2.0 501 Not Implemented",
            Some(("Allow", "REGISTER")),
        ),
        (
            request("OPTIONS", "tel:+15550100", me, p, "", ""),
            "SIP/2.0 416 Unsupported URI Scheme",
            None,
        ),
        // Before authentication (auth-calls is on): no 407 for these.
        (
            request(
                "INVITE",
                "sip:9196@127.0.0.1",
                me,
                p,
                &format!("Require: 100rel, nosuchext\r\n{sdp}"),
                OFFER,
            ),
            "SIP/2.0 420 Bad Extension",
            Some(("Unsupported", "100rel, nosuchext")),
        ),
        (
            request(
                "INVITE",
                "sip:9196@127.0.0.1",
                me,
                p,
                "Content-Type: application/unknownformat\r\n",
                OFFER,
            ),
            "SIP/2.0 415 Unsupported Media Type",
            Some(("Accept", "application/sdp")),
        ),
        (
            request(
                "INVITE",
                "sip:9196@127.0.0.1",
                me,
                p,
                &format!("{sdp}Content-Encoding: gzip\r\n"),
                OFFER,
            ),
            "SIP/2.0 415 Unsupported Media Type",
            Some(("Accept-Encoding", "identity")),
        ),
        (
            request(
                "INVITE",
                "sip:9196@127.0.0.1",
                me,
                p,
                &format!("{sdp}Accept: text/nobodyknowsthis\r\n"),
                OFFER,
            ),
            "SIP/2.0 406 Not Acceptable",
            Some(("Accept", "application/sdp")),
        ),
        (
            request("INVITE", "sip:9196@127.0.0.1", me, p, sdp, OFFER),
            "SIP/2.0 407 Proxy Authentication Required",
            None,
        ),
        (
            request("OPTIONS", "sip:9196@127.0.0.1", me, p, "", "")
                .replace(" SIP/2.0\r\n", " SIP/7.0\r\n"),
            "SIP/2.0 505 Version Not Supported",
            None,
        ),
        (
            request(
                "OPTIONS",
                "sip:9196@127.0.0.1",
                me,
                p,
                "Call-ID: second@127.0.0.1\r\n",
                "",
            ),
            "SIP/2.0 400 Bad Call-ID Header",
            None,
        ),
        (
            request(
                "OPTIONS",
                "sip:9196@127.0.0.1",
                me,
                p,
                "Max-Forwards: 69\r\n",
                "",
            ),
            "SIP/2.0 400 Bad Max-Forwards Header",
            None,
        ),
        // Valid though unusual: LWS in the Via, '?' in the To's user part.
        (
            request("OPTIONS", "sip:9196@127.0.0.1", me, p, "", "")
                .replace(&format!("SIP/2.0/{p} "), &format!("SIP / 2.0 / {p} ")),
            "SIP/2.0 200 OK",
            None,
        ),
        (
            request("OPTIONS", "sip:9196@127.0.0.1", me, p, "", "")
                .replace("To: <sip:9196@", "To: \"Q\" <sip:us?er@"),
            "SIP/2.0 200 OK",
            None,
        ),
    ];
    for (req, want, hdr) in &cases {
        let r = peer.final_response(req);
        assert_eq!(status(&r), *want, "{p}: answer to\n{req}\nwas\n{r}");
        if let Some((n, v)) = hdr {
            let got = header(&r, n).unwrap_or_default();
            assert!(got.contains(v), "{p}: {n} {got:?} lacks {v:?}\n{r}");
        }
        assert_eq!(r.matches("\r\nCall-ID:").count(), 1, "{r}");
        assert_eq!(r.matches("\r\nCSeq:").count(), 1, "{r}");
        assert!(r.is_ascii(), "{r}");
    }
    // A request missing its Call-ID is still answered, by its Via (its
    // branch tells the answer from retransmitted answers to the INVITEs).
    let no_call_id: String = request("OPTIONS", "sip:9196@127.0.0.1", me, p, "", "")
        .lines()
        .filter(|l| !l.starts_with("Call-ID"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    peer.send(&no_call_id);
    let via = header(&no_call_id, "Via").unwrap();
    let (r, _) = peer.recv_until(|m| header(m, "Via").is_some_and(|v| v.starts_with(&via)));
    assert_eq!(status(&r), "SIP/2.0 400 Missing Call-ID Header", "{r}");
    // A malformed ACK gets nothing: nothing names it before the answer to
    // the OPTIONS sent after it.
    let ack = request(
        "ACK",
        "sip:9196@127.0.0.1",
        me,
        p,
        "Max-Forwards: lots\r\n",
        "",
    );
    peer.send(&ack);
    let after = request("OPTIONS", "sip:9196@127.0.0.1", me, p, "", "");
    peer.send(&after);
    let (_, before) = peer.recv_until(|m| header(m, "Call-ID") == header(&after, "Call-ID"));
    for m in before {
        assert_ne!(
            header(&m, "Call-ID"),
            header(&ack, "Call-ID"),
            "{p}: the ACK was answered:\n{m}"
        );
    }
}

#[test]
fn requests_get_the_answers_of_rfc_3261_section_8_2_over_udp_and_tcp() {
    let (mut sw, port) = start("");
    uas_checks(&mut Peer::udp(port));
    uas_checks(&mut Peer::tcp(port));
    let log = sw.log();
    assert!(log.contains("malformed SIP from"), "{log}");
    assert!(log.lines().all(|l| l.is_ascii()), "a log line is not ASCII");
    assert!(sw.alive());
    assert!(sw.cmd("sofia status").contains("RUNNING"));
}

/// Connects and proves the switch serves the connection (an OPTIONS
/// answered 200); None when the switch closes it instead.
fn served(port: u16) -> Option<Peer> {
    let mut peer = Peer::tcp(port);
    let req = request("OPTIONS", "sip:9196@127.0.0.1", peer.me(), "TCP", "", "");
    peer.send(&req);
    let r = peer.recv(WAIT)?;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    Some(peer)
}

/// Waits until the switch closes `s` (end of file or reset); what it sent
/// before is returned.
fn closed_by_switch(s: &mut TcpStream) -> Option<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut b = [0u8; 512];
    while Instant::now() < deadline {
        match s.read(&mut b) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(got),
        }
    }
    None
}

fn sipp_call(port: u16, transport: &str) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(workspace_root().join("tests/sipp/uac_call.xml"))
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-i",
            "127.0.0.1",
            "-t",
            transport,
            "-s",
            "9196",
            "-m",
            "1",
            "-d",
            "500",
        ])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .args(["-key", "rtp_port", &free_port().to_string()])
        .arg("-mp")
        .arg(hotswitch_e2e::free_media_ports().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (Debian: apt install sip-tester)")
}

fn sipp_succeeds(mut child: Child, sw: &Switch, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "sipp {what} failed ({st})\n{}", sw.log());
            return;
        }
        assert!(Instant::now() < deadline, "sipp {what} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tcp_connections_over_the_cap_are_refused_while_calls_go_on() {
    let (sw, port) = start_open(r#"<param name="tcp-max-connections-per-ip" value="3"/>"#);
    let held: Vec<Peer> = (0..3)
        .map(|i| served(port).unwrap_or_else(|| panic!("connection {i} under the cap was refused")))
        .collect();
    let call = sipp_call(port, "u1");
    for _ in 0..2 {
        let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(
            closed_by_switch(&mut extra).is_some(),
            "a connection over the cap stayed open"
        );
    }
    sipp_succeeds(call, &sw, "UDP call with the TCP cap reached");
    let log = sw.log();
    assert!(
        log.contains("TCP connection from 127.0.0.1:")
            && log.contains(
                "refused: 3 connections from 127.0.0.1 already open (tcp-max-connections-per-ip 3)"
            ),
        "{log}"
    );
    // One line a second at most, however many are refused.
    assert!(log.matches("refused: 3 connections").count() <= 2, "{log}");
    // Closed connections free their places: a call over TCP gets in.
    drop(held);
    let deadline = Instant::now() + WAIT;
    while served(port).is_none() {
        assert!(Instant::now() < deadline, "no place freed after closing");
    }
    sipp_succeeds(sipp_call(port, "t1"), &sw, "TCP call after the cap freed");
}

#[test]
fn tcp_connections_idle_or_with_a_body_that_never_comes_are_closed() {
    let (sw, port) = start(
        r#"<param name="tcp-message-timeout" value="1000"/><param name="tcp-idle-timeout" value="2500"/>"#,
    );
    // A head announcing 100 bytes of body, and 10 sent.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = slow.local_addr().unwrap();
    let head = request("OPTIONS", "sip:9196@127.0.0.1", me, "TCP", "", "")
        .replace("Content-Length: 0", "Content-Length: 100");
    slow.write_all(format!("{head}0123456789").as_bytes())
        .unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    assert!(
        closed_by_switch(&mut slow).is_some(),
        "the slow message was kept"
    );
    let slow_after = t0.elapsed();
    assert!(
        closed_by_switch(&mut idle).is_some(),
        "the idle connection was kept"
    );
    let idle_after = t0.elapsed();
    assert!(slow_after >= Duration::from_millis(900), "{slow_after:?}");
    assert!(idle_after >= Duration::from_millis(2400), "{idle_after:?}");
    let log = sw.log();
    assert!(
        log.contains("a message still incomplete after 1000 ms (tcp-message-timeout)"),
        "{log}"
    );
    assert!(log.contains("idle for 2500 ms (tcp-idle-timeout)"), "{log}");
}

#[test]
fn keepalive_pings_go_out_and_a_peer_that_never_answers_is_closed() {
    let (sw, port) = start(
        r#"<param name="tcp-keepalive" value="300"/><param name="tcp-pingpong" value="400"/>"#,
    );
    // This peer answers every ping with a CRLF (RFC 5626's pong), for 3 s.
    let mut live = TcpStream::connect(("127.0.0.1", port)).unwrap();
    live.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let answering = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(3);
        let mut pings = 0;
        let mut b = [0u8; 64];
        while Instant::now() < until {
            match live.read(&mut b) {
                Ok(0) => return Err(pings),
                Ok(n) => {
                    assert!(b[..n].iter().all(|c| *c == b'\r' || *c == b'\n'));
                    pings += 1;
                    live.write_all(b"\r\n").unwrap();
                }
                Err(_) => {}
            }
        }
        Ok(pings)
    });
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let got = closed_by_switch(&mut silent).expect("a peer that never answers pings was kept");
    assert!(
        !got.is_empty() && got.iter().all(|c| *c == b'\r' || *c == b'\n'),
        "pings before the close: {got:?}"
    );
    match answering.join().unwrap() {
        Ok(pings) => assert!(pings >= 3, "{pings} pings in 3 s with tcp-keepalive 300"),
        Err(pings) => panic!(
            "the switch closed a peer that answered {pings} pings\n{}",
            sw.log()
        ),
    }
    assert!(sw
        .log()
        .contains("no answer to a keep-alive ping (tcp-pingpong)"));
}

/// An OPTIONS whose Via list (comma-joined) makes the 200 larger than a
/// datagram can carry, its top Via naming `sent_by`.
fn huge_options(sent_by: SocketAddr) -> String {
    let mut vias = format!("SIP/2.0/UDP {sent_by};branch=z9hG4bK-top{}", free_port());
    let mut i = 0;
    while vias.len() < 63_000 {
        vias.push_str(&format!(
            ",SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-hop{i:08}"
        ));
        i += 1;
    }
    let id = free_port();
    format!(
        "OPTIONS sip:9196@127.0.0.1 SIP/2.0\r\nVia: {vias}\r\nMax-Forwards: 70\r\n\
From: <sip:1000@127.0.0.1>;tag=h{id}\r\nTo: <sip:9196@127.0.0.1>\r\nCall-ID: huge-{id}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_response_too_large_for_udp_goes_over_an_open_tcp_connection_or_becomes_513() {
    let (sw, port) = start("");
    let mut udp = Peer::udp(port);
    let req = huge_options(udp.me());
    assert!(req.len() < 65_507, "{}", req.len());
    let r = udp.final_response(&req);
    assert_eq!(
        status(&r),
        "SIP/2.0 513 Message Too Large",
        "{}",
        &r[..r.len().min(400)]
    );
    assert_eq!(r.matches("\r\nVia:").count(), 1);
    // With a TCP connection open from the Via's sent-by, the 200 goes there.
    let mut tcp = served(port).expect("a TCP connection");
    let req = huge_options(tcp.me());
    udp.send(&req);
    let r = tcp.recv(WAIT).expect("the 200 over TCP");
    assert_eq!(status(&r), "SIP/2.0 200 OK");
    assert_eq!(header(&r, "Call-ID"), header(&req, "Call-ID"));
    assert!(r.len() > 65_507, "{}", r.len());
    assert!(sw.log().contains("sent over TCP"));
}

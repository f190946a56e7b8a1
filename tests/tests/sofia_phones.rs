//! mod_sofia with phones as they really behave: hold and resume by
//! re-INVITE (each 200 acknowledged once, never retransmitted after its
//! ACK), Via `received`/`rport` filled, a phone registered over TCP called
//! after a restart (and a dead one failing at once), a phone from another
//! address trusted or challenged by the ACLs, the directory's variables on
//! an authenticated caller's channel, and `show registrations`.

mod sofia_common;

use hotswitch_e2e::free_port;
use sofia_common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A phone speaking SIP over one UDP socket, written by hand so that every
/// byte the switch sends is seen (sipp hides retransmissions).
struct RawPhone {
    sock: UdpSocket,
    switch: SocketAddr,
    call_id: String,
    branch: u32,
}

impl RawPhone {
    fn new(bind: &str, switch_port: u16) -> RawPhone {
        let sock = UdpSocket::bind(format!("{bind}:0")).unwrap();
        RawPhone {
            sock,
            switch: format!("127.0.0.1:{switch_port}").parse().unwrap(),
            call_id: format!("raw-{}-{}", std::process::id(), free_port()),
            branch: 0,
        }
    }

    fn me(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A request in this phone's dialog (`to_tag` once the switch gave one).
    fn request(&mut self, method: &str, cseq: u32, to_tag: Option<&str>, sdp: &str) -> String {
        self.branch += 1;
        let me = self.me();
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let (ctype, body) = if sdp.is_empty() {
            (String::new(), String::new())
        } else {
            (
                "Content-Type: application/sdp\r\n".to_string(),
                sdp.to_string(),
            )
        };
        let cseq_method = if method == "ACK" { "ACK" } else { method };
        format!(
            "{method} sip:5900@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKraw{b};rport\r\n\
From: <sip:raw@{me}>;tag=rawtag\r\nTo: <sip:5900@{sw}>{to_tag}\r\nCall-ID: {cid}\r\n\
CSeq: {cseq} {cseq_method}\r\nContact: <sip:raw@{me}>\r\nMax-Forwards: 70\r\n{ctype}\
Content-Length: {len}\r\n\r\n{body}",
            sw = self.switch,
            b = self.branch,
            cid = self.call_id,
            len = body.len(),
        )
    }

    fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.switch).unwrap();
    }

    /// Every message received within `d`.
    fn collect(&self, d: Duration) -> Vec<String> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        let mut buf = [0u8; 65_536];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => return out,
            }
        }
    }

    /// Waits for a response whose status line starts `SIP/2.0 <code>` to
    /// `method`.
    fn wait_response(&self, code: u16, method: &str) -> String {
        let end = Instant::now() + WAIT;
        let mut buf = [0u8; 65_536];
        let mut seen = Vec::new();
        while Instant::now() < end {
            self.sock
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.starts_with(&format!("SIP/2.0 {code} ")) && cseq_method(&m) == method {
                    return m;
                }
                seen.push(m.lines().next().unwrap_or("").to_string());
            }
        }
        panic!("no {code} to {method}; saw {seen:?}");
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn cseq_method(msg: &str) -> &str {
    header(msg, "CSeq")
        .and_then(|c| c.split_whitespace().nth(1))
        .unwrap_or("")
}

fn to_tag(msg: &str) -> String {
    let to = header(msg, "To").unwrap_or("");
    to.split(";tag=")
        .nth(1)
        .map(|t| t.split(';').next().unwrap_or(t).to_string())
        .expect("a To tag")
}

/// An offer of one G.711 codec (`(0, "PCMU")` or `(8, "PCMA")`).
fn sdp(me: SocketAddr, version: u32, direction: &str, (pt, codec): (u8, &str)) -> String {
    format!(
        "v=0\r\no=raw 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {codec}/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a={direction}\r\n",
        ip = me.ip(),
        port = me.port() + 2,
    )
}

const PCMU: (u8, &str) = (0, "PCMU");
const PCMA: (u8, &str) = (8, "PCMA");

fn count_status(msgs: &[String], code: u16) -> usize {
    msgs.iter()
        .filter(|m| m.starts_with(&format!("SIP/2.0 {code} ")))
        .count()
}

#[test]
fn hold_and_resume_by_reinvite_get_one_200_each_and_no_retransmission_after_the_ack() {
    let mut s = start_with_events("CHANNEL_HOLD CHANNEL_UNHOLD");
    let mut phone = RawPhone::new("127.0.0.1", s.port);
    let me = phone.me();
    let invite = phone.request("INVITE", 1, None, &sdp(me, 1, "sendrecv", PCMU));
    phone.send(&invite);
    let ok = phone.wait_response(200, "INVITE");
    // RFC 3581: the Via we sent with a bare rport comes back filled in.
    let via = header(&ok, "Via").unwrap();
    assert!(
        via.contains(&format!("rport={}", me.port())) && via.contains("received=127.0.0.1"),
        "{via}"
    );
    let tag = to_tag(&ok);
    let ack = phone.request("ACK", 1, Some(&tag), "");
    phone.send(&ack);
    let uuid = only_channel(&mut s.sw);
    for (k, v) in [
        ("read_codec", "PCMU"),
        ("write_codec", "PCMU"),
        ("read_rate", "8000"),
        ("original_read_codec", "PCMU"),
    ] {
        assert_eq!(getvar(&mut s.sw, &uuid, k), v, "{k}");
    }
    // Hold, then resume offering PCMA only: the call's remote SDP and
    // codec follow each re-INVITE.
    for (cseq, direction, event, codec) in [
        (2, "sendonly", "CHANNEL_HOLD", PCMU),
        (3, "sendrecv", "CHANNEL_UNHOLD", PCMA),
    ] {
        let offer = sdp(me, cseq, direction, codec);
        let reinvite = phone.request("INVITE", cseq, Some(&tag), &offer);
        phone.send(&reinvite);
        let ok = phone.wait_response(200, "INVITE");
        assert_eq!(header(&ok, "CSeq"), Some(format!("{cseq} INVITE").as_str()));
        let ack = phone.request("ACK", cseq, Some(&tag), "");
        phone.send(&ack);
        assert!(
            s.sw.wait_event(WAIT, |e| e.name() == event).is_some(),
            "no {event}"
        );
        // Unacknowledged, the 200 comes again at 0.5, 1.5 and 3.5 s. One
        // resend is tolerated: a loaded machine may read the ACK late.
        let after = phone.collect(Duration::from_millis(3800));
        assert!(
            count_status(&after, 200) <= 1,
            "the 200 to re-INVITE {cseq} was retransmitted after its ACK: {after:?}"
        );
        let r_sdp = getvar(&mut s.sw, &uuid, "switch_r_sdp");
        assert!(r_sdp.contains(&format!("a={direction}")), "{r_sdp}");
        assert_eq!(getvar(&mut s.sw, &uuid, "read_codec"), codec.1);
    }
    assert_eq!(getvar(&mut s.sw, &uuid, "original_read_codec"), "PCMU");
    let bye = phone.request("BYE", 4, Some(&tag), "");
    phone.send(&bye);
    phone.wait_response(200, "BYE");
}

/// Reads one SIP message from a stream (head, then Content-Length bytes).
fn read_sip(stream: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> String {
    use std::io::Read;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = header(&head, "Content-Length")
                .or_else(|| header(&head, "l"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return String::from_utf8_lossy(&msg).into_owned();
            }
        }
        assert!(Instant::now() < deadline, "no SIP message on the stream");
        let mut chunk = [0u8; 8192];
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the switch closed the connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
}

/// Registers 1000 over a TCP connection from an ephemeral port, with a
/// Contact at `contact_port` (where a phone listens, as baresip does).
fn register_over_tcp(switch_port: u16, contact_port: u16) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", switch_port)).unwrap();
    let me = s.local_addr().unwrap();
    let mut buf = Vec::new();
    let uri = format!("sip:127.0.0.1:{switch_port}");
    let mut auth = String::new();
    for cseq in 1..=2 {
        let req = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKtcpreg{cseq};rport\r\n\
From: <sip:1000@127.0.0.1>;tag=tcpreg\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: tcpreg-{me}\r\n\
CSeq: {cseq} REGISTER\r\nContact: <sip:1000@127.0.0.1:{contact_port};transport=tcp>\r\n\
Expires: 300\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let resp = read_sip(&mut s, &mut buf);
        if resp.starts_with("SIP/2.0 200 ") {
            return s;
        }
        assert!(resp.starts_with("SIP/2.0 401 "), "{resp}");
        let ch = header(&resp, "WWW-Authenticate").unwrap();
        let value =
            mod_sofia::sip::digest::answer(ch, "REGISTER", &uri, "1000", "1234", 1).unwrap();
        auth = format!("Authorization: {value}\r\n");
    }
    panic!("REGISTER over TCP was not accepted");
}

#[test]
fn a_phone_registered_over_tcp_is_reached_on_its_connection_then_at_its_contact_after_a_restart() {
    use std::io::Write;
    let dir = hotswitch_e2e::TempDir::new("sofia-tcp-reg");
    let db = dir.path().join("db/sofia_reg.redb");
    let port = free_port();
    let mut sw = start_on(port, "", "", "", Some(&db));
    let ua_port = free_port();
    let mut flow = register_over_tcp(port, ua_port);
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(reg.contains("Registered(TCP)"), "{reg}");
    // While the phone's connection lives, its calls come through it.
    let phone = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let invite = read_sip(&mut flow, &mut buf);
        assert!(invite.starts_with("INVITE sip:1000@127.0.0.1"), "{invite}");
        let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
        for h in ["Via", "From", "Call-ID", "CSeq"] {
            busy.push_str(&format!("{h}: {}\r\n", header(&invite, h).unwrap()));
        }
        busy.push_str(&format!(
            "To: {};tag=busy\r\nContent-Length: 0\r\n\r\n",
            header(&invite, "To").unwrap()
        ));
        flow.write_all(busy.as_bytes()).unwrap();
        // The ACK of the 486, then keep the connection until the end.
        let ack = read_sip(&mut flow, &mut buf);
        assert!(ack.starts_with("ACK "), "{ack}");
        flow
    });
    let out = sw.cmd("originate {originate_timeout=15}user/1000@127.0.0.1 &park()");
    assert_eq!(out.trim(), "-ERR USER_BUSY", "{}", tail(&sw.log()));
    let flow = phone.join().unwrap();
    // A restart closes the connection; the phone listens at its Contact.
    sw.shutdown();
    drop(flow);
    let mut sw = start_on(port, "", "", "", Some(&db));
    let phone = sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "INVITE sip:1000@127.0.0.1")],
        &["-m", "1", "-t", "t1", "-p", &ua_port.to_string()],
    );
    tcp_listening(ua_port);
    let out = sw.cmd("originate {originate_timeout=15}user/1000@127.0.0.1 &park()");
    assert!(out.starts_with("+OK "), "{out}\n{}", tail(&sw.log()));
    let uuid = out[4..].trim().to_string();
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    phone.success(&sw);
    // Nobody listens any more: the leg fails at once, with a cause.
    let started = Instant::now();
    let out = sw.cmd("originate {originate_timeout=30}user/1000@127.0.0.1 &park()");
    let took = started.elapsed();
    assert_eq!(
        out.trim(),
        "-ERR NORMAL_TEMPORARY_FAILURE",
        "{}",
        tail(&sw.log())
    );
    // Not the 15–30 s of a leg left ringing into NO_ANSWER.
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_second_switch_on_the_same_registration_store_fails_to_load_mod_sofia_and_says_why() {
    let dir = hotswitch_e2e::TempDir::new("sofia-two");
    let db = dir.path().join("db/sofia_reg.redb");
    let mut first = start_on(free_port(), "", "", "", Some(&db));
    assert!(first.cmd("sofia status").contains("internal"));
    let mut second = start_on(free_port(), "", "", "", Some(&db));
    let log = second.log();
    assert!(
        log.contains("mod_sofia failed to load")
            && log.contains("in use by another process")
            && log.contains("db_dir"),
        "{}",
        tail(&log)
    );
    assert_eq!(second.cmd("module_exists mod_sofia").trim(), "false");
}

const ACL_CONF: &str = r#"<configuration name="acl.conf"><network-lists>
  <list name="trusted" default="deny"><node type="allow" cidr="127.0.0.1/32"/></list>
</network-lists></configuration>"#;

const PUBLIC_PARK: &str = r#"<include><context name="public">
  <extension name="park"><condition field="destination_number" expression="^5900$">
    <action application="answer"/><action application="park"/></condition></extension>
</context></include>"#;

const EXTENSION_DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <params><param name="dial-string" value="{presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}"/></params>
  <variables><variable name="accountcode" value="domainwide"/></variables>
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params>
      <variables>
        <variable name="user_context" value="default"/>
        <variable name="effective_caller_id_name" value="Extension 1000"/>
        <variable name="effective_caller_id_number" value="1000"/>
        <variable name="accountcode" value="1000"/>
        <variable name="toll_allow" value="domestic,local"/>
      </variables></user>
  </users></group></groups>
</domain></include>"#;

#[test]
fn an_acl_trusts_its_addresses_and_a_phone_elsewhere_registers_and_calls_with_digest() {
    let port = free_port();
    let b_port = free_port();
    let ext = format!(
        r#"<extension name="bridge"><condition field="destination_number" expression="^2000$">
    <action application="bridge" data="sofia/internal/b@127.0.0.1:{b_port}"/></condition></extension>"#
    );
    // The profile routes into "public" (which has no extensions): only a
    // caller whose directory entry says user_context=default gets through.
    let settings = r#"<param name="auth-calls" value="true"/>
    <param name="apply-inbound-acl" value="trusted"/>
    <param name="challenge-realm" value="127.0.0.1"/>
    <param name="context" value="public"/>"#;
    let mut sw = start_with_files(
        port,
        settings,
        &ext,
        "",
        None,
        &[
            ("autoload_configs/acl.conf.xml", ACL_CONF),
            ("directory/default.xml", EXTENSION_DIRECTORY),
            ("dialplan/public.xml", PUBLIC_PARK),
        ],
    );
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .contains("+OK"));
    // 127.0.0.2 is not in "trusted": it registers with digest …
    let ua_port = free_port();
    sipp_on(
        "127.0.0.2",
        "register.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-m", "1", "-p", &ua_port.to_string()],
    )
    .success(&sw);
    // … calls with digest, and the callee sees the directory's caller id.
    let callee = sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "From: \"Extension 1000\" <sip:1000@")],
        &["-p", &b_port.to_string(), "-m", "1"],
    );
    sipp_listening(b_port);
    sipp_on(
        "127.0.0.2",
        "uac_auth.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-s", "2000", "-m", "1", "-d", "500"],
    )
    .success(&sw);
    callee.success(&sw);
    let a_leg = sw
        .wait_event(WAIT, |e| {
            e.name() == "CHANNEL_HANGUP_COMPLETE" && e.get("Call-Direction") == Some("inbound")
        })
        .expect("the caller's channel ended");
    for (var, want) in [
        ("variable_accountcode", "1000"),
        ("variable_toll_allow", "domestic,local"),
        ("variable_user_name", "1000"),
        ("variable_sip_authorized", "true"),
        ("Caller-Context", "default"),
    ] {
        assert_eq!(a_leg.get(var), Some(want), "{var}");
    }
    // 127.0.0.1 is trusted: no challenge (uac_call fails on a 407), and
    // the call routes in the profile's context.
    sipp(
        "uac_call.xml",
        Some(port),
        &[],
        &["-s", "5900", "-m", "1", "-d", "200"],
    )
    .success(&sw);
    let trusted = sw
        .wait_event(WAIT, |e| {
            e.name() == "CHANNEL_HANGUP_COMPLETE"
                && e.get("Caller-Destination-Number") == Some("5900")
        })
        .expect("the trusted call ended");
    assert_eq!(trusted.get("variable_sip_acl_authed_by"), Some("trusted"));
    assert_eq!(trusted.get("Caller-Context"), Some("public"));
    // And the phone at 127.0.0.2 is reached where it registered.
    let phone = sipp_on(
        "127.0.0.2",
        "uas_answer.xml",
        None,
        &[("want_header", "INVITE sip:1000@127.0.0.2")],
        &["-m", "1", "-p", &ua_port.to_string()],
    );
    sipp_listening(ua_port);
    let out = sw.cmd("originate {originate_timeout=10}user/1000@127.0.0.1 &park()");
    assert!(out.starts_with("+OK "), "{out}\n{}", tail(&sw.log()));
    let uuid = out[4..].trim().to_string();
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    phone.success(&sw);
}

/// A REGISTER for 1000 without credentials from `ip`: the status code.
fn bare_register(ip: &str, switch_port: u16) -> String {
    let phone = RawPhone::new(ip, switch_port);
    let me = phone.me();
    phone.send(&format!(
        "REGISTER sip:127.0.0.1:{switch_port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbare;rport\r\n\
From: <sip:1000@127.0.0.1>;tag=bare\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: bare-{me}\r\n\
CSeq: 1 REGISTER\r\nContact: <sip:1000@{me}>\r\nExpires: 60\r\nMax-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    ));
    let got = phone.collect(Duration::from_secs(2));
    got.iter()
        .find(|m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 100"))
        .and_then(|m| m.split_whitespace().nth(1))
        .unwrap_or("none")
        .to_string()
}

#[test]
fn apply_register_acl_registers_its_addresses_unchallenged_and_refuses_the_others() {
    let port = free_port();
    let sw = start_with_files(
        port,
        r#"<param name="apply-register-acl" value="trusted"/>"#,
        "",
        "",
        None,
        &[("autoload_configs/acl.conf.xml", ACL_CONF)],
    );
    assert_eq!(
        bare_register("127.0.0.1", port),
        "200",
        "{}",
        tail(&sw.log())
    );
    assert_eq!(bare_register("127.0.0.2", port), "403");
    assert!(sw
        .log()
        .contains("IP 127.0.0.2 Rejected by register acl \"trusted\""));
}

#[test]
fn show_registrations_lists_registered_phones_with_freeswitchs_columns() {
    let dir = hotswitch_e2e::TempDir::new("sofia-showreg");
    let db = dir.path().join("db/sofia_reg.redb");
    let port = free_port();
    let mut sw = start_on(port, "", "", "", Some(&db));
    let empty = sw.cmd("show registrations");
    assert!(empty.contains("\n0 total."), "{empty}");
    let ua_port = free_port();
    sipp(
        "register.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-m", "1", "-p", &ua_port.to_string()],
    )
    .success(&sw);
    let check = |sw: &mut hotswitch_e2e::Switch| {
        let out = sw.cmd("show registrations");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata"
        );
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(row[0..2], ["1000", "127.0.0.1"], "{out}");
        assert_eq!(
            row[3],
            format!("sofia/internal/sip:1000@127.0.0.1:{ua_port}")
        );
        assert!(row[4].parse::<u64>().is_ok(), "expires: {}", row[4]);
        assert_eq!(row[5..8], ["127.0.0.1", &ua_port.to_string(), "udp"]);
        assert!(out.ends_with("\n1 total.\n"), "{out}");
        assert_eq!(sw.cmd("show registrations count"), "\n1 total.\n");
    };
    check(&mut sw);
    // Kept across a restart, as the registration itself.
    sw.shutdown();
    let mut sw = start_on(port, "", "", "", Some(&db));
    check(&mut sw);
    // Gone with the module that serves it.
    assert!(sw.cmd("unload mod_sofia").contains("+OK"));
    assert_eq!(sw.cmd("show registrations count"), "\n0 total.\n");
}

#[test]
fn a_domains_acl_trusts_a_users_cidr_as_that_user() {
    let port = free_port();
    let acl = r#"<configuration name="acl.conf"><network-lists>
  <list name="domains" default="deny"><node type="allow" domain="127.0.0.1"/></list>
</network-lists></configuration>"#;
    let directory = EXTENSION_DIRECTORY.replace(
        r#"<user id="1000">"#,
        r#"<user id="1000" cidr="127.0.0.3/32">"#,
    );
    let settings = r#"<param name="auth-calls" value="true"/>
    <param name="apply-inbound-acl" value="domains"/>
    <param name="challenge-realm" value="127.0.0.1"/>
    <param name="context" value="public"/>"#;
    let mut sw = start_with_files(
        port,
        settings,
        "",
        "",
        None,
        &[
            ("autoload_configs/acl.conf.xml", acl),
            ("directory/default.xml", &directory),
        ],
    );
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .contains("+OK"));
    // From the user's cidr: no challenge, and the call is the user's
    // (its user_context routes it into "default", where 5900 parks).
    sipp_on(
        "127.0.0.3",
        "uac_call.xml",
        Some(port),
        &[],
        &["-s", "5900", "-m", "1", "-d", "200"],
    )
    .success(&sw);
    let e = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
        .expect("the call ended");
    for (var, want) in [
        ("variable_sip_acl_authed_by", "domains"),
        ("variable_acl_token", "1000@127.0.0.1"),
        ("variable_accountcode", "1000"),
        ("Caller-Context", "default"),
    ] {
        assert_eq!(e.get(var), Some(want), "{var}");
    }
    // Anywhere else: challenged, and the digest lets the user in.
    let challenged = sipp_on(
        "127.0.0.4",
        "uac_auth.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-s", "5900", "-m", "1", "-d", "200"],
    );
    challenged.success(&sw);
}

#[test]
fn responses_go_to_the_source_port_with_rport_and_to_the_via_port_without() {
    let s = start("", "", "");
    let sender = RawPhone::new("127.0.0.1", s.port);
    let listener = RawPhone::new("127.0.0.1", s.port);
    let via_port = listener.me().port();
    for (rport, n) in [("", 1), (";rport", 2)] {
        sender.send(&format!(
            "OPTIONS sip:127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKvia{n}{rport}\r\n\
From: <sip:a@127.0.0.1>;tag=v\r\nTo: <sip:127.0.0.1>\r\nCall-ID: via-{n}-{via_port}\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            p = s.port
        ));
        if rport.is_empty() {
            // No rport: the sent-by port; the Via untouched (same host).
            let r = listener.wait_response(200, "OPTIONS");
            assert_eq!(
                header(&r, "Via").unwrap(),
                format!("SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKvia1")
            );
        } else {
            // rport: back where it came from, both filled in.
            let r = sender.wait_response(200, "OPTIONS");
            let via = header(&r, "Via").unwrap();
            assert!(
                via.contains(&format!("rport={}", sender.me().port()))
                    && via.contains("received=127.0.0.1"),
                "{via}"
            );
        }
    }
    assert!(
        listener.collect(Duration::from_millis(300)).is_empty()
            && sender.collect(Duration::from_millis(1)).is_empty(),
        "each response went to one place only"
    );
}

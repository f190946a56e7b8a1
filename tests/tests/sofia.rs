//! mod_sofia against real SIP peers: sipp (the scenarios in tests/sipp/)
//! for signalling, and RTP sent and checked by the test itself where the
//! audio matters.

mod sofia_common;

use hotswitch_e2e::free_port;
use sofia_common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[test]
fn an_inbound_call_to_echo_sends_back_the_audio_it_receives() {
    let mut s = start("", "", "");
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    media
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rtp_port = media.local_addr().unwrap().port().to_string();
    let call = sipp(
        "uac_call.xml",
        Some(s.port),
        &[("rtp_port", &rtp_port)],
        &["-s", "9196", "-m", "1", "-d", "4000"],
    );
    let uuid = only_channel(&mut s.sw);
    assert!(!getvar(&mut s.sw, &uuid, "sip_call_id").is_empty());
    assert_eq!(getvar(&mut s.sw, &uuid, "sip_from_user"), "sipp");
    assert_eq!(getvar(&mut s.sw, &uuid, "sip_profile_name"), "internal");
    let port: u16 = getvar(&mut s.sw, &uuid, "rtp_local_sdp_port")
        .parse()
        .expect("the leg's RTP port");
    let to = format!("127.0.0.1:{port}");
    let sent: Vec<Vec<u8>> = (0..60).map(tone_frame).collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let start = Instant::now();
    for (i, payload) in sent.iter().enumerate() {
        media
            .send_to(&rtp(0, i == 0, i as u16, (i * 160) as u32, payload), &to)
            .unwrap();
        // Pace at 20 ms and collect whatever came back meanwhile.
        let next = start + Duration::from_millis(20 * (i as u64 + 1));
        let mut buf = [0u8; 1500];
        media
            .set_read_timeout(Some(
                next.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        while let Ok((n, _)) = media.recv_from(&mut buf) {
            assert_eq!(buf[0] >> 6, 2, "RTP version");
            assert_eq!(buf[1] & 0x7f, 0, "PCMU comes back as PCMU");
            got.push(buf[12..n].to_vec());
            if Instant::now() >= next {
                break;
            }
        }
    }
    media
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = media.recv_from(&mut buf) {
        got.push(buf[12..n].to_vec());
    }
    let echoed = sent.iter().filter(|p| got.contains(p)).count();
    assert!(
        echoed >= 55,
        "only {echoed} of 60 frames came back unchanged ({} packets received)",
        got.len()
    );
    call.success(&s.sw);
}

#[test]
fn originate_reaches_a_sipp_uas_and_sip_h_variables_become_headers() {
    let mut s = start("", "", "");
    let uas_port = free_port();
    let uas = sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "X-app: 42")],
        &["-p", &uas_port.to_string(), "-m", "1"],
    );
    sipp_listening(uas_port);
    let out = s.sw.cmd(&format!(
        "originate {{sip_h_X-app=42}}sofia/internal/uas@127.0.0.1:{uas_port} &park()"
    ));
    assert!(out.starts_with("+OK "), "{out}\n{}", tail(&s.sw.log()));
    let uuid = out[4..].trim().to_string();
    assert_eq!(getvar(&mut s.sw, &uuid, "sip_profile_name"), "internal");
    assert!(s.sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    uas.success(&s.sw);
}

#[test]
fn a_bridged_call_ends_when_either_side_sends_bye() {
    let b_port = free_port();
    let ext = format!(
        r#"<extension name="bridge"><condition field="destination_number" expression="^2000$">
    <action application="bridge" data="sofia/internal/b@127.0.0.1:{b_port}"/></condition></extension>"#
    );
    let mut s = start("", &ext, "");
    assert!(s
        .sw
        .cmd("/event plain CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE")
        .contains("+OK"));
    // A hangs up.
    let b = sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "INVITE")],
        &["-p", &b_port.to_string(), "-m", "1"],
    );
    sipp_listening(b_port);
    let a = sipp(
        "uac_call.xml",
        Some(s.port),
        &[],
        &["-s", "2000", "-m", "1", "-d", "1500"],
    );
    assert!(
        s.sw.wait_event(WAIT, |e| e.name() == "CHANNEL_BRIDGE")
            .is_some(),
        "the legs were not bridged\n{}",
        tail(&s.sw.log())
    );
    a.success(&s.sw);
    b.success(&s.sw);
    // B hangs up.
    let b = sipp(
        "uas_hangup.xml",
        None,
        &[],
        &["-p", &b_port.to_string(), "-m", "1", "-d", "1500"],
    );
    sipp_listening(b_port);
    let a = sipp(
        "uac_wait_bye.xml",
        Some(s.port),
        &[],
        &["-s", "2000", "-m", "1"],
    );
    b.success(&s.sw);
    a.success(&s.sw);
    let ended: Vec<_> =
        s.sw.drain_events(Duration::from_millis(500))
            .into_iter()
            .filter(|e| e.name() == "CHANNEL_HANGUP_COMPLETE")
            .collect();
    assert!(ended.len() >= 2, "{ended:?}");
}

#[test]
fn register_checks_the_digest_and_user_dialing_reaches_the_contact() {
    let dir = hotswitch_e2e::TempDir::new("sofia-reg");
    let db = dir.path().join("db/sofia_reg.redb");
    let port = free_port();
    let mut sw = start_on(port, "", "", "", Some(&db));
    let wrong = sipp(
        "register_refused.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "4321")],
        &["-m", "1"],
    );
    wrong.success(&sw);
    assert!(
        sw.cmd("sofia status profile internal reg")
            .contains("Total items returned: 0"),
        "a wrong password registered"
    );
    // Registered, then called as user/1000: the phone registers from a
    // port and then answers there.
    let ua_port = free_port();
    sipp(
        "register.xml",
        Some(port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-m", "1", "-p", &ua_port.to_string()],
    )
    .success(&sw);
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(reg.contains("User:       \t1000@127.0.0.1"), "{reg}");
    let contact = sw.cmd("sofia_contact 1000@127.0.0.1");
    assert!(
        contact.contains(&format!("sofia/internal/sip:1000@127.0.0.1:{ua_port}")),
        "{contact}"
    );
    let phone = sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "INVITE sip:1000@127.0.0.1")],
        &["-m", "1", "-p", &ua_port.to_string()],
    );
    sipp_listening(ua_port);
    let out = sw.cmd("originate {originate_timeout=10}user/1000@127.0.0.1 &park()");
    assert!(out.starts_with("+OK "), "{out}\n{}", tail(&sw.log()));
    let uuid = out[4..].trim().to_string();
    assert_eq!(getvar(&mut sw, &uuid, "dialed_user"), "1000");
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    phone.success(&sw);
    // The registration outlives a restart of the switch.
    sw.shutdown();
    let mut sw = start_on(port, "", "", "", Some(&db));
    assert!(
        sw.cmd("sofia status profile internal reg")
            .contains("User:       \t1000@127.0.0.1"),
        "the registration was lost on restart"
    );
}

#[test]
fn auth_calls_challenges_invites_and_refuses_a_wrong_password() {
    let s = start(r#"<param name="auth-calls" value="true"/>"#, "", "");
    let good = sipp(
        "uac_auth.xml",
        Some(s.port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-s", "5900", "-m", "1", "-d", "200"],
    );
    good.success(&s.sw);
    let bad = sipp(
        "uac_auth_refused.xml",
        Some(s.port),
        &[("auth_user", "1000"), ("auth_password", "nope")],
        &["-s", "5900", "-m", "1"],
    );
    bad.success(&s.sw);
}

#[test]
fn a_call_cancelled_before_answer_gets_487_and_ends_originator_cancel() {
    let mut s = start_with_events("CHANNEL_HANGUP_COMPLETE");
    sipp(
        "uac_cancel.xml",
        Some(s.port),
        &[],
        &["-s", "3000", "-m", "1"],
    )
    .success(&s.sw);
    let e =
        s.sw.wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
            .expect("the cancelled channel ended");
    assert_eq!(e.get("Hangup-Cause"), Some("ORIGINATOR_CANCEL"));
}

#[test]
fn a_reinvite_puts_the_call_on_hold_and_takes_it_off() {
    let mut s = start_with_events("CHANNEL_HOLD CHANNEL_UNHOLD");
    let call = sipp(
        "uac_hold.xml",
        Some(s.port),
        &[],
        &["-s", "5900", "-m", "1"],
    );
    assert!(s
        .sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HOLD")
        .is_some());
    assert!(s
        .sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_UNHOLD")
        .is_some());
    call.success(&s.sw);
}

#[test]
fn rfc4733_digits_are_collected_by_play_and_get_digits() {
    let mut s = start("", "", "");
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = media.local_addr().unwrap().port().to_string();
    let call = sipp(
        "uac_call.xml",
        Some(s.port),
        &[("rtp_port", &rtp_port)],
        &["-s", "4000", "-m", "1", "-d", "5000"],
    );
    let uuid = only_channel(&mut s.sw);
    let port: u16 = getvar(&mut s.sw, &uuid, "rtp_local_sdp_port")
        .parse()
        .expect("the leg's RTP port");
    std::thread::sleep(Duration::from_millis(500));
    let to = format!("127.0.0.1:{port}");
    let mut seq = 100u16;
    for (i, digit) in [4u8, 2, 7].into_iter().enumerate() {
        let ts = 8000 * (i as u32 + 1);
        for (k, end) in [false, false, true, true, true].into_iter().enumerate() {
            let dur = 160 * (k as u16 + 1);
            let ev = [
                digit,
                if end { 0x8a } else { 0x0a },
                (dur >> 8) as u8,
                dur as u8,
            ];
            media.send_to(&rtp(101, k == 0, seq, ts, &ev), &to).unwrap();
            seq += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(wait_var(&mut s.sw, &uuid, "got_digits", "427"), "427");
    call.success(&s.sw);
}

#[test]
fn unload_is_refused_with_calls_up_and_reload_serves_the_same_port() {
    let mut s = start("", "", "");
    let call = sipp(
        "uac_call.xml",
        Some(s.port),
        &[],
        &["-s", "5900", "-m", "1", "-d", "2000"],
    );
    only_channel(&mut s.sw);
    let out = s.sw.cmd("unload mod_sofia");
    assert!(out.contains("-ERR [Module in use.]"), "{out}");
    call.success(&s.sw);
    let deadline = Instant::now() + WAIT;
    while !s.sw.cmd("show channels count").contains("0 total") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s.sw.cmd("unload mod_sofia");
    assert!(out.contains("+OK"), "{out}\n{}", tail(&s.sw.log()));
    assert!(
        !s.sw
            .mapped_shadows()
            .iter()
            .any(|p| p.contains("mod_sofia")),
        "mod_sofia is still mapped"
    );
    // Every socket is released: the ports bind again at once.
    UdpSocket::bind(("127.0.0.1", s.port)).expect("the UDP port is free after unload");
    std::net::TcpListener::bind(("127.0.0.1", s.port)).expect("the TCP port is free after unload");
    // Back on the same port after load, and after reload.
    for command in ["load mod_sofia", "reload mod_sofia"] {
        let out = s.sw.cmd(command);
        assert!(out.contains("+OK"), "{command}: {out}");
        sipp(
            "uac_call.xml",
            Some(s.port),
            &[],
            &["-s", "5900", "-m", "2", "-d", "100"],
        )
        .success(&s.sw);
    }
}

#[test]
fn malformed_messages_get_400_and_garbage_does_not_stop_calls() {
    let mut s = start("", "", "");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = peer.local_addr().unwrap();
    let bad = format!(
        "INVITE sip:9196@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbad1\r\n\
From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:9196@127.0.0.1>\r\nCall-ID: bad-1\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: seventy\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send_to(bad.as_bytes(), ("127.0.0.1", s.port)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = peer
        .recv_from(&mut buf)
        .expect("a reply to the malformed INVITE");
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 400 "), "{reply}");
    assert!(reply.contains("Call-ID: bad-1"), "{reply}");
    // A flood of garbage while calls go on.
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut junk = Vec::with_capacity(300);
                for _ in 0..(x % 300 + 1) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    junk.push(x as u8);
                }
                if sent.is_multiple_of(3) {
                    junk.splice(0..0, b"INVITE sip:x SIP/2.0\r\nVia: ".iter().copied());
                }
                let _ = sock.send_to(&junk, ("127.0.0.1", port));
                sent += 1;
                if sent.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            sent
        })
    };
    sipp(
        "uac_call.xml",
        Some(s.port),
        &[],
        &["-s", "5900", "-m", "20", "-r", "10", "-d", "200"],
    )
    .success(&s.sw);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert!(sent > 1000, "the flood sent only {sent} datagrams");
    assert!(s.sw.alive());
    assert!(s.sw.log().contains("malformed SIP"));
}

#[test]
fn a_gateway_registers_through_a_challenge_and_carries_calls() {
    let gw_port = free_port();
    let registrar = sipp(
        "uas_challenge.xml",
        None,
        &[("auth_user", "gwuser")],
        &["-p", &gw_port.to_string(), "-m", "1"],
    );
    sipp_listening(gw_port);
    let gateways = format!(
        r#"<gateways><gateway name="carrier">
  <param name="username" value="gwuser"/><param name="password" value="gwpass"/>
  <param name="proxy" value="127.0.0.1:{gw_port}"/><param name="realm" value="carrier"/>
  <param name="expire-seconds" value="300"/>
</gateway></gateways>"#
    );
    let mut s = start("", "", &gateways);
    registrar.success(&s.sw);
    let deadline = Instant::now() + WAIT;
    while !s.sw.cmd("sofia status gateway").contains("REGED") {
        assert!(
            Instant::now() < deadline,
            "{}",
            s.sw.cmd("sofia status gateway")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let carrier = sipp(
        "uas_challenge_invite.xml",
        None,
        &[("auth_user", "gwuser")],
        &["-p", &gw_port.to_string(), "-m", "1"],
    );
    sipp_listening(gw_port);
    let out = s.sw.cmd("originate sofia/gateway/carrier/5551234 &park()");
    assert!(out.starts_with("+OK "), "{out}\n{}", tail(&s.sw.log()));
    assert!(s
        .sw
        .cmd(&format!("uuid_kill {}", out[4..].trim()))
        .starts_with("+OK"));
    carrier.success(&s.sw);
}

#[test]
fn sofia_status_and_siptrace_answer_at_the_console() {
    let mut s = start("", "", "");
    let st = s.sw.cmd("sofia status");
    assert!(st.contains("internal") && st.contains("RUNNING"), "{st}");
    assert!(s
        .sw
        .cmd("sofia status profile internal")
        .contains(&format!(":{}", s.port)));
    assert!(s.sw.cmd("sofia global siptrace on").contains("+OK"));
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = peer.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt1\r\n\
From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send_to(options.as_bytes(), ("127.0.0.1", s.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = peer.recv_from(&mut buf).expect("OPTIONS answered");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        s.sw.log().contains("Call-ID: opt-1"),
        "siptrace logged nothing"
    );
    assert!(s.sw.cmd("sofia profile internal stop").contains("stopping"));
    assert!(s.sw.cmd("sofia status").contains("DOWN"));
    assert!(s
        .sw
        .cmd("sofia profile internal start")
        .contains("starting"));
    assert!(s.sw.cmd("sofia status").contains("RUNNING"));
}

#[test]
fn a_call_over_tcp_is_served_on_the_same_port() {
    let s = start("", "", "");
    sipp(
        "uac_call.xml",
        Some(s.port),
        &[],
        &["-t", "t1", "-s", "5900", "-m", "2", "-d", "300"],
    )
    .success(&s.sw);
}

#[test]
fn a_digit_sent_by_sip_info_is_collected() {
    let ext = r#"<extension name="one-digit"><condition field="destination_number" expression="^4001$">
    <action application="answer"/>
    <action application="play_and_get_digits" data="1 1 1 8000 # silence_stream://200 silence_stream://200 info_digit \d"/>
    <action application="park"/></condition></extension>"#;
    let mut s = start("", ext, "");
    let call = sipp(
        "uac_info_dtmf.xml",
        Some(s.port),
        &[],
        &["-s", "4001", "-m", "1", "-d", "1500"],
    );
    let uuid = only_channel(&mut s.sw);
    assert_eq!(wait_var(&mut s.sw, &uuid, "info_digit", "7"), "7");
    call.success(&s.sw);
}

#[test]
fn rescan_takes_gateways_added_to_the_configuration() {
    let mut s = start("", "", "");
    assert!(!s.sw.cmd("sofia status gateway").contains("carrier2"));
    let path = s.sw.dir.path().join("conf/autoload_configs/sofia.conf.xml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"<profile name="internal">"#,
        r#"<profile name="internal"><gateways><gateway name="carrier2">
  <param name="proxy" value="127.0.0.1:9"/><param name="register" value="false"/>
</gateway></gateways>"#,
    );
    std::fs::write(&path, text).unwrap();
    assert!(s.sw.cmd("reloadxml").contains("+OK"));
    let out = s.sw.cmd("sofia profile internal rescan");
    assert!(out.contains("1 gateways added, 0 removed"), "{out}");
    let st = s.sw.cmd("sofia status gateway");
    assert!(
        st.contains("internal::carrier2") && st.contains("NOREG"),
        "{st}"
    );
}

#[test]
fn restart_reads_the_profiles_settings_again_and_binds_where_they_now_say() {
    let mut s = start("", "", "");
    let old = s.port;
    let new = free_port();
    let path = s.sw.dir.path().join("conf/autoload_configs/sofia.conf.xml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!(r#"value="{old}""#), &format!(r#"value="{new}""#))
        .replace(
            r#"<param name="context" value="default"/>"#,
            r#"<param name="context" value="moved"/>"#,
        );
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        s.sw.dir.path().join("conf/dialplan/moved.xml"),
        r#"<include><context name="moved">
  <extension name="echo"><condition field="destination_number" expression="^7196$">
    <action application="answer"/><action application="echo"/></condition></extension>
</context></include>"#,
    )
    .unwrap();
    assert!(s.sw.cmd("reloadxml").contains("+OK"));
    // Nothing changes until the restart.
    assert!(s
        .sw
        .cmd("sofia status profile internal")
        .contains(&format!(":{old}")));
    let out = s.sw.cmd("sofia profile internal restart");
    assert!(out.contains("restarting: internal"), "{out}");
    let st = s.sw.cmd("sofia status profile internal");
    assert!(
        st.contains(&format!("sip:mod_sofia@127.0.0.1:{new}")),
        "{st}"
    );
    assert!(st.contains("moved"), "{st}");
    // The old port is free again and calls come in on the new one.
    hotswitch_e2e::wait_until(&mut s.sw, "the old port is released", |_| {
        std::net::UdpSocket::bind(("127.0.0.1", old)).is_ok()
    });
    s.port = new;
    let call = sipp(
        "uac_call.xml",
        Some(new),
        &[],
        &["-s", "7196", "-m", "1", "-d", "200"],
    );
    call.success(&s.sw);
    // A profile taken out of sofia.conf cannot be restarted.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"<profile name="internal">"#,
        r#"<profile name="renamed">"#,
    );
    std::fs::write(&path, text).unwrap();
    assert!(s.sw.cmd("reloadxml").contains("+OK"));
    let out = s.sw.cmd("sofia profile internal restart");
    assert!(out.contains("no longer in sofia.conf"), "{out}");
}

#[test]
fn pre_answer_sends_183_with_sdp_before_the_200() {
    let ext = r#"<extension name="early"><condition field="destination_number" expression="^6000$">
    <action application="pre_answer"/><action application="sleep" data="500"/>
    <action application="answer"/><action application="sleep" data="500"/>
    <action application="hangup"/></condition></extension>"#;
    let s = start("", ext, "");
    sipp(
        "uac_early.xml",
        Some(s.port),
        &[],
        &["-s", "6000", "-m", "1"],
    )
    .success(&s.sw);
}

#[test]
fn a_message_to_a_registered_user_is_relayed_through_the_chat_interface() {
    let s = start("", "", "");
    let ua_port = free_port();
    sipp(
        "register.xml",
        Some(s.port),
        &[("auth_user", "1000"), ("auth_password", "1234")],
        &["-m", "1", "-p", &ua_port.to_string()],
    )
    .success(&s.sw);
    let phone = sipp(
        "uas_message.xml",
        None,
        &[("want_body", "hello from sipp")],
        &["-m", "1", "-p", &ua_port.to_string()],
    );
    sipp_listening(ua_port);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = peer.local_addr().unwrap();
    let body = "hello from sipp";
    let message = format!(
        "MESSAGE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKmsg1\r\n\
From: <sip:2000@127.0.0.1>;tag=m1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: msg-1\r\n\
CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    peer.send_to(message.as_bytes(), ("127.0.0.1", s.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = peer.recv_from(&mut buf).expect("the MESSAGE is answered");
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 202 "), "{reply}");
    phone.success(&s.sw);
}

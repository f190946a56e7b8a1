//! Two real phones through the switch, the first test every FreeSWITCH
//! operator makes: baresip softphones registered as 1000 and 1001 on the
//! default configuration. The caller hears ringback before the answer, both
//! hear each other, digits cross the bridge, a held party hears the hold
//! music, and a caller who gives up stops the callee ringing at once.

mod phones_common;

use phones_common::{pump_for, share_with, DefaultConf, Phone, Transport};
use std::time::{Duration, Instant};

const A_TONE: f64 = 697.0;
const B_TONE: f64 = 1209.0;

fn registered_pair(conf: &DefaultConf, sw: &mut hotswitch_e2e::Switch) -> (Phone, Phone) {
    let registrar = format!("127.0.0.1:{}", conf.sip_port);
    let mut a = Phone::start("1000", &registrar, Transport::Udp, A_TONE);
    let mut b = Phone::start("1001", &registrar, Transport::Udp, B_TONE);
    a.wait_registered(sw, "127.0.0.1");
    b.wait_registered(sw, "127.0.0.1");
    (a, b)
}

/// `a` dials 1001 on the switch; returns when 1001 rings.
fn dial_1001(conf: &DefaultConf, a: &mut Phone, b: &mut Phone) -> Instant {
    let t0 = Instant::now();
    a.cmd("dial", &format!("sip:1001@127.0.0.1:{}", conf.sip_port));
    b.wait_event("CALL_INCOMING", t0, &mut [a]);
    t0
}

#[test]
fn two_phones_ring_talk_pass_digits_and_hold_with_music() {
    let conf = DefaultConf::new("phones-call");
    let mut sw = conf.start();
    let (mut a, mut b) = registered_pair(&conf, &mut sw);
    sw.cmd("/event plain CHANNEL_CALLSTATE CHANNEL_HOLD CHANNEL_UNHOLD");

    let t0 = dial_1001(&conf, &mut a, &mut b);
    // The default dialplan sets ringback=$${us-ring}: the caller is told
    // of progress (183 with SDP) and hears 440 + 480 Hz while 1001 rings.
    let progress = a.wait_event("CALL_PROGRESS", t0, &mut [&mut b]);
    pump_for(&mut [&mut a, &mut b], Duration::from_millis(1500));
    assert!(
        a.seen("CALL_ESTABLISHED", t0).is_none(),
        "the caller was connected before the callee answered"
    );
    let answer_at = Instant::now();
    b.cmd("accept", "");
    let established = a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    assert!(progress.at < established.at);
    b.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut a]);

    // Talk for a while, then send digits.
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(2));
    let digits_at = Instant::now();
    a.cmd("sndcode", "159");
    let mut got = String::new();
    let deadline = Instant::now() + phones_common::WAIT;
    while got.len() < 3 && Instant::now() < deadline {
        pump_for(&mut [&mut a, &mut b], Duration::from_millis(50));
        got = b
            .events
            .iter()
            .filter(|e| e.kind == "CALL_DTMF_START" && e.at >= digits_at)
            .map(|e| e.param.clone())
            .collect();
    }
    assert_eq!(got, "159", "1001 reported these digits from 1000");

    // Hold: 1001 hears the hold music (the default's C-E-G arpeggio).
    let hold_at = Instant::now();
    a.cmd("hold", "");
    let held = sw
        .wait_event(Duration::from_secs(20), |e| {
            e.name() == "CHANNEL_CALLSTATE" && e.get("Channel-Call-State") == Some("HELD")
        })
        .expect("the holding leg's call state became HELD");
    assert!(
        held.get("Caller-Caller-ID-Number") == Some("1000"),
        "{held:?}"
    );
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(3));
    a.cmd("resume", "");
    sw.wait_event(Duration::from_secs(20), |e| e.name() == "CHANNEL_UNHOLD")
        .expect("CHANNEL_UNHOLD after resume");
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(2));
    let hold_secs = hold_at.elapsed().as_secs_f64();
    a.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", hold_at, &mut [&mut a]);

    // What the caller heard: ringback first, then 1001's tone.
    let heard_a = a.heard();
    let ring_part = &heard_a[..8000.min(heard_a.len())];
    assert!(
        share_with(ring_part, 440.0) > 0.5 && share_with(ring_part, 480.0) > 0.5,
        "the caller's first second is not the US ring (440 + 480 Hz)"
    );
    assert!(
        share_with(&heard_a, B_TONE) > 0.3,
        "the caller heard 1001's tone in {:.0} % of the call",
        100.0 * share_with(&heard_a, B_TONE)
    );
    // What the callee heard: the caller's tone, and the music while held.
    let heard_b = b.heard();
    assert!(
        share_with(&heard_b, A_TONE) > 0.4,
        "1001 heard 1000's tone in {:.0} % of the call",
        100.0 * share_with(&heard_b, A_TONE)
    );
    let music: f64 = [523.0, 659.0, 784.0]
        .iter()
        .map(|f| share_with(&heard_b, *f))
        .sum();
    let total_secs = heard_b.len() as f64 / 8000.0;
    assert!(
        music * total_secs > 1.5 && music * total_secs < hold_secs + 1.0,
        "1001 heard hold music for {:.1} s of {total_secs:.1} s (hold lasted about 3 s)",
        music * total_secs
    );
}

#[test]
fn a_caller_who_hangs_up_stops_the_callee_ringing_at_once() {
    let conf = DefaultConf::new("phones-cancel");
    let mut sw = conf.start();
    let (mut a, mut b) = registered_pair(&conf, &mut sw);
    sw.cmd("/event plain CHANNEL_HANGUP");
    let t0 = dial_1001(&conf, &mut a, &mut b);
    a.wait_event("CALL_PROGRESS", t0, &mut [&mut b]);
    pump_for(&mut [&mut a, &mut b], Duration::from_millis(500));
    let hangup_at = Instant::now();
    a.cmd("hangup", "");
    let closed = b.wait_event("CALL_CLOSED", hangup_at, &mut [&mut a]);
    let took = closed.at.duration_since(hangup_at);
    assert!(took < Duration::from_secs(1), "1001 rang on for {took:?}");
    let b_leg = sw
        .wait_event(Duration::from_secs(10), |e| {
            e.name() == "CHANNEL_HANGUP" && e.get("Call-Direction") == Some("outbound")
        })
        .expect("the B leg hung up");
    assert_eq!(b_leg.get("Hangup-Cause"), Some("ORIGINATOR_CANCEL"));
}

#[test]
fn without_ringback_the_caller_gets_180_before_200() {
    let conf = DefaultConf::new("phones-180");
    conf.edit("dialplan/default.xml", |t| {
        t.replace(
            r#"<action application="set" data="ringback=$${us-ring}"/>"#,
            "",
        )
    });
    let mut sw = conf.start();
    let (mut a, mut b) = registered_pair(&conf, &mut sw);
    let t0 = dial_1001(&conf, &mut a, &mut b);
    let ringing = a.wait_event("CALL_RINGING", t0, &mut [&mut b]);
    assert!(a.seen("CALL_ESTABLISHED", t0).is_none());
    let answer_at = Instant::now();
    b.cmd("accept", "");
    let established = a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    assert!(ringing.at < established.at);
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(2));
    a.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", answer_at, &mut [&mut a]);
    assert!(share_with(&a.heard(), B_TONE) > 0.5);
}

#[test]
fn a_phone_registered_over_tcp_is_called_after_a_switch_restart() {
    let conf = DefaultConf::new("phones-tcp");
    let registrar = format!("127.0.0.1:{}", conf.sip_port);
    let mut sw = conf.start();
    let mut b = Phone::start("1001", &registrar, Transport::Tcp, B_TONE);
    b.wait_registered(&mut sw, "127.0.0.1");
    let reg = sw.cmd("show registrations");
    assert!(
        reg.contains("1001") && reg.to_ascii_lowercase().contains("tcp"),
        "{reg}"
    );
    // Restart: the phone's TCP connection is gone, its registration is not.
    sw.shutdown();
    let mut sw = conf.start();
    let mut a = Phone::start("1000", &registrar, Transport::Udp, A_TONE);
    a.wait_registered(&mut sw, "127.0.0.1");
    dial_1001(&conf, &mut a, &mut b);
    let answer_at = Instant::now();
    b.cmd("accept", "");
    a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(2));
    a.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", answer_at, &mut [&mut a]);
    assert!(
        share_with(&a.heard(), B_TONE) > 0.3,
        "1000 heard 1001 over the new connection"
    );
    assert!(share_with(&b.heard(), A_TONE) > 0.3, "1001 heard 1000");
}

#[test]
fn a_phone_on_another_address_registers_with_digest_and_is_called() {
    // 127.0.0.2 stands for a phone on another machine: the default internal
    // profile trusts no address list, so it must authenticate.
    let conf = DefaultConf::new("phones-elsewhere");
    let registrar = format!("127.0.0.1:{}", conf.sip_port);
    let mut sw = conf.start();
    let mut a = Phone::start("1000", &registrar, Transport::Udp, A_TONE);
    let mut b = Phone::start_at(
        "127.0.0.2",
        "1001",
        &registrar,
        Transport::Udp,
        B_TONE,
        None,
    );
    a.wait_registered(&mut sw, "127.0.0.1");
    b.wait_registered(&mut sw, "127.0.0.1");
    assert!(
        sw.cmd("sofia_contact 1001@127.0.0.1").contains("127.0.0.2"),
        "1001's contact is its own address"
    );
    dial_1001(&conf, &mut a, &mut b);
    let answer_at = Instant::now();
    b.cmd("accept", "");
    a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(2));
    b.cmd("hangup", "");
    a.wait_event("CALL_CLOSED", answer_at, &mut [&mut b]);
    assert!(share_with(&a.heard(), B_TONE) > 0.3);
    assert!(share_with(&b.heard(), A_TONE) > 0.3);
    // And 1001 calls out from there: challenged, it authenticates.
    let t1 = Instant::now();
    b.cmd("dial", &format!("sip:9196@127.0.0.1:{}", conf.sip_port));
    b.wait_event("CALL_ESTABLISHED", t1, &mut [&mut a]);
    b.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", t1, &mut [&mut a]);
}

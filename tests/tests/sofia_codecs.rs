//! Wideband codecs with real phones: baresip with only its G.722 module,
//! then only its Opus module, calls 9196 on the default configuration
//! (codec-prefs OPUS,G722,PCMU,PCMA, FreeSWITCH's) and hears its tone back
//! (Goertzel) through a call negotiated to that codec; and an Opus phone
//! calls a G.711 phone: the switch transcodes, both hear each other and
//! their digits cross. And `show codec` lists Opus and G.722.

mod phones_common;

use phones_common::{pump_for, share_with, DefaultConf, Phone, PhoneSetup, Transport};
use std::time::{Duration, Instant};

const A_TONE: f64 = 697.0;
const B_TONE: f64 = 1209.0;

fn phone(conf: &DefaultConf, user: &str, codec: &str, freq: f64) -> Phone {
    let audio = match codec {
        "opus.so" => (48000, 2),
        "g722.so" => (16000, 1),
        _ => (8000, 1),
    };
    let setup = PhoneSetup {
        codecs: vec![codec.to_string()],
        audio,
        ..PhoneSetup::new(Transport::Udp, freq)
    };
    Phone::start_with(user, &format!("127.0.0.1:{}", conf.sip_port), &setup)
}

fn echo_in(codec_module: &str, codec_name: &str) {
    let conf = DefaultConf::new(&format!("codec-{codec_name}"));
    let mut sw = conf.start();
    let mut a = phone(&conf, "1000", codec_module, A_TONE);
    a.wait_registered(&mut sw, "127.0.0.1");
    let t0 = Instant::now();
    a.cmd("dial", &format!("sip:9196@127.0.0.1:{}", conf.sip_port));
    a.wait_event("CALL_ESTABLISHED", t0, &mut []);
    let channels = sw.cmd("show channels");
    pump_for(&mut [&mut a], Duration::from_secs(3));
    a.cmd("hangup", "");
    a.wait_event("CALL_CLOSED", t0, &mut []);
    // read_codec and read_rate as FreeSWITCH shows them.
    let rate = if codec_name == "opus" { 48000 } else { 16000 };
    assert!(
        channels.contains(&format!(",{codec_name},{rate},")),
        "the call was in {codec_name} at {rate} Hz: {channels}"
    );
    let heard = a.heard();
    let share = share_with(&heard, A_TONE);
    assert!(
        share > 0.3,
        "{codec_name}: the phone heard its tone back in {:.0}% of blocks",
        share * 100.0
    );
}

#[test]
fn a_call_negotiated_to_g722_carries_the_tone_end_to_end() {
    echo_in("g722.so", "G722");
}

#[test]
fn a_call_negotiated_to_opus_carries_the_tone_end_to_end() {
    echo_in("opus.so", "opus");
}

/// `from` sends `digits` (RFC 4733); `to` reports each as it starts.
fn digits_cross(from: &mut Phone, to: &mut Phone, digits: &str) {
    let at = Instant::now();
    from.cmd("sndcode", digits);
    let deadline = Instant::now() + phones_common::WAIT;
    let mut got = String::new();
    while got.len() < digits.len() && Instant::now() < deadline {
        pump_for(&mut [&mut *from, &mut *to], Duration::from_millis(50));
        got = to
            .events
            .iter()
            .filter(|e| e.kind == "CALL_DTMF_START" && e.at >= at)
            .map(|e| e.param.clone())
            .collect();
    }
    assert_eq!(
        got, digits,
        "{} reported these digits from {}",
        to.user, from.user
    );
}

#[test]
fn an_opus_phone_and_a_g711_phone_hear_each_other_through_the_transcoding_bridge() {
    let conf = DefaultConf::new("codec-bridge");
    let mut sw = conf.start();
    let mut a = phone(&conf, "1000", "opus.so", A_TONE);
    let mut b = phone(&conf, "1001", "g711.so", B_TONE);
    a.wait_registered(&mut sw, "127.0.0.1");
    b.wait_registered(&mut sw, "127.0.0.1");
    let t0 = Instant::now();
    a.cmd("dial", &format!("sip:1001@127.0.0.1:{}", conf.sip_port));
    b.wait_event("CALL_INCOMING", t0, &mut [&mut a]);
    let answer_at = Instant::now();
    b.cmd("accept", "");
    a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    let channels = sw.cmd("show channels");
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(3));
    // Digits cross both ways: RFC 4733 events on the Opus leg count on its
    // telephone-event clock (48 kHz when the phone offers it).
    digits_cross(&mut a, &mut b, "159");
    digits_cross(&mut b, &mut a, "73");
    a.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", answer_at, &mut [&mut a]);
    assert!(channels.contains(",opus,"), "{channels}");
    assert!(
        channels.contains(",PCMU,") || channels.contains(",PCMA,"),
        "{channels}"
    );
    let (ha, hb) = (
        share_with(&a.heard(), B_TONE),
        share_with(&b.heard(), A_TONE),
    );
    assert!(
        ha > 0.3,
        "the Opus phone heard the G.711 one: {:.0}%",
        ha * 100.0
    );
    assert!(
        hb > 0.3,
        "the G.711 phone heard the Opus one: {:.0}%",
        hb * 100.0
    );
}

#[test]
fn show_codec_lists_opus_and_g722_beside_the_cores_g711_as_freeswitch_does() {
    let conf = DefaultConf::new("codec-show");
    let mut sw = conf.start();
    let out = sw.cmd("show codec");
    // FreeSWITCH: `select type, name, ikey from interfaces where type =
    // 'codec' order by type,name`, its interface names and module keys.
    let expected = "type,name,ikey\n\
                    codec,G.711 alaw,CORE_PCM_MODULE\n\
                    codec,G.711 ulaw,CORE_PCM_MODULE\n\
                    codec,G.722,mod_sofia\n\
                    codec,OPUS (STANDARD),mod_sofia\n\
                    codec,RAW Signed Linear (16 bit),CORE_PCM_MODULE\n\
                    \n\
                    5 total.\n";
    assert_eq!(out.trim_end(), expected.trim_end(), "{out}");
    // `show codecs` is the same (FreeSWITCH drops the trailing s).
    assert_eq!(sw.cmd("show codecs"), out);
}

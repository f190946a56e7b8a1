//! Wideband codecs with real phones: baresip with only its G.722 module,
//! then only its Opus module, calls 9196 on the default configuration
//! (codec-prefs OPUS,G722,PCMU,PCMA, FreeSWITCH's) and hears its tone back
//! (Goertzel) through a call negotiated to that codec; and an Opus phone
//! calls a G.711 phone: the switch transcodes, both hear each other and
//! their digits cross. And `show codec` lists Opus and G.722. And the
//! channel variables that choose a leg's codecs, as FreeSWITCH's:
//! `absolute_codec_string` on a bridged leg, `inherit_codec` on its caller.

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

/// A call up: 1000 (with `a_codec`) dialled `exten`, which rings 1001
/// (G.711), and 1001 answered; both then talked for 3 s.
struct Call {
    sw: hotswitch_e2e::Switch,
    a: Phone,
    b: Phone,
    answer_at: Instant,
    /// `show channels` just after the answer.
    channels: String,
}

fn call(conf: &DefaultConf, a_codec: &str, exten: &str) -> Call {
    let mut sw = conf.start();
    let mut a = phone(conf, "1000", a_codec, A_TONE);
    let mut b = phone(conf, "1001", "g711.so", B_TONE);
    a.wait_registered(&mut sw, "127.0.0.1");
    b.wait_registered(&mut sw, "127.0.0.1");
    let t0 = Instant::now();
    a.cmd("dial", &format!("sip:{exten}@127.0.0.1:{}", conf.sip_port));
    b.wait_event("CALL_INCOMING", t0, &mut [&mut a]);
    let answer_at = Instant::now();
    b.cmd("accept", "");
    a.wait_event("CALL_ESTABLISHED", answer_at, &mut [&mut b]);
    let channels = sw.cmd("show channels");
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(3));
    Call {
        sw,
        a,
        b,
        answer_at,
        channels,
    }
}

#[test]
fn an_opus_phone_and_a_g711_phone_hear_each_other_through_the_transcoding_bridge() {
    let conf = DefaultConf::new("codec-bridge");
    let Call {
        sw: _sw,
        mut a,
        mut b,
        answer_at,
        channels,
    } = call(&conf, "opus.so", "1001");
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

/// The codec of the leg whose `show channels` row has `who` (read_codec
/// is a column).
fn codec_of<'a>(channels: &'a str, who: &str, codecs: &[&'a str]) -> Option<&'a str> {
    let row = channels.lines().find(|l| l.contains(who))?;
    codecs
        .iter()
        .copied()
        .find(|c| row.contains(&format!(",{c},")))
}

/// 1000 (G.711: offers PCMU, then PCMA) calls `exten`, which bridges to
/// 1001 (G.711) with the dial string's `absolute_codec_string=PCMA`;
/// returns the codecs of 1000's leg and of 1001's, after checking that
/// each phone heard the other.
fn call_through(conf: &DefaultConf, exten: &str) -> (String, String) {
    let Call {
        sw: _sw,
        mut a,
        mut b,
        answer_at,
        channels,
    } = call(conf, "g711.so", exten);
    a.cmd("hangup", "");
    b.wait_event("CALL_CLOSED", answer_at, &mut [&mut a]);
    let (ha, hb) = (
        share_with(&a.heard(), B_TONE),
        share_with(&b.heard(), A_TONE),
    );
    assert!(
        ha > 0.3 && hb > 0.3,
        "heard: 1000 {ha:.2}, 1001 {hb:.2}\n{channels}"
    );
    let g711 = ["PCMU", "PCMA"];
    let of = |who: &str| {
        codec_of(&channels, who, &g711)
            .unwrap_or_else(|| panic!("no G.711 leg {who}: {channels}"))
            .to_string()
    };
    // 1000's leg came in, 1001's went out.
    (of(",inbound,"), of(",outbound,"))
}

fn codec_conf(tag: &str) -> DefaultConf {
    let conf = DefaultConf::new(tag);
    conf.edit("dialplan/default.xml", |t| {
        t.replacen(
            "<context name=\"default\">",
            r#"<context name="default">
    <extension name="absolute"><condition field="destination_number" expression="^2001$">
      <action application="bridge" data="{absolute_codec_string=PCMA}user/1001@$${domain}"/>
    </condition></extension>
    <extension name="inherit"><condition field="destination_number" expression="^2002$">
      <action application="set" data="inherit_codec=true"/>
      <action application="bridge" data="{absolute_codec_string=PCMA}user/1001@$${domain}"/>
    </condition></extension>"#,
            1,
        )
    });
    conf
}

#[test]
fn absolute_codec_string_on_a_bridged_leg_offers_it_only_that_codec() {
    let conf = codec_conf("codec-absolute");
    // The caller's first choice, PCMU, on its leg; only PCMA offered to
    // 1001, which offers both: the bridge transcodes.
    let (a, b) = call_through(&conf, "2001");
    assert_eq!((a.as_str(), b.as_str()), ("PCMU", "PCMA"));
    // A codec string naming nothing hotswitch carries fails the leg, as
    // FreeSWITCH's does (GSM and G.729 are not here).
    let mut sw = conf.start();
    let mut b = phone(&conf, "1001", "g711.so", B_TONE);
    b.wait_registered(&mut sw, "127.0.0.1");
    assert_eq!(
        sw.cmd("originate {absolute_codec_string=^^:GSM:G729}user/1001 &park()")
            .trim(),
        "-ERR INCOMPATIBLE_DESTINATION"
    );
}

#[test]
fn inherit_codec_makes_the_caller_answer_in_the_codec_its_callee_chose() {
    // The same call with inherit_codec=true on the caller: it answers in
    // 1001's PCMA (it offered PCMA too), both legs in one codec.
    let (a, b) = call_through(&codec_conf("codec-inherit"), "2002");
    assert_eq!((a.as_str(), b.as_str()), ("PCMA", "PCMA"));
}

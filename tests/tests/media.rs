//! The XML dialplan and media against the real binary: tones recorded and
//! measured, a bridge carrying audio both ways, DTMF collected by
//! play_and_get_digits, and a broken dialplan refused by reloadxml while
//! the old one keeps routing.

use hotswitch_e2e::{ok_uuid, Switch, SwitchConfig, TempDir};
use hotswitch_media::goertzel::power;
use hotswitch_media::WavReader;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

const DIALPLAN: &str = r#"<include>
  <context name="default">
    <extension name="tone">
      <condition field="destination_number" expression="^tone(\d+)$">
        <action application="answer"/>
        <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
      </condition>
    </extension>
    <extension name="record_and_tone">
      <condition field="destination_number" expression="^rectone(\d+)$">
        <action application="answer"/>
        <action application="record_session" data="${rec_path}"/>
        <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
      </condition>
    </extension>
    <extension name="digits">
      <condition field="destination_number" expression="^pagd$">
        <action application="answer"/>
        <action application="play_and_get_digits" data="1 5 1 8000 # silence_stream://100 silence_stream://100 collected ^\d+$ 3000"/>
        <action application="park"/>
      </condition>
    </extension>
    <extension name="early_media">
      <condition field="destination_number" expression="^early(\d+)$">
        <action application="pre_answer"/>
        <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
      </condition>
    </extension>
    <extension name="ring_only">
      <condition field="destination_number" expression="^ringonly$">
        <action application="ring_ready"/>
        <action application="sleep" data="20000"/>
      </condition>
    </extension>
    <extension name="call_and_listen">
      <condition field="destination_number" expression="^listen_(.+)$">
        <action application="record_session" data="${rec_path}"/>
        <action application="bridge" data="loopback/$1"/>
      </condition>
    </extension>
    <extension name="inband_digits">
      <condition field="destination_number" expression="^inband$">
        <action application="answer"/>
        <action application="sleep" data="2500"/>
        <action application="playback" data="tone_stream://d=150;w=150;159#"/>
        <action application="park"/>
      </condition>
    </extension>
    <extension name="captures">
      <condition field="destination_number" expression="^cap(\d)(\d)$">
        <action application="set" data="first=$1"/>
        <action application="set" data="second=$2"/>
        <action application="answer"/>
        <action application="park"/>
      </condition>
    </extension>
  </context>
</include>
"#;

fn media_switch() -> Switch {
    Switch::start(SwitchConfig {
        autoload: vec!["mod_loopback".into(), "mod_dptools".into()],
        files: vec![
            ("dialplan/test.xml".into(), DIALPLAN.into()),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
                     <param name="sessions-per-second" value="1000"/>
                   </settings></configuration>"#
                    .into(),
            ),
        ],
        ..Default::default()
    })
}

fn wait_gone(sw: &mut Switch, uuid: &str) {
    hotswitch_e2e::wait_gone(sw, uuid, WAIT);
}

/// Mean power at `freq` over the file, skipping the first 100 ms.
fn tone_power(path: &Path, freq: f64) -> f64 {
    let mut r = WavReader::open(path, 8000).unwrap_or_else(|e| panic!("{e}"));
    let samples = r.read_to_end().unwrap();
    assert!(
        samples.len() > 8000,
        "{} holds {} samples",
        path.display(),
        samples.len()
    );
    power(&samples[800..], 8000, freq)
}

#[test]
fn a_tone_played_on_one_leg_is_recorded_on_the_other_at_its_frequency() {
    let mut sw = media_switch();
    let dir = TempDir::new("tone-record");
    let wav = dir.path().join("heard.wav");
    let a = ok_uuid(&sw.cmd(&format!(
        "originate loopback/tone1004/default/XML &record({} 2)",
        wav.display()
    )));
    wait_gone(&mut sw, &a);
    let p1004 = tone_power(&wav, 1004.0);
    for other in [440.0, 697.0, 1400.0, 2000.0] {
        let p = tone_power(&wav, other);
        assert!(
            p1004 > 100.0 * p.max(1.0),
            "1004 Hz {p1004} vs {other} Hz {p}"
        );
    }
    assert!(p1004 > 1e6, "the tone is loud enough to be real: {p1004}");
    let ms: u64 = sw.cmd("status").len() as u64; // the switch is alive
    assert!(ms > 0);
}

#[test]
fn a_bridge_of_two_loopback_calls_carries_audio_both_ways() {
    let mut sw = media_switch();
    let dir = TempDir::new("bridge-both-ways");
    let (w1, w2) = (dir.path().join("one.wav"), dir.path().join("two.wav"));
    assert!(sw.cmd("/event plain PLAYBACK_START").starts_with("+OK"));
    let a1 = ok_uuid(&sw.cmd(&format!(
        "originate {{rec_path={}}}loopback/rectone1004/default/XML &park()",
        w1.display()
    )));
    let a2 = ok_uuid(&sw.cmd(&format!(
        "originate {{rec_path={}}}loopback/rectone697/default/XML &park()",
        w2.display()
    )));
    // Both far ends record and play before the bridge (a loaded machine
    // may take a while to get there).
    for _ in 0..2 {
        sw.wait_event(WAIT, |e| e.name() == "PLAYBACK_START")
            .expect("a far end plays its tone");
    }
    assert_eq!(
        sw.cmd(&format!("uuid_bridge {a1} {a2}")).trim(),
        format!("+OK {a2}")
    );
    // 1.5 s of call across the bridge.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sw.cmd("hupall").starts_with("+OK"));
    wait_gone(&mut sw, &a1);
    wait_gone(&mut sw, &a2);
    std::thread::sleep(Duration::from_millis(200));
    // Each far end records what it plays and what crossed the bridge.
    let (one_own, one_heard, one_none) = (
        tone_power(&w1, 1004.0),
        tone_power(&w1, 697.0),
        tone_power(&w1, 1400.0),
    );
    let (two_own, two_heard, two_none) = (
        tone_power(&w2, 697.0),
        tone_power(&w2, 1004.0),
        tone_power(&w2, 1400.0),
    );
    assert!(
        one_own > 1e5 && two_own > 1e5,
        "own tones recorded: {one_own} {two_own}"
    );
    assert!(
        one_heard > 20.0 * one_none.max(1.0),
        "697 Hz crossed to side one: {one_heard} vs {one_none}"
    );
    assert!(
        two_heard > 20.0 * two_none.max(1.0),
        "1004 Hz crossed to side two: {two_heard} vs {two_none}"
    );
}

/// A loopback call whose far end (B) collects digits with
/// play_and_get_digits into `collected`; the console prints `events`.
/// Returns the A leg and B once B collects.
fn digit_collector(sw: &mut Switch, events: &str) -> (String, String) {
    assert!(sw.cmd(&format!("/event plain {events}")).starts_with("+OK"));
    let a = ok_uuid(&sw.cmd("originate loopback/pagd/default/XML &park()"));
    let start = sw
        .wait_event(WAIT, |e| {
            e.name() == "CHANNEL_EXECUTE" && e.get("Application") == Some("play_and_get_digits")
        })
        .expect("B runs play_and_get_digits");
    (a, start.get("Unique-ID").unwrap().to_string())
}

#[test]
fn dtmf_sent_on_one_leg_is_collected_by_play_and_get_digits_on_the_other() {
    let mut sw = media_switch();
    let (a, b) = digit_collector(&mut sw, "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE DTMF");
    assert_eq!(
        sw.cmd(&format!("uuid_send_dtmf {a} 1234#")).trim(),
        format!("+OK {a} sent DTMF 1234#.")
    );
    sw.wait_event(WAIT, |e| {
        e.name() == "CHANNEL_EXECUTE_COMPLETE"
            && e.get("Application") == Some("play_and_get_digits")
            && e.get("Unique-ID") == Some(b.as_str())
    })
    .expect("play_and_get_digits completes");
    assert_eq!(sw.cmd(&format!("uuid_getvar {b} collected")).trim(), "1234");
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {b} read_terminator_used"))
            .trim(),
        "#"
    );
    let digits: Vec<String> = sw
        .drain_events(Duration::from_millis(100))
        .into_iter()
        .filter(|e| e.name() == "DTMF" && e.get("Unique-ID") == Some(b.as_str()))
        .filter_map(|e| e.get("DTMF-Digit").map(str::to_string))
        .collect();
    assert_eq!(
        digits,
        ["1", "2", "3", "4", "#"],
        "a DTMF event per digit on B"
    );
}

#[test]
fn regex_captures_reach_the_actions_of_the_matching_extension() {
    let mut sw = media_switch();
    let a = ok_uuid(&sw.cmd("originate loopback/cap42/default/XML &park()"));
    let b = sw
        .cmd(&format!("uuid_getvar {a} other_loopback_leg_uuid"))
        .trim()
        .to_string();
    let deadline = Instant::now() + WAIT;
    while sw.cmd(&format!("uuid_getvar {b} second")).trim() != "2" {
        assert!(Instant::now() < deadline, "captures never set");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sw.cmd(&format!("uuid_getvar {b} first")).trim(), "4");
    // Nothing matches: NO_ROUTE_DESTINATION.
    assert_eq!(
        sw.cmd("originate loopback/nomatch/default/XML &park()")
            .trim(),
        "-ERR NO_ROUTE_DESTINATION"
    );
}

#[test]
fn a_broken_dialplan_is_refused_with_its_line_and_the_old_one_keeps_routing() {
    let mut sw = media_switch();
    let conf = sw.dir.path().join("conf");
    std::fs::write(
        conf.join("dialplan/broken.xml"),
        "<include>\n  <context name=\"default\">\n    <extension name=\"x\">\n  </context>\n</include>\n",
    )
    .unwrap();
    let r = sw.cmd("reloadxml");
    assert!(r.starts_with("-ERR ["), "{r}");
    assert!(
        r.contains("dialplan/broken.xml:4:"),
        "names the file and line: {r}"
    );
    let a = ok_uuid(&sw.cmd("originate loopback/cap12/default/XML &park()"));
    let b = sw
        .cmd(&format!("uuid_getvar {a} other_loopback_leg_uuid"))
        .trim()
        .to_string();
    let deadline = Instant::now() + WAIT;
    while sw.cmd(&format!("uuid_getvar {b} first")).trim() != "1" {
        assert!(Instant::now() < deadline, "the old dialplan still routes");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(conf.join("dialplan/broken.xml")).unwrap();
    assert_eq!(sw.cmd("reloadxml").trim(), "+OK [Success]");
}

#[test]
fn the_default_dialplan_plays_a_tone_forever_on_9664() {
    let mut sw = Switch::start(SwitchConfig {
        conf_dir: Some(hotswitch_e2e::workspace_root().join("conf")),
        ..Default::default()
    });
    let dir = TempDir::new("default-9664");
    let wav = dir.path().join("ring.wav");
    let a = ok_uuid(&sw.cmd(&format!(
        "originate loopback/9664 &record({} 2)",
        wav.display()
    )));
    wait_gone(&mut sw, &a);
    // hold_music in vars.xml is a C-E-G arpeggio, 400 ms a note: the first
    // 2 s hold all three.
    let other = tone_power(&wav, 1000.0).max(1.0);
    for f in [523.0, 659.0, 784.0] {
        let p = tone_power(&wav, f);
        assert!(p > 30.0 * other, "{f} Hz: {p} against {other} at 1000 Hz");
    }
}

/// Calls `dest` from a loopback leg that records what it hears while the
/// callee never answers, for 2 s; returns the recording.
fn listen_before_answer(
    sw: &mut Switch,
    dir: &TempDir,
    dest: &str,
    vars: &str,
) -> std::path::PathBuf {
    let wav = dir.path().join(format!("{dest}.wav"));
    assert!(sw
        .cmd("/event plain CHANNEL_PROGRESS_MEDIA")
        .starts_with("+OK"));
    let reply = sw.cmd(&format!(
        "bgapi originate {{rec_path={},{vars}}}loopback/listen_{dest}/default/XML &park()",
        wav.display()
    ));
    assert!(reply.starts_with("+OK Job-UUID"), "{reply}");
    sw.wait_event(WAIT, |e| e.name() == "CHANNEL_PROGRESS_MEDIA")
        .expect("someone has early media");
    std::thread::sleep(Duration::from_secs(2));
    assert!(sw.cmd("hupall").starts_with("+OK"));
    let deadline = Instant::now() + WAIT;
    while sw.channel_count() > 0 {
        assert!(Instant::now() < deadline, "calls did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    wav
}

#[test]
fn a_caller_hears_the_early_media_of_the_leg_it_calls_through_the_core() {
    let mut sw = media_switch();
    let dir = TempDir::new("early-media");
    let wav = listen_before_answer(
        &mut sw,
        &dir,
        "early900",
        "origination_caller_id_name=listener",
    );
    let (p900, p700) = (tone_power(&wav, 900.0), tone_power(&wav, 700.0));
    assert!(
        p900 > 1e5 && p900 > 100.0 * p700.max(1.0),
        "900 Hz {p900}, 700 Hz {p700}"
    );
}

#[test]
fn a_caller_hears_its_ringback_while_the_callee_only_rings() {
    let mut sw = media_switch();
    let dir = TempDir::new("ringback");
    let wav = listen_before_answer(&mut sw, &dir, "ringonly", "ringback=%(1000\\,0\\,700)");
    let (p700, p900) = (tone_power(&wav, 700.0), tone_power(&wav, 900.0));
    assert!(
        p700 > 1e5 && p700 > 100.0 * p900.max(1.0),
        "700 Hz {p700}, 900 Hz {p900}"
    );
}

#[test]
fn digits_sent_as_tones_by_a_leg_without_out_of_band_dtmf_cross_a_bridge_out_of_band() {
    let mut sw = media_switch();
    let (collector, b) = digit_collector(&mut sw, "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE DTMF");
    let collecting = Instant::now();
    // The tones' leg says its far end has no out-of-band digits.
    let tones =
        ok_uuid(&sw.cmd("originate {dtmf_inband_detect=true}loopback/inband/default/XML &park()"));
    let originated = collecting.elapsed();
    assert!(sw
        .cmd(&format!("uuid_bridge {tones} {collector}"))
        .starts_with("+OK"));
    let bridged = collecting.elapsed();
    let digits = std::cell::RefCell::new(Vec::new());
    sw.wait_event(WAIT, |e| {
        if e.name() == "DTMF" {
            digits.borrow_mut().push(format!(
                "{} on {} at {:?}",
                e.get("DTMF-Digit").unwrap_or("?"),
                e.get("Unique-ID").unwrap_or("?"),
                collecting.elapsed()
            ));
        }
        e.name() == "CHANNEL_EXECUTE_COMPLETE"
            && e.get("Application") == Some("play_and_get_digits")
            && e.get("Unique-ID") == Some(b.as_str())
    })
    .expect("play_and_get_digits completes");
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {b} collected")).trim(),
        "159",
        "tones {tones} originated after {originated:?}, bridged to {collector} after {bridged:?}; \
         collector {b} ended after {:?}; digits: {:?}\n{}",
        collecting.elapsed(),
        digits.borrow(),
        sw.log()
    );
}

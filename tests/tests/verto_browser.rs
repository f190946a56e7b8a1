//! mod_verto and a real browser: headless Chromium (Debian's `chromium`)
//! with a fake microphone playing a known tone sequence loads a page
//! (tests/verto/browser/) that logs in with the published verto client
//! (vertojs's browser bundle), calls the echo extension over WebRTC and
//! records what it sends and what comes back. The test checks that the
//! tones that come back are the tones sent, in the same order, that the
//! call was up in the switch and was hung up cleanly — and, as a control,
//! that the same check fails on a call to a parked extension, which sends
//! nothing back.
//!
//! Needs `/usr/bin/chromium` (Debian: `apt-get install chromium`) and
//! `npm ci --prefix tests/verto` (for vertojs).

mod browser_common;
mod verto_common;

use browser_common::*;
use hotswitch_e2e::{free_port, workspace_root, Switch, TempDir};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use verto_common::{npm_ready, start_verto, DIALPLAN};

/// The whole browser run: start, login, two calls, reports.
const PAGE_DEADLINE: Duration = Duration::from_secs(45);
/// How long the switch may take to report a call's events.
const WAIT: Duration = Duration::from_secs(10);

const ECHO: &str = "9196";
const PARK: &str = "5900";

/// Files the page may load, by URL path.
fn page_file(path: &str) -> Option<(PathBuf, &'static str)> {
    let verto = workspace_root().join("tests/verto");
    let browser = verto.join("browser");
    Some(match path {
        "/" | "/index.html" => (browser.join("index.html"), "text/html"),
        "/driver.js" => (browser.join("driver.js"), "text/javascript"),
        "/capture.js" => (browser.join("capture.js"), "text/javascript"),
        "/verto.js" => (
            verto.join("node_modules/vertojs/dist/verto.js"),
            "text/javascript",
        ),
        _ => return None,
    })
}

/// A switch with mod_verto's profile on a free port (9196 echoes; 5900
/// answers and parks, sending nothing back).
fn start_switch() -> (Switch, u16) {
    let port = free_port();
    let sw = start_verto(
        &format!("127.0.0.1:{port}"),
        "",
        r#"<param name="rtp-ip" value="127.0.0.1"/>"#,
        &[],
        vec![("dialplan/default.xml".into(), DIALPLAN.into())],
    );
    (sw, port)
}

/// What the page reported over a whole run.
struct Run {
    /// Its log lines.
    said: String,
    /// By destination: the rate, and sent/received audio interleaved.
    captures: BTreeMap<String, (u32, Vec<i16>)>,
    /// By destination: the page's RTP statistics of the call.
    rtp: BTreeMap<String, serde_json::Value>,
    /// `show channels` while each call was up, in the order of the calls.
    channels: Vec<(String, String)>,
}

impl Run {
    /// The audio the page sent and the audio that came back on the call
    /// to `dest`, and their rate.
    fn audio(&self, dest: &str) -> (u32, Vec<i16>, Vec<i16>) {
        let (rate, stereo) = self
            .captures
            .get(dest)
            .unwrap_or_else(|| panic!("no recording of the call to {dest}: {}", self.said));
        let sent = stereo.iter().step_by(2).copied().collect();
        let back = stereo.iter().skip(1).step_by(2).copied().collect();
        (*rate, sent, back)
    }
}

/// Has Chromium load the page to call `dests` in turn, and gathers what it
/// reports; `show channels` is taken while each call is up.
fn browse(sw: &mut Switch, ws_port: u16, dests: &[&str]) -> Run {
    let dir = TempDir::new("verto-browser");
    let wav = dir.path().join("tones.wav");
    write_wav(&wav);
    let page = PageServer::start(page_file);
    let url = format!(
        "http://127.0.0.1:{}/index.html?ws=ws://127.0.0.1:{ws_port}&login=1000@127.0.0.1&passwd=1234&dest={}&ms=3000",
        page.port,
        dests.join(",")
    );
    let browser = Chromium::launch(&url, &wav, dir.path());
    let mut run = Run {
        said: String::new(),
        captures: BTreeMap::new(),
        rtp: BTreeMap::new(),
        channels: Vec::new(),
    };
    let deadline = Instant::now() + PAGE_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match page.reports.recv_timeout(left) {
            Ok(FromPage::Done) => return run,
            Ok(FromPage::Log(line)) => {
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    // The page records for seconds after this: the call is up.
                    (Some("ANSWERED"), Some(dest), _) => {
                        run.channels
                            .push((dest.to_string(), sw.cmd("show channels")));
                    }
                    (Some("RTP"), Some(dest), Some(json)) => {
                        let stats = serde_json::from_str(json).unwrap_or_default();
                        run.rtp.insert(dest.to_string(), stats);
                    }
                    _ => {}
                }
                run.said.push_str(&line);
                run.said.push('\n');
                continue;
            }
            Ok(FromPage::Capture { dest, rate, stereo }) => {
                run.captures.insert(dest, (rate, stereo));
                continue;
            }
            Ok(FromPage::Fail(why)) => why,
            Err(_) => format!("the page did not finish within {PAGE_DEADLINE:?}"),
        };
        panic!(
            "{why}\nthe page said:\n{}\nchromium:\n{}\nswitch:\n{}",
            run.said,
            browser.log_tail(),
            sw.log()
        );
    }
}

#[test]
fn chromium_calls_the_echo_extension_and_hears_back_the_tones_its_microphone_sent() {
    let started = Instant::now();
    chromium_installed();
    npm_ready();
    let (mut sw, ws_port) = start_switch();
    assert!(sw
        .cmd("/event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    let run = browse(&mut sw, ws_port, &[ECHO, PARK]);
    let said = &run.said;

    let called: Vec<&str> = run.channels.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(called, [ECHO, PARK], "both calls were answered: {said}");
    for (dest, channels) in &run.channels {
        assert!(
            channels.contains(&format!("verto.rtc/{dest}")),
            "the call to {dest} is in show channels: {channels}"
        );
    }
    // The browser took the switch's G.711 and the RTP flowed both ways.
    let rtp = &run.rtp[ECHO];
    let codecs = rtp["codecs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert!(
        !codecs.is_empty()
            && codecs
                .iter()
                .all(|c| c == "audio/PCMU" || c == "audio/PCMA"),
        "{rtp}"
    );
    for count in ["packetsSent", "packetsReceived"] {
        assert!(rtp[count].as_u64().unwrap_or(0) >= 100, "{count}: {rtp}");
    }

    let (rate, sent, back) = run.audio(ECHO);
    assert!(
        sent.len() as u32 >= 2 * rate,
        "at least 2 s recorded: {} samples at {rate} Hz",
        sent.len()
    );
    let verdict = judge(&sent, &back, rate)
        .unwrap_or_else(|why| panic!("the echo of {ECHO}: {why}\nthe page said:\n{said}"));
    eprintln!(
        "the echo came back after {} ms, {:.0}% of blocks as sent; {LOW} Hz {:.0}×, {HIGH} Hz {:.0}× the strongest unrelated frequency",
        verdict.delay_ms,
        100.0 * verdict.agreement,
        verdict.low_dominance,
        verdict.high_dominance
    );

    // The control: the same check on a call that gets nothing back fails.
    let (rate, sent, back) = run.audio(PARK);
    let control = judge(&sent, &back, rate);
    assert!(
        control.is_err(),
        "a parked call sends nothing back, yet the check passed: {control:?}"
    );
    let heard = sounds(&back, rate);
    assert!(
        heard.iter().all(|&s| s == Sound::Silence),
        "nothing came back from the parked call: {}",
        summary(&heard)
    );

    // Both calls were answered, and ended normally by the browser's bye.
    for dest in [ECHO, PARK] {
        let name = format!("verto.rtc/{dest}");
        let of_call = |event: &'static str| {
            let name = name.clone();
            move |e: &hotswitch_e2e::Event| {
                e.name() == event && e.get("Channel-Name") == Some(name.as_str())
            }
        };
        assert!(
            sw.wait_event(WAIT, of_call("CHANNEL_ANSWER")).is_some(),
            "CHANNEL_ANSWER of {name}"
        );
        let hangup = sw
            .wait_event(WAIT, of_call("CHANNEL_HANGUP_COMPLETE"))
            .unwrap_or_else(|| panic!("CHANNEL_HANGUP_COMPLETE of {name}\n{}", sw.log()));
        assert_eq!(
            hangup.get("Hangup-Cause"),
            Some("NORMAL_CLEARING"),
            "{name}"
        );
    }
    assert_eq!(sw.channel_count(), 0, "{}", sw.cmd("show channels"));
    assert!(sw.alive());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_check_passes_a_delayed_copy_and_fails_silence_and_other_sounds() {
    let rate = 48000;
    let sent: Vec<i16> = tone_pattern(rate).repeat(3);
    let delay = rate as usize * 130 / 1000;
    let mut back = vec![0i16; delay];
    back.extend_from_slice(&sent[..sent.len() - delay]);
    let v = judge(&sent, &back, rate).expect("a delayed copy is what was sent");
    assert!((120..=140).contains(&v.delay_ms), "{v:?}");

    assert!(judge(&sent, &vec![0; sent.len()], rate).is_err(), "silence");
    // The tones, swapped: right frequencies, wrong order and timing.
    let swapped: Vec<i16> = tone_pattern(rate)
        .chunks(rate as usize / 10)
        .rev()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .repeat(3);
    assert!(judge(&sent, &swapped, rate).is_err(), "reordered");
    // A tone that was not sent, over the sent ones.
    let buzz: Vec<i16> = back
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let t = i as f64 / rate as f64;
            x.saturating_add((9000.0 * (2.0 * std::f64::consts::PI * 941.0 * t).sin()) as i16)
        })
        .collect();
    assert!(judge(&sent, &buzz, rate).is_err(), "another tone");
}

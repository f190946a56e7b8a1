//! A browser phone on mod_sofia: headless Chromium (Debian's `chromium`)
//! with a fake microphone playing a known tone pattern loads a page
//! (tests/sipws/browser/) on JsSIP's browser bundle that registers as 1000
//! over SIP-over-WebSocket to the default configuration, calls with WebRTC
//! media (ICE, DTLS-SRTP; the switch answers on the WebRTC stack it shares
//! with mod_verto, in Opus: the default codec-prefs put it first) and
//! records what it sends and what comes back.
//!
//! Over ws it calls 9196 (echo): the tones must come back as sent, in
//! order. Over wss (a test certificate) it calls 1001, a SIP phone
//! (baresip, G.711 only): the switch transcodes Opus to PCMU and back, the
//! phone hears the browser's tones and the browser hears the phone's.
//!
//! Needs `/usr/bin/chromium`, baresip, `npm ci --prefix tests/sipws` and
//! `npm run --prefix tests/sipws build` (.ci/run does both).

mod browser_common;
mod phones_common;

use browser_common::*;
use hotswitch_e2e::{workspace_root, TempDir};
use hotswitch_media::goertzel::{energy, power};
use phones_common::{share_with, DefaultConf, Phone, Transport};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The tone the SIP phone sends the browser.
const PHONE_TONE: f64 = 1000.0;

/// The whole browser run: start, registration, the call, reports.
const PAGE_DEADLINE: Duration = Duration::from_secs(45);

fn page_file(path: &str) -> Option<(PathBuf, &'static str)> {
    let sipws = workspace_root().join("tests/sipws/browser");
    Some(match path {
        "/" | "/index.html" => (sipws.join("index.html"), "text/html"),
        "/driver.js" => (sipws.join("driver.js"), "text/javascript"),
        "/jssip.js" => (sipws.join("jssip.js"), "text/javascript"),
        "/capture.js" => (
            workspace_root().join("tests/verto/browser/capture.js"),
            "text/javascript",
        ),
        _ => return None,
    })
}

#[test]
fn chromium_with_jssip_registers_over_websocket_calls_9196_and_hears_its_tones_back() {
    chromium_installed();
    assert!(
        workspace_root()
            .join("tests/sipws/browser/jssip.js")
            .exists(),
        "run `npm ci --prefix tests/sipws && npm run --prefix tests/sipws build` (.ci/run does)"
    );
    let conf = DefaultConf::new("sip-ws-browser");
    let vars = std::fs::read_to_string(conf.conf_dir().join("vars.xml")).unwrap();
    let at = vars.find("internal_ws_port=").unwrap() + "internal_ws_port=".len();
    let ws_port: u16 = vars[at..].split('"').next().unwrap().parse().unwrap();
    let mut sw = conf.start();
    let dir = TempDir::new("sip-ws-browser");
    let wav = dir.path().join("tones.wav");
    write_wav(&wav);
    let page = PageServer::start(page_file);
    let url = format!(
        "http://127.0.0.1:{}/index.html?ws=ws://127.0.0.1:{ws_port}&user=1000&domain=127.0.0.1&passwd=1234&dest=9196&ms=3000",
        page.port
    );
    let browser = Chromium::launch(&url, &wav, dir.path());
    let mut said = String::new();
    let mut capture = None;
    let mut channels = String::new();
    let deadline = Instant::now() + PAGE_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match page.reports.recv_timeout(left) {
            Ok(FromPage::Done) => break,
            Ok(FromPage::Log(line)) => {
                if line.starts_with("ANSWERED") {
                    channels = sw.cmd("show channels");
                }
                said.push_str(&line);
                said.push('\n');
                continue;
            }
            Ok(FromPage::Capture { rate, stereo, .. }) => {
                capture = Some((rate, stereo));
                continue;
            }
            Ok(FromPage::Fail(why)) => why,
            Err(_) => format!("the page did not finish within {PAGE_DEADLINE:?}"),
        };
        panic!(
            "{why}\nthe page said:\n{said}\nchromium:\n{}\nswitch:\n{}",
            browser.log_tail(),
            sw.log()
        );
    }
    assert!(
        channels.contains("sofia/internal/1000@127.0.0.1"),
        "the call was a SIP call in the switch: {channels}"
    );
    let rtp_line = said.lines().find(|l| l.starts_with("RTP ")).unwrap_or("");
    assert!(rtp_line.contains("audio/opus"), "{said}");
    let (rate, stereo) = capture.unwrap_or_else(|| panic!("no recording: {said}"));
    let sent: Vec<i16> = stereo.iter().step_by(2).copied().collect();
    let back: Vec<i16> = stereo.iter().skip(1).step_by(2).copied().collect();
    let verdict = judge(&sent, &back, rate)
        .unwrap_or_else(|why| panic!("the echo of 9196: {why}\nthe page said:\n{said}"));
    eprintln!(
        "the echo came back after {} ms, {:.0}% of blocks as sent",
        verdict.delay_ms,
        100.0 * verdict.agreement
    );
    assert!(
        said.contains("REGISTERED\n") && said.contains("HUNG UP 9196"),
        "{said}"
    );
}

fn jssip_built() {
    assert!(
        workspace_root()
            .join("tests/sipws/browser/jssip.js")
            .exists(),
        "run `npm ci --prefix tests/sipws && npm run --prefix tests/sipws build` (.ci/run does)"
    );
}

fn var_port(conf: &DefaultConf, var: &str) -> u16 {
    let vars = std::fs::read_to_string(conf.conf_dir().join("vars.xml")).unwrap();
    let at = vars.find(&format!("{var}=")).unwrap() + var.len() + 1;
    vars[at..].split('"').next().unwrap().parse().unwrap()
}

/// A self-signed certificate for 127.0.0.1 as the profile's wss.pem.
fn wss_certificate(conf: &DefaultConf) {
    let certs = conf.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(&certs)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(certs.join("cert.pem")).unwrap()
        + &std::fs::read_to_string(certs.join("key.pem")).unwrap();
    std::fs::write(certs.join("wss.pem"), pem).unwrap();
}

/// The share of 20 ms blocks of `samples` (at `rate`) that `freq`
/// carries: most of the block's energy, the block not silent.
fn share_of_blocks(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let blocks: Vec<&[i16]> = samples
        .chunks_exact((rate / BLOCKS_PER_SECOND) as usize)
        .collect();
    let hits = blocks
        .iter()
        .filter(|b| {
            let e = energy(b);
            e >= SILENCE && power(b, rate, freq) >= 0.5 * e
        })
        .count();
    hits as f64 / blocks.len().max(1) as f64
}

#[test]
fn chromium_over_wss_calls_a_g711_sip_phone_in_opus_and_both_hear_each_other() {
    chromium_installed();
    jssip_built();
    let conf = DefaultConf::new("sip-wss-phone");
    wss_certificate(&conf);
    let wss_port = var_port(&conf, "internal_wss_port");
    let mut sw = conf.start();
    // 1001: baresip with G.711 only, sending its tone.
    let mut phone = Phone::start(
        "1001",
        &format!("127.0.0.1:{}", conf.sip_port),
        Transport::Udp,
        PHONE_TONE,
    );
    phone.wait_registered(&mut sw, "127.0.0.1");
    let dir = TempDir::new("sip-wss-phone");
    let wav = dir.path().join("tones.wav");
    write_wav(&wav);
    let page = PageServer::start(page_file);
    let url = format!(
        "http://127.0.0.1:{}/index.html?ws=wss://127.0.0.1:{wss_port}&user=1000&domain=127.0.0.1&passwd=1234&dest=1001&ms=3000",
        page.port
    );
    // The switch's certificate is the test's own.
    let browser = Chromium::launch_with(&url, &wav, dir.path(), &["--ignore-certificate-errors"]);
    let t0 = Instant::now();
    let mut said = String::new();
    let mut capture = None;
    let mut channels = String::new();
    let mut reg = String::new();
    let mut answered = false;
    let deadline = Instant::now() + PAGE_DEADLINE;
    loop {
        // The phone answers when it rings; the page goes on by itself.
        phone.pump();
        if !answered && phone.seen("CALL_INCOMING", t0).is_some() {
            phone.cmd("accept", "");
            answered = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match page
            .reports
            .recv_timeout(left.min(Duration::from_millis(50)))
        {
            Ok(FromPage::Done) => break,
            Ok(FromPage::Log(line)) => {
                if line.starts_with("ANSWERED") {
                    channels = sw.cmd("show channels");
                    reg = sw.cmd("sofia status profile internal reg");
                }
                said.push_str(&line);
                said.push('\n');
                continue;
            }
            Ok(FromPage::Capture { rate, stereo, .. }) => {
                capture = Some((rate, stereo));
                continue;
            }
            Ok(FromPage::Fail(why)) => why,
            Err(_) if !left.is_zero() => continue,
            Err(_) => format!("the page did not finish within {PAGE_DEADLINE:?}"),
        };
        panic!(
            "{why}\nthe page said:\n{said}\nchromium:\n{}\nphone:\n{}\nswitch:\n{}",
            browser.log_tail(),
            phone.log_text(),
            sw.log()
        );
    }
    phone.wait_event("CALL_CLOSED", t0, &mut []);
    assert!(
        said.contains("REGISTERED\n") && said.contains("HUNG UP 1001"),
        "{said}"
    );
    // The browser's leg came in over wss, in Opus; the phone's is G.711.
    assert!(
        channels.contains("sofia/internal/1000@127.0.0.1") && channels.contains("opus"),
        "the browser's leg is a SIP leg in Opus: {channels}"
    );
    assert!(
        channels.contains("PCMU"),
        "the phone's leg is in PCMU: {channels}"
    );
    assert!(
        reg.contains("Registered(WSS)"),
        "the browser registered over wss: {reg}"
    );
    let rtp_line = said.lines().find(|l| l.starts_with("RTP ")).unwrap_or("");
    assert!(rtp_line.contains("audio/opus"), "{said}");
    // What the browser heard: the phone's tone.
    let (rate, stereo) = capture.unwrap_or_else(|| panic!("no recording: {said}"));
    let sent: Vec<i16> = stereo.iter().step_by(2).copied().collect();
    let back: Vec<i16> = stereo.iter().skip(1).step_by(2).copied().collect();
    let (low_sent, tone_back) = (
        share_of_blocks(&sent, rate, LOW),
        share_of_blocks(&back, rate, PHONE_TONE),
    );
    eprintln!(
        "the browser sent {LOW} Hz in {:.0} % of blocks, heard the phone's {PHONE_TONE} Hz in {:.0} %",
        100.0 * low_sent,
        100.0 * tone_back
    );
    assert!(low_sent > 0.25, "the microphone did not play the pattern");
    assert!(
        tone_back > 0.7,
        "the browser heard the phone's tone in {:.0} % of 20 ms blocks ({})",
        100.0 * tone_back,
        summary(&sounds(&back, rate))
    );
    // What the phone heard: the browser's two tones, through Opus to PCMU.
    let heard = phone.heard();
    let (low, high) = (share_with(&heard, LOW), share_with(&heard, HIGH));
    eprintln!(
        "the phone heard {LOW} Hz in {:.0} % and {HIGH} Hz in {:.0} % of 100 ms blocks",
        100.0 * low,
        100.0 * high
    );
    assert!(
        low > 0.15 && high > 0.15,
        "the phone heard {LOW} Hz in {:.0} % and {HIGH} Hz in {:.0} % of the call",
        100.0 * low,
        100.0 * high
    );
}

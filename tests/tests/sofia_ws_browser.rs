//! A browser phone on mod_sofia: headless Chromium (Debian's `chromium`)
//! with a fake microphone playing a known tone pattern loads a page
//! (tests/sipws/browser/) on JsSIP's browser bundle that registers as 1000
//! over SIP-over-WebSocket to the default configuration, calls 9196 (echo)
//! with WebRTC media (ICE, DTLS-SRTP; the switch answers on the WebRTC
//! stack it shares with mod_verto) and records what it sends and what
//! comes back. The tones must come back as sent, in order.
//!
//! Needs `/usr/bin/chromium`, `npm ci --prefix tests/sipws` and
//! `npm run --prefix tests/sipws build` (.ci/run does both).

mod browser_common;
mod phones_common;

use browser_common::*;
use hotswitch_e2e::{workspace_root, TempDir};
use phones_common::DefaultConf;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    assert!(
        rtp_line.contains("audio/PCMU") || rtp_line.contains("audio/PCMA"),
        "{said}"
    );
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

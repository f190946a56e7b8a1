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

use hotswitch::media::goertzel::{energy, power};
use hotswitch::media::WavWriter;
mod verto_common;

use hotswitch_e2e::{free_port, workspace_root, Switch, TempDir};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};
use verto_common::{npm_ready, start_verto, DIALPLAN};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The whole browser run: start, login, two calls, reports.
const PAGE_DEADLINE: Duration = Duration::from_secs(45);
/// How long the switch may take to report a call's events.
const WAIT: Duration = Duration::from_secs(10);
/// Chromium is killed after this even if the test cannot do it.
const LIFETIME: Duration = Duration::from_secs(120);

const ECHO: &str = "9196";
const PARK: &str = "5900";

// ---------------------------------------------------------------------------
// The signal and the check.

/// The microphone plays, over and over: 400 ms of LOW, 400 ms of HIGH,
/// 200 ms of silence (the row and column tones of DTMF 1, played apart).
const LOW: f64 = 697.0;
const HIGH: f64 = 1209.0;
const PATTERN_MS: [(Option<f64>, usize); 3] = [(Some(LOW), 400), (Some(HIGH), 400), (None, 200)];
/// A tone's peak: -8 dBFS, well inside G.711's range.
const AMPLITUDE: f64 = 13000.0;
const WAV_RATE: u32 = 48000;

/// Frequencies the signal has nothing at (nor its harmonics): what a tone
/// must beat.
const UNRELATED: [f64; 5] = [440.0, 941.0, 1633.0, 2200.0, 3000.0];
/// How much stronger each tone must be than any unrelated frequency.
const DOMINANCE: f64 = 20.0;
/// Below this mean square (a sine of peak 100, -50 dBFS) a block is
/// silence.
const SILENCE: f64 = 5000.0;
/// Judged in blocks of 20 ms, as telephony frames.
const BLOCKS_PER_SECOND: u32 = 50;
/// The round trip may delay the audio by up to this many blocks (1 s).
const MAX_LAG_BLOCKS: usize = 50;
/// Share of the sent blocks whose sound must come back the same.
const MIN_AGREEMENT: f64 = 0.8;

fn tone_pattern(rate: u32) -> Vec<i16> {
    let mut out = Vec::new();
    for (tone, ms) in PATTERN_MS {
        let n = rate as usize * ms / 1000;
        out.extend((0..n).map(|i| match tone {
            Some(f) => {
                let t = i as f64 / rate as f64;
                (AMPLITUDE * (2.0 * std::f64::consts::PI * f * t).sin()).round() as i16
            }
            None => 0,
        }));
    }
    out
}

fn write_wav(path: &Path) {
    let mut w = WavWriter::create(path, WAV_RATE).unwrap_or_else(|e| panic!("{e}"));
    w.write(&tone_pattern(WAV_RATE))
        .unwrap_or_else(|e| panic!("{e}"));
    w.finalize().unwrap_or_else(|e| panic!("{e}"));
}

/// What one block of audio holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sound {
    Low,
    High,
    Silence,
    /// Anything else: a mix (a block across a change), noise, another tone.
    Other,
}

impl Sound {
    fn of(block: &[i16], rate: u32) -> Sound {
        let total = energy(block);
        if total < SILENCE {
            return Sound::Silence;
        }
        let (low, high) = (power(block, rate, LOW), power(block, rate, HIGH));
        let unrelated = UNRELATED
            .iter()
            .map(|&f| power(block, rate, f))
            .fold(0.0, f64::max);
        // The tone carries most of the block, and beats everything else.
        let clear = |p: f64, other_tone: f64| {
            p >= 0.5 * total && p >= DOMINANCE * unrelated && p >= DOMINANCE * other_tone
        };
        if clear(low, high) {
            Sound::Low
        } else if clear(high, low) {
            Sound::High
        } else {
            Sound::Other
        }
    }
}

fn sounds(samples: &[i16], rate: u32) -> Vec<Sound> {
    samples
        .chunks_exact((rate / BLOCKS_PER_SECOND) as usize)
        .map(|b| Sound::of(b, rate))
        .collect()
}

/// What came back, measured against what was sent.
#[derive(Debug)]
struct Verdict {
    /// The round trip, in ms.
    delay_ms: usize,
    /// Share of sent blocks that came back the same.
    agreement: f64,
    /// Each tone's power over the whole reception, over the strongest
    /// unrelated frequency's.
    low_dominance: f64,
    high_dominance: f64,
}

/// Checks that `back` is `sent`, delayed: both tones came back, each far
/// above any unrelated frequency, in the order and timing they were sent.
fn judge(sent: &[i16], back: &[i16], rate: u32) -> Result<Verdict, String> {
    let (s, b) = (sounds(sent, rate), sounds(back, rate));
    let share =
        |v: &[Sound], x: Sound| v.iter().filter(|&&y| y == x).count() as f64 / v.len() as f64;
    for tone in [Sound::Low, Sound::High] {
        if share(&s, tone) < 0.25 {
            return Err(format!(
                "the microphone did not play the pattern (sent {})",
                summary(&s)
            ));
        }
        if share(&b, tone) < 0.2 {
            return Err(format!(
                "{tone:?} is missing from what came back ({:.0}% of blocks; heard {})",
                100.0 * share(&b, tone),
                summary(&b)
            ));
        }
    }
    // Powers summed block by block: Chromium's and the fake device's clocks
    // need not agree to the Hz a 3 s Goertzel window would resolve.
    let block = (rate / BLOCKS_PER_SECOND) as usize;
    let sum = |f: f64| -> f64 { back.chunks_exact(block).map(|c| power(c, rate, f)).sum() };
    let unrelated = UNRELATED.iter().map(|&f| sum(f)).fold(0.0, f64::max);
    let (low, high) = (sum(LOW), sum(HIGH));
    let floor = SILENCE * b.len() as f64 * 0.2;
    if low < floor || high < floor {
        return Err(format!(
            "the tones came back too quietly: {low:.0}, {high:.0}"
        ));
    }
    let dominance = |p: f64| p / unrelated.max(1.0);
    if dominance(low) < DOMINANCE || dominance(high) < DOMINANCE {
        return Err(format!(
            "the tones do not dominate what came back: {LOW} Hz {:.1}×, {HIGH} Hz {:.1}× the strongest unrelated frequency",
            dominance(low),
            dominance(high)
        ));
    }
    // The delay at which the sent blocks best match the received ones.
    let agreement_at = |lag: usize| -> f64 {
        let pairs = s.iter().zip(b.iter().skip(lag));
        let (mut judged, mut same) = (0, 0);
        for (x, y) in pairs {
            if *x != Sound::Other {
                judged += 1;
                same += usize::from(x == y);
            }
        }
        same as f64 / judged.max(1) as f64
    };
    let (lag, agreement) = (0..=MAX_LAG_BLOCKS.min(b.len() / 2))
        .map(|lag| (lag, agreement_at(lag)))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((0, 0.0));
    if agreement < MIN_AGREEMENT {
        return Err(format!(
            "what came back is not what was sent: at best {:.0}% of blocks agree (delay {} ms)\nsent {}\nback {}",
            100.0 * agreement,
            lag * 1000 / BLOCKS_PER_SECOND as usize,
            summary(&s),
            summary(&b)
        ));
    }
    Ok(Verdict {
        delay_ms: lag * 1000 / BLOCKS_PER_SECOND as usize,
        agreement,
        low_dominance: dominance(low),
        high_dominance: dominance(high),
    })
}

/// Blocks as letters: L(ow), H(igh), .(silence), ?(other).
fn summary(v: &[Sound]) -> String {
    v.iter()
        .map(|s| match s {
            Sound::Low => 'L',
            Sound::High => 'H',
            Sound::Silence => '.',
            Sound::Other => '?',
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The page's server.

/// What the page reports.
enum FromPage {
    Log(String),
    /// Sent (left) and received (right) audio, interleaved.
    Capture {
        dest: String,
        rate: u32,
        stereo: Vec<i16>,
    },
    Done,
    Fail(String),
}

/// Serves the page's files on 127.0.0.1 (an origin browsers treat as
/// secure, as getUserMedia needs) and takes its reports.
struct PageServer {
    port: u16,
    reports: Receiver<FromPage>,
}

impl PageServer {
    fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page's server");
        let port = listener.local_addr().expect("its port").port();
        let (tx, reports) = channel();
        // Ends with the test process; each connection gets a thread.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &tx);
                });
            }
        });
        PageServer { port, reports }
    }
}

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

/// One HTTP/1.1 request, answered and closed.
fn serve(stream: TcpStream, reports: &Sender<FromPage>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    let (status, kind, content) = match (method, path) {
        ("GET", _) => {
            match page_file(path).and_then(|(f, kind)| Some((std::fs::read(f).ok()?, kind))) {
                Some((content, kind)) => ("200 OK", kind, content),
                None => ("404 Not Found", "text/plain", b"not found".to_vec()),
            }
        }
        ("POST", _) => {
            let report = match path {
                "/log" => FromPage::Log(String::from_utf8_lossy(&body).into_owned()),
                "/capture" => FromPage::Capture {
                    dest: param("dest"),
                    rate: param("rate").parse().unwrap_or(0),
                    stereo: body
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                },
                "/done" => FromPage::Done,
                _ => FromPage::Fail(format!("{path}: {}", String::from_utf8_lossy(&body))),
            };
            let _ = reports.send(report);
            ("204 No Content", "text/plain", Vec::new())
        }
        _ => ("405 Method Not Allowed", "text/plain", Vec::new()),
    };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    stream.write_all(&content)?;
    stream.flush()
}

// ---------------------------------------------------------------------------
// The browser.

/// Headless Chromium in a process group of its own, killed with all its
/// helper processes when dropped — also when the test fails.
struct Chromium {
    child: Child,
    log: PathBuf,
}

impl Chromium {
    fn launch(url: &str, wav: &Path, dir: &Path) -> Chromium {
        let log = dir.join("chromium.log");
        let out = std::fs::File::create(&log).expect("create chromium.log");
        let err = out.try_clone().expect("chromium.log");
        // `timeout` kills the whole group even if this test process dies
        // without dropping us.
        let child = Command::new("timeout")
            .args(["-s", "KILL", &LIFETIME.as_secs().to_string(), CHROMIUM])
            .args([
                // No display, and root in a container: no sandbox, no GPU.
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                // Quiet: no connections of its own (refused here anyway, and
                // they crowd out the page's).
                "--no-first-run",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // The microphone: auto-granted, playing our file in a loop.
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ])
            .arg(format!(
                "--use-file-for-fake-audio-capture={}",
                wav.display()
            ))
            .args([
                // Where loopback is the only interface (as in CI), ICE has
                // nothing to gather without it. (The page's own addresses
                // need no mDNS flag: the switch is ICE-lite, it only
                // answers the browser's checks.)
                "--allow-loopback-in-peer-connection",
                // WebAudio and the <audio> element play without a click.
                "--autoplay-policy=no-user-gesture-required",
                // The page's console in chromium.log.
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMIUM}: {e}"));
        Chromium { child, log }
    }

    /// The end of Chromium's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Without a system bus or a sound card it complains at every turn.
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.to_ascii_lowercase().contains("dbus") && !l.starts_with("ALSA lib"))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group Chromium leads: the browser, its zygotes, renderers
        // and utility processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------

fn chromium_installed() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: this test drives a real browser; install Debian's \
         (`apt-get update && apt-get install -y chromium`; .ci/run does)"
    );
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
    let page = PageServer::start();
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

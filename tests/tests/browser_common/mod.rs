//! Headless Chromium for the browser tests (Debian's `chromium`): the
//! fake microphone's tone pattern and the check of what came back
//! (Goertzel, block by block), the small HTTP server that serves a test's
//! page and takes its reports, and the browser in a process group of its
//! own. Used by verto_browser.rs (vertojs) and sofia_ws_browser.rs (JsSIP).

#![allow(dead_code)]

use hotswitch_media::goertzel::{energy, power};
use hotswitch_media::WavWriter;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium is killed after this even if the test cannot do it.
pub const LIFETIME: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The signal and the check.

/// The microphone plays, over and over: 400 ms of LOW, 400 ms of HIGH,
/// 200 ms of silence (the row and column tones of DTMF 1, played apart).
pub const LOW: f64 = 697.0;
pub const HIGH: f64 = 1209.0;
pub const PATTERN_MS: [(Option<f64>, usize); 3] =
    [(Some(LOW), 400), (Some(HIGH), 400), (None, 200)];
/// A tone's peak: -8 dBFS, well inside G.711's range.
pub const AMPLITUDE: f64 = 13000.0;
pub const WAV_RATE: u32 = 48000;

/// Frequencies the signal has nothing at (nor its harmonics): what a tone
/// must beat.
pub const UNRELATED: [f64; 5] = [440.0, 941.0, 1633.0, 2200.0, 3000.0];
/// How much stronger each tone must be than any unrelated frequency.
pub const DOMINANCE: f64 = 20.0;
/// Below this mean square (a sine of peak 100, -50 dBFS) a block is
/// silence.
pub const SILENCE: f64 = 5000.0;
/// Judged in blocks of 20 ms, as telephony frames.
pub const BLOCKS_PER_SECOND: u32 = 50;
/// The round trip may delay the audio by up to this many blocks (1 s).
pub const MAX_LAG_BLOCKS: usize = 50;
/// Share of the sent blocks whose sound must come back the same.
pub const MIN_AGREEMENT: f64 = 0.8;

pub fn tone_pattern(rate: u32) -> Vec<i16> {
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

pub fn write_wav(path: &Path) {
    let mut w = WavWriter::create(path, WAV_RATE).unwrap_or_else(|e| panic!("{e}"));
    w.write(&tone_pattern(WAV_RATE))
        .unwrap_or_else(|e| panic!("{e}"));
    w.finalize().unwrap_or_else(|e| panic!("{e}"));
}

/// What one block of audio holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sound {
    Low,
    High,
    Silence,
    /// Anything else: a mix (a block across a change), noise, another tone.
    Other,
}

impl Sound {
    pub fn of(block: &[i16], rate: u32) -> Sound {
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

pub fn sounds(samples: &[i16], rate: u32) -> Vec<Sound> {
    samples
        .chunks_exact((rate / BLOCKS_PER_SECOND) as usize)
        .map(|b| Sound::of(b, rate))
        .collect()
}

/// What came back, measured against what was sent.
#[derive(Debug)]
pub struct Verdict {
    /// The round trip, in ms.
    pub delay_ms: usize,
    /// Share of sent blocks that came back the same.
    pub agreement: f64,
    /// Each tone's power over the whole reception, over the strongest
    /// unrelated frequency's.
    pub low_dominance: f64,
    pub high_dominance: f64,
}

/// Checks that `back` is `sent`, delayed: both tones came back, each far
/// above any unrelated frequency, in the order and timing they were sent.
pub fn judge(sent: &[i16], back: &[i16], rate: u32) -> Result<Verdict, String> {
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
pub fn summary(v: &[Sound]) -> String {
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

/// The files a page may load: URL path to file and content type.
pub type PageFiles = fn(&str) -> Option<(PathBuf, &'static str)>;

/// What the page reports.
pub enum FromPage {
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
pub struct PageServer {
    pub port: u16,
    pub reports: Receiver<FromPage>,
}

impl PageServer {
    pub fn start(files: PageFiles) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page's server");
        let port = listener.local_addr().expect("its port").port();
        let (tx, reports) = channel();
        // Ends with the test process; each connection gets a thread.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &tx, files);
                });
            }
        });
        PageServer { port, reports }
    }
}

/// One HTTP/1.1 request, answered and closed.
fn serve(stream: TcpStream, reports: &Sender<FromPage>, files: PageFiles) -> std::io::Result<()> {
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
            match files(path).and_then(|(f, kind)| Some((std::fs::read(f).ok()?, kind))) {
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
pub struct Chromium {
    child: Child,
    log: PathBuf,
}

impl Chromium {
    pub fn launch(url: &str, wav: &Path, dir: &Path) -> Chromium {
        Chromium::launch_with(url, wav, dir, &[])
    }

    /// As [`Chromium::launch`], with `extra` switches (for example
    /// `--ignore-certificate-errors` for a wss server with a test
    /// certificate).
    pub fn launch_with(url: &str, wav: &Path, dir: &Path, extra: &[&str]) -> Chromium {
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
            .args(extra)
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
    pub fn log_tail(&self) -> String {
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

pub fn chromium_installed() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: this test drives a real browser; install Debian's \
         (`apt-get update && apt-get install -y chromium`; .ci/run does)"
    );
}

//! Real phones for the end-to-end tests: baresip (Debian's `baresip-core`)
//! registered to the switch, driven through its `ctrl_tcp` module (netstring
//! JSON commands in, its call events out), talking from a WAV file that
//! holds a tone (`aufile`) and keeping what it hears (`sndfile` writes the
//! decoded audio of each call to `dump-…-dec.wav`). And the default
//! configuration, copied and moved to free ports, for the switch they
//! register to.

#![allow(dead_code)]

use hotswitch_e2e::{free_port, workspace_root, Switch, SwitchConfig, TempDir};
use hotswitch_media::goertzel::power;
use hotswitch_media::{WavReader, WavWriter};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a phone may take to do what it was asked on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// The repository's `conf/`, copied, with every listening port moved to a
/// free one and the databases kept in the copy: the default configuration
/// as a user runs it, side by side with other tests.
pub struct DefaultConf {
    pub dir: TempDir,
    pub sip_port: u16,
    pub external_port: u16,
}

impl DefaultConf {
    pub fn new(tag: &str) -> DefaultConf {
        let dir = TempDir::new(tag);
        copy_dir(&workspace_root().join("conf"), &dir.path().join("conf"));
        let (sip_port, external_port) = (free_port(), free_port());
        let conf = DefaultConf {
            dir,
            sip_port,
            external_port,
        };
        // db_dir and certs_dir: under the -base `start` gives.
        conf.edit("vars.xml", |t| {
            t.replace(
                "internal_sip_port=5060",
                &format!("internal_sip_port={sip_port}"),
            )
            .replace(
                "external_sip_port=5080",
                &format!("external_sip_port={external_port}"),
            )
            .replace(
                "internal_ws_port=5066",
                &format!("internal_ws_port={}", free_port()),
            )
            .replace(
                "internal_wss_port=7443",
                &format!("internal_wss_port={}", free_port()),
            )
        });
        let esl = free_port();
        conf.edit("autoload_configs/event_socket.conf.xml", |t| {
            t.replace("\"8021\"", &format!("\"{esl}\""))
        });
        let (ws, wss) = (free_port(), free_port());
        conf.edit("autoload_configs/verto.conf.xml", |t| {
            t.replace(":8081", &format!(":{ws}"))
                .replace(":8082", &format!(":{wss}"))
        });
        let cdr = conf.dir.path().join("cdr");
        conf.edit("autoload_configs/cdr_csv.conf.xml", |t| {
            t.replace(
                "value=\"$${log_dir}\"",
                &format!("value=\"{}\"", cdr.display()),
            )
        });
        conf
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// Rewrites a file of the copy.
    pub fn edit(&self, rel: &str, f: impl FnOnce(&str) -> String) {
        let p = self.conf_dir().join(rel);
        if let Ok(text) = std::fs::read_to_string(&p) {
            std::fs::write(&p, f(&text)).unwrap();
        }
    }

    pub fn start(&self) -> Switch {
        self.start_under(Vec::new())
    }

    /// Starts the switch under `wrapper` (`ip netns exec <ns>`).
    pub fn start_under(&self, wrapper: Vec<String>) -> Switch {
        Switch::start(SwitchConfig {
            conf_dir: Some(self.conf_dir()),
            // One base for every start: registrations (db_dir) outlive a
            // restart, as a real installation's do.
            args: vec!["-base".into(), self.dir.path().display().to_string()],
            wrapper,
            ..Default::default()
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Connects from inside the network namespace `ns` (a thread that enters
/// it; the socket stays usable from any thread).
pub fn connect_in_netns(ns: &str, to: (&str, u16)) -> std::io::Result<TcpStream> {
    let path = format!("/var/run/netns/{ns}");
    let to = (to.0.to_string(), to.1);
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&path)?;
        // SAFETY: a namespace file's descriptor, open for the call; only
        // this thread moves into the namespace, and it ends right after.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        TcpStream::connect((to.0.as_str(), to.1))
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
}

/// A port `p` with `p + 1` free as well: baresip listens for SIP on its
/// port (UDP and TCP) and for SIP over TLS on the next one.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no two free ports in a row");
}

/// One baresip event: its type and parameter, and when it was seen.
#[derive(Clone, Debug)]
pub struct PhoneEvent {
    pub at: Instant,
    pub kind: String,
    pub param: String,
}

/// A baresip softphone registered as `user` to the switch.
pub struct Phone {
    pub user: String,
    child: Child,
    ctrl: TcpStream,
    buf: Vec<u8>,
    pub events: Vec<PhoneEvent>,
    pub dir: TempDir,
    log: PathBuf,
}

/// How a phone reaches the switch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// How a phone is set up beyond its user and registrar.
#[derive(Clone)]
pub struct PhoneSetup {
    /// The address it listens on.
    pub ip: String,
    pub transport: Transport,
    /// The tone it sends (Hz).
    pub freq: f64,
    /// A command it runs under (for example `ip netns exec <ns>`).
    pub wrapper: Option<Vec<String>>,
    /// Its TLS certificate and key (one PEM): shown to the switch.
    pub certificate: Option<PathBuf>,
    /// The authorities it trusts for the switch's certificate.
    pub cafile: Option<PathBuf>,
    /// The account's `mediaenc` (`srtp`, `srtp-mand`, …).
    pub mediaenc: Option<String>,
    /// A network namespace it runs in (its control port is reached there).
    pub netns: Option<String>,
    /// Its codec modules (default `g711.so`): `opus.so`, `g722.so`, ….
    pub codecs: Vec<String>,
    /// The rate and channels of its audio (baresip 1.0 does not resample:
    /// they must be the codec's, 48000/2 for Opus, 16000/1 for G.722).
    pub audio: (u32, u8),
}

impl PhoneSetup {
    pub fn new(transport: Transport, freq: f64) -> PhoneSetup {
        PhoneSetup {
            ip: "127.0.0.1".into(),
            transport,
            freq,
            wrapper: None,
            certificate: None,
            cafile: None,
            mediaenc: None,
            netns: None,
            codecs: vec!["g711.so".into()],
            audio: (8000, 1),
        }
    }
}

impl Phone {
    /// Starts baresip as `user` (password 1234, the default directory's)
    /// registering to `registrar` (`host:port`), sending a sine of `freq`
    /// Hz. It answers only when told to.
    pub fn start(user: &str, registrar: &str, transport: Transport, freq: f64) -> Phone {
        Phone::start_at("127.0.0.1", user, registrar, transport, freq, None)
    }

    /// As [`Phone::start`], listening on `ip`, run through `wrapper` (for
    /// example `ip netns exec <ns>`) when given.
    pub fn start_at(
        ip: &str,
        user: &str,
        registrar: &str,
        transport: Transport,
        freq: f64,
        wrapper: Option<&[&str]>,
    ) -> Phone {
        let setup = PhoneSetup {
            ip: ip.into(),
            wrapper: wrapper.map(|w| w.iter().map(|s| s.to_string()).collect()),
            ..PhoneSetup::new(transport, freq)
        };
        Phone::start_with(user, registrar, &setup)
    }

    /// A phone as `setup` says.
    pub fn start_with(user: &str, registrar: &str, setup: &PhoneSetup) -> Phone {
        let (ip, freq) = (setup.ip.as_str(), setup.freq);
        let dir = TempDir::new(&format!("phone-{user}"));
        let wav = dir.path().join("talk.wav");
        write_tone_as(&wav, freq, 120.0, setup.audio);
        let snd = dir.path().join("snd");
        std::fs::create_dir_all(&snd).unwrap();
        let sip_port = free_port_pair();
        let ctrl_port = free_port();
        let rtp = 42000 + (sip_port % 200) * 100;
        let config = format!(
            "poll_method epoll\n\
             sip_listen {ip}:{sip_port}\n\
             audio_player aubridge,play-{user}-{sip_port}\n\
             audio_alert aubridge,alert-{user}-{sip_port}\n\
             audio_source aufile,{wav}\n\
             audio_srate {srate}\n\
             audio_channels {channels}\n\
             rtp_ports {rtp}-{rtp_end}\n\
             module_path /usr/lib/baresip/modules\n\
             {codec_modules}\
             module aufile.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen {ip}:{ctrl_port}\n\
             snd_path {snd}\n",
            wav = wav.display(),
            snd = snd.display(),
            rtp_end = rtp + 99,
            srate = setup.audio.0,
            channels = setup.audio.1,
            codec_modules = setup
                .codecs
                .iter()
                .map(|m| format!("module {m}\n"))
                .collect::<String>(),
        );
        let mut config = config;
        if let Some(c) = &setup.certificate {
            config.push_str(&format!("sip_certificate {}\n", c.display()));
        }
        if let Some(c) = &setup.cafile {
            config.push_str(&format!("sip_cafile {}\n", c.display()));
        }
        if setup.mediaenc.is_some() {
            config.push_str("module srtp.so\n");
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        let params = match setup.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        let mediaenc = match &setup.mediaenc {
            Some(m) => format!(";mediaenc={m}"),
            None => String::new(),
        };
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:{user}@{registrar}{params}>;auth_pass=1234;regint=60;answermode=manual{mediaenc}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("baresip.log");
        let netns_wrapper = setup.netns.as_ref().map(|ns| {
            ["ip", "netns", "exec", ns.as_str()]
                .map(str::to_string)
                .to_vec()
        });
        let mut cmd = match netns_wrapper.as_ref().or(setup.wrapper.as_ref()) {
            Some(w) => {
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).arg("baresip");
                c
            }
            None => Command::new("baresip"),
        };
        let child = cmd
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .expect("start baresip (Debian: apt install baresip-core)");
        let deadline = Instant::now() + WAIT;
        let ctrl = loop {
            let connected = match &setup.netns {
                Some(ns) => connect_in_netns(ns, (ip, ctrl_port)),
                None => TcpStream::connect((ip, ctrl_port)),
            };
            match connected {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "baresip ctrl_tcp: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        ctrl.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Phone {
            user: user.into(),
            child,
            ctrl,
            buf: Vec::new(),
            events: Vec::new(),
            dir,
            log,
        }
    }

    /// Sends a ctrl_tcp command (`dial`, `accept`, `hangup`, `hold`,
    /// `resume`, `sndcode`…).
    pub fn cmd(&mut self, command: &str, params: &str) {
        let m = serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
        let frame = format!("{}:{},", m.len(), m);
        self.ctrl.write_all(frame.as_bytes()).unwrap();
    }

    /// Reads what baresip sent so far into `events`.
    pub fn pump(&mut self) {
        let mut chunk = [0u8; 16384];
        loop {
            match self.ctrl.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        while let Some(colon) = self.buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&self.buf[..colon])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                panic!(
                    "bad netstring from baresip: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            };
            if self.buf.len() < colon + 1 + len + 1 {
                break;
            }
            let body = self.buf[colon + 1..colon + 1 + len].to_vec();
            self.buf.drain(..colon + 2 + len);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if v.get("event").and_then(|e| e.as_bool()) == Some(true) {
                self.events.push(PhoneEvent {
                    at: Instant::now(),
                    kind: v["type"].as_str().unwrap_or("").to_string(),
                    param: v["param"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }

    /// Waits for an event of `kind` seen after `since` (pumping the others
    /// too); fails the test after [`WAIT`].
    pub fn wait_event(
        &mut self,
        kind: &str,
        since: Instant,
        others: &mut [&mut Phone],
    ) -> PhoneEvent {
        self.try_wait_event(kind, since, others)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Phone::wait_event`], the failure given back (with the phone's
    /// events and log) for the caller to add what it knows.
    pub fn try_wait_event(
        &mut self,
        kind: &str,
        since: Instant,
        others: &mut [&mut Phone],
    ) -> Result<PhoneEvent, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.pump();
            for o in others.iter_mut() {
                o.pump();
            }
            if let Some(e) = self.events.iter().find(|e| e.kind == kind && e.at >= since) {
                return Ok(e.clone());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: no {kind} within {WAIT:?}; events: {:?}\n{}",
                    self.user,
                    self.events
                        .iter()
                        .map(|e| format!("{} {}", e.kind, e.param))
                        .collect::<Vec<_>>(),
                    self.log_text()
                ));
            }
        }
    }

    /// The first event of `kind` seen after `since`, if any.
    pub fn seen(&mut self, kind: &str, since: Instant) -> Option<PhoneEvent> {
        self.pump();
        self.events
            .iter()
            .find(|e| e.kind == kind && e.at >= since)
            .cloned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the phone heard on its last call (decoded), as samples.
    pub fn heard(&self) -> Vec<i16> {
        let snd = self.dir.path().join("snd");
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(&snd)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        dumps.sort();
        let last = dumps
            .last()
            .unwrap_or_else(|| panic!("{} kept no audio in {}", self.user, snd.display()));
        let mut r = WavReader::open(last, 8000).unwrap_or_else(|e| panic!("{e}"));
        r.read_to_end().unwrap()
    }

    /// Waits until the phone is registered (`sofia_contact` finds it).
    pub fn wait_registered(&mut self, sw: &mut Switch, domain: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = sw.cmd(&format!("sofia_contact {}@{domain}", self.user));
            if !c.trim().starts_with("error/") && c.contains("sip:") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not register: {c}\n{}",
                self.user,
                self.log_text()
            );
            self.pump();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `secs` of a sine at `freq` Hz (8 kHz mono) to `path`.
pub fn write_tone(path: &Path, freq: f64, secs: f64) {
    write_tone_as(path, freq, secs, (8000, 1))
}

/// A sine of `freq` Hz at `rate` in `channels` (the same in each).
pub fn write_tone_as(path: &Path, freq: f64, secs: f64, (rate, channels): (u32, u8)) {
    if (rate, channels) != (8000, 1) {
        let spec = hound::WavSpec {
            channels: channels as u16,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..(secs * rate as f64) as usize {
            let v = (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
                as i16;
            for _ in 0..channels {
                w.write_sample(v).unwrap();
            }
        }
        w.finalize().unwrap();
        return;
    }
    let mut w = WavWriter::create(path, 8000).unwrap();
    let n = (secs * 8000.0) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
        .collect();
    w.write(&samples).unwrap();
    w.finalize().unwrap();
}

/// The share of 100 ms blocks of `samples` in which `freq` carries most of
/// the energy (more than a third of it).
pub fn share_with(samples: &[i16], freq: f64) -> f64 {
    let blocks: Vec<&[i16]> = samples.chunks_exact(800).collect();
    if blocks.is_empty() {
        return 0.0;
    }
    let hits = blocks
        .iter()
        .filter(|b| {
            let energy: f64 =
                b.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / b.len() as f64;
            energy > 1000.0 && power(b, 8000, freq) > energy / 3.0
        })
        .count();
    hits as f64 / blocks.len() as f64
}

/// Pumps every phone for `d` (their events keep their own time).
pub fn pump_for(phones: &mut [&mut Phone], d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        for p in phones.iter_mut() {
            p.pump();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

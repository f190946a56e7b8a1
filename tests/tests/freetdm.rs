//! mod_freetdm against the real binary, with `hotswitch-linesim` playing
//! the phones on an FXS span and the network side of a PRI: an FXS phone
//! dials 9196 by DTMF and hears itself; originate rings a phone that
//! answers; PRI calls both ways with their causes; hunting and
//! congestion; a TDM call bridged to a loopback leg; hot reload.
//!
//! Needs `hotswitch-linesim` and `mod_freetdm` built into the same target
//! directory as the switch (`cargo build -p hotswitch -p mod_dptools
//! -p mod_loopback -p mod_freetdm -p hotswitch-linesim`).

use hotswitch_e2e::{build_dir, Event, Switch, SwitchConfig, TempDir};
use hotswitch_media::goertzel::power;
use hotswitch_media::WavReader;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// The line simulator, driven through its line protocol.
struct LineSim {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    events: VecDeque<String>,
}

impl LineSim {
    fn start(dir: &Path, mode: &str, channels: &str) -> LineSim {
        let bin = build_dir().join("hotswitch-linesim");
        assert!(
            bin.is_file(),
            "{} is missing: cargo build -p hotswitch-linesim",
            bin.display()
        );
        let mut child = Command::new(bin)
            .args([
                "--dir",
                &dir.display().to_string(),
                "--mode",
                mode,
                "--channels",
                channels,
            ])
            .args(["--d-channel", "24"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hotswitch-linesim");
        let stdin = child.stdin.take().unwrap();
        let rx = hotswitch_e2e::stdout_lines(&mut child);
        let mut sim = LineSim {
            child,
            stdin,
            lines: rx,
            events: VecDeque::new(),
        };
        assert_eq!(sim.reply(), "+OK ready");
        sim
    }

    fn reply(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the simulator replies");
            match line.strip_prefix("EVENT ") {
                Some(e) => self.events.push_back(e.to_string()),
                None => return line,
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        self.reply()
    }

    fn ok(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("+OK"), "{line}: {r}");
        r
    }

    /// Waits for an event starting with `prefix`; events before it stay.
    fn wait_event(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.events.iter().position(|e| e.starts_with(prefix)) {
                return self.events.remove(i).unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => match l.strip_prefix("EVENT ") {
                    Some(e) => self.events.push_back(e.to_string()),
                    None => panic!("unexpected reply while waiting for {prefix}: {l}"),
                },
                Err(_) => panic!("no event {prefix} in {:?}", self.events),
            }
        }
    }

    /// The share of the last `ms` of received audio that is a tone at `hz`.
    fn power(&mut self, ch: u16, hz: u32, ms: u32) -> f64 {
        let r = self.ok(&format!("power {ch} {hz} {ms}"));
        r[4..].trim().parse().unwrap()
    }

    /// Waits until channel `ch` hears `hz` (share above `share`).
    fn wait_hears(&mut self, ch: u16, hz: u32, share: f64) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let p = self.power(ch, hz, 300);
            if p > share {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "channel {ch} never heard {hz} Hz ({p})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LineSim {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dialplan(rec: &Path) -> String {
    format!(
        r#"<include>
  <context name="default">
    <extension name="echo"><condition field="destination_number" expression="^9196$">
      <action application="answer"/><action application="echo"/>
    </condition></extension>
    <extension name="park"><condition field="destination_number" expression="^5000$">
      <action application="answer"/><action application="park"/>
    </condition></extension>
    <extension name="digits"><condition field="destination_number" expression="^5100$">
      <action application="answer"/>
      <action application="play_and_get_digits" data="1 5 1 8000 # silence_stream://100 silence_stream://100 collected ^\d+$ 3000"/>
      <action application="park"/>
    </condition></extension>
    <extension name="to_loopback"><condition field="destination_number" expression="^7001$">
      <action application="bridge" data="{{rec_path={}}}loopback/rectone697/default/XML"/>
    </condition></extension>
    <extension name="record_and_tone"><condition field="destination_number" expression="^rectone(\d+)$">
      <action application="answer"/>
      <action application="record_session" data="${{rec_path}}"/>
      <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
    </condition></extension>
  </context>
</include>
"#,
        rec.display()
    )
}

/// A switch with an FXS span "1" (4 phones), a PRI span "pri" (user
/// side, B channels 1-4, D channel 24, group "trunk" = B 3 then 1) and an
/// FXO span "fxo" (2 exchange lines, inbound calls to 5000) and a PRI
/// span "net" on the network side (A-law, B channels 1-2).
struct Rig {
    sw: Switch,
    dir: TempDir,
}

impl Rig {
    fn start() -> Rig {
        let dir = TempDir::new("freetdm");
        let conf = format!(
            r#"<configuration name="freetdm.conf">
  <spans>
    <span name="1" id="1" driver="virtual" signalling="analog" trunk-type="fxs">
      <param name="channels" value="1-4"/>
      <param name="socket-dir" value="{fxs}"/>
      <param name="digit-timeout" value="600"/>
      <param name="group" value="phones"/>
    </span>
    <span name="pri" id="2" driver="virtual" signalling="isdn" pri-side="user">
      <param name="channels" value="1-4"/>
      <param name="d-channel" value="24"/>
      <param name="socket-dir" value="{pri}"/>
      <param name="context" value="default"/>
    </span>
    <span name="fxo" id="3" driver="virtual" signalling="analog" trunk-type="fxo">
      <param name="channels" value="1-2"/>
      <param name="socket-dir" value="{fxo}"/>
      <param name="fxo-destination" value="5000"/>
    </span>
    <span name="net" id="4" driver="virtual" signalling="isdn" pri-side="network">
      <param name="channels" value="1-2"/>
      <param name="d-channel" value="24"/>
      <param name="socket-dir" value="{net}"/>
      <param name="codec" value="PCMA"/>
    </span>
  </spans>
  <groups><group name="trunk"><member span="pri" channels="3,1"/></group></groups>
</configuration>"#,
            fxs = dir.path().join("fxs").display(),
            pri = dir.path().join("pri").display(),
            fxo = dir.path().join("fxo").display(),
            net = dir.path().join("net").display(),
        );
        let sw = Switch::start(SwitchConfig {
            autoload: vec![
                "mod_loopback".into(),
                "mod_dptools".into(),
                "mod_freetdm".into(),
            ],
            files: vec![
                ("autoload_configs/freetdm.conf.xml".into(), conf),
                (
                    "dialplan/test.xml".into(),
                    dialplan(&dir.path().join("loop.wav")),
                ),
            ],
            ..Default::default()
        });
        Rig { sw, dir }
    }

    fn fxs(&self) -> PathBuf {
        self.dir.path().join("fxs")
    }

    fn phones(&self) -> LineSim {
        LineSim::start(&self.fxs(), "phones", "1-4")
    }

    fn network(&self) -> LineSim {
        LineSim::start(&self.dir.path().join("pri"), "network", "1-4")
    }

    fn count(&mut self) -> usize {
        let r = self.sw.cmd("show channels count");
        r.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{r}"))
    }

    fn wait_count(&mut self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.count() != n {
            assert!(
                Instant::now() < deadline,
                "never {n} channels: {}",
                self.sw.cmd("show channels")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Originates to `dial` and parks; the new leg's uuid and channel.
    fn originate(&mut self, dial: &str) -> (String, String) {
        let r = self.sw.cmd(&format!("originate {dial} &park()"));
        let r = r.trim();
        assert!(r.starts_with("+OK "), "originate {dial}: {r}");
        let uuid = r[4..].to_string();
        let chan = self
            .sw
            .cmd(&format!("uuid_getvar {uuid} freetdm_chan_number"))
            .trim()
            .to_string();
        (uuid, chan)
    }
}

fn hangup_cause(e: &Event) -> &str {
    e.get("Hangup-Cause").unwrap_or("")
}

#[test]
fn an_fxs_phone_hears_dial_tone_dials_9196_by_dtmf_and_hears_its_own_audio_echoed() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("offhook 1");
    // Dial tone: 350 + 440 Hz, each about half of what the phone hears.
    phone.wait_hears(1, 440, 0.3);
    assert!(phone.power(1, 350, 300) > 0.3);
    phone.ok("dial 1 9196");
    rig.wait_count(1);
    phone.ok("tone 1 1000");
    let heard = phone.wait_hears(1, 1000, 0.8);
    assert!(phone.power(1, 440, 300) < 0.01, "dial tone stopped");
    assert!(heard > 0.8, "the echo is the phone's own tone: {heard}");
    let show = rig.sw.cmd("show channels");
    assert!(show.contains("FreeTDM/1:1/9196"), "{show}");
    let list = rig.sw.cmd("ftdm list");
    assert!(list.contains("chan 1: UP"), "{list}");
    // The phone changes its tone: the echo follows.
    phone.ok("tone 1 1400");
    phone.wait_hears(1, 1400, 0.8);
    phone.ok("onhook 1");
    rig.wait_count(0);
    assert!(rig.sw.cmd("ftdm list").contains("chan 1: DOWN"));
}

#[test]
fn originate_freetdm_1_a_1000_rings_a_phone_which_answers() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("autoanswer 1 on");
    let (uuid, chan) = rig.originate("freetdm/1/a/1000");
    assert_eq!(chan, "1");
    assert_eq!(phone.wait_event("ring "), "ring 1");
    assert_eq!(phone.wait_event("answered "), "answered 1");
    assert_eq!(
        rig.sw
            .cmd(&format!("uuid_getvar {uuid} endpoint_disposition"))
            .trim(),
        "ANSWER"
    );
    let dump = rig.sw.cmd("ftdm dump 1 1");
    assert!(dump.contains("state: UP") && dump.contains(&uuid), "{dump}");
    // The switch hangs up: the phone hears busy tone until it hangs up.
    assert!(rig.sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    rig.wait_count(0);
    phone.wait_hears(1, 620, 0.3);
    phone.ok("onhook 1");
    std::thread::sleep(Duration::from_millis(100));
    assert!(rig.sw.cmd("ftdm dump 1 1").contains("state: DOWN"));
}

#[test]
fn hunting_takes_free_channels_in_order_and_reports_congestion_when_all_are_busy() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    for ch in 1..=4 {
        phone.ok(&format!("autoanswer {ch} on"));
    }
    assert_eq!(rig.originate("freetdm/1/a/1000").1, "1");
    assert_eq!(rig.originate("freetdm/1/A/1000").1, "4");
    assert_eq!(rig.originate("freetdm/1/a/1000").1, "2");
    // A busy channel asked for by number, and no channel at all.
    assert_eq!(
        rig.sw.cmd("originate freetdm/1/2/1000 &park()").trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    assert_eq!(rig.originate("freetdm/1/3/1000").1, "3");
    for d in ["a", "A", "r", "R"] {
        assert_eq!(
            rig.sw
                .cmd(&format!("originate freetdm/1/{d}/1000 &park()"))
                .trim(),
            "-ERR NORMAL_CIRCUIT_CONGESTION",
            "{d}"
        );
    }
    assert_eq!(
        rig.sw
            .cmd("originate freetdm/group/phones/1000 &park()")
            .trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    assert!(rig.sw.cmd("hupall").starts_with("+OK"));
    rig.wait_count(0);
    for ch in 1..=4 {
        phone.ok(&format!("onhook {ch}"));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Round robin goes on from the channel used last.
    let picks: Vec<String> = (0..3)
        .map(|_| rig.originate("freetdm/1/r/1000").1)
        .collect();
    assert_eq!(picks, ["1", "2", "3"]);
    // A group hunts in its own order.
    assert_eq!(rig.originate("freetdm/group/phones/1000").1, "4");
}

#[test]
fn pri_calls_out_answered_and_busy_and_hunts_the_trunk_group_in_its_order() {
    let mut rig = Rig::start();
    let mut net = rig.network();
    assert!(rig.sw.cmd("/event plain CHANNEL_HANGUP").starts_with("+OK"));
    net.ok("auto answer");
    let (uuid, chan) = rig.originate("freetdm/group/trunk/5551000");
    assert_eq!(chan, "3", "the group's first member");
    let setup = net.wait_event("setup ");
    assert!(
        setup.contains("chan=3") && setup.contains("called=5551000"),
        "{setup}"
    );
    let dump = rig.sw.cmd("ftdm dump pri 3");
    assert!(dump.contains("isdn call: cr 1 out U10 chan 3"), "{dump}");
    assert!(rig.sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    let d = net.wait_event("disconnect ");
    assert!(d.ends_with("cause=16"), "{d}");
    net.wait_event("released ");
    // The far end is busy: DISCONNECT with cause 17.
    net.ok("auto busy");
    assert_eq!(
        rig.sw.cmd("originate freetdm/pri/a/5552000 &park()").trim(),
        "-ERR USER_BUSY"
    );
    let e = rig
        .sw
        .wait_event(WAIT, |e| {
            e.name() == "CHANNEL_HANGUP" && hangup_cause(e) == "USER_BUSY"
        })
        .expect("the leg hangs up USER_BUSY");
    assert_eq!(e.get("Channel-Name"), Some("FreeTDM/2:1/5552000"));
}

#[test]
fn pri_calls_in_are_answered_and_a_disconnect_with_cause_17_arrives_as_user_busy() {
    let mut rig = Rig::start();
    let mut net = rig.network();
    assert!(rig.sw.cmd("/event plain CHANNEL_HANGUP").starts_with("+OK"));
    let id = net.ok("call 5000 5551234 2")[4..].to_string();
    net.wait_event(&format!("proceeding {id}"));
    net.wait_event(&format!("connect {id}"));
    rig.wait_count(1);
    let show = rig.sw.cmd("show channels");
    assert!(
        show.contains("FreeTDM/2:2/5000") && show.contains("5551234"),
        "{show}"
    );
    net.ok(&format!("hangup {id} 17"));
    let e = rig
        .sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP")
        .expect("the call hangs up");
    assert_eq!(hangup_cause(&e), "USER_BUSY");
    assert_eq!(e.get("Caller-Caller-ID-Number"), Some("5551234"));
    net.wait_event(&format!("released {id}"));
    rig.wait_count(0);
    // A SETUP for a B channel that is taken is refused with cause 44.
    let a = net.ok("call 5000 5551234 1")[4..].to_string();
    net.wait_event(&format!("connect {a}"));
    let b = net.ok("call 5000 5551234 1")[4..].to_string();
    assert_eq!(
        net.wait_event(&format!("disconnect {b}")),
        format!("disconnect {b} cause=44")
    );
}

fn tone_power(path: &Path, freq: f64) -> f64 {
    let mut r = WavReader::open(path, 8000).unwrap_or_else(|e| panic!("{e}"));
    let samples = r.read_to_end().unwrap();
    assert!(
        samples.len() > 4000,
        "{} holds {} samples",
        path.display(),
        samples.len()
    );
    power(&samples[800..], 8000, freq)
}

#[test]
fn a_tdm_call_bridged_to_a_loopback_leg_carries_audio_both_ways() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("offhook 2");
    phone.wait_hears(2, 440, 0.3);
    phone.ok("dial 2 7001");
    // The loopback side plays 697 Hz: the phone hears it.
    phone.wait_hears(2, 697, 0.5);
    phone.ok("tone 2 1000");
    std::thread::sleep(Duration::from_millis(1500));
    phone.ok("onhook 2");
    rig.wait_count(0);
    std::thread::sleep(Duration::from_millis(200));
    // The loopback side recorded what it played and what the phone sent.
    let wav = rig.dir.path().join("loop.wav");
    let (heard, own, none) = (
        tone_power(&wav, 1000.0),
        tone_power(&wav, 697.0),
        tone_power(&wav, 1400.0),
    );
    assert!(own > 1e5, "own tone recorded: {own}");
    assert!(
        heard > 20.0 * none.max(1.0),
        "the phone's 1000 Hz crossed: {heard} vs {none}"
    );
}

/// mod_freetdm has no live-reload handover: `reload` with a call up is
/// refused as FreeSWITCH refuses it, and the call goes on, on the same copy.
#[test]
fn reload_is_refused_with_a_call_up_and_the_call_goes_on() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("autoanswer 1 on");
    let (uuid, _) = rig.originate("freetdm/1/a/1000");
    assert_eq!(phone.wait_event("answered "), "answered 1");
    let r = rig.sw.cmd("reload mod_freetdm");
    // FreeSWITCH's reload reply: a line for the unload, one for the load.
    assert!(
        r.lines()
            .any(|l| l == "-ERR unloading module [Module in use.]"),
        "{r}"
    );
    assert_eq!(
        rig.sw.cmd(&format!("uuid_exists {uuid}")).trim(),
        "true",
        "the call goes on"
    );
    assert_eq!(rig.count(), 1);
    // The span is still the one that carries it: the phone's hangup ends it.
    phone.ok("onhook 1");
    rig.wait_count(0);
}

#[test]
fn unload_is_refused_with_a_call_up_and_idle_it_releases_the_span_and_load_brings_it_back() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("autoanswer 1 on");
    let (uuid, _) = rig.originate("freetdm/1/a/1000");
    assert_eq!(
        rig.sw.cmd("unload mod_freetdm").trim(),
        "-ERR [Module in use.]"
    );
    assert!(rig.sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    rig.wait_count(0);
    phone.ok("onhook 1");
    let sock = rig.fxs().join("span.sock");
    assert!(sock.exists());
    assert!(
        rig.sw.cmd("unload mod_freetdm").starts_with("+OK"),
        "idle unload"
    );
    assert!(!sock.exists(), "the span's socket is closed and removed");
    phone.wait_event("bye");
    assert!(rig
        .sw
        .mapped_shadows()
        .iter()
        .all(|m| !m.contains("mod_freetdm")));
    assert!(rig.sw.cmd("load mod_freetdm").starts_with("+OK"));
    assert!(sock.exists());
    phone.ok("hello");
    std::thread::sleep(Duration::from_millis(100));
    let (_, chan) = rig.originate("freetdm/1/a/1000");
    assert_eq!(chan, "1");
    let stop = rig.sw.cmd("ftdm stop 1");
    assert!(stop.starts_with("+OK"), "{stop}");
    rig.wait_count(0);
    assert_eq!(
        rig.sw.cmd("originate freetdm/1/a/1000 &park()").trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    // A stopped span still hears its phones hang up.
    phone.ok("onhook 1");
    let deadline = Instant::now() + WAIT;
    while !rig.sw.cmd("ftdm dump 1 1").contains("state: DOWN") {
        assert!(Instant::now() < deadline, "channel 1 never went down");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rig.sw.cmd("ftdm list").contains("state: STOPPED"));
    assert!(rig.sw.cmd("ftdm start 1").starts_with("+OK"));
    assert_eq!(rig.originate("freetdm/1/a/1000").1, "1");
}

#[test]
fn an_fxo_line_answers_a_ringing_call_and_dials_out_in_band_after_seizing() {
    let mut rig = Rig::start();
    let mut line = LineSim::start(&rig.dir.path().join("fxo"), "exchange", "1-2");
    line.ok("ring 1 on");
    assert_eq!(
        line.wait_event("seize "),
        "seize 1",
        "answered by seizing the line"
    );
    rig.wait_count(1);
    let show = rig.sw.cmd("show channels");
    assert!(show.contains("FreeTDM/3:1/5000"), "{show}");
    // The exchange drops the loop: the call ends.
    line.ok("onhook 1");
    rig.wait_count(0);
    let (uuid, chan) = rig.originate("freetdm/fxo/a/5551234");
    assert_eq!(chan, "1");
    assert_eq!(line.wait_event("seize "), "seize 1");
    let deadline = Instant::now() + WAIT;
    loop {
        let d = line.ok("digits 1");
        if d.trim() == "+OK 5551234" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the number is dialled as DTMF: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(rig.sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    assert_eq!(line.wait_event("release "), "release 1");
}

#[test]
fn dtmf_a_phone_sends_in_band_during_a_call_reaches_play_and_get_digits() {
    let mut rig = Rig::start();
    let mut phone = rig.phones();
    phone.ok("offhook 3");
    phone.wait_hears(3, 440, 0.3);
    phone.ok("dial 3 5100");
    rig.wait_count(1);
    let dump = rig.sw.cmd("ftdm dump 1 3");
    let uuid = dump
        .lines()
        .find_map(|l| l.strip_prefix("session: "))
        .expect("the channel's session")
        .trim()
        .to_string();
    // Give play_and_get_digits time to start listening.
    std::thread::sleep(Duration::from_millis(500));
    phone.ok("dial 3 42#");
    let deadline = Instant::now() + WAIT;
    while rig.sw.cmd(&format!("uuid_getvar {uuid} collected")).trim() != "42" {
        assert!(Instant::now() < deadline, "the digits never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    phone.ok("onhook 3");
    rig.wait_count(0);
}

#[test]
fn a_pri_span_on_the_network_side_picks_the_b_channel_for_calls_from_the_user() {
    let mut rig = Rig::start();
    let mut user = LineSim::start(&rig.dir.path().join("net"), "user", "1-2");
    // No channel asked for: the network side chooses the first free one.
    let id = user.ok("call 5000 5557777")[4..].to_string();
    net_connected(&mut user, &id);
    rig.wait_count(1);
    assert!(rig.sw.cmd("show channels").contains("FreeTDM/4:1/5000"));
    let id2 = user.ok("call 5000 5557777")[4..].to_string();
    net_connected(&mut user, &id2);
    rig.wait_count(2);
    // Both B channels busy: a third call is refused with cause 34.
    let id3 = user.ok("call 5000 5557777")[4..].to_string();
    assert_eq!(
        user.wait_event(&format!("disconnect {id3}")),
        format!("disconnect {id3} cause=34")
    );
    assert_eq!(
        rig.sw.cmd("originate freetdm/net/a/1000 &park()").trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    user.ok(&format!("hangup {id} 16"));
    user.ok(&format!("hangup {id2} 16"));
    rig.wait_count(0);
    // And calls towards the user, answered by it.
    user.ok("auto answer");
    let (_, chan) = rig.originate("freetdm/net/A/1000");
    assert_eq!(chan, "2");
    assert!(user.wait_event("setup ").contains("chan=2"));
}

fn net_connected(user: &mut LineSim, id: &str) {
    user.wait_event(&format!("proceeding {id}"));
    user.wait_event(&format!("connect {id}"));
}

//! mod_gsmopen against the real binary, with hotswitch-modemsim standing in
//! for the modem on a pseudo-terminal: calls both ways with audio, busy and
//! no-answer causes, DTMF, SMS both ways (long and non-ASCII), a modem
//! unplugged mid-call, and unload/load.

use hotswitch_e2e::{build_dir, ok_uuid, workspace_root, Event, Switch, SwitchConfig, TempDir};
use hotswitch_media::goertzel::power;
use hotswitch_media::WavReader;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// The modem simulator, driven over its stdin/stdout.
struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
    link: PathBuf,
    audio: PathBuf,
    slave: String,
}

impl Sim {
    fn start(dir: &Path) -> Sim {
        let link = dir.join("modem0");
        let audio = dir.join("audio0");
        let bin = build_dir().join("hotswitch-modemsim");
        assert!(
            bin.is_file(),
            "{} is missing: build -p hotswitch-modemsim",
            bin.display()
        );
        let mut child = Command::new(bin)
            .arg("--link")
            .arg(&link)
            .arg("--audio")
            .arg(&audio)
            .arg("--tone")
            .arg("1004")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the modem simulator");
        let stdin = child.stdin.take().unwrap();
        let rx = hotswitch_e2e::stdout_lines(&mut child);
        let mut sim = Sim {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            link,
            audio,
            slave: String::new(),
        };
        let ready = sim.wait(|l| l.starts_with("READY "));
        sim.slave = ready["READY ".len()..].to_string();
        sim
    }

    /// Waits for a line matching `pred` (lines seen earlier count, once).
    fn wait(&mut self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for(WAIT, pred)
            .unwrap_or_else(|| panic!("simulator never said it; it said: {:#?}", self.seen))
    }

    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(i) = self.seen.iter().position(|l| pred(l)) {
            return Some(self.seen.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if pred(&line) {
                return Some(line);
            }
            self.seen.push(line);
        }
    }

    /// Runs a script command and waits for its acknowledgement.
    fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the simulator");
        self.stdin.flush().unwrap();
        let ok = format!("OK {line}");
        let got = self.wait(|l| l == ok || l.starts_with("ERR "));
        assert_eq!(got, ok, "simulator refused '{line}'");
    }

    /// What the switch sent in the last call.
    fn received_audio(&mut self, dir: &Path) -> Vec<i16> {
        let p = dir.join(format!("sim-{}.raw", unique()));
        self.cmd(&format!("save-audio {}", p.display()));
        let bytes = std::fs::read(&p).unwrap();
        bytes
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

const TEST_DIALPLAN: &str = r#"<include>
  <context name="gsmtest">
    <extension name="record_and_tone">
      <condition field="destination_number" expression="^rectone(\d+)$">
        <action application="answer"/>
        <action application="record_session" data="${rec_path}"/>
        <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
      </condition>
    </extension>
  </context>
</include>
"#;

/// A switch whose gsmopen.conf points at `sim`, the module loaded and its
/// interface up.
fn gsm_switch(sim: &Sim, extra_params: &str) -> Switch {
    let conf = format!(
        r#"<configuration name="gsmopen.conf" description="GSM modems">
  <per_interface_settings>
    <interface id="1" name="gsm0">
      <param name="controldevice_name" value="{}"/>
      <param name="controldevice_audio_name" value="{}"/>
      <param name="context" value="default"/>
      <param name="dialplan" value="XML"/>
      <param name="destination" value="9196"/>
      <param name="poll_interval" value="1"/>
      <param name="reopen_interval" value="0.2"/>
      <param name="command_timeout" value="2"/>
      {extra_params}
    </interface>
  </per_interface_settings>
</configuration>
"#,
        sim.link.display(),
        sim.audio.display()
    );
    let default_dialplan =
        std::fs::read_to_string(workspace_root().join("conf/dialplan/default.xml")).unwrap();
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_dptools".into()],
        files: vec![
            ("autoload_configs/gsmopen.conf.xml".into(), conf),
            ("dialplan/default.xml".into(), default_dialplan),
            ("dialplan/gsmtest.xml".into(), TEST_DIALPLAN.into()),
        ],
        ..Default::default()
    });
    let r = sw.cmd("load mod_gsmopen");
    assert!(r.starts_with("+OK"), "{r}\n{}", sw.log());
    wait_up(&mut sw);
    sw
}

fn status_line(sw: &mut Switch) -> String {
    let s = sw.cmd("gsm status");
    s.lines()
        .find(|l| l.starts_with("gsm0 "))
        .unwrap_or_else(|| panic!("no gsm0 in {s}"))
        .to_string()
}

fn wait_status(sw: &mut Switch, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let l = status_line(sw);
        if l.contains(needle) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "gsm0 never showed {needle}: {l}\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_up(sw: &mut Switch) {
    wait_status(sw, "state=UP registration=home");
}

fn wait_gone(sw: &mut Switch, uuid: &str) {
    hotswitch_e2e::wait_gone(sw, uuid, WAIT);
}

fn hangup_cause(sw: &mut Switch, uuid: &str) -> String {
    let u = uuid.to_string();
    let e: Event = sw
        .wait_event(WAIT, |e| {
            e.name() == "CHANNEL_HANGUP_COMPLETE" && e.get("Unique-ID") == Some(u.as_str())
        })
        .unwrap_or_else(|| panic!("no CHANNEL_HANGUP_COMPLETE for {u}"));
    e.get("Hangup-Cause").unwrap_or("").to_string()
}

/// Power at `freq` relative to the strongest of a few other frequencies.
fn tone_ratio(samples: &[i16], freq: f64) -> f64 {
    assert!(samples.len() > 4000, "only {} samples", samples.len());
    let s = &samples[800..];
    let p = power(s, 8000, freq);
    let others = [440.0, 1400.0, 2000.0, 350.0]
        .iter()
        .map(|f| power(s, 8000, *f))
        .fold(1.0f64, f64::max);
    p / others
}

#[test]
fn an_outbound_call_answered_by_the_modem_carries_audio_both_ways() {
    let dir = TempDir::new("gsm-out");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    let wav = dir.path().join("switch.wav");
    let uuid = ok_uuid(&sw.cmd(&format!(
        "originate {{rec_path={}}}gsmopen/gsm0/5551234 rectone697 XML gsmtest",
        wav.display()
    )));
    sim.wait(|l| l == "CMD ATD5551234;");
    sim.wait(|l| l == "CALL active");
    let l = wait_status(&mut sw, "call=active:5551234");
    assert!(l.contains(&uuid), "{l}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    sim.cmd("hangup");
    assert_eq!(hangup_cause(&mut sw, &uuid), "NORMAL_CLEARING");
    wait_gone(&mut sw, &uuid);
    // The switch's tone reached the modem…
    let heard_by_modem = sim.received_audio(dir.path());
    let r = tone_ratio(&heard_by_modem, 697.0);
    assert!(r > 50.0, "697 Hz at the modem: ratio {r}");
    // …and the modem's tone reached the switch (record_session mixes both).
    std::thread::sleep(Duration::from_millis(200));
    let mut reader = WavReader::open(&wav, 8000).unwrap_or_else(|e| panic!("{e}"));
    let recorded = reader.read_to_end().unwrap();
    let r = tone_ratio(&recorded, 1004.0);
    assert!(
        r > 50.0,
        "1004 Hz from the modem in the recording: ratio {r}"
    );
    wait_status(&mut sw, "call=idle");
}

#[test]
fn an_inbound_call_with_caller_id_is_routed_to_echo() {
    let dir = TempDir::new("gsm-in");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert!(sw
        .cmd("/event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    sim.cmd("ring +15551234");
    let create = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_CREATE")
        .expect("an inbound session");
    assert_eq!(create.get("Caller-Caller-ID-Number"), Some("+15551234"));
    assert_eq!(create.get("Caller-Destination-Number"), Some("9196"));
    assert_eq!(create.get("Call-Direction"), Some("inbound"));
    assert_eq!(create.get("Channel-Name"), Some("gsmopen/gsm0/+15551234"));
    let uuid = create.get("Unique-ID").unwrap().to_string();
    sw.wait_event(WAIT, |e| e.name() == "CHANNEL_ANSWER")
        .expect("answered by the dialplan");
    sim.wait(|l| l == "CMD ATA");
    sim.wait(|l| l == "CALL active");
    std::thread::sleep(Duration::from_millis(1500));
    sim.cmd("hangup");
    assert_eq!(hangup_cause(&mut sw, &uuid), "NORMAL_CLEARING");
    // Echo sent the modem's own tone back.
    let echoed = sim.received_audio(dir.path());
    let r = tone_ratio(&echoed, 1004.0);
    assert!(r > 50.0, "the modem hears its 1004 Hz back: ratio {r}");
    wait_status(&mut sw, "call=idle calls_in=1");
}

#[test]
fn busy_and_no_answer_become_user_busy_and_no_answer() {
    let dir = TempDir::new("gsm-busy");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    sim.cmd("policy busy");
    assert_eq!(
        sw.cmd("originate gsmopen/gsm0/5550001 &park()").trim(),
        "-ERR USER_BUSY"
    );
    sim.cmd("policy noanswer 500");
    assert_eq!(
        sw.cmd("originate gsmopen/ANY/5550002 &park()").trim(),
        "-ERR NO_ANSWER"
    );
    sim.wait(|l| l == "CMD ATD5550002;");
    wait_status(&mut sw, "call=idle");
    sim.cmd("policy cme 30");
    assert_eq!(
        sw.cmd("originate gsmopen/gsm0/5550003 &park()").trim(),
        "-ERR NETWORK_OUT_OF_ORDER"
    );
    // An unknown interface, and a bad number, never reach the modem.
    assert_eq!(
        sw.cmd("originate gsmopen/nosuch/1 &park()").trim(),
        "-ERR INVALID_GATEWAY"
    );
    assert_eq!(
        sw.cmd("originate gsmopen/gsm0/12;ATH &park()").trim(),
        "-ERR INVALID_NUMBER_FORMAT"
    );
}

#[test]
fn dtmf_goes_to_the_modem_as_vts_and_comes_back_as_dtmf_events() {
    let dir = TempDir::new("gsm-dtmf");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/gsm0/5551000 &park()"));
    assert_eq!(
        sw.cmd(&format!("uuid_send_dtmf {uuid} 12#")).trim(),
        format!("+OK {uuid} sent DTMF 12#.")
    );
    for d in ["1", "2", "#"] {
        sim.wait(|l| l == format!("DTMF {d}"));
    }
    // And the other way: a key pressed at the far end.
    assert!(sw.cmd("/event plain DTMF").starts_with("+OK"));
    sim.cmd("dtmf 7");
    let u = uuid.clone();
    let e = sw
        .wait_event(WAIT, |e| {
            e.name() == "DTMF" && e.get("Unique-ID") == Some(&u)
        })
        .expect("a DTMF event from the modem");
    assert_eq!(e.get("DTMF-Digit"), Some("7"));
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    sim.wait(|l| l == "CMD ATH");
    wait_gone(&mut sw, &uuid);
}

/// Waits for a MESSAGE event. The console prints an event body without a
/// line end (FreeSWITCH's plain format) while the harness reads bodies by
/// whole lines, so a body is only complete once more console output
/// follows it; `wait_event`'s short read deadlines would drop it. Console
/// commands (30 s deadline) pull the events in instead, with an `echo` that
/// ends the body line; the echoed text is cut off the body again.
fn message_event(sw: &mut Switch) -> Event {
    const FLUSH: &str = "__gsm_flush__";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        sw.cmd(&format!("echo {FLUSH}"));
        if let Some(mut e) = sw.wait_event(Duration::ZERO, |e| e.name() == "MESSAGE") {
            if let Some(b) = e.body.as_mut() {
                if let Some(i) = b.find(FLUSH) {
                    b.truncate(i);
                }
            }
            return e;
        }
        assert!(Instant::now() < deadline, "no MESSAGE event\n{}", sw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sms_go_both_ways_including_300_non_ascii_characters() {
    let dir = TempDir::new("gsm-sms");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert!(sw.cmd("/event plain MESSAGE").starts_with("+OK"));
    // Out: short ASCII through the api, long Cyrillic through ANY.
    assert_eq!(
        sw.cmd("gsmopen_sendsms gsm0 +15550001 hello from the switch")
            .trim(),
        "+OK SMS sent through gsm0"
    );
    sim.wait(|l| l == "SMS +15550001 hello from the switch");
    let long: String = "Съешь же ещё этих мягких французских булок. "
        .chars()
        .cycle()
        .take(300)
        .collect();
    assert_eq!(long.chars().count(), 300);
    assert_eq!(
        sw.cmd(&format!("gsmopen_sendsms ANY 5550002 {long}"))
            .trim(),
        "+OK SMS sent through gsm0"
    );
    let expect = format!("SMS 5550002 {long}");
    sim.wait(|l| l == expect);
    // A message the network refuses is an error, not a silent loss.
    sim.cmd("smsfail on");
    let r = sw.cmd("gsmopen_sendsms gsm0 1 refused");
    assert!(r.starts_with("-ERR +CMS ERROR: 38"), "{r}");
    sim.cmd("smsfail off");
    // In: a garbled line first, then a 300-character message in 5 parts.
    sim.cmd("garbage");
    let incoming: String = "Ωμέγα ✓ ".chars().cycle().take(300).collect();
    sim.cmd(&format!("sms +4915112345 {incoming}"));
    let e = message_event(&mut sw);
    assert_eq!(e.get("from"), Some("+4915112345"));
    assert_eq!(e.get("proto"), Some("gsmopen"));
    assert_eq!(e.get("interface_name"), Some("gsm0"));
    assert_eq!(
        e.body.as_deref().map(str::trim_end),
        Some(incoming.trim_end())
    );
    for i in 1..=5 {
        sim.wait(|l| l == format!("SMS-DELETED {i}"));
    }
    sim.cmd("stored");
    sim.wait(|l| l == "STORED 0");
    let st = status_line(&mut sw);
    assert!(st.contains("sms_in=1 sms_out=2"), "{st}");
    assert!(sw.log().contains("unexpected line from the modem, skipped"));
}

#[test]
fn a_message_left_on_the_sim_while_the_module_was_away_is_delivered_at_load() {
    let dir = TempDir::new("gsm-sim-left");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert_eq!(sw.cmd("unload mod_gsmopen").trim(), "+OK");
    sim.cmd("sms 777 waiting for you");
    assert!(sw.cmd("/event plain MESSAGE").starts_with("+OK"));
    assert!(sw.cmd("load mod_gsmopen").starts_with("+OK"));
    let e = message_event(&mut sw);
    assert_eq!(e.get("from"), Some("777"));
    assert_eq!(e.body.as_deref().map(str::trim), Some("waiting for you"));
    sim.wait(|l| l == "SMS-DELETED 1");
}

#[test]
fn a_message_read_but_not_deleted_is_delivered_again_after_a_restart() {
    let dir = TempDir::new("gsm-redeliver");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert!(sw.cmd("/event plain MESSAGE").starts_with("+OK"));
    // The switch stops between reading and deleting: the delete never
    // happens, so the message is still on the SIM.
    sim.cmd("keep on");
    sim.cmd("sms 555 read once, kept");
    let e = message_event(&mut sw);
    assert_eq!(e.body.as_deref().map(str::trim), Some("read once, kept"));
    sim.wait(|l| l == "CMD AT+CMGD=1");
    assert_eq!(sw.cmd("unload mod_gsmopen").trim(), "+OK");
    sim.cmd("keep off");
    assert!(sw.cmd("load mod_gsmopen").starts_with("+OK"));
    let e = message_event(&mut sw);
    assert_eq!(e.get("from"), Some("555"));
    assert_eq!(e.body.as_deref().map(str::trim), Some("read once, kept"));
    sim.wait(|l| l == "SMS-DELETED 1");
}

#[test]
fn a_modem_unplugged_mid_call_hangs_up_and_is_reopened_when_plugged_back() {
    let dir = TempDir::new("gsm-unplug");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/gsm0/5551000 &park()"));
    sim.cmd("unplug");
    assert_eq!(hangup_cause(&mut sw, &uuid), "NETWORK_OUT_OF_ORDER");
    let l = wait_status(&mut sw, "state=DOWN");
    assert!(l.contains("reason="), "{l}");
    assert_eq!(
        sw.cmd("originate gsmopen/ANY/5551000 &park()").trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    sim.cmd("plug");
    wait_up(&mut sw);
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/gsm0/5551001 &park()"));
    sim.wait(|l| l == "CMD ATD5551001;");
    sim.cmd("hangup");
    assert_eq!(hangup_cause(&mut sw, &uuid), "NORMAL_CLEARING");
}

#[test]
fn a_modem_that_stops_answering_is_marked_down_and_reset_brings_it_back() {
    let dir = TempDir::new("gsm-mute");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    sim.cmd("mute on");
    wait_status(&mut sw, "state=DOWN");
    sim.cmd("mute off");
    wait_up(&mut sw);
    assert!(sw.cmd("gsm reset gsm0").starts_with("+OK gsm0 reset"));
    sim.wait(|l| l == "CMD ATZ");
    wait_up(&mut sw);
}

/// The switch's open file descriptors that point at `target`.
fn fds_on(pid: u32, target: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|p| p.to_string_lossy() == target)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn unload_is_refused_with_a_call_up_and_closes_the_port_when_idle() {
    let dir = TempDir::new("gsm-unload");
    let sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    assert_eq!(fds_on(sw.pid(), &sim.slave), 1, "the port is open");
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/gsm0/5551000 &park()"));
    let r = sw.cmd("unload mod_gsmopen");
    assert!(r.contains("Module in use."), "{r}");
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    wait_gone(&mut sw, &uuid);
    assert_eq!(sw.cmd("unload mod_gsmopen").trim(), "+OK");
    assert_eq!(fds_on(sw.pid(), &sim.slave), 0, "unload closed the port");
    assert!(sw.cmd("gsm status").starts_with("-ERR"));
    assert!(sw.cmd("load mod_gsmopen").starts_with("+OK"));
    wait_up(&mut sw);
    assert_eq!(fds_on(sw.pid(), &sim.slave), 1);
}

/// mod_gsmopen has no live-reload handover: `reload` with a call up is
/// refused as FreeSWITCH refuses it, and the call goes on, on the same copy.
#[test]
fn reload_is_refused_with_a_call_up_and_the_call_goes_on() {
    let dir = TempDir::new("gsm-reload");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/gsm0/5551000 &park()"));
    sim.wait(|l| l == "CMD ATD5551000;");
    sim.wait(|l| l == "CALL active");
    wait_status(&mut sw, "call=active:5551000");
    let r = sw.cmd("reload mod_gsmopen");
    // FreeSWITCH's reload reply: a line for the unload, one for the load.
    assert!(
        r.lines()
            .any(|l| l == "-ERR unloading module [Module in use.]"),
        "{r}"
    );
    assert_eq!(sw.cmd(&format!("uuid_exists {uuid}")).trim(), "true");
    let l = wait_status(&mut sw, "call=active:5551000");
    assert!(l.contains(&uuid), "the same call, on the same copy: {l}");
    assert_eq!(fds_on(sw.pid(), &sim.slave), 1, "the port stays open");
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    sim.cmd("hangup");
    assert_eq!(hangup_cause(&mut sw, &uuid), "NORMAL_CLEARING");
    wait_gone(&mut sw, &uuid);
}

#[test]
fn text_mode_sends_and_receives_plain_messages() {
    let dir = TempDir::new("gsm-text");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, r#"<param name="sms_mode" value="text"/>"#);
    sim.wait(|l| l == "CMD AT+CMGF=1");
    assert!(sw.cmd("/event plain MESSAGE").starts_with("+OK"));
    assert!(sw
        .cmd("gsmopen_sendsms gsm0 123 plain text")
        .starts_with("+OK"));
    sim.wait(|l| l == "SMS 123 plain text");
    sim.cmd("sms +100 hi in text mode");
    let e = message_event(&mut sw);
    assert_eq!(e.get("from"), Some("+100"));
    assert_eq!(e.body.as_deref().map(str::trim), Some("hi in text mode"));
}

#[test]
fn an_incoming_sms_is_routed_through_the_configured_chat_protocol() {
    let dir = TempDir::new("gsm-chat");
    let mut sim = Sim::start(dir.path());
    // Routed back out through gsmopen itself: what arrives from +1 goes to 5559999.
    let mut sw = gsm_switch(
        &sim,
        r#"<param name="sms_chat_proto" value="gsmopen"/>
           <param name="sms_chat_to" value="gsm0/5559999"/>"#,
    );
    sim.cmd("sms +1 forward me");
    sim.wait(|l| l == "SMS 5559999 forward me");
    sim.wait(|l| l == "SMS-DELETED 1");
    wait_status(&mut sw, "sms_in=1 sms_out=1");
}

#[test]
fn any_takes_only_a_registered_modem() {
    let dir = TempDir::new("gsm-creg");
    let mut sim = Sim::start(dir.path());
    let mut sw = gsm_switch(&sim, "");
    sim.cmd("register 2");
    wait_status(&mut sw, "registration=searching");
    assert_eq!(
        sw.cmd("originate gsmopen/ANY/5551000 &park()").trim(),
        "-ERR NORMAL_CIRCUIT_CONGESTION"
    );
    sim.cmd("register 5");
    wait_status(&mut sw, "registration=roaming");
    let uuid = ok_uuid(&sw.cmd("originate gsmopen/ANY/5551000 &park()"));
    assert!(status_line(&mut sw).contains(&uuid));
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    wait_gone(&mut sw, &uuid);
}

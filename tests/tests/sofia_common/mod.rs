//! Helpers shared by the mod_sofia end-to-end tests: a switch with the
//! `internal` profile on a free port, sipp runs (scenarios in tests/sipp/),
//! channel variables, RTP packets.
#![allow(dead_code)]

use hotswitch_e2e::{free_port, workspace_root, Switch, SwitchConfig};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A switch with mod_sofia's profile `internal` on a free port.
pub struct Sip {
    pub sw: Switch,
    pub port: u16,
}

pub const DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <params><param name="dial-string" value="{presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}"/></params>
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params>
      <variables><variable name="user_context" value="default"/></variables></user>
  </users></group></groups>
</domain></include>"#;

pub fn dialplan(extra: &str) -> String {
    format!(
        r#"<include><context name="default">
  <extension name="echo"><condition field="destination_number" expression="^9196$">
    <action application="answer"/><action application="echo"/></condition></extension>
  <extension name="park"><condition field="destination_number" expression="^5900$">
    <action application="answer"/><action application="park"/></condition></extension>
  <extension name="ring"><condition field="destination_number" expression="^3000$">
    <action application="ring_ready"/><action application="sleep" data="20000"/></condition></extension>
  <extension name="digits"><condition field="destination_number" expression="^4000$">
    <action application="answer"/>
    <action application="play_and_get_digits" data="3 3 1 8000 # silence_stream://200 silence_stream://200 got_digits \d+"/>
    <action application="park"/></condition></extension>
  {extra}
</context></include>"#
    )
}

/// A switch as [`start`] gives, its console printing `events`.
pub fn start_with_events(events: &str) -> Sip {
    let mut s = start("", "", "");
    let out = s.sw.cmd(&format!("/event plain {events}"));
    assert!(out.contains("+OK"), "{out}");
    s
}

pub fn start(settings: &str, extra_dialplan: &str, profile_extra: &str) -> Sip {
    let port = free_port();
    let sw = start_on(port, settings, extra_dialplan, profile_extra, None);
    Sip { sw, port }
}

pub fn start_on(
    port: u16,
    settings: &str,
    extra_dialplan: &str,
    profile_extra: &str,
    db: Option<&PathBuf>,
) -> Switch {
    start_with_files(port, settings, extra_dialplan, profile_extra, db, &[])
}

/// [`start_on`] with more configuration files (relative path, text),
/// written after the usual ones (so they may replace them).
pub fn start_with_files(
    port: u16,
    settings: &str,
    extra_dialplan: &str,
    profile_extra: &str,
    db: Option<&PathBuf>,
    extra_files: &[(&str, &str)],
) -> Switch {
    let db_param = db
        .map(|p| format!(r#"<param name="registration-db" value="{}"/>"#, p.display()))
        .unwrap_or_default();
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="internal">{profile_extra}<settings>
    <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
    <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="default"/>
    <param name="codec-prefs" value="PCMU,PCMA"/><param name="rtp-timeout-sec" value="60"/>
    {db_param}{settings}
  </settings></profile>
</profiles></configuration>"#
    );
    Switch::start(SwitchConfig {
        autoload: vec![
            "mod_sofia".into(),
            "mod_dptools".into(),
            "mod_loopback".into(),
        ],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
  <param name="rtp-start-port" value="30000"/><param name="rtp-end-port" value="40000"/>
</settings></configuration>"#
                    .into(),
            ),
            ("dialplan/default.xml".into(), dialplan(extra_dialplan)),
            ("directory/default.xml".into(), DIRECTORY.into()),
        ]
        .into_iter()
        .chain(
            extra_files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string())),
        )
        .collect(),
        ..Default::default()
    })
}

/// Waits until a sipp started as a UAS holds its SIP port (a busy machine
/// may take a while to start it).
pub fn sipp_listening(port: u16) {
    hotswitch_e2e::wait_udp_bound(port, Duration::from_secs(10));
}

/// One sipp run.
pub struct Sipp {
    child: Child,
    log: PathBuf,
    name: String,
}

pub fn scenario(name: &str) -> String {
    workspace_root()
        .join("tests/sipp")
        .join(name)
        .display()
        .to_string()
}

/// Starts sipp with `scenario` against `target` (or as a server with
/// `target` = None), `-key` pairs and extra arguments.
pub fn sipp(name: &str, target: Option<u16>, keys: &[(&str, &str)], args: &[&str]) -> Sipp {
    sipp_on("127.0.0.1", name, target, keys, args)
}

/// Waits until something listens on TCP `port` (from /proc/net/tcp).
pub fn tcp_listening(port: u16) {
    let needle = format!(":{port:04X}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let listening = table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&needle) && f[3] == "0A"
        });
        if listening {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on TCP port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`sipp`] with its sockets on the local address `ip`.
pub fn sipp_on(
    ip: &str,
    name: &str,
    target: Option<u16>,
    keys: &[(&str, &str)],
    args: &[&str],
) -> Sipp {
    let dir = std::env::temp_dir().join(format!("hotswitch-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("{}-{}.log", name, free_port()));
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf").arg(scenario(name));
    if let Some(p) = target {
        cmd.arg(format!("127.0.0.1:{p}"));
    }
    cmd.args(["-i", ip, "-nostdin", "-timeout", "40s", "-timeout_error"]);
    cmd.arg("-mp")
        .arg(hotswitch_e2e::free_media_ports().to_string());
    let mut have_rtp = false;
    for (k, v) in keys {
        have_rtp |= *k == "rtp_port";
        cmd.args(["-key", k, v]);
        // [authentication] takes its credentials from -au / -ap.
        match *k {
            "auth_user" => {
                cmd.args(["-au", v]);
            }
            "auth_password" => {
                cmd.args(["-ap", v]);
            }
            _ => {}
        }
    }
    if !have_rtp {
        let p = free_port().to_string();
        cmd.args(["-key", "rtp_port", &p]);
    }
    cmd.args(args);
    cmd.arg("-trace_err").arg("-error_file").arg(&log);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (Debian: apt install sip-tester; .ci/run installs it)");
    Sipp {
        child,
        log,
        name: name.into(),
    }
}

impl Sipp {
    /// Waits for sipp to end; panics with its error log unless every call
    /// succeeded.
    pub fn success(mut self, sw: &Switch) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let errors = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(
                    st.success(),
                    "sipp {} failed ({st}):\n{errors}\nswitch log:\n{}",
                    self.name,
                    tail(&sw.log())
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sipp {} did not finish\nswitch log:\n{}",
                self.name,
                tail(&sw.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The uuid of the only channel, waiting for it to appear.
pub fn only_channel(sw: &mut Switch) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = sw.cmd("show channels");
        if let Some(line) = out.lines().nth(1).filter(|l| l.contains(',')) {
            return line.split(',').next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no channel appeared: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn getvar(sw: &mut Switch, uuid: &str, var: &str) -> String {
    sw.cmd(&format!("uuid_getvar {uuid} {var}"))
        .trim()
        .to_string()
}

pub fn wait_var(sw: &mut Switch, uuid: &str, var: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = getvar(sw, uuid, var);
        if v == want || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// 20 ms of a μ-law tone whose frequency encodes `n` (so every packet is
/// recognisably its own).
pub fn tone_frame(n: usize) -> Vec<u8> {
    let f = 300.0 + 25.0 * n as f64;
    (0..160)
        .map(|i| {
            let s = (8000.0 * (2.0 * std::f64::consts::PI * f * i as f64 / 8000.0).sin()) as i16;
            ulaw(s)
        })
        .collect()
}

pub fn ulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(32635) + 0x84;
    let exp = (7 - ((s as u32) << 17).leading_zeros().min(7)) as i32;
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mant) as u8
}

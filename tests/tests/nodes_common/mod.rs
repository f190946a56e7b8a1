//! Helpers for the tests of several nodes (sofia_pg.rs, kamailio.rs):
//! a node is a switch whose `internal` profile keeps registrations in a
//! shared PostgreSQL (`odbc-dsn`), with a dialplan that bridges 1000 and
//! 1001 to the registered users; sipp drives the phones.

#![allow(dead_code)]

use hotswitch_e2e::{free_port, workspace_root, Switch, SwitchConfig};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DIALPLAN: &str = r#"<include><context name="default">
  <extension name="users"><condition field="destination_number" expression="^(100[01])$">
    <action application="bridge" data="user/$1@127.0.0.1"/></condition></extension>
  <extension name="echo"><condition field="destination_number" expression="^9196$">
    <action application="answer"/><action application="echo"/></condition></extension>
  <extension name="park"><condition field="destination_number" expression="^5900$">
    <action application="answer"/><action application="park"/></condition></extension>
</context></include>"#;

const DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <params><param name="dial-string" value="{presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}"/></params>
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params></user>
    <user id="1001"><params><param name="password" value="1234"/></params></user>
  </users></group></groups>
</domain></include>"#;

/// A node on `port` sharing registrations in `dsn`; `settings`: more
/// profile params.
pub fn node_with(port: u16, dsn: &str, settings: &str) -> Switch {
    node_full(port, dsn, settings, &[], Vec::new())
}

/// As [`node_with`], with more modules loaded and more configuration files.
pub fn node_full(
    port: u16,
    dsn: &str,
    settings: &str,
    modules: &[&str],
    files: Vec<(String, String)>,
) -> Switch {
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="internal"><settings>
    <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
    <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="default"/>
    <param name="odbc-dsn" value="{dsn}"/>{settings}
  </settings></profile>
</profiles></configuration>"#
    );
    Switch::start(SwitchConfig {
        autoload: ["mod_sofia", "mod_dptools"]
            .iter()
            .chain(modules)
            .map(|m| m.to_string())
            .collect(),
        files: [
            ("autoload_configs/sofia.conf.xml".to_string(), sofia),
            ("directory/default.xml".into(), DIRECTORY.into()),
            ("dialplan/default.xml".into(), DIALPLAN.into()),
        ]
        .into_iter()
        .chain(files)
        .collect(),
        ..Default::default()
    })
}

/// A node on `port` sharing registrations in `dsn`.
pub fn node(port: u16, dsn: &str) -> Switch {
    node_with(port, dsn, "")
}

pub fn wait_log(sw: &Switch, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sw.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sipp run; its errors go to a file [`succeeds`] shows.
pub struct Sipp {
    child: Child,
    errors: std::path::PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.errors);
    }
}

/// Starts sipp with `scenario` against `target` (or as a server).
pub fn sipp(scenario: &str, target: Option<u16>, args: &[&str]) -> Sipp {
    let errors = std::env::temp_dir().join(format!(
        "hs-nodes-sipp-{}-{}.log",
        std::process::id(),
        free_port()
    ));
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(workspace_root().join("tests/sipp").join(scenario));
    if let Some(p) = target {
        cmd.arg(format!("127.0.0.1:{p}"));
    }
    cmd.args(["-i", "127.0.0.1", "-nostdin", "-m", "1"])
        .args(["-timeout", "40s", "-timeout_error"])
        .arg("-mp")
        .arg(hotswitch_e2e::free_media_ports().to_string())
        .args(args)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .expect("sipp must be installed (Debian: sip-tester; .ci/run installs it)");
    Sipp { child, errors }
}

/// Waits for sipp to end; fails the test, with sipp's errors, unless its
/// call succeeded.
pub fn succeeds(s: Sipp, what: &str) {
    if let Err(e) = try_succeeds(s, what) {
        panic!("{e}");
    }
}

/// [`succeeds`], the failure given back for the caller to add to.
pub fn try_succeeds(mut s: Sipp, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            if st.success() {
                return Ok(());
            }
            return Err(format!(
                "sipp {what} failed: {st}\n{}",
                std::fs::read_to_string(&s.errors).unwrap_or_default()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("sipp {what} did not finish"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port free for UDP as well (the harness's `free_port` checks both).
pub fn free_udp_port() -> u16 {
    free_port()
}

/// A phone answering one call on `ua_port` (where it registered), the
/// INVITE carrying a line that matches `want_header`; returns once it
/// listens.
pub fn answering_phone(ua_port: u16, want_header: &str) -> Sipp {
    let phone = sipp(
        "uas_answer.xml",
        None,
        &[
            "-key",
            "want_header",
            want_header,
            "-key",
            "rtp_port",
            &free_port().to_string(),
            "-p",
            &ua_port.to_string(),
        ],
    );
    hotswitch_e2e::wait_udp_bound(ua_port, Duration::from_secs(10));
    phone
}

pub fn register(port: u16, user: &str, ua_port: u16) {
    let ua = ua_port.to_string();
    succeeds(
        sipp(
            "register.xml",
            Some(port),
            &[
                "-key",
                "auth_user",
                user,
                "-au",
                user,
                "-ap",
                "1234",
                "-p",
                &ua,
            ],
        ),
        "register",
    );
}

pub fn wait_contact(sw: &mut Switch, aor: &str, ua_port: u16) {
    let want = format!("sofia/internal/sip:{aor}:{ua_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = sw.cmd(&format!("sofia_contact {aor}"));
        if c.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{aor}: {c}\n{}", sw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! mod_verto against real clients: the published verto client (`vertojs`
//! from npm, run by Node: tests/verto/client.js) logs in, is refused a
//! wrong password, places calls and answers the switch's calls; a WebRTC
//! stack (werift: tests/verto/media.js) sends audio to the echo extension
//! and gets it back over ICE and DTLS-SRTP; raw frames (tests/verto/
//! hostile.js) check the JSON-RPC errors; unload and load reopen the port.
//!
//! Needs Node and `npm ci --prefix tests/verto` (the tests run `npm install`
//! there themselves when `node_modules` is missing).

use hotswitch_e2e::{free_port, wait_until, workspace_root, Switch, SwitchConfig};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Once;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

const DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params>
      <variables><variable name="user_context" value="default"/></variables></user>
  </users></group></groups>
</domain></include>"#;

const DIALPLAN: &str = r#"<include><context name="default">
  <extension name="echo"><condition field="destination_number" expression="^9196$">
    <action application="answer"/><action application="echo"/></condition></extension>
  <extension name="short"><condition field="destination_number" expression="^5000$">
    <action application="answer"/><action application="sleep" data="300"/>
    <action application="hangup" data="NORMAL_CLEARING"/></condition></extension>
</context></include>"#;

fn client_dir() -> PathBuf {
    workspace_root().join("tests/verto")
}

/// Node must be installed; vertojs and ws come from npm (tests/verto).
fn npm_ready() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.is_ok_and(|o| o.status.success()),
            "node is not installed (Debian: apt install nodejs npm)"
        );
        if ["vertojs", "ws", "werift"]
            .iter()
            .all(|p| client_dir().join("node_modules").join(p).is_dir())
        {
            return;
        }
        let st = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(client_dir())
            .status()
            .expect("run npm install in tests/verto");
        assert!(st.success(), "npm install in tests/verto failed");
    });
}

/// A switch with profile `ws` on a free port.
fn start() -> (Switch, u16) {
    start_with(&[], vec![("dialplan/default.xml".into(), DIALPLAN.into())])
}

/// A switch with mod_verto's profile `ws` on a free port, `more` modules
/// and these configuration files.
fn start_with(more: &[&str], files: Vec<(String, String)>) -> (Switch, u16) {
    npm_ready();
    let port = free_port();
    let verto = format!(
        r#"<configuration name="verto.conf"><settings><param name="debug" value="0"/></settings>
<profiles><profile name="ws">
  <param name="bind-local" value="127.0.0.1:{port}"/>
  <param name="userauth" value="true"/><param name="blind-reg" value="false"/>
  <param name="context" value="public"/><param name="dialplan" value="XML"/>
</profile></profiles></configuration>"#
    );
    let mut autoload: Vec<String> = vec![
        "mod_dptools".into(),
        "mod_loopback".into(),
        "mod_verto".into(),
    ];
    autoload.extend(more.iter().map(|m| m.to_string()));
    let mut all = vec![
        ("autoload_configs/verto.conf.xml".to_string(), verto),
        ("directory/default.xml".to_string(), DIRECTORY.to_string()),
    ];
    all.extend(files);
    let sw = Switch::start(SwitchConfig {
        autoload,
        files: all,
        ..Default::default()
    });
    (sw, port)
}

/// A Node script of tests/verto, its output read line by line.
struct Node {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Node {
    fn run(script: &str, args: &[String]) -> Node {
        let mut child = Command::new("node")
            .arg(client_dir().join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let lines = hotswitch_e2e::stdout_lines(&mut child);
        Node {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn client(port: u16, login: &str, passwd: &str, mode: &[&str]) -> Node {
        let mut args = vec![
            format!("ws://127.0.0.1:{port}"),
            login.to_string(),
            passwd.to_string(),
        ];
        args.extend(mode.iter().map(|s| s.to_string()));
        Node::run("client.js", &args)
    }

    /// Waits for a line starting with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?}; the client said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Runs to the end: everything it printed, and whether it succeeded.
    fn finish(mut self) -> (bool, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for node") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("reap node");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(50));
        self.seen.extend(self.lines.try_iter());
        (status.success(), self.seen.join("\n"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The frames the client received.
fn received(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| l.strip_prefix("RECV "))
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect()
}

fn count(sw: &mut Switch) -> usize {
    sw.channel_count()
}

#[test]
fn vertojs_logs_in_as_a_directory_user_and_is_told_the_client_is_ready() {
    let (_sw, port) = start();
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}");
    let frames = received(&out);
    assert!(
        frames
            .iter()
            .any(|f| f["result"]["message"] == "logged in" && f["result"]["sessid"].is_string()),
        "{out}"
    );
    assert!(
        frames.iter().any(|f| f["method"] == "verto.clientReady"),
        "{out}"
    );
}

#[test]
fn a_wrong_password_is_refused_with_freeswitchs_authentication_failure() {
    let (mut sw, port) = start();
    assert!(sw
        .cmd("/event plain CUSTOM verto::login")
        .starts_with("+OK"));
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "wrong", &["login"]).finish();
    assert!(ok && out.contains("LOGIN FAILED"), "{out}");
    let err = received(&out)
        .into_iter()
        .find(|f| f.get("error").is_some())
        .unwrap_or_else(|| panic!("no error frame: {out}"));
    assert_eq!(err["error"]["code"], -32001, "{out}");
    assert_eq!(err["error"]["message"], "Authentication Failure", "{out}");
    // An unknown user is refused the same way.
    let (_, out) = Node::client(port, "4321@127.0.0.1", "1234", &["login"]).finish();
    assert!(out.contains("LOGIN FAILED"), "{out}");
    let e = sw
        .wait_event(WAIT, |e| e.get("Event-Subclass") == Some("verto::login"))
        .expect("a verto::login event");
    assert_eq!(e.get("verto_success"), Some("0"));
    assert_eq!(e.get("verto_result_txt"), Some("Authentication Failure"));
    assert_eq!(e.get("verto_login"), Some("1000@127.0.0.1"));
    assert!(sw.alive());
}

#[test]
fn a_client_that_goes_away_mid_call_has_its_call_hung_up() {
    let (mut sw, port) = start();
    let mut c = Node::client(
        port,
        "1000@127.0.0.1",
        "1234",
        &["call", "9196", "", "10000"],
    );
    c.expect("ANSWERED");
    wait_until(&mut sw, "the verto call is up", |sw| count(sw) == 1);
    drop(c);
    wait_until(&mut sw, "the call of the vanished client is gone", |sw| {
        count(sw) == 0
    });
}

#[test]
fn a_vertojs_call_to_9196_is_answered_takes_a_digit_is_held_and_hangs_up() {
    let (mut sw, port) = start();
    assert!(sw
        .cmd("/event plain DTMF CHANNEL_HOLD CHANNEL_UNHOLD")
        .starts_with("+OK"));
    let mut c = Node::client(
        port,
        "1000@127.0.0.1",
        "1234",
        &["call", "9196", "5", "1500", "hold"],
    );
    c.expect("ANSWERED");
    let digit = sw
        .wait_event(WAIT, |e| e.name() == "DTMF")
        .expect("verto.info's digit reaches the channel");
    assert_eq!(digit.get("DTMF-Digit"), Some("5"));
    assert_eq!(digit.get("DTMF-Source"), Some("ENDPOINT"));
    c.expect("UNHELD");
    for name in ["CHANNEL_HOLD", "CHANNEL_UNHOLD"] {
        let e = sw
            .wait_event(WAIT, |e| e.name() == name)
            .unwrap_or_else(|| panic!("verto.modify fires {name}"));
        assert_eq!(e.get("Channel-Name"), Some("verto.rtc/9196"));
    }
    wait_until(&mut sw, "the verto call is up", |sw| count(sw) == 1);
    let channels = sw.cmd("show channels");
    assert!(channels.contains("verto.rtc/9196"), "{channels}");
    let (ok, out) = c.finish();
    assert!(ok && out.contains("HUNG UP"), "{out}");
    let frames = received(&out);
    let result = |m: &str| frames.iter().any(|f| f["result"]["message"] == m);
    assert!(result("CALL CREATED"), "{out}");
    assert!(result("SENT"), "the digit was taken: {out}");
    assert!(result("CALL ENDED"), "{out}");
    assert!(
        frames.iter().any(|f| f["method"] == "verto.answer"),
        "{out}"
    );
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
}

#[test]
fn the_switch_hanging_up_sends_verto_bye_to_the_client() {
    let (mut sw, port) = start();
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["wait-bye", "5000"]).finish();
    assert!(ok && out.contains("BYE FROM SWITCH"), "{out}");
    let bye = received(&out)
        .into_iter()
        .find(|f| f["method"] == "verto.bye")
        .unwrap_or_else(|| panic!("no verto.bye: {out}"));
    assert_eq!(bye["params"]["cause"], "NORMAL_CLEARING");
    assert_eq!(bye["params"]["causeCode"], 16);
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
}

#[test]
fn a_call_to_a_logged_in_user_is_offered_answered_and_ended_by_the_switch() {
    let (mut sw, port) = start();
    let mut c = Node::client(port, "1000@127.0.0.1", "1234", &["answer"]);
    c.expect("READY");
    assert_eq!(
        sw.cmd("verto_contact 1000@127.0.0.1").trim(),
        "verto.rtc/1000@127.0.0.1"
    );
    let r = sw.cmd("originate verto.rtc/1000@127.0.0.1 &park()");
    let r = r.trim();
    assert!(r.starts_with("+OK "), "originate: {r}");
    c.expect("INVITED");
    assert_eq!(sw.cmd(&format!("uuid_kill {}", &r[4..])).trim(), "+OK");
    let (ok, out) = c.finish();
    assert!(ok && out.contains("BYE FROM SWITCH"), "{out}");
    assert_eq!(
        sw.cmd("verto_contact 4321@127.0.0.1").trim(),
        "error/user_not_registered"
    );
}

/// Runs tests/verto/media.js to its end: how many packets it sent, and how
/// many came back as they were sent.
fn media_run(node: Node, sw: &Switch) -> (usize, usize, String) {
    let (ok, out) = node.finish();
    assert!(ok, "{out}\n{}", sw.log());
    let line = out
        .lines()
        .find(|l| l.starts_with("MEDIA "))
        .unwrap_or_else(|| panic!("{out}"));
    let field = |name: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (field("sent"), field("matched"), out)
}

fn media_client(port: u16, mode: &[&str]) -> Node {
    let mut args = vec![
        format!("ws://127.0.0.1:{port}"),
        "1000@127.0.0.1".into(),
        "1234".into(),
    ];
    args.extend(mode.iter().map(|s| s.to_string()));
    Node::run("media.js", &args)
}

#[test]
fn webrtc_audio_sent_to_9196_comes_back() {
    let (mut sw, port) = start();
    let (sent, matched, out) = media_run(media_client(port, &["call", "9196"]), &sw);
    assert_eq!(sent, 100, "{out}");
    // Echo returns what it reads; allow for packets in flight at the ends.
    assert!(matched >= 80, "the audio came back: {out}");
    assert!(out.contains("CALL ENDED"), "{out}");
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
    // The media tasks end with the module.
    assert_eq!(sw.cmd("unload mod_verto").trim(), "+OK");
    assert!(
        !sw.mapped_shadows().iter().any(|p| p.contains("mod_verto")),
        "mod_verto is unmapped, not pinned: {:?}",
        sw.mapped_shadows()
    );
}

#[test]
fn webrtc_audio_crosses_a_call_the_switch_places_to_a_client() {
    let (mut sw, port) = start();
    let mut node = media_client(port, &["answer"]);
    node.expect("READY");
    let r = sw.cmd("originate verto.rtc/1000@127.0.0.1 &echo()");
    assert!(r.trim().starts_with("+OK "), "originate: {r}");
    let (sent, matched, out) = media_run(node, &sw);
    assert_eq!(sent, 100, "{out}");
    assert!(matched >= 80, "the audio came back: {out}");
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
}

#[test]
fn hostile_frames_get_json_rpc_errors_and_never_a_crash() {
    let (mut sw, port) = start();
    let node = Node::run("hostile.js", &[format!("ws://127.0.0.1:{port}")]);
    let (ok, out) = node.finish();
    assert!(ok, "{out}");
    let replies: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(tag, _)| !tag.is_empty())
        .filter_map(|(tag, j)| Some((tag, serde_json::from_str(j).ok()?)))
        .map(|(tag, v): (&str, serde_json::Value)| serde_json::json!({"tag": tag, "v": v}))
        .collect();
    let code = |tag: &str| {
        replies
            .iter()
            .find(|r| r["tag"] == tag)
            .map(|r| r["v"]["error"]["code"].clone())
            .unwrap_or_else(|| panic!("no reply to {tag}: {out}"))
    };
    assert_eq!(code("malformed"), -32600);
    assert_eq!(code("version"), -32600);
    assert_eq!(code("unauthenticated"), -32000);
    assert_eq!(code("binary"), -32600);
    assert_eq!(code("unknown"), -32601);
    assert_eq!(code("bye-nocall"), -32002);
    assert!(out.contains("huge closed"), "{out}");
    assert!(sw.alive());
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "still serving: {out}");
}

#[test]
fn unload_is_refused_with_a_call_up_and_when_idle_closes_the_port_until_load() {
    let (mut sw, port) = start();
    let mut c = Node::client(
        port,
        "1000@127.0.0.1",
        "1234",
        &["call", "9196", "", "3000"],
    );
    c.expect("ANSWERED");
    assert_eq!(sw.cmd("unload mod_verto").trim(), "-ERR [Module in use.]");
    let (ok, out) = c.finish();
    assert!(ok, "{out}");
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
    assert_eq!(sw.cmd("unload mod_verto").trim(), "+OK");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener is closed"
    );
    assert!(
        !sw.mapped_shadows().iter().any(|p| p.contains("mod_verto")),
        "mod_verto is unmapped, not pinned: {:?}",
        sw.mapped_shadows()
    );
    assert!(sw.cmd("load mod_verto").contains("+OK"));
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}");
}

/// A SIP phone played by sipp: it answers one call and echoes the RTP it
/// receives (`-rtp_echo`), until the BYE.
fn sipp_phone(port: u16, media: u16) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(workspace_root().join("tests/sipp/uas_answer.xml"))
        .args(["-i", "127.0.0.1", "-nostdin", "-m", "1", "-rtp_echo"])
        .args(["-timeout", "40s", "-timeout_error"])
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-key", "rtp_port", &media.to_string()])
        .args(["-key", "want_header", "INVITE"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (Debian: apt install sip-tester)")
}

#[test]
fn a_verto_client_calls_a_sip_phone_and_the_audio_crosses_both_ways() {
    let (sip, phone, media) = (free_port(), free_port(), free_port());
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles><profile name="internal"><settings>
  <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{sip}"/>
  <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="default"/>
</settings></profile></profiles></configuration>"#
    );
    let dialplan = DIALPLAN.replace(
        "</context>",
        &format!(
            r#"<extension name="sip-phone"><condition field="destination_number" expression="^7001$">
    <action application="bridge" data="sofia/internal/phone@127.0.0.1:{phone}"/></condition></extension>
</context>"#
        ),
    );
    let (sw, port) = start_with(
        &["mod_sofia"],
        vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            ("dialplan/default.xml".into(), dialplan),
        ],
    );
    let mut sipp = sipp_phone(phone, media);
    std::thread::sleep(Duration::from_millis(300));
    // verto (WebRTC, DTLS-SRTP) → bridge → SIP (plain RTP) → sipp echoes →
    // back across the bridge to the browser side.
    let (sent, matched, out) = media_run(media_client(port, &["call", "7001"]), &sw);
    assert_eq!(sent, 100, "{out}");
    assert!(
        matched >= 60,
        "the audio crossed both ways: {out}\n{}",
        sw.log()
    );
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Ok(Some(st)) = sipp.try_wait() {
            break st;
        }
        assert!(Instant::now() < deadline, "sipp did not see the BYE");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "sipp's call failed: {status}");
}

//! mod_verto against real clients: the published verto client (`vertojs`
//! from npm, run by Node: tests/verto/client.js) logs in, is refused a
//! wrong password, places calls and answers the switch's calls; a WebRTC
//! stack (werift: tests/verto/media.js) sends audio to the echo extension
//! and gets it back over ICE and DTLS-SRTP; raw frames (tests/verto/
//! hostile.js) check the JSON-RPC errors; unload and load reopen the port;
//! a vertojs call with werift audio (tests/verto/vertojs_media.js) lives
//! through `reload mod_verto`.
//!
//! Needs Node and `npm ci --prefix tests/verto` (the tests run `npm install`
//! there themselves when `node_modules` is missing).

mod verto_common;

use hotswitch_e2e::{free_port, wait_until, workspace_root, Switch};
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use verto_common::{client_dir, start_verto, DIALPLAN};

const WAIT: Duration = Duration::from_secs(20);

/// A switch with profile `ws` on a free port.
fn start() -> (Switch, u16) {
    start_with(&[], vec![("dialplan/default.xml".into(), DIALPLAN.into())])
}

/// The default dialplan file.
fn dialplan() -> Vec<(String, String)> {
    vec![("dialplan/default.xml".into(), DIALPLAN.into())]
}

/// A switch with mod_verto's profile `ws` on a free port, `more` modules
/// and these configuration files.
fn start_with(more: &[&str], files: Vec<(String, String)>) -> (Switch, u16) {
    let port = free_port();
    let sw = start_verto(&format!("127.0.0.1:{port}"), "", "", more, files);
    (sw, port)
}

/// A Node script of tests/verto, its output read line by line.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Node {
    fn run(script: &str, args: &[String]) -> Node {
        let mut child = Command::new("node")
            .arg(client_dir().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let lines = hotswitch_e2e::stdout_lines(&mut child);
        let stdin = child.stdin.take();
        Node {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Writes a line to the script's stdin.
    fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the script's stdin");
        writeln!(stdin, "{line}").expect("write to node");
        stdin.flush().expect("flush to node");
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
fn a_client_that_goes_away_mid_call_has_its_call_hung_up_when_detaching_is_off() {
    let port = free_port();
    let mut sw = start_verto(
        &format!("127.0.0.1:{port}"),
        r#"<param name="detach-timeout-sec" value="0"/>"#,
        "",
        &[],
        dialplan(),
    );
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
fn a_client_that_goes_away_before_an_answer_has_its_call_hung_up_at_once() {
    let (mut sw, port) = start();
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    let mut a = Raw::ws(port);
    a.login("1001@127.0.0.1", None);
    sw.cmd("bgapi originate verto.rtc/1001@127.0.0.1 &park()");
    a.request("verto.invite");
    a.close();
    let e = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
        .expect("the ringing call ends");
    assert_eq!(e.get("Hangup-Cause"), Some("DESTINATION_OUT_OF_ORDER"));
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
    let contact = sw.cmd("verto_contact 1000@127.0.0.1");
    assert!(
        contact.trim().starts_with("verto.rtc/u:") && !contact.contains(','),
        "one client: {contact}"
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
    // A busy machine may take a while to start it.
    hotswitch_e2e::wait_udp_bound(phone, Duration::from_secs(10));
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

/// A verto connection the test plays itself (tests/verto/raw.js): frames
/// out through its stdin, every frame in as a line.
struct Raw {
    node: Node,
    stdin: std::process::ChildStdin,
    next_id: u64,
}

impl Raw {
    fn connect(url: &str, ca: Option<&std::path::Path>) -> Raw {
        let mut cmd = Command::new("node");
        cmd.arg(client_dir().join("raw.js"))
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(ca) = ca {
            cmd.env("VERTO_CA", ca);
        }
        let mut child = cmd.spawn().expect("run node");
        let stdin = child.stdin.take().expect("stdin");
        let lines = hotswitch_e2e::stdout_lines(&mut child);
        let mut node = Node {
            child,
            stdin: None,
            lines,
            seen: Vec::new(),
        };
        node.expect("OPEN");
        Raw {
            node,
            stdin,
            next_id: 0,
        }
    }

    fn ws(port: u16) -> Raw {
        Raw::connect(&format!("ws://127.0.0.1:{port}"), None)
    }

    /// Sends a request; its id.
    fn call(&mut self, method: &str, params: serde_json::Value) -> u64 {
        use std::io::Write;
        self.next_id += 1;
        let m =
            serde_json::json!({"jsonrpc":"2.0","id":self.next_id,"method":method,"params":params});
        writeln!(self.stdin, "{m}").expect("write to raw.js");
        self.next_id
    }

    /// The next frame `pred` accepts.
    fn frame(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.node.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no {what}; the client saw:\n{}", self.node.seen.join("\n"))
            });
            self.node.seen.push(line.clone());
            if let Some(v) = line
                .strip_prefix("RECV ")
                .and_then(|j| serde_json::from_str(j).ok())
            {
                if pred(&v) {
                    return v;
                }
            }
        }
    }

    /// The reply to request `id`.
    fn reply(&mut self, id: u64) -> serde_json::Value {
        self.frame(&format!("reply {id}"), |v| {
            v["id"] == id && v.get("method").is_none()
        })
    }

    /// The next request of the switch's with `method`.
    fn request(&mut self, method: &str) -> serde_json::Value {
        self.frame(method, |v| v["method"] == method)
    }

    /// Logs in (with `sessid` when given): the reply.
    fn login(&mut self, user: &str, sessid: Option<&str>) -> serde_json::Value {
        let mut p = serde_json::json!({"login": user, "passwd": "1234"});
        if let Some(s) = sessid {
            p["sessid"] = s.into();
        }
        let id = self.call("login", p);
        self.reply(id)
    }

    /// Places a call to `dest` (no WebRTC media): its uuid on the switch.
    fn invite(&mut self, sw: &mut Switch, call_id: &str, dest: &str) -> String {
        let id = self.call(
            "verto.invite",
            serde_json::json!({"sdp": "v=0\r\n", "dialogParams": {"callID": call_id, "destination_number": dest}}),
        );
        let r = self.reply(id);
        assert_eq!(r["result"]["message"], "CALL CREATED", "{r}");
        self.request("verto.answer");
        wait_until(sw, "the verto call is up", |sw| count(sw) >= 1);
        let show = sw.cmd("show channels as json");
        let v: serde_json::Value = serde_json::from_str(show.trim()).expect("json channels");
        v["rows"]
            .as_array()
            .and_then(|rows| {
                rows.iter().find(|r| {
                    r["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("verto.rtc/"))
                })
            })
            .and_then(|r| r["uuid"].as_str())
            .unwrap_or_else(|| panic!("no verto channel in {show}"))
            .to_string()
    }

    fn close(&mut self) {
        use std::io::Write;
        writeln!(self.stdin, "close").expect("write to raw.js");
        self.node.expect("CLOSED");
    }

    /// Stops reading the socket: a client that hangs.
    fn pause(&mut self) {
        use std::io::Write;
        writeln!(self.stdin, "pause").expect("write to raw.js");
    }
}

#[test]
fn wss_serves_vertojs_with_a_certificate_generated_on_first_start() {
    let certs = hotswitch_e2e::TempDir::new("certs");
    let pem = certs.path().join("wss.pem");
    let (plain, secure) = (free_port(), free_port());
    let mut sw = start_verto(
        &format!("127.0.0.1:{plain}"),
        "",
        &format!(
            r#"<param name="bind-local" value="127.0.0.1:{secure}" secure="true"/>
  <param name="secure-combined" value="{}"/>"#,
            pem.display()
        ),
        &[],
        dialplan(),
    );
    let first = std::fs::read_to_string(&pem).expect("a certificate was generated");
    assert!(first.contains("BEGIN CERTIFICATE") && first.contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is private");
    // vertojs over wss, trusting that certificate (and only it): a call.
    let run = |args: &[&str]| {
        let mut cmd = Command::new("node");
        cmd.arg(client_dir().join("client.js"))
            .arg(format!("wss://127.0.0.1:{secure}"))
            .args(["1000@127.0.0.1", "1234"])
            .args(args)
            .env("VERTO_CA", &pem)
            .output()
            .expect("run node")
    };
    let out = run(&["call", "9196", "5", "500"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains("ANSWERED"), "{text}");
    assert!(
        text.contains("CALL ENDED") || text.contains("DONE"),
        "{text}"
    );
    // A client that does not trust it is refused at the TLS handshake.
    let out = Command::new("node")
        .arg(client_dir().join("client.js"))
        .arg(format!("wss://127.0.0.1:{secure}"))
        .args(["1000@127.0.0.1", "1234", "login"])
        .output()
        .expect("run node");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("LOGIN OK"),
        "an untrusted certificate was accepted"
    );
    // The same certificate after a reload, both listeners handed over.
    assert!(sw.cmd("reload mod_verto").contains("+OK"));
    assert_eq!(std::fs::read_to_string(&pem).unwrap(), first);
    for name in [
        format!("wss 127.0.0.1:{secure}"),
        format!("ws 127.0.0.1:{plain}"),
    ] {
        assert!(
            sw.log().contains(&format!("{name} handed over")),
            "{name}: {}",
            sw.log()
        );
    }
    let out = run(&["login"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("LOGIN OK"), "{text}");
    // Plain ws still serves beside it.
    let (ok, out) = Node::client(plain, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}");
}

#[test]
fn webrtc_audio_comes_back_after_the_client_reconnects_and_reattaches_its_call() {
    let (mut sw, port) = start();
    let node = media_client(port, &["reattach", "9196"]);
    let (sent, matched, out) = media_run(node, &sw);
    assert_eq!(sent, 50, "{out}");
    assert!(matched >= 35, "audio before the reconnect: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("REATTACHED "))
        .unwrap_or_else(|| panic!("{out}"));
    let field = |name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            .to_string()
    };
    assert!(
        field("uuid").len() >= 32,
        "the switch named the call: {line}"
    );
    assert_eq!(field("sent"), "50", "{line}");
    let m2: usize = field("matched").parse().unwrap();
    assert!(m2 >= 35, "audio after the reattach: {out}");
    assert!(out.contains("CALL ENDED"), "{out}");
    wait_until(&mut sw, "the call is gone", |sw| count(sw) == 0);
}

#[test]
fn a_detached_call_is_punted_to_the_new_connection_and_another_user_is_refused() {
    let (mut sw, port) = start();
    let mut a = Raw::ws(port);
    let r = a.login("1000@127.0.0.1", Some("sess-punt"));
    assert_eq!(r["result"]["sessid"], "sess-punt", "{r}");
    let uuid = a.invite(&mut sw, "call-p", "5900");
    // Another user may not take the session.
    let mut x = Raw::ws(port);
    let r = x.login("1001@127.0.0.1", Some("sess-punt"));
    assert_eq!(r["error"]["code"], -32001, "{r}");
    assert_eq!(r["error"]["message"], "Session in use", "{r}");
    x.node.expect("CLOSED");
    // The same user from a new connection takes it; the old one is punted.
    let mut b = Raw::ws(port);
    let r = b.login("1000@127.0.0.1", Some("sess-punt"));
    assert_eq!(r["result"]["sessid"], "sess-punt", "{r}");
    a.request("verto.punt");
    a.node.expect("CLOSED");
    let ready = b.request("verto.clientReady");
    assert_eq!(
        ready["params"]["reattached_sessions"],
        serde_json::json!([uuid])
    );
    let attach = b.request("verto.attach");
    assert_eq!(attach["params"]["callID"], "call-p");
    assert!(attach["params"]["sdp"]
        .as_str()
        .unwrap_or("")
        .starts_with("v=0"));
    assert_eq!(count(&mut sw), 1, "the call survived the punt");
    // The new connection owns the call: display updates and the bye reach it.
    let r = sw.cmd(&format!("uuid_display {uuid} Alice Cooper|1002"));
    assert!(r.starts_with("+OK"), "{r}");
    let d = b.request("verto.display");
    assert_eq!(d["params"]["callID"], "call-p");
    assert_eq!(d["params"]["display_name"], "Alice Cooper");
    assert_eq!(d["params"]["display_number"], "1002");
    let id = b.call(
        "verto.bye",
        serde_json::json!({"dialogParams": {"callID": "call-p"}}),
    );
    assert_eq!(b.reply(id)["result"]["message"], "CALL ENDED");
    wait_until(&mut sw, "the call is gone", |sw| count(sw) == 0);
}

#[test]
fn a_client_that_never_comes_back_loses_its_call_after_the_detach_timeout() {
    let port = free_port();
    let mut sw = start_verto(
        &format!("127.0.0.1:{port}"),
        r#"<param name="detach-timeout-sec" value="2"/>"#,
        "",
        &[],
        dialplan(),
    );
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    let mut a = Raw::ws(port);
    a.login("1000@127.0.0.1", None);
    a.invite(&mut sw, "call-d", "5900");
    let gone = Instant::now();
    a.close();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count(&mut sw), 1, "the call waits for its client");
    let e = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
        .expect("the call ends");
    assert!(gone.elapsed() >= Duration::from_secs(2));
    assert_eq!(e.get("Hangup-Cause"), Some("RECOVERY_ON_TIMER_EXPIRE"));
}

#[test]
fn event_channels_carry_broadcasts_to_their_subscribers_only() {
    let (_sw, port) = start();
    let mut a = Raw::ws(port);
    a.login("1000@127.0.0.1", None);
    let mut b = Raw::ws(port);
    b.login("1001@127.0.0.1", None);
    let mut main = Raw::ws(port);
    main.login("1001@127.0.0.1", None);
    let mut limited = Raw::ws(port);
    limited.login("1002@127.0.0.1", None);
    for (c, ch) in [(&mut a, "room.1"), (&mut b, "room.1"), (&mut main, "room")] {
        let id = c.call("verto.subscribe", serde_json::json!({"eventChannel": ch}));
        let r = c.reply(id);
        assert_eq!(
            r["result"]["subscribedChannels"],
            serde_json::json!([ch]),
            "{r}"
        );
    }
    // 1002 may use "room" channels only (jsonrpc-allowed-event-channels).
    let id = limited.call(
        "verto.subscribe",
        serde_json::json!({"eventChannel": ["room.2", "lobby"]}),
    );
    let r = limited.reply(id);
    assert_eq!(
        r["result"]["subscribedChannels"],
        serde_json::json!(["room.2"]),
        "{r}"
    );
    assert_eq!(
        r["result"]["unauthorizedChannels"],
        serde_json::json!(["lobby"]),
        "{r}"
    );
    let id = limited.call(
        "verto.broadcast",
        serde_json::json!({"eventChannel": "lobby", "data": {}}),
    );
    assert_eq!(limited.reply(id)["error"]["message"], "Permission Denied.");
    // a broadcasts on room.1: a and b (room.1) and main (room) get it.
    let id = a.call(
        "verto.broadcast",
        serde_json::json!({"eventChannel": "room.1", "data": {"text": "hello"}}),
    );
    assert!(a.reply(id)["result"].is_object());
    for (c, sub) in [(&mut a, "room.1"), (&mut b, "room.1"), (&mut main, "room")] {
        let e = c.request("verto.event");
        assert_eq!(e["params"]["eventChannel"], "room.1", "{e}");
        assert_eq!(e["params"]["subscribedChannel"], sub, "{e}");
        assert_eq!(e["params"]["data"]["text"], "hello", "{e}");
        assert_eq!(e["params"]["userid"], "1000@127.0.0.1", "{e}");
        assert_eq!(e["params"]["eventSerno"], 0, "{e}");
    }
    // b unsubscribes: the next broadcast reaches a only, numbered 1.
    let id = b.call(
        "verto.unsubscribe",
        serde_json::json!({"eventChannel": "room.1"}),
    );
    assert_eq!(
        b.reply(id)["result"]["unsubscribedChannels"],
        serde_json::json!(["room.1"])
    );
    let id = main.call(
        "verto.unsubscribe",
        serde_json::json!({"eventChannel": "room"}),
    );
    main.reply(id);
    let id = limited.call(
        "verto.broadcast",
        serde_json::json!({"eventChannel": "room.1", "data": {"text": "second"}}),
    );
    assert!(limited.reply(id)["result"].is_object());
    let e = a.request("verto.event");
    assert_eq!(e["params"]["data"]["text"], "second");
    assert_eq!(e["params"]["eventSerno"], 1);
    assert_eq!(e["params"]["userid"], "1002@127.0.0.1");
    // Nothing more reached b: its next frame is the reply to a ping.
    let id = b.call("echo", serde_json::json!({"n": 1}));
    let next = b.frame("any frame", |_| true);
    assert_eq!(next["id"], id, "b got {next}");
}

#[test]
fn chat_crosses_between_verto_users_and_from_the_switch() {
    let (mut sw, port) = start();
    let mut a = Raw::ws(port);
    a.login("1000@127.0.0.1", None);
    let mut b1 = Raw::ws(port);
    b1.login("1001@127.0.0.1", None);
    let mut b2 = Raw::ws(port);
    b2.login("1001@127.0.0.1", None);
    let id = a.call(
        "verto.info",
        serde_json::json!({"msg": {"to": "1001@127.0.0.1", "body": "Héllo ☎", "from_msg_name": "Al"}}),
    );
    assert_eq!(a.reply(id)["result"]["message"], "SENT");
    // Every connection of the user gets it.
    for b in [&mut b1, &mut b2] {
        let m = b.request("verto.info");
        assert_eq!(m["params"]["msg"]["from"], "1000@127.0.0.1", "{m}");
        assert_eq!(m["params"]["msg"]["to"], "1001@127.0.0.1", "{m}");
        assert_eq!(m["params"]["msg"]["body"], "Héllo ☎", "{m}");
        assert_eq!(m["params"]["msg"]["from_msg_name"], "Al", "{m}");
    }
    // Nobody logged in as 1019: not delivered.
    let id = a.call(
        "verto.info",
        serde_json::json!({"msg": {"to": "1019@127.0.0.1", "body": "x"}}),
    );
    assert_eq!(a.reply(id)["error"]["message"], "NOT DELIVERED");
    // The switch's chat command reaches a verto user.
    let r = sw.cmd("chat verto|system@127.0.0.1|1000@127.0.0.1|from the console");
    assert!(r.starts_with("+OK"), "{r}");
    let m = a.request("verto.info");
    assert_eq!(m["params"]["msg"]["body"], "from the console");
    assert_eq!(m["params"]["msg"]["from"], "system@127.0.0.1");
}

#[test]
fn a_user_logged_in_twice_is_rung_on_both_and_the_first_answer_wins() {
    let (mut sw, port) = start();
    let mut c1 = Raw::ws(port);
    let s1 = c1.login("1001@127.0.0.1", None)["result"]["sessid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c2 = Raw::ws(port);
    let s2 = c2.login("1001@127.0.0.1", None)["result"]["sessid"]
        .as_str()
        .unwrap()
        .to_string();
    let contact = sw.cmd("verto_contact 1001@127.0.0.1");
    let mut got: Vec<&str> = contact.trim().split(',').collect();
    got.sort();
    let mut want = vec![format!("verto.rtc/u:{s1}"), format!("verto.rtc/u:{s2}")];
    want.sort();
    assert_eq!(got, want, "{contact}");
    assert_eq!(
        sw.cmd("verto_contact 1019@127.0.0.1").trim(),
        "error/user_not_registered"
    );
    assert!(sw.cmd("/event plain BACKGROUND_JOB").starts_with("+OK"));
    let r = sw.cmd("bgapi originate verto.rtc/1001@127.0.0.1 &park()");
    assert!(r.contains("Job-UUID"), "{r}");
    // Both ring; the second answers first.
    let i1 = c1.request("verto.invite");
    let i2 = c2.request("verto.invite");
    assert!(i1["params"]["sdp"]
        .as_str()
        .unwrap()
        .contains("a=ice-ufrag"));
    assert_ne!(i1["params"]["callID"], i2["params"]["callID"]);
    let id = c2.call(
        "verto.answer",
        serde_json::json!({"sdp": "v=0\r\n", "dialogParams": {"callID": i2["params"]["callID"]}}),
    );
    assert_eq!(c2.reply(id)["result"]["message"], "CALL ANSWERED");
    let bye = c1.request("verto.bye");
    assert_eq!(bye["params"]["callID"], i1["params"]["callID"]);
    assert_eq!(bye["params"]["cause"], "LOSE_RACE");
    // Too late for the first.
    let id = c1.call(
        "verto.answer",
        serde_json::json!({"sdp": "v=0\r\n", "dialogParams": {"callID": i1["params"]["callID"]}}),
    );
    assert_eq!(c1.reply(id)["error"]["message"], "CALL DOES NOT EXIST");
    let job = sw
        .wait_event(WAIT, |e| e.name() == "BACKGROUND_JOB")
        .expect("originate returned");
    assert!(
        job.body.as_deref().unwrap_or("").starts_with("+OK "),
        "{}",
        job.body.as_deref().unwrap_or("")
    );
    assert_eq!(count(&mut sw), 1);
    assert!(sw.cmd("hupall NORMAL_CLEARING").starts_with("+OK"));
    wait_until(&mut sw, "the call is gone", |sw| count(sw) == 0);
    // One client declining while the other rings leaves the call ringing;
    // when both have declined, the originate fails with the cause.
    sw.cmd("bgapi originate verto.rtc/1001@127.0.0.1 &park()");
    let i1 = c1.request("verto.invite");
    let i2 = c2.request("verto.invite");
    let id = c1.call(
        "verto.bye",
        serde_json::json!({"cause": "CALL_REJECTED", "dialogParams": {"callID": i1["params"]["callID"]}}),
    );
    assert_eq!(c1.reply(id)["result"]["message"], "CALL ENDED");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&mut sw), 1, "still ringing the other client");
    let id = c2.call(
        "verto.bye",
        serde_json::json!({"cause": "USER_BUSY", "dialogParams": {"callID": i2["params"]["callID"]}}),
    );
    assert_eq!(c2.reply(id)["result"]["message"], "CALL ENDED");
    let job = sw
        .wait_event(WAIT, |e| e.name() == "BACKGROUND_JOB")
        .expect("originate returned");
    assert!(
        job.body
            .as_deref()
            .unwrap_or("")
            .starts_with("-ERR USER_BUSY"),
        "{}",
        job.body.as_deref().unwrap_or("")
    );
    wait_until(&mut sw, "all gone", |sw| count(sw) == 0);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_nobody_else_waits_for_it() {
    let (sw, port) = start();
    let mut stuck = Raw::ws(port);
    stuck.login("1001@127.0.0.1", None);
    let id = stuck.call(
        "verto.subscribe",
        serde_json::json!({"eventChannel": "flood"}),
    );
    assert!(stuck.reply(id)["result"]["subscribedChannels"].is_array());
    stuck.pause();
    // 16 MiB of events for the stuck client: more than its socket buffers
    // (a socket that is never read keeps its small receive buffer; up to
    // 4 MiB to send) and its queue of 1,024 messages hold.
    let mut a = Raw::ws(port);
    a.login("1000@127.0.0.1", None);
    let pad = "x".repeat(4 * 1024);
    let mut last = 0;
    for n in 0..4000 {
        last = a.call(
            "verto.broadcast",
            serde_json::json!({"eventChannel": "flood", "data": {"n": n, "pad": pad}}),
        );
    }
    // The sender is answered all along.
    let r = a.reply(last);
    assert!(r["result"].is_object(), "{r}");
    // The stuck client loses what does not fit, then is disconnected.
    let deadline = Instant::now() + WAIT;
    while !sw.log().contains("not reading for") {
        assert!(
            Instant::now() < deadline,
            "the stuck client was not cut off: {}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sw.log().contains("message(s) dropped"), "{}", sw.log());
    // Meanwhile others were served, and still are.
    let id = a.call("echo", serde_json::json!({"still": "here"}));
    assert_eq!(a.reply(id)["result"]["still"], "here");
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}");
}

/// One `MEDIA sent=… received=… matched=… maxgap=…` line's field.
fn media_field(line: &str, name: &str) -> usize {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

/// The shadow copies of mod_verto mapped now (one per live version).
fn verto_copies(sw: &Switch) -> usize {
    sw.mapped_shadows()
        .iter()
        .filter(|p| p.contains("mod_verto"))
        .count()
}

#[test]
fn a_vertojs_call_with_webrtc_audio_lives_through_reload_mod_verto() {
    let (mut sw, port) = start();
    let mut call = Node::run(
        "vertojs_media.js",
        &[
            format!("ws://127.0.0.1:{port}"),
            "1000@127.0.0.1".into(),
            "1234".into(),
            "9196".into(),
        ],
    );
    call.expect("CONNECTED");
    call.expect("ECHO 50");
    call.tell("mark");
    let before = call.expect("MEDIA ");
    assert_eq!(verto_copies(&sw), 1);
    // Another client, logged in and idle on the old copy.
    let mut idle = Node::client(port, "1001@127.0.0.1", "1234", &["answer"]);
    idle.expect("READY");

    // The reload, with the call up: the listener is handed over, the call
    // stays with the old copy.
    let r = sw.cmd("reload mod_verto");
    assert!(
        r.contains("+OK") && !r.contains("-ERR"),
        "reload: {r}\n{}",
        sw.log()
    );
    call.tell("mark");
    let across = call.expect("MEDIA ");
    call.expect("ECHO 50");
    assert_eq!(verto_copies(&sw), 2, "the old copy drains: {r}");
    let view = sw.cmd("module_list");
    assert!(
        view.lines()
            .any(|l| l.starts_with("mod_verto,") && l.contains(",draining,1,")),
        "{view}"
    );
    assert_eq!(count(&mut sw), 1);
    // The new copy does not know the logins of the old one: the client in
    // the call there cannot be called until it logs in again.
    assert_eq!(
        sw.cmd("verto_contact 1000@127.0.0.1").trim(),
        "error/user_not_registered"
    );
    assert_eq!(
        sw.cmd("originate verto.rtc/1000@127.0.0.1 &park()").trim(),
        "-ERR USER_NOT_REGISTERED"
    );

    // The idle client's connection was closed (1001): vertojs reconnects,
    // logs in on the new copy, and can be called again.
    wait_until(&mut sw, "the idle client logs in on the new copy", |sw| {
        sw.cmd("verto_contact 1001@127.0.0.1")
            .starts_with("verto.rtc/u:")
    });
    let r = sw.cmd("originate verto.rtc/1001@127.0.0.1 &park()");
    assert!(r.starts_with("+OK "), "originate: {r}\n{}", sw.log());
    idle.expect("INVITED");
    assert!(sw
        .cmd(&format!("uuid_kill {}", r[4..].trim()))
        .starts_with("+OK"));
    let (ok, out) = idle.finish();
    assert!(ok && out.contains("BYE FROM SWITCH"), "{out}");
    wait_until(&mut sw, "the call to the idle client is gone", |sw| {
        count(sw) == 1
    });

    // A new client: served by the new copy, on the same port.
    let mut c = Node::client(
        port,
        "1000@127.0.0.1",
        "1234",
        &["call", "9196", "", "1500"],
    );
    c.expect("ANSWERED");
    let view = sw.cmd("module_list");
    assert!(
        view.lines()
            .any(|l| l.starts_with("mod_verto,") && l.contains(",current,1,"))
            && view
                .lines()
                .any(|l| l.starts_with("mod_verto,") && l.contains(",draining,1,")),
        "one call on each copy: {view}"
    );
    let (ok, out) = c.finish();
    assert!(ok && out.contains("HUNG UP"), "{out}\n{}", sw.log());
    wait_until(&mut sw, "the new client's call is gone", |sw| {
        count(sw) == 1
    });

    call.tell("mark");
    let after = call.expect("MEDIA ");
    // Echo returns what it reads: allow for packets in flight at the marks.
    // "across" spans the reload command alone (a few hundred ms).
    for (what, line, least) in [
        ("before", &before, 50),
        ("across", &across, 1),
        ("after", &after, 50),
    ] {
        let (sent, matched) = (media_field(line, "sent"), media_field(line, "matched"));
        assert!(sent >= least, "{what} the reload: {line}");
        assert!(
            matched * 10 + 50 >= sent * 8,
            "{what} the reload the audio came back: {line}"
        );
    }
    let gap = media_field(&across, "maxgap");
    // The reload does not touch the call's media (the old copy's task goes
    // on); the bound allows for a loaded machine's jitter (~0.5 s seen).
    assert!(gap < 1000, "no gap in the echo across the reload: {across}");
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    call.tell("hangup");
    let bye = call.expect("BYE ");
    assert!(bye.contains("CALL ENDED"), "{bye}");
    let e = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
        .expect("the call hangs up");
    assert_eq!(e.get("Hangup-Cause"), Some("NORMAL_CLEARING"));
    wait_until(&mut sw, "the verto call is gone", |sw| count(sw) == 0);
    // Its call over, the old copy is purged and unmapped.
    wait_until(&mut sw, "the old copy is unmapped", |sw| {
        verto_copies(sw) == 1
    });
    eprintln!("reload mod_verto: before {before}; across {across}; after {after}");
    // Still serving, on the new copy.
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}");
}

#[test]
fn a_reload_whose_new_copy_cannot_bind_leaves_the_old_copy_accepting() {
    let (mut sw, port) = start();
    let conf = sw.dir.path().join("conf/autoload_configs/verto.conf.xml");
    let good = std::fs::read_to_string(&conf).expect("verto.conf");
    // The new configuration adds a listener on a port something else holds.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = busy.local_addr().expect("address").port();
    let bind = format!(r#"<param name="bind-local" value="127.0.0.1:{port}"/>"#);
    assert!(good.contains(&bind), "{good}");
    let bad = good.replace(
        &bind,
        &format!(r#"{bind}<param name="bind-local" value="127.0.0.1:{taken}"/>"#),
    );
    std::fs::write(&conf, bad).expect("write verto.conf");
    let r = sw.cmd("reload mod_verto");
    assert!(
        r.contains("-ERR") && r.contains("cannot bind"),
        "the new copy's load fails: {r}"
    );
    eprintln!("reload with a busy port: {r}");
    assert!(sw.log().contains("accepting again"), "{}", sw.log());
    assert_eq!(verto_copies(&sw), 1, "{:?}", sw.mapped_shadows());
    // The old copy took its listener back.
    let (ok, out) = Node::client(port, "1000@127.0.0.1", "1234", &["login"]).finish();
    assert!(ok && out.contains("LOGIN OK"), "{out}\n{}", sw.log());
    // Idle, with a good configuration: the live path all the same, the port
    // handed over and the old copy purged at once.
    std::fs::write(&conf, good).expect("write verto.conf");
    let r = sw.cmd("reload mod_verto");
    assert!(
        r.contains("+OK module loaded") && !r.contains("-ERR"),
        "{r}"
    );
    // (The failed copy adopted it too, before its second bind failed.)
    assert_eq!(
        sw.log()
            .matches("(handed over by the previous version)")
            .count(),
        2,
        "{}",
        sw.log()
    );
    wait_until(&mut sw, "the old copy is unmapped", |sw| {
        verto_copies(sw) == 1
    });
    let (ok, out) =
        Node::client(port, "1000@127.0.0.1", "1234", &["call", "9196", "", "300"]).finish();
    assert!(ok && out.contains("ANSWERED"), "{out}\n{}", sw.log());
}

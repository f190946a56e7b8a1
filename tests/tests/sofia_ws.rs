//! SIP over WebSocket (RFC 7118) on the default configuration's internal
//! profile: JsSIP (npm, run in Node with the `ws` package as its
//! WebSocket; tests/sipws) registers over ws and over wss, and the switch
//! keeps the binding with its transport; a peer that sends garbage or
//! never completes its upgrade is closed with a log line while the phones
//! stay registered and a SIP call made meanwhile completes; a JsSIP
//! registered before `reload mod_sofia` is let go by the old copy (close
//! 1001) and registers again with the new one.

mod phones_common;
mod sofia_common;

use hotswitch_e2e::{workspace_root, Switch};
use phones_common::{pump_for, share_with, DefaultConf, Phone, Transport, WAIT};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A JsSIP phone registered over a WebSocket; killed when dropped.
struct JsSip(Child);

impl Drop for JsSip {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn jssip(sw: &hotswitch_e2e::Switch, url: &str, user: &str) -> JsSip {
    jssip_lines(sw, url, user).0
}

/// [`jssip`], and the lines it prints after its first REGISTERED.
fn jssip_lines(
    sw: &hotswitch_e2e::Switch,
    url: &str,
    user: &str,
) -> (JsSip, mpsc::Receiver<String>) {
    let dir = workspace_root().join("tests/sipws");
    assert!(
        dir.join("node_modules/jssip").exists(),
        "run `npm ci --prefix tests/sipws` first (.ci/run does)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("register.js"))
        .arg(url)
        .arg(format!("sip:{user}@127.0.0.1"))
        .arg("1234")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (Debian: nodejs)");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let phone = JsSip(child);
    match rx.recv_timeout(WAIT) {
        Ok(l) if l == "REGISTERED" => (phone, rx),
        other => panic!("JsSIP over {url}: {other:?}\nthe switch:\n{}", sw.log()),
    }
}

/// The port `var` of the copy's vars.xml.
fn var_port(conf: &DefaultConf, var: &str) -> u16 {
    let vars = std::fs::read_to_string(conf.conf_dir().join("vars.xml")).unwrap();
    let at = vars.find(&format!("{var}=")).unwrap() + var.len() + 1;
    vars[at..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .expect("a port")
}

/// The default configuration with a certificate for wss and a short
/// tcp-message-timeout (the upgrade's deadline).
fn ws_conf(tag: &str) -> (DefaultConf, u16, u16) {
    let conf = DefaultConf::new(tag);
    let certs = conf.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(&certs)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(certs.join("cert.pem")).unwrap()
        + &std::fs::read_to_string(certs.join("key.pem")).unwrap();
    std::fs::write(certs.join("wss.pem"), pem).unwrap();
    conf.edit("sip_profiles/internal.xml", |t| {
        t.replace(
            "<param name=\"tls-verify-depth\" value=\"2\"/>",
            "<param name=\"tls-verify-depth\" value=\"2\"/>\n    \
             <param name=\"tcp-message-timeout\" value=\"1500\"/>",
        )
    });
    let ws = var_port(&conf, "internal_ws_port");
    let wss = var_port(&conf, "internal_wss_port");
    (conf, ws, wss)
}

fn wait_log(sw: &Switch, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !sw.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn jssip_registers_over_ws_and_wss_and_the_binding_keeps_its_transport() {
    let (conf, ws, wss) = ws_conf("sip-ws");
    let mut sw = conf.start();
    let _a = jssip(&sw, &format!("ws://127.0.0.1:{ws}"), "1000");
    let _b = jssip(&sw, &format!("wss://127.0.0.1:{wss}"), "1001");
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(reg.contains("Registered(WS)"), "{reg}");
    assert!(reg.contains("Registered(WSS)"), "{reg}");
    let c = sw.cmd("sofia_contact 1000@127.0.0.1");
    assert!(c.contains("transport=ws"), "{c}");
}

#[test]
fn a_websocket_peer_that_sends_garbage_or_stalls_its_upgrade_is_closed_alone() {
    let (conf, ws, _) = ws_conf("sip-ws-bad");
    let mut sw = conf.start();
    let _phone = jssip(&sw, &format!("ws://127.0.0.1:{ws}"), "1000");
    // Not an HTTP upgrade at all.
    let mut garbage = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    garbage
        .write_all(b"\x16\x03\x01 this is not a WebSocket\r\n\r\n")
        .unwrap();
    wait_log(&sw, "WebSocket upgrade failed");
    // An upgrade without the sip subprotocol is refused.
    let mut no_sip = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    no_sip
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut reply = String::new();
    BufReader::new(&no_sip).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let mut caller = Phone::start(
        "1002",
        &format!("127.0.0.1:{}", conf.sip_port),
        Transport::Udp,
        1000.0,
    );
    caller.wait_registered(&mut sw, "127.0.0.1");
    // Connected and silent: closed at tcp-message-timeout.
    let _silent = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    // Meanwhile a SIP phone's call (UDP, to 9196) goes on and completes.
    let t0 = Instant::now();
    caller.cmd("dial", &format!("sip:9196@127.0.0.1:{}", conf.sip_port));
    caller.wait_event("CALL_ESTABLISHED", t0, &mut []);
    pump_for(&mut [&mut caller], Duration::from_secs(2));
    caller.cmd("hangup", "");
    caller.wait_event("CALL_CLOSED", t0, &mut []);
    assert!(
        share_with(&caller.heard(), 1000.0) > 0.3,
        "the caller heard its tone back"
    );
    wait_log(&sw, "WebSocket upgrade not complete after 1500 ms");
    let c = sw.cmd("sofia_contact 1000@127.0.0.1");
    assert!(c.contains("transport=ws"), "the phone is still there: {c}");
    let _again = jssip(&sw, &format!("ws://127.0.0.1:{ws}"), "1001");
}

/// A browser registered over ws before `reload mod_sofia`: the old copy,
/// draining with a call of its own, closes the browser's connection (it
/// carries no call) with 1001; JsSIP reconnects and registers again, now
/// with the new copy.
#[test]
fn jssip_registered_before_reload_mod_sofia_reconnects_and_registers_with_the_new_copy() {
    let (conf, ws, _) = ws_conf("sip-ws-reload");
    let mut sw = conf.start();
    let (_phone, lines) = jssip_lines(&sw, &format!("ws://127.0.0.1:{ws}"), "1000");
    // A call of the old copy keeps it draining.
    let ua_port = hotswitch_e2e::free_port();
    let uas = sofia_common::sipp(
        "uas_answer.xml",
        None,
        &[("want_header", "INVITE sip:")],
        &["-m", "1", "-p", &ua_port.to_string()],
    );
    sofia_common::sipp_listening(ua_port);
    let out = sw.cmd(&format!(
        "originate {{originate_timeout=10}}sofia/internal/keeper@127.0.0.1:{ua_port} &park()"
    ));
    assert!(out.starts_with("+OK "), "{out}\n{}", sw.log());
    let uuid = out[4..].trim().to_string();
    let out = sw.cmd("reload mod_sofia");
    assert!(out.contains("+OK"), "{out}");
    match lines.recv_timeout(WAIT) {
        Ok(l) if l == "REGISTERED" => {}
        other => panic!("JsSIP did not register again: {other:?}\n{}", sw.log()),
    }
    wait_log(&sw, "carries no call of this draining version; closed");
    assert_eq!(
        sw.cmd(&format!("uuid_exists {uuid}")).trim(),
        "true",
        "the old copy's call is still up: it let the browser go while draining"
    );
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(reg.contains("Registered(WS)"), "{reg}");
    assert!(sw.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    uas.success(&sw);
}

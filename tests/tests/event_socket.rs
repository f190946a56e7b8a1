//! The event socket (mod_event_socket) against the real binary: FreeSWITCH's
//! frames byte for byte over raw sockets, a published third-party client
//! (greenswitch, driven through the Python scripts in `tests/esl/`), the
//! outbound `socket` application against a server run by the test, slow
//! clients, malformed input, a thousand connections, and reload.

use hotswitch_e2e::{wait_gone, workspace_root, Switch};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const GOODBYE: &str = "Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// A switch with the event socket on a free port (password ClueCon);
/// `params` are extra `<param>`s for event_socket.conf.
fn esl_switch(params: &str) -> (Switch, u16) {
    hotswitch_e2e::event_socket_switch("ClueCon", params, &[])
}

/// One server packet: the header block as sent, its headers, its body.
#[derive(Clone, Debug, Default)]
struct Frame {
    head: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Frame {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn content_type(&self) -> &str {
        self.get("Content-Type").unwrap_or("")
    }
    fn reply(&self) -> &str {
        self.get("Reply-Text").unwrap_or("")
    }
    fn bytes(&self) -> String {
        format!("{}{}", self.head, self.body)
    }
    /// The headers of a plain event in the body, decoded.
    fn event(&self) -> Vec<(String, String)> {
        self.body
            .lines()
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), hotswitch_e2e::url_decode(v)))
            .collect()
    }
    fn event_get(&self, name: &str) -> Option<String> {
        self.event()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A raw event-socket client.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// Events read while waiting for a reply.
    events: VecDeque<Frame>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the event socket");
        s.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            events: VecDeque::new(),
        }
    }

    /// Connected, greeted and authenticated.
    fn authed(port: u16) -> Raw {
        let mut c = Raw::connect(port);
        assert_eq!(c.frame().content_type(), "auth/request");
        assert_eq!(c.cmd("auth ClueCon").reply(), "+OK accepted");
        c
    }

    /// Connected and authenticated, or `None` if the server is not (yet)
    /// serving.
    fn try_authed(port: u16) -> Option<Raw> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        let mut r = BufReader::new(s.try_clone().ok()?);
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line != "Content-Type: auth/request\n" {
            return None;
        }
        r.read_line(&mut line).ok()?;
        w.write_all(b"auth ClueCon\n\n").ok()?;
        let mut c = Raw {
            r,
            w,
            events: VecDeque::new(),
        };
        // A listener closing as it accepted (a reload) ends the stream
        // here: `None`, for the caller to try again.
        let f = c.try_frame()?;
        (f.reply() == "+OK accepted").then_some(c)
    }

    fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).expect("write");
    }

    /// The next packet, or `None` at end of stream.
    fn try_frame(&mut self) -> Option<Frame> {
        let mut f = Frame::default();
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                // Reset: ended too (a listener closed as it accepted).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e} (so far {:?})", f.head),
            }
            f.head.push_str(&line);
            let l = line.trim_end_matches('\n');
            if l.is_empty() {
                if f.headers.is_empty() {
                    f.head.clear();
                    continue;
                }
                break;
            }
            let (k, v) = l.split_once(": ").unwrap_or((l, ""));
            f.headers.push((k.to_string(), v.to_string()));
        }
        if let Some(n) = f
            .get("Content-Length")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let mut body = vec![0u8; n];
            self.r.read_exact(&mut body).expect("read body");
            f.body = String::from_utf8_lossy(&body).into_owned();
        }
        Some(f)
    }

    fn frame(&mut self) -> Frame {
        self.try_frame()
            .expect("a packet, not the end of the stream")
    }

    /// Sends a command and returns its reply, keeping events for later.
    fn cmd(&mut self, text: &str) -> Frame {
        self.send(&format!("{text}\n\n"));
        self.reply()
    }

    fn reply(&mut self) -> Frame {
        loop {
            let f = self.frame();
            match f.content_type() {
                "command/reply" | "api/response" => return f,
                _ => self.events.push_back(f),
            }
        }
    }

    /// The first event (kept or new) whose decoded headers satisfy `pred`.
    fn event(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i).unwrap();
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let f = self.frame();
            if pred(&f) {
                return f;
            }
            self.events.push_back(f);
        }
        panic!("no {what} within {WAIT:?}");
    }

    /// Reads until the server closes; returns everything read.
    fn until_closed(&mut self) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = self.try_frame() {
            v.push(f);
        }
        v
    }
}

fn is_event(name: &'static str, uuid: String) -> impl Fn(&Frame) -> bool {
    move |f: &Frame| {
        f.event_get("Event-Name").as_deref() == Some(name)
            && f.event_get("Unique-ID").as_deref() == Some(uuid.as_str())
    }
}

fn new_uuid(n: u32) -> String {
    format!(
        "e5e5e5e5-0000-4000-8000-{:012}",
        n + std::process::id() * 1000
    )
}

// ---- Python scripts with greenswitch ----

fn python(script: &str, args: &[String]) -> Child {
    Command::new("python3")
        .arg(workspace_root().join("tests/esl").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (pip install greenswitch)")
}

/// Runs a script to its end (at most a minute); returns (success, stdout).
fn run_python(script: &str, args: &[String]) -> (bool, String) {
    let mut child = python(script, args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for python") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("reap python");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    if !status.success() {
        eprintln!("{script} failed ({status}):\n{out}\n{err}");
    }
    (status.success(), out)
}

fn assert_script(sw: &Switch, script: &str, args: &[String]) -> String {
    let (ok, out) = run_python(script, args);
    assert!(ok, "{script} failed: {out}\nswitch log:\n{}", sw.log());
    out
}

#[test]
fn greenswitch_authenticates_with_the_right_password_and_is_refused_with_a_wrong_one() {
    let (sw, port) = esl_switch("");
    let out = assert_script(&sw, "auth.py", &[port.to_string(), "ClueCon".into()]);
    assert_eq!(out.trim(), "accepted");
    let (ok, out) = run_python("auth.py", &[port.to_string(), "wrong".into()]);
    assert!(!ok, "a wrong password was accepted");
    assert!(out.starts_with("rejected"), "{out}");
}

#[test]
fn greenswitch_gets_freeswitchs_api_and_bgapi_replies_and_the_background_job() {
    let (sw, port) = esl_switch("");
    assert_script(&sw, "api_bgapi.py", &[port.to_string()]);
}

#[test]
fn greenswitch_sees_a_call_filters_its_events_and_controls_it_with_sendmsg_and_uuid_kill() {
    let (sw, port) = esl_switch("");
    assert_script(&sw, "calls.py", &[port.to_string()]);
}

#[test]
fn greenswitch_receives_json_events_for_an_originated_call() {
    let (sw, port) = esl_switch("");
    assert_script(&sw, "json_events.py", &[port.to_string()]);
}

#[test]
fn reloading_the_module_drops_greenswitch_clients_and_accepts_them_again() {
    let (mut sw, port) = esl_switch("");
    let mut child = python("reload.py", &[port.to_string()]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected", "{}", sw.log());
    let r = sw.cmd("reload mod_event_socket");
    assert!(r.contains("+OK module loaded"), "{r}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success() && rest.contains("disconnected") && rest.contains("reconnected"),
        "{rest}\n{}",
        sw.log()
    );
    assert_eq!(mapped_event_socket(&sw), 1, "the old copy is unmapped");
}

/// The copies of mod_event_socket mapped in the switch now.
fn mapped_event_socket(sw: &Switch) -> usize {
    sw.mapped_shadows()
        .iter()
        .filter(|p| p.contains("mod_event_socket"))
        .count()
}

#[test]
fn a_client_reloading_the_module_itself_is_dropped_and_the_old_copy_is_unmapped() {
    let (mut sw, port) = esl_switch("");
    // Busy connections: an event subscription and a log stream, each with
    // a thread of its own that the unload must stop and join.
    let mut c = Raw::authed(port);
    c.cmd("event plain ALL");
    c.cmd("log debug");
    let mut idle = Raw::authed(port);
    // FreeSWITCH runs it as `api bgapi reload mod_event_socket`, so that the
    // connection asking is not the one waiting for itself to close.
    let r = c.cmd("api reload mod_event_socket");
    assert!(r.body.starts_with("+OK Job-UUID: "), "{r:?}");
    for conn in [&mut c, &mut idle] {
        let frames = conn.until_closed();
        let last = frames.last().expect("a disconnect notice");
        assert_eq!(
            last.bytes(),
            "Content-Type: text/disconnect-notice\nContent-Length: 31\n\nThe system is being shut down.\n"
        );
    }
    let deadline = Instant::now() + WAIT;
    // A connection that lands on the old listener as it closes is reset:
    // try again until the new one answers.
    let mut again = loop {
        if let Some(c) = Raw::try_authed(port) {
            break c;
        }
        assert!(Instant::now() < deadline, "not listening again");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(again.cmd("api echo back").body, "back");
    let modules = sw.cmd("module_list");
    assert!(!modules.contains("pinned"), "{modules}");
    assert_eq!(mapped_event_socket(&sw), 1, "{}", sw.log());
    assert!(
        sw.log().contains("unloaded mod_event_socket"),
        "{}",
        sw.log()
    );
}

#[test]
fn an_address_outside_the_acl_is_rudely_rejected_and_one_inside_is_served() {
    let (sw, port) = esl_switch(r#"<param name="apply-inbound-acl" value="127.0.0.2/32"/>"#);
    let out = assert_script(&sw, "acl.py", &[port.to_string()]);
    assert!(out.contains("127.0.0.2 served"), "{out}");
    let mut c = Raw::connect(port);
    let f = c.frame();
    assert_eq!(
        f.bytes(),
        "Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
    );
    assert!(c.try_frame().is_none(), "the connection is closed");
    assert!(
        sw.log().contains("rejected by acl"),
        "the refusal is logged"
    );
}

// ---- raw sockets: FreeSWITCH's bytes ----

#[test]
fn the_greeting_replies_api_response_and_disconnect_notice_are_freeswitchs_bytes() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::connect(port);
    assert_eq!(c.frame().bytes(), "Content-Type: auth/request\n\n");
    assert_eq!(
        c.cmd("auth ClueCon").bytes(),
        "Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    );
    assert_eq!(
        c.cmd("api echo hello").bytes(),
        "Content-Type: api/response\nContent-Length: 5\n\nhello"
    );
    let not_found = "-ERR frobnicate Command not found!\n";
    assert_eq!(
        c.cmd("api frobnicate now").bytes(),
        format!(
            "Content-Type: api/response\nContent-Length: {}\n\n{not_found}",
            not_found.len()
        )
    );
    assert_eq!(
        c.cmd("bgapi echo x\nJob-UUID: j-1").bytes(),
        "Content-Type: command/reply\nReply-Text: +OK Job-UUID: j-1\nJob-UUID: j-1\n\n"
    );
    assert_eq!(c.cmd("no_such_command").reply(), "-ERR command not found");
    assert_eq!(
        c.cmd("exit").bytes(),
        "Content-Type: command/reply\nReply-Text: +OK bye\n\n"
    );
    assert_eq!(c.frame().bytes(), GOODBYE);
    assert!(c.try_frame().is_none(), "closed after the notice");
}

#[test]
fn before_auth_only_auth_is_accepted_and_a_wrong_password_is_shown_the_door() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::connect(port);
    c.frame();
    assert_eq!(c.cmd("api status").reply(), "-ERR command not found");
    assert_eq!(c.cmd("event plain ALL").reply(), "-ERR command not found");
    assert_eq!(c.cmd("auth ClueCom").reply(), "-ERR invalid");
    assert_eq!(c.frame().bytes(), GOODBYE);
    assert!(c.try_frame().is_none());
}

#[test]
fn a_client_that_does_not_authenticate_within_25_seconds_is_disconnected() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::connect(port);
    c.w.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let start = Instant::now();
    assert_eq!(c.frame().content_type(), "auth/request");
    assert_eq!(c.frame().bytes(), GOODBYE);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(24) && waited < Duration::from_secs(35),
        "disconnected after {waited:?}"
    );
    assert!(c.try_frame().is_none());
}

#[test]
fn events_come_in_plain_json_and_xml_frames_with_their_length() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::authed(port);
    for (fmt, ctype) in [
        ("plain", "text/event-plain"),
        ("json", "text/event-json"),
        ("xml", "text/event-xml"),
    ] {
        assert_eq!(
            c.cmd(&format!("event {fmt} CUSTOM esl::test")).reply(),
            format!("+OK event listener enabled {fmt}")
        );
        let r = c.cmd(&format!(
            "sendevent CUSTOM\nEvent-Subclass: esl::test\nX-Format: {fmt}"
        ));
        assert!(r.reply().starts_with("+OK "), "{r:?}");
        // The event may come before or after the reply: it is fired at once.
        let f = c.event("the event", |f| f.content_type().starts_with("text/event-"));
        assert_eq!(f.content_type(), ctype, "{f:?}");
        assert!(f.head.starts_with(&format!(
            "Content-Length: {}\nContent-Type: {ctype}\n\n",
            f.body.len()
        )));
        match fmt {
            "plain" => {
                assert_eq!(f.event_get("Event-Name").as_deref(), Some("CUSTOM"));
                assert_eq!(f.event_get("Event-Subclass").as_deref(), Some("esl::test"));
                assert!(
                    f.event_get("Event-UUID").is_some(),
                    "sendevent adds Event-UUID"
                );
            }
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&f.body).expect("json body");
                assert_eq!(v["Event-Name"], "CUSTOM");
                assert_eq!(v["X-Format"], "json");
            }
            _ => assert!(f.body.contains("<X-Format>xml</X-Format>"), "{}", f.body),
        }
    }
    // Another subclass is not delivered; nixevent and noevents stop them.
    c.cmd("sendevent CUSTOM\nEvent-Subclass: other::thing");
    assert_eq!(
        c.cmd("nixevent CUSTOM esl::test").reply(),
        "+OK events nixed"
    );
    assert_eq!(
        c.cmd("noevents").reply(),
        "+OK no longer listening for events"
    );
    assert_eq!(c.cmd("noevents").reply(), "-ERR not listening for events");
    assert!(c.events.is_empty(), "unexpected events: {:?}", c.events);
}

#[test]
fn filters_pass_positive_matches_and_veto_negative_ones() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::authed(port);
    c.cmd("event plain CUSTOM esl::f");
    assert_eq!(
        c.cmd("filter X-Kind /^wan/").reply(),
        "+OK filter added. [X-Kind]=[/^wan/]"
    );
    c.cmd("filter X-Kind -wanted-but-vetoed");
    for kind in ["unwanted", "wanted-but-vetoed", "wanted", "wanted-last"] {
        c.cmd(&format!(
            "sendevent CUSTOM\nEvent-Subclass: esl::f\nX-Kind: {kind}"
        ));
    }
    // Events arrive in the order they were fired: wait for the last one.
    let last = c.event("the last event", |f| {
        f.event_get("X-Kind").as_deref() == Some("wanted-last")
    });
    assert!(last.event_get("Event-UUID").is_some());
    let kinds: Vec<String> = c
        .events
        .drain(..)
        .filter_map(|f| f.event_get("X-Kind"))
        .collect();
    assert_eq!(kinds, ["wanted"]);
    assert_eq!(
        c.cmd("filter delete all").reply(),
        "+OK filter deleted. [all][]"
    );
    assert_eq!(c.cmd("filter X-Kind").reply(), "-ERR invalid syntax");
}

#[test]
fn log_streams_log_data_packets_until_nolog() {
    let (_sw, port) = esl_switch("");
    let mut c = Raw::authed(port);
    assert_eq!(c.cmd("log info").reply(), "+OK log level info [6]");
    // Loading a module logs at info.
    c.cmd("api load mod_skel");
    let f = c.event("a log/data packet", |f| f.content_type() == "log/data");
    assert!(f.head.starts_with(&format!(
        "Content-Type: log/data\nContent-Length: {}\nLog-Level: ",
        f.body.len()
    )));
    for h in [
        "Text-Channel",
        "Log-File",
        "Log-Func",
        "Log-Line",
        "User-Data",
    ] {
        assert!(f.get(h).is_some(), "{h} in {:?}", f.head);
    }
    assert_eq!(c.cmd("nolog").reply(), "+OK no longer logging");
    assert_eq!(c.cmd("nolog").reply(), "-ERR not loging");
    assert_eq!(c.cmd("log loud").reply(), "-ERR invalid log level");
}

#[test]
fn malformed_and_oversized_packets_get_an_error_or_a_disconnect() {
    let (mut sw, port) = esl_switch("");
    let mut c = Raw::authed(port);
    c.send("sendmsg\nthis line has no colon\n\n");
    assert_eq!(c.reply().reply(), "-ERR command parse error.");
    c.send("\u{1}\u{2}garbage \u{7f}\n\n");
    assert_eq!(c.reply().reply(), "-ERR command not found");
    assert_eq!(c.cmd("api echo still here").body, "still here");
    c.send("sendevent CUSTOM\nContent-Length: 16777217\n\n");
    assert_eq!(c.frame().bytes(), GOODBYE);
    assert!(c.try_frame().is_none());
    assert!(sw.log().contains("over the limit"), "the reason is logged");
    let mut c = Raw::authed(port);
    c.send("api status\nContent-Length: many\n\n");
    assert_eq!(c.frame().bytes(), GOODBYE);
    assert!(c.try_frame().is_none());
    assert!(sw.cmd("status").contains("is ready"), "the switch goes on");
}

#[test]
fn a_client_that_stops_reading_is_cut_off_while_calls_and_other_clients_go_on() {
    let (mut sw, port) = esl_switch(r#"<param name="queue-size" value="16"/>"#);
    // The stuck client subscribes to everything, then never reads again.
    let mut stuck = Raw::authed(port);
    stuck.cmd("event plain ALL");
    let mut good = Raw::authed(port);
    good.cmd("event plain CHANNEL_PARK");
    let big = "x".repeat(256 * 1024);
    let started = Instant::now();
    let mut calls = 0;
    while !sw.log().contains("is not reading") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stuck client was never cut off"
        );
        // A large event fills the stuck client's socket buffers quickly; a
        // call goes on at the same time, and the good client is served.
        let r = good.cmd(&format!(
            "sendevent CUSTOM\nEvent-Subclass: esl::big\nContent-Length: {}\n\n{big}",
            big.len()
        ));
        assert!(r.reply().starts_with("+OK"), "{r:?}");
        let uuid = new_uuid(calls);
        calls += 1;
        let r = good.cmd(&format!(
            "api originate {{origination_uuid={uuid}}}loopback/answer\\,park/default/inline &park()"
        ));
        assert_eq!(r.body.trim(), format!("+OK {uuid}"), "{}", sw.log());
        good.event("the call parking", is_event("CHANNEL_PARK", uuid.clone()));
        assert_eq!(good.cmd(&format!("api uuid_kill {uuid}")).body, "+OK\n");
    }
    // Its connection is closed: what it finally reads ends (a reset is an
    // end too: it left data unread).
    stuck.w.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = Vec::new();
    match stuck.r.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the stuck client's stream did not end: {e}"),
    }
    assert!(sw.log().contains("disconnecting"), "the reason is logged");
    // The others keep working.
    assert_eq!(good.cmd("api echo alive").body, "alive");
    let mut fresh = Raw::authed(port);
    assert_eq!(fresh.cmd("api echo fresh").body, "fresh");
    assert!(sw.cmd("hupall").contains("+OK"));
}

#[test]
fn a_thousand_clients_stay_connected_and_are_all_served() {
    let (_sw, port) = esl_switch(r#"<param name="max-connections" value="2000"/>"#);
    let mut clients: Vec<Raw> = (0..1000).map(|_| Raw::connect(port)).collect();
    for c in clients.iter_mut() {
        assert_eq!(c.frame().content_type(), "auth/request");
        c.send("auth ClueCon\n\n");
    }
    for c in clients.iter_mut() {
        assert_eq!(c.reply().reply(), "+OK accepted");
        c.send("api echo ping\n\n");
    }
    for c in clients.iter_mut() {
        assert_eq!(c.reply().body, "ping");
    }
    // Still all there: a second round on every connection.
    for c in clients.iter_mut() {
        c.send("api echo again\n\n");
    }
    for c in clients.iter_mut() {
        assert_eq!(c.reply().body, "again");
    }
}

#[test]
fn connections_over_max_connections_are_refused_with_a_notice() {
    let (_sw, port) = esl_switch(r#"<param name="max-connections" value="2"/>"#);
    let _a = Raw::authed(port);
    let _b = Raw::authed(port);
    let mut c = Raw::connect(port);
    let f = c.frame();
    assert_eq!(f.content_type(), "text/disconnect-notice");
    assert!(c.try_frame().is_none());
}

// ---- outbound: the `socket` application ----

/// Accepts the switch's outbound connection.
fn accept(sw: &Switch, l: &TcpListener) -> Raw {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    let s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the socket application did not connect\n{}",
                    sw.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    Raw {
        r: BufReader::new(s.try_clone().unwrap()),
        w: s,
        events: VecDeque::new(),
    }
}

/// `connect`'s reply: the channel data as a command/reply header block.
fn connect_reply(c: &mut Raw) -> Frame {
    c.send("connect\n\n");
    let f = c.frame();
    assert_eq!(f.content_type(), "command/reply", "{f:?}");
    assert_eq!(f.reply(), "%2BOK%0A", "{}", f.head);
    assert_eq!(f.get("Event-Name"), Some("CHANNEL_DATA"));
    f
}

#[test]
fn a_static_outbound_socket_gets_the_channel_data_runs_sendmsg_and_the_dialplan_continues() {
    let (mut sw, _) = esl_switch("");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let a = new_uuid(900);
    assert!(sw
        .cmd("/event plain CHANNEL_EXECUTE_COMPLETE")
        .starts_with("+OK"));
    // The B leg's inline dialplan: answer (originate waits for it), socket,
    // then set and park once the socket is closed.
    let r = sw.cmd(&format!(
        "originate {{origination_uuid={a}}}loopback/answer\\,socket:127.0.0.1:{port}\\,set:after_socket=yes\\,park/default/inline &park()"
    ));
    assert!(r.starts_with(&format!("+OK {a}")), "{r}\n{}", sw.log());
    let mut c = accept(&sw, &server);
    let data = connect_reply(&mut c);
    assert_eq!(data.get("Socket-Mode"), Some("static"));
    assert_eq!(data.get("Control"), Some("single-channel"));
    let b = data.get("Unique-ID").expect("Unique-ID").to_string();
    assert_eq!(data.get("Caller-Unique-ID"), Some(b.as_str()));
    assert_eq!(data.get("variable_uuid"), Some(b.as_str()));
    assert!(data
        .get("Channel-Name")
        .is_some_and(|n| n.starts_with("loopback/")));
    assert_eq!(data.get("Channel-State"), Some("CS_EXECUTE"));
    assert_eq!(c.cmd("myevents").reply(), "+OK Events Enabled");
    // Not `full`: the inbound command set is refused.
    assert_eq!(c.cmd("api status").reply(), "-ERR command not found");
    // Static mode: the application runs on the call's thread before +OK.
    let r = c.cmd(
        "sendmsg\ncall-command: execute\nexecute-app-name: set\nexecute-app-arg: from_socket=1",
    );
    assert_eq!(r.reply(), "+OK");
    assert_eq!(c.cmd("getvar from_socket").reply(), "1");
    c.event(
        "EXECUTE_COMPLETE of set",
        is_event("CHANNEL_EXECUTE_COMPLETE", b.clone()),
    );
    assert_eq!(c.cmd("exit").reply(), "+OK bye");
    let notice = c.event("the disconnect notice", |f| {
        f.content_type() == "text/disconnect-notice"
    });
    assert_eq!(notice.get("Controlled-Session-UUID"), Some(b.as_str()));
    assert_eq!(notice.get("Content-Disposition"), Some("disconnect"));
    // The dialplan went on after `socket`.
    sw.wait_event(WAIT, |e| {
        e.get("Unique-ID") == Some(b.as_str())
            && e.get("Application") == Some("set")
            && e.get("Application-Data") == Some("after_socket=yes")
    })
    .unwrap_or_else(|| panic!("the dialplan did not continue\n{}", sw.log()));
    assert_eq!(sw.cmd(&format!("uuid_kill {a}")).trim(), "+OK");
    // Session workers ran the application's code; once the calls are gone
    // the module unloads cleanly and its library is unmapped.
    let deadline = Instant::now() + WAIT;
    while !sw.cmd("show channels count").trim().starts_with("0 total") {
        assert!(Instant::now() < deadline, "the calls did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sw.cmd("unload mod_event_socket").trim(), "+OK");
    assert_eq!(mapped_event_socket(&sw), 0, "{}", sw.log());
}

#[test]
fn an_async_full_outbound_socket_parks_the_call_queues_sendmsg_and_sees_it_hang_up() {
    let (mut sw, _) = esl_switch("");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let a = new_uuid(901);
    let r = sw.cmd(&format!(
        "originate {{origination_uuid={a}}}loopback/answer\\,park/default/inline &socket('127.0.0.1:{port} async full')"
    ));
    assert!(r.starts_with(&format!("+OK {a}")), "{r}\n{}", sw.log());
    let mut c = accept(&sw, &server);
    let data = connect_reply(&mut c);
    assert_eq!(data.get("Socket-Mode"), Some("async"));
    assert_eq!(data.get("Control"), Some("full"));
    assert_eq!(data.get("Unique-ID"), Some(a.as_str()));
    assert_eq!(c.cmd("myevents").reply(), "+OK Events Enabled");
    // `full`: api works here.
    assert_eq!(c.cmd("api echo full").body, "full");
    assert_eq!(c.cmd("linger 5").reply(), "+OK will linger 5 seconds");
    let r =
        c.cmd("sendmsg\ncall-command: execute\nexecute-app-name: set\nexecute-app-arg: queued=yes");
    assert_eq!(r.reply(), "+OK");
    c.event("set completing", |f| {
        f.event_get("Event-Name").as_deref() == Some("CHANNEL_EXECUTE_COMPLETE")
            && f.event_get("Application").as_deref() == Some("set")
    });
    assert_eq!(c.cmd("getvar queued").reply(), "yes");
    let r = c.cmd("sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY");
    assert_eq!(r.reply(), "+OK");
    let hangup = c.event("the hangup", is_event("CHANNEL_HANGUP", a.clone()));
    assert_eq!(
        hangup.event_get("Hangup-Cause").as_deref(),
        Some("USER_BUSY")
    );
    // Lingering: the notice, then the rest of the call's events.
    let notice = c.event("the linger notice", |f| {
        f.content_type() == "text/disconnect-notice"
    });
    assert_eq!(notice.get("Content-Disposition"), Some("linger"));
    assert_eq!(notice.get("Linger-Time"), Some("5"));
    c.event(
        "HANGUP_COMPLETE while lingering",
        is_event("CHANNEL_HANGUP_COMPLETE", a.clone()),
    );
    c.send("exit\n\n");
    let rest = c.until_closed();
    assert!(rest.iter().any(|f| f.reply() == "+OK bye"), "{rest:?}");
    // The session is destroyed after its last event, not with it.
    wait_gone(&mut sw, &a, Duration::from_secs(10));
}

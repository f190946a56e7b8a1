//! What switchio (the Python call-control library over the event socket)
//! relies on, each shown on the real binary: the switch calling itself over
//! SIP, `sofia_profile_name` on SIP legs, one `call_uuid` for both legs of a
//! bridged call, `reload mod_event_socket` answered before the disconnect,
//! and FreeSWITCH's `fsctl` and `console` replies.

use hotswitch_e2e::{free_port, ok_uuid, wait_until, Event, Switch, SwitchConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A switch with the `external` SIP profile on `sip` (context `public`:
/// `park` answers and parks, `bridge` bridges to `park` through the switch
/// itself) and the event socket on `esl`.
fn start(sip: u16, esl: u16) -> Switch {
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="external"><settings>
    <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{sip}"/>
    <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="public"/>
    <param name="codec-prefs" value="PCMU,PCMA"/><param name="auth-calls" value="false"/>
  </settings></profile>
</profiles></configuration>"#
    );
    let dialplan = format!(
        r#"<include><context name="public">
  <extension name="park"><condition field="destination_number" expression="^park$">
    <action application="answer"/><action application="park"/></condition></extension>
  <extension name="bridge"><condition field="destination_number" expression="^bridge$">
    <action application="bridge" data="sofia/external/park@127.0.0.1:{sip}"/></condition></extension>
  <extension name="loop"><condition field="destination_number" expression="^loop$">
    <action application="bridge" data="sofia/external/loop@127.0.0.1:{sip}"/></condition></extension>
</context></include>"#
    );
    let esl = format!(
        r#"<configuration name="event_socket.conf"><settings>
  <param name="listen-ip" value="127.0.0.1"/><param name="listen-port" value="{esl}"/>
  <param name="password" value="ClueCon"/>
</settings></configuration>"#
    );
    Switch::start(SwitchConfig {
        autoload: vec![
            "mod_event_socket".into(),
            "mod_sofia".into(),
            "mod_dptools".into(),
            "mod_loopback".into(),
        ],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            ("autoload_configs/event_socket.conf.xml".into(), esl),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
  <param name="rtp-start-port" value="40000"/><param name="rtp-end-port" value="50000"/>
</settings></configuration>"#
                    .into(),
            ),
            ("dialplan/public.xml".into(), dialplan),
        ],
        ..Default::default()
    })
}

/// `(uuid, direction, state)` of every channel.
fn channels(sw: &mut Switch) -> Vec<(String, String, String)> {
    sw.cmd("show channels")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 5).then(|| (f[0].to_string(), f[1].to_string(), f[5].to_string()))
        })
        .collect()
}

fn getvar(sw: &mut Switch, uuid: &str, var: &str) -> String {
    sw.cmd(&format!("uuid_getvar {uuid} {var}"))
        .trim_end()
        .to_string()
}

/// Asserts the reply to `cmd`, without its final newline.
fn check(sw: &mut Switch, cmd: &str, want: &str) {
    let r = sw.cmd(cmd);
    assert_eq!(r.trim_end_matches('\n'), want, "{cmd}");
}

fn hang_up_all(sw: &mut Switch) {
    sw.cmd("hupall");
    wait_until(sw, "every channel gone", |sw| sw.channel_count() == 0);
}

#[test]
fn the_switch_calls_itself_over_sip_from_external_to_external_and_both_legs_park() {
    let sip = free_port();
    let mut sw = start(sip, free_port());
    assert!(sw
        .cmd("/event plain CHANNEL_CREATE CHANNEL_ANSWER")
        .contains("+OK"));
    let r = sw.cmd(&format!(
        "originate sofia/external/park@127.0.0.1:{sip} &park()"
    ));
    let out = ok_uuid(&r);
    // The caller's leg is created first (switchio takes a call's first leg
    // for its originator).
    let first = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_CREATE")
        .expect("CHANNEL_CREATE");
    assert_eq!(first.get("Unique-ID"), Some(out.as_str()));
    assert_eq!(first.get("Call-Direction"), Some("outbound"));
    // The answering leg's CHANNEL_ANSWER comes before the caller's (the
    // 200 OK leaves after the leg is marked answered).
    let answered = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_ANSWER")
        .expect("CHANNEL_ANSWER");
    assert_eq!(answered.get("Call-Direction"), Some("inbound"));
    wait_until(&mut sw, "both legs parked", |sw| {
        let ch = channels(sw);
        ch.len() == 2 && ch.iter().all(|c| c.2 == "CS_PARK")
    });
    let legs = channels(&mut sw);
    let inbound = legs
        .iter()
        .find(|c| c.1 == "inbound")
        .expect("the leg the switch answered")
        .0
        .clone();
    assert!(
        legs.iter().any(|c| c.0 == out && c.1 == "outbound"),
        "{legs:?}"
    );
    // One Call-ID, two dialogs.
    assert_eq!(
        getvar(&mut sw, &out, "sip_call_id"),
        getvar(&mut sw, &inbound, "sip_call_id")
    );
    for uuid in [&out, &inbound] {
        assert_eq!(getvar(&mut sw, uuid, "sofia_profile_name"), "external");
    }
    assert_eq!(
        getvar(&mut sw, &inbound, "sip_from_uri"),
        format!("0000000000@127.0.0.1:{sip}")
    );
    // The answered leg knows the dialog from the 200 OK.
    assert_eq!(
        getvar(&mut sw, &out, "sip_to_uri"),
        format!("park@127.0.0.1:{sip}")
    );
    let tag = getvar(&mut sw, &out, "sip_from_tag");
    assert!(!tag.is_empty());
    assert_eq!(getvar(&mut sw, &inbound, "sip_from_tag"), tag);
    // Either side ends the call with a BYE the other side accepts.
    sw.cmd(&format!("uuid_kill {inbound}"));
    wait_until(&mut sw, "both legs gone", |sw| sw.channel_count() == 0);
}

#[test]
fn a_bridged_call_shares_the_a_legs_call_uuid_and_names_its_sofia_profile() {
    let sip = free_port();
    let mut sw = start(sip, free_port());
    let r = sw.cmd("/event plain CHANNEL_ANSWER CHANNEL_BRIDGE");
    assert!(r.contains("+OK"), "{r}");
    // originate → A (runs bridge) → B → C (answers and parks).
    let r = sw.cmd(&format!(
        "originate sofia/external/bridge@127.0.0.1:{sip} &park()"
    ));
    let origin = ok_uuid(&r);
    let bridge = sw
        .wait_event(WAIT, |e| e.name() == "CHANNEL_BRIDGE")
        .unwrap_or_else(|| panic!("no CHANNEL_BRIDGE\n{}", sw.log()));
    let a = bridge.get("Bridge-A-Unique-ID").unwrap().to_string();
    let b = bridge.get("Bridge-B-Unique-ID").unwrap().to_string();
    assert_eq!(bridge.get("variable_call_uuid"), Some(a.as_str()));
    assert_eq!(bridge.get("variable_sofia_profile_name"), Some("external"));
    let answered =
        |e: &Event, uuid: &str| e.name() == "CHANNEL_ANSWER" && e.get("Unique-ID") == Some(uuid);
    let b_answer = sw
        .wait_event(WAIT, |e| answered(e, &b))
        .expect("the B leg's CHANNEL_ANSWER");
    assert_eq!(b_answer.get("variable_call_uuid"), Some(a.as_str()));
    assert_eq!(b_answer.get("Channel-Call-UUID"), Some(a.as_str()));
    assert_eq!(
        b_answer.get("variable_sofia_profile_name"),
        Some("external")
    );
    let a_answer = sw
        .wait_event(WAIT, |e| answered(e, &a))
        .expect("the A leg's CHANNEL_ANSWER");
    assert_eq!(a_answer.get("variable_call_uuid"), Some(a.as_str()));
    assert_eq!(getvar(&mut sw, &b, "call_uuid"), a);
    // A leg originated from the api is a call of its own.
    assert_eq!(getvar(&mut sw, &origin, "call_uuid"), origin);
    hang_up_all(&mut sw);
}

#[test]
fn a_call_routed_back_to_the_switch_again_and_again_ends_when_its_hops_run_out() {
    let sip = free_port();
    let mut sw = start(sip, free_port());
    assert!(sw.cmd("/event plain CHANNEL_CREATE").contains("+OK"));
    // Each inbound leg bridges to the switch again, with one hop less.
    let r = sw.cmd(&format!(
        "originate {{max_forwards=5}}sofia/external/loop@127.0.0.1:{sip} &park()"
    ));
    assert!(r.starts_with("-ERR"), "{r}");
    wait_until(&mut sw, "every leg gone", |sw| sw.channel_count() == 0);
    let hops: Vec<String> = sw
        .drain_events(Duration::from_millis(200))
        .into_iter()
        .filter(|e| e.name() == "CHANNEL_CREATE" && e.get("Call-Direction") == Some("inbound"))
        .map(|e| e.get("variable_max_forwards").unwrap_or("").to_string())
        .collect();
    assert_eq!(hops, ["5", "4", "3", "2", "1"]);
    assert!(
        sw.log().contains("no hops left (max_forwards)"),
        "{}",
        sw.log()
    );
}

#[test]
fn a_merged_invite_through_another_branch_is_refused_482() {
    let sip = free_port();
    let mut sw = start(sip, free_port());
    let me = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    me.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = me.local_addr().unwrap().port();
    let invite = |branch: &str| {
        format!(
            "INVITE sip:park@127.0.0.1:{sip} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:t@127.0.0.1:{port}>;tag=merged\r\n\
To: <sip:park@127.0.0.1:{sip}>\r\n\
Call-ID: merged-{port}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:t@127.0.0.1:{port}>\r\n\
Content-Length: 0\r\n\r\n"
        )
    };
    // The same request (Call-ID, From tag, CSeq) reaching the switch by
    // two paths: the first is a call, the second a merged request
    // (RFC 3261 §8.2.2.2).
    me.send_to(invite("first").as_bytes(), ("127.0.0.1", sip))
        .unwrap();
    wait_until(&mut sw, "the first INVITE's call", |sw| {
        sw.channel_count() == 1
    });
    me.send_to(invite("second").as_bytes(), ("127.0.0.1", sip))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "no final answer to the second INVITE"
        );
        let mut buf = [0u8; 4096];
        let Ok(n) = me.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let first_line = text.lines().next().unwrap_or("").to_string();
        if text.contains("branch=z9hG4bK-second") && !first_line.contains(" 100 ") {
            break first_line;
        }
    };
    assert_eq!(status, "SIP/2.0 482 Loop Detected");
    assert_eq!(sw.channel_count(), 1);
    hang_up_all(&mut sw);
}

/// One frame of the event socket: headers and body.
#[derive(Debug)]
struct Frame {
    headers: Vec<(String, String)>,
    body: String,
}

impl Frame {
    fn get(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A bare event-socket client.
struct Esl {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Esl {
    /// Connected and authenticated, or `None` while nobody serves the port.
    fn connect(port: u16) -> Option<Esl> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        let mut c = Esl {
            r: BufReader::new(s.try_clone().ok()?),
            w: s,
        };
        (c.frame()?.get("Content-Type") == "auth/request").then_some(())?;
        c.send("auth ClueCon");
        (c.frame()?.get("Reply-Text") == "+OK accepted").then_some(c)
    }

    fn send(&mut self, cmd: &str) {
        self.w.write_all(format!("{cmd}\n\n").as_bytes()).unwrap();
    }

    /// The next frame, `None` at the end of the stream.
    fn frame(&mut self) -> Option<Frame> {
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if headers.is_empty() {
                    continue;
                }
                break;
            }
            let (k, v) = line.split_once(": ")?;
            headers.push((k.to_string(), v.to_string()));
        }
        let mut f = Frame {
            headers,
            body: String::new(),
        };
        if let Ok(n) = f.get("Content-Length").parse::<usize>() {
            let mut body = vec![0; n];
            self.r.read_exact(&mut body).ok()?;
            f.body = String::from_utf8_lossy(&body).into_owned();
        }
        Some(f)
    }
}

#[test]
fn reload_mod_event_socket_is_answered_to_the_client_that_asked_before_the_disconnect() {
    let esl = free_port();
    let mut sw = start(free_port(), esl);
    for round in 0..3 {
        let deadline = Instant::now() + WAIT;
        let mut c = loop {
            if let Some(c) = Esl::connect(esl) {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: not serving again"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // A busy connection: events flow while the module goes away.
        c.send("event plain ALL");
        assert_eq!(
            c.frame().unwrap().get("Reply-Text"),
            "+OK event listener enabled plain"
        );
        c.send("api reload mod_event_socket");
        let mut frames = Vec::new();
        while let Some(f) = c.frame() {
            frames.push(f);
        }
        let answer = frames
            .iter()
            .position(|f| f.get("Content-Type") == "api/response")
            .unwrap_or_else(|| panic!("round {round}: no api/response in {frames:?}"));
        assert!(
            frames[answer].body.starts_with("+OK Job-UUID: "),
            "{frames:?}"
        );
        let last = frames.last().unwrap();
        assert_eq!(last.get("Content-Type"), "text/disconnect-notice");
        assert_eq!(last.body, "The system is being shut down.\n");
    }
    wait_until(&mut sw, "mod_event_socket loaded again", |sw| {
        sw.cmd("module_exists mod_event_socket").trim() == "true"
    });
}

#[test]
fn fsctl_answers_as_freeswitch_and_its_controls_take_effect() {
    let mut sw = start(free_port(), free_port());
    check(&mut sw, "fsctl loglevel", "+OK log level: DEBUG [7]");
    check(
        &mut sw,
        "fsctl loglevel WARNING",
        "+OK log level: WARNING [4]",
    );
    check(&mut sw, "fsctl loglevel", "+OK log level: WARNING [4]");
    check(&mut sw, "fsctl loglevel 6", "+OK log level: INFO [6]");
    check(
        &mut sw,
        "fsctl loglevel loud",
        "-ERR syntax error, log level not set!",
    );
    check(
        &mut sw,
        "fsctl max_sessions 10000",
        "+OK max sessions: 10000",
    );
    check(&mut sw, "fsctl max_sessions", "+OK max sessions: 10000");
    check(&mut sw, "fsctl sps 1000", "+OK sessions per second: 1000");
    check(&mut sw, "fsctl sps", "+OK sessions per second: 1000");
    check(
        &mut sw,
        "fsctl sps_peak_reset",
        "+OK max sessions per second counter reset",
    );
    check(
        &mut sw,
        "fsctl verbose_events true",
        "+OK verbose_events is on ",
    );
    check(
        &mut sw,
        "fsctl verbose_events off",
        "+OK verbose_events is off ",
    );
    check(&mut sw, "fsctl min_idle_cpu", "+OK min idle cpu: DISABLED");
    check(&mut sw, "fsctl calibrate_clock", "+OK");
    check(&mut sw, "fsctl ready_check", "true");
    let r = sw.cmd("fsctl bogus");
    assert!(
        r.starts_with("-ERR Invalid command\nUSAGE: fsctl [") && r.contains("loglevel [level]"),
        "{r}"
    );
    assert!(sw.cmd("fsctl").starts_with("-USAGE: ["));
    // Paused, no new outbound call; resumed, calls again.
    check(&mut sw, "fsctl pause outbound", "+OK");
    check(&mut sw, "fsctl pause_check outbound", "true");
    check(&mut sw, "fsctl pause_check inbound", "false");
    let r = sw.cmd("originate null/x &park()");
    assert!(r.starts_with("-ERR"), "{r}");
    check(&mut sw, "fsctl resume", "+OK");
    ok_uuid(&sw.cmd("originate null/x &park()"));
    assert_eq!(sw.cmd("fsctl hupall").trim_end(), "+OK");
    wait_until(&mut sw, "hung up", |sw| sw.channel_count() == 0);
}

#[test]
fn console_sets_the_console_log_level_and_colours() {
    let mut sw = start(free_port(), free_port());
    check(
        &mut sw,
        "console loglevel debug",
        "+OK console log level set to DEBUG",
    );
    check(
        &mut sw,
        "console loglevel 4",
        "+OK console log level set to WARNING",
    );
    check(
        &mut sw,
        "console loglevel",
        "+OK console log level set to WARNING",
    );
    check(
        &mut sw,
        "console loglevel shouty",
        "-ERR Invalid console loglevel (shouty)!",
    );
    check(&mut sw, "console colorize on", "+OK console color enabled");
    check(
        &mut sw,
        "console colorize toggle",
        "+OK console color disabled",
    );
    let r = sw.cmd("console");
    assert!(
        r.starts_with("USAGE:\n") && r.contains("console loglevel [[0-7] | <loglevel_string>]"),
        "{r}"
    );
}

#[test]
fn an_elegant_shutdown_waits_for_the_calls_and_can_be_cancelled() {
    let mut sw = start(free_port(), free_port());
    ok_uuid(&sw.cmd("originate null/x &park()"));
    assert_eq!(sw.cmd("fsctl shutdown elegant").trim_end(), "+OK");
    assert_eq!(sw.cmd("fsctl shutdown_check").trim_end(), "true");
    // Still serving, calls too.
    ok_uuid(&sw.cmd("originate null/y &park()"));
    assert_eq!(sw.cmd("fsctl shutdown cancel").trim_end(), "+OK");
    assert_eq!(sw.cmd("fsctl shutdown_check").trim_end(), "false");
    hang_up_all(&mut sw);
    assert!(sw.alive(), "a cancelled shutdown does not stop the switch");
    // asap: no new calls, and the switch stops when the last one ends.
    ok_uuid(&sw.cmd("originate null/z &park()"));
    assert_eq!(sw.cmd("fsctl shutdown asap").trim_end(), "+OK");
    assert!(sw.cmd("originate null/w &park()").starts_with("-ERR"));
    assert!(sw.alive());
    sw.cmd("hupall");
    let status = sw
        .wait_exit(WAIT)
        .expect("the switch stops once the calls end");
    assert!(status.success(), "{status:?}");
}

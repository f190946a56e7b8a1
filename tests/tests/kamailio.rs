//! Kamailio's dispatcher in front of two hotswitch nodes sharing one
//! PostgreSQL (tests/kamailio/kamailio.cfg, the README's example): a phone
//! registers through Kamailio (which adds a Path), one node takes the
//! REGISTER; that node is killed with SIGKILL, Kamailio's OPTIONS probing
//! marks it down, and a call to 1000 through Kamailio goes to the other
//! node, which finds the registration in the database and reaches the
//! phone through Kamailio along the Path. And a node taken out of service
//! with `fsctl shutdown elegant` answers new calls 503, which Kamailio
//! moves to the other node, while its own call finishes. And with
//! `track-calls`, a call a node answered goes on after that node is
//! killed: `sofia recover` on the other node re-INVITEs the phone through
//! Kamailio and echoes its audio from there; and a call it had bridged
//! between two phones comes back as two legs bridged again, each phone
//! hearing the other. Skipped without
//! `HOTSWITCH_TEST_PG` or without Debian's `kamailio` (.ci/run has both).

mod nodes_common;
mod phones_common;

use hotswitch_e2e::pg::PgServer;
use hotswitch_e2e::{free_port, wait_udp_bound, workspace_root, Switch, TempDir};
use nodes_common::{
    answering_phone, node, node_with, register, sipp, succeeds, try_succeeds, wait_contact,
    wait_log,
};
use phones_common::{pump_for, share_with, Phone, Transport};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kamailio on `port` dispatching to `nodes`, logging to `dir`/kamailio.log.
struct Kamailio {
    child: Child,
    log: std::path::PathBuf,
}

impl Kamailio {
    fn start(dir: &Path, port: u16, nodes: &[u16]) -> Kamailio {
        let list = dir.join("dispatcher.list");
        let entries: String = nodes
            .iter()
            .map(|p| format!("1 sip:127.0.0.1:{p}\n"))
            .collect();
        std::fs::write(&list, entries).unwrap();
        let log = dir.join("kamailio.log");
        // Kamailio forks its workers: a process group of its own lets the
        // test end them all (a SIGKILL to the main process alone leaves
        // them holding the port).
        let child = Command::new("kamailio")
            .process_group(0)
            .arg("-f")
            .arg(workspace_root().join("tests/kamailio/kamailio.cfg"))
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("DS_LIST=\"{}\"", list.display()))
            .arg("-Y")
            .arg(dir)
            .arg("-w")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kamailio");
        wait_udp_bound(port, Duration::from_secs(20));
        Kamailio { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in kamailio's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn kamailio_installed() -> bool {
    Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn kill9(sw: &mut Switch) {
    let st = Command::new("kill")
        .args(["-9", &sw.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(sw.wait_exit(Duration::from_secs(10)).is_some());
}

#[test]
fn a_node_killed_behind_kamailio_leaves_its_phone_reachable_through_the_other() {
    if !kamailio_installed() {
        eprintln!("SKIPPED kamailio: Debian's kamailio is not installed (.ci/run installs it)");
        return;
    }
    let Some(pg) = PgServer::start("kamailio") else {
        return;
    };
    let (port_a, port_b, kport) = (free_port(), free_port(), free_port());
    let dsn = format!("pgsql://{}", pg.conninfo());
    let mut nodes = [node(port_a, &dsn), node(port_b, &dsn)];
    for n in &nodes {
        wait_log(n, "registrations database connected");
    }
    let dir = TempDir::new("kamailio");
    let kam = Kamailio::start(dir.path(), kport, &[port_a, port_b]);

    // The phone registers through Kamailio; one node takes it, with the Path.
    let ua_port = nodes_common::free_udp_port();
    register(kport, "1000", ua_port);
    let path = pg.psql("SELECT path FROM sip_registrations WHERE sip_user = '1000'");
    assert!(
        path.contains(&format!("sip:127.0.0.1:{kport};lr;received=")),
        "Path: {path}\n{}",
        kam.log()
    );
    let took = nodes
        .iter()
        .position(|n| n.log().contains("registered 1000@127.0.0.1"))
        .expect("a node took the REGISTER");
    let other = 1 - took;
    let ports = [port_a, port_b];
    wait_contact(&mut nodes[other], "1000@127.0.0.1", ua_port);

    // The node that took it dies; probing marks it down.
    kill9(&mut nodes[took]);
    kam.wait_log(&format!(
        "dispatcher: sip:127.0.0.1:{} is down",
        ports[took]
    ));

    // A call to 1000 through Kamailio: the other node rings the phone,
    // through Kamailio (its Record-Route is on the INVITE the phone gets).
    let phone = answering_phone(ua_port, &format!("Record-Route: <sip:127.0.0.1:{kport};lr"));
    let caller = sipp(
        "uac_call_rr.xml",
        Some(kport),
        &[
            "-s",
            "1000",
            "-d",
            "500",
            "-key",
            "rtp_port",
            &free_port().to_string(),
        ],
    );
    succeeds(caller, "uac_call_rr");
    succeeds(phone, "uas_answer");
    let status = nodes[other].cmd("sofia status profile internal");
    assert!(status.contains("CALLS-IN         \t1\n"), "{status}");
    assert!(status.contains("CALLS-OUT        \t1\n"), "{status}");
}

fn calls_in(sw: &mut Switch) -> String {
    let status = sw.cmd("sofia status profile internal");
    status
        .lines()
        .find(|l| l.starts_with("CALLS-IN"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn a_node_shut_down_elegantly_behind_kamailio_sheds_new_calls_and_finishes_its_own() {
    if !kamailio_installed() {
        eprintln!("SKIPPED kamailio: Debian's kamailio is not installed (.ci/run installs it)");
        return;
    }
    let Some(pg) = PgServer::start("kamailio_drain") else {
        return;
    };
    let (port_a, port_b, kport) = (free_port(), free_port(), free_port());
    let dsn = format!("pgsql://{}", pg.conninfo());
    let mut nodes = [node(port_a, &dsn), node(port_b, &dsn)];
    let dir = TempDir::new("kamailio");
    let kam = Kamailio::start(dir.path(), kport, &[port_a, port_b]);

    // A call through Kamailio that stays up for a while: on node `busy`.
    let long = sipp(
        "uac_call_rr.xml",
        Some(kport),
        &[
            "-s",
            "5900",
            "-d",
            "5000",
            "-key",
            "rtp_port",
            &free_port().to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = loop {
        if let Some(i) = nodes.iter_mut().position(|n| n.channel_count() == 1) {
            break i;
        }
        assert!(Instant::now() < deadline, "the call did not come up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let other = 1 - busy;
    assert_eq!(nodes[busy].cmd("fsctl shutdown elegant").trim(), "+OK");

    // New calls: those Kamailio hashes to the draining node get 503 and
    // are moved to the other one; every one is answered.
    let shed = try_succeeds(
        sipp(
            "uac_call_rr.xml",
            Some(kport),
            &[
                "-s",
                "9196",
                "-m",
                "6",
                "-r",
                "5",
                "-d",
                "100",
                "-key",
                "rtp_port",
                &free_port().to_string(),
            ],
        ),
        "uac_call_rr while draining",
    );
    if let Err(e) = shed {
        panic!(
            "{e}\nthe draining node:\n{}\nthe other:\n{}\nkamailio:\n{}",
            nodes[busy].log(),
            nodes[other].log(),
            kam.log()
        );
    }
    assert_eq!(calls_in(&mut nodes[other]), "6");
    assert_eq!(calls_in(&mut nodes[busy]), "1");

    // The draining node's own call finishes, then it stops by itself.
    succeeds(long, "the long call");
    let st = nodes[busy]
        .wait_exit(Duration::from_secs(20))
        .expect("the drained node stops once its call ended");
    assert!(st.success(), "{st}");
}

/// Waits until `f` holds, else fails with `what`.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_call_the_killed_node_answered_goes_on_from_the_other_after_sofia_recover() {
    if !kamailio_installed() {
        eprintln!("SKIPPED kamailio: Debian's kamailio is not installed (.ci/run installs it)");
        return;
    }
    let Some(pg) = PgServer::start("kamailio_recover") else {
        return;
    };
    const TONE: f64 = 700.0;
    let (port_a, port_b, kport) = (free_port(), free_port(), free_port());
    let dsn = format!("pgsql://{}", pg.conninfo());
    let track = r#"<param name="track-calls" value="true"/>"#;
    let mut nodes = [
        node_with(port_a, &dsn, track),
        node_with(port_b, &dsn, track),
    ];
    for n in &nodes {
        wait_log(n, "recovery database connected");
    }
    let dir = TempDir::new("kamailio");
    let kam = Kamailio::start(dir.path(), kport, &[port_a, port_b]);

    // baresip registers through Kamailio and calls the echo test there.
    let mut phone = Phone::start("1000", &format!("127.0.0.1:{kport}"), Transport::Udp, TONE);
    phone.wait_registered(&mut nodes[0], "127.0.0.1");
    let dialed = Instant::now();
    phone.cmd("dial", &format!("sip:9196@127.0.0.1:{kport}"));
    let established = phone.wait_event("CALL_ESTABLISHED", dialed, &mut []).at;
    let mut took = None;
    wait_until("no node has the call", || {
        took = nodes.iter_mut().position(|n| n.channel_count() == 1);
        took.is_some()
    });
    let took = took.unwrap_or_default();
    let other = 1 - took;
    // The answered call is tracked in the shared database.
    wait_until("the call was not tracked", || {
        pg.psql("SELECT count(*) FROM recovery WHERE technology = 'sofia' AND profile_name = 'internal'")
            .trim()
            == "1"
    });
    // Its dialog went through Kamailio: that is where requests go, along
    // the route Kamailio recorded.
    let through_kamailio = pg.psql(&format!(
        "SELECT position(E'peer\\t127.0.0.1:{kport}\\n' in metadata) > 0 \
         AND position(E'route\\t<sip:127.0.0.1:{kport};lr' in metadata) > 0 FROM recovery"
    ));
    assert_eq!(
        through_kamailio.trim(),
        "t",
        "{}",
        pg.psql("SELECT metadata FROM recovery")
    );
    pump_for(&mut [&mut phone], Duration::from_secs(1));

    // The node dies; the other takes its call over.
    kill9(&mut nodes[took]);
    let killed = Instant::now();
    kam.wait_log(&format!(
        "dispatcher: sip:127.0.0.1:{} is down",
        [port_a, port_b][took]
    ));
    nodes[other].cmd("/event plain CUSTOM sofia::recovery_recovered");
    assert_eq!(
        nodes[other].cmd("sofia recover").trim(),
        "Recovered 1 call(s)"
    );
    // FreeSWITCH's event, with the count.
    let ev = nodes[other].wait_event(Duration::from_secs(10), |e| {
        e.get("Event-Subclass") == Some("sofia::recovery_recovered")
    });
    assert_eq!(
        ev.as_ref().and_then(|e| e.get("recovered_calls")),
        Some("1")
    );
    wait_log(&nodes[other], "re-INVITEd (200)");
    assert_eq!(nodes[other].channel_count(), 1);
    // Nothing left to take: its row was taken, and the node tracks the
    // call anew under its own runtime.
    assert_eq!(
        nodes[other].cmd("sofia recover").trim(),
        "No calls to recover."
    );
    pump_for(&mut [&mut phone], Duration::from_secs(3));
    let log = std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap_or_default();
    phone.cmd("hangup", "");
    phone.wait_event("CALL_CLOSED", dialed, &mut []);

    // The phone heard its own tone back from the node that took over: it
    // keeps only the audio it got, of which at least 1.5 s came after the
    // kill, and the last two seconds are the echo.
    let heard = phone.heard();
    let before_kill = killed.duration_since(established).as_secs_f64() * 8000.0;
    assert!(
        heard.len() as f64 > before_kill + 12_000.0,
        "the phone heard {} samples, {before_kill:.0} of them could be from before the kill",
        heard.len()
    );
    let tail = &heard[heard.len().saturating_sub(16_000)..];
    assert!(
        share_with(tail, TONE) > 0.5,
        "after recovery the phone heard its tone {:.0} % of the time\n{}\n{log}",
        100.0 * share_with(tail, TONE),
        nodes[other].log()
    );
    // Its BYE reached the node through Kamailio; the row went with the call.
    wait_until("the recovered call did not end", || {
        nodes[other].channel_count() == 0
    });
    wait_until("the ended call's row stayed", || {
        pg.psql("SELECT count(*) FROM recovery").trim() == "0"
    });
}

#[test]
fn a_bridged_call_the_killed_node_carried_is_bridged_again_on_the_other() {
    if !kamailio_installed() {
        eprintln!("SKIPPED kamailio: Debian's kamailio is not installed (.ci/run installs it)");
        return;
    }
    let Some(pg) = PgServer::start("kamailio_recover_bridge") else {
        return;
    };
    const A_TONE: f64 = 600.0;
    const B_TONE: f64 = 900.0;
    let (port_a, port_b, kport) = (free_port(), free_port(), free_port());
    let dsn = format!("pgsql://{}", pg.conninfo());
    let track = r#"<param name="track-calls" value="true"/>"#;
    let mut nodes = [
        node_with(port_a, &dsn, track),
        node_with(port_b, &dsn, track),
    ];
    for n in &nodes {
        wait_log(n, "recovery database connected");
    }
    let dir = TempDir::new("kamailio");
    let kam = Kamailio::start(dir.path(), kport, &[port_a, port_b]);

    // 1000 calls 1001, both registered through Kamailio; the node the
    // INVITE reaches bridges it to 1001 through Kamailio (Path).
    let registrar = format!("127.0.0.1:{kport}");
    let mut a = Phone::start("1000", &registrar, Transport::Udp, A_TONE);
    let mut b = Phone::start("1001", &registrar, Transport::Udp, B_TONE);
    a.wait_registered(&mut nodes[0], "127.0.0.1");
    b.wait_registered(&mut nodes[0], "127.0.0.1");
    b.wait_registered(&mut nodes[1], "127.0.0.1");
    let dialed = Instant::now();
    a.cmd("dial", &format!("sip:1001@127.0.0.1:{kport}"));
    b.wait_event("CALL_INCOMING", dialed, &mut [&mut a]);
    b.cmd("accept", "");
    let established = a.wait_event("CALL_ESTABLISHED", dialed, &mut [&mut b]).at;
    b.wait_event("CALL_ESTABLISHED", dialed, &mut [&mut a]);
    let mut took = None;
    wait_until("no node has the call", || {
        took = nodes.iter_mut().position(|n| n.channel_count() == 2);
        took.is_some()
    });
    let took = took.unwrap_or_default();
    let other = 1 - took;
    // Both legs tracked, each naming the other as its partner.
    wait_until("the legs were not tracked as bridged", || {
        pg.psql("SELECT count(*) FROM recovery WHERE position(E'\\npartner\\t\\n' in metadata) = 0")
            == "2"
    });
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(1));

    kill9(&mut nodes[took]);
    let killed = Instant::now();
    kam.wait_log(&format!(
        "dispatcher: sip:127.0.0.1:{} is down",
        [port_a, port_b][took]
    ));
    assert_eq!(
        nodes[other].cmd("sofia recover").trim(),
        "Recovered 2 call(s)"
    );
    wait_log(&nodes[other], "bridged again");
    assert_eq!(
        nodes[other].channel_count(),
        2,
        "the recovered legs did not stay up; the node that took over:\n{}",
        nodes[other].log()
    );
    pump_for(&mut [&mut a, &mut b], Duration::from_secs(3));
    a.cmd("hangup", "");
    let closed = a
        .try_wait_event("CALL_CLOSED", dialed, &mut [&mut b])
        .and_then(|_| b.try_wait_event("CALL_CLOSED", dialed, &mut [&mut a]));
    if let Err(e) = closed {
        panic!(
            "{e}\nthe node that took over:\n{}\nkamailio:\n{}",
            nodes[other].log(),
            kam.log()
        );
    }

    // Each phone heard the other from the node that took over.
    let before_kill = killed.duration_since(established).as_secs_f64() * 8000.0;
    for (phone, tone) in [(&a, B_TONE), (&b, A_TONE)] {
        let heard = phone.heard();
        let tail = &heard[heard.len().saturating_sub(16_000)..];
        assert!(
            heard.len() as f64 > before_kill + 12_000.0 && share_with(tail, tone) > 0.5,
            "{} heard {} samples ({before_kill:.0} before the kill), the other's tone {:.0} % \
             of its last two seconds\n{}",
            phone.user,
            heard.len(),
            100.0 * share_with(tail, tone),
            nodes[other].log()
        );
    }
    wait_until("the recovered legs did not end", || {
        nodes[other].channel_count() == 0
    });
    wait_until("the ended legs' rows stayed", || {
        pg.psql("SELECT count(*) FROM recovery") == "0"
    });
}

//! Kamailio's dispatcher in front of two hotswitch nodes sharing one
//! PostgreSQL (tests/kamailio/kamailio.cfg, the README's example): a phone
//! registers through Kamailio (which adds a Path), one node takes the
//! REGISTER; that node is killed with SIGKILL, Kamailio's OPTIONS probing
//! marks it down, and a call to 1000 through Kamailio goes to the other
//! node, which finds the registration in the database and reaches the
//! phone through Kamailio along the Path. And a node taken out of service
//! with `fsctl shutdown elegant` answers new calls 503, which Kamailio
//! moves to the other node, while its own call finishes. Skipped without
//! `HOTSWITCH_TEST_PG` or without Debian's `kamailio` (.ci/run has both).

mod nodes_common;

use hotswitch_e2e::pg::PgServer;
use hotswitch_e2e::{free_port, wait_udp_bound, workspace_root, Switch, TempDir};
use nodes_common::{answering_phone, node, register, sipp, succeeds, wait_contact, wait_log};
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
    let _kam = Kamailio::start(dir.path(), kport, &[port_a, port_b]);

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
    succeeds(
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
    assert_eq!(calls_in(&mut nodes[other]), "6");
    assert_eq!(calls_in(&mut nodes[busy]), "1");

    // The draining node's own call finishes, then it stops by itself.
    succeeds(long, "the long call");
    let st = nodes[busy]
        .wait_exit(Duration::from_secs(20))
        .expect("the drained node stops once its call ended");
    assert!(st.success(), "{st}");
}

//! Two nodes sharing registrations in PostgreSQL (mod_sofia's `odbc-dsn`;
//! skipped without `HOTSWITCH_TEST_PG`, see `hotswitch_e2e::pg`): a phone
//! registered on node A is called by `originate user/1000` on node B; a
//! REGISTER while the database is down is still answered and reaches the
//! other node once it is back; a DSN of another kind is a load error.

use hotswitch_e2e::pg::PgServer;
use hotswitch_e2e::{free_port, wait_udp_bound, workspace_root, Switch, SwitchConfig};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <params><param name="dial-string" value="{presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(${dialed_user}@${dialed_domain})}"/></params>
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params></user>
    <user id="1001"><params><param name="password" value="1234"/></params></user>
  </users></group></groups>
</domain></include>"#;

fn node(port: u16, dsn: &str) -> Switch {
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="internal"><settings>
    <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
    <param name="rtp-ip" value="127.0.0.1"/><param name="context" value="default"/>
    <param name="odbc-dsn" value="{dsn}"/>
  </settings></profile>
</profiles></configuration>"#
    );
    Switch::start(SwitchConfig {
        autoload: vec!["mod_sofia".into(), "mod_dptools".into()],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            ("directory/default.xml".into(), DIRECTORY.into()),
        ],
        ..Default::default()
    })
}

fn wait_log(sw: &Switch, needle: &str) {
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

fn sipp(scenario: &str, target: Option<u16>, args: &[&str]) -> Child {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(workspace_root().join("tests/sipp").join(scenario));
    if let Some(p) = target {
        cmd.arg(format!("127.0.0.1:{p}"));
    }
    cmd.args(["-i", "127.0.0.1", "-nostdin", "-m", "1"])
        .args(["-timeout", "40s", "-timeout_error"])
        .arg("-mp")
        .arg(free_port().to_string())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (Debian: sip-tester; .ci/run installs it)")
}

fn succeeds(mut c: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            assert!(st.success(), "sipp {what} failed: {st}");
            return;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("sipp {what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn register(port: u16, user: &str, ua_port: u16) {
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

fn wait_contact(sw: &mut Switch, aor: &str, ua_port: u16) {
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

#[test]
fn a_phone_registered_on_node_a_is_called_from_node_b() {
    let Some(pg) = PgServer::start("sofia_pg_two_nodes") else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    // FreeSWITCH's pgsql:// form on A, a URL on B.
    let mut a = node(port_a, &format!("pgsql://{}", pg.conninfo()));
    let mut b = node(port_b, &pg.url());
    wait_log(&a, "registrations database connected");
    wait_log(&b, "registrations database connected");
    assert_eq!(
        pg.psql("SELECT version FROM hotswitch_schema WHERE component = 'sofia'"),
        "1"
    );

    let ua_port = free_port();
    register(port_a, "1000", ua_port);
    wait_contact(&mut a, "1000@127.0.0.1", ua_port);
    wait_contact(&mut b, "1000@127.0.0.1", ua_port);
    assert_eq!(
        pg.psql("SELECT sip_user, sip_host, network_port FROM sip_registrations"),
        format!("1000|127.0.0.1|{ua_port}")
    );

    let phone = sipp(
        "uas_answer.xml",
        None,
        &[
            "-key",
            "want_header",
            "INVITE sip:1000@127.0.0.1",
            "-key",
            "rtp_port",
            &free_port().to_string(),
            "-p",
            &ua_port.to_string(),
        ],
    );
    wait_udp_bound(ua_port, Duration::from_secs(10));
    let out = b.cmd("originate {originate_timeout=10}user/1000@127.0.0.1 &park()");
    assert!(out.starts_with("+OK "), "{out}\n{}", b.log());
    let uuid = out[4..].trim().to_string();
    assert!(b.cmd(&format!("uuid_kill {uuid}")).starts_with("+OK"));
    succeeds(phone, "uas_answer");
    // The store's worker thread is joined at unload: the library unmaps.
    let out = a.cmd("unload mod_sofia");
    assert_eq!(out.trim(), "+OK", "{}", a.log());
}

#[test]
fn a_register_while_the_database_is_down_is_answered_and_shared_once_it_is_back() {
    let Some(pg) = PgServer::start("sofia_pg_outage") else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = node(port_a, &format!("pgsql://{}", pg.conninfo()));
    let mut b = node(port_b, &format!("pgsql://{}", pg.conninfo()));
    wait_log(&a, "registrations database connected");
    wait_log(&b, "registrations database connected");

    pg.stop_server();
    let ua_port = free_port();
    let started = Instant::now();
    register(port_a, "1001", ua_port);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the REGISTER waited on the database"
    );
    // Served from A's memory at once; B learns it when the database is back.
    wait_contact(&mut a, "1001@127.0.0.1", ua_port);
    assert!(b
        .cmd("sofia_contact 1001@127.0.0.1")
        .contains("error/user_not_registered"));
    wait_log(&a, "registrations database unreachable");

    pg.start_server();
    wait_contact(&mut b, "1001@127.0.0.1", ua_port);
    assert_eq!(
        pg.psql("SELECT count(*) FROM sip_registrations WHERE sip_user = '1001'"),
        "1"
    );
}

#[test]
fn an_odbc_dsn_that_is_not_postgresql_is_a_load_error() {
    let sw = node(free_port(), "freeswitch:fsuser:secret");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sw.log().contains("only PostgreSQL is supported") {
        assert!(Instant::now() < deadline, "{}", sw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut sw = sw;
    assert_eq!(sw.cmd("module_exists mod_sofia").trim(), "false");
}

//! Two nodes sharing registrations in PostgreSQL (mod_sofia's `odbc-dsn`;
//! skipped without `HOTSWITCH_TEST_PG`, see `hotswitch_e2e::pg`): a phone
//! registered on node A is called by `originate user/1000` on node B; a
//! REGISTER while the database is down is still answered and reaches the
//! other node once it is back; a DSN of another kind is a load error.
//! And a storm of calls to the echo test while the database hangs (frozen,
//! not down) with every writer on — registrations, `track-calls`,
//! mod_cdr_pg_csv: every call is answered, the SIP thread answers
//! `sofia status` throughout, and once the database thaws every CDR is in
//! the table and no ended call is left tracked. And each node's gateway
//! states in `sip_gateways`, under its switchname, gone at unload.

mod nodes_common;

use hotswitch_e2e::free_port;
use hotswitch_e2e::pg::PgServer;
use nodes_common::{
    answering_phone, node, node_full, register, sipp, succeeds, wait_contact, wait_log,
};
use std::time::{Duration, Instant};

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
        "2"
    );
    let status = a.cmd("sofia status profile internal");
    assert!(
        status.contains(&format!("DBName           \tpgsql://{}", pg.conninfo())),
        "{status}"
    );

    let ua_port = nodes_common::free_udp_port();
    register(port_a, "1000", ua_port);
    wait_contact(&mut a, "1000@127.0.0.1", ua_port);
    wait_contact(&mut b, "1000@127.0.0.1", ua_port);
    assert_eq!(
        pg.psql("SELECT sip_user, sip_host, network_port FROM sip_registrations"),
        format!("1000|127.0.0.1|{ua_port}")
    );

    let phone = answering_phone(ua_port, "INVITE sip:1000@127.0.0.1");
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
    let ua_port = nodes_common::free_udp_port();
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

#[test]
fn a_database_at_schema_version_1_is_migrated_and_keeps_its_bindings() {
    let Some(pg) = PgServer::start("sofia_pg_migrate") else {
        return;
    };
    // What the first release created (migration 1), with one live binding.
    pg.psql(
        "CREATE TABLE hotswitch_schema (component text PRIMARY KEY, version integer NOT NULL);
         INSERT INTO hotswitch_schema VALUES ('sofia', 1);
         CREATE TABLE sip_registrations (profile_name text NOT NULL, sip_user text NOT NULL,
           sip_host text NOT NULL, contact text NOT NULL, network_ip text NOT NULL,
           network_port integer NOT NULL, transport text NOT NULL, expires bigint NOT NULL,
           call_id text NOT NULL, user_agent text NOT NULL, hostname text NOT NULL,
           PRIMARY KEY (profile_name, sip_user, sip_host, contact));
         INSERT INTO sip_registrations VALUES ('internal', '1001', '127.0.0.1',
           'sip:1001@127.0.0.1:5999', '127.0.0.1', 5999, 'UDP',
           extract(epoch from now())::bigint + 300, 'c', 'old', 'node-x');",
    );
    let mut n = node(free_port(), &format!("pgsql://{}", pg.conninfo()));
    wait_log(&n, "registrations database schema now at version 2");
    wait_log(&n, "registrations database connected (1 live bindings)");
    wait_contact(&mut n, "1001@127.0.0.1", 5999);
    assert_eq!(
        pg.psql("SELECT version FROM hotswitch_schema WHERE component = 'sofia'"),
        "2"
    );
    assert_eq!(pg.psql("SELECT path FROM sip_registrations"), "{}");
}

#[test]
fn calls_to_echo_during_a_postgresql_outage_are_answered_and_every_cdr_reaches_the_table() {
    let Some(pg) = PgServer::start("sofia_pg_storm") else {
        return;
    };
    pg.psql("CREATE TABLE cdr (uuid text NOT NULL, destination_number text, billsec integer)");
    let spool = hotswitch_e2e::TempDir::new("storm-spool");
    let port = free_port();
    let cdr_conf = format!(
        r#"<configuration name="cdr_pg_csv.conf"><settings>
             <param name="db-info" value="{} connect_timeout=2"/>
             <param name="spool-dir" value="{}"/>
           </settings><schema>
             <field var="uuid"/><field var="destination_number"/>
             <field var="billsec" quote="false"/>
           </schema></configuration>"#,
        pg.conninfo(),
        spool.path().display()
    );
    let mut sw = node_full(
        port,
        &format!("pgsql://{}", pg.conninfo()),
        "",
        &["mod_cdr_pg_csv"],
        vec![("autoload_configs/cdr_pg_csv.conf.xml".into(), cdr_conf)],
    );
    wait_log(&sw, "registrations database connected");

    pg.stop_server();
    // 40 calls at 10 a second, each answered by echo; sipp fails on any
    // call that is not answered and ended cleanly.
    let calls = 40;
    succeeds(
        sipp(
            "uac_call.xml",
            Some(port),
            &[
                "-s",
                "9196",
                "-m",
                &calls.to_string(),
                "-r",
                "10",
                "-l",
                "20",
                "-d",
                "200",
                "-key",
                "rtp_port",
                &free_port().to_string(),
            ],
        ),
        "uac_call storm",
    );
    wait_log(&sw, "CDR database unreachable");
    hotswitch_e2e::wait_until(&mut sw, "the calls to end", |s| s.channel_count() == 0);

    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: usize = pg.psql("SELECT count(*) FROM cdr").parse().unwrap();
        if rows == calls {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {calls} CDRs in the table\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM cdr WHERE destination_number = '9196'"),
        calls.to_string()
    );
}

#[test]
fn a_register_while_the_database_is_slow_is_answered_at_once() {
    let Some(pg) = PgServer::start("sofia_pg_slow") else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = node(port_a, &format!("pgsql://{}", pg.conninfo()));
    let mut b = node(port_b, &format!("pgsql://{}", pg.conninfo()));
    wait_log(&a, "registrations database connected");
    wait_log(&b, "registrations database connected");
    // A transaction holds the table for 4 s: every write to it waits.
    let mut slow = pg.psql_background(
        "BEGIN; LOCK TABLE sip_registrations IN ACCESS EXCLUSIVE MODE; \
         SELECT pg_sleep(4); COMMIT;",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'sip_registrations'::regclass") != "1" {
        assert!(Instant::now() < deadline, "the lock was not taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ua_port = nodes_common::free_udp_port();
    let started = Instant::now();
    register(port_a, "1000", ua_port);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the REGISTER waited {:?} on the database",
        started.elapsed()
    );
    wait_contact(&mut a, "1000@127.0.0.1", ua_port);
    // Written, and shared, once the lock is gone.
    assert!(slow.wait().unwrap().success());
    wait_contact(&mut b, "1000@127.0.0.1", ua_port);
}

#[test]
fn calls_to_echo_while_postgresql_hangs_are_answered_and_tracked_calls_and_cdrs_catch_up() {
    let Some(pg) = PgServer::start("sofia_pg_hang") else {
        return;
    };
    pg.psql("CREATE TABLE cdr (uuid text NOT NULL, destination_number text, billsec integer)");
    let spool = hotswitch_e2e::TempDir::new("hang-spool");
    let port = free_port();
    let cdr_conf = format!(
        r#"<configuration name="cdr_pg_csv.conf"><settings>
             <param name="db-info" value="{} connect_timeout=2"/>
             <param name="spool-dir" value="{}"/>
           </settings><schema>
             <field var="uuid"/><field var="destination_number"/>
             <field var="billsec" quote="false"/>
           </schema></configuration>"#,
        pg.conninfo(),
        spool.path().display()
    );
    // Every piece that writes to the database: registrations, tracked
    // calls (track-calls), CDRs.
    let mut sw = node_full(
        port,
        &format!("pgsql://{}", pg.conninfo()),
        r#"<param name="track-calls" value="true"/>"#,
        &["mod_cdr_pg_csv"],
        vec![("autoload_configs/cdr_pg_csv.conf.xml".into(), cdr_conf)],
    );
    wait_log(&sw, "registrations database connected");
    wait_log(&sw, "recovery database connected");

    // 60 calls at 10 a second, each answered by echo and up for 1 s; the
    // database hangs (frozen, not down: connections stay open, queries
    // are never answered) once the first have been written.
    let calls = 60;
    let storm = sipp(
        "uac_call.xml",
        Some(port),
        &[
            "-s",
            "9196",
            "-m",
            &calls.to_string(),
            "-r",
            "10",
            "-l",
            "30",
            "-d",
            "1000",
            "-key",
            "rtp_port",
            &free_port().to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.psql("SELECT count(*) FROM recovery") == "0" {
        assert!(
            Instant::now() < deadline,
            "no call was tracked\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pg.freeze_server(true);
    // The SIP thread goes on: `sofia status` is answered by it, and sipp
    // fails on any call that is not answered and ended cleanly.
    let status = sw.cmd("sofia status");
    assert!(status.contains("internal"), "{status}");
    // Recovery needs the database: it says so instead of waiting forever.
    let recover = sw.cmd("sofia recover");
    assert!(recover.starts_with("-ERR"), "{recover}");
    succeeds(storm, "uac_call storm while the database hangs");
    hotswitch_e2e::wait_until(&mut sw, "the calls to end", |s| s.channel_count() == 0);
    assert!(sw.cmd("sofia status").contains("internal"));

    pg.freeze_server(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: usize = pg.psql("SELECT count(*) FROM cdr").parse().unwrap();
        let tracked: usize = pg.psql("SELECT count(*) FROM recovery").parse().unwrap();
        if rows == calls && tracked == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {calls} CDRs in the table, {tracked} ended calls still tracked\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gateway_states_are_kept_in_the_database_under_the_switchname_while_the_profile_runs() {
    let Some(pg) = PgServer::start("sofia_pg_gateways") else {
        return;
    };
    let port = free_port();
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles>
  <profile name="internal">
    <gateways>
      <gateway name="carrier"><param name="proxy" value="127.0.0.1:9"/>
        <param name="username" value="acct"/><param name="register" value="false"/></gateway>
    </gateways>
    <settings>
      <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
      <param name="odbc-dsn" value="pgsql://{}"/>
    </settings>
  </profile>
</profiles></configuration>"#,
        pg.conninfo()
    );
    let mut sw = hotswitch_e2e::Switch::start(hotswitch_e2e::SwitchConfig {
        autoload: vec!["mod_sofia".into()],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
                     <param name="switchname" value="cluster-1"/>
                   </settings></configuration>"#
                    .into(),
            ),
        ],
        ..Default::default()
    });
    wait_log(&sw, "gateway states database connected");
    let row = "SELECT hostname || ' ' || profile_name || ' ' || gateway_name || ' ' || proxy \
               || ' ' || username || ' ' || register || ' ' || state FROM sip_gateways";
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.psql(row).is_empty() {
        assert!(Instant::now() < deadline, "no gateway row\n{}", sw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pg.psql(row),
        "cluster-1 internal carrier 127.0.0.1:9 acct false NOREG"
    );
    // No profile tracks calls here: nothing to recover.
    assert_eq!(sw.cmd("sofia recover").trim(), "No calls to recover.");
    // The node's gateways leave with its profile.
    let out = sw.cmd("unload mod_sofia");
    assert!(out.contains("+OK"), "{out}");
    assert_eq!(pg.psql("SELECT count(*) FROM sip_gateways"), "0");
}

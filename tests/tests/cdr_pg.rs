//! mod_cdr_pg_csv against the real binary and a real PostgreSQL (see
//! `hotswitch_e2e::pg`; skipped without `HOTSWITCH_TEST_PG`): one row per
//! leg, and with the database stopped in the middle of the calls, the
//! records spooled and replayed when it is back — as many rows as calls.

use hotswitch_e2e::pg::PgServer;
use hotswitch_e2e::{Switch, SwitchConfig, TempDir};
use std::path::Path;
use std::time::{Duration, Instant};

const TABLE: &str = "CREATE TABLE cdr (uuid text NOT NULL, hangup_cause text, \
                     destination_number text, billsec integer, accountcode text)";

fn cdr_switch(pg: &PgServer, spool: &Path, format: &str) -> Switch {
    Switch::start(SwitchConfig {
        autoload: vec![
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_cdr_pg_csv".into(),
        ],
        files: vec![(
            "autoload_configs/cdr_pg_csv.conf.xml".into(),
            format!(
                r#"<configuration name="cdr_pg_csv.conf"><settings>
                     <param name="db-info" value="{} connect_timeout=2"/>
                     <param name="db-table" value="cdr"/>
                     <param name="legs" value="ab"/>
                     <param name="spool-dir" value="{}"/>
                     <param name="spool-format" value="{format}"/>
                   </settings><schema>
                     <field var="uuid" not-null="true"/>
                     <field var="hangup_cause"/>
                     <field var="destination_number"/>
                     <field var="billsec" quote="false"/>
                     <field var="accountcode"/>
                   </schema></configuration>"#,
                pg.conninfo(),
                spool.display()
            ),
        )],
        ..Default::default()
    })
}

fn rows(pg: &PgServer) -> usize {
    pg.psql("SELECT count(*) FROM cdr").parse().unwrap()
}

fn wait_rows(pg: &PgServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(pg) != n {
        assert!(
            Instant::now() < deadline,
            "the table has {} rows, not {n}",
            rows(pg)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spooled(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn wait_spooled(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled(path) != n {
        assert!(
            Instant::now() < deadline,
            "{} has {} records, not {n}",
            path.display(),
            spooled(path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn calls(sw: &mut Switch, n: usize) {
    for _ in 0..n {
        let r = sw.cmd("originate {accountcode=acme}null/x &hangup(USER_BUSY)");
        assert!(r.starts_with("+OK"), "{r}");
    }
}

#[test]
fn records_made_while_postgresql_is_down_are_spooled_and_replayed_none_lost() {
    let Some(pg) = PgServer::start("cdr_pg") else {
        return;
    };
    pg.psql(TABLE);
    let spool = TempDir::new("cdr-pg-spool");
    let mut sw = cdr_switch(&pg, spool.path(), "csv");
    calls(&mut sw, 10);
    wait_rows(&pg, 10);
    let row = pg.psql("SELECT hangup_cause, accountcode, billsec FROM cdr LIMIT 1");
    assert_eq!(row, "USER_BUSY|acme|0");

    pg.stop_server();
    calls(&mut sw, 15);
    let file = spool.path().join("cdr-spool.csv");
    wait_spooled(&file, 15);
    let first = std::fs::read_to_string(&file).unwrap();
    assert!(
        first
            .lines()
            .all(|l| l.contains(",'USER_BUSY','x',0,'acme'")),
        "{first}"
    );

    pg.start_server();
    // Replayed on the writer's next attempt, then new records go straight in.
    wait_rows(&pg, 25);
    calls(&mut sw, 5);
    wait_rows(&pg, 30);
    assert_eq!(spooled(&file), 0, "the spool is emptied once replayed");
    assert!(
        sw.log().contains("replayed 15 spooled CDRs"),
        "{}",
        sw.log()
    );
    let distinct: usize = pg
        .psql("SELECT count(DISTINCT uuid) FROM cdr")
        .parse()
        .unwrap();
    assert_eq!(distinct, 30, "each call once");
}

#[test]
fn records_queued_at_unload_are_spooled_and_a_later_load_replays_them() {
    let Some(pg) = PgServer::start("cdr_pg_unload") else {
        return;
    };
    pg.psql(TABLE);
    let spool = TempDir::new("cdr-pg-spool");
    let mut sw = cdr_switch(&pg, spool.path(), "sql");
    pg.stop_server();
    calls(&mut sw, 8);
    // Every leg reported (a channel is gone after CS_REPORTING) before the
    // module goes: what it holds then must reach the spool.
    hotswitch_e2e::wait_until(&mut sw, "the calls to end", |s| s.channel_count() == 0);
    assert_eq!(sw.cmd("unload mod_cdr_pg_csv").trim(), "+OK");
    let file = spool.path().join("cdr-spool.sql");
    assert_eq!(spooled(&file), 8);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .all(|l| l.starts_with(
            "INSERT INTO cdr (uuid,hangup_cause,destination_number,billsec,accountcode) VALUES ("
        )));
    pg.start_server();
    assert!(sw.cmd("load mod_cdr_pg_csv").contains("+OK"));
    wait_rows(&pg, 8);
    assert_eq!(spooled(&file), 0);
}

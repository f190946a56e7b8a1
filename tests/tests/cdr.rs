//! Call detail records (mod_cdr_csv) against the real binary: one CSV line
//! per leg from the configured template, and records already reported
//! survive the switch being killed.

use hotswitch_e2e::{Switch, SwitchConfig, TempDir};
use std::time::{Duration, Instant};

fn cdr_switch(dir: &std::path::Path) -> Switch {
    Switch::start(SwitchConfig {
        autoload: vec![
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_cdr_csv".into(),
        ],
        files: vec![(
            "autoload_configs/cdr_csv.conf.xml".into(),
            format!(
                r#"<configuration name="cdr_csv.conf"><settings>
                     <param name="log-base" value="{}"/>
                     <param name="default-template" value="test"/>
                     <param name="legs" value="ab"/>
                   </settings><templates>
                     <template name="test">"${{uuid}}","${{hangup_cause}}","${{destination_number}}","${{billsec}}","${{start_stamp}}","${{accountcode}}"</template>
                   </templates></configuration>"#,
                dir.display()
            ),
        )],
        ..Default::default()
    })
}

fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} of {n} lines",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_leg_of_a_call_gets_one_record_from_the_template() {
    let dir = TempDir::new("cdr");
    let mut sw = cdr_switch(dir.path());
    let a = "cdcdcdcd-0000-4000-8000-000000000001";
    let r = sw.cmd(&format!(
        "originate {{origination_uuid={a},accountcode=acme}}loopback/answer\\,park/default/inline &hangup(USER_BUSY)"
    ));
    assert_eq!(r.trim(), format!("+OK {a}"));
    let master = dir.path().join("cdr-csv/Master.csv");
    let lines = wait_for_lines(&master, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let a_line = lines
        .iter()
        .find(|l| l.starts_with(&format!("\"{a}\"")))
        .expect("the A leg's record");
    assert!(a_line.contains("\"USER_BUSY\""), "{a_line}");
    assert!(a_line.contains("\"answer,park\""), "{a_line}");
    assert!(a_line.contains("\"acme\""), "{a_line}");
    let fields: Vec<&str> = a_line.split("\",\"").collect();
    assert_eq!(fields.len(), 6, "{a_line}");
    assert!(
        fields[4].len() == 19 && fields[4].contains(':'),
        "start_stamp: {}",
        fields[4]
    );
    let b_line = lines
        .iter()
        .find(|l| !l.starts_with(&format!("\"{a}\"")))
        .unwrap();
    assert!(
        b_line.contains("\"USER_BUSY\""),
        "the B leg has the same cause: {b_line}"
    );
    // The account's own file: both legs carry the accountcode.
    assert_eq!(
        wait_for_lines(&dir.path().join("cdr-csv/acme.csv"), 2).len(),
        2
    );
}

#[test]
fn records_already_reported_survive_the_switch_being_killed() {
    let dir = TempDir::new("cdr-kill");
    let mut sw = cdr_switch(dir.path());
    for _ in 0..20 {
        assert!(sw.cmd("originate null/x &hangup()").starts_with("+OK"));
    }
    let master = dir.path().join("cdr-csv/Master.csv");
    wait_for_lines(&master, 20);
    let pid = sw.pid();
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(sw.wait_exit(Duration::from_secs(10)).is_some());
    let lines = std::fs::read_to_string(&master).unwrap();
    assert_eq!(lines.lines().count(), 20);
    assert!(
        lines
            .lines()
            .all(|l| l.contains("\"NORMAL_CLEARING\"") && l.ends_with('"')),
        "{lines}"
    );
}

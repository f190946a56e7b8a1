//! Where the switch finds modules and puts its files, as a new user meets
//! it: `-mod` adds a directory to the defaults, `-base` and the directory
//! flags keep instances apart, CDRs land under `-log`.

use hotswitch_e2e::{
    binary, build_dir, free_port, install, ok_uuid, Switch, SwitchConfig, TempDir,
};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A configuration directory: `modules` autoloaded, `files` beside.
fn write_conf(dir: &Path, modules: &[&str], files: &[(&str, String)]) {
    std::fs::create_dir_all(dir.join("autoload_configs")).unwrap();
    let loads: String = modules
        .iter()
        .map(|m| format!("<load module=\"{m}\"/>"))
        .collect();
    std::fs::write(
        dir.join("autoload_configs/modules.conf.xml"),
        format!("<configuration name=\"modules.conf\"><modules>{loads}</modules></configuration>"),
    )
    .unwrap();
    std::fs::write(
        dir.join("freeswitch.xml"),
        r#"<document type="freeswitch/xml">
  <section name="configuration"><X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/></section>
</document>"#,
    )
    .unwrap();
    for (rel, text) in files {
        std::fs::write(dir.join(rel), text).unwrap();
    }
}

#[test]
fn a_module_outside_the_workspace_loads_with_mod_while_the_default_modules_still_load() {
    let tmp = TempDir::new("dirs-mod");
    // An author's module, in a directory of its own (mod_skel stands in).
    let author = tmp.path().join("author/target/release");
    install(
        &build_dir().join("libmod_skel.so"),
        &author,
        "libmod_skel.so",
    );
    let conf = tmp.path().join("conf");
    write_conf(&conf, &["mod_loopback", "mod_dptools", "mod_skel"], &[]);
    // The binary as a user starts it: no module directory but the author's.
    let mut child = Command::new(binary())
        .arg("-conf")
        .arg(&conf)
        .arg("-base")
        .arg(tmp.path().join("base"))
        .arg("-mod")
        .arg(&author)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"module_list\nskel Alice\nshutdown\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap_or_else(|| panic!("{name} not loaded:\n{stdout}\n{stderr}"))
            .to_string()
    };
    // The author's copy, from the -mod directory…
    assert!(
        row("mod_skel").contains("/author/target/release/"),
        "{}",
        row("mod_skel")
    );
    assert!(stdout.contains("+OK hello Alice"), "{stdout}");
    // …and the switch's own modules from its default directory.
    let own = build_dir().display().to_string();
    assert!(
        row("mod_loopback").contains(&own),
        "{}",
        row("mod_loopback")
    );
    assert!(row("mod_dptools").contains(&own));
    assert!(!stderr.contains("failed to load"), "{stderr}");
}

#[test]
fn a_module_that_fails_to_autoload_is_one_line_and_named_after_ready() {
    let tmp = TempDir::new("dirs-fail");
    let conf = tmp.path().join("conf");
    write_conf(&conf, &["mod_loopback", "mod_nowhere"], &[]);
    let sw = Switch::start(SwitchConfig {
        conf_dir: Some(conf),
        ..Default::default()
    });
    let log = sw.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("mod_nowhere")).collect();
    assert_eq!(failures.len(), 2, "{log}");
    assert!(failures[0].contains("mod_nowhere failed to load: module mod_nowhere not found"));
    let ready = log.find("hotswitch is ready").expect("ready");
    let summary = log.find("not loaded: mod_nowhere").expect("the summary");
    assert!(summary > ready, "{log}");
    assert!(!log.contains("mod_loopback failed"), "{log}");
}

/// CDRs of every leg in the default place, `$${log_dir}/cdr-csv`.
fn cdr_conf() -> (String, String) {
    (
        "autoload_configs/cdr_csv.conf.xml".into(),
        r#"<configuration name="cdr_csv.conf"><settings><param name="legs" value="ab"/></settings></configuration>"#.into(),
    )
}

/// sofia on `port` with its registrations in `$${db_dir}`, CDRs in the
/// default `$${log_dir}`.
fn instance(base: &Path, port: u16) -> Switch {
    let sofia = format!(
        r#"<configuration name="sofia.conf"><profiles><profile name="internal"><settings>
  <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="{port}"/>
  <param name="rtp-ip" value="127.0.0.1"/>
  <param name="registration-db" value="$${{db_dir}}/sofia_reg.redb"/>
</settings></profile></profiles></configuration>"#
    );
    Switch::start(SwitchConfig {
        autoload: vec![
            "mod_sofia".into(),
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_cdr_csv".into(),
        ],
        files: vec![
            ("autoload_configs/sofia.conf.xml".into(), sofia),
            cdr_conf(),
        ],
        args: vec!["-base".into(), base.display().to_string()],
        ..Default::default()
    })
}

fn one_call(sw: &mut Switch) {
    ok_uuid(&sw.cmd("originate null/x &hangup(NORMAL_CLEARING)"));
}

/// The text of `path` once something is written there.
fn wait_file(sw: &Switch, path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(t) = std::fs::read_to_string(path) {
            if !t.is_empty() {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written\n{}",
            path.display(),
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_instances_with_different_bases_run_side_by_side_without_sharing_files() {
    let tmp = TempDir::new("dirs-two");
    let (b1, b2) = (tmp.path().join("one"), tmp.path().join("two"));
    let mut one = instance(&b1, free_port());
    let mut two = instance(&b2, free_port());
    for (sw, base) in [(&mut one, &b1), (&mut two, &b2)] {
        assert!(sw.cmd("sofia status").contains("internal"), "{}", sw.log());
        assert_eq!(
            sw.cmd("global_getvar db_dir").trim(),
            base.join("db").display().to_string()
        );
        one_call(sw);
    }
    for (sw, base) in [(&one, &b1), (&two, &b2)] {
        // Each keeps its registrations, CDRs and module copies in its base.
        assert!(base.join("db/sofia_reg.redb").is_file(), "{}", sw.log());
        let cdrs = wait_file(sw, &base.join("log/cdr-csv/Master.csv"));
        assert_eq!(cdrs.lines().count(), 1, "{cdrs}");
        let shadows: Vec<String> = std::fs::read_dir(base.join("run"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(shadows, vec![format!("hotswitch-shadow-{}", sw.pid())]);
    }
    assert!(one.alive() && two.alive());
}

#[test]
fn cdrs_land_under_the_log_flag() {
    let tmp = TempDir::new("dirs-log");
    let logs = tmp.path().join("logs");
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec![
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_cdr_csv".into(),
        ],
        files: vec![cdr_conf()],
        args: vec!["-log".into(), logs.display().to_string()],
        ..Default::default()
    });
    assert_eq!(
        sw.cmd("global_getvar log_dir").trim(),
        logs.display().to_string()
    );
    one_call(&mut sw);
    let cdrs = wait_file(&sw, &logs.join("cdr-csv/Master.csv"));
    assert_eq!(cdrs.lines().count(), 1, "{cdrs}");
}

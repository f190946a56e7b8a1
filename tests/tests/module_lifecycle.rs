//! load / unload / reload round trips against the real binary: replies,
//! events, `show modules`, and the shadow copy leaving the process's maps.

use hotswitch_e2e::{lines, workspace_root, Switch, SwitchConfig};
use std::time::Duration;

const EVENT_WAIT: Duration = Duration::from_secs(10);

#[test]
fn load_unload_and_reload_reply_as_freeswitch_does_and_fire_module_events() {
    let mut sw = Switch::start(SwitchConfig::default());
    assert_eq!(sw.cmd("module_exists mod_skel").trim(), "false");
    assert!(sw
        .cmd("/event plain MODULE_LOAD MODULE_UNLOAD")
        .starts_with("+OK event listener enabled plain"));

    assert_eq!(
        lines(&sw.cmd("load mod_skel")),
        ["+OK Reloading XML", "+OK"]
    );
    let api_ev = sw
        .wait_event(EVENT_WAIT, |e| {
            e.name() == "MODULE_LOAD" && e.get("type") == Some("api")
        })
        .expect("MODULE_LOAD for the api interface");
    assert_eq!(api_ev.get("name"), Some("skel"));
    assert_eq!(api_ev.get("key"), Some("mod_skel"));
    assert_eq!(api_ev.get("syntax"), Some("skel [name]"));
    assert!(api_ev.get("filename").unwrap().ends_with("libmod_skel.so"));
    assert!(api_ev.get("Core-UUID").is_some_and(|u| u.len() == 36));
    let app_ev = sw
        .wait_event(EVENT_WAIT, |e| {
            e.name() == "MODULE_LOAD" && e.get("type") == Some("application")
        })
        .expect("MODULE_LOAD for the application");
    assert_eq!(app_ev.get("name"), Some("skel_app"));

    assert_eq!(sw.cmd("module_exists mod_skel").trim(), "true");
    assert_eq!(sw.cmd("skel Alice").trim(), "+OK hello Alice");
    assert_eq!(
        lines(&sw.cmd("load mod_skel")),
        ["+OK Reloading XML", "-ERR [Module already loaded]"]
    );
    let shadows = sw.mapped_shadows();
    assert_eq!(shadows.len(), 1, "one shadow copy mapped: {shadows:?}");
    assert!(
        !shadows[0].contains("target/"),
        "the build output itself is never mapped"
    );

    assert_eq!(
        lines(&sw.cmd("reload mod_skel")),
        [
            "+OK Reloading XML",
            "+OK module unloaded",
            "+OK module loaded"
        ]
    );
    let after_reload = sw.mapped_shadows();
    assert_eq!(after_reload.len(), 1);
    assert_ne!(
        after_reload, shadows,
        "reload maps a fresh copy and unmaps the old one"
    );
    assert!(
        !std::path::Path::new(&shadows[0]).exists(),
        "the old shadow file is deleted"
    );

    assert_eq!(sw.cmd("unload mod_skel").trim(), "+OK");
    let unload_ev = sw
        .wait_event(EVENT_WAIT, |e| {
            e.name() == "MODULE_UNLOAD" && e.get("name") == Some("skel")
        })
        .expect("MODULE_UNLOAD for skel");
    assert_eq!(unload_ev.get("type"), Some("api"));
    assert!(
        sw.mapped_shadows().is_empty(),
        "unloaded module still mapped: {:?}",
        sw.mapped_shadows()
    );
    assert_eq!(sw.cmd("module_exists mod_skel").trim(), "false");
    assert_eq!(sw.cmd("skel Alice").trim(), "-ERR skel Command not found!");
    assert_eq!(sw.cmd("unload mod_skel").trim(), "-ERR [No such module!]");
    assert!(sw.shutdown().success());
}

#[test]
fn show_modules_lists_one_row_per_interface_under_freeswitchs_columns() {
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_skel".into()],
        ..Default::default()
    });
    let table = sw.cmd("show modules");
    let rows: Vec<String> = table.lines().map(str::to_string).collect();
    assert_eq!(rows[0], "type,name,ikey,filename");
    let skel: Vec<&String> = rows.iter().filter(|r| r.contains(",mod_skel,")).collect();
    assert_eq!(skel.len(), 2, "{table}");
    let file = skel[0].split(',').nth(3).unwrap().to_string();
    assert!(file.ends_with("libmod_skel.so"), "{file}");
    assert!(
        rows.contains(&format!("api,skel,mod_skel,{file}")),
        "{table}"
    );
    assert!(
        rows.contains(&format!("application,skel_app,mod_skel,{file}")),
        "{table}"
    );
    assert!(
        rows.contains(&"api,load,core,".to_string()),
        "core commands are api interfaces too: {table}"
    );
    let n = rows.len() - 3;
    assert_eq!(rows[rows.len() - 2], "", "{table}");
    assert_eq!(rows[rows.len() - 1], format!("{n} total."));

    let only = sw.cmd("show modules mod_skel");
    assert_eq!(
        only.lines().map(str::to_string).collect::<Vec<_>>(),
        [
            "type,name,ikey,filename".to_string(),
            format!("api,skel,mod_skel,{file}"),
            format!("application,skel_app,mod_skel,{file}"),
            String::new(),
            "2 total.".into()
        ]
    );

    let json: serde_json::Value = serde_json::from_str(&sw.cmd("show modules as json")).unwrap();
    assert_eq!(json["row_count"], n);
    let row = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "skel")
        .unwrap();
    assert_eq!(
        row,
        &serde_json::json!({"type": "api", "name": "skel", "ikey": "mod_skel", "filename": file})
    );

    // The richer view: one row per module with its state.
    let list = sw.cmd("module_list");
    let rows = lines(&list);
    assert_eq!(
        rows[0],
        "name,version,state,sessions,filename,interfaces,note"
    );
    let skel = rows
        .iter()
        .find(|r| r.starts_with("mod_skel,"))
        .expect("mod_skel row");
    assert_eq!(
        skel,
        &&format!("mod_skel,0.1.0,current,0,{file},application:skel_app api:skel,")
    );
    let json: serde_json::Value = serde_json::from_str(&sw.cmd("module_list as json")).unwrap();
    assert_eq!(json["rows"][0]["state"], "current");

    let apps = sw.cmd("show application");
    assert!(apps.starts_with("name,description,syntax,ikey\n"), "{apps}");
    assert!(apps.contains("\nskel_app,"), "{apps}");
    assert_eq!(
        sw.cmd("show endpoint"),
        "\n0 total.\n",
        "no endpoint loaded"
    );
}

#[test]
fn bad_names_and_missing_modules_get_clear_errors_and_the_switch_goes_on() {
    let mut sw = Switch::start(SwitchConfig::default());
    let r = sw.cmd("load mod_nope");
    assert!(
        r.contains(
            "-ERR [module mod_nope not found (looked for mod_nope.so and libmod_nope.so in:"
        ),
        "{r}"
    );
    let r = sw.cmd("load ../../etc/passwd");
    assert!(
        r.contains("-ERR [invalid module name '../../etc/passwd']"),
        "{r}"
    );
    assert!(sw.cmd("load").starts_with("-USAGE:"));
    assert_eq!(
        sw.cmd("nosuchcommand x").trim(),
        "-ERR nosuchcommand Command not found!"
    );
    assert!(sw.cmd("status").contains("is ready"));
}

#[test]
fn a_file_that_is_not_a_module_is_refused_by_name() {
    let dir = hotswitch_e2e::TempDir::new("notamodule");
    // A real shared library without our header: the C library itself.
    let libc = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .find(|p| p.contains("libc.so") || p.contains("libc-"))
        .expect("libc is mapped");
    std::fs::copy(&libc, dir.path().join("mod_libc.so")).unwrap();
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    });
    let r = sw.cmd("load mod_libc");
    assert!(
        r.contains("is not a hotswitch module (no hotswitch_module_header symbol)"),
        "{r}"
    );
    assert!(sw.mapped_shadows().is_empty(), "{:?}", sw.mapped_shadows());
    assert!(sw.cmd("load mod_skel").contains("+OK\n"));
}

#[test]
fn the_default_configuration_starts_with_its_modules_and_can_load_mod_skel() {
    let mut sw = Switch::start(SwitchConfig {
        conf_dir: Some(workspace_root().join("conf")),
        ..Default::default()
    });
    assert_eq!(sw.cmd("module_exists mod_loopback").trim(), "true");
    assert_eq!(sw.cmd("module_exists mod_dptools").trim(), "true");
    assert!(sw.cmd("originate null/1 &hangup()").starts_with("+OK "));
    assert_eq!(
        lines(&sw.cmd("load mod_skel")),
        ["+OK Reloading XML", "+OK"]
    );
    assert_eq!(
        sw.cmd("skel").trim(),
        "+OK hello world",
        "its greeting comes from skel.conf.xml"
    );
    assert!(
        sw.log().contains("mod_skel: mod_skel loaded"),
        "plugin logs reach the host's log:\n{}",
        sw.log()
    );
    assert!(sw.shutdown().success());
}

/// Runs the switch on a conf dir whose only file is `modules_conf`, with no
/// console, and returns how it ended.
fn run_with_modules_conf(tag: &str, modules_conf: &str) -> std::process::Output {
    let dir = hotswitch_e2e::TempDir::new(tag);
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("autoload_configs")).unwrap();
    std::fs::write(conf.join("autoload_configs/modules.conf.xml"), modules_conf).unwrap();
    std::process::Command::new(hotswitch_e2e::binary())
        .arg("-conf")
        .arg(&conf)
        .arg("-run")
        .arg(dir.path())
        .arg("-mod")
        .arg(hotswitch_e2e::build_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_critical_module_that_fails_to_load_stops_the_switch() {
    let out = run_with_modules_conf(
        "critical",
        r#"<configuration name="modules.conf"><modules>
             <load module="mod_skel"/>
             <load module="mod_missing" critical="true"/>
           </modules></configuration>"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("critical module mod_missing failed to load"),
        "{log}"
    );
}

#[test]
fn a_broken_modules_conf_is_refused_with_file_and_line() {
    let out = run_with_modules_conf(
        "brokenconf",
        "<configuration name=\"modules.conf\">\n<modules>\n<load module=\"mod_skel\">\n</modules>\n</configuration>\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("modules.conf.xml:4:"),
        "names the file and line: {log}"
    );
}

#[test]
fn garbage_on_the_console_gets_an_error_and_the_switch_goes_on() {
    let mut sw = Switch::start(SwitchConfig::default());
    let r = sw.cmd("\u{1}\u{7f}\u{fffd}garbage \u{0} with nul");
    assert!(r.starts_with("-ERR "), "{r}");
    let long = "x".repeat(100_000);
    assert!(sw.cmd(&long).starts_with("-ERR "));
    assert!(sw.cmd("status").contains("is ready"));
}

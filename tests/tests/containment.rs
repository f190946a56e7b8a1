//! Faults stay inside their module: a panic marks the module faulted and the
//! switch goes on; a module built against an incompatible plugin-api is
//! refused before any of its code runs; a module in use is not unloaded
//! from under its callers.

use hotswitch_e2e::{build_module_into, lines, Switch, SwitchConfig, TempDir};
use std::time::Duration;

#[test]
fn a_panicking_module_is_faulted_logged_and_unloadable_and_the_switch_lives() {
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_skel".into(), "mod_panic".into()],
        ..Default::default()
    });
    assert_eq!(sw.cmd("panic_echo before").trim(), "before");
    let r = sw.cmd("panic_now kaboom");
    assert_eq!(
        r.trim(),
        "-ERR [module mod_panic panicked in 'panic_now'; it is marked faulted]"
    );
    assert!(sw.alive());
    let log = sw.log();
    assert!(
        log.contains("module mod_panic panicked at")
            && log.contains("panic_now was asked to panic: kaboom"),
        "the panic message is logged with the module's name:\n{log}"
    );
    // Its interfaces are no longer called; the rest of the switch serves.
    let r = sw.cmd("panic_echo after");
    assert!(r.starts_with("-ERR [module mod_panic is faulted"), "{r}");
    assert_eq!(sw.cmd("skel").trim(), "+OK hello world");
    let modules = sw.cmd("module_list");
    assert!(
        modules
            .lines()
            .any(|l| l.starts_with("mod_panic,") && l.contains(",faulted,")),
        "{modules}"
    );
    // It can still be unloaded, its library goes, and it loads fresh.
    assert_eq!(sw.cmd("unload mod_panic").trim(), "+OK");
    assert!(
        !sw.mapped_shadows().iter().any(|p| p.contains("mod_panic")),
        "{:?}",
        sw.mapped_shadows()
    );
    assert_eq!(
        lines(&sw.cmd("load mod_panic")),
        ["+OK Reloading XML", "+OK"]
    );
    assert_eq!(sw.cmd("panic_echo again").trim(), "again");
    // reload also clears a fault.
    sw.cmd("panic_now twice");
    assert_eq!(
        lines(&sw.cmd("reload mod_panic")),
        [
            "+OK Reloading XML",
            "+OK module unloaded",
            "+OK module loaded"
        ]
    );
    assert_eq!(sw.cmd("panic_echo healed").trim(), "healed");
    assert!(sw.shutdown().success());
}

#[test]
fn a_module_with_a_skewed_type_layout_is_refused_naming_the_type() {
    let mods = TempDir::new("skew-layout");
    build_module_into("mod_abiskew", &["layout"], &[], mods.path());
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    let r = sw.cmd("load mod_abiskew");
    assert!(
        r.contains("plugin-api layout mismatch in type `ChatInterface`"),
        "the error names the type: {r}"
    );
    assert!(
        r.contains("skew: u64"),
        "and shows the module's fields: {r}"
    );
    assert!(
        sw.mapped_shadows().is_empty(),
        "refused module is unmapped: {:?}",
        sw.mapped_shadows()
    );
    assert!(!sw.log().contains("must never be called"));
    assert_eq!(sw.cmd("module_exists mod_abiskew").trim(), "false");
    assert!(
        sw.cmd("load mod_skel").contains("+OK\n"),
        "the switch keeps serving"
    );
    assert_eq!(sw.cmd("skel").trim(), "+OK hello world");
}

#[test]
fn a_module_built_for_another_abi_version_is_refused_naming_both_versions() {
    let mods = TempDir::new("skew-version");
    build_module_into("mod_abiskew", &["version"], &[], mods.path());
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    let version = sw.cmd("version");
    let host_abi = version
        .split("ABI ")
        .nth(1)
        .and_then(|s| s.split([' ', ')']).next())
        .expect("version names the ABI")
        .to_string();
    let r = sw.cmd("load mod_abiskew");
    assert!(r.contains("plugin-api version mismatch"), "{r}");
    assert!(
        r.contains("(ABI 999)") && r.contains(&format!("(ABI {host_abi})")),
        "{r}"
    );
    assert!(sw.alive());
    assert!(sw.cmd("status").contains("is ready"));
}

#[test]
fn a_module_in_use_is_refused_unload_and_force_waits_for_its_calls() {
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_panic".into()],
        ..Default::default()
    });
    assert!(sw.cmd("/event plain BACKGROUND_JOB").starts_with("+OK"));
    let job = sw.cmd("bgapi hold 1500");
    assert!(job.starts_with("+OK Job-UUID: "), "{job}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sw.cmd("unload mod_panic").trim(), "-ERR [Module in use.]");
    assert_eq!(sw.cmd("module_exists mod_panic").trim(), "true");
    // -f waits for the running call, then unloads.
    assert_eq!(sw.cmd("unload -f mod_panic").trim(), "+OK");
    let done = sw
        .wait_event(Duration::from_secs(10), |e| e.name() == "BACKGROUND_JOB")
        .expect("the held call completed");
    assert_eq!(
        done.body.as_deref().map(str::trim),
        Some("+OK held 1500 ms")
    );
    assert_eq!(
        done.get("Job-UUID"),
        Some(job.trim().trim_start_matches("+OK Job-UUID: "))
    );
    assert!(sw.mapped_shadows().is_empty(), "{:?}", sw.mapped_shadows());
}

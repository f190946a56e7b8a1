//! Faults stay inside their module: a panic marks the module faulted and the
//! switch goes on; a module built against an incompatible plugin-api is
//! refused before any of its code runs; a module in use is not unloaded
//! from under its callers.

use hotswitch_e2e::{
    build_module_into, lines, ok_uuid, wait_gone, wait_until, Switch, SwitchConfig, TempDir,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn panic_switch(module_dirs: Vec<std::path::PathBuf>) -> Switch {
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec![
            "mod_dptools".into(),
            "mod_loopback".into(),
            "mod_panic".into(),
        ],
        module_dirs,
        ..Default::default()
    });
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP CUSTOM module::fault")
        .starts_with("+OK"));
    sw
}

/// Waits for the `module::fault` event naming `entry` and returns it.
fn fault_event(sw: &mut Switch, entry: &str) -> hotswitch_e2e::Event {
    sw.wait_event(WAIT, |e| {
        e.get("Event-Subclass") == Some("module::fault") && e.get("Module-Entry") == Some(entry)
    })
    .unwrap_or_else(|| panic!("no module::fault event for {entry}:\n{}", sw.log()))
}

fn hangup_cause(sw: &mut Switch, uuid: &str) -> String {
    sw.wait_event(WAIT, |e| {
        e.name() == "CHANNEL_HANGUP" && e.get("Unique-ID") == Some(uuid)
    })
    .and_then(|e| e.get("Hangup-Cause").map(str::to_string))
    .unwrap_or_else(|| panic!("{uuid} did not hang up"))
}

fn is_faulted(sw: &mut Switch) -> bool {
    sw.cmd("module_list")
        .lines()
        .any(|l| l.starts_with("mod_panic,") && l.contains(",faulted,"))
}

/// Reloads mod_panic and shows it serves again.
fn reload_serves(sw: &mut Switch) {
    let r = sw.cmd("reload mod_panic");
    assert!(r.contains("+OK module loaded"), "{r}");
    assert!(!is_faulted(sw));
    assert_eq!(sw.cmd("panic_echo healed").trim(), "healed");
}

#[test]
fn a_panic_in_any_entry_faults_the_module_hangs_up_its_calls_with_crash_and_reload_heals_it() {
    let mut sw = panic_switch(Vec::new());
    // Another module's call lives through every fault below.
    let bystander = ok_uuid(&sw.cmd("originate null/bystander &park"));
    // Entries a call's own progress reaches: (dial data, application).
    for (entry, app) in [
        ("on_init", "park"),
        ("on_routing", "park"),
        ("on_execute", "park"),
        ("read_frame", "echo"),
        ("write_frame", "echo"),
        ("send_dtmf", "send_dtmf(1)"),
        ("ok", "panic_app(boom)"),
    ] {
        // A healthy call of the same module is hung up too.
        let sibling = ok_uuid(&sw.cmd("originate panic/sibling &park"));
        let reply = sw.cmd(&format!("originate panic/{entry} &{app}"));
        let entry = if entry == "ok" {
            "application panic_app"
        } else {
            entry
        };
        let e = fault_event(&mut sw, entry);
        assert_eq!(e.get("Module-Name"), Some("mod_panic"));
        assert_eq!(e.get("Module-Faulted"), Some("true"));
        if let Some(uuid) = reply.trim().strip_prefix("+OK ") {
            assert_eq!(hangup_cause(&mut sw, uuid), "CRASH", "{entry}");
        }
        assert_eq!(hangup_cause(&mut sw, &sibling), "CRASH", "{entry}");
        wait_gone(&mut sw, &sibling, WAIT);
        assert!(is_faulted(&mut sw), "{entry}");
        assert!(
            sw.log()
                .contains(&format!("module mod_panic faulted: panicked in {entry}")),
            "the log names module and entry"
        );
        let r = sw.cmd("originate panic/ok &park");
        assert!(
            r.starts_with("-ERR"),
            "a faulted module takes no calls: {r}"
        );
        reload_serves(&mut sw);
    }
    // Entries something else calls: a message, a kill, the api, the runtime.
    let uuid = ok_uuid(&sw.cmd("originate panic/receive_message &park"));
    sw.cmd(&format!("uuid_display {uuid} a|1"));
    fault_event(&mut sw, "receive_message");
    assert_eq!(hangup_cause(&mut sw, &uuid), "CRASH");
    reload_serves(&mut sw);

    let uuid = ok_uuid(&sw.cmd("originate panic/kill_channel &park"));
    sw.cmd(&format!("uuid_kill {uuid}"));
    fault_event(&mut sw, "kill_channel");
    wait_gone(&mut sw, &uuid, WAIT);
    reload_serves(&mut sw);

    let r = sw.cmd("originate panic/outgoing_channel &park");
    assert!(r.starts_with("-ERR"), "{r}");
    fault_event(&mut sw, "outgoing_channel");
    reload_serves(&mut sw);

    assert_eq!(sw.cmd("panic_runtime").trim(), "+OK");
    fault_event(&mut sw, "runtime");
    assert!(is_faulted(&mut sw));
    reload_serves(&mut sw);

    sw.cmd("panic_now x");
    fault_event(&mut sw, "api panic_now");
    reload_serves(&mut sw);

    assert_eq!(sw.cmd(&format!("uuid_exists {bystander}")).trim(), "true");
    assert!(sw.alive());
    assert!(sw.shutdown().success());
}

#[test]
fn a_panic_safe_module_loses_only_the_call_that_panicked() {
    let mods = TempDir::new("panic-safe");
    build_module_into("mod_panic", &["panic-safe"], &[], mods.path());
    let mut sw = panic_switch(vec![mods.path().to_path_buf()]);
    let sibling = ok_uuid(&sw.cmd("originate panic/sibling &park"));
    let doomed = ok_uuid(&sw.cmd("originate panic/read_frame &echo"));
    let e = fault_event(&mut sw, "read_frame");
    assert_eq!(e.get("Module-Faulted"), Some("false"));
    assert_eq!(e.get("Unique-ID"), Some(doomed.as_str()));
    assert_eq!(hangup_cause(&mut sw, &doomed), "CRASH");
    assert!(!is_faulted(&mut sw));
    assert_eq!(sw.cmd(&format!("uuid_exists {sibling}")).trim(), "true");
    assert_eq!(sw.cmd("panic_echo still").trim(), "still");
    let r = sw.cmd("panic_now x");
    assert!(r.contains("it is panic-safe and stays loaded"), "{r}");
    assert_eq!(sw.cmd("panic_echo still").trim(), "still");
    assert!(sw.shutdown().success());
}

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

#[test]
fn a_forged_or_stale_session_handle_gets_an_error_not_undefined_behaviour() {
    let mut sw = panic_switch(Vec::new());
    let r = sw.cmd("panic_forge");
    assert!(r.starts_with("+OK refused"), "{r}");
    let uuid = ok_uuid(&sw.cmd("originate panic/ok &panic_keep"));
    assert_eq!(sw.cmd(&format!("uuid_kill {uuid}")).trim(), "+OK");
    wait_gone(&mut sw, &uuid, WAIT);
    // `uuid_exists` says false once the session left the table; its
    // handle ends with its destruction just after (served meanwhile: a
    // live session, not undefined behaviour). Refused from then on.
    let deadline = std::time::Instant::now() + WAIT;
    let r = loop {
        let r = sw.cmd("panic_use_kept");
        if r.starts_with("+OK refused") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(r.starts_with("+OK refused"), "{r}");
    assert!(sw.log().contains("unknown or ended session handle"));
    // Neither faulted anything: the module and the switch serve on.
    assert!(!is_faulted(&mut sw));
    assert_eq!(sw.cmd("panic_echo fine").trim(), "fine");
    assert!(sw.alive());
}

#[test]
fn a_module_built_against_the_previous_abi_minor_loads_and_serves() {
    // 6.0 (before core_ready), 6.1 (before the handover contract) and
    // 6.2 (before session_echo).
    for minor in [0, 1, 2] {
        built_against_minor_loads_and_serves(minor);
    }
}

fn built_against_minor_loads_and_serves(minor: u32) {
    let mods = TempDir::new(&format!("abi-minor-{minor}"));
    build_module_into("mod_abiskew", &[&format!("minor{minor}")], &[], mods.path());
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    let r = sw.cmd("load mod_abiskew");
    assert!(r.contains("+OK\n"), "{r}\n{}", sw.log());
    let version = sw.cmd("version");
    let major = version
        .split("ABI ")
        .nth(1)
        .and_then(|s| s.split([' ', ')']).next())
        .expect("version names the ABI")
        .to_string();
    assert_eq!(
        sw.cmd("abiskew").trim(),
        format!("+OK built against ABI {major}.{minor}")
    );
    assert!(sw.log().contains("loaded mod_abiskew"));
}

#[test]
fn a_read_frame_that_never_returns_faults_the_module_and_reload_maps_a_fresh_copy() {
    let mut sw = panic_switch(Vec::new());
    let stuck = ok_uuid(&sw.cmd("originate panic/block &echo"));
    // Another module's call placed meanwhile completes.
    let other = ok_uuid(&sw.cmd("originate null/other &park"));
    assert_eq!(sw.cmd(&format!("uuid_kill {other}")).trim(), "+OK");
    wait_gone(&mut sw, &other, WAIT);
    let e = fault_event(&mut sw, "read_frame");
    assert_eq!(e.get("Module-Fault"), Some("blocked"));
    assert_eq!(e.get("Unique-ID"), Some(stuck.as_str()));
    assert!(sw
        .log()
        .contains("module mod_panic faulted: blocked in read_frame"));
    // The copy stuck in read_frame is abandoned (left mapped), a fresh one
    // serves.
    let r = sw.cmd("reload mod_panic");
    assert!(
        r.contains("old copy pinned") && r.contains("+OK module loaded"),
        "{r}"
    );
    assert_eq!(sw.cmd("panic_echo fresh").trim(), "fresh");
    assert!(sw.cmd("originate null/again &park").starts_with("+OK "));
    assert!(sw.alive());
}

#[test]
fn a_thread_left_running_after_unload_keeps_its_library_mapped_and_a_fresh_copy_loads() {
    let mut sw = panic_switch(Vec::new());
    assert_eq!(sw.cmd("panic_thread").trim(), "+OK");
    let r = sw.cmd("unload mod_panic");
    assert!(r.starts_with("+OK"), "{r}");
    assert!(
        sw.log()
            .contains("mod_panic: 1 thread(s) it started still run its code after its unload"),
        "the log names the module:\n{}",
        sw.log()
    );
    assert!(
        sw.mapped_shadows().iter().any(|p| p.contains("mod_panic")),
        "the copy the thread runs stays mapped"
    );
    let modules = sw.cmd("module_list");
    assert!(
        modules
            .lines()
            .any(|l| l.starts_with("mod_panic,") && l.contains(",pinned,")),
        "{modules}"
    );
    assert!(sw.cmd("load mod_panic").contains("+OK\n"));
    assert_eq!(sw.cmd("panic_echo fresh").trim(), "fresh");
    assert!(sw.cmd("originate null/x &park").starts_with("+OK "));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sw.alive(), "the stray thread still runs mapped code");
}

#[test]
fn a_load_that_fails_reports_the_modules_typed_error() {
    let mods = TempDir::new("twin-refuse");
    build_module_into(
        "mod_twin",
        &[],
        &[("MOD_TWIN_ANSWER", "refuse")],
        mods.path(),
    );
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    let r = sw.cmd("load mod_twin");
    assert!(
        r.contains(
            "mod_twin: module load routine returned an error: configuration: MOD_TWIN_ANSWER says refuse"
        ),
        "{r}"
    );
    assert_eq!(sw.cmd("module_exists mod_twin").trim(), "false");
    assert!(sw.mapped_shadows().is_empty(), "{:?}", sw.mapped_shadows());
}

/// The switch's resident memory in KiB (`VmRSS`).
fn rss_kib(sw: &Switch) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", sw.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_module_that_allocates_without_bound_is_parked_at_its_limit_faulted_and_reload_heals_it() {
    // switch.conf's limit for every module, modules.conf's for mod_panic.
    const LIMIT_MIB: u64 = 48;
    let mut sw = Switch::start(SwitchConfig {
        files: vec![
            (
                "autoload_configs/switch.conf.xml".into(),
                r#"<configuration name="switch.conf"><settings>
                     <param name="module-memory-limit" value="96"/>
                   </settings></configuration>"#
                    .into(),
            ),
            (
                "autoload_configs/modules.conf.xml".into(),
                format!(
                    r#"<configuration name="modules.conf"><modules>
                     <load module="mod_dptools"/><load module="mod_loopback"/>
                     <load module="mod_panic" memory-limit="{LIMIT_MIB}"/>
                   </modules></configuration>"#
                ),
            ),
        ],
        ..Default::default()
    });
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP CUSTOM module::fault")
        .starts_with("+OK"));
    let held = ok_uuid(&sw.cmd("originate panic/fine &park"));
    let before = rss_kib(&sw);
    assert!(sw.cmd("bgapi panic_hog").starts_with("+OK Job-UUID"));
    let e = fault_event(&mut sw, "api");
    assert_eq!(e.get("Module-Name"), Some("mod_panic"));
    assert_eq!(e.get("Module-Fault"), Some("over its memory limit"));
    assert!(
        sw.log()
            .contains("module mod_panic faulted: over its memory limit in api"),
        "{}",
        sw.log()
    );
    assert!(
        sw.log().contains(&format!("limit {}", LIMIT_MIB << 20)),
        "modules.conf's memory-limit is the one applied:\n{}",
        sw.log()
    );
    // Its call hangs up; another module's call placed meanwhile completes.
    assert_eq!(hangup_cause(&mut sw, &held), "CRASH");
    let other = ok_uuid(&sw.cmd("originate null/other &park"));
    assert_eq!(sw.cmd(&format!("uuid_kill {other}")).trim(), "+OK");
    wait_gone(&mut sw, &other, WAIT);
    // The parked thread holds at most the limit.
    let grown = rss_kib(&sw).saturating_sub(before);
    assert!(
        grown <= (LIMIT_MIB + 16) * 1024,
        "RSS grew by {grown} KiB with a {LIMIT_MIB} MiB limit"
    );
    // Its copy, parked thread and memory, is abandoned; a fresh one serves.
    let r = sw.cmd("reload mod_panic");
    assert!(
        r.contains("old copy pinned") && r.contains("+OK module loaded"),
        "{r}"
    );
    assert_eq!(sw.cmd("panic_echo fresh").trim(), "fresh");
    assert!(sw.cmd("originate null/again &park").starts_with("+OK "));
    assert!(sw.alive());
}

/// Frames written to `uuid` so far (mod_panic counts them).
fn frames(sw: &mut Switch, uuid: &str) -> u64 {
    sw.cmd(&format!("panic_frames {uuid}"))
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The peer `uuid` is bridged to, once it is.
fn bridged_peer(sw: &mut Switch, uuid: &str) -> String {
    let mut peer = String::new();
    wait_until(sw, "the bridge", |sw| {
        peer = sw
            .cmd(&format!("uuid_getvar {uuid} bridge_uuid"))
            .trim()
            .to_string();
        peer.len() == 36 && !peer.starts_with("-ERR")
    });
    peer
}

#[test]
fn a_read_that_blocks_against_its_modules_promise_stalls_the_media_loop_only_until_its_legs_are_taken_back(
) {
    // One media loop, so that every bridged leg shares the one that stops.
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec![
            "mod_dptools".into(),
            "mod_loopback".into(),
            "mod_panic".into(),
        ],
        files: vec![(
            "autoload_configs/switch.conf.xml".into(),
            r#"<configuration name="switch.conf"><settings>
                 <param name="media-loops" value="1"/>
               </settings></configuration>"#
                .into(),
        )],
        ..Default::default()
    });
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP CUSTOM module::fault")
        .starts_with("+OK"));
    // mod_panic promises reads that never block: the loop moves its
    // bridged legs' frames, both ways.
    let a = ok_uuid(&sw.cmd("originate panic/quiet &bridge(panic/quiet2)"));
    let b = bridged_peer(&mut sw, &a);
    wait_until(&mut sw, "frames both ways through the loop", |sw| {
        frames(sw, &a) > 25 && frames(sw, &b) > 25
    });
    assert!(!sw.log().contains("own worker relays it"));

    // A leg whose read blocks: the loop stops with it. The first call's
    // legs are taken back by their own workers and their frames go on.
    let stuck = ok_uuid(&sw.cmd("originate panic/block &bridge(panic/quiet3)"));
    wait_until(&mut sw, "the first call's legs taken back", |sw| {
        let log = sw.log();
        [&a, &b].iter().all(|u| {
            log.lines()
                .any(|l| l.contains(u.as_str()) && l.contains("the leg's own worker relays it"))
        })
    });
    let (fa, fb) = (frames(&mut sw, &a), frames(&mut sw, &b));
    wait_until(&mut sw, "frames after the loop stopped", |sw| {
        frames(sw, &a) > fa + 10 && frames(sw, &b) > fb + 10
    });

    // The watchdog faults the module that blocked; a fresh copy serves, and
    // a new loop takes the stuck one's place for the next bridge.
    let e = fault_event(&mut sw, "read_frame");
    assert_eq!(e.get("Module-Fault"), Some("blocked"));
    assert_eq!(e.get("Unique-ID"), Some(stuck.as_str()));
    let r = sw.cmd("reload mod_panic");
    assert!(r.contains("+OK module loaded"), "{r}");
    let c = ok_uuid(&sw.cmd("originate panic/again &bridge(panic/again2)"));
    let d = bridged_peer(&mut sw, &c);
    wait_until(&mut sw, "frames through the new loop", |sw| {
        frames(sw, &c) > 25 && frames(sw, &d) > 25
    });
    assert!(
        sw.log().contains("a new loop takes its place"),
        "{}",
        sw.log()
    );
    for u in [&c, &d] {
        assert!(
            !sw.log()
                .lines()
                .any(|l| l.contains(u.as_str()) && l.contains("own worker relays it")),
            "{u} was relayed by its own worker"
        );
    }
    assert_eq!(sw.cmd(&format!("uuid_kill {c}")).trim(), "+OK");
    wait_gone(&mut sw, &c, WAIT);
    assert!(sw.alive());
}

#[test]
fn echo_through_the_media_loop_sends_the_frames_back_and_ends_on_a_transfer() {
    let mut sw = panic_switch(Vec::new());
    assert!(sw.cmd("/event plain CHANNEL_PARK").starts_with("+OK"));
    // mod_panic reads without blocking: the core's loop does the echo.
    let a = ok_uuid(&sw.cmd("originate panic/quiet &echo"));
    wait_until(&mut sw, "frames echoed", |sw| frames(sw, &a) > 25);
    // A transfer ends the echo; the call goes on in the new extension.
    assert!(sw
        .cmd(&format!("uuid_transfer {a} park inline"))
        .starts_with("+OK"));
    sw.wait_event(WAIT, |e| {
        e.name() == "CHANNEL_PARK" && e.get("Unique-ID") == Some(a.as_str())
    })
    .expect("the transferred call parks");
    let parked = frames(&mut sw, &a);
    // Parked: nothing echoes any more (one frame may have been in flight).
    std::thread::sleep(Duration::from_millis(300));
    assert!(frames(&mut sw, &a) <= parked + 1);
    assert_eq!(sw.cmd(&format!("uuid_kill {a}")).trim(), "+OK");
    wait_gone(&mut sw, &a, WAIT);
}

//! Live reload against the real binary (issue 17): `reload` of a module
//! with calls and commands in flight. A loopback call playing a steady tone
//! lives through reloads of mod_loopback and mod_dptools without a gap, and
//! the old copies are unmapped once it ends; a module without the handover
//! contract is refused while busy; a new copy that cannot read the running
//! one's handover format, or that fails its load, leaves the old one
//! serving; an api command in flight finishes on the old copy.

use hotswitch_e2e::{
    build_module_into, ok_uuid, wait_gone, wait_until, Switch, SwitchConfig, TempDir,
};
use hotswitch_media::WavReader;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The tests of this file run one at a time: the others build mod_handover
/// variants with cargo, and on a loaded 2-core machine that starves the
/// tone test's media threads (what it measures is the reload, not them).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const DIALPLAN: &str = r#"<include>
  <context name="default">
    <extension name="tone">
      <condition field="destination_number" expression="^tone(\d+)$">
        <action application="answer"/>
        <action application="playback" data="tone_stream://%(1000,0,$1);loops=-1"/>
      </condition>
    </extension>
  </context>
</include>
"#;

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

/// The shadow copies of `module` mapped in the switch now.
fn mapped_copies(sw: &Switch, module: &str) -> Vec<String> {
    sw.mapped_shadows()
        .into_iter()
        .filter(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{module}.")))
        })
        .collect()
}

/// The longest run of near-silence in `samples` (8 kHz), in ms, measured
/// in 5 ms windows, and where it ends (ms from the start).
fn longest_gap_ms(samples: &[i16]) -> (usize, usize) {
    let (mut run, mut worst, mut at) = (0, 0, 0);
    for (i, w) in samples.chunks(40).enumerate() {
        let peak = w.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        if peak < 500 {
            run += 1;
            if run > worst {
                worst = run;
                at = (i + 1) * 5;
            }
        } else {
            run = 0;
        }
    }
    (worst * 5, at)
}

#[test]
fn a_tone_call_lives_through_reloads_of_mod_loopback_and_mod_dptools_and_old_copies_unmap() {
    let _serial = serial();
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_loopback".into(), "mod_dptools".into()],
        files: vec![("dialplan/test.xml".into(), DIALPLAN.into())],
        ..Default::default()
    });
    assert!(sw.cmd("/event plain CHANNEL_ANSWER").starts_with("+OK"));
    let dir = TempDir::new("reload-tone");
    let wav = dir.path().join("heard.wav");
    // The caller's leg records what the far end plays, for 6 s.
    let a = ok_uuid(&sw.cmd(&format!(
        "originate loopback/tone1000/default/XML &record({} 6)",
        wav.display()
    )));
    sw.wait_event(WAIT, |e| e.name() == "CHANNEL_ANSWER")
        .expect("the far end answers");
    let answered = std::time::Instant::now();
    // Applications of mod_dptools running meanwhile: echo and park.
    let echo = ok_uuid(&sw.cmd("originate null/echo &echo"));
    let park = ok_uuid(&sw.cmd("originate null/park &park"));
    let mut draining_seen = false;
    let mut reloads_at = Vec::new();
    for round in 0..3 {
        for module in ["mod_loopback", "mod_dptools"] {
            let t0 = answered.elapsed().as_millis();
            let r = sw.cmd(&format!("reload {module}"));
            reloads_at.push((t0, answered.elapsed().as_millis()));
            let l = lines(&r);
            assert_eq!(l.len(), 3, "{r}");
            assert!(
                l[1].starts_with("+OK module draining") || l[1] == "+OK module unloaded",
                "round {round} {module}: {r}"
            );
            assert_eq!(l[2], "+OK module loaded", "{r}");
            draining_seen |= l[1].starts_with("+OK module draining");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert!(draining_seen, "the call kept an old copy draining");
    // The module view lists the draining versions with their sessions.
    // The module view lists the draining versions with their sessions: the
    // oldest loopback copy has the tone call's two legs and the echo and
    // park legs.
    let view = sw.cmd("module_list");
    let draining_sessions: Vec<usize> = view
        .lines()
        .filter(|l| l.starts_with("mod_loopback,") && l.contains(",draining,"))
        .filter_map(|l| l.split(',').nth(3).and_then(|n| n.parse().ok()))
        .collect();
    assert!(draining_sessions.contains(&4), "{view}");
    assert!(
        view.lines()
            .any(|l| l.starts_with("mod_loopback,") && l.contains(",current,0,")),
        "{view}"
    );
    // A new call goes to the newest copy and works.
    assert_eq!(
        sw.cmd("module_exists mod_loopback").trim(),
        "true",
        "{view}"
    );
    wait_gone(&mut sw, &a, WAIT);
    for u in [&echo, &park] {
        assert_eq!(sw.cmd(&format!("uuid_exists {u}")).trim(), "true");
    }
    let mut r = WavReader::open(&wav, 8000).unwrap_or_else(|e| panic!("{e}"));
    let samples = r.read_to_end().unwrap();
    assert!(
        samples.len() >= 8000 * 5,
        "6 s recorded, got {} samples",
        samples.len()
    );
    // Skip the first 200 ms (the far end's answer) and the last 100 ms.
    let body = &samples[1600..samples.len() - 800];
    let (gap, at) = longest_gap_ms(body);
    let at = at + 200;
    eprintln!(
        "recorded {} samples ({} ms), longest gap {gap} ms ending at {at} ms; reloads at {reloads_at:?} ms",
        samples.len(),
        samples.len() / 8
    );
    if gap > 40 {
        for l in sw.log().lines() {
            eprintln!("LOG {l}");
        }
    }
    assert!(
        gap <= 40,
        "a {gap} ms gap in the tone, ending at {at} ms of the recording; reloads at {reloads_at:?} ms"
    );
    // The new copies serve a new call.
    let b = ok_uuid(&sw.cmd(&format!(
        "originate loopback/tone1000/default/XML &record({} 1)",
        dir.path().join("after.wav").display()
    )));
    wait_gone(&mut sw, &b, WAIT);
    // unload refuses while an old copy has calls; the echo and park calls
    // end, and every old copy goes: one copy of each left.
    assert_eq!(
        sw.cmd("unload mod_loopback").trim(),
        "-ERR [Module in use.]"
    );
    for u in [&echo, &park] {
        assert_eq!(sw.cmd(&format!("uuid_kill {u}")).trim(), "+OK");
        wait_gone(&mut sw, u, WAIT);
    }
    wait_until(&mut sw, "old copies unmapped", |sw| {
        mapped_copies(sw, "mod_loopback").len() == 1 && mapped_copies(sw, "mod_dptools").len() == 1
    });
    let view = sw.cmd("module_list");
    assert!(!view.contains(",draining,"), "{view}");
    assert!(!view.contains(",pinned,"), "{view}");
    assert!(sw.shutdown().success());
}

/// A switch with mod_handover built as `variant` in its own module dir.
fn handover_switch(variant: &str) -> (Switch, TempDir) {
    handover_switch_with(variant, Vec::new())
}

fn handover_switch_with(variant: &str, args: Vec<String>) -> (Switch, TempDir) {
    let mods = TempDir::new("handover");
    install(variant, &mods);
    let sw = Switch::start(SwitchConfig {
        args,
        autoload: vec![
            "mod_loopback".into(),
            "mod_dptools".into(),
            "mod_handover".into(),
        ],
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    (sw, mods)
}

fn install(variant: &str, mods: &TempDir) {
    let features: &[&str] = match variant {
        "v1" => &[],
        v => &[v],
    };
    build_module_into("mod_handover", features, &[], mods.path());
}

/// A call running mod_handover's `handover_hold`, once the application runs.
fn hold(sw: &mut Switch) -> String {
    let call = ok_uuid(&sw.cmd("originate null/busy &handover_hold"));
    wait_until(sw, "handover_hold running", |sw| {
        sw.log().contains(&format!("holds {call}"))
    });
    call
}

#[test]
fn a_busy_module_without_the_contract_is_refused_and_its_call_goes_on() {
    let _serial = serial();
    let (mut sw, _mods) = handover_switch("none");
    let call = hold(&mut sw);
    let r = sw.cmd("reload mod_handover");
    assert!(
        lines(&r).contains(&"-ERR unloading module [Module in use.]"),
        "{r}"
    );
    assert_eq!(
        sw.cmd("unload mod_handover").trim(),
        "-ERR [Module in use.]"
    );
    assert_eq!(sw.cmd(&format!("uuid_exists {call}")).trim(), "true");
    assert_eq!(sw.cmd("handover_who").trim(), "+OK build none took nothing");
    assert_eq!(sw.cmd(&format!("uuid_kill {call}")).trim(), "+OK");
    wait_gone(&mut sw, &call, WAIT);
    assert!(sw.shutdown().success());
}

#[test]
fn a_new_copy_that_cannot_read_the_handover_format_is_refused_and_the_old_serves() {
    let _serial = serial();
    let (mut sw, mods) = handover_switch("v1");
    let call = hold(&mut sw);
    install("v2", &mods);
    let r = sw.cmd("reload mod_handover");
    assert!(
        lines(&r).contains(&"-ERR [mod_handover: handover format mod_handover/handover-v1 version 1 cannot be read by the new copy (reads 2..=2)]"),
        "{r}"
    );
    assert_eq!(sw.cmd("handover_who").trim(), "+OK build v1 took nothing");
    assert_eq!(sw.cmd(&format!("uuid_exists {call}")).trim(), "true");
    assert_eq!(mapped_copies(&sw, "mod_handover").len(), 1);
    assert_eq!(sw.cmd(&format!("uuid_kill {call}")).trim(), "+OK");
    wait_gone(&mut sw, &call, WAIT);
    assert!(sw.shutdown().success());
}

#[test]
fn a_reload_whose_new_load_fails_leaves_the_old_copy_serving_and_a_good_one_takes_over() {
    let _serial = serial();
    let (mut sw, mods) = handover_switch("v1");
    let call = hold(&mut sw);
    install("fail", &mods);
    let r = sw.cmd("reload mod_handover");
    assert!(
        r.contains("mod_handover: module load routine returned an error: configuration: this build always fails its load"),
        "{r}"
    );
    assert!(!r.contains("+OK module loaded"), "{r}");
    // The old copy took its entries back and was told to resume.
    assert_eq!(sw.cmd("handover_who").trim(), "+OK build v1 took nothing");
    assert!(sw.log().contains("mod_handover resumed"), "{}", sw.log());
    assert_eq!(sw.cmd(&format!("uuid_exists {call}")).trim(), "true");
    // A good copy takes over with the call up; the old one drains.
    install("v1", &mods);
    let r = sw.cmd("reload mod_handover");
    assert!(r.contains("+OK module draining"), "{r}");
    assert_eq!(
        sw.cmd("handover_who").trim(),
        "+OK build v1 took from build v1"
    );
    assert_eq!(mapped_copies(&sw, "mod_handover").len(), 2);
    // unload refuses while the old version has its call.
    assert_eq!(
        sw.cmd("unload mod_handover").trim(),
        "-ERR [Module in use.]"
    );
    assert_eq!(sw.cmd(&format!("uuid_kill {call}")).trim(), "+OK");
    wait_gone(&mut sw, &call, WAIT);
    wait_until(&mut sw, "the old copy purged", |sw| {
        mapped_copies(sw, "mod_handover").len() == 1
    });
    assert!(!sw.cmd("module_list").contains(",draining,"));
    assert!(sw.shutdown().success());
}

#[test]
fn an_api_command_in_flight_finishes_on_the_old_copy_while_the_new_one_answers() {
    let _serial = serial();
    let (mut sw, _mods) = handover_switch("v1");
    assert!(sw.cmd("/event plain BACKGROUND_JOB").starts_with("+OK"));
    let job = sw.cmd("bgapi handover_sleep 1500");
    assert!(job.starts_with("+OK Job-UUID: "), "{job}");
    wait_until(&mut sw, "the command running", |sw| {
        sw.log().contains("handover_sleep: build v1 sleeps 1500 ms")
    });
    let r = sw.cmd("reload mod_handover");
    assert!(
        r.contains("+OK module draining (the old copy finishes 1 call(s))"),
        "{r}"
    );
    assert_eq!(
        sw.cmd("handover_who").trim(),
        "+OK build v1 took from build v1"
    );
    let done = sw
        .wait_event(WAIT, |e| e.name() == "BACKGROUND_JOB")
        .expect("the command in flight completed");
    assert_eq!(
        done.body.as_deref().map(str::trim),
        Some("+OK build v1 slept 1500")
    );
    wait_until(&mut sw, "the old copy purged", |sw| {
        mapped_copies(sw, "mod_handover").len() == 1
    });
    // unload -f with versions idle; the module goes entirely.
    assert_eq!(sw.cmd("unload -f mod_handover").trim(), "+OK");
    assert!(mapped_copies(&sw, "mod_handover").is_empty());
    assert!(sw.shutdown().success());
}

#[test]
fn watch_mode_reloads_a_busy_module_with_the_contract_and_the_old_copy_drains() {
    let _serial = serial();
    let (mut sw, mods) = handover_switch_with("v1", vec!["-watch".into()]);
    let call = hold(&mut sw);
    install("v1", &mods);
    let notice = sw
        .wait_notice(WAIT, "mod_handover changed on disk and was reloaded")
        .expect("watch mode reloads with the call up");
    assert!(notice.starts_with("+OK watch:"), "{notice}");
    assert_eq!(
        sw.cmd("handover_who").trim(),
        "+OK build v1 took from build v1"
    );
    let view = sw.cmd("module_list");
    assert!(
        view.lines()
            .any(|l| l.starts_with("mod_handover,") && l.contains(",draining,")),
        "{view}"
    );
    assert_eq!(sw.cmd(&format!("uuid_exists {call}")).trim(), "true");
    assert_eq!(sw.cmd(&format!("uuid_kill {call}")).trim(), "+OK");
    wait_gone(&mut sw, &call, WAIT);
    wait_until(&mut sw, "the old copy purged", |sw| {
        mapped_copies(sw, "mod_handover").len() == 1
    });
    assert!(sw.shutdown().success());
}

#[test]
fn unload_f_ends_the_calls_of_every_version() {
    let _serial = serial();
    let mut sw = Switch::start(SwitchConfig {
        autoload: vec!["mod_loopback".into(), "mod_dptools".into()],
        ..Default::default()
    });
    let first = ok_uuid(&sw.cmd("originate null/first &park"));
    let r = sw.cmd("reload mod_loopback");
    assert!(r.contains("+OK module draining"), "{r}");
    let second = ok_uuid(&sw.cmd("originate null/second &park"));
    let r = sw.cmd("reload mod_loopback");
    assert!(r.contains("+OK module draining"), "{r}");
    assert_eq!(mapped_copies(&sw, "mod_loopback").len(), 3);
    assert_eq!(
        sw.cmd("unload mod_loopback").trim(),
        "-ERR [Module in use.]"
    );
    assert_eq!(sw.cmd("unload -f mod_loopback").trim(), "+OK");
    wait_gone(&mut sw, &first, WAIT);
    wait_gone(&mut sw, &second, WAIT);
    assert!(mapped_copies(&sw, "mod_loopback").is_empty());
    assert_eq!(sw.cmd("module_exists mod_loopback").trim(), "false");
    assert!(sw.shutdown().success());
}

#[test]
fn a_handed_socket_keeps_its_port_and_forwarded_messages_reach_the_older_copy() {
    let _serial = serial();
    let (mut sw, _mods) = handover_switch("v1");
    let port = sw.cmd("handover_port");
    assert!(port.starts_with("+OK ") && port.trim() != "+OK 0", "{port}");
    // No older copy: nothing takes a forwarded message.
    assert!(sw
        .cmd("handover_forward old:first")
        .starts_with("+OK not taken"));
    let call = hold(&mut sw);
    let r = sw.cmd("reload mod_handover");
    assert!(r.contains("+OK module draining"), "{r}");
    // The new copy took the old one's socket itself: same port.
    assert_eq!(sw.cmd("handover_port"), port);
    // The new copy hands a message back; the old copy's deliver takes it on
    // a host thread, not the caller's.
    let r = sw.cmd("handover_forward old:hello");
    assert!(r.starts_with("+OK taken on thread "), "{r}");
    let caller = r
        .trim()
        .trim_start_matches("+OK taken on thread ")
        .to_string();
    wait_until(&mut sw, "the delivery logged", |sw| {
        sw.log()
            .contains("delivered old:hello from 127.0.0.1:9 on udp test: taken")
    });
    let log = sw.log();
    let line = log
        .lines()
        .find(|l| l.contains("delivered old:hello"))
        .unwrap_or_default()
        .to_string();
    assert!(!line.ends_with(&format!("on thread {caller}")), "{line}");
    assert!(sw
        .cmd("handover_forward new:x")
        .starts_with("+OK not taken"));
    // Once the old copy is purged, nothing is left to take it.
    assert_eq!(sw.cmd(&format!("uuid_kill {call}")).trim(), "+OK");
    wait_gone(&mut sw, &call, WAIT);
    wait_until(&mut sw, "the old copy purged", |sw| {
        mapped_copies(sw, "mod_handover").len() == 1
    });
    assert!(sw
        .cmd("handover_forward old:late")
        .starts_with("+OK not taken"));
    assert_eq!(sw.cmd("handover_port"), port);
    assert!(sw.shutdown().success());
}

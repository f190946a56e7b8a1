//! Loopback bowout: a loopback pair whose legs are each bridged to a real
//! channel drops out after 2 s, the two real channels are bridged directly
//! (`uuid_bridge`), and with `fire-bowout-on-bridge` each loopback leg
//! fires `CUSTOM loopback::direct` — FreeSWITCH's mod_loopback. Here X
//! (`null/x`) bridges to `loopback/far`, whose B leg bridges to Y
//! (`null/far`). And on execute: a leg with `loopback_bowout_on_execute`
//! hands the call it was about to run to the real channel
//! (`loopback::bowout`).

use hotswitch_e2e::*;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

const DIALPLAN: &str = r#"<include>
  <context name="default">
    <extension name="far">
      <condition field="destination_number" expression="^far$">
        <action application="bridge" data="null/far"/>
      </condition>
    </extension>
    <extension name="hold">
      <condition field="destination_number" expression="^hold$">
        <action application="answer"/>
        <action application="park"/>
      </condition>
    </extension>
    <extension name="takeover">
      <condition field="destination_number" expression="^takeover$">
        <action application="set" data="took_over=yes"/>
        <action application="park"/>
      </condition>
    </extension>
  </context>
</include>"#;

fn loopback_switch(settings: &str) -> Switch {
    Switch::start(SwitchConfig {
        autoload: vec!["mod_loopback".into(), "mod_dptools".into()],
        files: vec![
            ("dialplan/far.xml".into(), DIALPLAN.into()),
            (
                "autoload_configs/loopback.conf.xml".into(),
                format!(
                    r#"<configuration name="loopback.conf"><settings>{settings}</settings></configuration>"#
                ),
            ),
        ],
        ..Default::default()
    })
}

/// The uuid of the channel named `name`, from its CHANNEL_CREATE.
fn uuid_of(sw: &mut Switch, name: &str) -> String {
    sw.wait_event_kept(WAIT, |e| {
        e.name() == "CHANNEL_CREATE" && e.get("Channel-Name") == Some(name)
    })
    .unwrap_or_else(|| panic!("{name} is created\n{}", sw.log()))
    .get("Unique-ID")
    .unwrap()
    .to_string()
}

#[test]
fn a_loopback_pair_between_two_real_channels_bows_out_and_bridges_them_directly() {
    let mut sw = loopback_switch(r#"<param name="fire-bowout-on-bridge" value="true"/>"#);
    assert!(sw.cmd("/event plain ALL").starts_with("+OK"));
    let x = ok_uuid(&sw.cmd("originate null/x &bridge(loopback/far)"));
    let a = uuid_of(&mut sw, "loopback/far-a");
    let b = uuid_of(&mut sw, "loopback/far-b");
    let y = uuid_of(&mut sw, "null/far");

    // Each loopback leg announces the pair's exit, naming the real legs.
    for (me, peer, conn_a, conn_b) in [(&a, &b, &x, &y), (&b, &a, &y, &x)] {
        let e = sw
            .wait_event_kept(WAIT, |e| {
                e.get("Event-Subclass") == Some("loopback::direct")
                    && e.get("Resigning-UUID") == Some(me.as_str())
            })
            .unwrap_or_else(|| panic!("loopback::direct on {me}\n{}", sw.log()));
        assert_eq!(e.name(), "CUSTOM");
        assert_eq!(e.get("Resigning-Peer-UUID"), Some(peer.as_str()));
        assert_eq!(e.get("Connecting-Leg-A-UUID"), Some(conn_a.as_str()));
        assert_eq!(e.get("Connecting-Leg-B-UUID"), Some(conn_b.as_str()));
        assert_eq!(
            e.get("Unique-ID"),
            Some(me.as_str()),
            "with its channel's data"
        );
    }
    // The real legs are bridged to each other…
    sw.wait_event_kept(WAIT, |e| {
        e.name() == "CHANNEL_BRIDGE"
            && e.get("Bridge-A-Unique-ID") == Some(x.as_str())
            && e.get("Bridge-B-Unique-ID") == Some(y.as_str())
    })
    .expect("X and Y bridged");
    // …and the loopback legs are gone, saying why.
    for (leg, real) in [(&a, &x), (&b, &y)] {
        let e = sw
            .wait_event_kept(WAIT, |e| {
                e.name() == "CHANNEL_HANGUP_COMPLETE" && e.get("Unique-ID") == Some(leg.as_str())
            })
            .unwrap_or_else(|| panic!("{leg} hangs up\n{}", sw.log()));
        assert_eq!(e.get("variable_loopback_hangup_cause"), Some("bridge"));
        assert_eq!(
            e.get("variable_loopback_bowout_other_uuid"),
            Some(real.as_str())
        );
    }
    wait_until(&mut sw, "only X and Y left", |sw| sw.channel_count() == 2);
    assert_eq!(sw.cmd(&format!("uuid_exists {x}")).trim(), "true");
    assert_eq!(sw.cmd(&format!("uuid_exists {y}")).trim(), "true");
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {x} bridge_uuid")).trim(),
        y,
        "the call goes on, X to Y"
    );
    assert_eq!(sw.cmd(&format!("uuid_getvar {y} bridge_uuid")).trim(), x);
    // The bridge is real: Y hanging up ends X's bridge, and X hangs up.
    assert_eq!(sw.cmd(&format!("uuid_kill {y}")).trim(), "+OK");
    wait_until(&mut sw, "no calls", |sw| sw.channel_count() == 0);
}

#[test]
fn loopback_bowout_false_keeps_the_pair_in_the_call() {
    let mut sw = loopback_switch("");
    assert!(sw
        .cmd("/event plain CHANNEL_BRIDGE CUSTOM loopback::direct")
        .starts_with("+OK"));
    let x = ok_uuid(&sw.cmd("originate null/x &bridge({loopback_bowout=false}loopback/far)"));
    let deadline = Instant::now() + WAIT;
    while sw.channel_count() != 4 {
        assert!(
            Instant::now() < deadline,
            "four legs up: {}\n{}",
            sw.cmd("show channels"),
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sw.wait_event_kept(WAIT, |e| {
        e.name() == "CHANNEL_BRIDGE" && e.get("Bridge-A-Unique-ID") == Some(x.as_str())
    })
    .expect("X bridged to the loopback leg");
    // Past the 2 s a bowout waits for (measured from X's bridge), the pair
    // is still there.
    let bridged = Instant::now();
    while bridged.elapsed() < Duration::from_secs(4) {
        assert_eq!(sw.channel_count(), 4, "{}", sw.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = sw.cmd(&format!("uuid_getvar {x} bridge_uuid"));
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {} loopback_leg", a.trim()))
            .trim(),
        "A",
        "X is still bridged to the loopback A leg"
    );
    assert_eq!(
        sw.cmd("hupall").trim(),
        "+OK hangup all channels with cause MANAGER_REQUEST"
    );
    wait_until(&mut sw, "no calls", |sw| sw.channel_count() == 0);
}

#[test]
fn a_leg_bowing_out_on_execute_hands_its_extension_to_the_real_channel() {
    let mut sw = loopback_switch("");
    assert!(sw.cmd("/event plain ALL").starts_with("+OK"));
    let x = ok_uuid(&sw.cmd("originate null/x &bridge(loopback/hold)"));
    let a = uuid_of(&mut sw, "loopback/hold-a");
    let b = uuid_of(&mut sw, "loopback/hold-b");
    sw.wait_event_kept(WAIT, |e| {
        e.name() == "CHANNEL_BRIDGE"
            && e.get("Bridge-A-Unique-ID") == Some(x.as_str())
            && e.get("Bridge-B-Unique-ID") == Some(a.as_str())
    })
    .expect("X bridged to the loopback A leg");
    assert_eq!(
        sw.cmd(&format!("uuid_setvar {b} loopback_bowout_on_execute true"))
            .trim(),
        "+OK"
    );
    assert_eq!(sw.cmd(&format!("uuid_transfer {b} takeover")).trim(), "+OK");
    let e = sw
        .wait_event_kept(WAIT, |e| {
            e.get("Event-Subclass") == Some("loopback::bowout")
        })
        .unwrap_or_else(|| panic!("loopback::bowout\n{}", sw.log()));
    assert_eq!(e.name(), "CUSTOM");
    assert_eq!(e.get("Resigning-UUID"), Some(b.as_str()));
    assert_eq!(e.get("Resigning-Peer-UUID"), Some(a.as_str()));
    assert_eq!(e.get("Acquired-UUID"), Some(x.as_str()));
    let gone = sw
        .wait_event_kept(WAIT, |e| {
            e.name() == "CHANNEL_HANGUP_COMPLETE" && e.get("Unique-ID") == Some(b.as_str())
        })
        .expect("the B leg leaves");
    assert_eq!(gone.get("variable_loopback_hangup_cause"), Some("bowout"));
    assert_eq!(
        gone.get("variable_loopback_bowout_other_uuid"),
        Some(x.as_str())
    );
    wait_until(&mut sw, "X runs the extension", |sw| {
        sw.cmd(&format!("uuid_getvar {x} took_over")).trim() == "yes"
    });
    wait_until(&mut sw, "only X left", |sw| sw.channel_count() == 1);
    assert_eq!(sw.cmd(&format!("uuid_kill {x}")).trim(), "+OK");
    wait_until(&mut sw, "no calls", |sw| sw.channel_count() == 0);
}

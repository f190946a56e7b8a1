//! Taking a node out of service without cutting calls (FreeSWITCH's
//! `fsctl pause` and `fsctl shutdown elegant`): new INVITEs (and OPTIONS
//! probes, REGISTERs) are answered `503 Maximum Calls In Progress` with
//! `Retry-After: 300`, the call that
//! is up goes on, and the switch stops by itself once it has ended.

mod nodes_common;
mod sofia_common;

use hotswitch_e2e::{free_port, wait_until, Switch};
use nodes_common::{sipp, succeeds};
use std::time::Duration;

/// A switch with the `internal` profile on `port` (5900 answers and parks).
fn switch(port: u16) -> Switch {
    sofia_common::start_on(port, "", "", "", None)
}

fn call(port: u16, hold_ms: u32) -> nodes_common::Sipp {
    sipp(
        "uac_call.xml",
        Some(port),
        &[
            "-s",
            "5900",
            "-d",
            &hold_ms.to_string(),
            "-key",
            "rtp_port",
            &free_port().to_string(),
        ],
    )
}

fn refused(port: u16) {
    succeeds(
        sipp(
            "uac_refused_503.xml",
            Some(port),
            &["-s", "5900", "-key", "rtp_port", &free_port().to_string()],
        ),
        "uac_refused_503",
    );
}

#[test]
fn paused_inbound_calls_get_503_with_retry_after_until_resumed() {
    let port = free_port();
    let mut sw = switch(port);
    assert_eq!(sw.cmd("fsctl pause inbound").trim(), "+OK");
    refused(port);
    // A dispatcher's OPTIONS probe is refused too: it marks the node down.
    succeeds(
        sipp("options_refused.xml", Some(port), &[]),
        "options_refused",
    );
    assert_eq!(sw.cmd("fsctl resume inbound").trim(), "+OK");
    succeeds(call(port, 100), "uac_call");
    assert!(sw.cmd("fsctl pause sideways").starts_with("-USAGE"));
}

#[test]
fn shutdown_elegant_refuses_new_calls_lets_the_call_up_finish_then_stops() {
    let port = free_port();
    let mut sw = switch(port);
    let up = call(port, 4000);
    wait_until(&mut sw, "the call to be up", |s| s.channel_count() == 1);
    assert_eq!(sw.cmd("fsctl shutdown elegant").trim(), "+OK");
    refused(port);
    assert_eq!(sw.channel_count(), 1, "the call up goes on");
    // Outbound legs still start (a call up may bridge).
    let out = sw.cmd("originate null/x &hangup()");
    assert!(out.starts_with("+OK"), "{out}");
    succeeds(up, "uac_call");
    let st = sw
        .wait_exit(Duration::from_secs(20))
        .expect("the switch stops once the last call ended");
    assert!(st.success(), "{st}");
    assert!(sw.log().contains("session(s) remain"), "{}", sw.log());
}

#[test]
fn a_cancelled_shutdown_serves_again() {
    let port = free_port();
    let mut sw = switch(port);
    let up = call(port, 2000);
    wait_until(&mut sw, "the call to be up", |s| s.channel_count() == 1);
    assert_eq!(sw.cmd("fsctl shutdown elegant").trim(), "+OK");
    refused(port);
    assert_eq!(sw.cmd("fsctl shutdown cancel").trim(), "+OK");
    succeeds(up, "uac_call");
    succeeds(call(port, 100), "uac_call after cancel");
    assert!(sw.alive());
}

//! Calls through the session core against the real binary: originate with
//! loopback and null legs, the events a call fires and their order and
//! headers, hangup causes, hupall, dial-string groups, and unloading an
//! endpoint module with calls up.

use hotswitch_e2e::{ok_uuid, wait_until, Event, Switch, SwitchConfig};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn call_switch(extra_settings: &str) -> Switch {
    Switch::start(SwitchConfig {
        autoload: vec!["mod_loopback".into(), "mod_dptools".into()],
        files: vec![(
            "autoload_configs/switch.conf.xml".into(),
            format!(
                r#"<configuration name="switch.conf"><settings>
                     <param name="max-sessions" value="30000"/>
                     <param name="sessions-per-second" value="100000"/>
                     {extra_settings}
                   </settings></configuration>"#
            ),
        )],
        ..Default::default()
    })
}

fn count(sw: &mut Switch) -> usize {
    sw.channel_count()
}

/// The position of the first event matching, after `from`.
fn pos(events: &[Event], from: usize, what: &str, pred: impl Fn(&Event) -> bool) -> usize {
    events[from..]
        .iter()
        .position(pred)
        .map(|p| p + from)
        .unwrap_or_else(|| {
            let names: Vec<String> = events
                .iter()
                .map(|e| format!("{}:{}", e.name(), e.get("Channel-State").unwrap_or("")))
                .collect();
            panic!("no {what} after #{from} in {names:?}")
        })
}

fn state_is(e: &Event, s: &str) -> bool {
    e.name() == "CHANNEL_STATE" && e.get("Channel-State") == Some(s)
}

#[test]
fn an_originated_loopback_call_parked_then_killed_fires_freeswitchs_events_in_order() {
    let mut sw = call_switch("");
    assert!(sw.cmd("/event plain ALL").starts_with("+OK"));
    let a_uuid = "aaaaaaaa-0000-4000-8000-000000000001";
    let reply = sw.cmd(&format!(
        "originate {{origination_uuid={a_uuid},my_tag=abc}}loopback/answer\\,park/default/inline &park()"
    ));
    assert_eq!(ok_uuid(&reply), a_uuid);
    let park_a = sw
        .wait_event_kept(WAIT, |e| {
            e.name() == "CHANNEL_PARK" && e.get("Unique-ID") == Some(a_uuid)
        })
        .expect("A leg parks");
    let b_uuid = park_a
        .get("variable_other_loopback_leg_uuid")
        .expect("A knows its B leg")
        .to_string();
    sw.wait_event_kept(WAIT, |e| {
        e.name() == "CHANNEL_PARK" && e.get("Unique-ID") == Some(&b_uuid)
    })
    .expect("B leg parks");
    assert_eq!(count(&mut sw), 2);
    assert_eq!(
        sw.cmd(&format!("uuid_kill {a_uuid} USER_BUSY")).trim(),
        "+OK"
    );
    for u in [a_uuid, b_uuid.as_str()] {
        sw.wait_event_kept(WAIT, |e| {
            state_is(e, "CS_DESTROY") && e.get("Unique-ID") == Some(u)
        })
        .unwrap_or_else(|| panic!("{u} is destroyed"));
    }
    let all = sw.drain_events(Duration::from_millis(200));
    let a: Vec<Event> = all
        .iter()
        .filter(|e| e.get("Unique-ID") == Some(a_uuid))
        .cloned()
        .collect();
    let b: Vec<Event> = all
        .iter()
        .filter(|e| e.get("Unique-ID") == Some(b_uuid.as_str()))
        .cloned()
        .collect();

    // The A leg (outbound, originated).
    assert_eq!(a[0].name(), "CHANNEL_OUTGOING");
    let init = pos(&a, 0, "STATE CS_INIT", |e| state_is(e, "CS_INIT"));
    let create = pos(&a, init, "CREATE", |e| e.name() == "CHANNEL_CREATE");
    let orig = pos(&a, create, "ORIGINATE", |e| e.name() == "CHANNEL_ORIGINATE");
    pos(&a, orig, "STATE CS_ROUTING", |e| state_is(e, "CS_ROUTING"));
    let answer = pos(&a, 0, "ANSWER", |e| e.name() == "CHANNEL_ANSWER");
    let exec = pos(&a, answer, "STATE CS_EXECUTE", |e| {
        state_is(e, "CS_EXECUTE")
    });
    let app = pos(&a, exec, "EXECUTE park", |e| {
        e.name() == "CHANNEL_EXECUTE" && e.get("Application") == Some("park")
    });
    let done = pos(&a, app, "EXECUTE_COMPLETE park", |e| {
        e.name() == "CHANNEL_EXECUTE_COMPLETE" && e.get("Application") == Some("park")
    });
    let park = pos(&a, done, "PARK", |e| e.name() == "CHANNEL_PARK");
    let hangup = pos(&a, park, "HANGUP", |e| e.name() == "CHANNEL_HANGUP");
    let st_hangup = pos(&a, hangup, "STATE CS_HANGUP", |e| state_is(e, "CS_HANGUP"));
    let cs_hangup = pos(&a, st_hangup, "CALLSTATE HANGUP", |e| {
        e.name() == "CHANNEL_CALLSTATE" && e.get("Channel-Call-State") == Some("HANGUP")
    });
    let reporting = pos(&a, cs_hangup, "STATE CS_REPORTING", |e| {
        state_is(e, "CS_REPORTING")
    });
    let complete = pos(&a, reporting, "HANGUP_COMPLETE", |e| {
        e.name() == "CHANNEL_HANGUP_COMPLETE"
    });
    let destroy = pos(&a, complete, "DESTROY", |e| e.name() == "CHANNEL_DESTROY");
    pos(&a, destroy, "STATE CS_DESTROY", |e| {
        state_is(e, "CS_DESTROY")
    });

    // Headers.
    let c = &a[create];
    assert_eq!(c.headers[0].0, "Event-Name");
    let base = [
        "Event-Name",
        "Core-UUID",
        "FreeSWITCH-Hostname",
        "FreeSWITCH-Switchname",
        "FreeSWITCH-IPv4",
        "FreeSWITCH-IPv6",
        "Event-Date-Local",
        "Event-Date-GMT",
        "Event-Date-Timestamp",
        "Event-Calling-File",
        "Event-Calling-Function",
        "Event-Calling-Line-Number",
        "Event-Sequence",
    ];
    let names: Vec<&str> = c.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &names[..base.len()],
        &base,
        "base headers in FreeSWITCH's order"
    );
    assert_eq!(c.get("Call-Direction"), Some("outbound"));
    assert_eq!(c.get("Channel-Name"), Some("loopback/answer,park-a"));
    assert_eq!(c.get("Caller-Destination-Number"), Some("answer,park"));
    assert_eq!(
        c.get("variable_my_tag"),
        Some("abc"),
        "channel events carry variables"
    );
    assert!(
        a[init].get("variable_my_tag").is_none(),
        "CHANNEL_STATE does not"
    );
    assert_eq!(a[answer].get("Answer-State"), Some("answered"));
    assert_eq!(a[complete].get("Hangup-Cause"), Some("USER_BUSY"));
    assert_eq!(a[complete].get("variable_hangup_cause_q850"), Some("17"));
    assert_eq!(a[st_hangup].get("Channel-State-Number"), Some("10"));

    // The B leg (inbound): ringing before routing, then its own apps.
    assert_eq!(
        b.iter()
            .find(|e| e.name() == "CHANNEL_CREATE")
            .unwrap()
            .get("Call-Direction"),
        Some("inbound")
    );
    let ring = pos(&b, 0, "CALLSTATE RINGING", |e| {
        e.name() == "CHANNEL_CALLSTATE" && e.get("Channel-Call-State") == Some("RINGING")
    });
    assert_eq!(b[ring].get("Original-Channel-Call-State"), Some("DOWN"));
    let routing = pos(&b, ring, "STATE CS_ROUTING", |e| state_is(e, "CS_ROUTING"));
    let ans = pos(&b, routing, "EXECUTE answer", |e| {
        e.name() == "CHANNEL_EXECUTE" && e.get("Application") == Some("answer")
    });
    let b_answer = pos(&b, ans, "ANSWER", |e| e.name() == "CHANNEL_ANSWER");
    pos(&b, b_answer, "CALLSTATE ACTIVE", |e| {
        e.name() == "CHANNEL_CALLSTATE" && e.get("Channel-Call-State") == Some("ACTIVE")
    });
    let b_complete = pos(&b, 0, "HANGUP_COMPLETE", |e| {
        e.name() == "CHANNEL_HANGUP_COMPLETE"
    });
    assert_eq!(
        b[b_complete].get("Hangup-Cause"),
        Some("USER_BUSY"),
        "the hangup crosses with its cause"
    );
    assert_eq!(b[b_complete].get("variable_loopback_leg"), Some("B"));
    assert_eq!(count(&mut sw), 0);
}

#[test]
fn hupall_with_a_variable_filter_hangs_up_only_the_matching_calls() {
    let mut sw = call_switch("");
    let x = ok_uuid(&sw.cmd("originate {tag=x}null/1 &park()"));
    let y = ok_uuid(&sw.cmd("originate {tag=y}null/2 &park()"));
    let x2 = ok_uuid(&sw.cmd("originate {tag=x}null/3 &park()"));
    assert_eq!(count(&mut sw), 3);
    assert_eq!(
        sw.cmd("hupall USER_BUSY tag x").trim(),
        "+OK hangup all channels matching [tag]=[x] with cause: USER_BUSY"
    );
    wait_until(&mut sw, "two calls gone", |sw| count(sw) == 1);
    assert_eq!(sw.cmd(&format!("uuid_exists {y}")).trim(), "true");
    assert_eq!(sw.cmd(&format!("uuid_exists {x}")).trim(), "false");
    assert_eq!(sw.cmd(&format!("uuid_exists {x2}")).trim(), "false");
    assert_eq!(
        sw.cmd("hupall").trim(),
        "+OK hangup all channels with cause MANAGER_REQUEST"
    );
    wait_until(&mut sw, "no calls", |sw| count(sw) == 0);
}

#[test]
fn pipes_fail_over_in_order_and_commas_ring_legs_at_once() {
    let mut sw = call_switch("");
    // `|`: the first group fails, the second answers.
    let u = ok_uuid(&sw.cmd("originate error/USER_BUSY|null/fallback &park()"));
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {u} destination_number"))
            .trim(),
        "fallback"
    );
    // Every group fails: the last cause is reported.
    assert_eq!(
        sw.cmd("originate error/USER_BUSY|error/CALL_REJECTED &park()")
            .trim(),
        "-ERR CALL_REJECTED"
    );
    assert_eq!(
        sw.cmd("originate nosuch/1 &park()").trim(),
        "-ERR CHAN_NOT_IMPLEMENTED"
    );
    // `,`: both legs ring; null answers at once, the loopback leg that
    // would only ring loses the race.
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    let w = ok_uuid(
        &sw.cmd("originate loopback/ring_ready\\,sleep:5000/default/inline,null/winner &park()"),
    );
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {w} destination_number"))
            .trim(),
        "winner"
    );
    let lost = sw
        .wait_event(WAIT, |e| {
            e.get("Channel-Name") == Some("loopback/ring_ready,sleep:5000-a")
        })
        .expect("the losing leg hangs up");
    assert_eq!(lost.get("Hangup-Cause"), Some("LOSE_RACE"));
    // A leg that never answers: NO_ANSWER after originate_timeout.
    let t = Instant::now();
    assert_eq!(
        sw.cmd("originate {originate_timeout=1}loopback/sleep:10000/default/inline &park()")
            .trim(),
        "-ERR NO_ANSWER"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the timeout is honoured"
    );
    // A bad dial string is refused, not crashed on.
    assert_eq!(
        sw.cmd("originate loopback &park()").trim(),
        "-ERR INVALID_URL"
    );
    assert_eq!(sw.cmd("originate [x=1 &park()").trim(), "-ERR INVALID_URL");
    assert!(sw.cmd("status").contains("is ready"));
}

#[test]
fn unloading_an_endpoint_with_calls_up_is_refused_and_forcing_it_hangs_them_up() {
    let mut sw = call_switch("");
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    ok_uuid(&sw.cmd("originate loopback/answer\\,park/default/inline &park()"));
    assert_eq!(count(&mut sw), 2);
    assert_eq!(
        sw.cmd("unload mod_loopback").trim(),
        "-ERR [Module in use.]"
    );
    assert_eq!(count(&mut sw), 2, "the calls survive a refused unload");
    assert_eq!(sw.cmd("unload -f mod_loopback").trim(), "+OK");
    for _ in 0..2 {
        let e = sw
            .wait_event(WAIT, |e| e.name() == "CHANNEL_HANGUP_COMPLETE")
            .expect("forced unload hangs the calls up");
        assert_eq!(e.get("Hangup-Cause"), Some("MANAGER_REQUEST"));
    }
    assert_eq!(count(&mut sw), 0);
    assert!(
        !sw.mapped_shadows()
            .iter()
            .any(|p| p.contains("mod_loopback")),
        "mod_loopback is unmapped, not pinned: {:?}",
        sw.mapped_shadows()
    );
    assert!(sw.cmd("load mod_loopback").contains("+OK\n"));
    ok_uuid(&sw.cmd("originate loopback/answer\\,park/default/inline &park()"));
    assert_eq!(count(&mut sw), 2);
}

fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn ten_thousand_originate_hangup_cycles_leave_no_session_thread_or_memory_behind() {
    let mut sw = call_switch(r#"<param name="worker-idle-timeout" value="1"/>"#);
    let pid = sw.pid();
    let cycle = |sw: &mut Switch| {
        let r = sw.cmd("originate loopback/answer\\,park/default/inline &hangup()");
        assert!(r.starts_with("+OK "), "{r}");
    };
    for _ in 0..1000 {
        cycle(&mut sw);
    }
    wait_until(&mut sw, "warm-up calls gone", |sw| count(sw) == 0);
    std::thread::sleep(Duration::from_millis(1500));
    let threads_before = threads(pid);
    let rss_before = rss_kib(pid);
    for _ in 0..10_000 {
        cycle(&mut sw);
    }
    wait_until(&mut sw, "all calls gone", |sw| count(sw) == 0);
    let status = sw.cmd("status");
    assert!(
        status.contains("11000 session(s) since startup")
            || status.contains("22000 session(s) since startup"),
        "{status}"
    );
    assert!(status.contains("\n0 session(s) - peak"), "{status}");
    // Idle workers end after worker-idle-timeout (1 s here).
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads(pid) > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        threads(pid) <= threads_before,
        "threads: {} before, {} after",
        threads_before,
        threads(pid)
    );
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 4096, "RSS grew {grown} KiB over 10,000 calls");
}

#[test]
fn heartbeat_events_fire_at_the_configured_interval() {
    let mut sw = call_switch(r#"<param name="event-heartbeat-interval" value="1"/>"#);
    assert!(sw.cmd("/event plain HEARTBEAT").starts_with("+OK"));
    let hb = sw
        .wait_event(Duration::from_secs(5), |e| e.name() == "HEARTBEAT")
        .expect("a heartbeat within the interval");
    assert_eq!(hb.get("Event-Info"), Some("System Ready"));
    assert!(hb.get("Session-Count").is_some() && hb.get("Up-Time").is_some());
}

#[test]
fn variables_globals_eval_and_scheduled_commands_work_as_in_freeswitch() {
    let mut sw = call_switch("");
    let u = ok_uuid(&sw.cmd("originate {origination_caller_id_number=1234}null/9 &park()"));
    assert_eq!(sw.cmd(&format!("uuid_setvar {u} color blue")).trim(), "+OK");
    assert_eq!(sw.cmd(&format!("uuid_getvar {u} color")).trim(), "blue");
    assert_eq!(
        sw.cmd(&format!("uuid_getvar {u} nothing")).trim(),
        "_undef_"
    );
    assert_eq!(
        sw.cmd(&format!("eval uuid:{u} ${{color}}/${{caller_id_number}}"))
            .trim(),
        "blue/1234"
    );
    assert_eq!(sw.cmd("global_setvar site=lab").trim(), "+OK");
    assert_eq!(sw.cmd("global_getvar site").trim(), "lab");
    assert_eq!(sw.cmd("eval $${site}").trim(), "lab");
    assert_eq!(sw.cmd("expand echo $${site}").trim(), "lab");
    assert_eq!(sw.cmd("uuid_kill nope").trim(), "-ERR No such channel!");
    assert_eq!(sw.create_uuid_len(), 36);
    let r = sw.cmd(&format!("sched_api +1 killers uuid_kill {u}"));
    assert!(r.starts_with("+OK Added: "), "{r}");
    wait_until(&mut sw, "the scheduled kill", |sw| count(sw) == 0);
}

trait CreateUuid {
    fn create_uuid_len(&mut self) -> usize;
}

impl CreateUuid for Switch {
    fn create_uuid_len(&mut self) -> usize {
        self.cmd("create_uuid").trim().len()
    }
}

#[test]
fn every_hangup_cause_round_trips_by_name_and_number_through_uuid_kill() {
    let mut sw = call_switch("");
    assert!(sw
        .cmd("/event plain CHANNEL_HANGUP_COMPLETE")
        .starts_with("+OK"));
    // FreeSWITCH's causes and numbers (switch_types.h).
    let causes: &[(&str, u32)] = &[
        ("UNALLOCATED_NUMBER", 1),
        ("NO_ROUTE_TRANSIT_NET", 2),
        ("NO_ROUTE_DESTINATION", 3),
        ("CHANNEL_UNACCEPTABLE", 6),
        ("CALL_AWARDED_DELIVERED", 7),
        ("NORMAL_CLEARING", 16),
        ("USER_BUSY", 17),
        ("NO_USER_RESPONSE", 18),
        ("NO_ANSWER", 19),
        ("SUBSCRIBER_ABSENT", 20),
        ("CALL_REJECTED", 21),
        ("NUMBER_CHANGED", 22),
        ("REDIRECTION_TO_NEW_DESTINATION", 23),
        ("EXCHANGE_ROUTING_ERROR", 25),
        ("DESTINATION_OUT_OF_ORDER", 27),
        ("INVALID_NUMBER_FORMAT", 28),
        ("FACILITY_REJECTED", 29),
        ("RESPONSE_TO_STATUS_ENQUIRY", 30),
        ("NORMAL_UNSPECIFIED", 31),
        ("NORMAL_CIRCUIT_CONGESTION", 34),
        ("NETWORK_OUT_OF_ORDER", 38),
        ("NORMAL_TEMPORARY_FAILURE", 41),
        ("SWITCH_CONGESTION", 42),
        ("ACCESS_INFO_DISCARDED", 43),
        ("REQUESTED_CHAN_UNAVAIL", 44),
        ("PRE_EMPTED", 45),
        ("FACILITY_NOT_SUBSCRIBED", 50),
        ("OUTGOING_CALL_BARRED", 52),
        ("INCOMING_CALL_BARRED", 54),
        ("BEARERCAPABILITY_NOTAUTH", 57),
        ("BEARERCAPABILITY_NOTAVAIL", 58),
        ("SERVICE_UNAVAILABLE", 63),
        ("BEARERCAPABILITY_NOTIMPL", 65),
        ("CHAN_NOT_IMPLEMENTED", 66),
        ("FACILITY_NOT_IMPLEMENTED", 69),
        ("SERVICE_NOT_IMPLEMENTED", 79),
        ("INVALID_CALL_REFERENCE", 81),
        ("INCOMPATIBLE_DESTINATION", 88),
        ("INVALID_MSG_UNSPECIFIED", 95),
        ("MANDATORY_IE_MISSING", 96),
        ("MESSAGE_TYPE_NONEXIST", 97),
        ("WRONG_MESSAGE", 98),
        ("IE_NONEXIST", 99),
        ("INVALID_IE_CONTENTS", 100),
        ("WRONG_CALL_STATE", 101),
        ("RECOVERY_ON_TIMER_EXPIRE", 102),
        ("MANDATORY_IE_LENGTH_ERROR", 103),
        ("PROTOCOL_ERROR", 111),
        ("INTERWORKING", 127),
        ("ORIGINATOR_CANCEL", 487),
        ("CRASH", 700),
        ("SYSTEM_SHUTDOWN", 701),
        ("LOSE_RACE", 702),
        ("MANAGER_REQUEST", 703),
        ("BLIND_TRANSFER", 800),
        ("ATTENDED_TRANSFER", 801),
        ("ALLOTTED_TIMEOUT", 802),
        ("USER_CHALLENGE", 803),
        ("MEDIA_TIMEOUT", 804),
        ("PICKED_OFF", 805),
        ("USER_NOT_REGISTERED", 806),
        ("PROGRESS_TIMEOUT", 807),
        ("INVALID_GATEWAY", 808),
        ("GATEWAY_DOWN", 809),
        ("INVALID_URL", 810),
        ("INVALID_PROFILE", 811),
        ("NO_PICKUP", 812),
        ("SRTP_READ_ERROR", 813),
        ("BOWOUT", 814),
        ("BUSY_EVERYWHERE", 815),
        ("DECLINE", 816),
        ("DOES_NOT_EXIST_ANYWHERE", 817),
        ("NOT_ACCEPTABLE", 818),
        ("UNWANTED", 819),
        ("NO_IDENTITY", 820),
        ("BAD_IDENTITY_INFO", 821),
        ("UNSUPPORTED_CERTIFICATE", 822),
        ("INVALID_IDENTITY", 823),
        ("STALE_DATE", 824),
        ("REJECT_ALL", 825),
    ];
    for (i, (name, number)) in causes.iter().enumerate() {
        let u = ok_uuid(&sw.cmd("originate null/cause &park()"));
        // Alternate: by number, by name in lower case.
        let given = if i % 2 == 0 {
            number.to_string()
        } else {
            name.to_lowercase()
        };
        assert_eq!(sw.cmd(&format!("uuid_kill {u} {given}")).trim(), "+OK");
        let e = sw
            .wait_event(WAIT, |e| e.get("Unique-ID") == Some(u.as_str()))
            .unwrap_or_else(|| panic!("{name} hangs up"));
        assert_eq!(e.get("Hangup-Cause"), Some(*name), "uuid_kill {given}");
        let q850 = e
            .get("variable_hangup_cause_q850")
            .unwrap()
            .parse::<u32>()
            .unwrap();
        if *number <= 127 {
            assert_eq!(q850, *number, "{name}'s Q.850 number");
        }
    }
}

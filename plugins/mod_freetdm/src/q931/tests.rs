use super::*;

/// Two links wired back to back; returns the events each side saw.
struct Pair {
    user: Link,
    net: Link,
    now: Instant,
    user_events: Vec<Event>,
    net_events: Vec<Event>,
    wire: Vec<(bool, MsgType)>,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            user: Link::new(Role::User, true),
            net: Link::new(Role::Network, true),
            now: Instant::now(),
            user_events: Vec::new(),
            net_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Delivers frames both ways until both are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.user.poll_transmit() {
                moved = true;
                self.wire.push((true, Message::decode(&b).unwrap().mt));
                self.net.handle_frame(&b, self.now).unwrap();
            }
            while let Some(e) = self.user.poll_event() {
                moved = true;
                self.user_events.push(e);
            }
            while let Some(b) = self.net.poll_transmit() {
                moved = true;
                self.wire.push((false, Message::decode(&b).unwrap().mt));
                self.user.handle_frame(&b, self.now).unwrap();
            }
            while let Some(e) = self.net.poll_event() {
                moved = true;
                self.net_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn pass(&mut self, d: Duration) {
        self.now += d;
        self.user.handle_timeout(self.now);
        self.net.handle_timeout(self.now);
        self.pump();
    }
}

fn incoming(events: &[Event]) -> CallId {
    events
        .iter()
        .find_map(|e| match e {
            Event::Incoming { call, .. } => Some(*call),
            _ => None,
        })
        .expect("an incoming call")
}

#[test]
fn a_call_from_the_user_side_is_answered_and_cleared_by_the_caller() {
    use MsgType::*;
    let mut p = Pair::new();
    let now = p.now;
    let out = p.user.handle_setup("1000", "5551234", Some(3), now);
    p.pump();
    assert_eq!(
        p.net_events[0],
        Event::Incoming {
            call: incoming(&p.net_events),
            called: "1000".into(),
            calling: "5551234".into(),
            channel: Some(3)
        }
    );
    let inc = incoming(&p.net_events);
    p.net.handle_proceeding(inc, Some(3), now);
    p.net.handle_alerting(inc, now);
    p.net.handle_connect(inc, now);
    p.pump();
    assert_eq!(
        p.user_events,
        [
            Event::Proceeding {
                call: out,
                channel: Some(3)
            },
            Event::Alerting { call: out },
            Event::Connected { call: out },
        ]
    );
    assert_eq!(p.user.state(out), Some(CallState::Active));
    assert_eq!(p.net.state(inc), Some(CallState::Active));
    p.user.handle_hangup(out, 16, now);
    p.pump();
    assert_eq!(p.user.state(out), None);
    assert_eq!(p.net.state(inc), None);
    assert_eq!(
        p.wire,
        [
            (true, Setup),
            (false, CallProceeding),
            (false, Alerting),
            (false, Connect),
            (true, ConnectAck),
            (true, Disconnect),
            (false, Release),
            (true, ReleaseComplete),
        ]
    );
    assert!(p.net_events.contains(&Event::Disconnected {
        call: inc,
        cause: 16
    }));
    assert_eq!(
        p.user_events.last(),
        Some(&Event::Released {
            call: out,
            channel: Some(3)
        })
    );
}

#[test]
fn a_busy_network_disconnects_with_cause_17_and_the_caller_learns_it() {
    let mut p = Pair::new();
    let now = p.now;
    let out = p.user.handle_setup("2000", "", None, now);
    p.pump();
    let inc = incoming(&p.net_events);
    p.net.handle_proceeding(inc, Some(1), now);
    p.net.handle_hangup(inc, 17, now);
    p.pump();
    assert!(p.user_events.contains(&Event::Disconnected {
        call: out,
        cause: 17
    }));
    assert!(p.user_events.contains(&Event::Released {
        call: out,
        channel: Some(1)
    }));
    assert_eq!(p.net.state(inc), None);
}

#[test]
fn a_setup_refused_at_once_gets_release_complete_with_its_cause() {
    let mut p = Pair::new();
    let now = p.now;
    let out = p.net.handle_setup("1000", "", Some(2), now);
    p.pump();
    let inc = incoming(&p.user_events);
    p.user.handle_hangup(inc, 34, now);
    p.pump();
    assert_eq!(
        p.net_events,
        [
            Event::Disconnected {
                call: out,
                cause: 34
            },
            Event::Released {
                call: out,
                channel: Some(2)
            }
        ]
    );
    assert_eq!(p.wire.last(), Some(&(true, MsgType::ReleaseComplete)));
}

#[test]
fn an_unanswered_setup_is_cleared_by_t303_after_four_seconds() {
    let mut p = Pair::new();
    let now = p.now;
    let out = p.user.handle_setup("1", "", None, now);
    // Nobody listens: drop the SETUP.
    while p.user.poll_transmit().is_some() {}
    p.pass(Duration::from_millis(3900));
    assert_eq!(p.user.state(out), Some(CallState::CallInitiated));
    p.now += Duration::from_millis(200);
    p.user.handle_timeout(p.now);
    let events: Vec<Event> = std::iter::from_fn(|| p.user.poll_event()).collect();
    assert_eq!(
        events[0],
        Event::Disconnected {
            call: out,
            cause: 102
        }
    );
    assert_eq!(p.user.state(out), None);
}

#[test]
fn a_disconnect_nobody_releases_is_released_by_t305_then_t308() {
    let mut p = Pair::new();
    let now = p.now;
    let out = p.user.handle_setup("1", "", Some(1), now);
    p.pump();
    let inc = incoming(&p.net_events);
    p.net.handle_connect(inc, now);
    p.pump();
    p.user.handle_hangup(out, 16, now);
    // The network is gone.
    while p.user.poll_transmit().is_some() {}
    p.now += Duration::from_secs(30);
    p.user.handle_timeout(p.now);
    assert_eq!(p.user.state(out), Some(CallState::ReleaseRequest));
    p.now += Duration::from_secs(4);
    p.user.handle_timeout(p.now);
    assert_eq!(p.user.state(out), None);
    assert_eq!(p.user.poll_timeout(), None);
}

#[test]
fn a_message_for_an_unknown_call_is_answered_with_cause_81() {
    let mut link = Link::new(Role::User, false);
    let m = Message::new(MsgType::Disconnect, 9, false);
    link.handle_frame(&m.encode(), Instant::now()).unwrap();
    let Some(b) = link.poll_transmit() else {
        panic!("a reply")
    };
    let r = Message::decode(&b).unwrap();
    assert_eq!(
        (r.mt, r.cause, r.cr, r.cr_flag),
        (MsgType::ReleaseComplete, Some(81), 9, true)
    );
}

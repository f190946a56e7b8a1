//! Whole conversations with a scripted modem, time passed by hand.

use super::*;
use crate::pdu;

struct Rig {
    d: Driver,
    now: Instant,
    written: Vec<String>,
    events: Vec<Event>,
}

impl Rig {
    fn new(settings: Settings) -> Rig {
        let mut r = Rig {
            d: Driver::new(settings),
            now: Instant::now(),
            written: Vec::new(),
            events: Vec::new(),
        };
        r.d.handle_opened(r.now);
        r.drain();
        r
    }

    fn ready() -> Rig {
        let mut r = Rig::new(Settings::default());
        while r.d.link() != Link::Ready {
            r.reply("OK");
        }
        // Registration, signal and the stored-message listing.
        r.reply_lines(&["+CREG: 0,1", "OK"]);
        r.reply_lines(&["+CSQ: 20,99", "OK"]);
        r.reply("OK");
        r.written.clear();
        r.events.clear();
        r
    }

    fn drain(&mut self) {
        while let Some(b) = self.d.poll_transmit() {
            self.written.push(String::from_utf8(b).unwrap());
        }
        while let Some(e) = self.d.poll_event() {
            self.events.push(e);
        }
    }

    fn feed(&mut self, text: &str) {
        self.d.handle_bytes(text.as_bytes(), self.now);
        self.drain();
    }

    fn reply(&mut self, line: &str) {
        self.feed(&format!("\r\n{line}\r\n"));
    }

    fn reply_lines(&mut self, lines: &[&str]) {
        for l in lines {
            self.reply(l);
        }
    }

    fn pass(&mut self, d: Duration) {
        self.now += d;
        self.d.handle_timeout(self.now);
        self.drain();
    }

    fn last_written(&self) -> &str {
        self.written.last().map(String::as_str).unwrap_or("")
    }
}

#[test]
fn initialisation_sends_the_standard_sequence_then_polls_and_lists_messages() {
    let mut r = Rig::new(Settings {
        at_preinit: vec!["AT+CFUN=1".into()],
        ..Settings::default()
    });
    let mut sent = Vec::new();
    while r.d.link() != Link::Ready {
        sent.push(r.last_written().trim().to_string());
        r.reply("OK");
    }
    assert_eq!(
        sent,
        [
            "AT+CFUN=1",
            "ATZ",
            "ATE0",
            "AT+CMEE=1",
            "AT+CLIP=1",
            "AT+CMGF=0",
            "AT+CNMI=2,1,0,0,0"
        ]
    );
    assert_eq!(r.events, [Event::Up]);
    assert_eq!(r.last_written(), "AT+CREG?\r");
    r.reply_lines(&["+CREG: 0,5", "OK"]);
    assert_eq!(r.last_written(), "AT+CSQ\r");
    r.reply_lines(&["+CSQ: 17,99", "OK"]);
    assert_eq!(r.last_written(), "AT+CMGL=4\r");
    assert!(r.d.registered());
    assert_eq!(r.d.signal(), Some(17));
    r.reply("OK");
    r.pass(Duration::from_secs(10));
    assert_eq!(r.last_written(), "AT+CREG?\r", "polled again");
}

#[test]
fn an_outbound_call_rings_then_answers_as_clcc_reports_it() {
    let mut r = Rig::ready();
    r.d.handle_request(Request::Dial("5551234".into()), r.now);
    r.drain();
    assert_eq!(r.last_written(), "ATD5551234;\r");
    r.reply("OK");
    r.pass(Duration::from_millis(500));
    assert_eq!(r.last_written(), "AT+CLCC\r");
    r.reply_lines(&["+CLCC: 1,0,3,0,0,\"5551234\",129", "OK"]);
    assert_eq!(r.events, [Event::Ringing]);
    r.pass(Duration::from_millis(500));
    r.reply_lines(&["+CLCC: 1,0,0,0,0,\"5551234\",129", "OK"]);
    assert_eq!(r.events, [Event::Ringing, Event::Answered]);
    r.d.handle_request(Request::Dtmf('5'), r.now);
    r.drain();
    assert_eq!(r.last_written(), "AT+VTS=5\r");
    r.reply("OK");
    r.reply("NO CARRIER");
    assert_eq!(
        r.events.last(),
        Some(&Event::CallEnded(CallCause::NORMAL_CLEARING))
    );
    assert!(r.d.call().is_none());
}

#[test]
fn busy_no_answer_and_cme_errors_become_hangup_causes() {
    for (result, cause) in [
        ("BUSY", CallCause::USER_BUSY),
        ("NO ANSWER", CallCause::NO_ANSWER),
        ("+CME ERROR: 30", CallCause::NETWORK_OUT_OF_ORDER),
        ("ERROR", CallCause::NORMAL_TEMPORARY_FAILURE),
    ] {
        let mut r = Rig::ready();
        r.d.handle_request(Request::Dial("1".into()), r.now);
        r.drain();
        r.reply(result);
        assert_eq!(r.events, [Event::CallEnded(cause)], "{result}");
    }
    // After the dial's OK, the result code arrives on its own.
    let mut r = Rig::ready();
    r.d.handle_request(Request::Dial("1".into()), r.now);
    r.drain();
    r.reply("OK");
    r.pass(Duration::from_millis(500));
    r.reply("BUSY");
    assert_eq!(r.events, [Event::CallEnded(CallCause::USER_BUSY)]);
    r.reply("OK"); // the CLCC in flight
    assert!(r.d.call().is_none());
}

#[test]
fn ring_with_clip_announces_the_caller_and_ata_answers() {
    let mut r = Rig::ready();
    r.reply("RING");
    assert!(r.events.is_empty(), "waits for the caller id");
    r.reply("+CLIP: \"+15551234\",145,,,,0");
    assert_eq!(
        r.events,
        [Event::Incoming {
            number: "+15551234".into()
        }]
    );
    r.d.handle_request(Request::Answer, r.now);
    r.drain();
    assert_eq!(r.last_written(), "ATA\r");
    r.reply("OK");
    assert_eq!(r.d.call().unwrap().phase, Phase::Active);
    r.d.handle_request(Request::Hangup, r.now);
    r.drain();
    assert_eq!(r.last_written(), "ATH\r");
}

#[test]
fn ring_without_clip_is_announced_after_a_wait_and_ends_when_ringing_stops() {
    let mut r = Rig::ready();
    r.reply("RING");
    r.pass(Duration::from_secs(1));
    assert_eq!(r.events, [Event::Incoming { number: "".into() }]);
    r.pass(Duration::from_secs(11));
    assert_eq!(
        r.events.last(),
        Some(&Event::CallEnded(CallCause::ORIGINATOR_CANCEL))
    );
}

#[test]
fn a_concatenated_pdu_message_is_delivered_once_complete_then_deleted() {
    let mut r = Rig::ready();
    let text: String = "Ünïcødé ".chars().cycle().take(100).collect();
    let parts = pdu::encode_deliver("+4912345", &text, 9);
    assert_eq!(parts.len(), 2);
    r.reply("+CMTI: \"SM\",3");
    assert_eq!(r.last_written(), "AT+CMGR=3\r");
    r.reply_lines(&["+CMGR: 0,,40", &parts[0].hex, "OK"]);
    assert!(r.events.is_empty(), "half a message is kept back");
    r.reply("+CMTI: \"SM\",4");
    r.reply_lines(&["+CMGR: 0,,40", &parts[1].hex, "OK"]);
    assert_eq!(
        r.events,
        [Event::SmsReceived {
            from: "+4912345".into(),
            text,
            timestamp: "26/11/22,15:00:00".into()
        }]
    );
    // Deleted only after the event.
    assert_eq!(r.last_written(), "AT+CMGD=3\r");
    r.reply("OK");
    assert_eq!(r.last_written(), "AT+CMGD=4\r");
}

#[test]
fn messages_left_on_the_sim_are_listed_and_delivered_at_start() {
    let mut r = Rig::new(Settings::default());
    while r.d.link() != Link::Ready {
        r.reply("OK");
    }
    r.reply_lines(&["+CREG: 0,1", "OK", "+CSQ: 20,99", "OK"]);
    assert_eq!(r.last_written(), "AT+CMGL=4\r");
    let p = pdu::encode_deliver("777", "left over", 1);
    r.reply_lines(&["+CMGL: 7,1,,20", &p[0].hex, "OK"]);
    assert!(r.events.contains(&Event::SmsReceived {
        from: "777".into(),
        text: "left over".into(),
        timestamp: "26/11/22,15:00:00".into()
    }));
    assert_eq!(r.last_written(), "AT+CMGD=7\r");
}

#[test]
fn a_pdu_message_waits_for_the_prompt_and_reports_when_every_part_is_sent() {
    let mut r = Rig::ready();
    let text: String = "ж".repeat(100);
    r.d.handle_request(
        Request::SendSms {
            id: 5,
            to: "+15550000".into(),
            text: text.clone(),
        },
        r.now,
    );
    r.drain();
    assert!(r.last_written().starts_with("AT+CMGS="));
    r.feed("\r\n> ");
    assert!(r.last_written().ends_with('\u{1a}'));
    let first = r.last_written().trim_end_matches('\u{1a}').to_string();
    assert_eq!(pdu::decode_submit(&first).unwrap().concat, Some((1, 2, 1)));
    r.reply_lines(&["+CMGS: 1", "OK"]);
    assert!(r.events.is_empty());
    r.feed("> ");
    r.reply_lines(&["+CMGS: 2", "OK"]);
    assert_eq!(
        r.events,
        [Event::SmsSent {
            id: 5,
            result: Ok(())
        }]
    );
}

#[test]
fn a_text_mode_message_is_sent_as_text() {
    let mut r = Rig::new(Settings {
        sms_pdu: false,
        ..Settings::default()
    });
    while r.d.link() != Link::Ready {
        r.reply("OK");
    }
    r.reply_lines(&["OK", "OK", "OK"]);
    r.d.handle_request(
        Request::SendSms {
            id: 1,
            to: "123".into(),
            text: "hi there".into(),
        },
        r.now,
    );
    r.drain();
    assert_eq!(r.last_written(), "AT+CMGS=\"123\"\r");
    r.feed("> ");
    assert_eq!(r.last_written(), "hi there\u{1a}");
    r.reply_lines(&["+CMGS: 3", "OK"]);
    assert_eq!(
        r.events.last(),
        Some(&Event::SmsSent {
            id: 1,
            result: Ok(())
        })
    );
}

#[test]
fn a_modem_that_stops_answering_is_declared_down_and_its_call_ended() {
    let mut r = Rig::ready();
    r.d.handle_request(Request::Dial("1".into()), r.now);
    r.drain();
    r.reply("OK");
    r.reply_lines(&["+CLCC: 1,0,0,0,0", "OK"]);
    r.pass(Duration::from_secs(1));
    r.pass(Duration::from_secs(6));
    r.pass(Duration::from_secs(6));
    assert!(r
        .events
        .contains(&Event::CallEnded(CallCause::NETWORK_OUT_OF_ORDER)));
    assert!(matches!(r.events.last(), Some(Event::Down(_))));
    assert_eq!(r.d.link(), Link::Closed);
}

#[test]
fn garbled_and_unexpected_lines_are_skipped() {
    let mut r = Rig::ready();
    r.d.handle_bytes(
        b"\r\n\xff\xfe garbage \x01\r\nOK\r\n+WHATEVER: 1\r\n",
        r.now,
    );
    r.drain();
    assert!(r.events.is_empty());
    assert!(r.written.is_empty());
    r.reply("RING");
    r.reply("+CLIP: \"1\",129");
    assert_eq!(r.events, [Event::Incoming { number: "1".into() }]);
}

#[test]
fn closing_the_port_ends_the_call_and_fails_queued_messages() {
    let mut r = Rig::ready();
    r.d.handle_request(Request::Dial("1".into()), r.now);
    r.d.handle_request(
        Request::SendSms {
            id: 9,
            to: "1".into(),
            text: "x".into(),
        },
        r.now,
    );
    r.d.handle_closed("port closed", r.now);
    r.drain();
    assert_eq!(
        r.events[0],
        Event::CallEnded(CallCause::NETWORK_OUT_OF_ORDER)
    );
    assert!(matches!(
        r.events[1],
        Event::SmsSent {
            id: 9,
            result: Err(_)
        }
    ));
    assert!(matches!(r.events[2], Event::Down(_)));
}

#[test]
fn a_message_read_twice_before_its_delete_is_delivered_once() {
    let mut r = Rig::ready();
    let p = pdu::encode_deliver("777", "once", 1);
    // A stale indication and a fresh one both name slot 1.
    r.reply("+CMTI: \"SM\",1");
    r.reply("+CMTI: \"SM\",1");
    r.reply_lines(&["+CMGR: 0,,20", &p[0].hex, "OK"]);
    assert_eq!(
        r.last_written(),
        "AT+CMGR=1\r",
        "the second read goes first"
    );
    r.reply_lines(&["+CMGR: 1,,20", &p[0].hex, "OK"]);
    assert_eq!(r.last_written(), "AT+CMGD=1\r");
    let delivered = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::SmsReceived { .. }))
        .count();
    assert_eq!(delivered, 1);
}

#[test]
fn dtmf_reported_by_the_modem_becomes_a_digit_event() {
    let mut r = Rig::ready();
    r.reply("+DTMF: 5");
    r.reply("^DTMF:#");
    assert_eq!(r.events, [Event::Dtmf('5'), Event::Dtmf('#')]);
}

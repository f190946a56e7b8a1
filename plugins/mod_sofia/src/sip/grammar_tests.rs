//! A table of messages written from RFC 3261's grammar (§25): valid ones
//! that must parse to the values the grammar gives, and invalid ones that
//! must be refused with the status a UAS answers (400 naming the header,
//! 505 for a version). Each case changes one thing in a plain OPTIONS.

use crate::sip::headers::{NameAddr, Uri, Via};
use crate::sip::message::{error_response, frame, Message, ParseError};

const BASE: &str = "OPTIONS sip:user@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP host.example.com:5060;branch=z9hG4bKtable1\r\n\
Max-Forwards: 70\r\n\
From: \"Caller\" <sip:caller@example.net>;tag=ab12\r\n\
To: <sip:user@example.com>\r\n\
Call-ID: table-1@host.example.com\r\n\
CSeq: 9 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

/// BASE with the line starting `line` replaced by `with` (several lines
/// allowed), or appended before the blank line when `line` is empty.
fn with(line: &str, with: &str) -> String {
    if line.is_empty() {
        return BASE.replace(
            "Content-Length: 0\r\n",
            &format!("{with}\r\nContent-Length: 0\r\n"),
        );
    }
    let mut out = String::new();
    let mut done = false;
    for l in BASE.split_inclusive("\r\n") {
        if !done && l.starts_with(line) {
            done = true;
            if !with.is_empty() {
                out.push_str(with);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(l);
        }
    }
    assert!(done, "no line starts with {line:?}");
    out
}

fn ok(text: &str) -> Message {
    let m = Message::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("valid message refused ({e}):\n{text}"));
    let again = Message::parse(&m.to_bytes())
        .unwrap_or_else(|e| panic!("written message refused ({e}):\n{m}"));
    let without_length = |m: &Message| {
        let mut h = m.headers.clone();
        h.remove("Content-Length");
        h
    };
    assert_eq!(
        without_length(&again),
        without_length(&m),
        "written form differs:\n{m}"
    );
    m
}

fn na(m: &Message, name: &str) -> NameAddr {
    NameAddr::parse(m.headers.get(name).unwrap()).unwrap()
}

#[test]
fn valid_messages_parse_to_what_the_grammar_says() {
    // sent-protocol and sent-by with linear white space (SLASH, COLON, SEMI, EQUAL).
    let m = ok(&with(
        "Via:",
        "Via: SIP / 2.0 / UDP host.example.com : 5070 ; branch = z9hG4bKlws ;rport",
    ));
    let v = Via::parse(m.headers.get("Via").unwrap()).unwrap();
    assert_eq!((v.transport.as_str(), v.port), ("UDP", Some(5070)));
    assert_eq!(v.branch.as_deref(), Some("z9hG4bKlws"));
    assert_eq!(v.rport, Some(None));

    // Folding: a header continued on lines starting with SP or HTAB.
    let m = ok(&with("", "Subject: first\r\n  second\r\n\tthird"));
    assert_eq!(m.headers.get("Subject"), Some("first second third"));

    // '?' and ';' in the user part: '@' ends userinfo, not '?'.
    let m = ok(&with("To:", "To: <sip:us?er@example.com>"));
    let to = na(&m, "To");
    assert_eq!(to.uri.user.as_deref(), Some("us?er"));
    assert_eq!(to.uri.host, "example.com");
    assert_eq!(to.uri.headers, None);
    let m = ok(&with(
        "To:",
        "To: <sip:user;par=u%40example.net@example.com;lr?subject=x>",
    ));
    let to = na(&m, "To");
    assert_eq!(to.uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(to.uri.param("lr"), Some(""));
    assert_eq!(to.uri.headers.as_deref(), Some("subject=x"));
    // Escapes stay as sent.
    let m = ok(&with(
        "OPTIONS",
        "OPTIONS sip:sips%3Auser%40example.com@example.net SIP/2.0",
    ));
    let ruri = Uri::parse(m.uri().unwrap()).unwrap();
    assert_eq!(ruri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(ruri.host, "example.net");

    // Display names: tokens with LWS, none before '<', quoted with
    // quoted-pairs, '<' and ',' inside quotes.
    for (from, display) in [
        (
            "From: Caller  Two <sip:c@example.net>;tag=1",
            Some("Caller  Two"),
        ),
        ("From: caller<sip:c@example.net>;tag=1", Some("caller")),
        (
            "From: \"\\\"Quoted\\\" \\\\ Name\" <sip:c@example.net>;tag=1",
            Some("\"Quoted\" \\ Name"),
        ),
        (
            "From: \"a<b>, c\"<sip:c@example.net> ; tag = 1",
            Some("a<b>, c"),
        ),
        ("From: sip:c@example.net;tag=1", None),
        ("f: <sip:c@example.net>;tag=\"1\"", None),
    ] {
        let m = ok(&with("From:", from));
        let f = na(&m, "From");
        assert_eq!(f.display.as_deref(), display, "{from}");
        assert_eq!(f.uri.host, "example.net", "{from}");
        assert_eq!(f.tag(), Some("1"), "{from}");
    }

    // Any URI scheme in From and To.
    let m = ok(&with("From:", "From: <urn:service:sos>;tag=9"));
    assert_eq!(na(&m, "From").uri.scheme, "urn");
    let m = ok(&with("To:", "To: \"Desk\" <tel:+1-555-0100>"));
    assert_eq!(na(&m, "To").uri.opaque.as_deref(), Some("+1-555-0100"));

    // Comma-joined values, with commas inside quotes and brackets.
    let m = ok(&with(
        "Via:",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa ,SIP/2.0/TCP b.example.com;branch=z9hG4bKb\r\n\
v: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKc;received=2001:db8::9:255",
    ));
    assert_eq!(m.headers.get_all("Via").count(), 3);
    let m = ok(&with(
        "",
        "Contact: \"Desk, left\" <sip:d@example.com;transport=tcp>;expires=60, <sip:e@example.com>;q=0.5",
    ));
    let contacts: Vec<_> = m.headers.get_all("Contact").collect();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        NameAddr::parse(contacts[0]).unwrap().display.as_deref(),
        Some("Desk, left")
    );

    // Route sets, comma-joined and on separate lines.
    let m = ok(&with(
        "",
        "Record-Route: <sip:p1.example.com;lr>, \"Proxy, two\" <sip:p2.example.com;lr>;x=1\r\nRoute: <sip:p3.example.com;lr>",
    ));
    assert_eq!(m.headers.get_all("Record-Route").count(), 2);
    assert_eq!(m.headers.get("Route"), Some("<sip:p3.example.com;lr>"));

    // Compact forms and names in any case; white space around the colon.
    let text = "OPTIONS sip:user@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP h.example.com;branch=z9hG4bKcompact\r\n\
MAX-FORWARDS   :\t70\r\n\
f: <sip:c@example.net>;tag=1\r\n\
t: <sip:user@example.com>\r\n\
i:compact-1\r\n\
cSeQ: 9 OPTIONS\r\n\
l: 0\r\n\r\n";
    let m = ok(text);
    assert_eq!(m.call_id(), "compact-1");
    assert_eq!(m.headers.get("Max-Forwards"), Some("70"));
    assert_eq!(m.cseq(), Some((9, "OPTIONS")));

    // An extension method is a token; Call-ID words have many characters.
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    let text = BASE
        .replace("OPTIONS sip", &format!("{method} sip"))
        .replace("9 OPTIONS", &format!("9 {method}"));
    assert_eq!(ok(&text).method(), method);
    ok(&with(
        "Call-ID:",
        "Call-ID: a(b)<c>:d\\e\"f/g[h]?i{j}@host.example.com",
    ));

    // UTF-8 in a header value; an unknown header.
    ok(&with("", "X-Note: värde ✓"));

    // UDP: no Content-Length takes the rest; a shorter one drops the tail.
    let m = ok(&format!("{}hello", with("Content-Length:", "")));
    assert_eq!(m.body, b"hello");
    let m = Message::parse(format!("{}hello", with("Content-Length:", "l: 3")).as_bytes()).unwrap();
    assert_eq!(m.body, b"hel");
}

#[test]
fn invalid_messages_are_refused_with_the_status_a_uas_answers() {
    let cases: Vec<(String, u16, &str)> = vec![
        // Empty parameters and list elements.
        (
            with(
                "Via:",
                "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;;rport",
            ),
            400,
            "Bad Via Header",
        ),
        (
            with("Via:", "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;"),
            400,
            "Bad Via Header",
        ),
        (
            with(
                "Via:",
                "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, ,SIP/2.0/UDP b.example.com",
            ),
            400,
            "Bad Via Header",
        ),
        (
            with("Via:", "Via: SIP/2.0/UDP h.example.com;branch="),
            400,
            "Bad Via Header",
        ),
        (
            with(
                "Via:",
                "Via: SIP/2.0/UDP h.example.com:+5060;branch=z9hG4bK1",
            ),
            400,
            "Bad Via Header",
        ),
        (
            with(
                "Via:",
                "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;received=not-an-ip",
            ),
            400,
            "Bad Via Header",
        ),
        (
            with("", "Contact: <sip:c@example.com>;;expires=1"),
            400,
            "Bad Contact Header",
        ),
        (
            with("", "Contact: <sip:c@example.com>,"),
            400,
            "Bad Contact Header",
        ),
        (
            with("", "Contact: <sip:c@example.com>;expires="),
            400,
            "Bad Contact Header",
        ),
        (
            with("", "Record-Route: sip:p1.example.com;lr"),
            400,
            "Bad Record-Route Header",
        ),
        (
            with("", "Route: <sip:p1.example.com;lr>,"),
            400,
            "Bad Route Header",
        ),
        // A single-valued header twice, on two lines or comma-joined.
        (
            with("", "Call-ID: second@example.com"),
            400,
            "Bad Call-ID Header",
        ),
        (with("", "CSeq: 10 OPTIONS"), 400, "Bad CSeq Header"),
        (
            with("", "f: <sip:x@example.net>;tag=2"),
            400,
            "Bad From Header",
        ),
        (
            with("To:", "To: <sip:user@example.com>, <sip:other@example.com>"),
            400,
            "Bad To Header",
        ),
        (with("", "Max-Forwards: 70"), 400, "Bad Max-Forwards Header"),
        (with("", "l: 0"), 400, "Bad Content-Length Header"),
        // Content-Length: digits only, one value, not past the datagram.
        (
            with("Content-Length:", "Content-Length: 0\r\nContent-Length: 2"),
            400,
            "Bad Content-Length Header",
        ),
        (
            with("Content-Length:", "Content-Length: -1"),
            400,
            "Bad Content-Length Header",
        ),
        (
            with("Content-Length:", "Content-Length: +0"),
            400,
            "Bad Content-Length Header",
        ),
        (
            with("Content-Length:", "Content-Length: 99999999999999999999999"),
            400,
            "Bad Content-Length Header",
        ),
        (
            with("Content-Length:", "Content-Length: 10"),
            400,
            "Bad Content-Length Header",
        ),
        // Numbers.
        (with("CSeq:", "CSeq: +9 OPTIONS"), 400, "Bad CSeq Header"),
        (
            with("CSeq:", "CSeq: 2147483648 OPTIONS"),
            400,
            "Bad CSeq Header",
        ),
        (with("CSeq:", "CSeq: 9OPTIONS"), 400, "Bad CSeq Header"),
        (with("CSeq:", "CSeq: 9 INVITE"), 400, "Bad CSeq Header"),
        (
            with("Max-Forwards:", "Max-Forwards: +70"),
            400,
            "Bad Max-Forwards Header",
        ),
        (
            with("Max-Forwards:", "Max-Forwards: 256"),
            400,
            "Bad Max-Forwards Header",
        ),
        // name-addr and URIs.
        (
            with("From:", "From: \"Caller <sip:c@example.net>;tag=1"),
            400,
            "Bad From Header",
        ),
        (
            with("From:", "From: Bob (Desk) <sip:c@example.net>;tag=1"),
            400,
            "Bad From Header",
        ),
        (
            with("From:", "From: <sip:c@example.net>;tag=1 trailing"),
            400,
            "Bad From Header",
        ),
        (
            with("To:", "To: <sip:user@example.com"),
            400,
            "Bad To Header",
        ),
        (
            with("To:", "To: <sip:a@b@example.com>"),
            400,
            "Bad To Header",
        ),
        (
            with("To:", "To: <sip:us%zzer@example.com>"),
            400,
            "Bad To Header",
        ),
        (
            with("To:", "To: <sip:user@example.com;lr=>"),
            400,
            "Bad To Header",
        ),
        (
            with("To:", "To: <sip:user@exa mple.com>"),
            400,
            "Bad To Header",
        ),
        (
            with("Call-ID:", "Call-ID: two words"),
            400,
            "Bad Call-ID Header",
        ),
        // Missing headers.
        (with("Call-ID:", ""), 400, "Missing Call-ID Header"),
        (with("CSeq:", ""), 400, "Missing CSeq Header"),
        (with("From:", ""), 400, "Missing From Header"),
        // Lines: control characters, names that are not tokens, no colon.
        (with("", "Subject: a\x1b[2Jb"), 400, "Bad Request"),
        (with("", "Subject: a\rb"), 400, "Bad Request"),
        (with("", "Max Forwards: 70"), 400, "Bad Request"),
        (with("", "NoColonHere"), 400, "Bad Request"),
        // The start line: single spaces, a URI, SIP/2.0.
        (
            with("OPTIONS", "OPTIONS  sip:user@example.com SIP/2.0"),
            400,
            "Bad Request",
        ),
        (
            with("OPTIONS", "OPTIONS sip:user@example.com SIP/2.0 "),
            400,
            "Bad Request",
        ),
        (
            with("OPTIONS", "OPTIONS <sip:user@example.com> SIP/2.0"),
            400,
            "Bad Request",
        ),
        (
            with("OPTIONS", "OPTIONS user@example.com SIP/2.0"),
            400,
            "Bad Request",
        ),
        (
            with("OPTIONS", "OPTIONS sip:user@example.com SIP/7.0"),
            505,
            "Version Not Supported",
        ),
        (
            with("OPTIONS", "OPTIONS sip:user@example.com SIP/3.0")
                .replace("SIP/2.0/UDP", "SIP/3.0/UDP"),
            505,
            "Version Not Supported",
        ),
    ];
    for (text, code, reason) in &cases {
        let e = Message::parse(text.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("invalid message accepted:\n{text}"));
        let (c, r) = e.status();
        assert_eq!((c, r.as_str()), (*code, *reason), "{e} for\n{text}");
        assert!(
            e.to_string().bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{e:?}"
        );
        let reply = error_response(text.as_bytes(), c, &r);
        if *reason == "Bad Via Header" {
            // Nothing to address an answer by.
            assert!(reply.is_none(), "{text}");
            continue;
        }
        let bytes = reply
            .unwrap_or_else(|| panic!("no {c} for\n{text}"))
            .to_bytes();
        // The answer names the request it answers: its Via, and the first
        // instance of each dialog header it has.
        let head = String::from_utf8_lossy(&bytes).to_string();
        assert!(head.starts_with(&format!("SIP/2.0 {c} {r}\r\n")), "{head}");
        assert!(head.contains("\r\nVia: SIP/"), "{head}");
        assert!(head.matches("\r\nCall-ID:").count() <= 1, "{head}");
        assert!(head.matches("\r\nCSeq:").count() <= 1, "{head}");
    }
}

#[test]
fn an_ack_a_response_or_a_request_without_a_via_gets_no_answer() {
    let ack = BASE
        .replace("OPTIONS sip", "ACK sip")
        .replace("9 OPTIONS", "9 INVITE")
        .replace("Max-Forwards: 70", "Max-Forwards: many");
    assert!(Message::parse(ack.as_bytes()).is_err());
    assert!(error_response(ack.as_bytes(), 400, "Bad Request").is_none());
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
    assert!(error_response(resp.as_bytes(), 400, "Bad Request").is_none());
    let no_via = with("Via:", "");
    assert!(matches!(
        Message::parse(no_via.as_bytes()),
        Err(ParseError::Missing("Via"))
    ));
    assert!(error_response(no_via.as_bytes(), 400, "Missing Via Header").is_none());
    // Missing dialog headers: still answered by Via alone.
    let bare = "OPTIONS sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKbare\r\n\r\n";
    let r = error_response(bare.as_bytes(), 400, "Missing From Header").unwrap();
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP/2.0/UDP h.example.com;branch=z9hG4bKbare")
    );
}

#[test]
fn content_length_frames_streams_as_it_bounds_datagrams() {
    // The same function reads it for both: two different values refuse
    // the stream (no desync), a repeated equal value frames and gets 400.
    let two = with("Content-Length:", "Content-Length: 0\r\nContent-Length: 5");
    assert!(frame(format!("{two}hello").as_bytes()).is_err());
    let same = with("Content-Length:", "Content-Length: 5\r\nl: 5");
    let buf = format!("{same}helloNEXT");
    assert_eq!(frame(buf.as_bytes()).unwrap(), Some(same.len() + 5));
    assert!(matches!(
        Message::parse(&buf.as_bytes()[..same.len() + 5]),
        Err(ParseError::Duplicate("Content-Length"))
    ));
    // A folded Content-Length frames as it parses.
    let folded = with("Content-Length:", "Content-Length:\r\n 5");
    let buf = format!("{folded}hello");
    assert_eq!(frame(buf.as_bytes()).unwrap(), Some(buf.len()));
    assert_eq!(Message::parse(buf.as_bytes()).unwrap().body, b"hello");
    // A head whose body has not arrived waits.
    let short = with("Content-Length:", "Content-Length: 5");
    assert_eq!(frame(format!("{short}he").as_bytes()).unwrap(), None);
}

#[test]
fn the_answer_to_a_duplicated_header_carries_one_of_each() {
    let text = with("", "Call-ID: second@example.com\r\nCSeq: 10 OPTIONS");
    let e = Message::parse(text.as_bytes()).unwrap_err();
    let (c, r) = e.status();
    let reply = error_response(text.as_bytes(), c, &r).unwrap();
    assert_eq!(reply.headers.get_all("Call-ID").count(), 1);
    assert_eq!(
        reply.headers.get_all("CSeq").collect::<Vec<_>>(),
        ["9 OPTIONS"]
    );
    assert_eq!(
        reply.headers.get("Call-ID"),
        Some("table-1@host.example.com")
    );
}

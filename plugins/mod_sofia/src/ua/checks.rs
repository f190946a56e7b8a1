//! The checks RFC 3261 §8.2 has a UAS make on every request before it does
//! anything else — authentication included — in the RFC's order: the
//! method (405 for one we know but do not serve, 501 for one we do not
//! know, both with Allow), the Request-URI's scheme (416), Require and
//! Proxy-Require (420 with Unsupported), the body's Content-Encoding,
//! Content-Type and Content-Language (415 with Accept, Accept-Encoding and
//! Accept-Language), and Accept against the body our answer would carry
//! (406). A pure function of the request; an ACK never comes here, since
//! it is never answered.

use crate::sip::headers::Uri;
use crate::sip::message::Message;

/// The methods we serve.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, REGISTER, UPDATE";

/// Methods the SIP specifications define that we do not serve (405); any
/// other method is one we do not know (501).
const KNOWN_ELSEWHERE: [&str; 5] = ["PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "PUBLISH"];

/// Option tags we support in Require (none: no extension is implemented).
const SUPPORTED: [&str; 0] = [];

/// The only content coding we read.
const ENCODINGS: &str = "identity";
/// What our answers to an offer carry, and the language tag we name.
const SDP: &str = "application/sdp";
const LANGUAGES: &str = "en";

/// A request refused by a check: the status and the headers that say what
/// we would have taken.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(code: u16, reason: &'static str) -> Refusal {
        Refusal {
            code,
            reason,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Refusal {
        self.headers.push((name, value.into()));
        self
    }
}

/// The comma-separated elements of every `name` header, without their
/// parameters, trimmed and non-empty.
fn elements<'a>(msg: &'a Message, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    msg.headers.get_all(name).flat_map(|v| {
        v.split(',')
            .map(|e| e.split(';').next().unwrap_or("").trim())
            .filter(|e| !e.is_empty())
    })
}

/// Body types a method's handler reads; `None`: any (passed on as is, or
/// not read).
fn body_types(method: &str) -> Option<&'static [&'static str]> {
    match method {
        "INVITE" | "UPDATE" => Some(&[SDP]),
        _ => None,
    }
}

/// `language-tag = primary-tag *( "-" subtag )`, each 1*8ALPHA.
fn is_language(tag: &str) -> bool {
    tag == "*"
        || tag
            .split('-')
            .all(|t| (1..=8).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_alphabetic()))
}

/// The media range `range` (`type/subtype`, `type/*`, `*/*`) takes `mime`.
fn accepts(range: &str, mime: &str) -> bool {
    let (rt, rs) = range.split_once('/').unwrap_or((range, ""));
    let (mt, ms) = mime.split_once('/').unwrap_or((mime, ""));
    (rt == "*" || rt.eq_ignore_ascii_case(mt)) && (rs == "*" || rs.eq_ignore_ascii_case(ms))
}

/// The §8.2 checks, in order; `Ok` when the request may go on.
pub fn check(msg: &Message) -> Result<(), Refusal> {
    let method = msg.method();
    // §8.2.1: the method.
    if !ALLOW.split(", ").any(|m| m == method) {
        let r = if KNOWN_ELSEWHERE.contains(&method) {
            Refusal::new(405, "Method Not Allowed")
        } else {
            Refusal::new(501, "Not Implemented")
        };
        return Err(r.with("Allow", ALLOW));
    }
    // §8.2.2.1: the Request-URI's scheme.
    let uri = msg.uri().unwrap_or("");
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Err(Refusal::new(416, "Unsupported URI Scheme"));
    }
    if Uri::parse(uri).is_none() {
        return Err(Refusal::new(400, "Bad Request-URI"));
    }
    // §8.2.2.3: extensions the client requires (not for CANCEL, §9.1).
    if method != "CANCEL" {
        let unsupported: Vec<&str> = elements(msg, "Require")
            .chain(elements(msg, "Proxy-Require"))
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Err(
                Refusal::new(420, "Bad Extension").with("Unsupported", unsupported.join(", "))
            );
        }
    }
    // §8.2.3: the body we would have to read.
    if !msg.body.is_empty() {
        let unsupported = || {
            Refusal::new(415, "Unsupported Media Type")
                .with(
                    "Accept",
                    body_types(method)
                        .map(|t| t.join(", "))
                        .unwrap_or_else(|| "*/*".into()),
                )
                .with("Accept-Encoding", ENCODINGS)
                .with("Accept-Language", LANGUAGES)
        };
        if elements(msg, "Content-Encoding").any(|c| !c.eq_ignore_ascii_case("identity")) {
            return Err(unsupported());
        }
        if let Some(types) = body_types(method) {
            let ctype = msg.headers.get("Content-Type").unwrap_or("");
            let mime = ctype.split(';').next().unwrap_or("").trim();
            if !types.iter().any(|t| t.eq_ignore_ascii_case(mime)) {
                return Err(unsupported());
            }
        }
        if !elements(msg, "Content-Language").all(is_language) {
            return Err(unsupported());
        }
    }
    // §8.2.6 / §21.4.7: our answer to an INVITE carries SDP; an Accept
    // that excludes it (an empty one excludes everything) gets 406.
    if method == "INVITE" && msg.headers.get("Accept").is_some() {
        let takes_sdp = msg
            .headers
            .get_all("Accept")
            .flat_map(|v| v.split(','))
            .any(|e| {
                let mut parts = e.split(';');
                let range = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("q")
                            && v.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                    })
                });
                !range.is_empty() && !refused && accepts(range, SDP)
            });
        if !takes_sdp {
            return Err(Refusal::new(406, "Not Acceptable").with("Accept", SDP));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, extra: &str, body: &str) -> Message {
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKchk\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: chk-1\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn code(m: &Message) -> Option<u16> {
        check(m).err().map(|r| r.code)
    }

    const OFFER: &str = "v=0\r\n";

    #[test]
    fn the_method_comes_first_405_for_known_501_for_unknown_both_with_allow() {
        let r = check(&request("SUBSCRIBE", "sip:b@example.com", "", "")).unwrap_err();
        assert_eq!((r.code, r.reason), (405, "Method Not Allowed"));
        assert_eq!(r.headers, [("Allow", ALLOW.to_string())]);
        // Before the scheme: an unknown method on a tel: URI is still 501.
        let r = check(&request("FOO", "tel:+15550100", "Require: x", "")).unwrap_err();
        assert_eq!((r.code, r.reason), (501, "Not Implemented"));
        assert_eq!(r.headers[0].0, "Allow");
        for m in [
            "INVITE", "OPTIONS", "BYE", "CANCEL", "REGISTER", "INFO", "MESSAGE", "UPDATE",
        ] {
            assert_eq!(code(&request(m, "sip:b@example.com", "", "")), None, "{m}");
        }
    }

    #[test]
    fn the_request_uri_scheme_then_require_then_the_body() {
        assert_eq!(
            code(&request("OPTIONS", "tel:+15550100", "", "")),
            Some(416)
        );
        assert_eq!(
            code(&request("OPTIONS", "urn:service:sos", "Require: foo", "")),
            Some(416)
        );
        assert_eq!(code(&request("OPTIONS", "sip:b@ex%zz", "", "")), Some(400));
        let r = check(&request(
            "INVITE",
            "SIP:b@example.com",
            "Require: 100rel, timer\r\nProxy-Require: sec-agree\r\nContent-Type: text/plain\r\n",
            OFFER,
        ))
        .unwrap_err();
        assert_eq!((r.code, r.reason), (420, "Bad Extension"));
        assert_eq!(
            r.headers,
            [("Unsupported", "100rel, timer, sec-agree".to_string())]
        );
        // CANCEL carries no Require to honour.
        assert_eq!(
            code(&request(
                "CANCEL",
                "sip:b@example.com",
                "Require: 100rel\r\n",
                ""
            )),
            None
        );
    }

    #[test]
    fn a_body_we_cannot_read_gets_415_naming_what_we_take() {
        let r = check(&request(
            "INVITE",
            "sip:b@example.com",
            "Content-Type: application/unknownformat\r\n",
            OFFER,
        ))
        .unwrap_err();
        assert_eq!((r.code, r.reason), (415, "Unsupported Media Type"));
        assert_eq!(
            r.headers,
            [
                ("Accept", "application/sdp".to_string()),
                ("Accept-Encoding", "identity".to_string()),
                ("Accept-Language", "en".to_string()),
            ]
        );
        let sdp = "Content-Type: Application/SDP;charset=utf-8\r\n";
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", sdp, OFFER)),
            None
        );
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", "", OFFER)),
            Some(415)
        );
        let gz = format!("{sdp}Content-Encoding: gzip\r\n");
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", &gz, OFFER)),
            Some(415)
        );
        let lang = format!("{sdp}Content-Language: en-GB, fr\r\n");
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", &lang, OFFER)),
            None
        );
        let lang = format!("{sdp}Content-Language: not_a_language\r\n");
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", &lang, OFFER)),
            Some(415)
        );
        // A MESSAGE's body is passed on as it is: any type.
        let text = "Content-Type: text/x-anything\r\n";
        assert_eq!(
            code(&request("MESSAGE", "sip:b@example.com", text, "hi")),
            None
        );
        // No body, nothing to read.
        assert_eq!(
            code(&request(
                "INVITE",
                "sip:b@example.com",
                "Content-Type: text/plain\r\n",
                ""
            )),
            None
        );
    }

    #[test]
    fn an_accept_without_sdp_gets_406_for_an_invite() {
        let sdp = "Content-Type: application/sdp\r\n";
        for (accept, want) in [
            ("Accept: text/nobodyknowsthis\r\n", Some(406)),
            ("Accept: application/sdp;q=0\r\n", Some(406)),
            ("Accept:\r\n", Some(406)),
            ("Accept: application/*\r\n", None),
            ("Accept: text/html, */*;q=0.1\r\n", None),
            ("Accept: application/SDP\r\n", None),
            ("", None),
        ] {
            let extra = format!("{sdp}{accept}");
            assert_eq!(
                code(&request("INVITE", "sip:b@example.com", &extra, OFFER)),
                want,
                "{accept}"
            );
        }
        // OPTIONS is answered without a body: Accept does not matter.
        assert_eq!(
            code(&request(
                "OPTIONS",
                "sip:b@example.com",
                "Accept: text/html\r\n",
                ""
            )),
            None
        );
    }
}

//! A structure-aware generator of SIP requests, for the fuzzer (target
//! `sip_grammar`) and the unit tests: input bytes choose among the
//! productions of RFC 3261's grammar (§25) — linear white space and
//! folding where it is allowed, compact and odd-case names, quoted and
//! token display names, userinfo with `?`, `;` and escapes, parameters,
//! comma-joined lists, unusual tokens — and at most one flaw the grammar
//! forbids. A message without a flaw must parse, to the values it was
//! built from; one with a flaw must be refused.
//!
//! Compiled for tests and under `cargo fuzz` (`--cfg fuzzing`) only.

/// Choices read from fuzzer bytes; when they run out every choice is the
/// first (plain) one.
pub struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data, pos: 0 }
    }

    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as usize % n
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len())]
    }

    /// True one time in `n` (never once the bytes run out).
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 1 % n.max(1)
    }
}

/// A generated request and what it was built from.
#[derive(Debug)]
pub struct Generated {
    pub text: Vec<u8>,
    /// The grammar rule it breaks, if any.
    pub flaw: Option<&'static str>,
    pub call_id: String,
    pub cseq: u32,
    pub method: String,
    pub vias: usize,
    pub body: Vec<u8>,
}

/// Optional white space (SWS), folding included.
fn sws(c: &mut Choices) -> &'static str {
    c.pick(&["", "", " ", "\t", "  ", " \r\n ", "\r\n\t"])
}

/// Required white space (LWS).
fn lws(c: &mut Choices) -> &'static str {
    c.pick(&[" ", "\t", "   ", " \r\n  "])
}

fn token(c: &mut Choices) -> &'static str {
    c.pick(&["x", "abc", "a.b-c!d%e*f_g+h`i'j~k", "Z9", "tcp"])
}

fn host(c: &mut Choices) -> &'static str {
    c.pick(&[
        "example.com",
        "192.0.2.1",
        "[2001:db8::1]",
        "h-1.example.net",
        "a",
    ])
}

fn port(c: &mut Choices) -> &'static str {
    c.pick(&["", ":5060", ":1", ":65535"])
}

/// Header parameters: `*( SEMI generic-param )`.
fn params(c: &mut Choices, out: &mut String) {
    for _ in 0..c.below(3) {
        out.push_str(sws(c));
        out.push(';');
        out.push_str(sws(c));
        out.push_str(token(c));
        if c.one_in(2) {
            out.push_str(sws(c));
            out.push('=');
            out.push_str(sws(c));
            out.push_str(c.pick(&["v", "192.0.2.9", "\"a b\\\"c;,\"", "[2001:db8::2]", "x.y"]));
        }
    }
}

/// A SIP URI; `plain` keeps it usable as an addr-spec (no `;`, `?`, `,`).
fn uri(c: &mut Choices, plain: bool) -> String {
    let mut u = String::from(c.pick(&["sip:", "SIP:", "sips:"]));
    if c.below(4) != 0 {
        let user = if plain {
            c.pick(&["alice", "+1-555-0100", "a%20b", "x"])
        } else {
            c.pick(&[
                "alice",
                "us?er",
                "a;b=c",
                "sips%3Auser%40example.com",
                "&=+$,;?/",
                "+1-555",
            ])
        };
        u.push_str(user);
        if c.one_in(4) {
            // A ',' would end an addr-spec in a list (§20: use <>).
            u.push_str(if plain {
                ":pa%20ss&=+$"
            } else {
                ":pa%20ss&=+$,"
            });
        }
        u.push('@');
    }
    u.push_str(host(c));
    u.push_str(port(c));
    if !plain {
        for _ in 0..c.below(3) {
            u.push_str(c.pick(&[
                ";transport=tcp",
                ";lr",
                ";maddr=192.0.2.3",
                ";x-y=%41[]/:&+$",
            ]));
        }
        if c.one_in(3) {
            u.push_str(c.pick(&["?subject=hi", "?a=b&c=%20", "?h="]));
        }
    }
    u
}

fn name_addr(c: &mut Choices) -> String {
    let mut v = String::new();
    match c.below(4) {
        0 => {
            v.push('<');
            v.push_str(&uri(c, false));
            v.push('>');
        }
        1 => {
            v.push_str(c.pick(&["Alice", "Alice  Smith", "a.b-c", "x"]));
            v.push_str(sws(c));
            v.push('<');
            v.push_str(&uri(c, false));
            v.push('>');
        }
        2 => {
            v.push_str(c.pick(&["\"\"", "\"Bob\"", "\"\\\"q\\\" \\\\ <b>, c;d\"", "\"ü ✓\""]));
            v.push_str(sws(c));
            v.push('<');
            v.push_str(&uri(c, false));
            v.push('>');
        }
        _ => v.push_str(&uri(c, true)),
    }
    v
}

fn header_name(c: &mut Choices, long: &'static str, compact: Option<&'static str>) -> String {
    match (c.below(4), compact) {
        (1, Some(short)) => short.to_string(),
        (2, _) => long.to_ascii_uppercase(),
        (3, _) => long.to_ascii_lowercase(),
        _ => long.to_string(),
    }
}

fn via(c: &mut Choices, branch: usize) -> String {
    let mut v = String::from(c.pick(&["SIP", "sip"]));
    for part in ["2.0", c.pick(&["UDP", "tcp", "TLS", "SCTP", "x-tok"])] {
        v.push_str(sws(c));
        v.push('/');
        v.push_str(sws(c));
        v.push_str(part);
    }
    v.push_str(lws(c));
    v.push_str(host(c));
    if c.one_in(2) {
        v.push_str(sws(c));
        v.push(':');
        v.push_str(sws(c));
        v.push_str(c.pick(&["5060", "1", "65535"]));
    }
    v.push_str(&format!(";branch=z9hG4bK-{branch}"));
    for _ in 0..c.below(3) {
        v.push_str(c.pick(&[
            ";rport",
            ";rport=1234",
            ";received=192.0.2.2",
            ";received=2001:db8::9",
            ";ttl=1",
            ";maddr=a.example",
            " ; ext = \"quoted;,\"",
        ]));
    }
    v
}

/// One request, from `data`.
pub fn request(data: &[u8]) -> Generated {
    let c = &mut Choices::new(data);
    let flaw = if c.one_in(3) {
        Some(c.pick(&[
            "duplicate Call-ID",
            "duplicate CSeq",
            "empty Via parameter",
            "empty list element",
            "control character",
            "Content-Length past the body",
            "signed Content-Length",
            "SIP/3.0",
            "unterminated quote",
            "CSeq method mismatch",
            "Max-Forwards over 255",
            "missing To",
            "bad escape",
            "two spaces in the request line",
        ]))
    } else {
        None
    };
    let eol = if c.one_in(4) { "\n" } else { "\r\n" };
    let method = c
        .pick(&["INVITE", "OPTIONS", "MESSAGE", "!ext.Method~'`"])
        .to_string();
    let mut lines: Vec<String> = Vec::new();
    let sp = if flaw == Some("two spaces in the request line") {
        "  "
    } else {
        " "
    };
    let version = if flaw == Some("SIP/3.0") {
        "SIP/3.0"
    } else {
        c.pick(&["SIP/2.0", "sip/2.0"])
    };
    lines.push(format!("{method}{sp}{}{sp}{version}", uri(c, false)));
    let colon = |c: &mut Choices| format!("{}:{}", c.pick(&["", " ", "\t "]), sws(c));
    // Vias: one to three, on one line or several.
    let n = 1 + c.below(3);
    let mut vias: Vec<String> = (0..n).map(|i| via(c, i)).collect();
    if flaw == Some("empty Via parameter") {
        vias[0].push_str(";;rport");
    }
    if flaw == Some("empty list element") {
        vias.push(via(c, n));
    }
    if c.one_in(2) || flaw == Some("empty list element") {
        let sep = if flaw == Some("empty list element") {
            ", ,"
        } else {
            ","
        };
        let joined = vias.join(&format!("{}{sep}{}", sws(c), sws(c)));
        lines.push(format!(
            "{}{}{joined}",
            header_name(c, "Via", Some("v")),
            colon(c)
        ));
    } else {
        for v in &vias {
            lines.push(format!(
                "{}{}{v}",
                header_name(c, "Via", Some("v")),
                colon(c)
            ));
        }
    }
    let mf = if flaw == Some("Max-Forwards over 255") {
        "256"
    } else {
        c.pick(&["70", "0", "255", "070"])
    };
    lines.push(format!(
        "{}{}{mf}",
        header_name(c, "Max-Forwards", None),
        colon(c)
    ));
    let mut from = if flaw == Some("unterminated quote") {
        "\"Unclosed <sip:a@example.com>".to_string()
    } else {
        name_addr(c)
    };
    if flaw == Some("bad escape") {
        from = "<sip:a%G1@example.com>".to_string();
    }
    from.push_str(";tag=f1");
    params(c, &mut from);
    lines.push(format!(
        "{}{}{from}",
        header_name(c, "From", Some("f")),
        colon(c)
    ));
    if flaw != Some("missing To") {
        let mut to = name_addr(c);
        params(c, &mut to);
        lines.push(format!(
            "{}{}{to}",
            header_name(c, "To", Some("t")),
            colon(c)
        ));
    }
    let call_id = match c.below(3) {
        0 => "gen-1@example.com".to_string(),
        1 => "a(b)<c>:d\\e\"f/g[h]?i{j}".to_string(),
        _ => "x".to_string(),
    };
    lines.push(format!(
        "{}{}{call_id}",
        header_name(c, "Call-ID", Some("i")),
        colon(c)
    ));
    if flaw == Some("duplicate Call-ID") {
        lines.push("Call-ID: other".into());
    }
    let cseq = c.pick(&[1u32, 0, 2_147_483_647, 42]);
    let cseq_method = if flaw == Some("CSeq method mismatch") {
        "BYE"
    } else {
        &method
    };
    lines.push(format!(
        "{}{}{cseq}{}{cseq_method}",
        header_name(c, "CSeq", None),
        colon(c),
        lws(c)
    ));
    if flaw == Some("duplicate CSeq") {
        lines.push(format!("CSeq: {cseq} {method}"));
    }
    if c.one_in(2) {
        let contacts: Vec<String> = (0..1 + c.below(2))
            .map(|_| {
                let mut m = name_addr(c);
                params(c, &mut m);
                m
            })
            .collect();
        let joined = contacts.join(&format!("{},{}", sws(c), sws(c)));
        lines.push(format!(
            "{}{}{joined}",
            header_name(c, "Contact", Some("m")),
            colon(c)
        ));
    }
    for _ in 0..c.below(3) {
        let h = c.pick(&[
            "Subject: a\r\n folded\r\n\tsubject",
            "X-Anything: värde ✓ <>,;\"",
            "Supported: timer, 100rel",
            "User-Agent: gen/1.0 (test)",
            "k: path",
        ]);
        lines.push(h.replace("\r\n", eol));
    }
    if flaw == Some("control character") {
        lines.push("Subject: bell\x07here".into());
    }
    let body: Vec<u8> = match c.below(3) {
        0 => Vec::new(),
        1 => b"v=0\r\n".to_vec(),
        _ => (0..c.below(40)).map(|i| i as u8).collect(),
    };
    match flaw {
        Some("Content-Length past the body") => {
            lines.push(format!("Content-Length: {}", body.len() + 1));
        }
        Some("signed Content-Length") => lines.push(format!("l: +{}", body.len())),
        _ => {
            if c.below(5) != 0 {
                let name = header_name(c, "Content-Length", Some("l"));
                lines.push(format!("{name}{}{}", colon(c), body.len()));
            }
        }
    }
    let mut text = String::new();
    for l in &lines {
        text.push_str(l);
        text.push_str(eol);
    }
    text.push_str(eol);
    let mut text = text.into_bytes();
    text.extend_from_slice(&body);
    Generated {
        text,
        flaw,
        call_id,
        cseq,
        method,
        vias: n,
        body,
    }
}

/// The property the fuzzer and the tests check on one generated request.
pub fn check(g: &Generated) {
    use crate::sip::message::{error_response, Message};
    let shown = || String::from_utf8_lossy(&g.text).into_owned();
    match (Message::parse(&g.text), g.flaw) {
        (Ok(m), None) => {
            assert_eq!(m.call_id(), g.call_id, "{}", shown());
            assert_eq!(m.cseq().map(|c| c.0), Some(g.cseq), "{}", shown());
            assert_eq!(m.method(), g.method, "{}", shown());
            assert_eq!(m.headers.get_all("Via").count(), g.vias, "{}", shown());
            assert_eq!(m.body, g.body, "{}", shown());
            let again = Message::parse(&m.to_bytes()).expect("a written message parses");
            assert_eq!(again.start, m.start);
            assert_eq!(again.body, m.body);
        }
        (Ok(_), Some(flaw)) => panic!("accepted with a flaw ({flaw}):\n{}", shown()),
        (Err(e), None) => panic!("refused ({e}):\n{}", shown()),
        (Err(e), Some(_)) => {
            let (code, reason) = e.status();
            assert!(code == 400 || code == 505, "{e}");
            let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
            assert!(printable(&e.to_string()) && printable(&reason), "{e:?}");
            if let Some(r) = error_response(&g.text, code, &reason) {
                let bytes = r.to_bytes();
                let status = bytes.split(|b| *b == b'\r').next().unwrap_or(&[]);
                assert!(
                    status.iter().all(|b| (0x20..0x7f).contains(b)),
                    "{}",
                    String::from_utf8_lossy(status)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_requests_parse_unless_they_carry_a_flaw() {
        // A fixed stream of pseudo-random inputs (xorshift): the same
        // property the fuzz target checks, on every test run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let (mut valid, mut flawed) = (0, 0);
        for _ in 0..5_000 {
            let data: Vec<u8> = (0..120)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let g = request(&data);
            check(&g);
            if g.flaw.is_some() {
                flawed += 1;
            } else {
                valid += 1;
            }
        }
        assert!(
            valid > 1_500 && flawed > 500,
            "{valid} valid, {flawed} flawed"
        );
        // No bytes at all: the plainest request, valid.
        check(&request(&[]));
    }
}

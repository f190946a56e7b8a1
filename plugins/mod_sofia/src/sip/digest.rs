//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 8760):
//! challenges, verification of credentials against a password, and the
//! client side that answers a 401/407.

use crate::sip::headers::auth_params;
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The digest algorithms we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// As written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "" | "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Hex of the hash of `s`.
    pub fn hex(self, s: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => Md5::digest(s.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(s.as_bytes()).to_vec(),
        };
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Credentials from an Authorization / Proxy-Authorization header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: String,
    pub qop: String,
    pub nc: String,
    pub cnonce: String,
    pub opaque: String,
}

impl Credentials {
    /// Parses a `Digest …` header value.
    pub fn parse(header: &str) -> Option<Credentials> {
        let (scheme, params) = auth_params(header)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for (k, v) in params {
            match k.as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "algorithm" => c.algorithm = v,
                "qop" => c.qop = v,
                "nc" => c.nc = v,
                "cnonce" => c.cnonce = v,
                "opaque" => c.opaque = v,
                _ => {}
            }
        }
        (!c.username.is_empty() && !c.response.is_empty()).then_some(c)
    }

    /// True when the response was computed with `password` (or with the
    /// stored `a1_hash`, FreeSWITCH's `a1-hash` parameter) for `method`.
    pub fn verify(&self, method: &str, password: Option<&str>, a1_hash: Option<&str>) -> bool {
        let Some(alg) = Algorithm::parse(&self.algorithm) else {
            return false;
        };
        let ha1 = match (a1_hash, password) {
            (Some(h), _) if alg == Algorithm::Md5 => h.to_ascii_lowercase(),
            (_, Some(p)) => alg.hex(&format!("{}:{}:{}", self.username, self.realm, p)),
            _ => return false,
        };
        let expected = response(
            alg,
            &ha1,
            &self.nonce,
            method,
            &self.uri,
            &self.qop,
            &self.nc,
            &self.cnonce,
        );
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[allow(clippy::too_many_arguments)]
fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: &str,
    nc: &str,
    cnonce: &str,
) -> String {
    let ha2 = alg.hex(&format!("{method}:{uri}"));
    if qop.is_empty() {
        alg.hex(&format!("{ha1}:{nonce}:{ha2}"))
    } else {
        alg.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
    }
}

/// The challenge a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`)
/// carries.
pub fn challenge_in(resp: &crate::sip::message::Message) -> Option<&str> {
    match resp.code()? {
        401 => resp.headers.get("WWW-Authenticate"),
        407 => resp.headers.get("Proxy-Authenticate"),
        _ => None,
    }
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` value.
pub fn challenge(realm: &str, nonce: &str, alg: Algorithm, stale: bool) -> String {
    format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
        alg.as_str(),
        if stale { ", stale=true" } else { "" }
    )
}

/// The client side: the Authorization value answering `challenge_header`
/// for `method uri` with `username`/`password`; `nc` counts uses of the
/// nonce.
pub fn answer(
    challenge_header: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    nc: u32,
) -> Option<String> {
    let (scheme, params) = auth_params(challenge_header)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let alg = Algorithm::parse(get("algorithm"))?;
    let realm = get("realm");
    let nonce = get("nonce");
    let offered_qop = get("qop");
    let qop = if offered_qop.split(',').any(|q| q.trim() == "auth") {
        "auth"
    } else {
        ""
    };
    let nc = format!("{nc:08x}");
    let cnonce = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let ha1 = alg.hex(&format!("{username}:{realm}:{password}"));
    let resp = response(alg, &ha1, nonce, method, uri, qop, &nc, &cnonce);
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        alg.as_str()
    );
    if !qop.is_empty() {
        out.push_str(&format!(", qop={qop}, nc={nc}, cnonce=\"{cnonce}\""));
    }
    let opaque = get("opaque");
    if !opaque.is_empty() {
        out.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_without_qop_verifies() {
        // The classic worked example: HA1 of "Mufasa:testrealm@host.com:Circle Of Life".
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "670fd8c2df070c60b045671b8b24ff02".into(),
            ..Default::default()
        };
        assert!(c.verify("GET", Some("Circle Of Life"), None));
        assert!(!c.verify("GET", Some("circle of life"), None));
    }

    #[test]
    fn our_answer_verifies_on_our_side_for_both_algorithms() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = challenge("127.0.0.1", "n0nce", alg, false);
            let auth = answer(&ch, "REGISTER", "sip:127.0.0.1", "1000", "1234", 1).unwrap();
            let c = Credentials::parse(&auth).unwrap();
            assert_eq!(c.qop, "auth");
            assert!(c.verify("REGISTER", Some("1234"), None), "{alg:?}");
            assert!(!c.verify("REGISTER", Some("12345"), None));
            assert!(!c.verify("INVITE", Some("1234"), None));
        }
    }

    #[test]
    fn an_a1_hash_stands_in_for_the_password() {
        let ch = challenge("r", "n", Algorithm::Md5, false);
        let auth = answer(&ch, "INVITE", "sip:x@r", "1000", "pw", 1).unwrap();
        let c = Credentials::parse(&auth).unwrap();
        let a1 = Algorithm::Md5.hex("1000:r:pw");
        assert!(c.verify("INVITE", None, Some(&a1)));
    }
}

//! SRTP keyed by SDES (RFC 4568) for SIP phones: the `a=crypto` suites
//! offered and answered (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32,
//! AEAD_AES_128_GCM), FreeSWITCH's `rtp_secure_media` policy
//! (`mandatory`, `optional`, `forbidden`, with suites after a colon), and a
//! leg's two SRTP contexts — ours protecting what we send, the far end's
//! checking what arrives. The cryptography is webrtc-rs' `webrtc-srtp`;
//! a packet that fails its check is dropped and counted, the call goes on.

use base64::Engine as _;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// An SDES crypto suite we carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
}

impl Suite {
    /// Every suite, strongest first (the order FreeSWITCH offers them).
    pub const ALL: [Suite; 3] = [
        Suite::AeadAes128Gcm,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    /// The name in `a=crypto`.
    pub fn as_str(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }

    /// Master key and salt lengths in bytes.
    fn lengths(self) -> (usize, usize) {
        let p = self.profile();
        (p.key_len(), p.salt_len())
    }
}

/// FreeSWITCH's `rtp_secure_media`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecureMedia {
    /// Not set: an offer with crypto is answered with crypto; we offer
    /// none.
    Default,
    /// Only SRTP: an offer without crypto is refused; offers are RTP/SAVP.
    Mandatory(Vec<Suite>),
    /// SRTP preferred: offers are RTP/AVP with `a=crypto`.
    Optional(Vec<Suite>),
    /// No SRTP: an RTP/SAVP offer is refused, crypto lines are ignored.
    Forbidden,
}

impl SecureMedia {
    /// Parses `mandatory[:SUITE[:SUITE…]]`, `optional…`, `forbidden`,
    /// `true` (mandatory) and `false` (forbidden); empty is the default.
    pub fn parse(v: &str) -> Result<SecureMedia, String> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(SecureMedia::Default);
        }
        let (mode, suites) = v.split_once(':').unwrap_or((v, ""));
        let suites: Vec<Suite> = if suites.is_empty() {
            Suite::ALL.to_vec()
        } else {
            let mut out = Vec::new();
            for s in suites.split([':', ',']) {
                out.push(
                    Suite::from_name(s)
                        .ok_or_else(|| format!("rtp_secure_media: no SRTP suite {s:?}"))?,
                );
            }
            out
        };
        match mode.to_ascii_lowercase().as_str() {
            "mandatory" | "true" => Ok(SecureMedia::Mandatory(suites)),
            "optional" => Ok(SecureMedia::Optional(suites)),
            "forbidden" | "false" => Ok(SecureMedia::Forbidden),
            _ => Err(format!(
                "rtp_secure_media {v:?} is not mandatory, optional or forbidden"
            )),
        }
    }

    fn suites(&self) -> &[Suite] {
        match self {
            SecureMedia::Mandatory(s) | SecureMedia::Optional(s) => s,
            SecureMedia::Default => &Suite::ALL,
            SecureMedia::Forbidden => &[],
        }
    }
}

/// One `a=crypto` line (RFC 4568 §9.1), the parts we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    /// Master key then salt.
    pub key: Vec<u8>,
}

impl Crypto {
    /// Parses the value of an `a=crypto` attribute; `None` for a suite we
    /// do not carry or a key of the wrong length.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut parts = value.split_whitespace();
        let tag = parts.next()?.parse().ok()?;
        let suite = Suite::from_name(parts.next()?)?;
        let params = parts.next()?;
        // The first key; lifetime and MKI after `|` are not used.
        let inline = params.split(';').next()?.strip_prefix("inline:")?;
        let b64 = inline.split('|').next()?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
            .ok()?;
        let (k, s) = suite.lengths();
        (key.len() == k + s).then_some(Crypto { tag, suite, key })
    }

    /// A fresh random key for `suite`.
    pub fn generate(tag: u32, suite: Suite) -> Crypto {
        let (k, s) = suite.lengths();
        let mut key = vec![0u8; k + s];
        if getrandom::fill(&mut key).is_err() {
            // No entropy source: uuid's generator is the fallback.
            for (b, r) in key.iter_mut().zip(
                uuid::Uuid::new_v4()
                    .as_bytes()
                    .iter()
                    .chain(uuid::Uuid::new_v4().as_bytes()),
            ) {
                *b = *r;
            }
        }
        Crypto { tag, suite, key }
    }

    /// The attribute value: `<tag> <suite> inline:<key||salt>`.
    pub fn line(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.as_str(),
            base64::engine::general_purpose::STANDARD.encode(&self.key)
        )
    }

    fn context(&self) -> Result<Context, String> {
        let (k, _) = self.suite.lengths();
        Context::new(
            &self.key[..k],
            &self.key[k..],
            self.suite.profile(),
            Some(webrtc_srtp::option::srtp_replay_protection(64)),
            Some(webrtc_srtp::option::srtcp_replay_protection(64)),
        )
        .map_err(|e| e.to_string())
    }
}

/// What an offer's crypto lines and the policy make of a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Plain RTP.
    Plain,
    /// SRTP with the far end's line chosen.
    Secure(Crypto),
    /// Refused (488): the policy and the offer do not meet.
    Refuse(&'static str),
}

/// Answers an offer (`savp`: its profile is RTP/SAVP) under `policy`.
pub fn answer(policy: &SecureMedia, savp: bool, lines: &[Crypto]) -> Answer {
    if *policy == SecureMedia::Forbidden {
        return if savp {
            Answer::Refuse("an RTP/SAVP offer under rtp_secure_media=forbidden")
        } else {
            Answer::Plain
        };
    }
    // Ours in our order of preference, among what was offered.
    let chosen = policy
        .suites()
        .iter()
        .find_map(|s| lines.iter().find(|c| c.suite == *s));
    match (chosen, policy) {
        (Some(c), _) => Answer::Secure(c.clone()),
        (None, SecureMedia::Mandatory(_)) => {
            Answer::Refuse("no usable a=crypto under rtp_secure_media=mandatory")
        }
        (None, _) if savp => Answer::Refuse("an RTP/SAVP offer with no crypto suite we carry"),
        (None, _) => Answer::Plain,
    }
}

/// The crypto lines we offer under `policy` (none: plain RTP).
pub fn offer(policy: &SecureMedia) -> Vec<Crypto> {
    match policy {
        SecureMedia::Mandatory(s) | SecureMedia::Optional(s) => s
            .iter()
            .enumerate()
            .map(|(i, s)| Crypto::generate(i as u32 + 1, *s))
            .collect(),
        _ => Vec::new(),
    }
}

/// A leg's SRTP: our context for what we send and the far end's for what
/// arrives (RTP and RTCP each).
pub struct Srtp {
    tx: Context,
    rx: Context,
    /// Packets whose authentication failed (dropped).
    pub auth_failures: u64,
}

impl Srtp {
    /// Keys from our line (`local`) and the far end's (`remote`): the
    /// suites must agree.
    pub fn new(local: &Crypto, remote: &Crypto) -> Result<Srtp, String> {
        Ok(Srtp {
            tx: local.context()?,
            rx: remote.context()?,
            auth_failures: 0,
        })
    }

    /// An RTP packet protected for sending.
    pub fn protect_rtp(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        self.tx.encrypt_rtp(p).ok().map(|b| b.to_vec())
    }

    pub fn protect_rtcp(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        self.tx.encrypt_rtcp(p).ok().map(|b| b.to_vec())
    }

    /// A received RTP packet checked and decrypted; `Err` with why it was
    /// dropped (counted).
    pub fn unprotect_rtp(&mut self, p: &[u8]) -> Result<Vec<u8>, String> {
        self.rx.decrypt_rtp(p).map(|b| b.to_vec()).map_err(|e| {
            self.auth_failures += 1;
            e.to_string()
        })
    }

    pub fn unprotect_rtcp(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        self.rx.decrypt_rtcp(p).ok().map(|b| b.to_vec())
    }
}

/// A leg's SDES state: the lines of our SDP and, once both sides' keys
/// are known, the SRTP contexts.
#[derive(Default)]
pub struct Sdes {
    /// Our `a=crypto` lines: those offered, then the one answered.
    pub local: Vec<Crypto>,
    /// Our SDP says RTP/SAVP.
    pub savp: bool,
    session: Option<Srtp>,
    /// The far end's line in use.
    remote: Option<Crypto>,
    /// The suite in use.
    suite: Option<Suite>,
    last_log: Option<Instant>,
}

/// What became of a received packet.
pub enum Unprotected {
    /// No SRTP on this leg: the packet as it came.
    Plain,
    /// Checked and decrypted.
    Clear(Vec<u8>),
    /// Failed its check: dropped.
    Dropped,
}

impl Sdes {
    /// Offers under `policy` (nothing under the default or `forbidden`).
    pub fn offer(&mut self, policy: &SecureMedia) {
        self.local = offer(policy);
        self.savp = matches!(policy, SecureMedia::Mandatory(_));
    }

    /// Answers an offer: `Err` with why it must be refused (488).
    pub fn answer(
        &mut self,
        policy: &SecureMedia,
        savp: bool,
        lines: &[Crypto],
    ) -> Result<(), &'static str> {
        match answer(policy, savp, lines) {
            Answer::Plain => {
                *self = Sdes::default();
                Ok(())
            }
            Answer::Refuse(why) => Err(why),
            Answer::Secure(remote) => {
                let local = Crypto::generate(remote.tag, remote.suite);
                self.start(&local, &remote)
                    .map_err(|_| "an a=crypto key we cannot use")?;
                self.local = vec![local];
                self.savp = savp;
                Ok(())
            }
        }
    }

    /// The answer to our offer: its line with one of our tags and suites
    /// keys the session. `Err` when we offered SRTP only (RTP/SAVP) and
    /// the answer has none we offered.
    pub fn answered(&mut self, lines: &[Crypto]) -> Result<(), String> {
        if self.local.is_empty() {
            return Ok(());
        }
        let pair = lines.iter().find_map(|r| {
            let l = self
                .local
                .iter()
                .find(|l| l.tag == r.tag && l.suite == r.suite)?;
            Some((l.clone(), r.clone()))
        });
        match pair {
            Some((local, remote)) => {
                self.start(&local, &remote)?;
                self.local = vec![local];
                Ok(())
            }
            None if self.savp => Err(
                "the answer has no a=crypto line we offered (rtp_secure_media=mandatory)".into(),
            ),
            None => {
                *self = Sdes::default();
                Ok(())
            }
        }
    }

    fn start(&mut self, local: &Crypto, remote: &Crypto) -> Result<(), String> {
        self.session = Some(Srtp::new(local, remote)?);
        self.suite = Some(local.suite);
        self.remote = Some(remote.clone());
        Ok(())
    }

    /// Answers an offer in a dialog that may already have SRTP (a
    /// re-INVITE). The far end's line unchanged: nothing changes. A new
    /// key in the same suite: what arrives is checked under it from now
    /// on while what we send keeps our key and its stream (FreeSWITCH's
    /// "Change Remote key"), our line answering the offer's tag. Another
    /// suite, or SRTP where there was none: keyed afresh, as a first offer.
    /// `Ok(true)` when the far end's key changed.
    pub fn reanswer(
        &mut self,
        policy: &SecureMedia,
        savp: bool,
        lines: &[Crypto],
    ) -> Result<bool, &'static str> {
        if self.session.is_none() {
            let was = self.suite;
            self.answer(policy, savp, lines)?;
            return Ok(self.suite.is_some() && was.is_none());
        }
        match answer(policy, savp, lines) {
            Answer::Refuse(why) => Err(why),
            Answer::Plain => {
                *self = Sdes::default();
                Ok(false)
            }
            Answer::Secure(remote) if self.remote.as_ref() == Some(&remote) => Ok(false),
            Answer::Secure(remote) if Some(remote.suite) == self.suite => {
                let rx = remote
                    .context()
                    .map_err(|_| "an a=crypto key we cannot use")?;
                if let Some(s) = &mut self.session {
                    s.rx = rx;
                }
                if let Some(l) = self.local.first_mut() {
                    l.tag = remote.tag;
                }
                self.remote = Some(remote);
                self.savp = savp;
                Ok(true)
            }
            Answer::Secure(_) => {
                self.answer(policy, savp, lines)?;
                Ok(true)
            }
        }
    }

    /// The suite in use, when SRTP is.
    pub fn suite(&self) -> Option<Suite> {
        self.suite
    }

    /// FreeSWITCH's channel variables of a leg with SRTP: `rtp_has_crypto`
    /// (the suite) and `rtp_secure_media_confirmed`.
    pub fn channel_vars(&self) -> Vec<(&'static str, String)> {
        match self.suite {
            Some(s) => vec![
                ("rtp_has_crypto", s.as_str().to_string()),
                ("rtp_secure_media_confirmed", "true".into()),
            ],
            None => Vec::new(),
        }
    }

    /// Packets dropped for a failed check so far.
    pub fn auth_failures(&self) -> u64 {
        self.session.as_ref().map_or(0, |s| s.auth_failures)
    }

    /// The `a=crypto` values of our SDP.
    pub fn lines(&self) -> Vec<String> {
        self.local.iter().map(Crypto::line).collect()
    }

    /// A packet to send, protected when SRTP is on; `None` if it cannot be.
    pub fn protect_rtp<'a>(&mut self, p: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match &mut self.session {
            None => Some(Cow::Borrowed(p)),
            Some(s) => s.protect_rtp(p).map(Cow::Owned),
        }
    }

    pub fn protect_rtcp<'a>(&mut self, p: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match &mut self.session {
            None => Some(Cow::Borrowed(p)),
            Some(s) => s.protect_rtcp(p).map(Cow::Owned),
        }
    }

    /// A received RTP packet: a failed check is dropped, counted, and said
    /// in the log (one line a second at most, with the count so far).
    pub fn unprotect_rtp(&mut self, p: &[u8], port: u16, from: SocketAddr) -> Unprotected {
        let Some(s) = &mut self.session else {
            return Unprotected::Plain;
        };
        match s.unprotect_rtp(p) {
            Ok(v) => Unprotected::Clear(v),
            Err(e) => {
                let now = Instant::now();
                if self
                    .last_log
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    self.last_log = Some(now);
                    log::warn!(
                        "SRTP on port {port}: a packet from {from} failed its check ({e}); dropped, {} so far",
                        s.auth_failures
                    );
                }
                Unprotected::Dropped
            }
        }
    }

    /// A received RTCP packet, checked when SRTP is on.
    pub fn unprotect_rtcp(&mut self, p: &[u8]) -> bool {
        match &mut self.session {
            None => true,
            Some(s) => s.unprotect_rtcp(p).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 1, 2, 3, 4];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_crypto_line_parses_back_and_a_wrong_key_length_is_refused() {
        let c = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
        assert_eq!(c.key.len(), 30);
        assert_eq!(Crypto::parse(&c.line()), Some(c.clone()));
        let with_lifetime = format!("{}|2^31|1:1", c.line());
        assert_eq!(Crypto::parse(&with_lifetime).map(|x| x.key), Some(c.key));
        assert_eq!(Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"), None);
        assert_eq!(Crypto::parse("1 F8_128_HMAC_SHA1_80 inline:AAAA"), None);
    }

    #[test]
    fn the_policy_decides_between_plain_secure_and_refused() {
        let c32 = Crypto::generate(1, Suite::AesCm128HmacSha1_32);
        let c80 = Crypto::generate(2, Suite::AesCm128HmacSha1_80);
        let both = [c32.clone(), c80.clone()];
        let def = SecureMedia::Default;
        assert_eq!(answer(&def, true, &both), Answer::Secure(c80.clone()));
        assert_eq!(answer(&def, false, &[]), Answer::Plain);
        let only32 = SecureMedia::parse("mandatory:AES_CM_128_HMAC_SHA1_32").unwrap();
        assert_eq!(answer(&only32, true, &both), Answer::Secure(c32));
        assert!(matches!(answer(&only32, false, &[]), Answer::Refuse(_)));
        let forbidden = SecureMedia::parse("false").unwrap();
        assert_eq!(answer(&forbidden, false, &both), Answer::Plain);
        assert!(matches!(answer(&forbidden, true, &both), Answer::Refuse(_)));
        assert!(SecureMedia::parse("sometimes").is_err());
        assert_eq!(offer(&SecureMedia::parse("optional").unwrap()).len(), 3);
        assert!(offer(&def).is_empty());
    }

    #[test]
    fn protected_packets_pass_and_a_bad_tag_is_dropped_and_counted() {
        for suite in Suite::ALL {
            let a = Crypto::generate(1, suite);
            let b = Crypto::generate(1, suite);
            let mut alice = Srtp::new(&a, &b).unwrap();
            let mut bob = Srtp::new(&b, &a).unwrap();
            let sent = alice.protect_rtp(&rtp(1, b"hello")).unwrap();
            assert_ne!(&sent[12..17], b"hello");
            assert_eq!(bob.unprotect_rtp(&sent).unwrap(), rtp(1, b"hello"));
            let mut bad = alice.protect_rtp(&rtp(2, b"world")).unwrap();
            let last = bad.len() - 1;
            bad[last] ^= 0xff;
            assert!(bob.unprotect_rtp(&bad).is_err(), "{suite:?}");
            assert_eq!(bob.auth_failures, 1);
            let next = alice.protect_rtp(&rtp(3, b"again")).unwrap();
            assert_eq!(bob.unprotect_rtp(&next).unwrap(), rtp(3, b"again"));
        }
    }

    #[test]
    fn an_offer_and_its_answer_key_both_sides_alike() {
        let mut caller = Sdes::default();
        caller.offer(&SecureMedia::parse("mandatory").unwrap());
        assert!(caller.savp && caller.local.len() == 3);
        let mut callee = Sdes::default();
        callee
            .answer(&SecureMedia::Default, true, &caller.local)
            .unwrap();
        assert_eq!(callee.suite(), Some(Suite::AeadAes128Gcm));
        caller.answered(&callee.local).unwrap();
        assert_eq!(caller.local.len(), 1);
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let sent = caller.protect_rtp(&rtp(7, b"x")).unwrap().into_owned();
        assert!(matches!(
            callee.unprotect_rtp(&sent, 2, from),
            Unprotected::Clear(v) if v == rtp(7, b"x")
        ));
        assert!(matches!(
            callee.unprotect_rtp(&rtp(8, b"forged"), 2, from),
            Unprotected::Dropped
        ));
        assert_eq!(callee.auth_failures(), 1);
        let mut plain = Sdes::default();
        plain.offer(&SecureMedia::parse("mandatory").unwrap());
        assert!(plain.answered(&[]).is_err());
    }
}

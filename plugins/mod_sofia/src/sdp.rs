//! SDP offer/answer (RFC 3264) for audio: PCMU, PCMA, G.722, Opus and telephone-event
//! (RFC 4733), direction attributes for hold, SDES `a=crypto` lines
//! (RFC 4568) and the RTP/SAVP profile. Parsing and writing are the
//! `sdp` crate's; the negotiation is ours.

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};
use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

/// The audio codecs we carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    /// G.722 (RFC 3551: clock 8000 though it samples at 16 kHz).
    G722,
    /// Opus (RFC 7587: opus/48000/2).
    Opus,
}

impl Codec {
    /// The static payload type.
    pub fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            // Dynamic: FreeSWITCH's usual number for it.
            Codec::Opus => 102,
        }
    }

    /// Coded in something other than G.711 (decoded to 8 kHz linear
    /// audio for the core).
    pub fn is_wideband(self) -> bool {
        matches!(self, Codec::G722 | Codec::Opus)
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// The `a=rtpmap` encoding.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::G722 => "G722/8000",
            Codec::Opus => "opus/48000/2",
        }
    }

    /// The encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// From an encoding name (`codec-prefs`).
    pub fn from_name(s: &str) -> Option<Codec> {
        let base = s.split('@').next().unwrap_or(s);
        match base.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "G722" => Some(Codec::G722),
            "OPUS" => Some(Codec::Opus),
            _ => None,
        }
    }
}

/// A codec string as FreeSWITCH writes one (`codec-prefs`,
/// `absolute_codec_string`, `codec_string`): names separated by commas, or
/// by the character after a leading `^^` (`^^:PCMA:PCMU`), each maybe with
/// `@` parameters (`opus@48000h@20i`); names hotswitch does not carry
/// (GSM, G729) are skipped, a repeated one kept once, the order kept.
pub fn codec_string(s: &str) -> Vec<Codec> {
    let s = s.trim();
    let (sep, list) = match s.strip_prefix("^^") {
        Some(rest) => match rest.chars().next() {
            Some(c) => (c, &rest[c.len_utf8()..]),
            None => (',', ""),
        },
        None => (',', s),
    };
    let mut out = Vec::new();
    for c in list.split(sep).filter_map(|n| Codec::from_name(n.trim())) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The media direction of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Our direction answering the far end's (§6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What the far end's SDP says about its audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Where to send RTP (`None`: port 0 or no audio — rejected stream).
    pub addr: Option<SocketAddr>,
    /// Payload types offered, in order, with their encoding names.
    pub formats: Vec<(u8, String)>,
    /// The telephone-event payload type, if offered (the one at 8000 Hz,
    /// else the first).
    pub te_pt: Option<u8>,
    /// Every telephone-event offered: payload type and clock rate.
    pub te: Vec<(u8, u32)>,
    pub direction: Direction,
    /// Packetisation time in ms.
    pub ptime: u32,
    /// `o=` session id and version (a re-offer with the same version
    /// changes nothing).
    pub version: u64,
    /// The stream's profile is RTP/SAVP (SRTP).
    pub savp: bool,
    /// Its `a=crypto` lines we can use, in order.
    pub crypto: Vec<crate::srtp::Crypto>,
    /// A WebRTC offer: DTLS-SRTP (UDP/TLS/RTP/SAVPF, a fingerprint).
    pub dtls: bool,
}

impl Remote {
    /// True when the far end puts us on hold.
    pub fn is_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive)
            || self.addr.is_some_and(|a| a.ip().is_unspecified())
    }

    /// The first codec of `prefs` the far end offered, by the far end's
    /// order (FreeSWITCH's `generous` negotiation), with its payload type.
    /// The telephone-event to use with `codec` and its clock rate: the one
    /// on the codec's clock (telephone-event/48000 for Opus), else the
    /// 8000 Hz one.
    pub fn te_for(&self, codec: Codec) -> Option<(u8, u32)> {
        self.te
            .iter()
            .find(|(_, rate)| *rate == codec.clock_rate())
            .or(self.te.iter().find(|(_, rate)| *rate == 8000))
            .or(self.te.first())
            .copied()
    }

    pub fn choose(&self, prefs: &[Codec]) -> Option<(Codec, u8)> {
        self.formats.iter().find_map(|(pt, name)| {
            let c = Codec::from_name(name)?;
            prefs.contains(&c).then_some((c, *pt))
        })
    }
}

/// Parses the audio stream of an SDP body.
pub fn parse(body: &[u8]) -> Result<Remote, String> {
    let sd = SessionDescription::unmarshal(&mut Cursor::new(body)).map_err(|e| e.to_string())?;
    let audio = sd
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio")
        .ok_or("no audio stream")?;
    let conn = audio
        .connection_information
        .as_ref()
        .or(sd.connection_information.as_ref())
        .and_then(|c| c.address.as_ref())
        .ok_or("no connection address")?;
    let ip: IpAddr = conn
        .address
        .parse()
        .map_err(|_| format!("connection address {:?} is not an IP", conn.address))?;
    let port = audio.media_name.port.value;
    let addr = (port > 0 && port < 65536).then(|| SocketAddr::new(ip, port as u16));
    let mut formats = Vec::new();
    let mut te = Vec::new();
    for f in &audio.media_name.formats {
        let Ok(pt) = f.parse::<u8>() else {
            continue;
        };
        let name = rtpmap(audio, pt).unwrap_or(match pt {
            0 => "PCMU".to_string(),
            8 => "PCMA".to_string(),
            9 => "G722".to_string(),
            _ => String::new(),
        });
        if name.eq_ignore_ascii_case("telephone-event") {
            te.push((pt, rtpmap_rate(audio, pt).unwrap_or(8000)));
        } else {
            formats.push((pt, name));
        }
    }
    let direction = [
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ]
    .into_iter()
    .find(|d| audio.has_attribute(d.as_str()) || sd.has_attribute(d.as_str()))
    .unwrap_or(Direction::SendRecv);
    let ptime = audio
        .attribute("ptime")
        .flatten()
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| (10..=120).contains(p))
        .unwrap_or(20);
    let savp = audio
        .media_name
        .protos
        .iter()
        .any(|p| p.eq_ignore_ascii_case("SAVP") || p.eq_ignore_ascii_case("SAVPF"));
    let crypto = audio
        .attributes
        .iter()
        .filter(|a| a.key == "crypto")
        .filter_map(|a| crate::srtp::Crypto::parse(a.value.as_deref()?))
        .collect();
    let dtls = audio
        .media_name
        .protos
        .iter()
        .any(|p| p.eq_ignore_ascii_case("TLS") || p.eq_ignore_ascii_case("DTLS"))
        || audio.attribute("fingerprint").is_some()
        || sd.attribute("fingerprint").is_some();
    let te_pt = te
        .iter()
        .find(|(_, rate)| *rate == 8000)
        .or(te.first())
        .map(|(pt, _)| *pt);
    Ok(Remote {
        addr,
        formats,
        te_pt,
        te,
        direction,
        ptime,
        version: sd.origin.session_version,
        savp,
        crypto,
        dtls,
    })
}

/// The clock rate of `pt`'s `a=rtpmap`.
fn rtpmap_rate(m: &MediaDescription, pt: u8) -> Option<u32> {
    m.attributes.iter().find_map(|a| {
        if a.key != "rtpmap" {
            return None;
        }
        let (n, rest) = a.value.as_deref()?.split_once(' ')?;
        (n.trim().parse::<u8>().ok()? == pt)
            .then(|| rest.split('/').nth(1)?.trim().parse().ok())
            .flatten()
    })
}

fn rtpmap(m: &MediaDescription, pt: u8) -> Option<String> {
    m.attributes.iter().find_map(|a| {
        if a.key != "rtpmap" {
            return None;
        }
        let v = a.value.as_deref()?;
        let (n, rest) = v.split_once(' ')?;
        (n.trim().parse::<u8>().ok()? == pt)
            .then(|| rest.split('/').next().unwrap_or("").to_string())
    })
}

/// What we put in our SDP.
#[derive(Clone, Debug)]
pub struct Local {
    pub ip: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub version: u64,
    /// Codecs with their payload types, in preference order.
    pub codecs: Vec<(Codec, u8)>,
    /// telephone-events: payload type and clock rate.
    pub te: Vec<(u8, u32)>,
    pub direction: Direction,
    pub ptime: u32,
    /// RTP/SAVP instead of RTP/AVP.
    pub savp: bool,
    /// `a=crypto` values.
    pub crypto: Vec<String>,
}

/// Writes our SDP.
pub fn build(l: &Local) -> String {
    let ip = l.ip.to_string();
    let addr_type = if l.ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut formats: Vec<String> = l.codecs.iter().map(|(_, pt)| pt.to_string()).collect();
    let mut attributes = Vec::new();
    for (c, pt) in &l.codecs {
        attributes.push(attr("rtpmap", &format!("{pt} {}", c.rtpmap())));
        if *c == Codec::Opus {
            // RFC 7587 §7: in-band FEC taken and sent.
            attributes.push(attr("fmtp", &format!("{pt} useinbandfec=1")));
        }
    }
    for (te, rate) in &l.te {
        formats.push(te.to_string());
        attributes.push(attr("rtpmap", &format!("{te} telephone-event/{rate}")));
        attributes.push(attr("fmtp", &format!("{te} 0-16")));
    }
    attributes.push(attr("ptime", &l.ptime.to_string()));
    for c in &l.crypto {
        attributes.push(attr("crypto", c));
    }
    attributes.push(Attribute {
        key: l.direction.as_str().to_string(),
        value: None,
    });
    let sd = SessionDescription {
        origin: Origin {
            username: "hotswitch".into(),
            session_id: l.session_id,
            session_version: l.version,
            network_type: "IN".into(),
            address_type: addr_type.into(),
            unicast_address: ip.clone(),
        },
        session_name: "hotswitch".into(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: addr_type.into(),
            address: Some(Address {
                address: ip,
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        media_descriptions: vec![MediaDescription {
            media_name: MediaName {
                media: "audio".into(),
                port: RangedPort {
                    value: l.port as isize,
                    range: None,
                },
                protos: vec!["RTP".into(), if l.savp { "SAVP" } else { "AVP" }.into()],
                formats,
            },
            media_title: None,
            connection_information: None,
            bandwidth: vec![],
            encryption_key: None,
            attributes,
        }],
        ..Default::default()
    };
    sd.marshal()
}

fn attr(k: &str, v: &str) -> Attribute {
    Attribute {
        key: k.into(),
        value: Some(v.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codec_string_reads_freeswitchs_forms() {
        use Codec::*;
        assert_eq!(codec_string("PCMU,GSM,pcma"), vec![Pcmu, Pcma]);
        assert_eq!(codec_string("^^:PCMA:PCMU"), vec![Pcma, Pcmu]);
        assert_eq!(
            codec_string(" opus@48000h@20i , G722@16000h,PCMU@20i,opus"),
            vec![Opus, G722, Pcmu]
        );
        assert!(codec_string("GSM,G729").is_empty());
        assert!(codec_string("^^").is_empty());
        assert!(codec_string("").is_empty());
    }

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

    #[test]
    fn an_offer_gives_address_formats_and_telephone_event() {
        let r = parse(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(r.addr, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(r.formats, vec![(8, "PCMA".into()), (0, "PCMU".into())]);
        assert_eq!(r.te_pt, Some(101));
        assert_eq!(r.direction, Direction::SendRecv);
        assert_eq!(
            r.choose(&[Codec::Pcmu, Codec::Pcma]),
            Some((Codec::Pcma, 8))
        );
        assert_eq!(r.choose(&[Codec::Pcmu]), Some((Codec::Pcmu, 0)));
    }

    #[test]
    fn hold_is_sendonly_inactive_or_a_null_address() {
        let held = SIPP_OFFER.to_string() + "a=sendonly\r\n";
        assert!(parse(held.as_bytes()).unwrap().is_hold());
        let null = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert!(parse(null.as_bytes()).unwrap().is_hold());
        assert!(!parse(SIPP_OFFER.as_bytes()).unwrap().is_hold());
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
    }

    #[test]
    fn our_sdp_parses_back() {
        let l = Local {
            ip: "127.0.0.1".parse().unwrap(),
            port: 16384,
            session_id: 1,
            version: 2,
            codecs: vec![(Codec::Pcmu, 0), (Codec::Pcma, 8)],
            te: vec![(101, 8000)],
            direction: Direction::RecvOnly,
            ptime: 20,
            savp: false,
            crypto: Vec::new(),
        };
        let r = parse(build(&l).as_bytes()).unwrap();
        assert!(!r.savp && r.crypto.is_empty());
        assert_eq!(r.addr, Some("127.0.0.1:16384".parse().unwrap()));
        assert_eq!(r.formats, vec![(0, "PCMU".into()), (8, "PCMA".into())]);
        assert_eq!(r.te_pt, Some(101));
        assert_eq!(r.direction, Direction::RecvOnly);
        assert_eq!(r.version, 2);
    }

    #[test]
    fn srtp_offers_carry_savp_and_their_crypto_lines_parse_back() {
        let c = crate::srtp::Crypto::generate(1, crate::srtp::Suite::AesCm128HmacSha1_80);
        let l = Local {
            ip: "127.0.0.1".parse().unwrap(),
            port: 16384,
            session_id: 1,
            version: 2,
            codecs: vec![(Codec::Pcmu, 0)],
            te: Vec::new(),
            direction: Direction::SendRecv,
            ptime: 20,
            savp: true,
            crypto: vec![c.line(), "2 F8_128_HMAC_SHA1_80 inline:AAAA".into()],
        };
        let text = build(&l);
        assert!(text.contains("m=audio 16384 RTP/SAVP 0"), "{text}");
        let r = parse(text.as_bytes()).unwrap();
        assert!(r.savp);
        assert_eq!(r.crypto, vec![c], "the suite we do not carry is left out");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"hello").is_err());
        assert!(parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(parse(SIPP_OFFER.replace("m=audio", "m=video").as_bytes()).is_err());
    }

    #[test]
    fn an_opus_offer_gets_its_telephone_event_at_48_khz() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 111 0 110 101\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let r = parse(offer.as_bytes()).unwrap();
        assert_eq!(r.te, vec![(110, 48000), (101, 8000)]);
        assert_eq!(r.te_for(Codec::Opus), Some((110, 48000)));
        assert_eq!(r.te_for(Codec::Pcmu), Some((101, 8000)));
        let sdp = build(&Local {
            ip: "127.0.0.1".parse().unwrap(),
            port: 4000,
            session_id: 1,
            version: 1,
            codecs: vec![(Codec::Opus, 111)],
            te: vec![(110, 48000)],
            direction: Direction::SendRecv,
            ptime: 20,
            savp: false,
            crypto: Vec::new(),
        });
        assert!(sdp.contains("m=audio 4000 RTP/AVP 111 110\r\n"), "{sdp}");
        assert!(
            sdp.contains("a=rtpmap:110 telephone-event/48000\r\n"),
            "{sdp}"
        );
    }
}

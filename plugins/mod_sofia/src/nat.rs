//! Phones behind NAT, FreeSWITCH's way: a registration is NATed when the
//! profile forces it (`NDLB-force-rport`), when its Contact's address
//! differs from where the REGISTER came from and either
//! `aggressive-nat-detection` is on or an `apply-nat-acl` list (such as
//! `nat.auto`) matches the Contact's address. A NATed phone is reached at
//! the address and port its REGISTER came from (the binding the NAT keeps
//! open); any other at its Contact. `nat-options-ping` keeps that binding
//! open with OPTIONS (`ua::keepalive`). A switch behind NAT learns its
//! public address for `ext-sip-ip`/`ext-rtp-ip` from `stun:host[:port]`
//! (a STUN binding request, RFC 5389) or `host:name` (DNS) at load. Without the settings a phone's private
//! Contact is taken at its word, as in FreeSWITCH.

use crate::acl::Acls;
use crate::registrar::Registration;
use crate::sip::headers::Uri;
use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// A profile's NAT settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSettings {
    /// `NDLB-force-rport`: answer and reach every UDP peer at the port it
    /// sent from, as if its Via asked for rport.
    pub force_rport: bool,
    /// `aggressive-nat-detection`: a Contact that is not where the request
    /// came from means NAT.
    pub aggressive: bool,
    /// `apply-nat-acl`: lists whose match on a Contact's address means NAT.
    pub acl: Vec<String>,
    /// `nat-options-ping`: OPTIONS to NATed UDP registrations, to keep
    /// their bindings open.
    pub options_ping: bool,
    /// `all-reg-options-ping`: to every UDP registration.
    pub all_reg_options_ping: bool,
    /// `ping-mean-interval`: seconds between pings (FreeSWITCH: 30).
    pub ping_interval: u64,
}

impl Default for NatSettings {
    fn default() -> NatSettings {
        NatSettings {
            force_rport: false,
            aggressive: false,
            acl: Vec::new(),
            options_ping: false,
            all_reg_options_ping: false,
            ping_interval: 30,
        }
    }
}

impl NatSettings {
    /// Takes one profile parameter; false when it is not a NAT one.
    pub fn param(&mut self, name: &str, value: &str) -> bool {
        match name {
            "NDLB-force-rport" => self.force_rport = crate::config::bool_param(value),
            "aggressive-nat-detection" => self.aggressive = crate::config::bool_param(value),
            "apply-nat-acl" if !value.is_empty() => self.acl.push(value.to_string()),
            "nat-options-ping" => self.options_ping = crate::config::bool_param(value),
            "all-reg-options-ping" => self.all_reg_options_ping = crate::config::bool_param(value),
            "ping-mean-interval" => match value.trim().parse::<u64>() {
                Ok(n) if n > 0 => self.ping_interval = n,
                _ => log::warn!("ping-mean-interval {value:?} is not a number of seconds; 30 kept"),
            },
            _ => return false,
        }
        true
    }

    /// Whether `r` registered from behind a NAT.
    pub fn behind_nat(&self, acls: &Acls, r: &Registration) -> bool {
        if self.force_rport {
            return true;
        }
        let Some(contact_ip) = Uri::parse(&r.contact).and_then(|u| {
            u.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        }) else {
            // A name, not an address: nothing to compare.
            return self.aggressive;
        };
        if contact_ip == r.network.ip() {
            return false;
        }
        self.aggressive || self.acl.iter().any(|l| acls.check(l, contact_ip))
    }
}

/// The magic cookie of RFC 5389.
const STUN_COOKIE: u32 = 0x2112_A442;

/// Asks the STUN server `server` (`host[:port]`, 3478 by default) which
/// address a UDP socket on `local` is seen from.
pub fn stun_mapped(server: &str, local: IpAddr, wait: Duration) -> Result<IpAddr, String> {
    let target = if server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        server.to_string()
    } else {
        format!("{server}:3478")
    };
    let to = target
        .to_socket_addrs()
        .map_err(|e| format!("STUN server {target}: {e}"))?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| format!("STUN server {target}: no address"))?;
    let sock = UdpSocket::bind((local, 0)).map_err(|e| format!("STUN: bind {local}: {e}"))?;
    let id: [u8; 12] = uuid::Uuid::new_v4().as_bytes()[..12]
        .try_into()
        .unwrap_or([7; 12]);
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(&0u16.to_be_bytes());
    req.extend_from_slice(&STUN_COOKIE.to_be_bytes());
    req.extend_from_slice(&id);
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    // Three tries within the wait (UDP may lose one).
    for attempt in 1..=3u32 {
        sock.send_to(&req, to)
            .map_err(|e| format!("STUN server {to}: {e}"))?;
        let until = (Instant::now() + wait / 3).min(deadline);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if from == to {
                if let Some(ip) = mapped_address(&buf[..n], &id) {
                    return Ok(ip);
                }
            }
        }
        log::debug!("STUN server {to}: no answer to try {attempt}");
    }
    Err(format!("STUN server {to}: no answer within {wait:?}"))
}

/// The (XOR-)MAPPED-ADDRESS of a binding success response to `id`.
fn mapped_address(p: &[u8], id: &[u8; 12]) -> Option<IpAddr> {
    if p.len() < 20 || p[0..2] != [0x01, 0x01] || p[4..8] != STUN_COOKIE.to_be_bytes() {
        return None;
    }
    if &p[8..20] != id {
        return None;
    }
    let len = u16::from_be_bytes([p[2], p[3]]) as usize;
    let body = p.get(20..20 + len)?;
    let mut at = 0;
    let mut plain = None;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let v = body.get(at + 4..at + 4 + alen)?;
        if v.len() >= 8 && v[1] == 0x01 {
            let raw = [v[4], v[5], v[6], v[7]];
            match kind {
                0x0020 => {
                    let x = u32::from_be_bytes(raw) ^ STUN_COOKIE;
                    return Some(IpAddr::from(x.to_be_bytes()));
                }
                0x0001 => plain = Some(IpAddr::from(raw)),
                _ => {}
            }
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    plain
}

/// An `ext-sip-ip`/`ext-rtp-ip` value: an address, `stun:host[:port]`
/// (asked from `local`), `host:name` (resolved); `None` for `auto` and
/// `auto-nat` (this machine's own address is used).
pub fn external_ip(value: &str, local: IpAddr) -> Result<Option<IpAddr>, String> {
    let v = value.trim();
    if v.is_empty() || v == "auto" || v == "auto-nat" {
        return Ok(None);
    }
    if let Some(server) = v.strip_prefix("stun:") {
        let ip = stun_mapped(server, local, Duration::from_secs(2))?;
        log::info!("{v}: this switch is seen from {ip}");
        return Ok(Some(ip));
    }
    if let Some(name) = v.strip_prefix("host:") {
        return (name, 0)
            .to_socket_addrs()
            .map_err(|e| format!("{v}: {e}"))?
            .map(|a| a.ip())
            .find(|ip| ip.is_ipv4() == local.is_ipv4())
            .map(Some)
            .ok_or_else(|| format!("{v}: no address"));
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{v:?} is not an address, stun:host or host:name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(contact: &str, network: &str) -> Registration {
        Registration {
            profile: "internal".into(),
            user: "1000".into(),
            domain: "example".into(),
            contact: contact.into(),
            network: network.parse().unwrap(),
            transport: "UDP".into(),
            expires_at: 0,
            call_id: "c".into(),
            user_agent: String::new(),
            path: Vec::new(),
        }
    }

    /// A STUN server on loopback that says every client is `seen`.
    fn stun_server(seen: [u8; 4]) -> std::net::SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                if n < 20 {
                    continue;
                }
                let x = u32::from_be_bytes(seen) ^ STUN_COOKIE;
                let mut r = vec![0x01, 0x01, 0, 12];
                r.extend_from_slice(&buf[4..20]);
                r.extend_from_slice(&[0x00, 0x20, 0, 8, 0, 1, 0x12, 0x34]);
                r.extend_from_slice(&x.to_be_bytes());
                let _ = sock.send_to(&r, from);
            }
        });
        addr
    }

    #[test]
    fn stun_tells_the_address_the_switch_is_seen_from() {
        let server = stun_server([203, 0, 113, 7]);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let v = format!("stun:{server}");
        assert_eq!(
            external_ip(&v, local).unwrap(),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(external_ip("auto-nat", local).unwrap(), None);
        assert_eq!(
            external_ip("198.51.100.1", local).unwrap(),
            Some("198.51.100.1".parse().unwrap())
        );
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
        let quiet = format!("127.0.0.1:{}", dead.local_addr().unwrap().port());
        assert!(stun_mapped(&quiet, local, Duration::from_millis(300)).is_err());
    }

    #[test]
    fn a_private_contact_behind_another_address_is_nat_under_the_settings_only() {
        let acls = Acls::builtin(None);
        let natted = reg("sip:1000@10.1.1.2:5060", "203.0.113.9:40000");
        let direct = reg("sip:1000@203.0.113.9:5060", "203.0.113.9:5060");
        let mut off = NatSettings::default();
        assert!(!off.behind_nat(&acls, &natted));
        let mut acl = NatSettings::default();
        assert!(acl.param("apply-nat-acl", "rfc1918.auto"));
        assert!(acl.behind_nat(&acls, &natted));
        assert!(!acl.behind_nat(&acls, &direct));
        let mut aggressive = NatSettings::default();
        aggressive.param("aggressive-nat-detection", "true");
        assert!(aggressive.behind_nat(&acls, &natted));
        let mut forced = NatSettings::default();
        forced.param("NDLB-force-rport", "true");
        assert!(forced.behind_nat(&acls, &direct));
        assert!(!off.param("sip-port", "5060"));
    }
}

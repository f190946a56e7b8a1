//! Phones behind NAT, FreeSWITCH's way: a registration is NATed when the
//! profile forces it (`NDLB-force-rport`), when its Contact's address
//! differs from where the REGISTER came from and either
//! `aggressive-nat-detection` is on or an `apply-nat-acl` list (such as
//! `nat.auto`) matches the Contact's address. A NATed phone is reached at
//! the address and port its REGISTER came from (the binding the NAT keeps
//! open); any other at its Contact. `nat-options-ping` keeps that binding
//! open with OPTIONS (`ua::keepalive`). Without the settings a phone's private
//! Contact is taken at its word, as in FreeSWITCH.

use crate::acl::Acls;
use crate::registrar::Registration;
use crate::sip::headers::Uri;
use std::net::IpAddr;

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

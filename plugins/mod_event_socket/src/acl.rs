//! `apply-inbound-acl`: which addresses may connect.
//!
//! Each `apply-inbound-acl` parameter is one list; an address must be
//! allowed by every list (as FreeSWITCH checks each ACL in turn). A list is
//! comma-separated entries: a CIDR (`127.0.0.0/8`, `::1/128`), a bare
//! address, or a built-in name — `loopback.auto` (loopback addresses),
//! `localnet.auto` (private ranges), `any` / `all` (everything), `none`.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// One `apply-inbound-acl` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetList {
    spec: String,
    nets: Vec<IpNet>,
}

/// Every list an address must pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    lists: Vec<NetList>,
}

/// An entry that is neither a network nor a built-in name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclError {
    /// The entry.
    pub entry: String,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "apply-inbound-acl entry {:?} is not a network (a.b.c.d/n, x::/n) or one of loopback.auto, localnet.auto, any, none",
            self.entry
        )
    }
}

impl std::error::Error for AclError {}

fn nets(cidrs: &[&str]) -> Vec<IpNet> {
    cidrs.iter().filter_map(|c| c.parse().ok()).collect()
}

impl NetList {
    /// Parses one list.
    pub fn parse(spec: &str) -> Result<NetList, AclError> {
        let mut list = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.to_ascii_lowercase().as_str() {
                "loopback.auto" => list.extend(nets(&["127.0.0.0/8", "::1/128"])),
                "localnet.auto" => list.extend(nets(&[
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    "fc00::/7",
                    "fe80::/10",
                ])),
                "any" | "all" => list.extend(nets(&["0.0.0.0/0", "::/0"])),
                "none" => {}
                _ => {
                    let net = entry
                        .parse::<IpNet>()
                        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| AclError {
                            entry: entry.to_string(),
                        })?;
                    list.push(net);
                }
            }
        }
        Ok(NetList {
            spec: spec.to_string(),
            nets: list,
        })
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

impl Acl {
    /// The lists given (none: `loopback.auto`, FreeSWITCH's default).
    pub fn parse(specs: &[String]) -> Result<Acl, AclError> {
        let lists = if specs.is_empty() {
            vec![NetList::parse("loopback.auto")?]
        } else {
            specs
                .iter()
                .map(|s| NetList::parse(s))
                .collect::<Result<_, _>>()?
        };
        Ok(Acl { lists })
    }

    /// `Err(list)` naming the first list that refuses `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), &str> {
        // A v4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match self.lists.iter().find(|l| !l.allows(ip)) {
            Some(l) => Err(&l.spec),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_allows_loopback_only() {
        let acl = Acl::parse(&[]).unwrap();
        assert!(acl.check(ip("127.0.0.1")).is_ok());
        assert!(acl.check(ip("127.4.5.6")).is_ok());
        assert!(acl.check(ip("::1")).is_ok());
        assert!(acl.check(ip("::ffff:127.0.0.1")).is_ok());
        assert_eq!(acl.check(ip("10.0.0.1")), Err("loopback.auto"));
    }

    #[test]
    fn cidr_lists_and_bare_addresses_are_accepted() {
        let acl = Acl::parse(&["127.0.0.2/32, ::1/128,192.0.2.7".into()]).unwrap();
        assert!(acl.check(ip("127.0.0.2")).is_ok());
        assert!(acl.check(ip("192.0.2.7")).is_ok());
        assert!(acl.check(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn every_list_must_allow() {
        let acl = Acl::parse(&["127.0.0.0/8".into(), "127.0.0.2".into()]).unwrap();
        assert!(acl.check(ip("127.0.0.2")).is_ok());
        assert_eq!(acl.check(ip("127.0.0.1")), Err("127.0.0.2"));
    }

    #[test]
    fn an_unknown_name_is_an_error() {
        let e = Acl::parse(&["lan".into()]).unwrap_err();
        assert_eq!(e.entry, "lan");
    }
}

//! Network lists as FreeSWITCH keeps them: the built-in `*.auto` lists
//! (`loopback.auto`, `localnet.auto` — the machine's own network —,
//! `rfc1918.auto`, `nat.auto`, `wan.auto`, `any_v4.auto`, …) and the
//! `<network-lists>` of `acl.conf`, each a default and nodes that allow or
//! deny a range. An address takes the verdict of the most specific node
//! that covers it (the later of equals), else the list's default; a name
//! that is no list but a CIDR (or several, comma-separated) matches its
//! ranges. A `domain=` node adds every user of that directory domain with
//! a `cidr` attribute, its token `user@domain` naming who the address is.
//! Profiles name these lists in `apply-inbound-acl` and
//! `apply-register-acl`.

use crate::config::Element;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// One allow or deny node.
#[derive(Clone, Debug)]
struct Node {
    net: IpNet,
    allow: bool,
    /// The directory user an address of this node is (`domain=` nodes).
    token: Option<String>,
}

/// A named list: its default and its nodes, in order.
#[derive(Clone, Debug)]
pub struct NetList {
    default_allow: bool,
    nodes: Vec<Node>,
}

impl NetList {
    fn new(default_allow: bool) -> NetList {
        NetList {
            default_allow,
            nodes: Vec::new(),
        }
    }

    fn add(mut self, cidr: &str, allow: bool) -> NetList {
        if let Ok(net) = cidr.parse() {
            self.push(net, allow);
        }
        self
    }

    fn push(&mut self, net: IpNet, allow: bool) {
        self.nodes.push(Node {
            net,
            allow,
            token: None,
        });
    }

    /// The verdict for `ip` — the most specific covering node's, else the
    /// default — and that node's token. IPv4-mapped IPv6 addresses count
    /// as IPv4.
    pub fn verdict(&self, ip: IpAddr) -> (bool, Option<&str>) {
        let ip = unmap(ip);
        let mut verdict = (self.default_allow, None);
        let mut bits = 0u8;
        for n in &self.nodes {
            if n.net.prefix_len() >= bits && n.net.contains(&ip) {
                verdict = (n.allow, n.token.as_deref());
                bits = n.net.prefix_len();
            }
        }
        verdict
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Every list the switch knows, by name.
#[derive(Clone, Debug, Default)]
pub struct Acls {
    lists: HashMap<String, NetList>,
}

/// An `acl.conf` that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct AclError(pub String);

impl std::fmt::Display for AclError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "acl.conf: {}", self.0)
    }
}

impl Acls {
    /// The built-in lists, `localnet` being the machine's own network
    /// (none when it has no address but loopback).
    pub fn builtin(localnet: Option<IpNet>) -> Acls {
        let mut lists = HashMap::new();
        let mut put = |name: &str, l: NetList| {
            lists.insert(name.to_string(), l);
        };
        put(
            "rfc6598.auto",
            NetList::new(false).add("100.64.0.0/10", true),
        );
        put(
            "rfc1918.auto",
            NetList::new(false)
                .add("10.0.0.0/8", true)
                .add("172.16.0.0/12", true)
                .add("192.168.0.0/16", true)
                .add("fe80::/10", true),
        );
        let private = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "100.64.0.0/10",
        ];
        let mut wan = NetList::new(true);
        for c in private.iter().chain(&["fe80::/10"]) {
            wan = wan.add(c, false);
        }
        put("wan.auto", wan);
        let mut wan_v4 = NetList::new(true);
        for c in private.iter().chain(&["::/0"]) {
            wan_v4 = wan_v4.add(c, false);
        }
        put("wan_v4.auto", wan_v4);
        put(
            "wan_v6.auto",
            NetList::new(true)
                .add("0.0.0.0/0", false)
                .add("fe80::/10", false),
        );
        put("any_v6.auto", NetList::new(true).add("0.0.0.0/0", false));
        put("any_v4.auto", NetList::new(true).add("::/0", false));
        let mut nat = NetList::new(false);
        if let Some(l) = localnet {
            nat.push(l, false);
        }
        put(
            "nat.auto",
            nat.add("10.0.0.0/8", true)
                .add("172.16.0.0/12", true)
                .add("192.168.0.0/16", true)
                .add("100.64.0.0/10", true),
        );
        put(
            "loopback.auto",
            NetList::new(false)
                .add("127.0.0.0/8", true)
                .add("::1/128", true),
        );
        let mut local = NetList::new(false);
        if let Some(l) = localnet {
            local.push(l, true);
        }
        put("localnet.auto", local);
        Acls { lists }
    }

    /// The built-in lists and those of `acl.conf` (`<network-lists>`);
    /// `domain_users` gives the `(id, cidr)` of a directory domain's users
    /// that have a `cidr` attribute.
    pub fn from_xml(
        xml: Option<&str>,
        localnet: Option<IpNet>,
        domain_users: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Result<Acls, AclError> {
        let mut acls = Acls::builtin(localnet);
        let Some(xml) = xml else {
            return Ok(acls);
        };
        let root = Element::parse(xml).map_err(|e| AclError(e.0))?;
        let Some(lists) = root.child("network-lists") else {
            return Ok(acls);
        };
        for l in lists.children("list") {
            let Some(name) = l.attr("name").filter(|n| !n.is_empty()) else {
                continue;
            };
            let default_allow = l.attr("default").is_none_or(truthy);
            let mut list = NetList::new(default_allow);
            for n in l.children("node") {
                let allow = n.attr("type").map_or(default_allow, truthy);
                if let Some(c) = n.attr("cidr") {
                    for part in c.split(',').filter(|p| !p.trim().is_empty()) {
                        let net = parse_cidr(part).ok_or_else(|| {
                            AclError(format!("list {name}: cidr {c:?} is not a network"))
                        })?;
                        list.push(net, allow);
                    }
                } else if let (Some(h), Some(m)) = (n.attr("host"), n.attr("mask")) {
                    let net = host_mask(h, m).ok_or_else(|| {
                        AclError(format!(
                            "list {name}: host {h:?} mask {m:?} is not a network"
                        ))
                    })?;
                    list.push(net, allow);
                } else if let Some(d) = n.attr("domain") {
                    for (id, cidr) in domain_users(d) {
                        let nets: Vec<IpNet> = cidr.split(',').filter_map(parse_cidr).collect();
                        if nets.is_empty() {
                            log::warn!("acl.conf list {name}: user {id}@{d} cidr {cidr:?} is not a network");
                        }
                        for net in nets {
                            list.nodes.push(Node {
                                net,
                                allow,
                                token: Some(format!("{id}@{d}")),
                            });
                        }
                    }
                }
            }
            acls.lists.insert(name.to_string(), list);
        }
        Ok(acls)
    }

    /// True when `name` is a list, or a CIDR (or several).
    pub fn knows(&self, name: &str) -> bool {
        self.lists.contains_key(name)
            || (name.contains('/') && name.split(',').all(|c| parse_cidr(c).is_some()))
    }

    /// FreeSWITCH's `switch_check_network_list_ip`: the list's verdict,
    /// or whether a CIDR name covers `ip`; an unknown name allows nothing.
    pub fn check(&self, name: &str, ip: IpAddr) -> bool {
        self.check_token(name, ip).0
    }

    /// [`Acls::check`] with the token of the deciding node (a `domain=`
    /// node's `user@domain`).
    pub fn check_token(&self, name: &str, ip: IpAddr) -> (bool, Option<String>) {
        if let Some(l) = self.lists.get(name) {
            let (ok, token) = l.verdict(ip);
            return (ok, token.map(str::to_string));
        }
        let ip = unmap(ip);
        let ok = name.contains('/')
            && name
                .split(',')
                .filter_map(parse_cidr)
                .any(|n| n.contains(&ip));
        (ok, None)
    }
}

/// The users of a directory domain (its XML, as `xml_locate directory
/// domain name <domain>` gives it) that carry a `cidr` attribute.
pub fn users_with_cidr(domain_xml: &str) -> Vec<(String, String)> {
    let Ok(d) = Element::parse(domain_xml) else {
        return Vec::new();
    };
    let mut users: Vec<&Element> = Vec::new();
    if let Some(u) = d.child("users") {
        users.extend(u.children("user"));
    }
    if let Some(gs) = d.child("groups") {
        for g in gs.children("group") {
            if let Some(u) = g.child("users") {
                users.extend(u.children("user"));
            }
        }
    }
    users
        .into_iter()
        .filter_map(|u| Some((u.attr("id")?.to_string(), u.attr("cidr")?.to_string())))
        .collect()
}

/// [`users_with_cidr`] of a domain in the switch's directory.
pub fn directory_users_with_cidr(domain: &str) -> Vec<(String, String)> {
    hotswitch_plugin_api::ModuleContext::current()
        .execute_api("xml_locate", &format!("directory domain name {domain}"))
        .map(|x| users_with_cidr(&x))
        .unwrap_or_default()
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "allow" | "true" | "yes" | "on" | "1" | "enabled"
    )
}

/// `a.b.c.d/n` (a bare address is a host).
fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

fn host_mask(host: &str, mask: &str) -> Option<IpNet> {
    let h: Ipv4Addr = host.trim().parse().ok()?;
    let m: Ipv4Addr = mask.trim().parse().ok()?;
    ipnet::Ipv4Net::with_netmask(h, m)
        .ok()
        .map(|n| IpNet::V4(n.trunc()))
}

/// The machine's own network, as FreeSWITCH guesses it for
/// `localnet.auto`: the address the default route leaves from, with its
/// interface's netmask.
pub fn local_network() -> Option<IpNet> {
    let probe = UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a datagram socket only picks a route.
    probe.connect("8.8.8.8:53").ok()?;
    let IpAddr::V4(ip) = probe.local_addr().ok()?.ip() else {
        return None;
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    let mask = netmask_of(ip).unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    ipnet::Ipv4Net::with_netmask(ip, mask)
        .ok()
        .map(|n| IpNet::V4(n.trunc()))
}

/// The netmask of the interface holding `ip` (getifaddrs).
fn netmask_of(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned; its
        // address pointers are null or point at sockaddrs of their family.
        unsafe {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && !ifa.ifa_netmask.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
            {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                if Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)) == ip {
                    found = Some(Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr)));
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const CONF: &str = r#"<configuration name="acl.conf"><network-lists>
      <list name="lan" default="allow">
        <node type="deny" cidr="192.168.42.0/24"/>
        <node type="allow" cidr="192.168.42.42/32"/>
      </list>
      <list name="phones" default="deny">
        <node type="allow" host="10.1.0.0" mask="255.255.0.0"/>
        <node type="allow" domain="example.com"/>
      </list>
    </network-lists></configuration>"#;

    #[test]
    fn the_most_specific_node_decides_and_the_default_covers_the_rest() {
        let a = Acls::from_xml(Some(CONF), None, &|_| Vec::new()).unwrap();
        assert!(a.check("lan", ip("192.168.42.42")));
        assert!(!a.check("lan", ip("192.168.42.7")));
        assert!(a.check("lan", ip("8.8.8.8")));
        assert!(a.check("phones", ip("10.1.200.3")));
        assert!(!a.check("phones", ip("10.2.0.1")));
        assert!(
            !a.check("nope", ip("127.0.0.1")),
            "an unknown list allows nothing"
        );
    }

    #[test]
    fn a_domain_node_names_the_user_an_address_belongs_to() {
        let domain = r#"<domain name="example.com"><groups><group name="default"><users>
            <user id="1000" cidr="10.9.0.5/32"><params/></user>
            <user id="1001"/>
          </users></group></groups><users><user id="1002" cidr="10.8.0.0/16,10.7.0.1"/></users></domain>"#;
        let users = users_with_cidr(domain);
        assert_eq!(users.len(), 2, "{users:?}");
        let lookup = |d: &str| {
            assert_eq!(d, "example.com");
            users.clone()
        };
        let a = Acls::from_xml(Some(CONF), None, &lookup).unwrap();
        assert_eq!(
            a.check_token("phones", ip("10.9.0.5")),
            (true, Some("1000@example.com".into()))
        );
        assert_eq!(
            a.check_token("phones", ip("10.7.0.1")),
            (true, Some("1002@example.com".into()))
        );
        assert_eq!(a.check_token("phones", ip("10.1.0.1")), (true, None));
        assert_eq!(a.check_token("phones", ip("10.9.0.6")), (false, None));
    }

    #[test]
    fn builtin_lists_are_freeswitchs() {
        let a = Acls::builtin(Some("192.168.1.0/24".parse().unwrap()));
        assert!(a.check("loopback.auto", ip("127.0.0.2")));
        assert!(a.check("loopback.auto", ip("::1")));
        assert!(!a.check("loopback.auto", ip("192.168.1.5")));
        assert!(a.check("rfc1918.auto", ip("172.20.0.1")));
        assert!(!a.check("rfc1918.auto", ip("8.8.8.8")));
        assert!(a.check("localnet.auto", ip("192.168.1.77")));
        assert!(!a.check("localnet.auto", ip("192.168.2.77")));
        assert!(a.check("nat.auto", ip("10.0.0.1")));
        assert!(
            !a.check("nat.auto", ip("192.168.1.77")),
            "our own LAN is not NAT"
        );
        assert!(a.check("any_v4.auto", ip("203.0.113.9")));
        assert!(!a.check("any_v4.auto", ip("2001:db8::1")));
        assert!(a.check("wan_v4.auto", ip("203.0.113.9")));
        assert!(!a.check("wan_v4.auto", ip("10.0.0.1")));
        assert!(a.check("loopback.auto", ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn a_cidr_name_matches_its_ranges() {
        let a = Acls::builtin(None);
        assert!(a.check("127.0.0.1/32", ip("127.0.0.1")));
        assert!(!a.check("127.0.0.1/32", ip("127.0.0.2")));
        assert!(a.check("10.0.0.0/8,192.0.2.0/24", ip("192.0.2.9")));
        assert!(a.knows("10.0.0.0/8,192.0.2.0/24") && !a.knows("lan"));
        assert!(!a.check("localnet.auto", ip("10.0.0.1")), "no LAN: empty");
    }

    #[test]
    fn a_bad_node_is_named() {
        let bad = CONF.replace("192.168.42.0/24", "192.168.42.0/99");
        let e = Acls::from_xml(Some(&bad), None, &|_| Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("lan") && e.contains("/99"), "{e}");
    }
}

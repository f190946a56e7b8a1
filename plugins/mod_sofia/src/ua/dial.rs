//! Where an outbound call goes, from the dial string after `sofia/`.
//!
//! [`dial_target`] runs on the thread that originates the call (a session
//! thread or an API thread, in [`crate::endpoint`]), never on the SIP
//! thread, so it resolves host names there, blocking that thread only.
//! The SIP thread's own names go through the shell (see `dns`).

use super::*;
use std::net::ToSocketAddrs;

/// `host:port` as an address: an IP literal at once, a name through the
/// system's resolver (blocking: for the dialing thread only).
fn resolve_blocking(host_port: &str) -> Option<SocketAddr> {
    if let Ok(a) = host_port.parse() {
        return Some(a);
    }
    host_port.to_socket_addrs().ok()?.next()
}

/// Where an outbound call goes: the dial data after `sofia/`.
pub struct DialTarget {
    pub profile: usize,
    pub uri: Uri,
    pub target: Target,
    pub auth: Option<(String, String)>,
    pub gateway: Option<String>,
    pub from_host: String,
    /// The Route set the INVITE carries: a registered contact's Path.
    pub route: Vec<String>,
}

/// A registered contact reached through the proxies of its Path (RFC
/// 3327): the request goes to the first one, with the Path as its Route
/// set. Without a Path, `direct` (where the REGISTER came from) as is.
fn through_path(r: &Registration, direct: Target) -> (Target, Vec<String>) {
    let first_hop = r
        .path
        .first()
        .and_then(|p| NameAddr::parse(p))
        .and_then(|na| Uri::parse(&na.uri_text))
        .and_then(|u| resolve_blocking(&u.host_port()));
    match first_hop {
        Some(addr) => (Target { addr, ..direct }, r.path.clone()),
        None => (direct, Vec::new()),
    }
}

/// Where a registered contact is reached, with which transport: `Ok`, an
/// address known now; `Err`, the Contact's `host:port`, to resolve. Over
/// UDP: the address its REGISTER came from when it is behind NAT (`nat`,
/// [`crate::nat`]), else its Contact. Over TCP or TLS: the connection the
/// phone opened, while it lives (RFC 5626's flow), else the Contact's own
/// address — the phone listens there, while the flow's source port is
/// gone after a restart of either side.
pub(super) fn registered_reach(
    r: &Registration,
    uri: &Uri,
    profile: usize,
    flow_alive: &dyn Fn(SocketAddr) -> bool,
    nat: &dyn Fn(usize, &Registration) -> bool,
) -> (Proto, Result<SocketAddr, String>) {
    let proto = Proto::from_token(&r.transport).unwrap_or(Proto::Udp);
    let known = if proto == Proto::Udp {
        nat(profile, r)
    } else {
        flow_alive(r.network)
    };
    if known {
        (proto, Ok(r.network))
    } else {
        (proto, Err(uri.host_port()))
    }
}

/// [`registered_reach`], its Contact resolved on this (the dialing) thread.
fn registered_target(
    r: &Registration,
    uri: &Uri,
    profile: usize,
    flow_alive: &dyn Fn(SocketAddr) -> bool,
    nat: &dyn Fn(usize, &Registration) -> bool,
) -> Result<Target, CallCause> {
    let (proto, reach) = registered_reach(r, uri, profile, flow_alive, nat);
    let addr = match reach {
        Ok(addr) => addr,
        Err(host_port) => resolve_blocking(&host_port).ok_or(CallCause::NO_ROUTE_DESTINATION)?,
    };
    Ok(Target {
        proto,
        addr,
        profile,
    })
}

/// Parses `<profile>/<user>@<host>[:port]`, `<profile>/sip:…`,
/// `<profile>/<user>%<domain>` (a registered user) and
/// `gateway/<name>/<number>`. `flow_alive` tells whether a phone's TCP
/// connection is still open.
pub fn dial_target(
    dial: &str,
    profiles: &[(String, SocketAddr)],
    registrar: &Registrar,
    gateways: &dyn Fn(&str) -> Option<GatewayEntry>,
    flow_alive: &dyn Fn(SocketAddr) -> bool,
    nat: &dyn Fn(usize, &Registration) -> bool,
) -> Result<DialTarget, CallCause> {
    let (first, rest) = dial.split_once('/').ok_or(CallCause::INVALID_URL)?;
    if first == "gateway" {
        let (gw, number) = rest.split_once('/').ok_or(CallCause::INVALID_URL)?;
        let (pi, g, state) = gateways(gw).ok_or(CallCause::INVALID_GATEWAY)?;
        if g.register && state != "REGED" {
            log::warn!("gateway {gw} is {state}");
            return Err(CallCause::GATEWAY_DOWN);
        }
        let proxy = if g.proxy.contains(':') {
            g.proxy.clone()
        } else {
            format!("{}:5060", g.proxy)
        };
        let addr = resolve_blocking(&proxy).ok_or(CallCause::GATEWAY_DOWN)?;
        let uri = Uri::parse(&format!("sip:{number}@{}", g.proxy)).ok_or(CallCause::INVALID_URL)?;
        return Ok(DialTarget {
            profile: pi,
            uri,
            target: Target {
                proto: Proto::Udp,
                addr,
                profile: pi,
            },
            auth: (!g.username.is_empty()).then(|| (g.username.clone(), g.password.clone())),
            gateway: Some(g.name.clone()),
            from_host: g.from_domain.clone(),
            route: Vec::new(),
        });
    }
    let pi = profiles
        .iter()
        .position(|(n, _)| n == first)
        .ok_or(CallCause::INVALID_PROFILE)?;
    let pname = &profiles[pi].0;
    let rest = rest.trim();
    if let Some((user, domain)) = rest.split_once('%') {
        let regs = registrar.lookup(&format!("{user}@{domain}"), Some(pname));
        let r = regs.first().ok_or(CallCause::USER_NOT_REGISTERED)?;
        let uri = Uri::parse(&r.contact).ok_or(CallCause::INVALID_URL)?;
        let (target, route) = through_path(r, registered_target(r, &uri, pi, flow_alive, nat)?);
        return Ok(DialTarget {
            profile: pi,
            uri,
            target,
            auth: None,
            gateway: None,
            from_host: String::new(),
            route,
        });
    }
    let text = if rest.starts_with("sip:") || rest.starts_with("sips:") {
        rest.to_string()
    } else {
        format!("sip:{rest}")
    };
    let uri = Uri::parse(&text).ok_or(CallCause::INVALID_URL)?;
    // RFC 3261 §26.2.2: a sips: URI is reached over TLS.
    let proto = match uri.param("transport").and_then(Proto::from_token) {
        Some(p) => p,
        None if text.starts_with("sips:") => Proto::Tls,
        None => Proto::Udp,
    };
    // A registered contact is reached as it registered (NAT, TCP flow).
    let registered = uri.user.as_ref().and_then(|u| {
        registrar
            .lookup(&format!("{u}@{}", uri.host), Some(pname))
            .into_iter()
            .chain(registrar.all(pname))
            .find(|r| r.contact == text || r.contact == uri.to_string())
    });
    let (target, route) = match registered {
        Some(r) => through_path(&r, registered_target(&r, &uri, pi, flow_alive, nat)?),
        None => (
            Target {
                proto,
                addr: resolve_blocking(&uri.host_port()).ok_or(CallCause::NO_ROUTE_DESTINATION)?,
                profile: pi,
            },
            Vec::new(),
        ),
    };
    Ok(DialTarget {
        profile: pi,
        uri,
        target,
        auth: None,
        gateway: None,
        from_host: String::new(),
        route,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::Registration;

    #[test]
    fn dial_strings_name_a_profile_a_uri_or_a_registered_user() {
        let reg = Registrar::new(Box::new(crate::registrar::MemoryStore)).unwrap();
        let profiles = vec![("internal".to_string(), "127.0.0.1:5060".parse().unwrap())];
        let none = |_: &str| None;
        let dead = |_: SocketAddr| false;
        let natted = |_: usize, _: &Registration| true;
        let dial = |d: &str| dial_target(d, &profiles, &reg, &none, &dead, &natted);
        let t = dial("internal/1000@127.0.0.1:5090").unwrap();
        assert_eq!(t.target.addr, "127.0.0.1:5090".parse().unwrap());
        assert_eq!(t.uri.user.as_deref(), Some("1000"));
        assert_eq!(
            dial("nope/1000@127.0.0.1").err(),
            Some(CallCause::INVALID_PROFILE)
        );
        assert_eq!(
            dial("internal/1000%127.0.0.1").err(),
            Some(CallCause::USER_NOT_REGISTERED)
        );
        reg.bind(Registration {
            profile: "internal".into(),
            user: "1000".into(),
            domain: "127.0.0.1".into(),
            contact: "sip:1000@10.9.9.9:5062".into(),
            network: "127.0.0.1:6000".parse().unwrap(),
            transport: "UDP".into(),
            expires_at: now_secs() + 60,
            call_id: "c".into(),
            user_agent: String::new(),
            path: Vec::new(),
        });
        let t = dial("internal/1000%127.0.0.1").unwrap();
        assert_eq!(t.target.addr, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(t.uri.host, "10.9.9.9");
        assert!(t.route.is_empty());
        // Not behind NAT: reached at its Contact.
        let direct = |_: usize, _: &Registration| false;
        let t = dial_target(
            "internal/1000%127.0.0.1",
            &profiles,
            &reg,
            &none,
            &dead,
            &direct,
        );
        assert_eq!(t.unwrap().target.addr, "10.9.9.9:5062".parse().unwrap());
        // Registered through a proxy that added Path: reached through it.
        reg.bind(Registration {
            profile: "internal".into(),
            user: "1001".into(),
            domain: "127.0.0.1".into(),
            contact: "sip:1001@10.9.9.9:5064".into(),
            network: "127.0.0.1:6000".parse().unwrap(),
            transport: "UDP".into(),
            expires_at: now_secs() + 60,
            call_id: "c".into(),
            user_agent: String::new(),
            path: vec![
                "<sip:127.0.0.1:5070;lr;received=sip:10.9.9.9:5064>".into(),
                "<sip:127.0.0.1:5071;lr>".into(),
            ],
        });
        for d in ["internal/1001%127.0.0.1", "internal/sip:1001@10.9.9.9:5064"] {
            let t = dial(d).unwrap();
            assert_eq!(t.target.addr, "127.0.0.1:5070".parse().unwrap(), "{d}");
            assert_eq!(t.route.len(), 2, "{d}");
            assert!(t.route[0].contains(":5070;lr;received="), "{d}");
        }
        assert_eq!(
            dial("gateway/nope/1").err(),
            Some(CallCause::INVALID_GATEWAY)
        );
    }

    #[test]
    fn a_tcp_registration_is_reached_through_its_flow_while_it_lives_else_at_its_contact() {
        let reg = Registrar::new(Box::new(crate::registrar::MemoryStore)).unwrap();
        let profiles = vec![("internal".to_string(), "127.0.0.1:5060".parse().unwrap())];
        let none = |_: &str| None;
        let flow: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        reg.bind(Registration {
            profile: "internal".into(),
            user: "1001".into(),
            domain: "127.0.0.1".into(),
            contact: "sip:1001@127.0.0.1:5072;transport=tcp".into(),
            network: flow,
            transport: "TCP".into(),
            expires_at: now_secs() + 60,
            call_id: "c".into(),
            user_agent: String::new(),
            path: Vec::new(),
        });
        for dial in [
            "internal/1001%127.0.0.1",
            "internal/sip:1001@127.0.0.1:5072;transport=tcp",
        ] {
            let alive = |a: SocketAddr| a == flow;
            let no_nat = |_: usize, _: &Registration| false;
            let t = dial_target(dial, &profiles, &reg, &none, &alive, &no_nat).unwrap();
            assert_eq!((t.target.proto, t.target.addr), (Proto::Tcp, flow));
            let gone = |_: SocketAddr| false;
            let t = dial_target(dial, &profiles, &reg, &none, &gone, &no_nat).unwrap();
            assert_eq!(
                (t.target.proto, t.target.addr),
                (Proto::Tcp, "127.0.0.1:5072".parse().unwrap())
            );
        }
    }
}

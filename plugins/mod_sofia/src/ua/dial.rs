//! Where an outbound call goes, from the dial string after `sofia/`.

use super::*;

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

/// Where a request to a registered contact goes: through the proxies of
/// its Path (RFC 3327) — to the first one, with the Path as Route set —
/// or else where its REGISTER came from (NAT-safe).
fn registered_target(r: &Registration, profile: usize) -> (Target, Vec<String>) {
    let proto = if r.transport == "TCP" {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let first_hop = r
        .path
        .first()
        .and_then(|p| NameAddr::parse(p))
        .and_then(|na| Uri::parse(&na.uri_text))
        .and_then(|u| resolve(&u.host_port()));
    (
        Target {
            proto,
            addr: first_hop.unwrap_or(r.network),
            profile,
        },
        r.path.clone(),
    )
}

/// Parses `<profile>/<user>@<host>[:port]`, `<profile>/sip:…`,
/// `<profile>/<user>%<domain>` (a registered user) and
/// `gateway/<name>/<number>`.
pub fn dial_target(
    dial: &str,
    profiles: &[(String, SocketAddr)],
    registrar: &Registrar,
    gateways: &dyn Fn(&str) -> Option<GatewayEntry>,
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
        let addr = resolve(&proxy).ok_or(CallCause::GATEWAY_DOWN)?;
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
        let (target, route) = registered_target(r, pi);
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
    let proto = if uri
        .param("transport")
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
    {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    // A registered contact is reached where it registered from (NAT).
    let via_reg = uri.user.as_ref().and_then(|u| {
        registrar
            .lookup(&format!("{u}@{}", uri.host), Some(pname))
            .into_iter()
            .chain(registrar.all(pname))
            .find(|r| r.contact == text || r.contact == uri.to_string())
            .map(|r| registered_target(&r, pi))
    });
    let (target, route) = match via_reg {
        Some((mut t, route)) => {
            t.proto = proto;
            (t, route)
        }
        None => (
            Target {
                proto,
                addr: resolve(&uri.host_port()).ok_or(CallCause::NO_ROUTE_DESTINATION)?,
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
        let t = dial_target("internal/1000@127.0.0.1:5090", &profiles, &reg, &none).unwrap();
        assert_eq!(t.target.addr, "127.0.0.1:5090".parse().unwrap());
        assert_eq!(t.uri.user.as_deref(), Some("1000"));
        assert_eq!(
            dial_target("nope/1000@127.0.0.1", &profiles, &reg, &none).err(),
            Some(CallCause::INVALID_PROFILE)
        );
        assert_eq!(
            dial_target("internal/1000%127.0.0.1", &profiles, &reg, &none).err(),
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
        let t = dial_target("internal/1000%127.0.0.1", &profiles, &reg, &none).unwrap();
        assert_eq!(t.target.addr, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(t.uri.host, "10.9.9.9");
        assert!(t.route.is_empty());
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
        for dial in ["internal/1001%127.0.0.1", "internal/sip:1001@10.9.9.9:5064"] {
            let t = dial_target(dial, &profiles, &reg, &none).unwrap();
            assert_eq!(t.target.addr, "127.0.0.1:5070".parse().unwrap(), "{dial}");
            assert_eq!(t.route.len(), 2, "{dial}");
            assert!(t.route[0].contains(":5070;lr;received="), "{dial}");
        }
        assert_eq!(
            dial_target("gateway/nope/1", &profiles, &reg, &none).err(),
            Some(CallCause::INVALID_GATEWAY)
        );
    }
}

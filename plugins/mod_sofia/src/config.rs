//! `sofia.conf` (profiles from `conf/sip_profiles/*.xml`, their gateways)
//! and the RTP port range of `switch.conf`, with FreeSWITCH's parameter
//! names.

use crate::sdp::Codec;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The section's XML as plugin-api's parsed tree.
pub use hotswitch_plugin_api::config::Element;

/// How DTMF is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfType {
    Rfc2833,
    Info,
    None,
}

/// A gateway: a peer we register with and call through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    pub name: String,
    pub username: String,
    pub password: String,
    pub realm: String,
    /// `host[:port]` requests go to.
    pub proxy: String,
    pub from_domain: String,
    pub register: bool,
    pub expire_seconds: u32,
    pub retry_seconds: u32,
    pub caller_id_in_from: bool,
    pub extension: String,
}

/// How long TCP connections of a profile live and how many there may be.
/// Parameter names in FreeSWITCH's `tcp-*` family; times in milliseconds
/// as `tcp-keepalive` and `tcp-pingpong` are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// `tcp-idle-timeout`: a connection that received nothing for this
    /// long is closed (sofia-sip's default idle time, 30 minutes).
    pub idle: Duration,
    /// `tcp-message-timeout`: a message begun but not whole (its head or
    /// the body its Content-Length announced) after this long closes the
    /// connection (64×T1, as Timers B and F).
    pub message: Duration,
    /// `tcp-keepalive`: a CRLF CRLF ping (RFC 5626 §4.4.1) after this long
    /// without sending; `None`: no pings.
    pub keepalive: Option<Duration>,
    /// `tcp-pingpong`: after a ping, a connection that sends nothing back
    /// within this long is closed; `None`: no wait.
    pub pingpong: Option<Duration>,
    /// `tcp-max-connections`: accepted connections open at once.
    pub max_total: usize,
    /// `tcp-max-connections-per-ip`: accepted connections from one address.
    pub max_per_ip: usize,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits {
            idle: Duration::from_secs(1800),
            message: Duration::from_secs(32),
            keepalive: None,
            pingpong: None,
            max_total: 2048,
            max_per_ip: 256,
        }
    }
}

/// One profile's settings.
#[derive(Clone, Debug)]
pub struct ProfileConfig {
    pub name: String,
    pub sip_ip: IpAddr,
    pub sip_port: u16,
    pub rtp_ip: IpAddr,
    /// Address written in SDP and Contact when it differs (NAT).
    pub ext_rtp_ip: Option<IpAddr>,
    pub context: String,
    pub dialplan: String,
    pub codecs: Vec<Codec>,
    pub auth_calls: bool,
    /// `apply-inbound-acl`: lists (of [`crate::acl::Acls`]) whose match
    /// trusts an INVITE (no digest challenge with `auth-calls`); a caller
    /// no list matches is challenged, or refused 403 without `auth-calls`.
    pub inbound_acl: Vec<String>,
    /// `apply-register-acl`: lists a REGISTER must match all of (then it
    /// registers without a challenge); a miss is refused 403.
    pub register_acl: Vec<String>,
    pub user_agent: String,
    pub dtmf_type: DtmfType,
    pub te_pt: u8,
    pub rtp_timeout: Option<Duration>,
    pub rtp_hold_timeout: Option<Duration>,
    pub registration_db: Option<String>,
    /// `odbc-dsn`: registrations in this PostgreSQL database (checked at
    /// load by [`crate::registrar_pg::parse_dsn`]).
    pub odbc_dsn: Option<String>,
    /// The realm challenges name (default: the request's host).
    pub challenge_realm: Option<String>,
    pub tcp: bool,
    pub gateways: Vec<Gateway>,
    /// `sip-trace` at start.
    pub trace: bool,
    /// TCP connection lifetimes and caps (TLS connections' too).
    pub tcp_limits: TcpLimits,
    /// SIP over TLS: `tls`, `tls-sip-port`, `tls-cert-dir`, ….
    pub tls: crate::tls::TlsSettings,
    /// `rtp-secure-media`: the profile's `rtp_secure_media` for calls
    /// whose channel sets none.
    pub secure_media: crate::srtp::SecureMedia,
    /// `ws-binding` / `wss-binding`: SIP over WebSocket (RFC 7118).
    pub ws_binding: Option<std::net::SocketAddr>,
    pub wss_binding: Option<std::net::SocketAddr>,
    /// `NDLB-force-rport`, `aggressive-nat-detection`, `apply-nat-acl`.
    pub nat: crate::nat::NatSettings,
    /// `track-calls`: answered calls kept in the `odbc-dsn` database for
    /// `sofia recover` on another node (see [`crate::tracking`]).
    pub track_calls: bool,
}

/// Everything mod_sofia reads.
#[derive(Clone, Debug)]
pub struct Config {
    pub profiles: Vec<ProfileConfig>,
    /// The network lists profiles' ACLs name (`acl.conf` and the built-in
    /// `*.auto` lists).
    pub acls: crate::acl::Acls,
    pub rtp_start: u16,
    pub rtp_end: u16,
}

/// A setting that cannot be used.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sofia.conf: {}", self.0)
    }
}

pub(crate) fn bool_param(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "enabled"
    )
}

impl Config {
    /// Reads `sofia.conf`, `switch.conf`'s RTP range and `acl.conf`'s
    /// network lists.
    /// `domain_users` gives the users of a directory domain that carry a
    /// `cidr` attribute (acl.conf's `domain=` nodes).
    pub fn from_xml(
        sofia: Option<&str>,
        switch: Option<&str>,
        acl: Option<&str>,
        domain_users: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut rtp_start = 16384u16;
        let mut rtp_end = 32768u16;
        if let Some(sw) = switch {
            let root = Element::parse(sw).map_err(|e| ConfigError(format!("switch.conf: {e}")))?;
            if let Some(settings) = root.child("settings") {
                for (k, v) in settings.params() {
                    let port = || {
                        v.trim().parse::<u16>().map_err(|_| {
                            ConfigError(format!("switch.conf {k} {v:?} is not a port"))
                        })
                    };
                    match k.as_str() {
                        "rtp-start-port" => rtp_start = port()?,
                        "rtp-end-port" => rtp_end = port()?,
                        _ => {}
                    }
                }
            }
        }
        if rtp_end <= rtp_start + 2 {
            return Err(ConfigError(format!(
                "rtp-start-port {rtp_start} / rtp-end-port {rtp_end} leave no ports"
            )));
        }
        let mut profiles = Vec::new();
        if let Some(xml) = sofia {
            let root = Element::parse(xml).map_err(|e| ConfigError(e.0))?;
            if let Some(ps) = root.child("profiles") {
                for p in ps.children("profile") {
                    profiles.push(profile(p)?);
                }
            }
        }
        for (i, p) in profiles.iter().enumerate() {
            if profiles[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError(format!(
                    "profile {:?} is defined twice",
                    p.name
                )));
            }
        }
        let acls = crate::acl::Acls::from_xml(acl, crate::acl::local_network(), domain_users)
            .map_err(|e| ConfigError(e.to_string()))?;
        for p in &profiles {
            for name in p.inbound_acl.iter().chain(&p.register_acl) {
                if !acls.knows(name) {
                    log::warn!(
                        "profile {}: ACL {name:?} is no list of acl.conf nor a CIDR: it matches nothing",
                        p.name
                    );
                }
            }
        }
        Ok(Config {
            profiles,
            acls,
            rtp_start,
            rtp_end,
        })
    }
}

fn profile(p: &Element) -> Result<ProfileConfig, ConfigError> {
    let name = p
        .attr("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConfigError("a <profile> has no name".into()))?
        .to_string();
    let err = |k: &str, v: &str| ConfigError(format!("profile {name}: {k} {v:?} is not valid"));
    let mut c = ProfileConfig {
        name: name.clone(),
        sip_ip: IpAddr::from([127, 0, 0, 1]),
        sip_port: 5060,
        rtp_ip: IpAddr::from([127, 0, 0, 1]),
        ext_rtp_ip: None,
        context: "public".into(),
        dialplan: "XML".into(),
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        auth_calls: false,
        inbound_acl: Vec::new(),
        register_acl: Vec::new(),
        user_agent: "hotswitch".into(),
        dtmf_type: DtmfType::Rfc2833,
        te_pt: 101,
        rtp_timeout: None,
        rtp_hold_timeout: None,
        registration_db: None,
        odbc_dsn: None,
        challenge_realm: None,
        tcp: true,
        gateways: Vec::new(),
        trace: false,
        tcp_limits: TcpLimits::default(),
        tls: crate::tls::TlsSettings::default(),
        secure_media: crate::srtp::SecureMedia::Default,
        ws_binding: None,
        wss_binding: None,
        nat: crate::nat::NatSettings::default(),
        track_calls: false,
    };
    let mut ws_bindings: [Option<String>; 2] = [None, None];
    let mut ext_ip: Option<String> = None;
    let mut rtp_ip_set = false;
    if let Some(settings) = p.child("settings") {
        for (k, v) in settings.params() {
            let vt = v.trim();
            match k.as_str() {
                "sip-ip" => c.sip_ip = vt.parse().map_err(|_| err(&k, &v))?,
                "sip-port" => c.sip_port = vt.parse().map_err(|_| err(&k, &v))?,
                "rtp-ip" => {
                    c.rtp_ip = vt.parse().map_err(|_| err(&k, &v))?;
                    rtp_ip_set = true;
                }
                // An address, stun:host[:port] or host:name (nat.rs),
                // resolved after the loop (sip-ip may come later).
                "ext-rtp-ip" | "ext-sip-ip" if !vt.is_empty() => ext_ip = Some(vt.to_string()),
                "context" => c.context = vt.to_string(),
                "dialplan" => c.dialplan = vt.to_string(),
                "codec-prefs" | "inbound-codec-prefs" | "outbound-codec-prefs" => {
                    let codecs = crate::sdp::codec_string(vt);
                    if codecs.is_empty() {
                        return Err(ConfigError(format!(
                            "profile {name}: {k} {v:?} names no codec hotswitch carries (PCMU, PCMA, G722, OPUS)"
                        )));
                    }
                    c.codecs = codecs;
                }
                "auth-calls" => c.auth_calls = bool_param(vt),
                // FreeSWITCH's form: one list (or CIDR) per param, repeated.
                "apply-inbound-acl" if !vt.is_empty() => c.inbound_acl.push(vt.to_string()),
                "apply-register-acl" if !vt.is_empty() => c.register_acl.push(vt.to_string()),
                "user-agent-string" => c.user_agent = vt.to_string(),
                "dtmf-type" => {
                    c.dtmf_type = match vt.to_ascii_lowercase().as_str() {
                        "rfc2833" | "rfc4733" => DtmfType::Rfc2833,
                        "info" => DtmfType::Info,
                        "none" => DtmfType::None,
                        _ => return Err(err(&k, &v)),
                    }
                }
                "rfc2833-pt" => {
                    c.te_pt = vt
                        .parse()
                        .ok()
                        .filter(|p| (96..128).contains(p))
                        .ok_or_else(|| err(&k, &v))?
                }
                "rtp-timeout-sec" => {
                    let s: u64 = vt.parse().map_err(|_| err(&k, &v))?;
                    c.rtp_timeout = (s > 0).then(|| Duration::from_secs(s));
                }
                "rtp-hold-timeout-sec" => {
                    let s: u64 = vt.parse().map_err(|_| err(&k, &v))?;
                    c.rtp_hold_timeout = (s > 0).then(|| Duration::from_secs(s));
                }
                "registration-db" if !vt.is_empty() => c.registration_db = Some(vt.to_string()),
                "odbc-dsn" if !vt.is_empty() => {
                    crate::registrar_pg::parse_dsn(vt)
                        .map_err(|e| ConfigError(format!("profile {name}: {e}")))?;
                    c.odbc_dsn = Some(vt.to_string())
                }
                "challenge-realm" if !vt.is_empty() && vt != "auto_from" && vt != "auto_to" => {
                    c.challenge_realm = Some(vt.to_string())
                }
                "enable-tcp" | "bind-tcp" => c.tcp = bool_param(vt),
                "ws-binding" if !vt.is_empty() => ws_bindings[0] = Some(vt.to_string()),
                "wss-binding" if !vt.is_empty() => ws_bindings[1] = Some(vt.to_string()),
                "rtp-secure-media" => {
                    c.secure_media = crate::srtp::SecureMedia::parse(vt)
                        .map_err(|e| ConfigError(format!("profile {name}: {e}")))?
                }
                "track-calls" => c.track_calls = bool_param(vt),
                "sip-trace" => c.trace = bool_param(vt),
                "tcp-idle-timeout" | "tcp-message-timeout" | "tcp-keepalive" | "tcp-pingpong" => {
                    let ms: u64 = vt.parse().map_err(|_| err(&k, &v))?;
                    let d = Duration::from_millis(ms);
                    let l = &mut c.tcp_limits;
                    match k.as_str() {
                        "tcp-idle-timeout" if ms > 0 => l.idle = d,
                        "tcp-message-timeout" if ms > 0 => l.message = d,
                        "tcp-keepalive" => l.keepalive = (ms > 0).then_some(d),
                        "tcp-pingpong" => l.pingpong = (ms > 0).then_some(d),
                        _ => return Err(err(&k, &v)),
                    }
                }
                "tcp-max-connections" | "tcp-max-connections-per-ip" => {
                    let n: usize = vt
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(&k, &v))?;
                    if k == "tcp-max-connections" {
                        c.tcp_limits.max_total = n;
                    } else {
                        c.tcp_limits.max_per_ip = n;
                    }
                }
                _ if c.nat.param(&k, vt) => {}
                _ => {
                    c.tls
                        .param(&k, vt)
                        .map_err(|e| ConfigError(format!("profile {name}: {e}")))?;
                }
            }
        }
    }
    if !rtp_ip_set {
        c.rtp_ip = c.sip_ip;
    }
    // Refused rather than ignored: without the database the nodes share,
    // no other node could take the calls over.
    if c.track_calls && c.odbc_dsn.is_none() {
        return Err(ConfigError(format!(
            "profile {name}: track-calls needs odbc-dsn: tracked calls are kept in the \
             PostgreSQL database the nodes share, for `sofia recover` on another node"
        )));
    }
    if let Some(v) = ext_ip {
        c.ext_rtp_ip = crate::nat::external_ip(&v, c.sip_ip)
            .map_err(|e| ConfigError(format!("profile {name}: ext-rtp-ip: {e}")))?;
    }
    // FreeSWITCH's form `[ip]:port`; no address: the profile's sip-ip.
    let [ws, wss] = ws_bindings.map(|b| {
        b.map(|v| {
            let (ip, port) = v.rsplit_once(':').unwrap_or(("", v.as_str()));
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let ip = if ip.is_empty() {
                Ok(c.sip_ip)
            } else {
                ip.parse()
            };
            match (ip, port.parse::<u16>()) {
                (Ok(ip), Ok(port)) => Ok(std::net::SocketAddr::new(ip, port)),
                _ => Err(ConfigError(format!(
                    "profile {name}: ws/wss binding {v:?} is not [ip]:port"
                ))),
            }
        })
        .transpose()
    });
    c.ws_binding = ws?;
    c.wss_binding = wss?;
    if let Some(gws) = p.child("gateways") {
        for g in gws.children("gateway") {
            c.gateways.push(gateway(&name, g)?);
        }
    }
    Ok(c)
}

fn gateway(profile: &str, g: &Element) -> Result<Gateway, ConfigError> {
    let name = g
        .attr("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConfigError(format!("profile {profile}: a <gateway> has no name")))?
        .to_string();
    let mut gw = Gateway {
        name: name.clone(),
        username: String::new(),
        password: String::new(),
        realm: String::new(),
        proxy: String::new(),
        from_domain: String::new(),
        register: true,
        expire_seconds: 3600,
        retry_seconds: 30,
        caller_id_in_from: false,
        extension: String::new(),
    };
    for (k, v) in g.params() {
        let v = v.trim().to_string();
        match k.as_str() {
            "username" => gw.username = v,
            "password" => gw.password = v,
            "realm" => gw.realm = v,
            "proxy" => gw.proxy = v,
            "from-domain" => gw.from_domain = v,
            "register" => gw.register = bool_param(&v),
            "expire-seconds" => {
                gw.expire_seconds = v.parse().ok().filter(|n| *n >= 10).ok_or_else(|| {
                    ConfigError(format!("gateway {name}: expire-seconds {v:?} is not valid"))
                })?
            }
            "retry-seconds" => gw.retry_seconds = v.parse().unwrap_or(30).max(1),
            "caller-id-in-from" => gw.caller_id_in_from = bool_param(&v),
            "extension" => gw.extension = v,
            _ => {}
        }
    }
    if gw.proxy.is_empty() {
        gw.proxy = gw.realm.clone();
    }
    if gw.realm.is_empty() {
        gw.realm = gw.proxy.clone();
    }
    if gw.proxy.is_empty() {
        return Err(ConfigError(format!(
            "gateway {name}: neither proxy nor realm is set"
        )));
    }
    if gw.from_domain.is_empty() {
        gw.from_domain = gw.realm.split(':').next().unwrap_or("").to_string();
    }
    if gw.register && gw.username.is_empty() {
        return Err(ConfigError(format!(
            "gateway {name}: register is on but username is empty"
        )));
    }
    Ok(gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"<configuration name="sofia.conf"><profiles>
      <profile name="internal"><gateways>
        <gateway name="carrier"><param name="username" value="u"/><param name="password" value="p"/>
          <param name="proxy" value="127.0.0.1:5090"/></gateway>
      </gateways><settings>
        <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="5070"/>
        <param name="context" value="default"/><param name="codec-prefs" value="PCMA,PCMU,G729"/>
        <param name="auth-calls" value="true"/><param name="apply-inbound-acl" value="loopback.auto"/>
        <param name="dtmf-type" value="info"/>
        <param name="tcp-idle-timeout" value="60000"/><param name="tcp-keepalive" value="20000"/>
        <param name="tcp-max-connections" value="10"/><param name="tcp-max-connections-per-ip" value="3"/>
      </settings></profile>
      <profile name="external"><settings><param name="sip-port" value="5080"/></settings></profile>
    </profiles></configuration>"#;

    #[test]
    fn profiles_take_freeswitch_parameter_names() {
        let sw = r#"<configuration name="switch.conf"><settings><param name="rtp-start-port" value="20000"/><param name="rtp-end-port" value="20100"/></settings></configuration>"#;
        let c = Config::from_xml(Some(CONF), Some(sw), None, &|_| Vec::new()).unwrap();
        assert_eq!((c.rtp_start, c.rtp_end), (20000, 20100));
        let p = &c.profiles[0];
        assert_eq!(p.sip_port, 5070);
        assert_eq!(p.context, "default");
        assert_eq!(p.codecs, vec![Codec::Pcma, Codec::Pcmu]);
        assert!(p.auth_calls);
        assert_eq!(p.dtmf_type, DtmfType::Info);
        assert_eq!(p.inbound_acl, vec!["loopback.auto".to_string()]);
        assert!(c
            .acls
            .check(&p.inbound_acl[0], "127.0.0.9".parse().unwrap()));
        assert!(!c
            .acls
            .check(&p.inbound_acl[0], "192.168.1.1".parse().unwrap()));
        assert_eq!(p.gateways[0].proxy, "127.0.0.1:5090");
        assert_eq!(p.gateways[0].realm, "127.0.0.1:5090");
        assert_eq!(c.profiles[1].context, "public");
        let l = &p.tcp_limits;
        assert_eq!(l.idle, Duration::from_secs(60));
        assert_eq!(l.keepalive, Some(Duration::from_secs(20)));
        assert_eq!((l.max_total, l.max_per_ip, l.pingpong), (10, 3, None));
        assert_eq!(c.profiles[1].tcp_limits, TcpLimits::default());
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = CONF.replace("value=\"5070\"", "value=\"fifty\"");
        let e = Config::from_xml(Some(&bad), None, None, &|_| Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip-port") && e.contains("fifty"), "{e}");
        let bad = CONF.replace("PCMA,PCMU,G729", "G729");
        assert!(Config::from_xml(Some(&bad), None, None, &|_| Vec::new())
            .unwrap_err()
            .to_string()
            .contains("codec-prefs"));
        let bad = CONF.replace("value=\"60000\"", "value=\"soon\"");
        let e = Config::from_xml(Some(&bad), None, None, &|_| Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp-idle-timeout"), "{e}");
        let dup = CONF.replace("name=\"external\"", "name=\"internal\"");
        assert!(Config::from_xml(Some(&dup), None, None, &|_| Vec::new())
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(Config::from_xml(Some("<configuration"), None, None, &|_| Vec::new()).is_err());
    }

    #[test]
    fn shared_state_params_are_used_or_refused_never_ignored() {
        let with = |param: &str| {
            CONF.replace(
                r#"<param name="dtmf-type" value="info"/>"#,
                &format!(r#"<param name="dtmf-type" value="info"/>{param}"#),
            )
        };
        let c = Config::from_xml(
            Some(&with(
                r#"<param name="odbc-dsn" value="pgsql://hostaddr=127.0.0.1 dbname=fs user=fs"/>"#,
            )),
            None,
            None,
            &|_| Vec::new(),
        )
        .unwrap();
        assert!(c.profiles[0].odbc_dsn.is_some());
        assert!(c.profiles[0].registration_db.is_none());
        for refused in [
            r#"<param name="odbc-dsn" value="fs:user:pass"/>"#,
            r#"<param name="track-calls" value="true"/>"#,
        ] {
            let e =
                Config::from_xml(Some(&with(refused)), None, None, &|_| Vec::new()).unwrap_err();
            assert!(e.to_string().contains("profile internal"), "{e}");
        }
        assert!(Config::from_xml(
            Some(&with(r#"<param name="track-calls" value="false"/>"#)),
            None,
            None,
            &|_| Vec::new()
        )
        .is_ok());
        let c = Config::from_xml(
            Some(&with(
                r#"<param name="track-calls" value="true"/><param name="odbc-dsn" value="pgsql://hostaddr=127.0.0.1 dbname=fs"/>"#,
            )),
            None,
            None,
            &|_| Vec::new(),
        )
        .unwrap();
        assert!(c.profiles[0].track_calls);
    }
}

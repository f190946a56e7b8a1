//! `verto.conf`: profiles with FreeSWITCH's parameter names (`bind-local`
//! with and without `secure="true"`, `secure-combined`, `secure-cert`,
//! `secure-key`, `userauth`, `blind-reg`, `force-register-domain`,
//! `context`, `dialplan`, `rtp-ip`) and the global `detach-timeout-sec`.

use crate::conn::Settings;
use hotswitch_plugin_api::config::Element;
use std::net::{IpAddr, SocketAddr};

/// One profile: where it listens and how its clients are treated.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    /// Plain WebSocket listeners (`bind-local` without `secure="true"`).
    pub binds: Vec<SocketAddr>,
    /// TLS listeners (`bind-local` with `secure="true"`): wss.
    pub secure_binds: Vec<SocketAddr>,
    /// `secure-combined`: one PEM file with the certificate (chain) and its
    /// key; generated, self-signed, when it does not exist.
    pub secure_combined: Option<String>,
    /// `secure-cert` / `secure-key`: the same in two files.
    pub secure_cert: Option<String>,
    pub secure_key: Option<String>,
    /// `rtp-ip`: where WebRTC media is offered (default: the first bind).
    pub rtp_ip: Option<IpAddr>,
    pub settings: Settings,
}

/// The whole section.
#[derive(Clone, Debug)]
pub struct Config {
    pub profiles: Vec<Profile>,
    pub debug: bool,
    /// `detach-timeout-sec`: how long an answered call outlives its
    /// client's connection, waiting for the client to come back with its
    /// session id (`verto.attach`). FreeSWITCH's default: 120.
    pub detach_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            profiles: Vec::new(),
            debug: false,
            detach_timeout_secs: 120,
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow"
    )
}

impl Config {
    /// Parses the `verto.conf` section's XML.
    pub fn from_xml(xml: &str) -> Result<Config, String> {
        let root = Element::parse(xml)?;
        let mut config = Config::default();
        config.visit(&root)?;
        Ok(config)
    }

    /// `<profile>`s and the global params (those outside any profile) at
    /// any depth below `e`, in document order.
    fn visit(&mut self, e: &Element) -> Result<(), String> {
        for c in e.elements() {
            match c.name() {
                "profile" => {
                    let name = c.attr("name").unwrap_or("default").to_string();
                    let mut p = Profile {
                        name: name.clone(),
                        binds: Vec::new(),
                        secure_binds: Vec::new(),
                        secure_combined: None,
                        secure_cert: None,
                        secure_key: None,
                        rtp_ip: None,
                        settings: Settings {
                            profile: name,
                            userauth: false,
                            blind_reg: false,
                            force_domain: None,
                            context: "default".into(),
                            dialplan: "XML".into(),
                        },
                    };
                    for param in c.descendants("param") {
                        let (Some(name), Some(value)) = (param.attr("name"), param.attr("value"))
                        else {
                            continue;
                        };
                        let secure = param.attr("secure").is_some_and(truthy);
                        p.param(name, value, secure)?;
                    }
                    self.profiles.push(p);
                }
                "param" => {
                    let (Some(name), Some(value)) = (c.attr("name"), c.attr("value")) else {
                        continue;
                    };
                    match name {
                        "debug" => self.debug = value != "0" && !value.is_empty(),
                        "detach-timeout-sec" => {
                            self.detach_timeout_secs = value
                                .trim()
                                .parse()
                                .map_err(|e| format!("detach-timeout-sec {value}: {e}"))?;
                        }
                        _ => {}
                    }
                }
                _ => self.visit(c)?,
            }
        }
        Ok(())
    }
}

impl Profile {
    fn param(&mut self, name: &str, value: &str, secure: bool) -> Result<(), String> {
        let s = &mut self.settings;
        match name {
            "bind-local" => {
                let addr = value
                    .parse()
                    .map_err(|e| format!("profile {}: bind-local {value}: {e}", self.name))?;
                if secure {
                    self.secure_binds.push(addr);
                } else {
                    self.binds.push(addr);
                }
            }
            "secure-combined" if !value.is_empty() => self.secure_combined = Some(value.into()),
            "secure-cert" if !value.is_empty() => self.secure_cert = Some(value.into()),
            "secure-key" if !value.is_empty() => self.secure_key = Some(value.into()),
            "rtp-ip" => {
                let ip = value
                    .parse()
                    .map_err(|e| format!("profile {}: rtp-ip {value}: {e}", self.name))?;
                self.rtp_ip = Some(ip);
            }
            "userauth" => s.userauth = truthy(value),
            "blind-reg" => s.blind_reg = truthy(value),
            "force-register-domain" if !value.is_empty() => s.force_domain = Some(value.into()),
            "context" if !value.is_empty() => s.context = value.into(),
            "dialplan" if !value.is_empty() => s.dialplan = value.into(),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_takes_freeswitchs_parameter_names() {
        let c = Config::from_xml(
            r#"<configuration name="verto.conf"><settings><param name="debug" value="1"/></settings>
<profiles><profile name="ws">
  <param name="bind-local" value="127.0.0.1:8081"/>
  <param name="bind-local" value="127.0.0.1:8082" secure="true"/>
  <param name="userauth" value="true"/><param name="blind-reg" value="false"/>
  <param name="context" value="public"/><param name="dialplan" value="XML"/>
  <param name="force-register-domain" value="example.org"/>
</profile></profiles></configuration>"#,
        )
        .unwrap();
        assert!(c.debug);
        let p = &c.profiles[0];
        assert_eq!(p.name, "ws");
        assert_eq!(p.binds, vec!["127.0.0.1:8081".parse().unwrap()]);
        assert_eq!(p.secure_binds, vec!["127.0.0.1:8082".parse().unwrap()]);
        assert!(p.settings.userauth && !p.settings.blind_reg);
        assert_eq!(p.settings.context, "public");
        assert_eq!(p.settings.force_domain.as_deref(), Some("example.org"));
    }

    #[test]
    fn a_bad_bind_address_names_the_profile() {
        let e = Config::from_xml(
            r#"<configuration><profiles><profile name="x"><param name="bind-local" value="nowhere"/></profile></profiles></configuration>"#,
        )
        .unwrap_err();
        assert!(e.contains("profile x"), "{e}");
    }
}

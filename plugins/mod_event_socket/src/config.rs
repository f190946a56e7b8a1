//! `event_socket.conf`: FreeSWITCH's parameters, read from the section the
//! host hands over.
//!
//! ```xml
//! <configuration name="event_socket.conf"><settings>
//!   <param name="listen-ip" value="127.0.0.1"/>
//!   <param name="listen-port" value="8021"/>
//!   <param name="password" value="ClueCon"/>
//!   <param name="apply-inbound-acl" value="loopback.auto"/>
//!   <param name="max-connections" value="1000"/>
//! </settings></configuration>
//! ```
//!
//! Besides FreeSWITCH's, `max-connections` (0: no limit) and
//! `queue-size` (frames waiting for a slow client before it is cut off;
//! the switch keeps four times as many events for the connection's event
//! thread, see [`crate::pump`]).

use crate::acl::{Acl, AclError};
use hotswitch_plugin_api::config::Element;
use std::fmt;
use std::net::IpAddr;

/// The module's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen_ip: IpAddr,
    /// Port to listen on.
    pub listen_port: u16,
    /// The `auth` password.
    pub password: String,
    /// Who may connect.
    pub acl: Acl,
    /// Connections served at once (0: no limit).
    pub max_connections: usize,
    /// Frames queued for one client before it is disconnected.
    pub queue_size: usize,
}

/// A parameter with a value that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// Not a number, or out of range.
    Number { param: String, value: String },
    /// Not an IP address.
    Address(String),
    /// A bad ACL entry.
    Acl(AclError),
    /// The section's XML does not parse.
    Xml(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Number { param, value } => {
                write!(
                    f,
                    "event_socket.conf: {param} {value:?} is not a valid number"
                )
            }
            ConfigError::Address(v) => {
                write!(f, "event_socket.conf: listen-ip {v:?} is not an IP address")
            }
            ConfigError::Acl(e) => write!(f, "event_socket.conf: {e}"),
            ConfigError::Xml(e) => write!(f, "event_socket.conf: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the section's XML (`None`: no section, every default).
    pub fn from_xml(xml: Option<&str>) -> Result<Config, ConfigError> {
        let mut listen_ip: IpAddr = [127, 0, 0, 1].into();
        let mut listen_port = 8021u16;
        let mut password = "ClueCon".to_string();
        let mut acls = Vec::new();
        let mut max_connections = 1000usize;
        let mut queue_size = 10_000usize;
        let number = |param: &str, value: &str| ConfigError::Number {
            param: param.into(),
            value: value.into(),
        };
        let params = match xml {
            Some(x) => Element::parse(x)
                .map_err(|e| ConfigError::Xml(e.0))?
                .descendants("param")
                .into_iter()
                .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value")?.to_string())))
                .collect(),
            None => Vec::new(),
        };
        for (name, value) in params {
            match name.as_str() {
                "listen-ip" if !value.is_empty() => {
                    let v = value.trim().trim_start_matches('[').trim_end_matches(']');
                    listen_ip = v.parse().map_err(|_| ConfigError::Address(value.clone()))?;
                }
                "listen-port" => {
                    listen_port = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| number(&name, &value))?
                }
                "password" if !value.is_empty() => password = value,
                "apply-inbound-acl" if !value.trim().is_empty() => acls.push(value),
                "max-connections" => {
                    max_connections = value.trim().parse().map_err(|_| number(&name, &value))?
                }
                "queue-size" => {
                    queue_size = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n >= 16)
                        .ok_or_else(|| number(&name, &value))?
                }
                _ => {}
            }
        }
        Ok(Config {
            listen_ip,
            listen_port,
            password,
            acl: Acl::parse(&acls).map_err(ConfigError::Acl)?,
            max_connections,
            queue_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_section_means_freeswitchs_defaults() {
        let c = Config::from_xml(None).unwrap();
        assert_eq!(c.listen_ip.to_string(), "127.0.0.1");
        assert_eq!(c.listen_port, 8021);
        assert_eq!(c.password, "ClueCon");
        assert!(c.acl.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(c.acl.check("10.1.1.1".parse().unwrap()).is_err());
    }

    #[test]
    fn params_are_read_and_comments_ignored() {
        let xml = r#"<configuration name="event_socket.conf" description="Socket Client">
          <settings>
            <!-- <param name="listen-port" value="1"/> -->
            <param name="listen-ip" value="::"/>
            <param name="listen-port" value="8022"/>
            <param name='password' value='s&amp;cret'/>
            <param name="apply-inbound-acl" value="127.0.0.0/8,::1/128"/>
            <param name="max-connections" value="5"/>
            <param name="queue-size" value="100"/>
          </settings>
        </configuration>"#;
        let c = Config::from_xml(Some(xml)).unwrap();
        assert_eq!(c.listen_ip.to_string(), "::");
        assert_eq!(c.listen_port, 8022);
        assert_eq!(c.password, "s&cret");
        assert_eq!(c.max_connections, 5);
        assert_eq!(c.queue_size, 100);
        assert!(c.acl.check("::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn a_bad_value_is_an_error_that_names_it() {
        let xml = r#"<settings><param name="listen-port" value="http"/></settings>"#;
        let e = Config::from_xml(Some(xml)).unwrap_err();
        assert!(e.to_string().contains("listen-port"), "{e}");
        let xml = r#"<settings><param name="apply-inbound-acl" value="lan"/></settings>"#;
        assert!(Config::from_xml(Some(xml)).is_err());
    }
}

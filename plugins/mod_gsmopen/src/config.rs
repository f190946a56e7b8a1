//! `gsmopen.conf`: one `<interface name="…">` per modem, with FreeSWITCH's
//! parameter names where mod_gsmopen has one.
//!
//! ```xml
//! <configuration name="gsmopen.conf">
//!   <per_interface_settings>
//!     <interface id="1" name="gsm0">
//!       <param name="controldevice_name" value="/dev/ttyUSB2"/>
//!       <param name="controldevice_speed" value="115200"/>
//!       <param name="controldevice_audio_name" value="/run/gsm0.audio"/>
//!       <param name="context" value="public"/>
//!       <param name="dialplan" value="XML"/>
//!       <param name="destination" value="5000"/>
//!       <param name="at_preinit_1" value="AT+CFUN=1"/>
//!       <param name="at_postinit_1" value="AT+CSCS=&quot;GSM&quot;"/>
//!       <param name="at_hangup" value="ATH"/>
//!       <param name="sms_mode" value="pdu"/>
//!     </interface>
//!   </per_interface_settings>
//! </configuration>
//! ```

use crate::at::Settings;
use hotswitch_plugin_api::config::Element;
use std::fmt;
use std::time::Duration;

/// One modem.
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    pub name: String,
    /// The control (AT) port.
    pub device: String,
    pub speed: u32,
    /// The audio socket (8 kHz 16-bit frames); empty: no audio.
    pub audio_device: String,
    pub context: String,
    pub dialplan: String,
    /// Where inbound calls go.
    pub destination: String,
    /// Incoming messages are also sent through this chat protocol.
    pub sms_chat_proto: String,
    /// … to this address.
    pub sms_chat_to: String,
    /// How soon a lost port is tried again.
    pub reopen_interval: Duration,
    pub driver: Settings,
}

/// A configuration error, naming the interface and parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl InterfaceConfig {
    fn new(name: &str) -> InterfaceConfig {
        InterfaceConfig {
            name: name.into(),
            device: String::new(),
            speed: 115_200,
            audio_device: String::new(),
            context: "public".into(),
            dialplan: "XML".into(),
            destination: "5000".into(),
            sms_chat_proto: String::new(),
            sms_chat_to: String::new(),
            reopen_interval: Duration::from_secs(1),
            driver: Settings::default(),
        }
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError(format!("interface {}: bad {name} '{value}'", self.name));
        let secs = |v: &str| -> Option<Duration> {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
        };
        match name {
            "controldevice_name" => self.device = value.into(),
            "controldevice_speed" => self.speed = value.parse().map_err(|_| bad())?,
            "controldevice_audio_name" | "audiodevice" => self.audio_device = value.into(),
            "context" => self.context = value.into(),
            "dialplan" => self.dialplan = value.into(),
            "destination" => self.destination = value.into(),
            "at_hangup" => self.driver.at_hangup = value.into(),
            "at_answer" => self.driver.at_answer = value.into(),
            "at_dial_pre_number" => self.driver.at_dial_pre = value.into(),
            "at_dial_post_number" => self.driver.at_dial_post = value.into(),
            "sms_cnmi" => self.driver.at_cnmi = value.into(),
            "sms_mode" => {
                self.driver.sms_pdu = match value {
                    "pdu" => true,
                    "text" => false,
                    _ => return Err(bad()),
                }
            }
            "sms_chat_proto" => self.sms_chat_proto = value.into(),
            "sms_chat_to" => self.sms_chat_to = value.into(),
            "poll_interval" => self.driver.poll_interval = secs(value).ok_or_else(bad)?,
            "command_timeout" => self.driver.command_timeout = secs(value).ok_or_else(bad)?,
            "reopen_interval" => self.reopen_interval = secs(value).ok_or_else(bad)?,
            n if n.starts_with("at_preinit") => {
                if !value.is_empty() {
                    self.driver.at_preinit.push(value.into())
                }
            }
            n if n.starts_with("at_postinit") => {
                if !value.is_empty() {
                    self.driver.at_postinit.push(value.into())
                }
            }
            other => log::warn!("gsmopen.conf: unknown parameter '{other}' ignored"),
        }
        Ok(())
    }
}

/// Every interface of the section, in order.
pub fn parse(xml: &str) -> Result<Vec<InterfaceConfig>, ConfigError> {
    let mut out: Vec<InterfaceConfig> = Vec::new();
    let root = Element::parse(xml).map_err(|e| ConfigError(e.0))?;
    let own = (root.name() == "interface").then_some(&root);
    for iface in own.into_iter().chain(root.descendants("interface")) {
        let name = iface
            .attr("name")
            .or_else(|| iface.attr("id"))
            .ok_or_else(|| ConfigError("an interface without a name".into()))?;
        let mut c = InterfaceConfig::new(name);
        for p in iface.descendants("param") {
            if let (Some(n), Some(v)) = (p.attr("name"), p.attr("value")) {
                c.set(n, v)?;
            }
        }
        if c.device.is_empty() {
            return Err(ConfigError(format!(
                "interface {}: no controldevice_name",
                c.name
            )));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)) {
            return Err(ConfigError(format!("interface {} twice", c.name)));
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_read_with_their_parameters_and_defaults() {
        let xml = r#"<configuration name="gsmopen.conf">
          <global_settings><param name="debug" value="1"/></global_settings>
          <per_interface_settings>
            <!-- <interface name="commented"/> -->
            <interface id="1" name="gsm0">
              <param name="controldevice_name" value="/dev/ttyUSB2"/>
              <param name="controldevice_audio_name" value="/run/a"/>
              <param name="destination" value="9196"/>
              <param name="at_preinit_1" value="AT+CFUN=1"/>
              <param name="at_postinit_1" value="AT+CSCS=&quot;GSM&quot;"/>
              <param name="at_hangup" value="AT+CHUP"/>
              <param name="sms_mode" value="text"/>
              <param name="poll_interval" value="2.5"/>
            </interface>
            <interface id="2" name="gsm1">
              <param name="controldevice_name" value="/dev/ttyUSB5"/>
            </interface>
          </per_interface_settings></configuration>"#;
        let c = parse(xml).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "gsm0");
        assert_eq!(c[0].audio_device, "/run/a");
        assert_eq!(c[0].destination, "9196");
        assert_eq!(c[0].driver.at_preinit, ["AT+CFUN=1"]);
        assert_eq!(c[0].driver.at_postinit, ["AT+CSCS=\"GSM\""]);
        assert_eq!(c[0].driver.at_hangup, "AT+CHUP");
        assert!(!c[0].driver.sms_pdu);
        assert_eq!(c[0].driver.poll_interval, Duration::from_millis(2500));
        assert_eq!(c[1].context, "public");
        assert!(c[1].driver.sms_pdu);
    }

    #[test]
    fn a_missing_device_or_a_bad_value_names_the_interface() {
        let e = parse(r#"<interface name="x"></interface>"#).unwrap_err();
        assert!(e.0.contains("interface x"), "{e}");
        let e = parse(
            r#"<interface name="y"><param name="controldevice_name" value="/d"/>
               <param name="sms_mode" value="fax"/></interface>"#,
        )
        .unwrap_err();
        assert!(e.0.contains("sms_mode"), "{e}");
    }
}

//! `freetdm.conf`: spans, their channels and signalling, and channel
//! groups, read from the section the host hands over.
//!
//! ```xml
//! <configuration name="freetdm.conf">
//!   <spans>
//!     <span name="1" id="1" driver="virtual" signalling="analog" trunk-type="fxs">
//!       <param name="channels" value="1-4"/>
//!       <param name="socket-dir" value="/tmp/hotswitch-freetdm/1"/>
//!       <param name="codec" value="PCMU"/>
//!       <param name="context" value="default"/>
//!       <param name="dialplan" value="XML"/>
//!       <param name="digit-timeout" value="2000"/>
//!       <param name="dtmf-detect" value="true"/>
//!     </span>
//!     <span name="pri" id="2" driver="virtual" signalling="isdn" pri-side="user">
//!       <param name="channels" value="1-23"/>
//!       <param name="d-channel" value="24"/>
//!     </span>
//!   </spans>
//!   <groups>
//!     <group name="trunk"><member span="pri" channels="1-23"/></group>
//!   </groups>
//! </configuration>
//! ```

use crate::analog::FxsTiming;
use crate::g711::Law;
use crate::q931::Role;
use hotswitch_plugin_api::config::Element;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which hardware carries the span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// Channels over Unix datagram sockets (the line simulator).
    Virtual,
    /// Linux DAHDI devices (`/dev/dahdi/channel`).
    Dahdi,
}

/// The signalling a span speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signalling {
    /// Loop start; the channels are FXS ports (phones attach).
    Fxs,
    /// Loop start; the channels are FXO ports (exchange lines attach).
    Fxo,
    /// ISDN PRI, this side of the interface.
    Isdn(Role),
}

impl Signalling {
    /// As `ftdm list` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Signalling::Fxs => "analog/fxs",
            Signalling::Fxo => "analog/fxo",
            Signalling::Isdn(Role::User) => "isdn/user",
            Signalling::Isdn(Role::Network) => "isdn/network",
        }
    }
}

/// One span.
#[derive(Clone, Debug)]
pub struct SpanConfig {
    pub name: String,
    pub id: u32,
    pub driver: DriverKind,
    pub signalling: Signalling,
    /// Voice channels (B channels for ISDN), ascending.
    pub channels: Vec<u16>,
    /// The D channel (ISDN).
    pub d_channel: u16,
    pub law: Law,
    /// Where inbound calls route.
    pub context: String,
    pub dialplan: String,
    /// `virtual`: the directory of the span's sockets.
    pub socket_dir: PathBuf,
    /// `dahdi`: the DAHDI channel number of this span's channel 1.
    pub dahdi_offset: u32,
    /// FXS digit collection and ring cadence.
    pub timing: FxsTiming,
    /// FXO: the destination of inbound calls.
    pub fxo_destination: String,
    /// Groups every voice channel of the span joins.
    pub groups: Vec<String>,
    /// Detect in-band DTMF during calls and hand the digits to the call.
    pub dtmf_detect: bool,
}

/// A named list of channels to hunt over, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    /// (span name, channel) in hunting order.
    pub members: Vec<(String, u16)>,
}

/// The whole section.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub spans: Vec<SpanConfig>,
    pub groups: Vec<GroupConfig>,
}

/// A setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "freetdm.conf: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

/// `1-4,7,9-10` → [1, 2, 3, 4, 7, 9, 10], in the order written.
pub fn parse_range(s: &str) -> Result<Vec<u16>, ConfigError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError(format!("bad channel range {s:?}"));
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || b < a {
            return Err(bad());
        }
        for c in a..=b {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn millis(name: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError(format!("{name} {v:?} is not a number of milliseconds")))
}

impl Config {
    /// Reads the section's XML (`None`: no spans).
    pub fn from_xml(xml: Option<&str>) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let Some(xml) = xml else { return Ok(cfg) };
        let root = Element::parse(xml).map_err(|e| ConfigError(e.0))?;
        for sp in root.descendants("span") {
            let mut attrs: Vec<(String, String)> = sp
                .attrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for p in sp.descendants("param") {
                if let (Some(n), Some(v)) = (p.attr("name"), p.attr("value")) {
                    attrs.push((n.to_string(), v.to_string()));
                }
            }
            cfg.spans.push(span(&attrs, cfg.spans.len() as u32 + 1)?);
        }
        for gr in root.descendants("group") {
            let Some(name) = gr.attr("name") else {
                return err("a group without a name".into());
            };
            let mut g = GroupConfig {
                name: name.to_string(),
                members: Vec::new(),
            };
            for m in gr.descendants("member") {
                let span = m.attr("span").unwrap_or("").to_string();
                let chans = parse_range(m.attr("channels").unwrap_or(""))?;
                g.members
                    .extend(chans.into_iter().map(|c| (span.clone(), c)));
            }
            cfg.groups.push(g);
        }
        // Span-level `group` params, and checks.
        for s in &cfg.spans {
            if cfg
                .spans
                .iter()
                .filter(|o| o.name == s.name || o.id == s.id)
                .count()
                > 1
            {
                return err(format!("span {} (id {}) is defined twice", s.name, s.id));
            }
            for g in &s.groups {
                let members = s.channels.iter().map(|&c| (s.name.clone(), c));
                match cfg.groups.iter_mut().find(|x| &x.name == g) {
                    Some(x) => x.members.extend(members),
                    None => cfg.groups.push(GroupConfig {
                        name: g.clone(),
                        members: members.collect(),
                    }),
                }
            }
        }
        for g in &cfg.groups {
            for (span, chan) in &g.members {
                let Some(s) = cfg.spans.iter().find(|s| &s.name == span) else {
                    return err(format!("group {}: no span {span:?}", g.name));
                };
                if !s.channels.contains(chan) {
                    return err(format!(
                        "group {}: span {span} has no channel {chan}",
                        g.name
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

fn span(attrs: &[(String, String)], default_id: u32) -> Result<SpanConfig, ConfigError> {
    let get = |k: &str| {
        attrs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let name = get("name").unwrap_or("").trim().to_string();
    if name.is_empty() {
        return err("a span without a name".into());
    }
    let id = match get("id") {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("span {name}: bad id {v:?}")))?,
        None => default_id,
    };
    let driver = match get("driver").unwrap_or("virtual") {
        "virtual" => DriverKind::Virtual,
        "dahdi" => DriverKind::Dahdi,
        d => return err(format!("span {name}: unknown driver {d:?}")),
    };
    let signalling = match get("signalling").or(get("type")).unwrap_or("analog") {
        "analog" => match get("trunk-type")
            .unwrap_or("fxs")
            .to_ascii_lowercase()
            .as_str()
        {
            "fxs" => Signalling::Fxs,
            "fxo" => Signalling::Fxo,
            t => return err(format!("span {name}: unknown trunk-type {t:?}")),
        },
        "isdn" | "pri" => match get("pri-side").unwrap_or("user") {
            "user" | "cpe" => Signalling::Isdn(Role::User),
            "network" | "net" => Signalling::Isdn(Role::Network),
            s => return err(format!("span {name}: unknown pri-side {s:?}")),
        },
        s => return err(format!("span {name}: unknown signalling {s:?}")),
    };
    let mut channels = parse_range(get("channels").unwrap_or(""))?;
    channels.sort_unstable();
    if channels.is_empty() {
        return err(format!("span {name}: no channels"));
    }
    let d_channel = match get("d-channel") {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("span {name}: bad d-channel {v:?}")))?,
        None => channels.last().copied().unwrap_or(0) + 1,
    };
    if matches!(signalling, Signalling::Isdn(_)) && channels.contains(&d_channel) {
        return err(format!(
            "span {name}: d-channel {d_channel} is also a B channel"
        ));
    }
    let law = match get("codec") {
        Some(c) => Law::from_name(c)
            .ok_or_else(|| ConfigError(format!("span {name}: codec {c:?} is not PCMU or PCMA")))?,
        None => Law::Ulaw,
    };
    let mut timing = FxsTiming::default();
    if let Some(v) = get("digit-timeout") {
        timing.digit_timeout = millis("digit-timeout", v)?;
    }
    if let Some(v) = get("dial-timeout") {
        timing.first_digit_timeout = millis("dial-timeout", v)?;
    }
    if let Some(v) = get("max-digits") {
        timing.max_digits = v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("span {name}: bad max-digits {v:?}")))?;
    }
    let dahdi_offset = match get("dahdi-offset") {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("span {name}: bad dahdi-offset {v:?}")))?,
        None => 0,
    };
    let dtmf_detect = match get("dtmf-detect").unwrap_or("true") {
        "true" | "yes" | "on" => true,
        "false" | "no" | "off" => false,
        v => {
            return err(format!(
                "span {name}: dtmf-detect {v:?} is not true or false"
            ))
        }
    };
    Ok(SpanConfig {
        dtmf_detect,
        socket_dir: PathBuf::from(
            get("socket-dir")
                .map(str::to_string)
                .unwrap_or_else(|| format!("/tmp/hotswitch-freetdm/{name}")),
        ),
        context: get("context").unwrap_or("default").to_string(),
        dialplan: get("dialplan").unwrap_or("XML").to_string(),
        fxo_destination: get("fxo-destination").unwrap_or("s").to_string(),
        groups: attrs
            .iter()
            .filter(|(n, _)| n == "group")
            .flat_map(|(_, v)| v.split(',').map(|g| g.trim().to_string()))
            .filter(|g| !g.is_empty())
            .collect(),
        name,
        id,
        driver,
        signalling,
        channels,
        d_channel,
        law,
        dahdi_offset,
        timing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<configuration name="freetdm.conf" description="FreeTDM">
      <!-- <span name="ignored"/> -->
      <spans>
        <span name="1" id="1" driver="virtual" signalling="analog" trunk-type="fxs">
          <param name="channels" value="1-4"/>
          <param name="socket-dir" value="/tmp/x/1"/>
          <param name="group" value="phones"/>
          <param name="digit-timeout" value="1500"/>
        </span>
        <span name="pri" id="2" signalling="isdn" pri-side="network">
          <param name="channels" value="1-23"/>
          <param name="codec" value="PCMA"/>
          <param name="context" value="public"/>
        </span>
      </spans>
      <groups>
        <group name="out"><member span="pri" channels="3,1"/><member span="1" channels="4"/></group>
      </groups>
    </configuration>"#;

    #[test]
    fn spans_params_and_groups_are_read() {
        let c = Config::from_xml(Some(XML)).unwrap();
        assert_eq!(c.spans.len(), 2);
        let a = &c.spans[0];
        assert_eq!(
            (a.name.as_str(), a.id, a.signalling),
            ("1", 1, Signalling::Fxs)
        );
        assert_eq!(a.channels, [1, 2, 3, 4]);
        assert_eq!(a.socket_dir, PathBuf::from("/tmp/x/1"));
        assert_eq!(a.timing.digit_timeout, Duration::from_millis(1500));
        let p = &c.spans[1];
        assert_eq!(p.signalling, Signalling::Isdn(Role::Network));
        assert_eq!(
            (p.d_channel, p.law, p.context.as_str()),
            (24, Law::Alaw, "public")
        );
        assert_eq!(
            c.groups[0].members,
            [("pri".into(), 3), ("pri".into(), 1), ("1".into(), 4)]
        );
        assert_eq!(c.groups[1].name, "phones");
        assert_eq!(c.groups[1].members.len(), 4);
    }

    #[test]
    fn mistakes_are_named() {
        // As the host hands it over: one <configuration> element.
        let bad = |x: &str| {
            Config::from_xml(Some(&format!("<configuration>{x}</configuration>")))
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(r#"<span name="a"><param name="channels" value="4-1"/></span>"#).contains("range")
        );
        assert!(
            bad(r#"<span name="a" driver="zap"><param name="channels" value="1"/></span>"#)
                .contains("zap")
        );
        assert!(bad(r#"<span name="a"><param name="channels" value="1"/></span><group name="g"><member span="b" channels="1"/></group>"#).contains("no span"));
        assert!(bad(r#"<span name="a" signalling="isdn"><param name="channels" value="1-3"/><param name="d-channel" value="2"/></span>"#).contains("d-channel"));
        assert_eq!(parse_range("1-3, 5").unwrap(), [1, 2, 3, 5]);
        assert!(Config::from_xml(None).unwrap().spans.is_empty());
    }
}

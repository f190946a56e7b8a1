//! Names resolved without blocking the SIP thread.
//!
//! An IP literal is an address at once. A name the stack has resolved in
//! the last [`TTL`] is too (the cache). Any other name is asked of the
//! shell ([`Event::Resolve`], once while it is in flight), and what needed
//! it — a gateway's REGISTER, a keep-alive OPTIONS, the ACK and BYE of a
//! stray 2xx, a MESSAGE — waits here as a [`Waiting`] until
//! [`Stack::handle_resolved`] brings the answer; then it runs again and
//! finds the address (or the failure) known, and goes on, or fails as it
//! always did. A failure is not kept: the next attempt asks again.
//!
//! Outbound calls are not here: their dial string is resolved by the
//! thread that originates them (see [`super::dial`]), never this one.

use super::{Event, Stack};
use crate::sip::headers::Uri;
use crate::sip::message::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a resolved name is used before it is asked again.
pub(super) const TTL: Duration = Duration::from_secs(60);

/// An address, or the news that it was asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Known now: `None` when the name does not resolve.
    Known(Option<SocketAddr>),
    /// Asked of the shell: the operation waits for the answer.
    Asked,
}

/// An operation waiting for a name.
pub(super) enum Waiting {
    /// A gateway's REGISTER (`auth`: the answer to its challenge).
    Gateway {
        profile: usize,
        name: String,
        auth: Option<(bool, String)>,
    },
    /// A NAT keep-alive OPTIONS to a registered contact.
    Keepalive {
        profile: usize,
        contact: String,
        aor: String,
    },
    /// The ACK and BYE of a 2xx no call of ours wants, to its Contact.
    StrayAck { resp: Box<Message> },
    /// A MESSAGE, as the chat interface asked for it.
    Message(crate::leg::ChatMessage),
}

impl Stack {
    /// The address of `host_port` at `now`, or [`Lookup::Asked`]: the name
    /// is asked of the shell (unless it already is) and `then` runs again
    /// when the answer comes.
    pub(super) fn lookup(
        &mut self,
        host_port: &str,
        now: Instant,
        then: impl FnOnce() -> Waiting,
    ) -> Lookup {
        if let Some(known) = self.dns.known(host_port, now) {
            return Lookup::Known(known);
        }
        if self.dns.wait(host_port, then()) {
            log::debug!("resolving {host_port}");
            self.events.push_back(Event::Resolve(host_port.to_string()));
        }
        Lookup::Asked
    }

    /// The shell resolved `host_port` (an [`Event::Resolve`]): what waited
    /// for it goes on with the address, or fails as an unresolvable name
    /// does.
    pub fn handle_resolved(
        &mut self,
        host_port: &str,
        result: Result<SocketAddr, String>,
        now: Instant,
    ) {
        if let Err(e) = &result {
            log::debug!("{host_port} does not resolve: {e}");
        }
        let waiting = self.dns.answered(host_port, result.ok(), now);
        for w in waiting {
            self.resume(w, now);
        }
        self.dns.answered_done();
        self.drain_events(now);
    }

    /// Runs again what waited for a name, now answered.
    fn resume(&mut self, w: Waiting, now: Instant) {
        match w {
            Waiting::Gateway {
                profile,
                name,
                auth,
            } => {
                let Some(i) = self
                    .gateways
                    .iter()
                    .position(|g| g.profile == profile && g.cfg.name == name)
                else {
                    return; // removed by a rescan meanwhile
                };
                if self.draining && auth.is_none() {
                    return; // the new version registers it
                }
                self.gateway_register(i, auth, now);
            }
            Waiting::Keepalive {
                profile,
                contact,
                aor,
            } => {
                if self.draining || !self.profiles[profile].running {
                    return;
                }
                let Some(u) = Uri::parse(&contact) else {
                    return;
                };
                if let Some(Some(addr)) = self.dns.known(&u.host_port(), now) {
                    self.send_keepalive(profile, &contact, &aor, addr, now);
                }
            }
            Waiting::StrayAck { resp } => self.ack_and_bye_stray(&resp, now),
            Waiting::Message(chat) => self.send_message(chat, now),
        }
    }
}

/// The stack's names: resolved, asked, and what waits for them.
#[derive(Default)]
pub(super) struct Dns {
    /// Resolved names and until when they hold.
    cache: HashMap<String, (SocketAddr, Instant)>,
    /// Names asked of the shell, and what waits for each.
    waiting: HashMap<String, Vec<Waiting>>,
    /// The answer being handed to what waited for it (success or not).
    answer: Option<(String, Option<SocketAddr>)>,
}

impl Dns {
    /// The address of `host_port` if known at `now`, without asking.
    pub(super) fn known(&self, host_port: &str, now: Instant) -> Option<Option<SocketAddr>> {
        if let Ok(a) = host_port.parse() {
            return Some(Some(a));
        }
        if let Some((name, addr)) = &self.answer {
            if name == host_port {
                return Some(*addr);
            }
        }
        match self.cache.get(host_port) {
            Some((addr, until)) if *until > now => Some(Some(*addr)),
            _ => None,
        }
    }

    /// `then` waits for `host_port`; true when the name is to be asked
    /// (nobody asked it yet).
    pub(super) fn wait(&mut self, host_port: &str, then: Waiting) -> bool {
        match self.waiting.get_mut(host_port) {
            Some(w) => {
                w.push(then);
                false
            }
            None => {
                self.waiting.insert(host_port.to_string(), vec![then]);
                true
            }
        }
    }

    /// The answer for `host_port` came: cached when it is an address, and
    /// held as the answer until [`Dns::answered_done`]; returns what waited.
    pub(super) fn answered(
        &mut self,
        host_port: &str,
        addr: Option<SocketAddr>,
        now: Instant,
    ) -> Vec<Waiting> {
        if let Some(a) = addr {
            self.cache.insert(host_port.to_string(), (a, now + TTL));
        }
        self.answer = Some((host_port.to_string(), addr));
        self.waiting.remove(host_port).unwrap_or_default()
    }

    /// What waited has run again: the answer is no longer handed out.
    pub(super) fn answered_done(&mut self) {
        self.answer = None;
    }

    /// Forgets the names whose time is over.
    pub(super) fn purge(&mut self, now: Instant) {
        self.cache.retain(|_, (_, until)| *until > now);
    }

    /// Names asked and not answered yet.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::leg::Input;
    use crate::registrar::{MemoryStore, Registrar};
    use crate::sip::transaction::Proto;
    use hotswitch_plugin_api::sansio::Protocol;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    /// A stack made at `t0` whose one profile has a gateway registering
    /// at `proxy`.
    fn stack(proxy: &str, t0: Instant) -> Stack {
        stack_with(proxy, "", t0)
    }

    /// As [`stack`], the profile with more `settings` params.
    fn stack_with(proxy: &str, settings: &str, t0: Instant) -> Stack {
        let conf = format!(
            r#"<configuration name="sofia.conf"><profiles>
      <profile name="internal"><gateways>
        <gateway name="carrier"><param name="username" value="u"/><param name="password" value="p"/>
          <param name="proxy" value="{proxy}"/><param name="retry-seconds" value="30"/></gateway>
      </gateways><settings>
        <param name="sip-ip" value="127.0.0.1"/><param name="sip-port" value="5070"/>{settings}
      </settings></profile></profiles></configuration>"#
        );
        let config = Config::from_xml(Some(&conf), None, None, &|_| Vec::new()).unwrap();
        let registrar = Arc::new(Registrar::new(Box::new(MemoryStore)).unwrap());
        let (input, _) = tokio::sync::mpsc::unbounded_channel();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let addrs = vec!["127.0.0.1:5070".parse().unwrap()];
        Stack::new(&config, addrs, registrar, input, (t0, wall))
    }

    fn sent(s: &mut Stack) -> Vec<(crate::sip::transaction::Target, String)> {
        std::iter::from_fn(|| s.poll_transmit())
            .map(|(t, b)| (t, String::from_utf8_lossy(&b).into_owned()))
            .collect()
    }

    fn events(s: &mut Stack) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn message(to: &str) -> Input {
        Input::Message(crate::leg::ChatMessage {
            profile: None,
            to: to.into(),
            from: "1000".into(),
            body: "hi".into(),
            content_type: "text/plain".into(),
        })
    }

    #[test]
    fn a_gateway_named_by_a_host_registers_once_the_shell_has_resolved_it() {
        let t0 = Instant::now();
        let mut s = stack("sip.example.test", t0);
        s.handle_timeout(t0);
        assert_eq!(
            events(&mut s),
            [Event::Resolve("sip.example.test:5060".into())]
        );
        assert!(
            sent(&mut s).is_empty(),
            "nothing goes out before the answer"
        );
        let proxy: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let t1 = t0 + Duration::from_millis(40);
        s.handle_resolved("sip.example.test:5060", Ok(proxy), t1);
        let out = sent(&mut s);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.proto, out[0].0.addr), (Proto::Udp, proxy));
        assert!(out[0].1.starts_with("REGISTER sip:"), "{}", out[0].1);
        assert_eq!(s.gateway("carrier").unwrap().2, "TRYING");
        assert_eq!(s.dns.in_flight(), 0);
        // Cached for its TTL, asked again after it.
        assert_eq!(
            s.dns.known("sip.example.test:5060", t1 + TTL / 2),
            Some(Some(proxy))
        );
        assert_eq!(s.dns.known("sip.example.test:5060", t1 + TTL), None);
    }

    #[test]
    fn a_gateway_whose_name_does_not_resolve_waits_its_retry_and_asks_again() {
        let t0 = Instant::now();
        let mut s = stack("nowhere.example.test:5080", t0);
        s.handle_timeout(t0);
        assert_eq!(
            events(&mut s),
            [Event::Resolve("nowhere.example.test:5080".into())]
        );
        let t1 = t0 + Duration::from_millis(40);
        s.handle_resolved("nowhere.example.test:5080", Err("no such host".into()), t1);
        assert!(sent(&mut s).is_empty());
        assert_eq!(s.gateway("carrier").unwrap().2, "FAIL_WAIT");
        let retry = t1 + Duration::from_secs(30);
        assert!(s.poll_timeout().is_some_and(|t| t <= retry));
        // A failure is not kept: the retry asks the shell again.
        s.handle_timeout(retry);
        assert_eq!(
            events(&mut s),
            [Event::Resolve("nowhere.example.test:5080".into())]
        );
    }

    #[test]
    fn messages_to_one_name_ask_once_and_go_when_it_resolves_and_an_ip_goes_at_once() {
        let t0 = Instant::now();
        let mut s = stack("192.0.2.10", t0);
        s.handle_input(message("1001@192.0.2.20:5062"), t0);
        let out = sent(&mut s);
        assert_eq!(out.len(), 1, "an IP literal is not asked for");
        assert_eq!(out[0].0.addr, "192.0.2.20:5062".parse().unwrap());
        assert!(events(&mut s).is_empty());

        s.handle_input(message("1002@chat.example.test"), t0);
        s.handle_input(message("1003@chat.example.test"), t0);
        assert_eq!(
            events(&mut s),
            [Event::Resolve("chat.example.test:5060".into())],
            "one question for both"
        );
        assert!(sent(&mut s).is_empty());
        let chat: SocketAddr = "198.51.100.7:5060".parse().unwrap();
        s.handle_resolved("chat.example.test:5060", Ok(chat), t0);
        let out = sent(&mut s);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|(t, m)| t.addr == chat && m.starts_with("MESSAGE sip:")));
        // Known now: the next one goes without asking.
        s.handle_input(
            message("1004@chat.example.test"),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(sent(&mut s).len(), 1);
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn a_keepalive_to_a_contact_named_by_a_host_goes_once_it_resolves() {
        let t0 = Instant::now();
        let pings = r#"<param name="all-reg-options-ping" value="true"/>
            <param name="ping-mean-interval" value="30"/>"#;
        let mut s = stack_with("192.0.2.10", pings, t0);
        s.registrar.bind(crate::registrar::Registration {
            profile: "internal".into(),
            user: "1000".into(),
            domain: "127.0.0.1".into(),
            contact: "sip:1000@phone.example.test:5062".into(),
            network: "192.0.2.30:5062".parse().unwrap(),
            transport: "UDP".into(),
            expires_at: crate::registrar::now_secs() + 3600,
            call_id: "c".into(),
            user_agent: String::new(),
            path: Vec::new(),
        });
        // The gateway (an address) registers at once; the pings are due
        // with the first media check, a second in.
        s.handle_timeout(t0);
        assert_eq!(sent(&mut s).len(), 1);
        let t1 = t0 + Duration::from_secs(1);
        s.handle_timeout(t1);
        assert_eq!(
            events(&mut s),
            [Event::Resolve("phone.example.test:5062".into())]
        );
        let options = |s: &mut Stack| {
            sent(s)
                .into_iter()
                .filter(|(_, m)| m.starts_with("OPTIONS "))
                .collect::<Vec<_>>()
        };
        assert!(options(&mut s).is_empty(), "(the REGISTER goes on)");
        let phone: SocketAddr = "192.0.2.31:5062".parse().unwrap();
        s.handle_resolved("phone.example.test:5062", Ok(phone), t1);
        let out = options(&mut s);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.addr, phone);
        assert!(out[0]
            .1
            .starts_with("OPTIONS sip:1000@phone.example.test:5062 "));
    }

    #[test]
    fn a_message_to_a_name_that_does_not_resolve_is_dropped() {
        let t0 = Instant::now();
        let mut s = stack("192.0.2.10", t0);
        s.handle_input(message("1002@gone.example.test"), t0);
        assert_eq!(events(&mut s).len(), 1);
        s.handle_resolved("gone.example.test:5060", Err("no such host".into()), t0);
        assert!(sent(&mut s).is_empty());
        assert_eq!(s.dns.in_flight(), 0);
    }
}

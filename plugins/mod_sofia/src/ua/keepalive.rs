//! NAT keep-alives, FreeSWITCH's `nat-options-ping` and
//! `all-reg-options-ping`: every `ping-mean-interval` seconds an OPTIONS
//! goes to each registered UDP phone behind NAT (or to every registered
//! UDP phone), through the address its REGISTER came from, so the NAT's
//! binding stays open for the calls that come in later.

use super::*;

impl Stack {
    /// Sends the profiles' keep-alive OPTIONS when they are due.
    pub(super) fn nat_ping(&mut self, now: Instant) {
        for pi in 0..self.profiles.len() {
            let p = &self.profiles[pi];
            let nat = p.cfg.nat.clone();
            if !(nat.options_ping || nat.all_reg_options_ping) || !p.running {
                continue;
            }
            if p.next_nat_ping.is_some_and(|t| t > now) {
                continue;
            }
            let interval = Duration::from_secs(nat.ping_interval.max(1));
            self.profiles[pi].next_nat_ping = Some(now + interval);
            let p = &self.profiles[pi];
            let (name, agent, host) = (p.cfg.name.clone(), p.cfg.user_agent.clone(), p.host_port());
            for r in self.registrar.all(&name) {
                if !r.transport.eq_ignore_ascii_case("UDP") {
                    continue;
                }
                let natted = nat.behind_nat(&self.acls, &r);
                if !natted && !nat.all_reg_options_ping {
                    continue;
                }
                let addr = if natted {
                    r.network
                } else {
                    match Uri::parse(&r.contact).and_then(|u| resolve(&u.host_port())) {
                        Some(a) => a,
                        None => continue,
                    }
                };
                let mut m = Message::request("OPTIONS", &r.contact);
                m.headers.push(
                    "Via",
                    format!("SIP/2.0/UDP {host};branch={};rport", new_branch()),
                );
                m.headers.push("Max-Forwards", "70");
                m.headers
                    .push("From", format!("<sip:mod_sofia@{host}>;tag={}", new_tag()));
                m.headers.push("To", format!("<{}>", r.contact));
                m.headers.push("Call-ID", uuid::Uuid::new_v4().to_string());
                m.headers.push("CSeq", "1 OPTIONS");
                m.headers.push("User-Agent", agent.clone());
                m.headers.push("Content-Length", "0");
                log::debug!("NAT keep-alive OPTIONS to {} at {addr}", r.aor());
                let target = Target {
                    proto: Proto::Udp,
                    addr,
                    profile: pi,
                };
                self.tx.send_request(m, target, now);
            }
        }
    }
}

//! NAT keep-alives, FreeSWITCH's `nat-options-ping` and
//! `all-reg-options-ping`: every `ping-mean-interval` seconds an OPTIONS
//! goes to each registered UDP phone behind NAT (or to every registered
//! UDP phone), through the address its REGISTER came from, so the NAT's
//! binding stays open for the calls that come in later. A phone not
//! behind NAT is pinged at its Contact; a Contact named by a host name
//! is pinged once the shell has resolved it (see `dns`).

use super::*;

impl Stack {
    /// Sends the profiles' keep-alive OPTIONS when they are due (to a
    /// Contact named by a host name once the shell resolved it).
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
            let name = self.profiles[pi].cfg.name.clone();
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
                    let Some(u) = Uri::parse(&r.contact) else {
                        continue;
                    };
                    let waiting = || Waiting::Keepalive {
                        profile: pi,
                        contact: r.contact.clone(),
                        aor: r.aor(),
                    };
                    match self.lookup(&u.host_port(), now, waiting) {
                        Lookup::Known(Some(a)) => a,
                        Lookup::Known(None) | Lookup::Asked => continue,
                    }
                };
                self.send_keepalive(pi, &r.contact, &r.aor(), addr, now);
            }
        }
    }

    /// One keep-alive OPTIONS to `contact` (of `aor`) at `addr`.
    pub(super) fn send_keepalive(
        &mut self,
        pi: usize,
        contact: &str,
        aor: &str,
        addr: SocketAddr,
        now: Instant,
    ) {
        let p = &self.profiles[pi];
        let (agent, host) = (p.cfg.user_agent.clone(), p.host_port());
        let mut m = Message::request("OPTIONS", contact);
        m.headers.push(
            "Via",
            format!("SIP/2.0/UDP {host};branch={};rport", new_branch()),
        );
        m.headers.push("Max-Forwards", "70");
        m.headers
            .push("From", format!("<sip:mod_sofia@{host}>;tag={}", new_tag()));
        m.headers.push("To", format!("<{contact}>"));
        m.headers.push("Call-ID", uuid::Uuid::new_v4().to_string());
        m.headers.push("CSeq", "1 OPTIONS");
        m.headers.push("User-Agent", agent);
        m.headers.push("Content-Length", "0");
        log::debug!("NAT keep-alive OPTIONS to {aor} at {addr}");
        let target = Target {
            proto: Proto::Udp,
            addr,
            profile: pi,
        };
        self.tx.send_request(m, target, now);
    }
}

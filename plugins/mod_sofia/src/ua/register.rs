//! Digest challenges of requests we receive, the registrar's REGISTER,
//! and gateways that register us elsewhere (a gateway's proxy named by a
//! host name waits for the shell to resolve it, see `dns`).

use super::*;

impl Stack {
    /// Checks digest credentials in `header`; `Err` carries the reply.
    pub(super) fn authenticate(
        &mut self,
        msg: &Message,
        realm: &str,
        proxy: bool,
        now: Instant,
    ) -> Result<String, (u16, &'static str, Option<String>)> {
        let (h_in, h_out, code, reason) = if proxy {
            (
                "Proxy-Authorization",
                "Proxy-Authenticate",
                407,
                "Proxy Authentication Required",
            )
        } else {
            ("Authorization", "WWW-Authenticate", 401, "Unauthorized")
        };
        let creds = msg
            .headers
            .get_all(h_in)
            .chain(msg.headers.get_all(if proxy {
                "Authorization"
            } else {
                "Proxy-Authorization"
            }))
            .filter_map(Credentials::parse)
            .next();
        let challenge = |s: &mut Stack, stale: bool| {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            s.nonces.insert(nonce.clone(), now);
            let _ = h_out;
            (
                code,
                reason,
                Some(digest::challenge(realm, &nonce, Algorithm::Md5, stale)),
            )
        };
        let Some(c) = creds else {
            return Err(challenge(self, false));
        };
        if !self.nonces.contains_key(&c.nonce) {
            return Err(challenge(self, true));
        }
        let domain = if c.realm.is_empty() { realm } else { &c.realm };
        if !hotswitch_plugin_api::is_api_word(&c.username)
            || !hotswitch_plugin_api::is_api_word(domain)
        {
            log::warn!(
                "authentication refused: username {} / realm {} cannot name a directory user",
                escape_str(&c.username, 80),
                escape_str(domain, 80)
            );
            return Err((403, "Forbidden", None));
        }
        let user = format!("{}@{}", c.username, domain);
        let ctx = ModuleContext::current();
        let password = ctx
            .execute_api("user_data", &format!("{user} param password"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.starts_with("-ERR"));
        let a1 = ctx
            .execute_api("user_data", &format!("{user} param a1-hash"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.starts_with("-ERR"));
        if password.is_none() && a1.is_none() {
            log::warn!(
                "authentication of unknown user {} failed",
                escape_str(&user, 80)
            );
            return Err((403, "Forbidden", None));
        }
        if c.verify(msg.method(), password.as_deref(), a1.as_deref()) {
            Ok(c.username)
        } else {
            log::warn!(
                "{} authentication of {} failed: wrong password",
                msg.method(),
                escape_str(&user, 80)
            );
            Err((403, "Forbidden", None))
        }
    }

    pub(super) fn challenge_reply(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        proxy: bool,
        err: (u16, &'static str, Option<String>),
        now: Instant,
    ) {
        let (code, reason, ch) = err;
        self.reply(key, msg, (code, reason), Some(&new_tag()), now, |r| {
            if let Some(ch) = ch {
                r.headers.push(
                    if proxy {
                        "Proxy-Authenticate"
                    } else {
                        "WWW-Authenticate"
                    },
                    ch,
                );
            }
        });
    }

    pub(super) fn on_register(&mut self, key: ServerKey, msg: Message, from: Target, now: Instant) {
        let profile = from.profile;
        let Some(to) = msg.headers.get("To").and_then(NameAddr::parse) else {
            return;
        };
        let domain = self.profiles[profile]
            .cfg
            .challenge_realm
            .clone()
            .unwrap_or_else(|| to.uri.host.clone());
        let auto = match self.register_acl_check(profile, from.addr.ip()) {
            Err(list) => {
                log::warn!("IP {} Rejected by register acl \"{list}\"", from.addr.ip());
                self.refuse(&key, &msg, (403, "Forbidden"), now);
                return;
            }
            Ok(auto) => auto,
        };
        // Every apply-register-acl list matched: registered unchallenged
        // (FreeSWITCH's REG_AUTO_REGISTER).
        let checked = if auto {
            Ok(to.uri.user.clone().unwrap_or_default())
        } else {
            self.authenticate(&msg, &domain, false, now)
        };
        let user = match checked {
            Ok(u) => u,
            Err(e) => {
                if e.0 == 403 {
                    self.fire_custom(
                        "sofia::register_failure",
                        &[
                            ("profile-name", &self.profiles[profile].cfg.name.clone()),
                            ("to-user", to.uri.user.as_deref().unwrap_or("")),
                            ("to-host", &to.uri.host),
                            ("network-ip", &from.addr.ip().to_string()),
                        ],
                    );
                }
                return self.challenge_reply(&key, &msg, false, e, now);
            }
        };
        let to_user = to.uri.user.clone().unwrap_or_default();
        if to_user != user {
            log::warn!(
                "REGISTER for {} authenticated as {}: refused",
                escape_str(&to_user, 80),
                escape_str(&user, 80)
            );
            self.refuse(&key, &msg, (403, "Forbidden"), now);
            return;
        }
        let aor = format!("{user}@{domain}");
        let pname = self.profiles[profile].cfg.name.clone();
        let default_expires: u64 = msg
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        let contacts: Vec<&str> = msg.headers.get_all("Contact").collect();
        // RFC 3327: the proxies the REGISTER came through, kept with the
        // binding as the Route set of requests to it.
        let path: Vec<String> = msg.headers.get_all("Path").map(str::to_string).collect();
        if contacts.iter().any(|c| c.trim() == "*") {
            if default_expires != 0 {
                self.refuse(&key, &msg, (400, "Bad Request"), now);
                return;
            }
            self.registrar.unbind(&pname, &aor, None);
            core_table_del(&user, &domain);
            self.fire_custom(
                "sofia::unregister",
                &[
                    ("profile-name", &pname),
                    ("from-user", &user),
                    ("from-host", &domain),
                ],
            );
        }
        for c in contacts.iter().filter(|c| c.trim() != "*") {
            let Some(na) = NameAddr::parse(c) else {
                self.refuse(&key, &msg, (400, "Bad Request"), now);
                return;
            };
            let expires = na
                .param("expires")
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(default_expires)
                .min(86_400);
            if expires == 0 {
                self.registrar.unbind(&pname, &aor, Some(&na.uri_text));
                if self.registrar.lookup(&aor, None).is_empty() {
                    core_table_del(&user, &domain);
                }
                self.fire_custom(
                    "sofia::unregister",
                    &[
                        ("profile-name", &pname),
                        ("from-user", &user),
                        ("from-host", &domain),
                        ("contact", &na.uri_text),
                    ],
                );
                continue;
            }
            let reg = Registration {
                profile: pname.clone(),
                user: user.clone(),
                domain: domain.clone(),
                contact: na.uri_text.clone(),
                network: from.addr,
                transport: from.proto.as_str().into(),
                expires_at: self.unix_secs(now) + expires,
                call_id: msg.call_id().to_string(),
                user_agent: msg.headers.get("User-Agent").unwrap_or("").to_string(),
                path: path.clone(),
            };
            core_table_add(&reg);
            self.registrar.bind(reg);
            self.fire_custom(
                "sofia::register",
                &[
                    ("profile-name", &pname),
                    ("from-user", &user),
                    ("from-host", &domain),
                    ("contact", &na.uri_text),
                    ("expires", &expires.to_string()),
                    ("network-ip", &from.addr.ip().to_string()),
                    ("network-port", &from.addr.port().to_string()),
                ],
            );
            log::info!(
                "registered {} at {} for {expires} s",
                escape_str(&aor, 120),
                escape_str(&na.uri_text, 200)
            );
        }
        let now_s = self.unix_secs(now);
        let bound: Vec<String> = self
            .registrar
            .lookup(&aor, Some(&pname))
            .into_iter()
            .map(|r| {
                format!(
                    "<{}>;expires={}",
                    r.contact,
                    r.expires_at.saturating_sub(now_s)
                )
            })
            .collect();
        // §5.3: the Path is echoed to a UA that said it supports path.
        let echo_path = msg
            .headers
            .get_all("Supported")
            .flat_map(|v| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case("path"));
        self.reply(&key, &msg, (200, "OK"), Some(&new_tag()), now, |r| {
            for b in bound {
                r.headers.push("Contact", b);
            }
            if echo_path {
                for p in &path {
                    r.headers.push("Path", p.clone());
                }
            }
            r.headers.push("Date", httpdate(now_s));
        });
    }

    pub(super) fn gateway_register(
        &mut self,
        i: usize,
        auth: Option<(bool, String)>,
        now: Instant,
    ) {
        let (pi, proxy) = (self.gateways[i].profile, self.gateways[i].cfg.proxy.clone());
        let host_port = if proxy.contains(':') {
            proxy.clone()
        } else {
            format!("{proxy}:5060")
        };
        let name = self.gateways[i].cfg.name.clone();
        let waiting = || Waiting::Gateway {
            profile: pi,
            name,
            auth: auth.clone(),
        };
        let addr = match self.lookup(&host_port, now, waiting) {
            Lookup::Known(Some(addr)) => addr,
            Lookup::Asked => return,
            Lookup::Known(None) => {
                log::warn!(
                    "gateway {}: cannot resolve {proxy}",
                    self.gateways[i].cfg.name
                );
                self.gateways[i].state = "FAIL_WAIT";
                self.gateways[i].next =
                    Some(now + Duration::from_secs(self.gateways[i].cfg.retry_seconds as u64));
                return;
            }
        };
        let p = &self.profiles[pi];
        let g = &mut self.gateways[i];
        g.cseq += 1;
        let realm = g.cfg.realm.clone();
        let uri = format!("sip:{}", realm);
        let mut m = Message::request("REGISTER", &uri);
        m.headers.push(
            "Via",
            format!(
                "SIP/2.0/UDP {};branch={};rport",
                p.host_port(),
                new_branch()
            ),
        );
        m.headers.push("Max-Forwards", "70");
        let aor = format!("<sip:{}@{}>", g.cfg.username, g.cfg.from_domain);
        m.headers.push("From", format!("{aor};tag={}", new_tag()));
        m.headers.push("To", aor);
        m.headers.push("Call-ID", g.call_id.clone());
        m.headers.push("CSeq", format!("{} REGISTER", g.cseq));
        m.headers.push(
            "Contact",
            format!(
                "<sip:{}@{}>",
                if g.cfg.extension.is_empty() {
                    &g.cfg.username
                } else {
                    &g.cfg.extension
                },
                p.host_port()
            ),
        );
        m.headers.push("Expires", g.cfg.expire_seconds.to_string());
        m.headers.push("User-Agent", p.cfg.user_agent.clone());
        if let Some((proxy_auth, value)) = auth {
            m.headers.push(
                if proxy_auth {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                value,
            );
        } else {
            g.tries = 0;
        }
        if g.state == "UNREGED" || g.state == "FAIL_WAIT" || g.state == "REGED" {
            g.state = "TRYING";
        }
        let target = Target {
            proto: Proto::Udp,
            addr,
            profile: pi,
        };
        self.gateways[i].key = self.tx.send_request(m, target, now);
    }

    pub(super) fn on_gateway_response(&mut self, i: usize, msg: Message, now: Instant) {
        let code = msg.code().unwrap_or(0);
        if code < 200 {
            return;
        }
        let g = &mut self.gateways[i];
        if code < 300 {
            let expires = msg
                .headers
                .get("Contact")
                .and_then(|c| crate::sip::headers::param(c, "expires"))
                .and_then(|e| e.parse::<u64>().ok())
                .or_else(|| {
                    msg.headers
                        .get("Expires")
                        .and_then(|e| e.trim().parse().ok())
                })
                .unwrap_or(g.cfg.expire_seconds as u64)
                .max(10);
            g.state = "REGED";
            g.next = Some(now + Duration::from_secs(expires * 9 / 10));
            log::info!("gateway {} registered for {expires} s", g.cfg.name);
            self.fire_gateway_state(i);
            return;
        }
        if (code == 401 || code == 407) && g.tries < 2 {
            g.tries += 1;
            let h = digest::challenge_in(&msg).map(str::to_string);
            if let Some(h) = h {
                let uri = format!("sip:{}", g.cfg.realm);
                if let Some(v) =
                    digest::answer(&h, "REGISTER", &uri, &g.cfg.username, &g.cfg.password, 1)
                {
                    g.last_challenge = Some(h);
                    self.gateway_register(i, Some((code == 407, v)), now);
                    return;
                }
            }
        }
        log::warn!("gateway {}: registration failed with {code}", g.cfg.name);
        g.state = "FAIL_WAIT";
        g.next = Some(now + Duration::from_secs(g.cfg.retry_seconds as u64));
        self.fire_gateway_state(i);
    }

    pub(super) fn fire_gateway_state(&self, i: usize) {
        self.publish_gateways();
        let g = &self.gateways[i];
        self.fire_custom(
            "sofia::gateway_state",
            &[
                ("Gateway", &g.cfg.name),
                ("State", g.state),
                ("profile-name", &self.profiles[g.profile].cfg.name),
            ],
        );
    }

    /// A gateway by name: its profile, settings and whether it is up.
    pub fn gateway(&self, name: &str) -> Option<GatewayEntry> {
        self.gateways
            .iter()
            .find(|g| g.cfg.name == name)
            .map(|g| (g.profile, g.cfg.clone(), g.state))
    }
}

/// The core's registrations table (`show registrations`), as sofia fills
/// FreeSWITCH's through switch_core_add_registration.
pub fn core_table_add(r: &Registration) {
    let args = format!(
        "{} {} {} sofia/{}/{} {} {} {} {}",
        r.user,
        r.domain,
        r.call_id.replace(char::is_whitespace, ""),
        r.profile,
        r.contact.replace(char::is_whitespace, ""),
        r.expires_at,
        r.network.ip(),
        r.network.port(),
        r.transport.to_ascii_lowercase()
    );
    if let Err(e) = ModuleContext::current().execute_api("registration_add", &args) {
        log::debug!("registration_add {args}: {e}");
    }
}

/// Removes `user@domain` from the core's registrations table.
pub fn core_table_del(user: &str, domain: &str) {
    let _ = ModuleContext::current().execute_api("registration_del", &format!("{user} {domain}"));
}

/// The Date header's value (RFC 1123) at `secs` since 1970.
fn httpdate(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {h:02}:{m:02}:{s:02} GMT",
        WD[(days % 7) as usize],
        MO[(mo - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_header_is_rfc_1123() {
        let d = httpdate(now_secs());
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
        assert_eq!(httpdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}

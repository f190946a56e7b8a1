//! Calls we place and requests we send within dialogs: INVITE with
//! challenges answered, ACK of 2xx, CANCEL, BYE, INFO and MESSAGE. A
//! request to a host name (a stray 2xx's Contact, a MESSAGE's domain)
//! waits for the shell to resolve it (see `dns`).

use super::*;

impl Stack {
    pub(super) fn hangup(&mut self, uuid: &str, cause: CallCause, now: Instant) {
        let Some(call) = self.calls.get_mut(uuid) else {
            return;
        };
        match (call.uas, call.phase) {
            (true, Phase::Early) => {
                let call = self.remove_call(uuid).expect("present");
                if let (Some(key), Some(req)) = (&call.invite_key, &call.invite_req) {
                    let (code, reason) = cause_to_sip(cause);
                    let tag = call.local_tag.clone();
                    let q850 = cause.0;
                    self.reply(key, req, (code, reason), Some(&tag), now, |r| {
                        r.headers.push(
                            "Reason",
                            format!(
                                "Q.850;cause={q850};text=\"{}\"",
                                cause.name().unwrap_or("NORMAL_CLEARING")
                            ),
                        );
                    });
                }
            }
            (false, Phase::Early) => {
                call.cancel_pending = true;
                let key = call.client_invite.clone();
                if let Some(k) = key {
                    if self.tx.cancellable(&k) {
                        self.send_cancel(uuid, &k, now);
                    }
                }
            }
            (_, Phase::Confirmed) => {
                let mut call = self.remove_call(uuid).expect("present");
                let mut bye = self.in_dialog(&mut call, "BYE");
                bye.headers.push(
                    "Reason",
                    format!(
                        "Q.850;cause={};text=\"{}\"",
                        cause.0,
                        cause.name().unwrap_or("NORMAL_CLEARING")
                    ),
                );
                self.tx.send_request(bye, call.peer, now);
            }
        }
    }

    pub(super) fn send_cancel(&mut self, uuid: &str, key: &ClientKey, now: Instant) {
        let Some(invite) = self.tx.client_request(key).cloned() else {
            return;
        };
        let Some(call) = self.calls.get(uuid) else {
            return;
        };
        // §9.1: same Request-URI, Call-ID, From, To (no tag), CSeq number and
        // top Via as the INVITE.
        let mut cancel = Message::request("CANCEL", invite.uri().unwrap_or(""));
        for n in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = invite.headers.get(n) {
                cancel.headers.push(n, v);
            }
        }
        // §9.1: and the INVITE's Route header fields.
        for r in invite.headers.get_all("Route") {
            cancel.headers.push("Route", r);
        }
        cancel.headers.push("Max-Forwards", "70");
        let n = invite.cseq().map(|c| c.0).unwrap_or(1);
        cancel.headers.push("CSeq", format!("{n} CANCEL"));
        cancel
            .headers
            .push("Reason", "Q.850;cause=16;text=\"NORMAL_CLEARING\"");
        let peer = call.peer;
        self.tx.send_request(cancel, peer, now);
    }

    /// A request within the dialog (§12.2.1.1).
    pub(super) fn in_dialog(&self, call: &mut Call, method: &str) -> Message {
        call.local_cseq += 1;
        let p = &self.profiles[call.leg.profile];
        let target = if call.remote_target.is_empty() {
            call.remote_uri
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        } else {
            call.remote_target.clone()
        };
        let mut m = Message::request(method, &target);
        m.headers.push(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                call.peer.proto.as_str(),
                p.host_port_for(call.peer.proto),
                new_branch()
            ),
        );
        m.headers.push("Max-Forwards", "70");
        let (from, to) = (
            format!("{};tag={}", call.local_uri, call.local_tag),
            match &call.remote_tag {
                Some(t) => format!("{};tag={t}", call.remote_uri),
                None => call.remote_uri.clone(),
            },
        );
        m.headers.push("From", from);
        m.headers.push("To", to);
        m.headers.push("Call-ID", call.leg.call_id.clone());
        m.headers
            .push("CSeq", format!("{} {method}", call.local_cseq));
        let routes: Vec<String> = if call.uas {
            call.route_set.clone()
        } else {
            call.route_set.iter().rev().cloned().collect()
        };
        for r in routes {
            m.headers.push("Route", r);
        }
        m.headers.push("User-Agent", p.cfg.user_agent.clone());
        m
    }

    pub(super) fn invite(&mut self, o: Box<Outbound>, now: Instant) {
        let profile = o.leg.profile;
        let uuid = o.leg.uuid.clone();
        let p = &self.profiles[profile];
        let local_tag = new_tag();
        let from_host = if o.from_host.is_empty() {
            p.host_port()
        } else {
            o.from_host.clone()
        };
        let local_uri = if o.from_display.is_empty() {
            format!("<sip:{}@{}>", o.from_user, from_host)
        } else {
            format!(
                "\"{}\" <sip:{}@{}>",
                o.from_display.replace('"', ""),
                o.from_user,
                from_host
            )
        };
        let remote_uri = format!("<{}>", o.uri);
        let mut call = Call {
            leg: o.leg.clone(),
            uas: false,
            phase: Phase::Early,
            local_tag,
            remote_tag: None,
            local_uri,
            remote_uri,
            remote_target: o.uri.to_string(),
            // A UAC keeps its route set reversed (see in_dialog): a
            // preloaded Route set (Path) is stored the same way.
            route_set: o.route.iter().rev().cloned().collect(),
            local_cseq: 0,
            peer: o.target,
            invite_key: None,
            invite_req: None,
            reinvite: None,
            client_invite: None,
            cancel_pending: false,
            sdp_session: self.unix_secs(now),
            sdp_version: 1,
            remote_version: None,
            hold: false,
            auth_tries: 0,
            outbound: None,
            offer: None,
            codecs: o.codecs.clone(),
            early_sdp: false,
        };
        if matches!(call.peer.proto, Proto::Ws | Proto::Wss) {
            // A browser phone: WebRTC media (ICE, DTLS-SRTP) on the shared
            // stack.
            let rtp_ip = self.profiles[profile].cfg.rtp_ip;
            if let Err(e) = call.leg.media.webrtc_offer(rtp_ip, self.call_codecs(&call)) {
                log::warn!("call {uuid}: WebRTC offer: {e}");
            }
        }
        let offer = self.local_sdp(&call, Direction::SendRecv);
        call.offer = Some(offer);
        call.outbound = Some(o);
        self.profiles[profile].calls_out += 1;
        self.add_call(call);
        self.send_invite(&uuid, None, now);
    }

    pub(super) fn send_invite(
        &mut self,
        uuid: &str,
        authorization: Option<(bool, String)>,
        now: Instant,
    ) {
        let Some(mut call) = self.calls.remove(uuid) else {
            return;
        };
        let mut m = self.in_dialog(&mut call, "INVITE");
        let p = &self.profiles[call.leg.profile];
        m.headers.push("Contact", p.contact(call.peer.proto));
        m.headers.push("Allow", ALLOW);
        if let Some(o) = &call.outbound {
            if let Some(mf) = o.max_forwards {
                m.headers.set("Max-Forwards", mf.to_string());
            }
            for (k, v) in &o.headers {
                m.headers.push(k, v.clone());
            }
        }
        if let Some((proxy, value)) = authorization {
            m.headers.push(
                if proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                value,
            );
        }
        m.set_body(
            "application/sdp",
            call.offer.clone().unwrap_or_default().into_bytes(),
        );
        call.client_invite = self.tx.send_request(m, call.peer, now);
        self.calls.insert(uuid.to_string(), call);
    }

    pub(super) fn on_invite_response(&mut self, key: ClientKey, msg: Message, now: Instant) {
        let code = msg.code().unwrap_or(0);
        // Our dialog: the Call-ID and our tag in the From.
        let from = msg.headers.get("From").and_then(NameAddr::parse);
        let from_tag = from.as_ref().and_then(|f| f.tag());
        let found = self.find_call(msg.call_id(), |c| {
            !c.uas && Some(c.local_tag.as_str()) == from_tag
        });
        let Some(call) = found.as_ref().and_then(|u| self.calls.get_mut(u)) else {
            // A 2xx for a call already gone: ACK and BYE it (§13.2.2.4).
            if (200..300).contains(&code) {
                self.ack_and_bye_stray(&msg, now);
            }
            return;
        };
        if call.client_invite.as_ref() != Some(&key) {
            return;
        }
        let uuid = call.leg.uuid.clone();
        let to = msg.headers.get("To").and_then(NameAddr::parse);
        if let Some(t) = to.as_ref().and_then(|t| t.tag()) {
            call.remote_tag = Some(t.to_string());
        }
        if let Some(c) = msg.headers.get("Contact").and_then(NameAddr::parse) {
            call.remote_target = c.uri_text;
        }
        if (101..300).contains(&code) {
            call.route_set = msg
                .headers
                .get_all("Record-Route")
                .map(str::to_string)
                .collect();
        }
        let remote = (!msg.body.is_empty())
            .then(|| sdp::parse(&msg.body).ok())
            .flatten();
        // As `call_codecs` (`call` is borrowed from `self.calls`).
        let codecs = call
            .codecs
            .as_deref()
            .unwrap_or(&self.profiles[call.leg.profile].cfg.codecs);
        let mut media_ok = true;
        let mut negotiated = None;
        if let Some(r) = &remote {
            match r.choose(codecs) {
                Some((c, pt)) => {
                    call.leg.media.set_remote(r.addr, c, pt, r.te_for(c));
                    call.remote_version = Some(r.version);
                    negotiated = Some(c);
                    if r.dtls {
                        call.leg
                            .media
                            .webrtc_remote_answer(&String::from_utf8_lossy(&msg.body));
                    } else if let Err(e) = call.leg.media.sdes(|s| s.answered(&r.crypto)) {
                        log::warn!("call {uuid}: {e}");
                        media_ok = false;
                    }
                }
                None => media_ok = false,
            }
        }
        let ctx = ModuleContext::current();
        if let Some(c) = negotiated {
            if let Some(s) = ctx.session_locate(&uuid) {
                s.set_var("switch_r_sdp", &String::from_utf8_lossy(&msg.body));
                set_codec_vars(&s, c);
                set_dtmf_vars(&s, &call.leg);
                for (k, v) in call.leg.media.sdes(|s| s.channel_vars()) {
                    s.set_var(k, &v);
                }
            }
        }
        if code < 200 {
            if call.cancel_pending {
                self.send_cancel(&uuid, &key, now);
                return;
            }
            if let Some(s) = ctx.session_locate(&uuid) {
                if code == 180 || (code == 183 && remote.is_none()) {
                    s.mark_ring_ready();
                } else if code == 183 {
                    s.mark_pre_answered();
                }
            }
            return;
        }
        if code < 300 {
            call.phase = Phase::Confirmed;
            let ack = self.build_2xx_ack(&uuid, &msg);
            if let Some(a) = ack {
                let peer = self.calls[&uuid].peer;
                self.tx.set_ack(&key, a.clone());
                self.tx.send_stateless(peer, a);
            }
            let call = self.calls.get(&uuid).expect("present");
            if call.cancel_pending || !media_ok {
                let cause = if media_ok {
                    CallCause::NORMAL_CLEARING
                } else {
                    CallCause::INCOMPATIBLE_DESTINATION
                };
                self.hangup(&uuid, cause, now);
                if !media_ok {
                    if let Some(s) = ctx.session_locate(&uuid) {
                        s.hangup(cause);
                    }
                }
                return;
            }
            if let Some(s) = ctx.session_locate(&uuid) {
                for (k, v) in inbound::answered_vars(&msg) {
                    s.set_var(&k, &v);
                }
                s.set_var("sip_to_tag", call.remote_tag.as_deref().unwrap_or(""));
                s.mark_answered();
            }
            self.track(&uuid);
            return;
        }
        // 401/407: answer the challenge once with the credentials we have.
        if (code == 401 || code == 407) && call.auth_tries < 1 {
            let creds = call.outbound.as_ref().and_then(|o| o.auth.clone());
            let header = digest::challenge_in(&msg).map(str::to_string);
            if let (Some((user, pass)), Some(h)) = (creds, header) {
                call.auth_tries += 1;
                let uri = call.remote_target.clone();
                if let Some(value) = digest::answer(&h, "INVITE", &uri, &user, &pass, 1) {
                    call.remote_tag = None;
                    self.send_invite(&uuid, Some((code == 407, value)), now);
                    return;
                }
            }
        }
        let cause = sip_to_cause(code);
        self.remove_call(&uuid);
        if let Some(s) = ctx.session_locate(&uuid) {
            s.set_var("sip_term_status", &code.to_string());
            s.set_var("sip_term_cause", &cause.0.to_string());
            s.hangup(cause);
        }
    }

    pub(super) fn build_2xx_ack(&mut self, uuid: &str, resp: &Message) -> Option<Vec<u8>> {
        let mut call = self.calls.remove(uuid)?;
        let n = resp.cseq().map(|c| c.0).unwrap_or(call.local_cseq);
        let saved = call.local_cseq;
        call.local_cseq = n - 1;
        let mut ack = self.in_dialog(&mut call, "ACK");
        call.local_cseq = saved;
        ack.headers.set("CSeq", format!("{n} ACK"));
        self.calls.insert(uuid.to_string(), call);
        Some(ack.to_bytes())
    }

    pub(super) fn ack_and_bye_stray(&mut self, resp: &Message, now: Instant) {
        let Some(via) = resp.headers.get("Via").and_then(Via::parse) else {
            return;
        };
        let Some(contact) = resp.headers.get("Contact").and_then(NameAddr::parse) else {
            return;
        };
        let waiting = || Waiting::StrayAck {
            resp: Box::new(resp.clone()),
        };
        let addr = match self.lookup(&contact.uri.host_port(), now, waiting) {
            Lookup::Known(Some(addr)) => addr,
            Lookup::Known(None) | Lookup::Asked => return,
        };
        let profile = self
            .profiles
            .iter()
            .position(|p| p.addr.port() == via.port.unwrap_or(5060))
            .unwrap_or(0);
        let proto = Proto::from_token(&via.transport).unwrap_or(Proto::Udp);
        let target = Target {
            proto,
            addr,
            profile,
        };
        let n = resp.cseq().map(|c| c.0).unwrap_or(1);
        for (method, cseq) in [("ACK", n), ("BYE", n + 1)] {
            let mut m = Message::request(method, &contact.uri_text);
            m.headers.push(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch={}",
                    proto.as_str(),
                    self.profiles[profile].host_port(),
                    new_branch()
                ),
            );
            m.headers.push("Max-Forwards", "70");
            for h in ["From", "To", "Call-ID"] {
                if let Some(v) = resp.headers.get(h) {
                    m.headers.push(h, v);
                }
            }
            m.headers.push("CSeq", format!("{cseq} {method}"));
            self.tx.send_request(m, target, now);
        }
    }

    pub(super) fn send_info(&mut self, uuid: &str, digit: char, duration_ms: u32, now: Instant) {
        let Some(mut call) = self.calls.remove(uuid) else {
            return;
        };
        let mut m = self.in_dialog(&mut call, "INFO");
        m.set_body(
            "application/dtmf-relay",
            format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes(),
        );
        let peer = call.peer;
        self.calls.insert(uuid.to_string(), call);
        self.tx.send_request(m, peer, now);
    }

    pub(super) fn send_message(&mut self, chat: ChatMessage, now: Instant) {
        let waiting = || Waiting::Message(chat.clone());
        let ChatMessage {
            profile,
            to,
            from,
            body,
            content_type,
        } = &chat;
        let regs = self.registrar.lookup(to, profile.as_deref());
        let (uri, target) = match regs.first() {
            Some(r) => {
                let Some(pi) = self.profiles.iter().position(|p| p.cfg.name == r.profile) else {
                    return;
                };
                let Some(uri) = Uri::parse(&r.contact) else {
                    return;
                };
                let alive = |a| crate::shell::shared().is_some_and(|s| s.flow_alive(a));
                let nat = |pi: usize, r: &crate::registrar::Registration| {
                    self.profiles[pi].cfg.nat.behind_nat(&self.acls, r)
                };
                let (proto, reach) = dial::registered_reach(r, &uri, pi, &alive, &nat);
                let addr = match reach {
                    Ok(addr) => addr,
                    Err(host_port) => match self.lookup(&host_port, now, waiting) {
                        Lookup::Known(Some(addr)) => addr,
                        Lookup::Asked => return,
                        Lookup::Known(None) => {
                            log::warn!("MESSAGE to {to}: contact {} unreachable", r.contact);
                            return;
                        }
                    },
                };
                let target = Target {
                    proto,
                    addr,
                    profile: pi,
                };
                (r.contact.clone(), target)
            }
            None => {
                let Some(u) = Uri::parse(&format!("sip:{to}")) else {
                    return;
                };
                let addr = match self.lookup(&u.host_port(), now, waiting) {
                    Lookup::Known(Some(addr)) => addr,
                    Lookup::Asked => return,
                    Lookup::Known(None) => {
                        log::warn!("MESSAGE to {to}: not registered and not an address");
                        return;
                    }
                };
                let pi = profile
                    .as_ref()
                    .and_then(|n| self.profiles.iter().position(|p| &p.cfg.name == n))
                    .unwrap_or(0);
                (
                    u.to_string(),
                    Target {
                        proto: Proto::Udp,
                        addr,
                        profile: pi,
                    },
                )
            }
        };
        if self.profiles.is_empty() {
            return;
        }
        let p = &self.profiles[target.profile];
        let mut m = Message::request("MESSAGE", &uri);
        m.headers.push(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                target.proto.as_str(),
                p.host_port_for(target.proto),
                new_branch()
            ),
        );
        m.headers.push("Max-Forwards", "70");
        let from_uri = if from.contains('@') {
            from.to_string()
        } else {
            format!("{from}@{}", p.host_port())
        };
        m.headers
            .push("From", format!("<sip:{from_uri}>;tag={}", new_tag()));
        m.headers.push("To", format!("<sip:{to}>"));
        m.headers.push("Call-ID", uuid::Uuid::new_v4().to_string());
        m.headers.push("CSeq", "1 MESSAGE");
        m.headers.push("User-Agent", p.cfg.user_agent.clone());
        m.set_body(content_type, body.as_bytes().to_vec());
        self.tx.send_request(m, target, now);
    }
}

//! Requests that open or change a call we answer: INVITE (and re-INVITE
//! for hold), ACK, BYE, CANCEL, INFO (DTMF), MESSAGE; and the answer and
//! provisional responses the core asks for.

use super::*;

impl Stack {
    pub(super) fn on_invite(&mut self, key: ServerKey, msg: Message, from: Target, now: Instant) {
        let call_id = msg.call_id().to_string();
        let to = msg.headers.get("To").and_then(NameAddr::parse);
        if to.as_ref().and_then(|t| t.tag()).is_some() {
            return self.on_reinvite(key, msg, now);
        }
        let profile = from.profile;
        let Some(from_na) = msg.headers.get("From").and_then(NameAddr::parse) else {
            return;
        };
        // A merged request (§8.2.2.2): the INVITE of a call we answer
        // again, through another branch. Our own INVITE coming back (the
        // switch calling itself) has the same Call-ID but is a new dialog.
        let cseq = msg.cseq().map(|c| c.0);
        let merged = self.find_call(&call_id, |c| {
            c.uas
                && c.remote_tag.as_deref() == from_na.tag()
                && c.invite_req.as_ref().and_then(|m| m.cseq()).map(|c| c.0) == cseq
        });
        if merged.is_some() {
            self.refuse(&key, &msg, (482, "Loop Detected"), now);
            return;
        }
        let p = &self.profiles[profile];
        let Some(ruri) = msg.uri().and_then(Uri::parse) else {
            self.refuse(&key, &msg, (416, "Unsupported URI Scheme"), now);
            return;
        };
        let mut auth_user = None;
        let acl_has_lists = !p.cfg.inbound_acl.is_empty();
        let trusted_by = self.inbound_acl_match(profile, from.addr.ip());
        let p = &self.profiles[profile];
        if acl_has_lists && trusted_by.is_none() && !p.cfg.auth_calls {
            log::warn!(
                "IP {} Rejected by acl \"{}\"",
                from.addr.ip(),
                p.cfg.inbound_acl.last().map(String::as_str).unwrap_or("")
            );
            self.profiles[profile].failed_in += 1;
            self.refuse(&key, &msg, (403, "Forbidden"), now);
            return;
        }
        // An ACL match trusts the caller; anyone else authenticates.
        if p.cfg.auth_calls && trusted_by.is_none() {
            let realm = p
                .cfg
                .challenge_realm
                .clone()
                .unwrap_or_else(|| from_na.uri.host.clone());
            match self.authenticate(&msg, &realm, true, now) {
                Ok(u) => auth_user = Some((u, realm)),
                Err(e) => {
                    self.profiles[profile].failed_in += 1;
                    return self.challenge_reply(&key, &msg, true, e, now);
                }
            }
        }
        let p = &self.profiles[profile];
        let trusted_by = trusted_by.filter(|_| p.cfg.auth_calls);
        let p = &self.profiles[profile];
        let remote = if msg.body.is_empty() {
            None
        } else {
            match sdp::parse(&msg.body) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!("INVITE {call_id}: unusable SDP: {e}");
                    self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                    return;
                }
            }
        };
        // A browser's media runs on the WebRTC stack: Opus or G.711.
        let codecs: Vec<_> = match &remote {
            Some(r) if r.dtls => p
                .cfg
                .codecs
                .iter()
                .copied()
                .filter(|c| *c != crate::sdp::Codec::G722)
                .collect(),
            _ => p.cfg.codecs.clone(),
        };
        let chosen = match &remote {
            Some(r) => match r.choose(&codecs) {
                Some(c) => Some(c),
                None => {
                    log::warn!("INVITE {call_id}: no codec in common");
                    self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                    return;
                }
            },
            None => None,
        };
        let media = match crate::rtp::Media::bind(p.cfg.rtp_ip, p.sdp_ip(), self.rtp.0, self.rtp.1)
        {
            Ok(m) => m,
            Err(e) => {
                log::error!("INVITE {call_id}: {e}");
                self.refuse(&key, &msg, (503, "Service Unavailable"), now);
                return;
            }
        };
        media.set_timeouts(p.cfg.rtp_timeout, p.cfg.rtp_hold_timeout);
        if let (Some(r), Some((codec, pt))) = (&remote, chosen) {
            media.set_remote(r.addr, codec, pt, r.te_for(codec));
            if r.dtls {
                // A browser: WebRTC media on the shared stack.
                let offer = String::from_utf8_lossy(&msg.body);
                if let Err(e) = media.webrtc_answer(&offer, p.cfg.rtp_ip) {
                    log::warn!("INVITE {call_id}: WebRTC offer: {e}");
                    self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                    return;
                }
            } else {
                // SDES (RFC 4568) under the profile's rtp-secure-media.
                let policy = &p.cfg.secure_media;
                if let Err(why) = media.sdes(|s| s.answer(policy, r.savp, &r.crypto)) {
                    log::warn!("INVITE {call_id}: {why}");
                    self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                    return;
                }
            }
        }
        let ctx = ModuleContext::current();
        let session = match ctx.session_request("sofia", false) {
            Ok(s) => s,
            Err(e) => {
                // A limit, or the core stopped taking calls meanwhile.
                log::warn!("INVITE {call_id}: no session: {e}");
                self.refuse_busy(&key, &msg, now);
                return;
            }
        };
        let local_tag = new_tag();
        let uuid = session.uuid();
        let leg = Arc::new(Leg {
            call_id: call_id.clone(),
            uuid: uuid.clone(),
            profile,
            media,
            dtmf_type: p.cfg.dtmf_type,
            tx: self.input.clone(),
            invite: Default::default(),
            initialized: Default::default(),
        });
        let from_user = from_na.uri.user.clone().unwrap_or_default();
        let name = format!("sofia/{}/{}@{}", p.cfg.name, from_user, from_na.uri.host);
        // The authenticated user's directory entry: its variables go on
        // the channel and its user_context routes the call.
        // A domain= ACL node names the user an address is (acl_token):
        // its directory entry applies as if it had authenticated.
        let acl_token = trusted_by.as_ref().and_then(|(_, t)| t.clone());
        let acl_user = acl_token
            .as_deref()
            .and_then(|t| t.split_once('@'))
            .map(|(u, d)| (u.to_string(), d.to_string()));
        let user_vars = auth_user
            .as_ref()
            .or(acl_user.as_ref())
            .map(|(u, realm)| directory_vars(u, realm))
            .unwrap_or_default();
        let context = user_vars
            .iter()
            .rev()
            .find(|(k, _)| k == "user_context")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| p.cfg.context.clone());
        let auth_user = auth_user.map(|(u, _)| u);
        let profile_data = Profile {
            username: auth_user.clone().unwrap_or_default(),
            dialplan: p.cfg.dialplan.clone(),
            caller_id_name: from_na.display.clone().unwrap_or_else(|| from_user.clone()),
            caller_id_number: from_user.clone(),
            network_addr: from.addr.ip().to_string(),
            destination_number: ruri.user.clone().unwrap_or_default(),
            source: "mod_sofia".into(),
            context,
            chan_name: name.clone(),
            ..Default::default()
        };
        session.set_name(&name);
        session.set_profile(&profile_data);
        set_inbound_vars(
            &session,
            &msg,
            &from_na,
            to.as_ref(),
            &ruri,
            from,
            p,
            auth_user.as_deref(),
            self.wall_at(now),
        );
        if auth_user.is_some() || trusted_by.is_some() {
            session.set_var("sip_authorized", "true");
        }
        if let Some((list, _)) = &trusted_by {
            session.set_var("sip_acl_authed_by", list);
        }
        if let Some(t) = &acl_token {
            session.set_var("acl_token", t);
            session.set_var("sip_acl_token", t);
        }
        for (k, v) in &user_vars {
            session.set_var(k, v);
        }
        if let Some((codec, _)) = chosen {
            set_codec_vars(&session, codec);
            set_dtmf_vars(&session, &leg);
        }
        session.set_var("rtp_local_sdp_port", &leg.media.port.to_string());
        for (k, v) in leg.media.sdes(|s| s.channel_vars()) {
            session.set_var(k, &v);
        }
        if let Err(e) = session.set_private(leg.clone()) {
            log::error!("{}: cannot attach its leg: {e}", leg.uuid);
        }
        let contact = msg
            .headers
            .get("Contact")
            .and_then(NameAddr::parse)
            .map(|c| c.uri_text)
            .unwrap_or_default();
        let call = Call {
            leg,
            uas: true,
            phase: Phase::Early,
            local_tag,
            remote_tag: from_na.tag().map(str::to_string),
            local_uri: strip_tag(msg.headers.get("To").unwrap_or("")),
            remote_uri: strip_tag(msg.headers.get("From").unwrap_or("")),
            remote_target: contact,
            route_set: msg
                .headers
                .get_all("Record-Route")
                .map(str::to_string)
                .collect(),
            local_cseq: 0,
            peer: from,
            invite_key: Some(key.clone()),
            invite_req: Some(msg.clone()),
            reinvite: None,
            client_invite: None,
            cancel_pending: false,
            sdp_session: self.unix_secs(now),
            sdp_version: 1,
            remote_version: remote.as_ref().map(|r| r.version),
            hold: false,
            auth_tries: 0,
            outbound: None,
            offer: None,
            codecs: None,
            early_sdp: false,
        };
        self.add_call(call);
        self.profiles[profile].calls_in += 1;
        if session
            .set_state(hotswitch_plugin_api::ChannelState::INIT)
            .is_err()
            || session.start().is_err()
        {
            log::warn!("INVITE {call_id}: the session did not start");
            self.remove_call(&uuid);
            self.refuse(&key, &msg, (503, "Service Unavailable"), now);
        }
    }

    pub(super) fn local_sdp(&self, call: &Call, direction: Direction) -> String {
        if let Some(sdp) = call.leg.media.webrtc_sdp() {
            return sdp;
        }
        let p = &self.profiles[call.leg.profile];
        let rfc2833 = p.cfg.dtmf_type == crate::config::DtmfType::Rfc2833;
        let (codecs, te) = match call.remote_version {
            // Answering: the one codec chosen, and the offer's
            // telephone-event on its clock (FreeSWITCH answers
            // telephone-event/48000 with Opus).
            Some(_) if call.uas || call.phase == Phase::Confirmed => {
                let c = call.leg.media.codec();
                let remote = call
                    .invite_req
                    .as_ref()
                    .and_then(|m| sdp::parse(&m.body).ok());
                let pt = remote
                    .as_ref()
                    .and_then(|r| r.choose(&[c]))
                    .map(|x| x.1)
                    .unwrap_or(c.pt());
                let te = match remote.as_ref().and_then(|r| r.te_for(c)) {
                    Some(t) => vec![t],
                    None => vec![(p.cfg.te_pt, c.clock_rate())],
                };
                (vec![(c, pt)], te)
            }
            // Offering: a telephone-event for each clock rate the codecs
            // have, in their order (FreeSWITCH's): te_pt at 8000 Hz, a free
            // dynamic type at 48000 Hz for Opus.
            _ => {
                let codecs: Vec<_> = self
                    .call_codecs(call)
                    .iter()
                    .map(|c| (*c, c.pt()))
                    .collect();
                let mut te: Vec<(u8, u32)> = Vec::new();
                for (c, _) in &codecs {
                    let rate = c.clock_rate();
                    if te.iter().any(|x| x.1 == rate) {
                        continue;
                    }
                    let pt = if rate == 8000 {
                        p.cfg.te_pt
                    } else {
                        (96..128u8)
                            .find(|n| {
                                *n != p.cfg.te_pt
                                    && codecs.iter().all(|(_, cpt)| cpt != n)
                                    && te.iter().all(|x| x.0 != *n)
                            })
                            .unwrap_or(p.cfg.te_pt)
                    };
                    te.push((pt, rate));
                }
                (codecs, te)
            }
        };
        let te = if rfc2833 { te } else { Vec::new() };
        sdp::build(&Local {
            ip: call.leg.media.ip,
            port: call.leg.media.port,
            session_id: call.sdp_session,
            version: call.sdp_version,
            codecs,
            te,
            direction,
            ptime: 20,
            savp: call.leg.media.sdes(|s| s.savp),
            crypto: call.leg.media.sdes(|s| s.lines()),
        })
    }

    pub(super) fn on_reinvite(&mut self, key: ServerKey, msg: Message, now: Instant) {
        let Some(uuid) = self.dialog_of(&msg) else {
            self.refuse(&key, &msg, (481, "Call/Transaction Does Not Exist"), now);
            return;
        };
        let call = &self.calls[&uuid];
        if call.phase != Phase::Confirmed {
            self.refuse(&key, &msg, (491, "Request Pending"), now);
            return;
        }
        let remote = if msg.body.is_empty() {
            None
        } else {
            match sdp::parse(&msg.body) {
                Ok(r) => Some(r),
                Err(_) => {
                    self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                    return;
                }
            }
        };
        let mut direction = Direction::SendRecv;
        let mut hold_change = None;
        let mut new_codec = None;
        if let Some(r) = &remote {
            let Some((codec, pt)) = r.choose(&self.profiles[call.leg.profile].cfg.codecs) else {
                self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                return;
            };
            let hold = r.is_hold();
            if hold != call.hold {
                hold_change = Some(hold);
            }
            if r.addr.is_some_and(|a| !a.ip().is_unspecified()) {
                call.leg
                    .media
                    .set_remote(r.addr, codec, pt, r.te_for(codec));
            }
            call.leg.media.set_hold(hold);
            // New a=crypto keys re-key the leg's SRTP (RFC 4568 §7.1.4).
            if !r.dtls {
                let policy = &self.profiles[call.leg.profile].cfg.secure_media;
                match call
                    .leg
                    .media
                    .sdes(|s| s.reanswer(policy, r.savp, &r.crypto))
                {
                    Ok(true) => log::info!("{uuid}: SRTP re-keyed by a re-INVITE"),
                    Ok(false) => {}
                    Err(why) => {
                        log::warn!("{uuid}: re-INVITE: {why}");
                        self.refuse(&key, &msg, (488, "Not Acceptable Here"), now);
                        return;
                    }
                }
            }
            new_codec = Some(codec);
            direction = r.direction.answer();
            if r.addr.is_some_and(|a| a.ip().is_unspecified()) {
                direction = Direction::Inactive;
            }
        }
        let call = self.calls.get_mut(&uuid).expect("found above");
        if let Some(r) = &remote {
            if Some(r.version) != call.remote_version {
                call.sdp_version += 1;
            }
            call.remote_version = Some(r.version);
        }
        if let Some(h) = hold_change {
            call.hold = h;
        }
        let contact = self.profiles[call.leg.profile].contact(call.peer.proto);
        let call = &self.calls[&uuid];
        let body = self.local_sdp(call, direction);
        let tag = call.local_tag.clone();
        self.reply(&key, &msg, (200, "OK"), Some(&tag), now, |r| {
            r.headers.push("Contact", contact);
            r.headers.push("Allow", ALLOW);
            r.set_body("application/sdp", body.into_bytes());
        });
        let cseq = msg.cseq().map(|c| c.0).unwrap_or(0);
        if let Some(c) = self.calls.get_mut(&uuid) {
            // A re-INVITE still unacknowledged when the next one came
            // ends here: its ACK can no longer arrive in order.
            if let Some((old, _)) = c.reinvite.replace((key, cseq)) {
                self.tx.confirmed(&old);
            }
        }
        // The offer is the channel's remote SDP now (switch_r_sdp).
        if let (Some(codec), Some(s)) = (new_codec, ModuleContext::current().session_locate(&uuid))
        {
            s.set_var("switch_r_sdp", &String::from_utf8_lossy(&msg.body));
            set_codec_vars(&s, codec);
        }
        if let Some(hold) = hold_change {
            if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                s.set_var("sip_hold", if hold { "true" } else { "" });
                s.mark_hold(hold);
                log::info!("{} {}", s.uuid(), if hold { "on hold" } else { "off hold" });
            }
        }
    }

    pub(super) fn on_ack(&mut self, msg: Message) {
        let Some(call) = self.dialog_of(&msg).and_then(|u| self.calls.get_mut(&u)) else {
            return;
        };
        let cseq = msg.cseq().map(|c| c.0);
        if call
            .reinvite
            .as_ref()
            .is_some_and(|(_, n)| Some(*n) == cseq)
        {
            if let Some((k, _)) = call.reinvite.take() {
                self.tx.confirmed(&k);
            }
            return;
        }
        let first = call.invite_key.take();
        if let Some(k) = &first {
            self.tx.confirmed(k);
        }
        let uuid = call.leg.uuid.clone();
        // A delayed offer: the answer comes in the ACK.
        if call.uas && !msg.body.is_empty() {
            if let Ok(r) = sdp::parse(&msg.body) {
                if let Some((codec, pt)) = r.choose(&self.profiles[call.leg.profile].cfg.codecs) {
                    call.leg
                        .media
                        .set_remote(r.addr, codec, pt, r.te_for(codec));
                    call.remote_version = Some(r.version);
                    if let Some(s) = ModuleContext::current().session_locate(&call.leg.uuid) {
                        s.set_var("switch_r_sdp", &String::from_utf8_lossy(&msg.body));
                        set_codec_vars(&s, codec);
                        set_dtmf_vars(&s, &call.leg);
                    }
                }
            }
        }
        if first.is_some() {
            self.track(&uuid);
        }
    }

    pub(super) fn on_bye(&mut self, key: ServerKey, msg: Message, now: Instant) {
        let Some(call) = self.dialog_of(&msg).and_then(|u| self.remove_call(&u)) else {
            self.refuse(&key, &msg, (481, "Call/Transaction Does Not Exist"), now);
            return;
        };
        for k in call
            .invite_key
            .iter()
            .chain(call.reinvite.as_ref().map(|r| &r.0))
        {
            self.tx.confirmed(k);
        }
        self.refuse(&key, &msg, (200, "OK"), now);
        if let Some(s) = ModuleContext::current().session_locate(&call.leg.uuid) {
            s.set_var("sip_hangup_disposition", "recv_bye");
            s.hangup(CallCause::NORMAL_CLEARING);
        }
    }

    pub(super) fn on_cancel(&mut self, key: ServerKey, msg: Message, now: Instant) {
        let invite_key = ServerKey {
            method: "INVITE".into(),
            ..key.clone()
        };
        let found = self.find_call(msg.call_id(), |c| {
            c.uas && c.invite_key.as_ref() == Some(&invite_key)
        });
        let Some(uuid) = found else {
            self.refuse(&key, &msg, (481, "Call/Transaction Does Not Exist"), now);
            return;
        };
        self.refuse(&key, &msg, (200, "OK"), now);
        let call = self.calls.get(&uuid).expect("found above");
        if call.phase != Phase::Early {
            return; // too late: the call was answered
        }
        let call = self.remove_call(&uuid).expect("found above");
        if let Some(inv) = &call.invite_req {
            let tag = call.local_tag.clone();
            self.reply(
                &invite_key,
                inv,
                (487, "Request Terminated"),
                Some(&tag),
                now,
                |_| {},
            );
        }
        if let Some(s) = ModuleContext::current().session_locate(&call.leg.uuid) {
            s.set_var("sip_hangup_disposition", "recv_cancel");
            s.hangup(CallCause::ORIGINATOR_CANCEL);
        }
    }

    pub(super) fn on_info(&mut self, key: ServerKey, msg: Message, now: Instant) {
        let Some(call) = self.dialog_of(&msg).and_then(|u| self.calls.get(&u)) else {
            self.refuse(&key, &msg, (481, "Call/Transaction Does Not Exist"), now);
            return;
        };
        let ctype = msg
            .headers
            .get("Content-Type")
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = String::from_utf8_lossy(&msg.body).to_string();
        let mut digit = None;
        let mut duration = 100;
        if ctype.starts_with("application/dtmf-relay") {
            for line in body.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "signal" => digit = v.trim().chars().next(),
                        "duration" => duration = v.trim().parse().unwrap_or(100),
                        _ => {}
                    }
                }
            }
        } else if ctype.starts_with("application/dtmf") {
            digit = body.trim().chars().next();
        }
        let uuid = call.leg.uuid.clone();
        self.refuse(&key, &msg, (200, "OK"), now);
        if let Some(d) = digit.filter(|d| crate::rtp::dtmf_event(*d).is_some()) {
            if let Some(s) = ModuleContext::current().session_locate(&uuid) {
                s.queue_dtmf(d, duration);
            }
        }
    }

    pub(super) fn on_message(&mut self, key: ServerKey, msg: Message, from: Target, now: Instant) {
        let f = msg.headers.get("From").and_then(NameAddr::parse);
        let t = msg.headers.get("To").and_then(NameAddr::parse);
        let (Some(f), Some(t)) = (f, t) else {
            return;
        };
        let body = String::from_utf8_lossy(&msg.body).to_string();
        let chat = hotswitch_plugin_api::Chat {
            proto: "sip".into(),
            from: format!("{}@{}", f.uri.user.unwrap_or_default(), f.uri.host),
            to: format!("{}@{}", t.uri.user.unwrap_or_default(), t.uri.host),
            subject: msg.headers.get("Subject").unwrap_or("").to_string(),
            body,
            hint: self.profiles[from.profile].cfg.name.clone(),
            headers: vec![
                (
                    "sip_profile".into(),
                    self.profiles[from.profile].cfg.name.clone(),
                ),
                ("from_sip_ip".into(), from.addr.ip().to_string()),
                ("from_sip_port".into(), from.addr.port().to_string()),
                (
                    "type".into(),
                    msg.headers
                        .get("Content-Type")
                        .unwrap_or("text/plain")
                        .to_string(),
                ),
            ],
        };
        let ok = ModuleContext::current().send_chat(&chat).is_ok();
        if ok {
            self.refuse(&key, &msg, (202, "Accepted"), now);
        } else {
            self.refuse(&key, &msg, (503, "Service Unavailable"), now);
        }
    }

    /// A call we answer that has no final response yet: its INVITE's
    /// transaction and request, our Contact and To tag.
    fn early_uas(&self, uuid: &str) -> Option<(&Call, ServerKey, Message, String, String)> {
        let call = self.calls.get(uuid)?;
        if !call.uas || call.phase != Phase::Early {
            return None;
        }
        let key = call.invite_key.clone()?;
        let req = call.invite_req.clone()?;
        let contact = self.profiles[call.leg.profile].contact(call.peer.proto);
        Some((call, key, req, contact, call.local_tag.clone()))
    }

    pub(super) fn answer(&mut self, uuid: &str, now: Instant) {
        let Some((call, key, req, contact, tag)) = self.early_uas(uuid) else {
            return;
        };
        let body = self.local_sdp(call, Direction::SendRecv);
        let ua = self.server_header(call.leg.profile);
        self.reply(&key, &req, (200, "OK"), Some(&tag), now, |r| {
            r.headers.push("Contact", contact);
            r.headers.push("Allow", ALLOW);
            r.headers.push("Server", ua);
            r.set_body("application/sdp", body.into_bytes());
        });
        if let Some(c) = self.calls.get_mut(uuid) {
            c.phase = Phase::Confirmed;
        }
    }

    /// An inbound leg told, as it answers or sends early media, to use only
    /// `codecs` (its `absolute_codec_string`): its media takes the first
    /// of them the caller offered, before our SDP goes, and the call keeps
    /// the list for an offer of its own (an INVITE without SDP). Once a 183
    /// carried our SDP, the answer keeps its codec.
    pub(super) fn answer_codecs(&mut self, uuid: &str, codecs: Option<Vec<sdp::Codec>>) {
        let Some(codecs) = codecs else {
            return;
        };
        let Some(call) = self.calls.get_mut(uuid) else {
            return;
        };
        if !call.uas || call.phase != Phase::Early || call.early_sdp {
            return;
        }
        let codecs = call.codecs.insert(codecs);
        let Some(r) = call
            .invite_req
            .as_ref()
            .and_then(|m| sdp::parse(&m.body).ok())
        else {
            return;
        };
        let current = call.leg.media.codec();
        match r.choose(codecs) {
            // A browser's media was set up on the WebRTC stack at the INVITE.
            _ if r.dtls => {}
            Some((c, pt)) if c != current => {
                call.leg.media.set_remote(r.addr, c, pt, r.te_for(c));
                if let Some(s) = ModuleContext::current().session_locate(uuid) {
                    set_codec_vars(&s, c);
                }
                log::debug!(
                    "{uuid}: absolute_codec_string: answering in {} instead of {}",
                    c.name(),
                    current.name()
                );
            }
            Some(_) => {}
            None => log::warn!(
                "{uuid}: absolute_codec_string names no codec the caller offered; answering in {}",
                current.name()
            ),
        }
    }

    pub(super) fn provisional(&mut self, uuid: &str, code: u16, now: Instant) {
        let Some((call, key, req, contact, tag)) = self.early_uas(uuid) else {
            return;
        };
        let body = (code == 183 && call.remote_version.is_some())
            .then(|| self.local_sdp(call, Direction::SendRecv));
        if body.is_some() {
            if let Some(c) = self.calls.get_mut(uuid) {
                c.early_sdp = true;
            }
        }
        let reason = if code == 180 {
            "Ringing"
        } else {
            "Session Progress"
        };
        self.reply(&key, &req, (code, reason), Some(&tag), now, |r| {
            r.headers.push("Contact", contact);
            if let Some(b) = body {
                r.set_body("application/sdp", b.into_bytes());
            }
        });
    }
}

/// `<prefix>_user`, `_port`, `_uri` (user@host[:port]), `_host` and
/// `_params` of a URI, as FreeSWITCH's mod_sofia names them (a missing user
/// is `nobody`).
fn url_vars(vars: &mut Vec<(String, String)>, prefix: &str, u: &Uri) {
    let user = u.user.clone().unwrap_or_else(|| "nobody".into());
    let port = u.port.map(|p| format!(":{p}")).unwrap_or_default();
    vars.push((format!("{prefix}_uri"), format!("{user}@{}{port}", u.host)));
    vars.push((format!("{prefix}_user"), user));
    vars.push((format!("{prefix}_host"), u.host.clone()));
    if let Some(p) = u.port {
        vars.push((format!("{prefix}_port"), p.to_string()));
    }
    if !u.params.is_empty() {
        let params: Vec<String> = u
            .params
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        vars.push((format!("{prefix}_params"), params.join(";")));
    }
}

/// What FreeSWITCH's `extract_header_vars`/`extract_vars` set on an
/// outgoing leg from the 2xx that answers it: the From, To and Contact as
/// `sip_{from,to,contact}_*`, both tags, the CSeq, the full headers.
pub(super) fn answered_vars(msg: &Message) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for (header, prefix) in [
        ("From", "sip_from"),
        ("To", "sip_to"),
        ("Contact", "sip_contact"),
    ] {
        if let Some(na) = msg.headers.get(header).and_then(NameAddr::parse) {
            url_vars(&mut vars, prefix, &na.uri);
            if let Some(t) = na.tag() {
                vars.push((format!("{prefix}_tag"), t.to_string()));
            }
        }
    }
    for (header, var) in [("From", "sip_full_from"), ("To", "sip_full_to")] {
        if let Some(v) = msg.headers.get(header) {
            vars.push((var.into(), v.into()));
        }
    }
    let vias: Vec<&str> = msg.headers.get_all("Via").collect();
    if !vias.is_empty() {
        vars.push(("sip_full_via".into(), vias.join(",")));
    }
    if let Some((n, _)) = msg.cseq() {
        vars.push(("sip_cseq".into(), n.to_string()));
    }
    vars
}

/// What FreeSWITCH puts on the channel of a caller who authenticated as
/// `user@domain` (sofia_reg.c): who it is, its `sip-…` params and every
/// directory variable (domain, group and user merged: user_context,
/// effective_caller_id_name, accountcode, toll_allow, …).
fn directory_vars(user: &str, domain: &str) -> Vec<(String, String)> {
    if !hotswitch_plugin_api::is_api_word(user) || !hotswitch_plugin_api::is_api_word(domain) {
        return Vec::new();
    }
    let ctx = ModuleContext::current();
    let xml = ctx
        .execute_api("find_user_xml", &format!("id {user} {domain}"))
        .unwrap_or_default();
    let Ok(u) = crate::config::Element::parse(&xml) else {
        return Vec::new();
    };
    if u.name() != "user" {
        return Vec::new();
    }
    let alias = u.attr("number-alias").unwrap_or("").to_string();
    let mut vars: Vec<(String, String)> = vec![
        ("sip_number_alias".into(), alias.clone()),
        ("sip_auth_username".into(), user.into()),
        ("sip_auth_realm".into(), domain.into()),
        ("number_alias".into(), alias),
        ("user_name".into(), user.into()),
        ("domain_name".into(), domain.into()),
    ];
    vars.retain(|(_, v)| !v.is_empty());
    if let Some(params) = u.child("params") {
        vars.extend(params.params().into_iter().filter(|(k, v)| {
            !v.is_empty()
                && (k.len() > 4 && k[..4].eq_ignore_ascii_case("sip-")
                    || k.eq_ignore_ascii_case("register-gateway"))
        }));
    }
    if let Some(variables) = u.child("variables") {
        vars.extend(
            variables
                .children("variable")
                .filter_map(|v| Some((v.attr("name")?.to_string(), v.attr("value")?.to_string())))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty()),
        );
    }
    vars
}

/// The variables FreeSWITCH's mod_sofia sets on an incoming leg (sofia.c,
/// `sofia_handle_sip_i_invite` and `extract_header_vars`/`extract_vars`);
/// `at` is when the INVITE came, by the wall clock (`sip_invite_stamp`).
#[allow(clippy::too_many_arguments)]
pub(super) fn set_inbound_vars(
    s: &OwnedSession,
    msg: &Message,
    from: &NameAddr,
    to: Option<&NameAddr>,
    ruri: &Uri,
    src: Target,
    p: &ProfileRt,
    auth_user: Option<&str>,
    at: SystemTime,
) {
    let profile = p.cfg.name.as_str();
    let invite_stamp = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let mut vars: Vec<(String, String)> = vec![
        ("sip_call_id".into(), msg.call_id().into()),
        ("sip_profile_name".into(), profile.into()),
        ("sofia_profile_name".into(), profile.into()),
        ("recovery_profile_name".into(), profile.into()),
        (
            "sofia_profile_url".into(),
            format!("sip:mod_sofia@{}", p.host_port()),
        ),
        (
            "sip_local_network_addr".into(),
            p.cfg.ext_rtp_ip.unwrap_or(p.cfg.sip_ip).to_string(),
        ),
        ("sip_invite_stamp".into(), invite_stamp.to_string()),
        ("sip_network_ip".into(), src.addr.ip().to_string()),
        ("sip_network_port".into(), src.addr.port().to_string()),
        ("sip_received_ip".into(), src.addr.ip().to_string()),
        ("sip_received_port".into(), src.addr.port().to_string()),
        (
            "sip_via_protocol".into(),
            src.proto.as_str().to_ascii_lowercase(),
        ),
        ("sip_from_tag".into(), from.tag().unwrap_or("").into()),
        (
            "sip_user_agent".into(),
            msg.headers.get("User-Agent").unwrap_or("").into(),
        ),
        (
            "switch_r_sdp".into(),
            String::from_utf8_lossy(&msg.body).into(),
        ),
    ];
    url_vars(&mut vars, "sip_from", &from.uri);
    url_vars(&mut vars, "sip_req", ruri);
    if let Some(u) = &from.uri.user {
        let stripped = u.strip_prefix('+').unwrap_or(u);
        vars.push(("sip_from_user_stripped".into(), stripped.into()));
    }
    if let Some(d) = &from.display {
        vars.push(("sip_from_display".into(), d.clone()));
    }
    if let Some(t) = to {
        url_vars(&mut vars, "sip_to", &t.uri);
        if let Some(d) = &t.display {
            vars.push(("sip_to_display".into(), d.clone()));
        }
    }
    if let Some(c) = msg.headers.get("Contact").and_then(NameAddr::parse) {
        url_vars(&mut vars, "sip_contact", &c.uri);
    }
    if let Some((n, _)) = msg.cseq() {
        vars.push(("sip_cseq".into(), n.to_string()));
    }
    // The hops left: a leg this call originates gets one less, and none
    // when none are left, so a call routed back to the switch again and
    // again ends (FreeSWITCH's max_forwards).
    if let Some(mf) = msg.headers.get("Max-Forwards") {
        vars.push(("max_forwards".into(), mf.trim().to_string()));
    }
    let vias: Vec<&str> = msg.headers.get_all("Via").collect();
    if !vias.is_empty() {
        vars.push(("sip_full_via".into(), vias.join(",")));
    }
    if let Some(v) = vias.first().and_then(|v| Via::parse(v)) {
        vars.push(("sip_via_host".into(), v.host.clone()));
        if let Some(port) = v.port {
            vars.push(("sip_via_port".into(), port.to_string()));
        }
        if let Some(Some(rport)) = v.rport {
            vars.push(("sip_via_rport".into(), rport.to_string()));
        }
    }
    for (header, var) in [
        ("From", "sip_full_from"),
        ("To", "sip_full_to"),
        ("Allow", "sip_allow"),
    ] {
        if let Some(v) = msg.headers.get(header) {
            vars.push((var.into(), v.into()));
        }
    }
    if let Some(u) = auth_user {
        vars.push(("sip_auth_username".into(), u.into()));
        vars.push(("user_name".into(), u.into()));
    }
    for (n, v) in &msg.headers.0 {
        if n.len() > 2 && n[..2].eq_ignore_ascii_case("X-") {
            vars.push((format!("sip_h_{n}"), v.clone()));
        }
    }
    for (k, v) in vars {
        s.set_var(&k, &v);
    }
}

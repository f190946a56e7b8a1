//! `track-calls` on the SIP thread: a confirmed call's snapshot handed to
//! [`crate::tracking`], and `sofia recover`'s calls made channels again.
//!
//! A recovered leg, as FreeSWITCH's `sofia_recover_callback` makes it:
//! the old dialog (Call-ID, tags, URIs, the far end's target, the route
//! set, so Record-Route and Path are honoured and the re-INVITE goes
//! through the proxy the dialog went through) on a new session, answered,
//! with media bound on this node; a re-INVITE offers that media in the
//! codec the call had, and the far end's answer says where its RTP goes.
//! A leg that was bridged parks (`inline:park`) until `sofia recover`
//! bridges it to its recovered partner; an inbound leg that was not runs
//! its dialplan again from its caller profile (an answered channel's
//! `answer` does nothing), an outbound one parks.

use super::*;
use crate::sdp::Codec;
use crate::tracking::{self, Recovered, Tracked};

impl Stack {
    /// A call just confirmed: its snapshot goes to the tracker when its
    /// profile tracks calls (UDP dialogs: a connection-oriented one could
    /// not be taken over by another node).
    pub(super) fn track(&self, uuid: &str) {
        let Some(call) = self.calls.get(uuid) else {
            return;
        };
        let p = &self.profiles[call.leg.profile];
        if call.peer.proto != Proto::Udp
            || call.leg.media.webrtc_sdp().is_some()
            || !tracking::tracks(&p.cfg.name)
        {
            return;
        }
        tracking::track(Tracked {
            uuid: uuid.to_string(),
            profile: p.cfg.name.clone(),
            uas: call.uas,
            call_id: call.leg.call_id.clone(),
            local_tag: call.local_tag.clone(),
            remote_tag: call.remote_tag.clone().unwrap_or_default(),
            local_uri: call.local_uri.clone(),
            remote_uri: call.remote_uri.clone(),
            remote_target: call.remote_target.clone(),
            route_set: call.route_set.clone(),
            local_cseq: call.local_cseq,
            peer_proto: call.peer.proto.as_str().to_string(),
            peer: Some(call.peer.addr),
            remote_media: call.leg.media.remote(),
            codec: call.leg.media.codec().name().to_string(),
            stream: Some(call.leg.media.stream_position()),
            ..Default::default()
        });
    }

    /// `sofia recover`: each call a channel again, re-INVITEd.
    pub(super) fn recover(&mut self, calls: Vec<Tracked>, now: Instant) -> Vec<Recovered> {
        let mut out = Vec::new();
        for t in calls {
            match self.recover_one(&t, now) {
                Ok(new) => out.push(Recovered {
                    old: t.uuid.clone(),
                    new,
                    partner: t.partner.clone(),
                }),
                Err(e) => log::warn!("sofia recover: call {} ({}): {e}", t.uuid, t.call_id),
            }
        }
        out
    }

    fn recover_one(&mut self, t: &Tracked, now: Instant) -> Result<String, String> {
        let profile = self
            .profiles
            .iter()
            .position(|p| p.cfg.name == t.profile && p.running)
            .ok_or_else(|| format!("profile {} is not running here", t.profile))?;
        if Proto::from_token(&t.peer_proto) != Some(Proto::Udp) {
            return Err(format!(
                "its dialog ran over {}: only UDP dialogs are taken over",
                t.peer_proto
            ));
        }
        let peer = t.peer.ok_or("no address for its requests")?;
        if self
            .find_call(&t.call_id, |c| c.local_tag == t.local_tag)
            .is_some()
        {
            return Err("its dialog is already here".into());
        }
        let codec = Codec::from_name(&t.codec).unwrap_or(Codec::Pcmu);
        let p = &self.profiles[profile];
        // One telephone-event, on the codec's clock (48 kHz with Opus).
        let te = (p.cfg.dtmf_type == crate::config::DtmfType::Rfc2833)
            .then_some((p.cfg.te_pt, codec.clock_rate()));
        let media = crate::rtp::Media::bind(p.cfg.rtp_ip, p.sdp_ip(), self.rtp.0, self.rtp.1)
            .map_err(|e| e.to_string())?;
        media.set_timeouts(p.cfg.rtp_timeout, p.cfg.rtp_hold_timeout);
        // Until the far end answers: where its RTP came from on the old node.
        media.set_remote(t.remote_media, codec, codec.pt(), te);
        // The far end hears the same stream go on, not a new one.
        if let Some(pos) = t.stream {
            media.continue_stream(pos);
        }
        let ctx = ModuleContext::current();
        let session = ctx
            .session_request("sofia", !t.uas)
            .map_err(|e| format!("no session: {e}"))?;
        let uuid = session.uuid();
        let leg = Arc::new(Leg {
            call_id: t.call_id.clone(),
            uuid: uuid.clone(),
            profile,
            media,
            dtmf_type: p.cfg.dtmf_type,
            tx: self.input.clone(),
            invite: Default::default(),
            initialized: Default::default(),
        });
        let dialplan = if !t.partner.is_empty() || !t.uas {
            "inline:park".to_string()
        } else {
            t.dialplan.clone()
        };
        session.set_name(&t.channel_name);
        session.set_profile(&Profile {
            username: t.username.clone(),
            dialplan,
            caller_id_name: t.caller_id_name.clone(),
            caller_id_number: t.caller_id_number.clone(),
            network_addr: t.network_addr.clone(),
            destination_number: t.destination_number.clone(),
            source: "mod_sofia".into(),
            context: t.context.clone(),
            chan_name: t.channel_name.clone(),
            ..Default::default()
        });
        for (k, v) in &t.vars {
            session.set_var(k, v);
        }
        session.set_var("sofia_profile_name", &t.profile);
        session.set_var("recovery_profile_name", &t.profile);
        session.set_var("sip_recovered_from", &t.uuid);
        set_codec_vars(&session, codec);
        session.set_var("rtp_local_sdp_port", &leg.media.port.to_string());
        if let Err(e) = session.set_private(leg.clone()) {
            return Err(format!("cannot attach its leg: {e}"));
        }
        session.mark_answered();
        let mut call = Call {
            leg,
            uas: t.uas,
            phase: Phase::Confirmed,
            local_tag: t.local_tag.clone(),
            remote_tag: (!t.remote_tag.is_empty()).then(|| t.remote_tag.clone()),
            local_uri: t.local_uri.clone(),
            remote_uri: t.remote_uri.clone(),
            remote_target: t.remote_target.clone(),
            route_set: t.route_set.clone(),
            // Above anything the old node can have sent in this dialog.
            local_cseq: t.local_cseq.max((self.unix_secs(now) % (1 << 30)) as u32),
            peer: Target {
                proto: Proto::Udp,
                addr: peer,
                profile,
            },
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
            codecs: None,
            early_sdp: false,
        };
        let offer = sdp::build(&Local {
            ip: call.leg.media.ip,
            port: call.leg.media.port,
            session_id: call.sdp_session,
            version: call.sdp_version,
            codecs: vec![(codec, codec.pt())],
            te: te.into_iter().collect(),
            direction: Direction::SendRecv,
            ptime: 20,
            savp: false,
            crypto: Vec::new(),
        });
        let mut m = self.in_dialog(&mut call, "INVITE");
        m.headers.push("Contact", p.contact(Proto::Udp));
        m.headers.push("Allow", ALLOW);
        m.set_body("application/sdp", offer.clone().into_bytes());
        call.offer = Some(offer);
        let key = self.tx.send_request(m, call.peer, now);
        call.client_invite = key.clone();
        if let Some(k) = key {
            self.recovering.insert(k, uuid.clone());
        }
        self.add_call(call);
        if session
            .set_state(hotswitch_plugin_api::ChannelState::INIT)
            .is_err()
            || session.start().is_err()
        {
            self.hangup(&uuid, CallCause::DESTINATION_OUT_OF_ORDER, now);
            return Err("the session did not start".into());
        }
        log::info!("Resurrecting fallen channel {}", t.channel_name);
        Ok(uuid)
    }

    /// Whether `key` is a recovery re-INVITE.
    pub(super) fn is_recovery(&self, key: &ClientKey) -> bool {
        self.recovering.contains_key(key)
    }

    /// The far end's answer to a recovery re-INVITE: a 2xx is ACKed and
    /// its SDP says where media goes now; a refusal ends the call.
    pub(super) fn on_recovery_response(&mut self, key: ClientKey, msg: Message) {
        let code = msg.code().unwrap_or(0);
        if code < 200 {
            return;
        }
        let Some(uuid) = self.recovering.remove(&key) else {
            return;
        };
        let ctx = ModuleContext::current();
        if code >= 300 {
            log::warn!("sofia recover: {uuid}: the re-INVITE got {code}; the call ends");
            self.remove_call(&uuid);
            if let Some(s) = ctx.session_locate(&uuid) {
                s.set_var("sip_term_status", &code.to_string());
                s.hangup(sip_to_cause(code));
            }
            return;
        }
        if let Some(a) = self.build_2xx_ack(&uuid, &msg) {
            if let Some(call) = self.calls.get(&uuid) {
                let peer = call.peer;
                self.tx.set_ack(&key, a.clone());
                self.tx.send_stateless(peer, a);
            }
        }
        let Some(call) = self.calls.get_mut(&uuid) else {
            return;
        };
        if let Some(c) = msg.headers.get("Contact").and_then(NameAddr::parse) {
            call.remote_target = c.uri_text;
        }
        let codecs = self.profiles[call.leg.profile].cfg.codecs.clone();
        if let Some((r, (c, pt))) = sdp::parse(&msg.body)
            .ok()
            .and_then(|r| r.choose(&codecs).map(|x| (r, x)))
        {
            call.leg.media.set_remote(r.addr, c, pt, r.te_for(c));
            call.remote_version = Some(r.version);
            if let Some(s) = ctx.session_locate(&uuid) {
                s.set_var("switch_r_sdp", &String::from_utf8_lossy(&msg.body));
                set_codec_vars(&s, c);
                set_dtmf_vars(&s, &call.leg);
            }
        }
        log::info!("sofia recover: {uuid} re-INVITEd ({code}), media now from this node");
        // Tracked here now: this node may fail in turn.
        self.track(&uuid);
    }
}

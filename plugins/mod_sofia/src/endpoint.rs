//! The `sofia` endpoint: outbound legs, what the core tells a leg
//! (answer, progress, ringing, hangup), and frames to and from RTP on the
//! session's own thread.

use crate::config::DtmfType;
use crate::leg::{self, Input, Leg, Outbound};
use crate::rtp::{Media, Read};
use crate::sdp::Codec;
use crate::shell;
use crate::srtp::SecureMedia;
use crate::ua::dial_target;
use hotswitch_plugin_api::{
    CallCause, ChannelState, Dtmf, Endpoint, FrameBuf, FrameView, KillSignal, Message, MessageId,
    ModuleContext, Outgoing, OwnedSession, Session, Status, READ_FLAG_NOBLOCK,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a blocking read waits for a packet.
const READ_WAIT: Duration = Duration::from_millis(20);

/// A codec string's codecs; `None` (said in the log) when it names none
/// hotswitch carries.
fn codec_list(text: &str, whose: &str) -> Option<Vec<Codec>> {
    let list = crate::sdp::codec_string(text);
    if list.is_empty() {
        log::warn!(
            "{whose}: codec string {text:?} names no codec hotswitch carries (PCMU, PCMA, G722, OPUS)"
        );
        return None;
    }
    Some(list)
}

/// A leg's `absolute_codec_string`, read (`None` without a usable one).
fn absolute_codecs(s: &Session) -> Option<Vec<Codec>> {
    let text = s
        .var("absolute_codec_string")
        .filter(|v| !v.trim().is_empty())?;
    codec_list(&text, &s.uuid())
}

/// An outbound leg's codecs, as FreeSWITCH chooses them: exactly
/// `absolute_codec_string` (the dial string's, else the calling leg's —
/// `set` before `bridge`), else `codec_string` (the dial string's) instead
/// of the profile's `codec-prefs`; `None`: the profile's. A string naming
/// no codec hotswitch carries fails the leg (INCOMPATIBLE_DESTINATION).
fn outbound_codecs(req: &Outgoing) -> Result<Option<Vec<Codec>>, CallCause> {
    let own = |name: &str| {
        req.var(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
    };
    let text = own("absolute_codec_string")
        .or_else(|| {
            req.originator
                .as_ref()
                .and_then(|o| o.var("absolute_codec_string"))
                .filter(|v| !v.trim().is_empty())
        })
        .or_else(|| own("codec_string"));
    match text {
        None => Ok(None),
        Some(text) => codec_list(&text, "outbound call")
            .map(Some)
            .ok_or(CallCause::INCOMPATIBLE_DESTINATION),
    }
}

/// FreeSWITCH's `rtp_secure_media_outbound` or `rtp_secure_media` of the
/// leg, else the profile's `rtp-secure-media`.
fn secure_media(req: &Outgoing, pc: &crate::config::ProfileConfig) -> SecureMedia {
    let Some(v) = req
        .var("rtp_secure_media_outbound")
        .or_else(|| req.var("rtp_secure_media"))
    else {
        return pc.secure_media.clone();
    };
    SecureMedia::parse(v).unwrap_or_else(|e| {
        log::warn!("{e}; the profile's rtp-secure-media applies");
        pc.secure_media.clone()
    })
}

/// Sends an outbound leg's INVITE if it has not left yet, with the hops
/// the originate gave the leg.
fn send_invite(s: &Session, l: &Leg) {
    let invite = l.invite.lock().take();
    if let Some(mut o) = invite {
        o.max_forwards = s.var("max_forwards").and_then(|v| v.trim().parse().ok());
        l.send(Input::Invite(o));
    }
}

/// The endpoint registered as `sofia`.
pub struct Sofia;

impl Endpoint for Sofia {
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        let shared = shell::shared().ok_or(CallCause::SERVICE_UNAVAILABLE)?;
        let gateways = |name: &str| {
            shared
                .gateways
                .lock()
                .iter()
                .find(|g| g.1.name == name)
                .cloned()
        };
        let t = dial_target(
            &req.dial_data,
            &shared.profiles,
            &shared.registrar,
            &gateways,
            &|a| shared.flow_alive(a),
            &|pi, r| {
                shared
                    .profile_cfg
                    .get(pi)
                    .is_some_and(|pc| pc.nat.behind_nat(&shared.acls, r))
            },
        )?;
        let pc = &shared.profile_cfg[t.profile];
        let codecs = outbound_codecs(req)?;
        let media = Media::bind(
            pc.rtp_ip,
            pc.ext_rtp_ip.unwrap_or(pc.rtp_ip),
            shared.rtp.0,
            shared.rtp.1,
        )
        .map_err(|e| {
            log::error!("outbound call: {e}");
            CallCause::SWITCH_CONGESTION
        })?;
        media.set_timeouts(pc.rtp_timeout, pc.rtp_hold_timeout);
        media.sdes(|s| s.offer(&secure_media(req, pc)));
        let s = ModuleContext::current()
            .session_request("sofia", true)
            .map_err(|_| CallCause::SWITCH_CONGESTION)?;
        let call_id = uuid::Uuid::new_v4().to_string();
        let leg = Arc::new(Leg {
            call_id: call_id.clone(),
            uuid: s.uuid(),
            profile: t.profile,
            media,
            dtmf_type: pc.dtmf_type,
            tx: shared.input.clone(),
            invite: Default::default(),
            initialized: Default::default(),
        });
        let after_profile = req.dial_data.split_once('/').map(|x| x.1).unwrap_or("");
        let name = format!("sofia/{}/{}", pc.name, after_profile);
        let mut profile = req.profile.clone();
        profile.destination_number = t.uri.user.clone().unwrap_or_default();
        profile.chan_name = name.clone();
        s.set_name(&name);
        s.set_profile(&profile);
        let local_addr = pc.ext_rtp_ip.unwrap_or(pc.sip_ip).to_string();
        // As FreeSWITCH's sofia_outgoing_channel and sofia_glue_do_invite.
        for (k, v) in [
            ("sip_call_id", call_id.as_str()),
            ("sip_profile_name", pc.name.as_str()),
            ("sofia_profile_name", pc.name.as_str()),
            ("recovery_profile_name", pc.name.as_str()),
            ("sip_local_network_addr", local_addr.as_str()),
            ("sip_to_user", t.uri.user.as_deref().unwrap_or("")),
            ("sip_to_host", t.uri.host.as_str()),
            ("sip_req_uri", t.uri.to_string().trim_start_matches("sip:")),
            ("sip_destination_url", &t.uri.to_string()),
            ("sip_gateway_name", t.gateway.as_deref().unwrap_or("")),
            ("rtp_local_sdp_port", &leg.media.port.to_string()),
        ] {
            if !v.is_empty() {
                s.set_var(k, v);
            }
        }
        let headers: Vec<(String, String)> = req
            .vars
            .iter()
            .filter_map(|(k, v)| {
                let h = k.strip_prefix("sip_h_")?;
                (h.len() > 2 && h[..2].eq_ignore_ascii_case("X-"))
                    .then(|| (h.to_string(), v.clone()))
            })
            .collect();
        let auth = t.auth.clone().or_else(|| {
            Some((
                req.var("sip_auth_username")?.to_string(),
                req.var("sip_auth_password")?.to_string(),
            ))
        });
        let from_user = req
            .var("origination_caller_id_number")
            .map(str::to_string)
            .unwrap_or_else(|| req.profile.caller_id_number.clone());
        let from_display = req
            .var("origination_caller_id_name")
            .map(str::to_string)
            .unwrap_or_else(|| req.profile.caller_id_name.clone());
        s.set_private(leg.clone())
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        s.set_state(ChannelState::INIT)
            .map_err(|_| CallCause::DESTINATION_OUT_OF_ORDER)?;
        *leg.invite.lock() = Some(Box::new(Outbound {
            leg: leg.clone(),
            uri: t.uri,
            target: t.target,
            from_user: if from_user.is_empty() {
                "0000000000".into()
            } else {
                from_user
            },
            from_display,
            from_host: t.from_host,
            headers,
            auth,
            gateway: t.gateway,
            max_forwards: None,
            route: t.route,
            codecs,
        }));
        Ok(s)
    }

    fn on_state(&self, s: &Session, state: ChannelState) -> Status {
        match state {
            ChannelState::HANGUP => {
                if let Some(l) = leg::of(s) {
                    // A leg hung up in CS_INIT, before its INVITE left, has
                    // placed its call all the same — FreeSWITCH sends it in
                    // on_init — and ends it at once (CANCEL, or ACK and BYE
                    // of a 2xx that crosses it).
                    if l.initialized.load(Ordering::Acquire) {
                        send_invite(s, l);
                    }
                    // FreeSWITCH's names, for CDRs and the hangup events.
                    let st = l.media.stats();
                    for (k, v) in [
                        ("rtp_audio_in_media_packet_count", st.rx_packets),
                        ("rtp_audio_in_media_bytes", st.rx_octets),
                        ("rtp_audio_in_skip_packet_count", st.lost),
                        ("rtp_audio_in_dtmf_packet_count", st.dtmf_in),
                        ("rtp_audio_out_media_packet_count", st.tx_packets),
                        ("rtp_audio_out_media_bytes", st.tx_octets),
                        ("rtp_audio_rtcp_packet_count", st.rtcp_in + st.rtcp_out),
                        ("rtp_audio_in_srtp_auth_fail_count", st.srtp_auth_failures),
                    ] {
                        s.set_var(k, &v.to_string());
                    }
                    let cause = s
                        .var("hangup_cause")
                        .and_then(|c| CallCause::from_name(&c))
                        .unwrap_or(CallCause::NORMAL_CLEARING);
                    l.send(Input::Hangup {
                        uuid: l.uuid.clone(),
                        cause,
                    });
                }
            }
            ChannelState::DESTROY => {
                if let Some(l) = leg::of(s) {
                    // Never sent: break the leg ↔ INVITE cycle.
                    drop(l.invite.lock().take());
                }
            }
            ChannelState::INIT => {
                if let Some(l) = leg::of(s) {
                    l.initialized.store(true, Ordering::Release);
                }
            }
            // The first state after CS_INIT: the leg's CHANNEL_CREATE has
            // fired, the INVITE goes out.
            st if st.0 > ChannelState::INIT.0 && st.0 < ChannelState::HANGUP.0 => {
                if let Some(l) = leg::of(s) {
                    send_invite(s, l);
                }
            }
            _ => {}
        }
        Status::SUCCESS
    }

    fn receive_message(&self, s: &Session, msg: &Message) -> Status {
        let Some(l) = leg::of(s) else {
            return Status::SUCCESS;
        };
        let uuid = l.uuid.clone();
        // The channel is marked before its 200/183 leaves, so its
        // CHANNEL_ANSWER / CHANNEL_PROGRESS_MEDIA comes before anything the
        // far end does with it (the switch calling itself: the other leg's
        // answer, the originate's result), as with FreeSWITCH, whose
        // sofia-sip sends the response later from its own thread.
        match msg.id {
            MessageId::ANSWER => {
                s.mark_answered();
                let codecs = absolute_codecs(s);
                l.send(Input::Answer { uuid, codecs })
            }
            MessageId::PROGRESS => {
                s.mark_pre_answered();
                let codecs = absolute_codecs(s);
                l.send(Input::Progress { uuid, codecs })
            }
            MessageId::RINGING => l.send(Input::Ringing { uuid }),
            _ => {}
        }
        Status::SUCCESS
    }

    fn kill_channel(&self, _s: &Session, _sig: KillSignal) -> Status {
        // Reads wait at most READ_WAIT; nothing to interrupt.
        Status::SUCCESS
    }

    fn read_frame(&self, s: &Session, f: &mut FrameBuf, flags: u32) -> Status {
        let Some(l) = leg::of(s) else {
            return Status::FALSE;
        };
        if f.buffer().is_empty() {
            return Status::FALSE;
        }
        let wait = if flags & READ_FLAG_NOBLOCK != 0 {
            Duration::ZERO
        } else {
            READ_WAIT
        };
        loop {
            match l.media.read(f.buffer(), wait) {
                Read::Audio { len, codec } => {
                    // The payload is already in the host's buffer; this
                    // describes it in place.
                    f.describe(len, len as u32, codec.name());
                    return Status::SUCCESS;
                }
                Read::Linear { len } => {
                    // A wideband codec, decoded in place to 8 kHz L16.
                    f.describe(len, (len / 2) as u32, "L16");
                    return Status::SUCCESS;
                }
                Read::Dtmf(d, ms) => {
                    log::debug!("{}: RFC 4733 digit {d} ({ms} ms)", l.uuid);
                    s.queue_dtmf(d, ms);
                }
                Read::Timeout => {
                    return if s.is_down() {
                        Status::FALSE
                    } else {
                        Status::TIMEOUT
                    };
                }
                Read::MediaTimeout => {
                    log::warn!("{}: no RTP for the media timeout; hanging up", l.uuid);
                    s.hangup(CallCause::MEDIA_TIMEOUT);
                    return Status::FALSE;
                }
            }
        }
    }

    fn write_frame(&self, s: &Session, f: &FrameView) -> Status {
        let Some(l) = leg::of(s) else {
            return Status::FALSE;
        };
        let data = f.data();
        if data.is_empty() {
            return Status::SUCCESS;
        }
        let codec = match &*f.codec() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "L16" | "" => None,
            _ => return Status::SUCCESS,
        };
        l.media.write(data, codec, f.samples);
        Status::SUCCESS
    }

    fn send_dtmf(&self, s: &Session, d: &Dtmf) -> Status {
        let Some(l) = leg::of(s) else {
            return Status::FALSE;
        };
        let Some(digit) = char::from_u32(d.digit) else {
            return Status::FALSE;
        };
        match l.dtmf_type {
            DtmfType::Rfc2833 => {
                if !l.media.queue_dtmf(digit, d.duration_ms) {
                    return Status::FALSE;
                }
                l.send(Input::PaceDtmf {
                    uuid: l.uuid.clone(),
                });
            }
            DtmfType::Info => l.send(Input::Info {
                uuid: l.uuid.clone(),
                digit,
                duration_ms: d.duration_ms,
            }),
            DtmfType::None => {}
        }
        Status::SUCCESS
    }
}

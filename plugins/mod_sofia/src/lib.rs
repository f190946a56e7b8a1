//! # mod_sofia — the SIP endpoint
//!
//! Profiles from `sofia.conf` (`conf/sip_profiles/*.xml`) listen on UDP,
//! TCP and TLS; calls, registrations and gateways follow RFC 3261 with SDP
//! offer/answer and RTP media.
//!
//! - [`sip`]: the sans-IO core — messages, headers, digest, transactions.
//! - [`sdp`], [`rtp`], [`srtp`], [`codecs`]: media negotiation, transport,
//!   SDES-keyed SRTP, Opus and G.722.
//! - [`ua`]: dialogs, calls, the registrar's requests and gateways (the
//!   transaction user), on the SIP thread.
//! - [`registrar`]: registrations, kept in an embedded store;
//!   [`registrar_pg`]: or in PostgreSQL, shared by several nodes (`odbc-dsn`);
//!   [`tracking`]: answered calls kept there too (`track-calls`), for
//!   `sofia recover` on another node.
//! - [`endpoint`]: the `sofia` endpoint the core calls (frames, answer,
//!   hangup, outbound legs).
//! - [`shell`]: sockets and the SIP thread's runtime; [`api`]: `sofia …`.
//! - [`handover`]: live reload — the sockets, Call-IDs and (in memory)
//!   registrations one version hands the next, format `mod_sofia/handover-v1`.
//! - [`tls`]: SIP over TLS — the `tls*` parameters, certificates, rustls.
//! - [`ws`]: SIP over WebSocket (RFC 7118) connections.
//! - [`acl`]: network lists (`acl.conf`, `loopback.auto`, …); [`nat`]:
//!   which registered phones sit behind NAT.
//! - [`config`], [`causes`], [`leg`]: settings, cause mapping, the state a
//!   session and the SIP thread share.

pub mod acl;
pub mod api;
pub mod causes;
pub mod codecs;
pub mod config;
pub mod endpoint;
pub mod handover;
pub mod leg;
pub mod nat;
pub mod registrar;
pub mod registrar_pg;
pub mod rtp;
pub mod sdp;
pub mod shell;
pub mod sip;
pub mod srtp;
pub mod tls;
pub mod tracking;
pub mod ua;
pub mod ws;

use hotswitch_plugin_api::{
    declare_module, Delivery, Export, HandoverSpec, ModuleContext, ModuleError, Status,
};
use std::fmt::Write as _;

declare_module! {
    name: "mod_sofia",
    description: "SIP endpoint: profiles, registrar, gateways, SDP and RTP",
    load: load,
    unload: Some(unload),
    runtime: Some(runtime),
    // `read_frame` with READ_FLAG_NOBLOCK is one non-blocking receive on
    // the leg's socket (or a WebRTC leg's queue): the core's media loop may
    // serve the bridged legs.
    noblock_read: true,
    handover: &HANDOVER,
}

/// Live reload: see [`handover`] for what crosses and the format.
static HANDOVER: HandoverSpec = HandoverSpec {
    format: handover::FORMAT,
    version: handover::VERSION,
    reads_from: handover::READS_FROM,
    export,
    resume: |_| shell::resume(),
    deliver: |_, d| shell::deliver(d.channel, d.peer, d.data),
};

fn export(_m: &ModuleContext) -> Result<Export, ModuleError> {
    let e = shell::export()?;
    Ok(Export {
        data: e.data,
        fds: e.fds,
    })
}

/// How this version hands a message to the one before it.
fn forward(channel: &str, peer: &str, data: &[u8]) -> bool {
    ModuleContext::current().handover_forward(Delivery {
        channel,
        peer,
        data,
    })
}

/// The predecessor's handover, when this load is a live reload: its
/// sockets (kept for the profiles to adopt), its Call-IDs (forwarded back
/// from now on) and the registrations it kept in memory.
fn take_over(m: &ModuleContext) -> Result<Vec<registrar::Registration>, ModuleError> {
    handover::set_forward(forward);
    let Some(r) = m.handover_take() else {
        handover::first_generation();
        return Ok(Vec::new());
    };
    if !(handover::READS_FROM..=handover::VERSION).contains(&r.version) {
        return Err(format!(
            "handover format version {} cannot be read (reads {}..={})",
            r.version,
            handover::READS_FROM,
            handover::VERSION
        )
        .into());
    }
    let h = handover::Handed::decode(&r.data)?;
    handover::adopt(&h, r.fds);
    Ok(h.registrations)
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    match m.config("opus.conf") {
        Ok(opus) => codecs::configure(opus.as_ref()),
        Err(e) => {
            log::warn!("opus.conf: {e}; Opus uses its defaults");
            codecs::configure(None);
        }
    }
    let sofia = m.config_section("sofia.conf");
    let switch = m.config_section("switch.conf");
    let acl = m.config_section("acl.conf");
    let config = config::Config::from_xml(
        sofia.as_deref(),
        switch.as_deref(),
        acl.as_deref(),
        &crate::acl::directory_users_with_cidr,
    )
    .map_err(|e| e.to_string())?;
    if config.profiles.is_empty() {
        log::warn!("sofia.conf defines no profile: no SIP port is open");
    }
    let shared: Vec<tracking::SharedProfile> = config
        .profiles
        .iter()
        .filter_map(|p| {
            Some(tracking::SharedProfile {
                name: p.name.clone(),
                dsn: p.odbc_dsn.clone()?,
                track_calls: p.track_calls,
            })
        })
        .collect();
    // Before the sockets: a tracking setting that cannot work fails the
    // load while the old version (on reload) still has them.
    tracking::start(&shared, &tracking::switchname(switch.as_deref()))?;
    let registrations = match take_over(m) {
        Ok(r) => r,
        Err(e) => {
            tracking::stop();
            return Err(e);
        }
    };
    if let Err(e) = shell::prepare(config, registrations) {
        // Handed sockets no profile took are closed (the old version
        // keeps its own and resumes).
        handover::drop_unclaimed();
        tracking::stop();
        return Err(e.into());
    }
    m.add_endpoint("sofia", endpoint::Sofia)
        .map_err(|e| format!("sofia endpoint: {e}"))?;
    m.add_api(
        "sofia",
        "Sofia SIP stack control",
        "status [profile <name> [reg] | gateway] | profile <name> start|stop|restart|rescan|recover [flush] | recover [flush] | global siptrace on|off",
        |args, out| {
            let reply = tracking::api(args).unwrap_or_else(|| shell::api(args));
            let _ = out.write_str(&reply);
        },
    )
    .map_err(|e| format!("sofia api: {e}"))?;
    m.add_api(
        "sofia_contact",
        "The dial string of a registered user",
        "[profile/]<user>@<domain>",
        |args, out| {
            let _ = out.write_str(&contact(args.trim()));
        },
    )
    .map_err(|e| format!("sofia_contact api: {e}"))?;
    m.add_chat("sip", |chat| {
        let Some(s) = shell::shared() else {
            return Status::FALSE;
        };
        let to = chat.to.trim_start_matches("sip:").to_string();
        let ok = s
            .input
            .send(leg::Input::Message(leg::ChatMessage {
                profile: (!chat.hint.is_empty()).then(|| chat.hint.clone()),
                to,
                from: chat.from.clone(),
                body: chat.body.clone(),
                content_type: "text/plain".into(),
            }))
            .is_ok();
        if ok {
            Status::SUCCESS
        } else {
            Status::FALSE
        }
    })
    .map_err(|e| format!("sip chat: {e}"))?;
    Ok(())
}

fn runtime(_m: &ModuleContext) -> Status {
    shell::run()
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    shell::stop();
    tracking::stop();
    handover::release();
    Ok(())
}

/// `sofia_contact [profile/]user@domain`: `sofia/<profile>/<contact>` for
/// every live binding, comma-separated; `error/user_not_registered` when
/// there is none.
fn contact(args: &str) -> String {
    let Some(s) = shell::shared() else {
        return "error/user_not_registered".into();
    };
    let (profile, aor) = match args.split_once('/') {
        Some((p, a)) if p != "*" => (Some(p), a),
        Some((_, a)) => (None, a),
        None => (None, args),
    };
    let regs = s.registrar.lookup(aor, profile);
    if regs.is_empty() {
        return "error/user_not_registered".into();
    }
    regs.iter()
        .map(|r| format!("sofia/{}/{}", r.profile, r.contact))
        .collect::<Vec<_>>()
        .join(",")
}

//! # mod_verto — the WebSocket endpoint
//!
//! Browsers and apps log in over a WebSocket (ws or wss) and place calls
//! with verto's JSON-RPC 2.0 methods (`login`, `verto.invite`,
//! `verto.answer`, `verto.attach`, `verto.bye`, `verto.info` for DTMF and
//! chat, `verto.modify`, `verto.subscribe`, `verto.unsubscribe`,
//! `verto.broadcast`), as FreeSWITCH's mod_verto speaks them; the switch
//! sends `verto.media`, `verto.display`, `verto.punt`, `verto.event` and
//! calls them through `verto.rtc/<user>@<domain>` (every client of the
//! user) or `verto.rtc/u:<sessid>`. Profiles come from `verto.conf`. Media
//! is WebRTC (ICE-lite, DTLS-SRTP, PCMU/PCMA); an offer str0m cannot accept
//! gets a placeholder answer and the call reads silence.
//!
//! - [`rpc`]: JSON-RPC 2.0 shapes and verto's error codes.
//! - [`conn`]: one client connection as a sans-IO state machine (`handle_*`
//!   in; frames from `poll_transmit`, events from `poll_event`).
//! - [`endpoint`]: the `verto.rtc` endpoint the core calls.
//! - [`media`], [`g711`]: WebRTC media (str0m) and its audio, from the
//!   `hotswitch-webrtc-media` crate mod_sofia shares.
//! - [`shell`]: listeners and connections on the module's runtime thread,
//!   client sessions, event channels, chat.
//! - [`tls`]: the wss certificate (generated when missing).
//! - [`config`]: reading `verto.conf`.
//!
//! Live reload: [`HANDOVER`] hands the listening sockets to the next
//! version (the port never closes); connections already accepted, their
//! logins and calls stay with this one to their end (see [`shell`]).

pub mod config;
pub mod conn;
pub mod endpoint;
/// WebRTC media, shared with mod_sofia (plugins/webrtc_media).
pub use hotswitch_webrtc_media as media;
pub use hotswitch_webrtc_media::g711;
pub mod rpc;
pub mod shell;
pub mod tls;

use hotswitch_plugin_api::{
    declare_module, Chat, Delivery, Export, HandoverSpec, ModuleContext, ModuleError, Status,
};
use std::fmt::Write as _;

declare_module! {
    name: "mod_verto",
    description: "verto endpoint: JSON-RPC 2.0 signalling over WebSocket",
    load: load,
    unload: Some(unload),
    runtime: Some(runtime),
    handover: &HANDOVER,
}

/// mod_verto's live-reload handover. Format `mod_verto/handover-v1`,
/// version 1: no data; the descriptors are the listening sockets, named
/// `"ws <ip>:<port>"` / `"wss <ip>:<port>"` (profiles' `bind-local`). The
/// new version adopts those whose name its own profiles bind and binds the
/// others. Nothing is forwarded between versions: a connection's frames
/// are read by the version that accepted it.
pub static HANDOVER: HandoverSpec = HandoverSpec {
    format: "mod_verto/handover-v1",
    version: 1,
    reads_from: 1,
    export,
    resume,
    deliver,
};

/// Old version: stop accepting, hand the listeners over.
fn export(_m: &ModuleContext) -> Result<Export, ModuleError> {
    Ok(Export {
        data: Vec::new(),
        fds: shell::hand_over(),
    })
}

/// Old version, the reload failed: accept again.
fn resume(_m: &ModuleContext) {
    shell::resume();
}

/// Nothing is forwarded to mod_verto's older versions.
fn deliver(_m: &ModuleContext, _d: Delivery<'_>) -> bool {
    false
}

fn load(m: &ModuleContext) -> Result<(), ModuleError> {
    let xml = m
        .config_section("verto.conf")
        .ok_or("no verto.conf section")?;
    let config = config::Config::from_xml(&xml)?;
    if config.profiles.is_empty() {
        log::warn!("verto.conf defines no profile: no WebSocket port is open");
    }
    let mut inherited = m.handover_take();
    if let Some(r) = &inherited {
        log::info!(
            "mod_verto: taking over {} listener(s) from the previous version (handover format version {})",
            r.fds.len(),
            r.version
        );
    }
    shell::prepare(config, &mut |name| inherited.as_mut()?.take_fd(name))?;
    m.add_endpoint("verto.rtc", endpoint::Verto)
        .map_err(|e| format!("verto.rtc endpoint: {e}"))?;
    m.add_api(
        "verto_contact",
        "The dial string of a logged-in verto user",
        "<user>@<domain>",
        |args, out| {
            let _ = out.write_str(&contact(args.trim()));
        },
    )
    .map_err(|e| format!("verto_contact api: {e}"))?;
    m.add_chat("verto", chat)
        .map_err(|e| format!("verto chat: {e}"))?;
    Ok(())
}

/// `verto_contact <user>@<domain>`: `verto.rtc/u:<sessid>` for every
/// connection logged in as the user, comma-separated (rung at once by a
/// bridge), as FreeSWITCH has it; `error/user_not_registered` when none.
fn contact(user: &str) -> String {
    let found: Vec<String> = shell::clients_for(user)
        .into_iter()
        .map(|(sessid, _)| format!("verto.rtc/u:{sessid}"))
        .collect();
    if found.is_empty() {
        "error/user_not_registered".into()
    } else {
        found.join(",")
    }
}

/// The `verto` chat protocol: the message goes to every connection of
/// the recipient as `verto.info` with `msg`.
fn chat(c: &Chat) -> Status {
    if shell::deliver_chat(&c.from, &c.to, &c.body, &c.headers) > 0 {
        Status::SUCCESS
    } else {
        Status::FALSE
    }
}

fn runtime(_m: &ModuleContext) -> Status {
    shell::run()
}

fn unload(_m: &ModuleContext) -> Result<(), ModuleError> {
    shell::stop();
    Ok(())
}

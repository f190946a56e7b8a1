//! # mod_verto — the WebSocket endpoint
//!
//! Browsers and apps log in over a WebSocket and place calls with verto's
//! JSON-RPC 2.0 methods (`login`, `verto.invite`, `verto.answer`,
//! `verto.bye`, `verto.info`, `verto.modify`), as FreeSWITCH's mod_verto
//! speaks them; the switch calls them through `verto.rtc/<user>@<domain>`.
//! Profiles come from `verto.conf`. Media is WebRTC (ICE-lite, DTLS-SRTP,
//! PCMU/PCMA); an offer str0m cannot accept gets a placeholder answer and
//! the call reads silence.
//!
//! - [`rpc`]: JSON-RPC 2.0 shapes and verto's error codes.
//! - [`conn`]: one client connection as a sans-IO state machine.
//! - [`endpoint`]: the `verto.rtc` endpoint the core calls.
//! - [`media`], [`g711`]: WebRTC media (str0m) and its audio.
//! - [`shell`]: listeners and connections on the module's runtime thread.
//! - [`config`]: reading `verto.conf`.

pub mod config;
pub mod conn;
pub mod endpoint;
pub mod g711;
pub mod media;
pub mod rpc;
pub mod shell;

use hotswitch_plugin_api::{declare_module, ModuleContext, Status};
use std::fmt::Write as _;

declare_module! {
    name: "mod_verto",
    description: "verto endpoint: JSON-RPC 2.0 signalling over WebSocket",
    load: load,
    unload: Some(unload),
    runtime: Some(runtime),
}

fn load(m: &ModuleContext) -> Result<(), String> {
    let xml = m
        .config_section("verto.conf")
        .ok_or("no verto.conf section")?;
    let config = config::Config::from_xml(&xml)?;
    if config.profiles.is_empty() {
        log::warn!("verto.conf defines no profile: no WebSocket port is open");
    }
    shell::prepare(config)?;
    m.add_endpoint("verto.rtc", endpoint::Verto)
        .map_err(|e| format!("verto.rtc endpoint: {e}"))?;
    m.add_api(
        "verto_contact",
        "The dial string of a logged-in verto user",
        "<user>@<domain>",
        |args, out| {
            let user = args.trim();
            let reply = if shell::client_of(user).is_some() {
                format!("verto.rtc/{user}")
            } else {
                "error/user_not_registered".into()
            };
            let _ = out.write_str(&reply);
        },
    )
    .map_err(|e| format!("verto_contact api: {e}"))?;
    Ok(())
}

fn runtime(_m: &ModuleContext) -> Status {
    shell::run()
}

fn unload(_m: &ModuleContext) -> Result<(), String> {
    shell::stop();
    Ok(())
}

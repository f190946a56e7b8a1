//! # mod_freetdm — the TDM endpoint
//!
//! FreeSWITCH's mod_freetdm for hotswitch: spans of analog (FXS/FXO) or
//! ISDN PRI channels, reached through a driver, routed like any call.
//!
//! Pure cores (no I/O, time is an argument, unit-tested by passing time;
//! the signalling ones in the shape of `hotswitch_plugin_api::sansio`:
//! `handle_*` in, `poll_transmit` / `poll_event` / `poll_timeout` out):
//! - [`g711`] — PCMU / PCMA.
//! - [`dsp`] — Goertzel, in-band DTMF detection, tone generation.
//! - [`analog`] — FXS and FXO loop-start signalling.
//! - [`q931`] — ISDN PRI basic call control and its messages.
//! - [`hunt`] — dial strings and channel hunting.
//! - [`config`] — `freetdm.conf`.
//! - [`wire`] — the virtual driver's datagrams (shared with the line
//!   simulator, `linesim/`).
//!
//! The shell:
//! - [`driver`] — the driver interface; `virtual` (Unix sockets) and
//!   `dahdi` (Linux DAHDI, hardware only).
//! - [`span`] — a thread per span driving the cores, joined at unload.
//! - [`registry`] — the running spans and groups; hunting.
//! - [`endpoint`] — the `freetdm` endpoint.
//! - [`api`] — `ftdm list|dump|start|stop`.

pub mod analog;
pub mod api;
pub mod config;
pub mod driver;
pub mod dsp;
pub mod endpoint;
pub mod g711;
pub mod hunt;
pub mod q931;
pub mod registry;
pub mod span;
pub mod wire;

use hotswitch_plugin_api::{declare_module, ModuleContext};

declare_module! {
    name: "mod_freetdm",
    description: "FreeTDM: analog and ISDN PRI spans",
    load: load,
    unload: Some(unload),
    runtime: None,
}

/// The endpoint's name in dial strings.
pub const ENDPOINT: &str = "freetdm";

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    let xml = m.config_section("freetdm.conf");
    let cfg = config::Config::from_xml(xml.as_deref()).map_err(|e| e.to_string())?;
    registry::start(cfg);
    let registered = m.add_endpoint(ENDPOINT, endpoint::FreeTdm).and_then(|()| {
        m.add_api(
            "ftdm",
            "FreeTDM spans and channels",
            api::SYNTAX,
            |args, out| {
                let _ = std::fmt::Write::write_str(out, &api::ftdm(args));
            },
        )
    });
    if let Err(e) = registered {
        registry::stop();
        return Err(e.to_string().into());
    }
    Ok(())
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    registry::stop();
    Ok(())
}

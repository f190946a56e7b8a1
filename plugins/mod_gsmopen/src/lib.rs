//! # mod_gsmopen — GSM modems as a trunk: calls, DTMF and SMS over AT commands
//!
//! - [`config`]: `gsmopen.conf`, one `<interface>` per modem.
//! - [`at`]: the AT-command driver, sans-IO (`handle_*` with bytes, time
//!   and requests in; `poll_transmit`, `poll_event` and `poll_timeout` out).
//! - [`pdu`]: SMS PDUs — GSM 7-bit and UCS-2, concatenated messages.
//! - [`interface`](mod@interface): the I/O shell: a thread per modem owning its serial
//!   port (reopened when the modem comes back), turning driver events into
//!   sessions, MESSAGE events and chat.
//! - [`audio`]: the modem's audio socket (8 kHz 16-bit frames).
//! - [`endpoint`]: the `gsmopen` endpoint (`gsmopen/<iface>/<number>`,
//!   `gsmopen/ANY/<number>`).
//! - [`api`]: `gsm status`, `gsm reset`, `gsm sendsms`, `gsmopen_sendsms` and
//!   the `gsmopen` chat protocol.
//!
//! Every thread the module starts is stopped and joined in its unload
//! (the host refuses the unload while a call is up).

pub mod api;
pub mod at;
pub mod audio;
pub mod config;
pub mod endpoint;
pub mod interface;
pub mod pdu;

use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use hotswitch_plugin_api::{declare_module, ModuleContext};
use interface::Interface;
use std::sync::Arc;
use std::thread::JoinHandle;

declare_module! {
    name: "mod_gsmopen",
    description: "GSM modems (AT commands): calls, DTMF and SMS",
    load: load,
    unload: Some(unload),
    runtime: None,
}

/// The running interfaces and their threads.
struct Running {
    ifaces: Vec<Arc<Interface>>,
    threads: Vec<JoinHandle<()>>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

fn running() -> MutexGuard<'static, Option<Running>> {
    RUNNING.lock()
}

/// The configured interfaces.
pub fn interfaces() -> Vec<Arc<Interface>> {
    running()
        .as_ref()
        .map(|r| r.ifaces.clone())
        .unwrap_or_default()
}

/// An interface by name (case-insensitive).
pub fn interface(name: &str) -> Option<Arc<Interface>> {
    interfaces()
        .into_iter()
        .find(|i| i.name().eq_ignore_ascii_case(name))
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    let xml = m.config_section("gsmopen.conf").unwrap_or_default();
    let configs = config::parse(&xml).map_err(|e| format!("gsmopen.conf: {e}"))?;
    if configs.is_empty() {
        log::warn!("gsmopen.conf: no interfaces configured");
    }
    let mut r = Running {
        ifaces: Vec::new(),
        threads: Vec::new(),
    };
    for c in configs {
        let name = c.name.clone();
        match Interface::start(c) {
            Ok((i, t)) => {
                r.ifaces.push(i);
                r.threads.extend(t);
            }
            Err(e) => {
                stop(r);
                return Err(hotswitch_plugin_api::ModuleError::Resource(format!(
                    "interface {name}: cannot start its thread: {e}"
                )));
            }
        }
    }
    *running() = Some(r);
    let registered = m
        .add_endpoint("gsmopen", endpoint::Gsm)
        .and_then(|()| api::register(m));
    if let Err(e) = registered {
        // The host does not unload a module whose load failed.
        if let Some(r) = running().take() {
            stop(r);
        }
        return Err(e.into());
    }
    Ok(())
}

fn stop(r: Running) {
    for i in &r.ifaces {
        i.stop();
    }
    for t in r.threads {
        let _ = t.join();
    }
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    if let Some(r) = running().take() {
        stop(r);
    }
    Ok(())
}

//! A test module for live reload. `handover_who` says which build answers
//! and what it took over; `handover_sleep <ms>` is an api command that stays
//! in flight; the `handover_hold` application keeps its call (and so the
//! module) busy until the call hangs up. The build variants (features) are
//! described in its Cargo.toml.

use hotswitch_plugin_api::{declare_module, ModuleContext, ModuleError};
#[cfg(not(feature = "none"))]
use hotswitch_plugin_api::{Export, HandoverSpec};
use std::fmt::Write;
use std::sync::Mutex;

#[cfg(not(feature = "none"))]
declare_module! {
    name: "mod_handover",
    description: "Live-reload test module",
    load: load,
    unload: Some(unload),
    runtime: None,
    handover: &HANDOVER,
}

#[cfg(feature = "none")]
declare_module! {
    name: "mod_handover",
    description: "Live-reload test module (no handover contract)",
    load: load,
    unload: Some(unload),
    runtime: None,
}

#[cfg(not(feature = "v2"))]
const VERSION: u32 = 1;
#[cfg(feature = "v2")]
const VERSION: u32 = 2;

#[cfg(not(feature = "none"))]
static HANDOVER: HandoverSpec = HandoverSpec {
    format: "mod_handover/handover-v1",
    version: VERSION,
    reads_from: VERSION,
    export: |_| {
        use std::os::fd::AsRawFd;
        let fds = SOCK
            .lock()
            .map_err(|e| e.to_string())?
            .as_ref()
            .map(|s| vec![("udp test".to_string(), s.as_raw_fd())])
            .unwrap_or_default();
        Ok(Export {
            data: format!("from build {}", build()).into_bytes(),
            fds,
        })
    },
    resume: |_| log::info!("mod_handover resumed"),
    // Takes what starts with "old:" (as a module would take a message of a
    // call it still serves), on a host thread.
    deliver: |_, d| {
        let taken = d.data.starts_with(b"old:");
        log::info!(
            "mod_handover build {} delivered {} from {} on {}: {} on thread {:?}",
            build(),
            String::from_utf8_lossy(d.data),
            d.peer,
            d.channel,
            if taken { "taken" } else { "not taken" },
            std::thread::current().id()
        );
        taken
    },
};

/// A socket handed from copy to copy (the descriptor, not a new bind).
static SOCK: Mutex<Option<std::net::UdpSocket>> = Mutex::new(None);

/// What this copy took over, for `handover_who`.
static TOOK: Mutex<String> = Mutex::new(String::new());

fn build() -> &'static str {
    if cfg!(feature = "v2") {
        "v2"
    } else if cfg!(feature = "fail") {
        "fail"
    } else if cfg!(feature = "none") {
        "none"
    } else {
        "v1"
    }
}

fn load(m: &ModuleContext) -> Result<(), ModuleError> {
    if cfg!(feature = "fail") {
        return Err(ModuleError::Config(
            "this build always fails its load".into(),
        ));
    }
    let (took, sock) = match m.handover_take() {
        Some(mut r) => (
            String::from_utf8_lossy(&r.data).into_owned(),
            r.take_fd("udp test").map(std::net::UdpSocket::from),
        ),
        None => ("nothing".into(), None),
    };
    let sock = match sock {
        Some(s) => s,
        None => std::net::UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| ModuleError::Resource(e.to_string()))?,
    };
    *SOCK.lock().map_err(|e| e.to_string())? = Some(sock);
    *TOOK.lock().map_err(|e| e.to_string())? = took;
    m.add_api("handover_port", "The handed socket's port", "", |_, out| {
        let port = SOCK
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.local_addr().ok()))
            .map_or(0, |a| a.port());
        let _ = writeln!(out, "+OK {port}");
    })?;
    m.add_api(
        "handover_forward",
        "Hand <text> to the older copy",
        "<text>",
        |args, out| {
            let taken = ModuleContext::current().handover_forward(hotswitch_plugin_api::Delivery {
                channel: "udp test",
                peer: "127.0.0.1:9",
                data: args.as_bytes(),
            });
            let _ = writeln!(
                out,
                "+OK {} on thread {:?}",
                if taken { "taken" } else { "not taken" },
                std::thread::current().id()
            );
        },
    )?;
    m.add_api("handover_who", "Which build answers", "", |_, out| {
        let took = TOOK.lock().map(|t| t.clone()).unwrap_or_default();
        let _ = writeln!(out, "+OK build {} took {took}", build());
    })?;
    m.add_api(
        "handover_sleep",
        "Answer after <ms>",
        "<ms>",
        |args, out| {
            let ms = args.trim().parse::<u64>().unwrap_or(0).min(60_000);
            log::info!("handover_sleep: build {} sleeps {ms} ms", build());
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = writeln!(out, "+OK build {} slept {ms}", build());
        },
    )?;
    m.add_application(
        "handover_hold",
        "Hold the call until it hangs up",
        "",
        0,
        |s, _| {
            log::info!("handover_hold: build {} holds {}", build(), s.uuid());
            while !s.is_down() && s.sleep(20) {}
        },
    )?;
    Ok(())
}

fn unload(_m: &ModuleContext) -> Result<(), ModuleError> {
    if let Ok(mut t) = TOOK.lock() {
        drop(std::mem::take(&mut *t));
    }
    if let Ok(mut s) = SOCK.lock() {
        drop(s.take());
    }
    Ok(())
}

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
        Ok(Export {
            data: format!("from build {}", build()).into_bytes(),
            fds: Vec::new(),
        })
    },
    resume: |_| log::info!("mod_handover resumed"),
    deliver: |_, _| false,
};

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
    let took = match m.handover_take() {
        Some(r) => String::from_utf8_lossy(&r.data).into_owned(),
        None => "nothing".into(),
    };
    *TOOK.lock().map_err(|e| e.to_string())? = took;
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
    Ok(())
}

//! # mod_skel — the template for a hotswitch module
//!
//! Copy this crate to start a module of your own. It shows the whole
//! contract in one screen:
//!
//! 1. `declare_module!` names the module and its entry points; it exports
//!    the header the host checks, catches panics in every entry point, and
//!    forwards this crate's `log` records to the host's log.
//! 2. `load` reads the module's configuration section and registers an api
//!    command (`skel`) and a dialplan application (`skel_app`).
//! 3. `unload` releases what `load` took. Anything the module started —
//!    threads, sockets, runtimes — must be stopped and joined here: the host
//!    closes the library right after, and checks that it is really gone.
//!    Memory held by statics must be freed here too: Rust never drops a
//!    static, so whatever it owns would leak at every reload.
//! 4. `HANDOVER` is the live-reload contract: with it, `reload mod_skel`
//!    works while calls and commands are in flight. The new copy loads
//!    beside the old one and takes every new call; the old copy finishes
//!    what it started, then the host unloads it. `export` (old copy) stops
//!    taking new work and writes what the new copy needs, in a format you
//!    name and version; `load` (new copy) reads it with
//!    `ModuleContext::handover_take`; `resume` undoes `export` if the new
//!    copy fails to load; `deliver` takes a message the new copy hands back
//!    (`ModuleContext::handover_forward`) because it belongs to a call the
//!    old copy still serves. mod_skel has nothing to hand over (its greeting
//!    is read again from the configuration), so its export is empty. Bump
//!    `version` when the format changes, and keep `reads_from` at the oldest
//!    version your code still reads: the host refuses a reload whose new
//!    copy cannot read the running one's format, and the old copy serves on.
//!
//! Build it with `cargo build -p mod_skel`, then at the console:
//! `load mod_skel`, `skel world`, `reload mod_skel`, `unload mod_skel`.

use hotswitch_plugin_api::{declare_module, saf, Export, HandoverSpec, ModuleContext};
use std::fmt::Write;
use std::sync::Mutex;

declare_module! {
    name: "mod_skel",
    description: "Skeleton module: one api command and one application",
    load: load,
    unload: Some(unload),
    runtime: None,
    handover: &HANDOVER,
}

/// The live-reload contract (see point 4 above).
static HANDOVER: HandoverSpec = HandoverSpec {
    // The same name in every version that can hand over to another.
    format: "mod_skel/handover-v1",
    // What this build writes, and the oldest it reads.
    version: 1,
    reads_from: 1,
    // Old copy: stop taking new work (a module with sockets stops reading
    // its listeners here, keeps them open for sending, and names them in
    // `fds`), then write the state the new copy needs into `data`.
    export: |_m| Ok(Export::default()),
    // Old copy: the new one failed to load; take new work again.
    resume: |_m| {},
    // Old copy, draining: a message the new copy handed back. Enqueue it for
    // the call it belongs to and return true; false if it is not ours.
    deliver: |_m, _d| false,
};

/// The module's state: whatever `load` sets up and `unload` tears down.
static GREETING: Mutex<String> = Mutex::new(String::new());

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // Configuration lives in conf/autoload_configs/skel.conf.xml:
    //   <configuration name="skel.conf"><settings>
    //     <param name="greeting" value="hello"/>
    //   </settings></configuration>
    // A module parses the XML it is given however it likes; this one looks
    // for the greeting parameter and falls back to "hello".
    let greeting = m
        .config_section("skel.conf")
        .and_then(|xml| param(&xml, "greeting"))
        .unwrap_or_else(|| "hello".to_string());
    *GREETING.lock().map_err(|e| e.to_string())? = greeting;

    // Loaded by a live reload: the old copy's handover (None on a fresh
    // load). `prev.version` says which format version it wrote; descriptors
    // it handed over are taken by name with `prev.take_fd(..)`.
    if let Some(prev) = m.handover_take() {
        log::info!(
            "mod_skel takes over from the running copy (handover version {}, {} byte(s))",
            prev.version,
            prev.data.len()
        );
    }

    // An api command: reachable from the console, and later from the event
    // socket (`api skel world`). It writes its reply into the host's stream.
    m.add_api(
        "skel",
        "Say the configured greeting",
        "skel [name]",
        |args, out| {
            let greeting = GREETING.lock().map(|g| g.clone()).unwrap_or_default();
            let who = if args.is_empty() { "world" } else { args };
            let _ = writeln!(out, "+OK {greeting} {who}");
        },
    )
    .map_err(|e| e.to_string())?;

    // A dialplan application: `<action application="skel_app" data="..."/>`.
    // It runs on the call's own thread; here it only logs.
    m.add_application(
        "skel_app",
        "Log the data it is given",
        "<text>",
        saf::NOMEDIA,
        |session, data| {
            log::info!("skel_app on session {:?}: {data}", session.raw());
        },
    )
    .map_err(|e| e.to_string())?;

    log::info!("mod_skel loaded");
    Ok(())
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // Statics are never dropped: free what they hold now, or it leaks with
    // every unload (the library's code is gone after this returns).
    if let Ok(mut g) = GREETING.lock() {
        drop(std::mem::take(&mut *g));
    }
    log::info!("mod_skel unloading");
    Ok(())
}

/// The `value` of `<param name="{name}" value="…"/>` in `xml`.
fn param(xml: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\"");
    let tag_start = xml.find(&key)?;
    let tag = &xml[tag_start..];
    let tag = &tag[..tag.find('>')?];
    let v = tag.find("value=\"")? + "value=\"".len();
    let rest = &tag[v..];
    Some(rest[..rest.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_param_value_is_found_by_name() {
        let x = r#"<configuration name="skel.conf"><settings>
            <param name="other" value="x"/><param name="greeting" value="howdy"/>
        </settings></configuration>"#;
        assert_eq!(super::param(x, "greeting").as_deref(), Some("howdy"));
        assert_eq!(super::param(x, "missing"), None);
    }
}

//! # mod_skel — the template for a hotswitch module
//!
//! Copy this crate to start a module of your own. It shows the whole
//! contract in one screen:
//!
//! 1. `declare_module!` names the module and its entry points; it exports
//!    the header the host checks, catches panics in every entry point, and
//!    forwards this crate's `log` records to the host's log.
//! 2. `load` reads the module's configuration (a parsed tree), registers
//!    an api command (`skel`) and a dialplan application (`skel_app`), and
//!    returns the module's state (`Skel`): kept for the module while it is
//!    loaded, handed to its entries by `ModuleContext::state`, dropped
//!    after its unload — no statics to empty by hand.
//! 3. `unload` releases what `load` took. Anything the module started —
//!    threads, sockets, runtimes — must be stopped and joined here: the host
//!    closes the library right after, and checks that it is really gone.
//!    Memory held by statics of your own must be freed here too: Rust never
//!    drops a static, so whatever it owns would leak at every reload.
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

use hotswitch_plugin_api::config::Element;
use hotswitch_plugin_api::{declare_module, saf, Export, HandoverSpec, ModuleContext};
use std::fmt::Write;

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

/// The module's state: what `load` returns and its entries read.
struct Skel {
    greeting: String,
}

fn load(m: &ModuleContext) -> Result<Skel, hotswitch_plugin_api::ModuleError> {
    // Configuration lives in conf/autoload_configs/skel.conf.xml:
    //   <configuration name="skel.conf"><settings>
    //     <param name="greeting" value="hello"/>
    //   </settings></configuration>
    // `config` hands back the section as a parsed tree (`Ok(None)` when
    // there is no such section, an error when its XML is broken); this
    // module looks for the greeting parameter and falls back to "hello".
    let greeting = m
        .config("skel.conf")?
        .as_ref()
        .and_then(greeting)
        .unwrap_or_else(|| "hello".to_string());

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
            let who = if args.is_empty() { "world" } else { args };
            match ModuleContext::current().state::<Skel>() {
                Some(skel) => {
                    let _ = writeln!(out, "+OK {} {who}", skel.greeting);
                }
                None => {
                    let _ = writeln!(out, "-ERR mod_skel is not loaded");
                }
            }
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
    Ok(Skel { greeting })
}

fn unload(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // The state is still there; plugin-api drops it once this returns,
    // while the library is mapped.
    if let Some(skel) = m.state::<Skel>() {
        log::debug!("mod_skel said '{}'", skel.greeting);
    }
    log::info!("mod_skel unloading");
    Ok(())
}

/// The `greeting` param of `<settings>`.
fn greeting(conf: &Element) -> Option<String> {
    Some(conf.child("settings")?.param("greeting")?.to_string())
}

#[cfg(test)]
mod tests {
    use hotswitch_plugin_api::config::Element;

    #[test]
    fn the_greeting_is_the_settings_param() {
        let x = r#"<configuration name="skel.conf"><settings>
            <param name="other" value="x"/><param name="greeting" value="howdy"/>
        </settings></configuration>"#;
        let conf = Element::parse(x).unwrap();
        assert_eq!(super::greeting(&conf).as_deref(), Some("howdy"));
        let none = Element::parse("<configuration><settings/></configuration>").unwrap();
        assert_eq!(super::greeting(&none), None);
    }
}

//! A module written outside the hotswitch workspace.

use hotswitch_plugin_api::{declare_module, log, ModuleContext};
use std::fmt::Write;

declare_module! {
    name: "mod_external",
    description: "A third-party module",
    load: load,
    unload: None,
    runtime: None,
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    log::info!("mod_external says hi through the host's log");
    m.add_api("external_hello", "Greet from outside", "", |args, out| {
        let _ = writeln!(out, "+OK external module here, args=[{args}]");
    })?;
    Ok(())
}

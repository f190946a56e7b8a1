//! # mod_event_socket — FreeSWITCH's event socket (inbound and outbound)
//!
//! Being written; loads and registers nothing yet.

use hotswitch_plugin_api::{declare_module, ModuleContext};

declare_module! {
    name: "mod_event_socket",
    description: "Event socket",
    load: load,
    unload: None,
    runtime: None,
}

fn load(_m: &ModuleContext) -> Result<(), String> {
    Ok(())
}

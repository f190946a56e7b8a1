//! A test module built against a skewed plugin-api: the host must refuse it
//! before calling anything in it.

use hotswitch_plugin_api::{declare_module, ModuleContext};

declare_module! {
    name: "mod_abiskew",
    description: "Test module built against an incompatible plugin-api",
    load: load,
    unload: None,
    runtime: None,
}

fn load(_m: &ModuleContext) -> Result<(), String> {
    panic!("a module with a mismatched ABI must never be called");
}

//! A test module whose answer is fixed at build time: `twin` replies with
//! the value of `MOD_TWIN_ANSWER` when it was compiled.

use hotswitch_plugin_api::{declare_module, ModuleContext};
use std::fmt::Write;

const ANSWER: &str = match option_env!("MOD_TWIN_ANSWER") {
    Some(a) => a,
    None => "unset",
};

declare_module! {
    name: "mod_twin",
    description: "Test module that answers with its build-time value",
    load: load,
    unload: None,
    runtime: None,
}

fn load(m: &ModuleContext) -> Result<(), String> {
    m.add_api("twin", "Answer with the build-time value", "", |_, out| {
        let _ = writeln!(out, "+OK twin {ANSWER}");
    })
    .map_err(|e| e.to_string())
}

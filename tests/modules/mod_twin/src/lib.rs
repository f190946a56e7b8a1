//! A test module whose answer is fixed at build time: `twin` replies with
//! the value of `MOD_TWIN_ANSWER` when it was compiled. Built with the
//! answer `refuse`, its load fails with a configuration error.

use hotswitch_plugin_api::{declare_module, ModuleContext, ModuleError};
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

fn load(m: &ModuleContext) -> Result<(), ModuleError> {
    if ANSWER == "refuse" {
        return Err(ModuleError::Config(
            "MOD_TWIN_ANSWER says refuse".to_string(),
        ));
    }
    m.add_api("twin", "Answer with the build-time value", "", |_, out| {
        let _ = writeln!(out, "+OK twin {ANSWER}");
    })?;
    Ok(())
}

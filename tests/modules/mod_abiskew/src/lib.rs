//! A test module built against a skewed plugin-api: the host must refuse it
//! before calling anything in it. Built with `minor0`, `minor1` or `minor2`
//! (against a previous ABI minor) it must load and serve: it answers
//! `abiskew`.

use hotswitch_plugin_api::{declare_module, ModuleContext};

declare_module! {
    name: "mod_abiskew",
    description: "Test module built against an incompatible plugin-api",
    load: load,
    unload: None,
    runtime: None,
}

#[cfg(not(any(feature = "minor0", feature = "minor1", feature = "minor2")))]
fn load(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    panic!("a module with a mismatched ABI must never be called");
}

#[cfg(any(feature = "minor0", feature = "minor1", feature = "minor2"))]
fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    use std::fmt::Write;
    m.add_api("abiskew", "Say which ABI this was built against", "", |_, out| {
        let _ = writeln!(
            out,
            "+OK built against ABI {}.{}",
            hotswitch_plugin_api::abi::ABI_MAJOR,
            hotswitch_plugin_api::abi::ABI_MINOR
        );
    })?;
    Ok(())
}

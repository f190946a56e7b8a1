//! A test module that misbehaves on command: `panic_now` panics inside an
//! api call; `panic_echo` answers normally (to show the module's interfaces
//! are disabled once it is faulted); `hold <ms>` keeps a call running so
//! tests can try to unload the module while it is in use.

use hotswitch_plugin_api::{declare_module, ModuleContext};
use std::fmt::Write;

declare_module! {
    name: "mod_panic",
    description: "Test module that panics on command",
    load: load,
    unload: None,
    runtime: None,
}

fn load(m: &ModuleContext) -> Result<(), String> {
    m.add_api(
        "panic_now",
        "Panic inside an api call",
        "[message]",
        |args, _out| {
            panic!("panic_now was asked to panic: {args}");
        },
    )
    .map_err(|e| e.to_string())?;
    m.add_api("panic_echo", "Echo the arguments", "<text>", |args, out| {
        let _ = writeln!(out, "{args}");
    })
    .map_err(|e| e.to_string())?;
    m.add_api(
        "hold",
        "Keep the call running for <ms> milliseconds",
        "<ms>",
        |args, out| {
            let ms: u64 = args.trim().parse().unwrap_or(1000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = writeln!(out, "+OK held {ms} ms");
        },
    )
    .map_err(|e| e.to_string())
}

//! The module-author loop: rebuild a module and `reload` it (or let watch
//! mode do it), and build a module outside this workspace.

use hotswitch_e2e::{
    build_module_into, cargo_build, install, lines, workspace_root, Switch, SwitchConfig, TempDir,
};
use std::time::Duration;

#[test]
fn reload_runs_the_code_of_a_module_rebuilt_at_the_same_path() {
    let mods = TempDir::new("twin-reload");
    build_module_into(
        "mod_twin",
        &[],
        &[("MOD_TWIN_ANSWER", "first")],
        mods.path(),
    );
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        autoload: vec!["mod_twin".into()],
        ..Default::default()
    });
    assert_eq!(sw.cmd("twin").trim(), "+OK twin first");
    build_module_into(
        "mod_twin",
        &[],
        &[("MOD_TWIN_ANSWER", "second")],
        mods.path(),
    );
    // Not picked up until asked: no watch mode here.
    assert_eq!(sw.cmd("twin").trim(), "+OK twin first");
    assert_eq!(
        lines(&sw.cmd("reload mod_twin")),
        [
            "+OK Reloading XML",
            "+OK module unloaded",
            "+OK module loaded"
        ]
    );
    assert_eq!(sw.cmd("twin").trim(), "+OK twin second");
    let twins: Vec<String> = sw
        .mapped_shadows()
        .into_iter()
        .filter(|p| p.contains("mod_twin"))
        .collect();
    assert_eq!(twins.len(), 1, "only the new copy is mapped: {twins:?}");
}

#[test]
fn a_reload_whose_new_build_is_refused_keeps_the_old_module_serving() {
    let mods = TempDir::new("twin-badreload");
    build_module_into("mod_twin", &[], &[("MOD_TWIN_ANSWER", "good")], mods.path());
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        autoload: vec!["mod_twin".into()],
        ..Default::default()
    });
    // Replace the file with something that is not a module.
    std::fs::write(mods.path().join("libmod_twin.so"), b"garbage, not ELF").unwrap();
    let r = sw.cmd("reload mod_twin");
    assert!(
        r.starts_with("+OK Reloading XML\n-ERR loading module [cannot open"),
        "{r}"
    );
    assert_eq!(sw.cmd("twin").trim(), "+OK twin good");
}

#[test]
fn watch_mode_reloads_a_module_replaced_on_disk() {
    let mods = TempDir::new("twin-watch");
    build_module_into(
        "mod_twin",
        &[],
        &[("MOD_TWIN_ANSWER", "before")],
        mods.path(),
    );
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        autoload: vec!["mod_twin".into()],
        args: vec!["-watch".into()],
        ..Default::default()
    });
    assert_eq!(sw.cmd("twin").trim(), "+OK twin before");
    build_module_into(
        "mod_twin",
        &[],
        &[("MOD_TWIN_ANSWER", "after")],
        mods.path(),
    );
    let notice = sw
        .wait_notice(
            Duration::from_secs(15),
            "mod_twin changed on disk and was reloaded",
        )
        .expect("watch mode announces the reload");
    assert!(notice.starts_with("+OK watch:"), "{notice}");
    assert_eq!(sw.cmd("twin").trim(), "+OK twin after");
}

#[test]
fn a_module_built_outside_the_workspace_against_plugin_api_alone_loads() {
    let src = TempDir::new("external-src");
    let template = workspace_root().join("tests/modules/mod_external");
    let manifest = std::fs::read_to_string(template.join("Cargo.toml"))
        .unwrap()
        .replace(
            "@PLUGIN_API@",
            &workspace_root().join("plugin-api").display().to_string(),
        );
    std::fs::create_dir_all(src.path().join("src")).unwrap();
    std::fs::write(src.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(template.join("src/lib.rs"), src.path().join("src/lib.rs")).unwrap();
    let out = cargo_build(
        &src.path().join("Cargo.toml"),
        &workspace_root().join("target/e2e-modules/external"),
        &[],
        &[],
    );
    let mods = TempDir::new("external-mods");
    install(
        &out.join("libmod_external.so"),
        mods.path(),
        "mod_external.so",
    );
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        ..Default::default()
    });
    assert_eq!(
        lines(&sw.cmd("load mod_external")),
        ["+OK Reloading XML", "+OK"]
    );
    assert_eq!(
        sw.cmd("external_hello a b").trim(),
        "+OK external module here, args=[a b]"
    );
    assert!(sw
        .log()
        .contains("mod_external: mod_external says hi through the host's log"));
    let row = sw.cmd("module_list");
    assert!(
        row.lines()
            .any(|l| l.starts_with("mod_external,0.3.0,current,")),
        "{row}"
    );
    assert_eq!(sw.cmd("unload mod_external").trim(), "+OK");
    assert!(sw.mapped_shadows().is_empty());
}

#[test]
fn a_library_that_stays_mapped_after_unload_is_reported_pinned_and_reload_still_works() {
    // Linked with -z nodelete, the dynamic linker keeps the library mapped
    // whatever dlclose says: the switch must notice and say so.
    let out = cargo_build(
        &workspace_root().join("tests/modules/mod_twin/Cargo.toml"),
        &workspace_root().join("target/e2e-modules/nodelete"),
        &[],
        &[
            ("MOD_TWIN_ANSWER", "sticky"),
            ("RUSTFLAGS", "-C link-arg=-Wl,-z,nodelete"),
        ],
    );
    let mods = TempDir::new("twin-nodelete");
    install(&out.join("libmod_twin.so"), mods.path(), "libmod_twin.so");
    let mut sw = Switch::start(SwitchConfig {
        module_dirs: vec![mods.path().to_path_buf()],
        autoload: vec!["mod_twin".into()],
        ..Default::default()
    });
    assert_eq!(sw.cmd("twin").trim(), "+OK twin sticky");
    let first = sw.mapped_shadows();
    let r = sw.cmd("unload mod_twin");
    assert_eq!(r.trim(), "+OK pinned: the library is marked NODELETE");
    assert_eq!(
        sw.mapped_shadows(),
        first,
        "still mapped, and reported as such"
    );
    let table = sw.cmd("module_list");
    assert!(
        table.lines().any(|l| l.starts_with("mod_twin,")
            && l.contains(",pinned,")
            && l.contains("NODELETE")),
        "{table}"
    );
    assert_eq!(sw.cmd("twin").trim(), "-ERR twin Command not found!");
    // A fresh copy loads beside the pinned one.
    assert_eq!(
        lines(&sw.cmd("load mod_twin")),
        ["+OK Reloading XML", "+OK"]
    );
    assert_eq!(sw.cmd("twin").trim(), "+OK twin sticky");
    assert_eq!(sw.mapped_shadows().len(), 2);
}

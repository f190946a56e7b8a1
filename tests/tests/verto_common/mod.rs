//! What the verto test files share: the directory and dialplan they run
//! on, Node's packages, and a switch with mod_verto's profile `ws`.
//! Included as a module by tests/tests/verto.rs and verto_browser.rs.

#![allow(dead_code)]

use hotswitch_e2e::{workspace_root, Switch, SwitchConfig};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

pub const DIRECTORY: &str = r#"<include><domain name="127.0.0.1">
  <groups><group name="default"><users>
    <user id="1000"><params><param name="password" value="1234"/></params>
      <variables><variable name="user_context" value="default"/></variables></user>
    <user id="1001"><params><param name="password" value="1234"/></params></user>
    <user id="1002"><params><param name="password" value="1234"/>
      <param name="jsonrpc-allowed-event-channels" value="room"/></params></user>
  </users></group></groups>
</domain></include>"#;

pub const DIALPLAN: &str = r#"<include><context name="default">
  <extension name="echo"><condition field="destination_number" expression="^9196$">
    <action application="answer"/><action application="echo"/></condition></extension>
  <extension name="park"><condition field="destination_number" expression="^5900$">
    <action application="answer"/><action application="park"/></condition></extension>
  <extension name="short"><condition field="destination_number" expression="^5000$">
    <action application="answer"/><action application="sleep" data="300"/>
    <action application="hangup" data="NORMAL_CLEARING"/></condition></extension>
</context></include>"#;

pub fn client_dir() -> PathBuf {
    workspace_root().join("tests/verto")
}

/// Node must be installed; vertojs and ws come from npm (tests/verto).
pub fn npm_ready() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.is_ok_and(|o| o.status.success()),
            "node is not installed (Debian: apt install nodejs npm)"
        );
        if ["vertojs", "ws", "werift"]
            .iter()
            .all(|p| client_dir().join("node_modules").join(p).is_dir())
        {
            return;
        }
        let st = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(client_dir())
            .status()
            .expect("run npm install in tests/verto");
        assert!(st.success(), "npm install in tests/verto failed");
    });
}

/// A switch whose verto profile `ws` binds `bind` (and has `profile`
/// params more), with `settings` params in verto.conf's settings.
pub fn start_verto(
    bind: &str,
    settings: &str,
    profile: &str,
    more: &[&str],
    files: Vec<(String, String)>,
) -> Switch {
    npm_ready();
    let verto = format!(
        r#"<configuration name="verto.conf"><settings><param name="debug" value="0"/>{settings}</settings>
<profiles><profile name="ws">
  <param name="bind-local" value="{bind}"/>{profile}
  <param name="userauth" value="true"/><param name="blind-reg" value="false"/>
  <param name="context" value="public"/><param name="dialplan" value="XML"/>
</profile></profiles></configuration>"#
    );
    let mut autoload: Vec<String> = vec![
        "mod_dptools".into(),
        "mod_loopback".into(),
        "mod_verto".into(),
    ];
    autoload.extend(more.iter().map(|m| m.to_string()));
    let mut all = vec![
        ("autoload_configs/verto.conf.xml".to_string(), verto),
        ("directory/default.xml".to_string(), DIRECTORY.to_string()),
    ];
    all.extend(files);
    Switch::start(SwitchConfig {
        autoload,
        files: all,
        ..Default::default()
    })
}

//! # mod_cdr_csv — call detail records as CSV (FreeSWITCH's mod_cdr_csv)
//!
//! On CS_REPORTING each leg's record is its template with the channel's
//! variables expanded (`${caller_id_number}`, `${start_stamp}`,
//! `${billsec}`, `${hangup_cause}`, …), appended to
//! `<log-base>/cdr-csv/Master.csv` and, when the call has an
//! `accountcode`, to `<accountcode>.csv`.
//!
//! Each record is written with one `write` on a file opened for appending,
//! before the channel moves on: a record already reported is in the file
//! even if the switch dies right after (`fsync="true"` also flushes it to
//! the disk, for power loss, at a cost per call).
//!
//! Configuration: `autoload_configs/cdr_csv.conf.xml` — `log-base`,
//! `default-template`, `legs` (`a`, `b` or `ab`), `fsync`, and
//! `<templates><template name="…">…</template></templates>`.

use hotswitch_plugin_api::config::Element;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{declare_module, log, ChannelState, ModuleContext, Session, Status};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

declare_module! {
    name: "mod_cdr_csv",
    description: "CSV call detail records",
    load: load,
    unload: Some(unload),
    runtime: None,
}

/// FreeSWITCH's `example` template.
const DEFAULT_TEMPLATE: &str = r#""${caller_id_name}","${caller_id_number}","${destination_number}","${context}","${start_stamp}","${answer_stamp}","${end_stamp}","${duration}","${billsec}","${hangup_cause}","${uuid}","${bleg_uuid}","${accountcode}","${read_codec}","${write_codec}""#;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    dir: PathBuf,
    template: String,
    a_legs: bool,
    b_legs: bool,
    fsync: bool,
}

struct Writer {
    settings: Settings,
    files: HashMap<PathBuf, File>,
}

static WRITER: Mutex<Option<Writer>> = Mutex::new(None);

/// Reads the settings and templates out of the configuration section.
/// The settings in `xml`; `log_dir` is the base when it names none.
fn parse_config(xml: &str, log_dir: &str) -> Result<Settings, String> {
    let root = Element::parse(xml).map_err(|e| format!("cdr_csv.conf: {e}"))?;
    let params: HashMap<String, String> = root
        .descendants("param")
        .into_iter()
        .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value")?.to_string())))
        .collect();
    let templates: HashMap<String, String> = root
        .descendants("template")
        .into_iter()
        .filter_map(|t| Some((t.attr("name")?.to_string(), t.text().trim().to_string())))
        .collect();
    let template = match params.get("default-template") {
        Some(name) => templates
            .get(name)
            .cloned()
            .ok_or_else(|| format!("cdr_csv.conf: no template named '{name}'"))?,
        None => DEFAULT_TEMPLATE.to_string(),
    };
    let legs = params.get("legs").map(String::as_str).unwrap_or("a");
    let base = params
        .get("log-base")
        .map(String::as_str)
        .unwrap_or(log_dir);
    Ok(Settings {
        dir: Path::new(base).join("cdr-csv"),
        template,
        a_legs: legs.contains('a'),
        b_legs: legs.contains('b'),
        fsync: params.get("fsync").is_some_and(|v| v == "true"),
    })
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // FreeSWITCH's default: the switch's log directory.
    let log_dir = m
        .execute_api("global_getvar", "log_dir")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && !v.starts_with("-ERR"))
        .unwrap_or_else(|| "log".into());
    let settings = match m.config_section("cdr_csv.conf") {
        Some(xml) => parse_config(&xml, &log_dir)?,
        None => parse_config("<configuration/>", &log_dir)?,
    };
    std::fs::create_dir_all(&settings.dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.dir.display()))?;
    log::info!("CDRs go to {}", settings.dir.display());
    *WRITER.lock() = Some(Writer {
        settings,
        files: HashMap::new(),
    });
    m.add_state_handler(|s: &Session, state: ChannelState| {
        if state == ChannelState::REPORTING {
            report(s);
        }
        Status::SUCCESS
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // Statics outlive the module's code: close the files now.
    WRITER.lock().take();
    Ok(())
}

/// Appends `line` to `path` with one write.
fn append(
    files: &mut HashMap<PathBuf, File>,
    path: PathBuf,
    line: &[u8],
    fsync: bool,
) -> std::io::Result<()> {
    if !files.contains_key(&path) {
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        files.insert(path.clone(), f);
    }
    let f = files.get_mut(&path).expect("inserted above");
    f.write_all(line)?;
    if fsync {
        f.sync_data()?;
    }
    Ok(())
}

fn report(s: &Session) {
    let mut guard = WRITER.lock();
    let Some(w) = guard.as_mut() else { return };
    // The B leg is the one the switch placed (originate, bridge).
    let wanted = if s.is_outbound() {
        w.settings.b_legs
    } else {
        w.settings.a_legs
    };
    if !wanted {
        return;
    }
    let mut line = s.expand(&w.settings.template);
    line.push('\n');
    let fsync = w.settings.fsync;
    let master = w.settings.dir.join("Master.csv");
    if let Err(e) = append(&mut w.files, master, line.as_bytes(), fsync) {
        log::error!("cdr: cannot write Master.csv: {e}");
    }
    if let Some(acct) = s.var("accountcode").filter(|a| !a.is_empty()) {
        let safe: String = acct
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        if !safe.is_empty() {
            let path = w.settings.dir.join(format!("{safe}.csv"));
            if let Err(e) = append(&mut w.files, path, line.as_bytes(), fsync) {
                log::error!("cdr: cannot write {safe}.csv: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_the_named_template_come_from_the_configuration() {
        let s = parse_config(
            r#"<configuration name="cdr_csv.conf"><settings>
                 <param name="default-template" value="short"/>
                 <param name="legs" value="ab"/>
                 <param name="log-base" value="/var/log/hs"/>
               </settings><templates>
                 <template name="short">"${uuid}","${hangup_cause}"</template>
               </templates></configuration>"#,
            "/the/log/dir",
        )
        .unwrap();
        assert_eq!(s.template, r#""${uuid}","${hangup_cause}""#);
        assert!(s.a_legs && s.b_legs);
        assert_eq!(s.dir, Path::new("/var/log/hs/cdr-csv"));
    }

    #[test]
    fn without_configuration_freeswitchs_example_template_and_a_legs_are_used() {
        let s = parse_config("<configuration/>", "/the/log/dir").unwrap();
        assert_eq!(s.template, DEFAULT_TEMPLATE);
        assert!(s.a_legs && !s.b_legs);
        assert_eq!(s.dir, Path::new("/the/log/dir/cdr-csv"));
    }

    #[test]
    fn a_missing_template_is_an_error_naming_it() {
        let e = parse_config(r#"<configuration><settings><param name="default-template" value="nope"/></settings></configuration>"#, "log")
            .unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }
}

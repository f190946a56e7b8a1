//! The `sofia` api command, with FreeSWITCH's layout of its replies:
//! `sofia status`, `sofia status profile <name> [reg]`,
//! `sofia status gateway [<name>]`, `sofia profile <name>
//! start|stop|restart|rescan|tls-reload`, `sofia global siptrace on|off`,
//! `sofia loglevel`.

use crate::registrar::now_secs;
use crate::ua::Stack;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Work on sockets only the shell can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellAction {
    Stop(usize),
    Start(usize),
}

const RULE: &str =
    "=================================================================================================";

/// Runs `sofia <args>` on the SIP thread, at `now`.
pub fn run(stack: &mut Stack, args: &str, now: Instant) -> (String, Option<ShellAction>) {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [] | ["status"] => (status(stack), None),
        ["status", "profile", name] => (profile_status(stack, name, false), None),
        ["status", "profile", name, "reg", ..] => (profile_status(stack, name, true), None),
        ["status", "gateway"] | ["status", "gateway", _] => (gateway_status(stack), None),
        ["profile", name, cmd, ..] => profile_cmd(stack, name, cmd, now),
        ["global", "siptrace", v] => match *v {
            "on" => {
                stack.trace.store(true, Ordering::Relaxed);
                ("+OK Global siptrace on\n".into(), None)
            }
            "off" => {
                stack.trace.store(false, Ordering::Relaxed);
                ("+OK Global siptrace off\n".into(), None)
            }
            _ => ("-ERR Usage: sofia global siptrace on|off\n".into(), None),
        },
        ["help"] => (usage(), None),
        _ => (format!("-ERR Invalid syntax.\n{}", usage()), None),
    }
}

fn usage() -> String {
    "USAGE:\n--------------------------------------------------------------------------------\n\
sofia global siptrace <on|off>\n\
sofia profile <name> [start | stop | restart | rescan | tls-reload]\n\
sofia status [profile <name> [reg] | gateway [<name>]]\n\
--------------------------------------------------------------------------------\n"
        .into()
}

fn status(stack: &Stack) -> String {
    let mut out = format!(
        "{:>25}\t{:>7}\t{:>45}\t{}\n{RULE}\n",
        "Name", "Type", "Data", "State"
    );
    for (i, p) in stack.profiles.iter().enumerate() {
        let data = format!("sip:mod_sofia@{}:{}", p.cfg.sip_ip, p.cfg.sip_port);
        let state = if p.running { "RUNNING" } else { "DOWN" };
        out.push_str(&format!(
            "{:>25}\t{:>7}\t{:>45}\t{} ({})\n",
            p.cfg.name,
            "profile",
            data,
            state,
            stack.calls_of(i)
        ));
    }
    for (name, data, state, _) in stack.gateway_rows() {
        out.push_str(&format!(
            "{name:>25}\t{:>7}\t{data:>45}\t{state}\n",
            "gateway"
        ));
    }
    out.push_str(&format!(
        "{RULE}\n{} profile{} 0 aliases\n",
        stack.profiles.len(),
        if stack.profiles.len() == 1 { "" } else { "s" }
    ));
    out
}

fn profile_status(stack: &Stack, name: &str, reg: bool) -> String {
    let Some((i, p)) = stack
        .profiles
        .iter()
        .enumerate()
        .find(|(_, p)| p.cfg.name == name)
    else {
        return "Invalid Profile!\n".into();
    };
    if reg {
        let now = now_secs();
        let regs = stack.registrar.all(name);
        let mut out = format!("Registrations:\n{RULE}\n");
        for r in &regs {
            out.push_str(&format!(
                "Call-ID:    \t{}\nUser:       \t{}\nContact:    \t\"\" <{}>\nAgent:      \t{}\n\
Status:     \tRegistered({})(unknown) EXPSECS({})\nHost:       \thotswitch\nIP:         \t{}\n\
Port:       \t{}\nAuth-User:  \t{}\nAuth-Realm: \t{}\nMWI-Account:\t{}\n\n",
                r.call_id,
                r.aor(),
                r.contact,
                r.user_agent,
                r.transport,
                r.expires_at.saturating_sub(now),
                r.network.ip(),
                r.network.port(),
                r.user,
                r.domain,
                r.aor()
            ));
        }
        out.push_str(&format!("Total items returned: {}\n{RULE}\n", regs.len()));
        return out;
    }
    let c = &p.cfg;
    let codecs: Vec<&str> = c.codecs.iter().map(|c| c.name()).collect();
    format!(
        "{RULE}\n\
Name             \t{}\n\
Domain Name      \tN/A\n\
Auto-NAT         \tfalse\n\
DBName           \t{}\n\
Dialplan         \t{}\n\
Context          \t{}\n\
Challenge Realm  \t{}\n\
RTP-IP           \t{}\n\
{}SIP-IP           \t{}\n\
URL              \tsip:mod_sofia@{}:{}\n\
BIND-URL         \tsip:mod_sofia@{}:{};maddr={};transport=udp{}\n\
CODECS IN        \t{}\n\
CODECS OUT       \t{}\n\
TEL-EVENT        \t{}\n\
DTMF-MODE        \t{:?}\n\
AUTH-CALLS       \t{}\n\
STATE            \t{}\n\
CALLS-IN         \t{}\n\
FAILED-CALLS-IN  \t{}\n\
CALLS-OUT        \t{}\n\
ACTIVE-CALLS     \t{}\n\
REGISTRATIONS    \t{}\n\
RTP-IN-PACKETS   \t{}\n\
RTP-OUT-PACKETS  \t{}\n\
RTP-LOST-PACKETS \t{}\n\
{RULE}\n",
        c.name,
        c.odbc_dsn
            .as_deref()
            .map(crate::registrar_pg::masked)
            .or_else(|| c.registration_db.clone())
            .unwrap_or_else(|| "memory".into()),
        c.dialplan,
        c.context,
        c.challenge_realm.as_deref().unwrap_or("auto_from"),
        c.rtp_ip,
        c.ext_rtp_ip
            .map(|ip| format!("Ext-RTP-IP       \t{ip}\nExt-SIP-IP       \t{ip}\n"))
            .unwrap_or_default(),
        c.sip_ip,
        c.sip_ip,
        c.sip_port,
        c.sip_ip,
        c.sip_port,
        c.sip_ip,
        if c.tcp { ",tcp" } else { "" },
        codecs.join(","),
        codecs.join(","),
        c.te_pt,
        c.dtmf_type,
        c.auth_calls,
        if p.running { "RUNNING" } else { "DOWN" },
        p.calls_in,
        p.failed_in,
        p.calls_out,
        stack.calls_of(i),
        stack.registrar.all(name).len(),
        crate::rtp::TOTAL_IN.load(Ordering::Relaxed),
        crate::rtp::TOTAL_OUT.load(Ordering::Relaxed),
        crate::rtp::TOTAL_LOST.load(Ordering::Relaxed),
    )
}

fn gateway_status(stack: &Stack) -> String {
    let mut out = format!(
        "{:>40}\t{:>40}\t{:>10}\n{RULE}\n",
        "Profile::Gateway-Name", "Data", "State"
    );
    let rows = stack.gateway_rows();
    for (name, data, state, _) in &rows {
        out.push_str(&format!("{name:>40}\t{data:>40}\t{state:>10}\n"));
    }
    out.push_str(&format!("{RULE}\n{} gateways: Total\n", rows.len()));
    out
}

/// sofia.conf (with switch.conf's RTP range) as the switch has it now.
fn read_config() -> Result<crate::config::Config, String> {
    let ctx = hotswitch_plugin_api::ModuleContext::current();
    let sofia = ctx.config_section("sofia.conf");
    let switch = ctx.config_section("switch.conf");
    let acl = ctx.config_section("acl.conf");
    crate::config::Config::from_xml(
        sofia.as_deref(),
        switch.as_deref(),
        acl.as_deref(),
        &crate::acl::directory_users_with_cidr,
    )
    .map_err(|e| e.to_string())
}

fn profile_cmd(
    stack: &mut Stack,
    name: &str,
    cmd: &str,
    now: Instant,
) -> (String, Option<ShellAction>) {
    let Some(i) = stack.profiles.iter().position(|p| p.cfg.name == name) else {
        return ("Invalid Profile!\n".into(), None);
    };
    match cmd {
        "stop" => {
            if !stack.profiles[i].running {
                return (format!("-ERR profile {name} is not running\n"), None);
            }
            stack.profiles[i].running = false;
            (format!("stopping: {name}\n"), Some(ShellAction::Stop(i)))
        }
        "start" => {
            if stack.profiles[i].running {
                return (format!("-ERR profile {name} is already running\n"), None);
            }
            stack.profiles[i].running = true;
            (format!("starting: {name}\n"), Some(ShellAction::Start(i)))
        }
        // Reads the profile's settings again (after reloadxml) and binds
        // its sockets anew, on the address they now name; calls up go on.
        "restart" => {
            let config = match read_config() {
                Ok(c) => c,
                Err(e) => return (format!("-ERR {e}\n"), None),
            };
            let Some(fresh) = config.profiles.iter().find(|p| p.name == name) else {
                return (
                    format!("-ERR profile {name} is no longer in sofia.conf\n"),
                    None,
                );
            };
            stack.rescan(i, &config, now);
            let p = &mut stack.profiles[i];
            p.addr = std::net::SocketAddr::new(fresh.sip_ip, fresh.sip_port);
            p.cfg = fresh.clone();
            p.running = true;
            stack.acls = config.acls.clone();
            (format!("restarting: {name}\n"), Some(ShellAction::Start(i)))
        }
        // New handshakes use the certificates now on disk; connections
        // open keep theirs.
        "tls-reload" => {
            let certs = crate::shell::shared().and_then(|s| s.tls.get(i).cloned());
            let ctxs: Vec<_> = certs
                .into_iter()
                .flat_map(|c| [c.tls, c.wss])
                .flatten()
                .collect();
            let Some(ctx) = ctxs.first().cloned() else {
                return (
                    format!("-ERR profile {name} does not listen for TLS\n"),
                    None,
                );
            };
            match ctxs.iter().try_for_each(|c| c.reload()) {
                Ok(()) => {
                    log::info!(
                        "profile {name}: TLS certificates reloaded from {}",
                        ctx.cert_dir().display()
                    );
                    (
                        format!(
                            "+OK TLS certificates of {name} reloaded from {}\n",
                            ctx.cert_dir().display()
                        ),
                        None,
                    )
                }
                Err(e) => {
                    log::error!("profile {name}: TLS reload failed, old certificates kept: {e}");
                    (format!("-ERR {e}; the old certificates stay\n"), None)
                }
            }
        }
        "rescan" => match read_config() {
            Ok(config) => {
                let (added, removed) = stack.rescan(i, &config, now);
                (
                    format!("+OK scan complete: {added} gateways added, {removed} removed\n"),
                    None,
                )
            }
            Err(e) => (format!("-ERR {e}\n"), None),
        },
        _ => (
            "-ERR Usage: sofia profile <name> start|stop|restart|rescan\n".into(),
            None,
        ),
    }
}

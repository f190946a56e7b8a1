//! FreeSWITCH's reply texts, byte for byte, where clients parse them: each
//! api command's replies (usage lines, errors, the `show` forms, `version`,
//! `status`, `hupall`), pinned in one table and read through the event
//! socket, which — unlike the console — adds nothing to a reply. The texts
//! are those of FreeSWITCH's mod_commands.c.

use hotswitch_e2e::*;

/// hotswitch's version, as `version` carries it after FreeSWITCH's numbers.
const V: &str = env!("CARGO_PKG_VERSION");

#[test]
fn every_command_replies_with_freeswitchs_text() {
    let (mut sw, port) = event_socket_switch("ClueCon", "", &[]);
    let mut c = EslApi::connect(port, "ClueCon");
    let u = ok_uuid(&c.api("originate {tag=x}null/1 &park()"));
    let show_syntax = "codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|status";
    let table: Vec<(String, String)> = [
        // identity
        (
            "version",
            format!("FreeSWITCH Version 1.10.12-hotswitch-{V}~64bit (plugin-api {V} ABI 6 64bit)\n"),
        ),
        ("version short", format!("1.10.12-hotswitch-{V}\n")),
        (
            "version full",
            format!("FreeSWITCH Version 1.10.12-hotswitch-{V}~64bit (1.10.12-hotswitch-{V} plugin-api {V} ABI 6 64bit)\n"),
        ),
        ("echo hello there", "hello there".into()),
        ("module_exists mod_loopback", "true".into()),
        ("module_exists mod_nope", "false".into()),
        // An empty reply: the event socket says so, as FreeSWITCH's does.
        ("module_exists", "-ERR no reply\n".into()),
        ("nosuch x", "-ERR nosuch Command not found!\n".into()),
        // modules
        ("load", "-USAGE: <mod_name>\n".into()),
        ("unload", "-USAGE: [-f] <mod_name>\n".into()),
        ("reload", "-USAGE: [-f] <mod_name>\n".into()),
        ("unload mod_nope", "-ERR [No such module!]\n".into()),
        ("reloadxml", "+OK [Success]\n".into()),
        // show
        ("show", format!("-USAGE: {show_syntax}\n")),
        ("show nonsense", format!("-USAGE: {show_syntax}\n")),
        ("show modules as yaml", "-ERR Cannot find format yaml\n".into()),
        (
            "show endpoint",
            "type,name,ikey\nendpoint,loopback,mod_loopback\nendpoint,null,mod_loopback\n\n2 total.\n"
                .into(),
        ),
        (
            "show endpoints as delim |",
            "type|name|ikey\nendpoint|loopback|mod_loopback\nendpoint|null|mod_loopback\n\n2 total.\n"
                .into(),
        ),
        (
            "show api uuid_kill",
            "name,description,syntax,ikey\nuuid_kill,Kill channel,<uuid> [cause],core\n\n1 total.\n"
                .into(),
        ),
        (
            "show api uuid_kill as json",
            r#"{"row_count":1,"rows":[{"name":"uuid_kill","description":"Kill channel","syntax":"<uuid> [cause]","ikey":"core"}]}"#.into(),
        ),
        (
            "show api uuid_kill as xml",
            "<result row_count=\"1\">\n  <row row_id=\"1\">\n    <name>uuid_kill</name>\n    <description>Kill channel</description>\n    <syntax>&lt;uuid&gt; [cause]</syntax>\n    <ikey>core</ikey>\n  </row>\n</result>\n".into(),
        ),
        ("show api nope", "\n0 total.\n".into()),
        ("show api nope as json", "{\"row_count\": 0}\n".into()),
        ("show api nope as xml", "<result row_count=\"0\"/>\n".into()),
        ("show aliases", "\n0 total.\n".into()),
        ("show registrations", "\n0 total.\n".into()),
        ("show registrations count as json", "{\"row_count\":0,\"rows\":[]}".into()),
        ("show channels count", "\n1 total.\n".into()),
        ("show channels count as json", "{\"row_count\":1,\"rows\":[]}".into()),
        (
            "show channels count as xml",
            "<result row_count=\"1\"></result>\n".into(),
        ),
        ("show calls count", "\n1 total.\n".into()),
        ("show channels like nothing-matches", "\n0 total.\n".into()),
        (
            "help uuid_kill",
            "uuid_kill,<uuid> [cause],Kill channel,core\n".into(),
        ),
        ("help nope", "-ERR No such command\n".into()),
        // calls
        ("originate", "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n".into()),
        ("originate error/USER_BUSY &park()", "-ERR USER_BUSY\n".into()),
        ("uuid_kill", "-USAGE: <uuid> [cause]\n".into()),
        ("uuid_kill nope", "-ERR No such channel!\n".into()),
        ("uuid_exists nope", "false".into()),
        ("uuid_exists {u}", "true".into()),
        ("uuid_getvar {u}", "-USAGE: <uuid> <var>\n".into()),
        ("uuid_getvar nope x", "-ERR No such channel!\n".into()),
        ("uuid_getvar {u} nothing", "_undef_".into()),
        ("uuid_setvar", "-USAGE: <uuid> <var> [value]\n".into()),
        ("uuid_setvar {u} color blue", "+OK\n".into()),
        ("uuid_getvar {u} color", "blue".into()),
        ("uuid_setvar nope color blue", "-ERR No such channel!\n".into()),
        ("uuid_answer nope", "-ERROR\n".into()),
        ("uuid_answer", "-ERROR\n".into()),
        ("uuid_park", "-USAGE: <uuid>\n".into()),
        ("uuid_park nope", "-ERR No such channel!\n".into()),
        ("uuid_exists", "false".into()),
        (
            "uuid_transfer",
            "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n".into(),
        ),
        ("uuid_transfer nope 1000", "-ERR No such channel!\n".into()),
        ("uuid_bridge", "-USAGE: <uuid> <other_uuid>\n".into()),
        ("uuid_bridge nope nada", "-ERR Invalid uuid\n".into()),
        ("uuid_send_dtmf", "-USAGE: <uuid> <dtmf_data>\n".into()),
        ("uuid_send_dtmf nope 1", "-ERR Cannot locate session!\n".into()),
        ("uuid_recv_dtmf {u} 12", "+OK {u} received DTMF 12.\n".into()),
        ("uuid_display", "-USAGE: <uuid> <display>\n".into()),
        ("uuid_display nope Alice", "-ERR Operation failed\n".into()),
        // variables and expansion
        ("global_setvar", "-USAGE: <var>=<value> [=<value2>]\n".into()),
        ("global_setvar site=lab", "+OK".into()),
        ("global_setvar site=moon =mars", "+OK".into()),
        ("global_getvar site", "lab".into()),
        ("eval $${site}", "lab".into()),
        ("eval uuid:nope $${site}", "lab".into()),
        ("eval uuid:{u} ${color}", "blue".into()),
        ("expand", "-ERR No input\n".into()),
        ("expand echo $${site}", "lab".into()),
        ("expand nope x", "-ERR Cannot execute command\n".into()),
        // scheduler and background jobs
        (
            "sched_api",
            "-ERR Invalid syntax. USAGE: [+@]<time> <group_name> <command_string>[&]\n".into(),
        ),
        ("sched_del", "-ERR Invalid syntax\n".into()),
        ("sched_del nogroup", "+OK Deleted: 0\n".into()),
        ("show tasks", "\n0 total.\n".into()),
        ("bgapi", "-ERR Invalid syntax\n".into()),
        // directory
        ("user_data", "-ERR no reply\n".into()),
        ("user_exists", "false".into()),
        // hupall last: it ends the channel
        (
            "hupall NORMAL_CLEARING tag y a b",
            "+OK hangup all channels matching [tag]=[y]... with cause: NORMAL_CLEARING\n".into(),
        ),
        (
            "hupall USER_BUSY tag y",
            "+OK hangup all channels matching [tag]=[y] with cause: USER_BUSY\n".into(),
        ),
        ("hupall", "+OK hangup all channels with cause MANAGER_REQUEST\n".into()),
    ]
    .into_iter()
    .map(|(cmd, want)| (cmd.replace("{u}", &u), want.replace("{u}", &u)))
    .collect();
    let mut wrong = Vec::new();
    for (cmd, want) in &table {
        let got = c.api(cmd);
        if &got != want {
            wrong.push(format!("{cmd:?}\n   want {want:?}\n    got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    wait_gone(&mut sw, &u, WAIT);
}

#[test]
fn status_and_show_forms_carry_freeswitchs_lines_and_columns() {
    let (mut sw, port) = event_socket_switch("ClueCon", "", &[]);
    let mut c = EslApi::connect(port, "ClueCon");
    let a = ok_uuid(&c.api("originate loopback/answer\\,park/default/inline &park()"));

    let status = c.api("status");
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines[0].starts_with("UP 0 years, 0 days, "), "{status}");
    assert_eq!(
        lines[1],
        format!("FreeSWITCH (Version 1.10.12-hotswitch-{V} plugin-api {V} ABI 6 64bit) is ready")
    );
    assert!(lines[2].ends_with(" session(s) since startup"), "{status}");
    assert!(
        lines[3].starts_with("2 session(s) - peak ") && lines[3].contains(", last 5min "),
        "{status}"
    );
    assert!(
        lines[3].ends_with(' '),
        "FreeSWITCH's trailing space: {status:?}"
    );
    assert!(
        lines[4].contains(" session(s) per Sec out of max ") && lines[4].ends_with(' '),
        "{status:?}"
    );
    assert!(lines[5].ends_with(" session(s) max"), "{status}");
    assert!(lines[6].starts_with("min idle cpu 0.00/"), "{status}");

    let channels = c.api("show channels");
    let rows: Vec<&str> = channels.lines().collect();
    assert_eq!(
        rows[0],
        "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,application,application_data,dialplan,context,read_codec,read_rate,read_bit_rate,write_codec,write_rate,write_bit_rate,secure,hostname,presence_id,presence_data,accountcode,callstate,callee_name,callee_num,callee_direction,call_uuid,sent_callee_name,sent_callee_num,initial_cid_name,initial_cid_num,initial_ip_addr,initial_dest,initial_dialplan,initial_context"
    );
    assert_eq!(rows.len(), 1 + 2 + 2, "{channels}");
    let json: serde_json::Value = serde_json::from_str(&c.api("show channels as json")).unwrap();
    assert_eq!(json["row_count"], 2);
    for r in json["rows"].as_array().unwrap() {
        assert_eq!(r.as_object().unwrap().len(), 38, "{r}");
    }
    let a_row = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == a.as_str())
        .expect("the A leg's row");
    assert_eq!(a_row["direction"], "outbound");
    assert_eq!(a_row["name"], "loopback/answer,park-a");

    let calls = c.api("show calls");
    assert_eq!(
        calls.lines().next().unwrap(),
        "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,presence_id,presence_data,accountcode,callstate,callee_name,callee_num,callee_direction,call_uuid,hostname,sent_callee_name,sent_callee_num,b_uuid,b_direction,b_created,b_created_epoch,b_name,b_state,b_cid_name,b_cid_num,b_ip_addr,b_dest,b_presence_id,b_presence_data,b_accountcode,b_callstate,b_callee_name,b_callee_num,b_callee_direction,b_sent_callee_name,b_sent_callee_num,call_created_epoch"
    );
    let detailed = c.api("show detailed_calls as json");
    let json: serde_json::Value = serde_json::from_str(&detailed).unwrap();
    let row = &json["rows"][0];
    assert_eq!(row.as_object().unwrap().len(), 32 + 32 + 1, "{detailed}");
    assert!(row.get("b_hostname").is_some() && row.get("b_call_uuid").is_some());

    let like = c.api("show channels like park-a");
    assert_eq!(like.lines().count(), 1 + 1 + 2, "{like}");
    assert!(like.ends_with("\n1 total.\n"), "{like}");

    let added = c.api("sched_api +600 later echo hi");
    let id = added
        .strip_prefix("+OK Added: ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("{added}"))
        .to_string();
    let tasks = c.api("show tasks");
    let rows: Vec<&str> = tasks.lines().collect();
    assert_eq!(
        rows[0],
        "task_id,task_desc,task_group,task_runtime,task_sql_manager,hostname"
    );
    assert!(
        rows[1].starts_with(&format!("{id},echo hi,later,")),
        "{tasks}"
    );
    assert_eq!(c.api("sched_del later"), "+OK Deleted: 1\n");

    let types = c.api("show interface_types");
    assert!(types.starts_with("type,total\n"), "{types}");
    assert!(types.contains("\nendpoint,2\n"), "{types}");

    assert_eq!(
        c.api(&format!("uuid_kill {a}")),
        "+OK\n",
        "the call ends with its A leg"
    );
    wait_gone(&mut sw, &a, WAIT);
}

/// Runs `program script port` from tests/esl and returns its output when it
/// succeeds.
fn run_client(program: &str, script: &str, port: u16) -> String {
    let out = std::process::Command::new(program)
        .arg(workspace_root().join("tests/esl").join(script))
        .arg(port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("run {program} {script}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn greenswitch_and_modesl_parse_version_and_show_modules_as_against_freeswitch() {
    let (sw, port) = event_socket_switch("ClueCon", "", &[]);
    let py = run_client("python3", "show_version.py", port);
    assert!(py.starts_with("OK "), "{py}\n{}", sw.log());
    // modesl (npm ci --prefix tests/esl/node): its show() runs the command
    // as bgapi and parses the BACKGROUND_JOB body in the json and xml forms.
    let js = run_client("node", "node/show_version.js", port);
    assert!(
        js.starts_with("OK ") && js.contains("FreeSWITCH Version 1.10.12"),
        "{js}\n{}",
        sw.log()
    );
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

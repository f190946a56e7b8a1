//! The rows of FreeSWITCH's `channels` table and its `basic_calls` and
//! `detailed_calls` views, built from the live sessions for `show channels`,
//! `show calls`, `show detailed_calls` and the bridged forms: the same
//! columns, in the same order, as the SQL FreeSWITCH answers them from
//! (switch_core_sqldb.c), since clients read them by name.

use crate::core::Core;
use crate::session::{state_name, Session};
use crate::show::Table;
use std::sync::Arc;
use std::time::Duration;

/// The columns of FreeSWITCH's `channels` table, in order.
pub const CHANNEL_COLUMNS: &[&str] = &[
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "application",
    "application_data",
    "dialplan",
    "context",
    "read_codec",
    "read_rate",
    "read_bit_rate",
    "write_codec",
    "write_rate",
    "write_bit_rate",
    "secure",
    "hostname",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "sent_callee_name",
    "sent_callee_num",
    "initial_cid_name",
    "initial_cid_num",
    "initial_ip_addr",
    "initial_dest",
    "initial_dialplan",
    "initial_context",
];

/// One session as a row of FreeSWITCH's `channels` table. Columns
/// FreeSWITCH fills from events are filled from the same sources here (the
/// profile, the channel's variables); the `initial_*` ones from the
/// profile's `orig_*` caller id, as the profile was when routed.
fn channel_row(core: &Core, s: &Session) -> Vec<String> {
    let ch = s.ch();
    let p = &ch.profile;
    let created = chrono::DateTime::<chrono::Local>::from(
        std::time::UNIX_EPOCH + Duration::from_micros(ch.times.created),
    );
    let v = |n: &str| ch.var(n).unwrap_or("").to_string();
    let or = |a: &str, b: &str| if a.is_empty() { b } else { a }.to_string();
    vec![
        s.uuid.clone(),
        s.direction.as_str().into(),
        created.format("%Y-%m-%d %H:%M:%S").to_string(),
        (ch.times.created / 1_000_000).to_string(),
        ch.name.clone(),
        state_name(ch.state),
        p.caller_id_name.clone(),
        p.caller_id_number.clone(),
        p.network_addr.clone(),
        p.destination_number.clone(),
        v("current_application"),
        v("current_application_data"),
        p.dialplan.clone(),
        p.context.clone(),
        v("read_codec"),
        v("read_rate"),
        v("read_bit_rate"),
        v("write_codec"),
        v("write_rate"),
        v("write_bit_rate"),
        v("secure"),
        core.hostname.clone(),
        v("presence_id"),
        v("presence_data"),
        v("accountcode"),
        ch.callstate.as_str().into(),
        p.callee_id_name.clone(),
        p.callee_id_number.clone(),
        v("callee_direction"),
        ch.var("call_uuid").unwrap_or(&s.uuid).to_string(),
        v("sent_callee_name"),
        v("sent_callee_num"),
        or(&p.orig_caller_id_name, &p.caller_id_name),
        or(&p.orig_caller_id_number, &p.caller_id_number),
        p.network_addr.clone(),
        p.destination_number.clone(),
        p.dialplan.clone(),
        p.context.clone(),
    ]
}

/// `show channels`: every session, oldest first.
pub fn channels_table(core: &Arc<Core>) -> Table {
    let mut t = Table::new(CHANNEL_COLUMNS);
    for s in core.sessions.all() {
        t.rows.push(channel_row(core, &s));
    }
    t
}

/// The channel columns `basic_calls` (`show calls`) carries for each leg.
const BASIC_CALL_COLUMNS: &[&str] = &[
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "hostname",
    "sent_callee_name",
    "sent_callee_num",
];

/// The B leg's columns of `basic_calls` (no `call_uuid`, no `hostname`).
const BASIC_CALL_B_COLUMNS: &[&str] = &[
    "b_uuid",
    "b_direction",
    "b_created",
    "b_created_epoch",
    "b_name",
    "b_state",
    "b_cid_name",
    "b_cid_num",
    "b_ip_addr",
    "b_dest",
    "b_presence_id",
    "b_presence_data",
    "b_accountcode",
    "b_callstate",
    "b_callee_name",
    "b_callee_num",
    "b_callee_direction",
    "b_sent_callee_name",
    "b_sent_callee_num",
];

/// The B leg's columns of `detailed_calls`.
const DETAILED_CALL_B_COLUMNS: &[&str] = &[
    "b_uuid",
    "b_direction",
    "b_created",
    "b_created_epoch",
    "b_name",
    "b_state",
    "b_cid_name",
    "b_cid_num",
    "b_ip_addr",
    "b_dest",
    "b_application",
    "b_application_data",
    "b_dialplan",
    "b_context",
    "b_read_codec",
    "b_read_rate",
    "b_read_bit_rate",
    "b_write_codec",
    "b_write_rate",
    "b_write_bit_rate",
    "b_secure",
    "b_hostname",
    "b_presence_id",
    "b_presence_data",
    "b_accountcode",
    "b_callstate",
    "b_callee_name",
    "b_callee_num",
    "b_callee_direction",
    "b_call_uuid",
    "b_sent_callee_name",
    "b_sent_callee_num",
];

/// `show calls` (FreeSWITCH's `basic_calls` view) or, `detailed`, `show
/// detailed_calls` (`detailed_calls`): one row per call — the leg that
/// started a bridge with the leg it bridged in the `b_` columns, or a leg
/// on its own with them empty — and `call_created_epoch`.
pub fn calls_table(core: &Arc<Core>, detailed: bool) -> Table {
    // detailed_calls: every channel column but the initial_* ones.
    let (a_cols, b_cols) = if detailed {
        (
            &CHANNEL_COLUMNS[..CHANNEL_COLUMNS.len() - 6],
            DETAILED_CALL_B_COLUMNS,
        )
    } else {
        (BASIC_CALL_COLUMNS, BASIC_CALL_B_COLUMNS)
    };
    let position = |c: &str| CHANNEL_COLUMNS.iter().position(|x| *x == c);
    let pick: Vec<usize> = a_cols.iter().filter_map(|c| position(c)).collect();
    let b_pick: Vec<usize> = b_cols
        .iter()
        .filter_map(|c| c.strip_prefix("b_").and_then(position))
        .collect();
    let mut columns = a_cols.to_vec();
    columns.extend_from_slice(b_cols);
    columns.push("call_created_epoch");
    let mut t = Table::new(&columns);
    let sessions = core.sessions.all();
    for s in &sessions {
        let (peer, is_a) = {
            let ch = s.ch();
            let is_a = ch.var("bridge_role") == Some("a");
            (ch.bridged_to.clone(), is_a)
        };
        let peer = peer.and_then(|u| core.sessions.get(&u));
        if peer.is_some() && !is_a {
            // The B leg of a call: its row is its A leg's.
            let peer_is_a = peer
                .as_ref()
                .is_some_and(|p| p.ch().var("bridge_role") == Some("a"));
            if peer_is_a {
                continue;
            }
        }
        let a_row = channel_row(core, s);
        let mut row: Vec<String> = pick.iter().map(|&i| a_row[i].clone()).collect();
        match &peer {
            Some(b) => {
                let b_row = channel_row(core, b);
                row.extend(b_pick.iter().map(|&i| b_row[i].clone()));
                row.push((s.ch().times.bridged / 1_000_000).to_string());
            }
            None => {
                row.extend(b_pick.iter().map(|_| String::new()));
                row.push(String::new());
            }
        }
        t.rows.push(row);
    }
    t
}

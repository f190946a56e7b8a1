//! The core's table of registrations, as FreeSWITCH keeps it
//! (`switch_core_add_registration` / `switch_core_del_registration` and the
//! `registrations` table): endpoints that register phones add and remove
//! rows through the `registration_add` and `registration_del` api commands
//! (no plugin-api change), and `show registrations [count]` prints them
//! with FreeSWITCH's columns. As with FreeSWITCH's default (no
//! `multiple-registrations`), one row per user and realm: the latest.

use crate::core::Core;
use crate::show::Table;
use hotswitch_plugin_api::sync::Mutex;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// FreeSWITCH's columns, in its order.
pub const COLUMNS: [&str; 10] = [
    "reg_user",
    "realm",
    "token",
    "url",
    "expires",
    "network_ip",
    "network_port",
    "network_proto",
    "hostname",
    "metadata",
];

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub user: String,
    pub realm: String,
    pub token: String,
    pub url: String,
    /// Unix time it lapses (0: never).
    pub expires: u64,
    pub network_ip: String,
    pub network_port: String,
    pub network_proto: String,
    pub metadata: String,
}

/// The table.
#[derive(Default)]
pub struct Registrations {
    rows: Mutex<Vec<Row>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registrations {
    /// Adds a row, replacing the user's row in the same realm.
    pub fn add(&self, row: Row) {
        let mut rows = self.rows.lock();
        rows.retain(|r| !(r.user == row.user && r.realm == row.realm));
        rows.push(row);
    }

    /// Removes the user's rows in `realm`.
    pub fn del(&self, user: &str, realm: &str) {
        let mut rows = self.rows.lock();
        rows.retain(|r| !(r.user == user && r.realm == realm));
    }

    /// The rows not lapsed at `now` (lapsed ones are dropped).
    pub fn live(&self, now: u64) -> Vec<Row> {
        let mut rows = self.rows.lock();
        rows.retain(|r| r.expires == 0 || r.expires > now);
        rows.clone()
    }
}

const ADD_USAGE: &str = "-USAGE: registration_add <user> <realm> <token> <url> <expires> <network_ip> <network_port> <network_proto> [<metadata>]\n";

/// `registration_add <user> <realm> <token> <url> <expires> <network_ip>
/// <network_port> <network_proto> [<metadata>]` (`expires`: Unix time).
pub fn add_api(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    if w.len() < 8 {
        return ADD_USAGE.into();
    }
    let Ok(expires) = w[4].parse::<u64>() else {
        return ADD_USAGE.into();
    };
    core.registrations.add(Row {
        user: w[0].into(),
        realm: w[1].into(),
        token: w[2].into(),
        url: w[3].into(),
        expires,
        network_ip: w[5].into(),
        network_port: w[6].into(),
        network_proto: w[7].into(),
        metadata: w[8..].join(" "),
    });
    "+OK\n".into()
}

/// `registration_del <user> <realm> [<token>]`.
pub fn del_api(core: &Arc<Core>, args: &str) -> String {
    let w: Vec<&str> = args.split_whitespace().collect();
    if w.len() < 2 {
        return "-USAGE: registration_del <user> <realm> [<token>]\n".into();
    }
    core.registrations.del(w[0], w[1]);
    "+OK\n".into()
}

/// `show registrations`: FreeSWITCH's columns, `hostname` being ours.
pub fn table(core: &Arc<Core>) -> Table {
    let rows = core
        .registrations
        .live(now_secs())
        .into_iter()
        .map(|r| {
            vec![
                r.user,
                r.realm,
                r.token,
                r.url,
                r.expires.to_string(),
                r.network_ip,
                r.network_port,
                r.network_proto,
                core.hostname.clone(),
                r.metadata,
            ]
        })
        .collect();
    Table {
        columns: COLUMNS.to_vec(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, token: &str, expires: u64) -> Row {
        Row {
            user: user.into(),
            realm: "example.com".into(),
            token: token.into(),
            url: format!("sofia/internal/sip:{user}@192.0.2.1:5060"),
            expires,
            network_ip: "192.0.2.1".into(),
            network_port: "5060".into(),
            network_proto: "udp".into(),
            metadata: String::new(),
        }
    }

    #[test]
    fn a_user_has_one_row_per_realm_and_lapsed_rows_are_gone() {
        let t = Registrations::default();
        t.add(row("1000", "a", 100));
        t.add(row("1000", "b", 200));
        t.add(row("1001", "c", 50));
        let live = t.live(60);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].token, "b");
        t.del("1000", "example.com");
        assert!(t.live(0).is_empty());
    }
}

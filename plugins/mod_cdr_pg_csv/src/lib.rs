//! # mod_cdr_pg_csv — call detail records into PostgreSQL (FreeSWITCH's)
//!
//! On CS_REPORTING each leg's record — the `<schema>` fields of
//! `cdr_pg_csv.conf`, each a channel variable — is inserted into the
//! `db-table` of the database `db-info` names. While the database cannot
//! be reached the records are spooled to `<spool-dir>/cdr-spool.csv` (or
//! `.sql`), and replayed into the table as soon as it is back: none is
//! lost.
//!
//! - [`config`]: the settings and schema, checked at load.
//! - [`record`]: a record as SQL text (the VALUES list and the INSERT).
//! - [`spool`]: the spool files.
//! - [`writer`]: the task that owns the connection, on the module's
//!   runtime thread. A session's thread only hands its record over a
//!   channel: a slow or dead database never holds a call up.

pub mod config;
pub mod record;
pub mod spool;
pub mod writer;

use config::Settings;
use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use hotswitch_plugin_api::{declare_module, log, ChannelState, ModuleContext, Session, Status};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

declare_module! {
    name: "mod_cdr_pg_csv",
    description: "Call detail records into PostgreSQL, spooled while it is unreachable",
    load: load,
    unload: Some(unload),
    runtime: Some(runtime),
}

struct Shared {
    settings: Arc<Settings>,
    records: UnboundedSender<String>,
}

/// What the report handler needs; taken at unload.
static SHARED: Mutex<Option<Shared>> = Mutex::new(None);
/// The writer's end of the channel, until the runtime thread takes it.
static PENDING: Mutex<Option<(Arc<Settings>, UnboundedReceiver<String>)>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    let settings =
        config::parse(m.config_section("cdr_pg_csv.conf").as_deref()).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&settings.spool_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.spool_dir.display()))?;
    log::info!(
        "CDRs go to table {} ({} fields), spooled to {} while the database is unreachable",
        settings.table,
        settings.fields.len(),
        settings.spool_dir.display()
    );
    let settings = Arc::new(settings);
    let (tx, rx) = unbounded_channel();
    *lock(&PENDING) = Some((settings.clone(), rx));
    *lock(&SHARED) = Some(Shared {
        settings,
        records: tx,
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

fn runtime(_m: &ModuleContext) -> Status {
    let Some((settings, rx)) = lock(&PENDING).take() else {
        return Status::TERM;
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt.block_on(writer::run(settings, rx)),
        Err(e) => log::error!("cannot start the CDR writer: {e}"),
    }
    Status::TERM
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    // Dropping the sender lets the writer drain the queue and end; the
    // host joins the runtime thread next.
    lock(&SHARED).take();
    lock(&PENDING).take();
    Ok(())
}

fn report(s: &Session) {
    let guard = lock(&SHARED);
    let Some(shared) = guard.as_ref() else { return };
    let st = &shared.settings;
    // The B leg is the one the switch placed (originate, bridge).
    let wanted = if s.is_outbound() {
        st.b_legs
    } else {
        st.a_legs
    };
    if !wanted {
        return;
    }
    let values = record::values(&st.fields, |v| s.var(v));
    if let Err(e) = shared.records.send(values) {
        // The writer is gone (its runtime failed): spool it here.
        let sp = spool::Spool::new(&st.spool_dir, st.spool_format);
        if let Err(io) = sp.append(st, &e.0) {
            log::error!("cannot spool a CDR: {io}; the record: {:?}", e.0);
        }
    }
}

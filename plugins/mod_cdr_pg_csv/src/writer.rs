//! The writer: the one task that talks to PostgreSQL, on the module's
//! runtime thread. Sessions hand it records over a channel and go on; it
//! inserts each, and while the database cannot be reached it appends them
//! to the spool instead. It tries to reconnect once a second (and before a
//! record, when that second has passed); once connected it first replays
//! the spool in one transaction, so records reach the table in the order
//! they were made, then goes on with new ones.
//!
//! A record is never dropped: it is in the table, in the spool, in
//! `cdr-spool.failed` when the database refused it (a constraint, a
//! missing column: it would never succeed), or still in the channel. On
//! unload the channel is drained into the table or the spool before the
//! thread ends.

use crate::config::{self, Settings};
use crate::spool::{Spool, Spooled};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

/// Between two connection attempts while the database is down.
const RETRY: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct Writer {
    settings: Arc<Settings>,
    db: tokio_postgres::Config,
    spool: Spool,
    client: Option<Client>,
    retry_at: Instant,
    /// The outage was logged (once per outage, not per record).
    down: bool,
}

/// Serves until every sender of `rx` is gone and the queue is empty.
pub async fn run(settings: Arc<Settings>, mut rx: UnboundedReceiver<String>) {
    let db = match config::db_config(&settings.db_info) {
        Ok(c) => c,
        Err(e) => {
            // Checked at load; kept as an error rather than a panic.
            log::error!("{e}");
            return;
        }
    };
    let mut w = Writer {
        spool: Spool::new(&settings.spool_dir, settings.spool_format),
        settings,
        db,
        client: None,
        retry_at: Instant::now(),
        down: false,
    };
    w.connect().await;
    loop {
        let next = if w.client.is_none() {
            tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(w.retry_at) => {
                    w.connect().await;
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        match next {
            Some(values) => w.write(values).await,
            None => break,
        }
    }
    log::info!("CDR writer stopped");
}

impl Writer {
    async fn connect(&mut self) {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.db.connect(NoTls)).await;
        match attempt {
            Ok(Ok((client, conn))) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        log::warn!("CDR database connection ended: {e}");
                    }
                });
                if self.down {
                    log::info!("CDR database reachable again");
                }
                self.down = false;
                self.client = Some(client);
                self.replay().await;
            }
            Ok(Err(e)) => self.lost(&e.to_string()),
            Err(_) => self.lost("connection timed out"),
        }
    }

    fn lost(&mut self, why: &str) {
        self.client = None;
        self.retry_at = Instant::now() + RETRY;
        if !self.down {
            self.down = true;
            log::error!(
                "CDR database unreachable ({why}): records are spooled to {}",
                self.spool.path(self.settings.spool_format).display()
            );
        }
    }

    async fn write(&mut self, values: String) {
        if self.client.is_none() && Instant::now() >= self.retry_at {
            self.connect().await;
        }
        let sql = crate::record::insert(&self.settings.table, &self.settings.fields, &values);
        if self.settings.debug {
            log::info!("Query: {sql:?}");
        }
        if let Some(c) = &self.client {
            match c.batch_execute(&sql).await {
                Ok(()) => return,
                Err(e) if c.is_closed() => self.lost(&e.to_string()),
                Err(e) => {
                    // Not the connection: keep the record in the spool (the
                    // replay sorts out what the table will never take).
                    log::error!("INSERT command failed: {e}");
                    self.client = None;
                    self.retry_at = Instant::now() + RETRY;
                }
            }
        }
        if let Err(e) = self.spool.append(&self.settings, &values) {
            log::error!(
                "cannot spool a CDR to {}: {e}; the record: {values:?}",
                self.settings.spool_dir.display()
            );
        }
    }

    /// Writes the spool into the table: all in one transaction, or, when
    /// the database refuses some record, one by one.
    async fn replay(&mut self) {
        let records = match self.spool.read() {
            Ok(r) if r.is_empty() => return,
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot read the CDR spool: {e}");
                return;
            }
        };
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let batch: String = records
            .iter()
            .map(|r| r.statement(&self.settings))
            .collect::<Vec<_>>()
            .join("\n");
        let all = async {
            let tx = client.transaction().await?;
            tx.batch_execute(&batch).await?;
            tx.commit().await
        }
        .await;
        match all {
            Ok(()) => {
                if let Err(e) = self.spool.rewrite(&[]) {
                    log::error!("cannot empty the CDR spool: {e}");
                }
                log::info!("replayed {} spooled CDRs", records.len());
            }
            Err(e) if client.is_closed() => self.lost(&e.to_string()),
            Err(e) => {
                log::warn!("replaying the CDR spool at once failed ({e}): one by one");
                self.replay_each(records).await;
            }
        }
    }

    async fn replay_each(&mut self, records: Vec<Spooled>) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        let mut done = 0;
        let mut closed = None;
        for r in &records {
            match client.batch_execute(&r.statement(&self.settings)).await {
                Ok(()) => {}
                Err(e) if client.is_closed() => {
                    closed = Some(e.to_string());
                    break;
                }
                Err(e) => {
                    log::error!("a spooled CDR was refused ({e}): kept in cdr-spool.failed");
                    if let Err(e) = self.spool.reject(r, &self.settings) {
                        log::error!("cannot keep it: {e}; the record: {:?}", r.line);
                    }
                }
            }
            done += 1;
        }
        if let Err(e) = self.spool.rewrite(&records[done..]) {
            log::error!("cannot rewrite the CDR spool: {e}");
        }
        if let Some(why) = closed {
            self.lost(&why);
        }
    }
}

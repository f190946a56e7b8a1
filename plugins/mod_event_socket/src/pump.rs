//! A connection's event and log feed: one host subscription, pulled on a
//! thread of its own (`Subscription::next` blocks), routed by the
//! connection's [`Selection`], framed and queued for the writer.
//!
//! The queue is bounded: when the client does not read fast enough for it
//! to drain, the pump tells the connection, which cuts the client off. The
//! switch never waits for a client.

use crate::frames::{self, Format};
use crate::selection::Selection;
use hotswitch_plugin_api::{
    ItemKind, LogLevel, ModuleContext, Subscription, EVENT_FLAG_ROUTING_HEADERS, EVENT_FORMAT_PLAIN,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc::{self, error::TrySendError};

/// How long one pull waits, so that a stopped pump notices within this.
const POLL_MS: u32 = 100;

/// What goes to the writer.
pub enum Out {
    /// Bytes to send.
    Frame(Vec<u8>),
    /// Send what is queued, then close.
    Close,
}

/// What the pump tells its connection.
#[derive(Debug)]
pub enum Control {
    /// The outgoing queue is full: the client is not reading.
    Overflow,
    /// The controlled session hung up (its channel name).
    Hangup(String),
}

/// The state the connection and its pump share.
pub struct Feed {
    sub: Subscription,
    /// What the client is sent.
    pub selection: Mutex<Selection>,
    stop: AtomicBool,
}

impl Feed {
    /// The selection, locked.
    pub fn selection(&self) -> MutexGuard<'_, Selection> {
        self.selection.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the host what to deliver, after the selection changed.
    pub fn refresh_interest(&self) {
        let spec = self.selection().host_spec();
        if let Err(e) = self.sub.set_interest(&spec) {
            log::warn!("event socket: interest {spec:?} refused: {e}");
        }
    }

    /// Which log records to deliver.
    pub fn set_log_level(&self, level: LogLevel) {
        self.sub.set_log_level(level);
    }

    /// Asks the pump thread to end (within [`POLL_MS`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Opens a subscription and starts its pump; the thread is joined by the
/// service at the latest when the module stops.
pub fn start(
    service: &crate::service::Service,
    selection: Selection,
    out: mpsc::Sender<Out>,
    control: mpsc::UnboundedSender<Control>,
) -> Result<Arc<Feed>, String> {
    let capacity = service.config.queue_size.min(u32::MAX as usize) as u32;
    let sub = ModuleContext::current()
        .subscribe(capacity)
        .map_err(|e| format!("cannot subscribe to events: {e}"))?;
    let feed = Arc::new(Feed {
        sub,
        selection: Mutex::new(selection),
        stop: AtomicBool::new(false),
    });
    feed.refresh_interest();
    let f = feed.clone();
    service
        .spawn_thread("esl:events", move || pump(&f, &out, &control))
        .map_err(|e| format!("cannot start an event thread: {e}"))?;
    Ok(feed)
}

/// Events that are already waiting are sent together: one frame buffer and
/// one wake-up of the writer for up to this many events.
const BATCH: usize = 64;

fn pump(feed: &Feed, out: &mpsc::Sender<Out>, control: &mpsc::UnboundedSender<Control>) {
    let m = ModuleContext::current();
    let mut since_check = 0u32;
    let mut batch: Vec<u8> = Vec::new();
    while !feed.stop.load(Ordering::Acquire) {
        // Without header filters only the routing headers are needed, and
        // copying every header is most of the cost of an event.
        // (JSON and XML are made here from the headers: they need all.)
        let flags = {
            let sel = feed.selection();
            if sel.filters.is_empty() && matches!(sel.format, None | Some(Format::Plain)) {
                EVENT_FLAG_ROUTING_HEADERS
            } else {
                0
            }
        };
        let mut wait = POLL_MS;
        let mut got = 0usize;
        let mut hangups = Vec::new();
        batch.clear();
        while got < BATCH {
            let item = feed.sub.next(wait, EVENT_FORMAT_PLAIN | flags);
            // Later items of a batch are only those already waiting.
            wait = 0;
            let Some(item) = item else { break };
            got += 1;
            let hangup = frame_into(&mut batch, feed, &item, flags);
            if let Some(name) = hangup {
                hangups.push(name);
            }
        }
        // Events the host could not queue for us are lost: FreeSWITCH
        // disconnects such a listener rather than hide the loss.
        since_check += got.max(1) as u32;
        if got == 0 || since_check >= 256 {
            since_check = 0;
            if feed.sub.dropped() > 0 {
                let _ = control.send(Control::Overflow);
                break;
            }
        }
        if got == 0 && !m.running() {
            break;
        }
        if !batch.is_empty() {
            match out.try_send(Out::Frame(std::mem::take(&mut batch))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let _ = control.send(Control::Overflow);
                    break;
                }
                Err(TrySendError::Closed(_)) => break,
            }
        }
        for name in hangups {
            let _ = control.send(Control::Hangup(name));
        }
    }
}

/// Appends the frame an item becomes on this connection to `out` (nothing
/// when filtered out); returns the channel name when it is the controlled
/// channel's hangup.
fn frame_into(
    out: &mut Vec<u8>,
    feed: &Feed,
    item: &hotswitch_plugin_api::Item,
    flags: u32,
) -> Option<String> {
    match item.kind {
        ItemKind::Log => {
            out.extend_from_slice(&frames::log_data(&item.headers, &item.text));
            None
        }
        ItemKind::Event => {
            let sel = feed.selection();
            let format = sel.format.unwrap_or(Format::Plain);
            // Fetched with routing headers only, but a filter or a format
            // that needs them all came meanwhile: the plain text has them.
            let all;
            let headers = if flags != 0 && (!sel.filters.is_empty() || format != Format::Plain) {
                all = frames::headers_from_plain(&item.text);
                &all
            } else {
                &item.headers
            };
            let route = sel.route(headers);
            drop(sel);
            if route.forward {
                if format == Format::Plain {
                    frames::event_into(out, format, &item.text);
                } else {
                    frames::event_into(
                        out,
                        format,
                        &frames::serialize(format, headers, &item.text),
                    );
                }
            }
            route.hangup
        }
    }
}

//! A connection's event and log feed: one host subscription, pulled on a
//! thread of its own (`Subscription::next_with` blocks), routed by the
//! connection's [`Selection`], framed and queued for the writer.
//!
//! Events already waiting are taken in bursts: a burst is framed into one
//! buffer and handed to the [`Outbox`] at once, so the writer is woken and
//! the socket written once per burst. While events come fast the pump
//! sleeps a quarter of a millisecond between bursts instead of being woken
//! by every event (at 200,000 events/s that is 50 a burst). Items are
//! received into buffers kept from one event to the next: a plain event
//! costs no allocation here.
//!
//! The switch keeps up to four times `queue-size` events for the pump (it
//! is a thread like any other and may wait for a CPU); the connection's
//! outbox holds `queue-size` frames for the client.
//!
//! The queue is bounded: when the client does not read fast enough for it
//! to drain, the pump tells the connection, which cuts the client off. The
//! switch never waits for a client.

use crate::frames::{self, Format};
use crate::outbox::{Outbox, Refused};
use crate::selection::Selection;
use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use hotswitch_plugin_api::{
    ItemKind, ItemSink, LogLevel, ModuleContext, Subscription, EVENT_FLAG_ROUTING_HEADERS,
    EVENT_FORMAT_PLAIN,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long one pull waits, so that a stopped pump notices within this.
const POLL_MS: u32 = 100;
/// The switch's queue of events for a connection, in `queue-size`s.
pub const HOST_QUEUE_FACTOR: usize = 4;

/// What the pump tells its connection.
#[derive(Debug)]
pub enum Control {
    /// The outgoing queue is full: the client is not reading.
    Overflow,
    /// The switch dropped events for this connection: its pump did not
    /// keep up.
    Lost,
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
        self.selection.lock()
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

    /// Asks the pump thread to end (within `POLL_MS`).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Opens a subscription and starts its pump; the thread is joined by the
/// service at the latest when the module stops.
pub fn start(
    service: &crate::service::Service,
    selection: Selection,
    outbox: Arc<Outbox>,
    control: mpsc::UnboundedSender<Control>,
) -> Result<Arc<Feed>, String> {
    // The switch keeps more events for a connection than its outbox holds
    // frames: the pump is a thread like any other, and on a busy machine it
    // can wait for a CPU for tens of milliseconds, which must not cost the
    // client its connection. A client that does not read still fills its
    // outbox (`queue-size` frames) and is cut off as soon.
    let capacity = service
        .config
        .queue_size
        .saturating_mul(HOST_QUEUE_FACTOR)
        .min(u32::MAX as usize) as u32;
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
        .spawn_thread("esl:events", move || {
            pump(&f, capacity as usize, &outbox, &control)
        })
        .map_err(|e| format!("cannot start an event thread: {e}"))?;
    Ok(feed)
}

/// A burst ends after this many items or this many bytes of frames,
/// whichever comes first.
const BURST_ITEMS: usize = 512;
const BURST_BYTES: usize = 256 * 1024;
/// After a burst of at least this many items that emptied the queue (events
/// are coming fast, and the pump keeps up), the pump lets the next ones
/// gather for [`GATHER`] rather than be woken for each as it arrives: a
/// wake-up costs more than framing an event. A burst cut short by its size
/// limit is followed by the next at once.
const GATHER_AFTER: usize = 8;
const GATHER: std::time::Duration = std::time::Duration::from_micros(250);

fn pump(feed: &Feed, capacity: usize, outbox: &Outbox, control: &mpsc::UnboundedSender<Control>) {
    let m = ModuleContext::current();
    let mut since_check = 0usize;
    let mut sink = Sink {
        feed,
        flags: 0,
        kind: ItemKind::Event,
        headers: Headers::default(),
        out: Vec::new(),
        frames: 0,
        hangups: Vec::new(),
    };
    while !feed.stop.load(Ordering::Acquire) {
        // Without header filters only the routing headers are needed, and
        // copying every header is most of the cost of an event.
        // (JSON and XML are made here from the headers: they need all.)
        sink.flags = {
            let sel = feed.selection();
            if sel.filters.is_empty() && matches!(sel.format, None | Some(Format::Plain)) {
                EVENT_FLAG_ROUTING_HEADERS
            } else {
                0
            }
        };
        let mut wait = POLL_MS;
        let mut got = 0usize;
        let mut caught_up = false;
        while got < BURST_ITEMS && sink.out.len() < BURST_BYTES {
            let format = EVENT_FORMAT_PLAIN | sink.flags;
            if !feed.sub.next_with(wait, format, &mut sink) {
                caught_up = true;
                break;
            }
            // Later items of a burst are only those already waiting.
            wait = 0;
            got += 1;
        }
        // Events the host could not queue for us are lost: FreeSWITCH
        // disconnects such a listener rather than hide the loss.
        since_check += got.max(1);
        if got == 0 || since_check >= 256 {
            since_check = 0;
            if feed.sub.dropped() > 0 {
                let _ = control.send(Control::Lost);
                break;
            }
        }
        if got == 0 && !m.running() {
            break;
        }
        if sink.frames > 0 {
            match outbox.push(&mut sink.out, sink.frames) {
                Ok(()) => sink.frames = 0,
                Err(Refused::Full) => {
                    let _ = control.send(Control::Overflow);
                    break;
                }
                Err(Refused::Closed) => break,
            }
        }
        for name in sink.hangups.drain(..) {
            let _ = control.send(Control::Hangup(name));
        }
        // (Not when a gathering would fill a quarter of the queue: a small
        // `queue-size` must not lose events to the pause.)
        if caught_up && got >= GATHER_AFTER && got < capacity / 4 {
            std::thread::sleep(GATHER);
        }
    }
}

/// Headers of the item being received, in strings kept from one item to
/// the next.
#[derive(Default)]
struct Headers {
    pairs: Vec<(String, String)>,
    len: usize,
}

impl Headers {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, name: &str, value: &str) {
        match self.pairs.get_mut(self.len) {
            Some((k, v)) => {
                k.clear();
                k.push_str(name);
                v.clear();
                v.push_str(value);
            }
            None => self.pairs.push((name.to_string(), value.to_string())),
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(String, String)] {
        &self.pairs[..self.len]
    }
}

/// Receives items from the host and frames those the connection is sent
/// into `out`.
struct Sink<'a> {
    feed: &'a Feed,
    /// What the items were asked with ([`EVENT_FLAG_ROUTING_HEADERS`] or 0).
    flags: u32,
    kind: ItemKind,
    headers: Headers,
    /// Frames of this burst.
    out: Vec<u8>,
    frames: usize,
    /// Channel names of the controlled session's hangups seen in this burst.
    hangups: Vec<String>,
}

impl ItemSink for Sink<'_> {
    fn begin(&mut self, kind: ItemKind) {
        self.kind = kind;
        self.headers.clear();
    }

    fn header(&mut self, name: &str, value: &str) {
        self.headers.push(name, value);
    }

    fn text(&mut self, text: &str) {
        self.text_bytes(text.as_bytes());
    }

    /// Plain events go out as the host serialised them: their bytes are
    /// copied into the burst, not checked again. Only JSON and XML (made
    /// here from the text) need it as `str`.
    fn text_bytes(&mut self, text: &[u8]) {
        match self.kind {
            ItemKind::Log => {
                let line = String::from_utf8_lossy(text);
                frames::log_data_into(&mut self.out, self.headers.as_slice(), &line);
                self.frames += 1;
            }
            ItemKind::Event => {
                let sel = self.feed.selection();
                let format = sel.format.unwrap_or(Format::Plain);
                let needs_all = !sel.filters.is_empty() || format != Format::Plain;
                // Fetched with routing headers only, but a filter or a
                // format that needs them all came meanwhile: the plain text
                // has them.
                let checked = (format != Format::Plain || (self.flags != 0 && needs_all))
                    .then(|| String::from_utf8_lossy(text));
                let all;
                let headers = match &checked {
                    Some(t) if self.flags != 0 && needs_all => {
                        all = frames::headers_from_plain(t);
                        &all
                    }
                    _ => self.headers.as_slice(),
                };
                let route = sel.route(headers);
                drop(sel);
                if route.forward {
                    match &checked {
                        Some(t) if format != Format::Plain => {
                            let serialized = frames::serialize(format, headers, t);
                            frames::event_into(&mut self.out, format, serialized.as_bytes());
                        }
                        _ => frames::event_into(&mut self.out, format, text),
                    }
                    self.frames += 1;
                }
                if let Some(name) = route.hangup {
                    self.hangups.push(name);
                }
            }
        }
    }
}

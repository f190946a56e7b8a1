//! Event and log subscriptions for modules (an event socket, a CDR writer,
//! a presence module): the safe face of `event_subscribe` and friends.
//!
//! ```no_run
//! # fn run(m: &hotswitch_plugin_api::ModuleContext) {
//! use hotswitch_plugin_api::{EVENT_FORMAT_PLAIN, ItemKind};
//! let sub = m.subscribe(10_000).expect("subscription");
//! sub.set_interest("CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE");
//! while m.running() {
//!     if let Some(item) = sub.next(250, EVENT_FORMAT_PLAIN) {
//!         if item.kind == ItemKind::Event {
//!             println!("{}", item.header("Event-Name").unwrap_or(""));
//!         }
//!     }
//! }
//! # }
//! ```

use crate::abi::RStr;
use crate::host::{EventVisitor, ITEM_LOG};
use crate::module::{services, HostError};
use crate::types::{LogLevel, ModuleHandle, Status};
use core::ffi::c_void;

/// What a subscription delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// An event.
    Event,
    /// A log record.
    Log,
}

/// One event or log record, copied out of the host.
#[derive(Clone, Debug)]
pub struct Item {
    /// Event or log record.
    pub kind: ItemKind,
    /// Headers in order (values not URL-encoded).
    pub headers: Vec<(String, String)>,
    /// The serialised event in the requested format, or the log line.
    pub text: String,
}

impl Item {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Receives an item's parts as the host hands them over, in order:
/// [`begin`](ItemSink::begin), every header, then the text. The views are
/// valid only during the call; a sink that keeps its buffers from one item
/// to the next receives events without allocating (see
/// [`Subscription::next_with`]).
///
/// ```no_run
/// # fn run(m: &hotswitch_plugin_api::ModuleContext) {
/// use hotswitch_plugin_api::{ItemKind, ItemSink, EVENT_FORMAT_PLAIN};
/// /// Event names, and the plain events one after the other.
/// #[derive(Default)]
/// struct Tape { names: Vec<String>, bytes: Vec<u8> }
/// impl ItemSink for Tape {
///     fn begin(&mut self, _kind: ItemKind) {}
///     fn header(&mut self, name: &str, value: &str) {
///         if name == "Event-Name" {
///             self.names.push(value.to_string());
///         }
///     }
///     fn text(&mut self, text: &str) {
///         self.bytes.extend_from_slice(text.as_bytes());
///     }
/// }
/// let sub = m.subscribe(1000).expect("subscription");
/// sub.set_interest("ALL");
/// let mut tape = Tape::default();
/// while sub.next_with(250, EVENT_FORMAT_PLAIN, &mut tape) {}
/// # }
/// ```
pub trait ItemSink {
    /// A new item of this kind.
    fn begin(&mut self, kind: ItemKind);
    /// One header (value not URL-encoded).
    fn header(&mut self, name: &str, value: &str);
    /// The serialised event in the requested format, or the log line.
    fn text(&mut self, text: &str);
    /// The same text as bytes, as the host handed them over. A sink that
    /// only passes the bytes on (to a socket) overrides this and spares
    /// checking that they are UTF-8; by default they are checked (invalid
    /// sequences replaced) and passed to [`text`](ItemSink::text).
    fn text_bytes(&mut self, bytes: &[u8]) {
        self.text(&String::from_utf8_lossy(bytes));
    }
}

impl ItemSink for Item {
    fn begin(&mut self, kind: ItemKind) {
        self.kind = kind;
    }
    fn header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_string(), value.to_string()));
    }
    fn text(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

/// An open subscription; closed when dropped.
pub struct Subscription {
    pub(crate) id: u64,
    pub(crate) module: ModuleHandle,
}

/// A sink and the first panic it raised (it must not unwind into the host).
struct Visit<'a, S: ItemSink> {
    sink: &'a mut S,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

impl<S: ItemSink> Visit<'_, S> {
    /// Runs `f` on the sink unless it already panicked.
    ///
    /// # Safety
    /// `ctx` is the `Visit` handed to `event_next` by `next_with`.
    unsafe fn with(ctx: *mut c_void, f: impl FnOnce(&mut S)) {
        let v = &mut *(ctx as *mut Visit<'_, S>);
        if v.panic.is_none() {
            let sink = &mut *v.sink;
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(sink))) {
                v.panic = Some(p);
            }
        }
    }
}

unsafe extern "C" fn s_begin<S: ItemSink>(ctx: *mut c_void, kind: u32) {
    let kind = if kind == ITEM_LOG {
        ItemKind::Log
    } else {
        ItemKind::Event
    };
    Visit::<S>::with(ctx, |s| s.begin(kind));
}

unsafe extern "C" fn s_header<S: ItemSink>(ctx: *mut c_void, name: RStr, value: RStr) {
    Visit::<S>::with(ctx, |s| s.header(&name.to_str(), &value.to_str()));
}

unsafe extern "C" fn s_text<S: ItemSink>(ctx: *mut c_void, text: RStr) {
    Visit::<S>::with(ctx, |s| s.text_bytes(text.as_bytes()));
}

pub(crate) unsafe extern "C" fn v_begin(ctx: *mut c_void, kind: u32) {
    let item = &mut *(ctx as *mut Item);
    item.kind = if kind == ITEM_LOG {
        ItemKind::Log
    } else {
        ItemKind::Event
    };
}

pub(crate) unsafe extern "C" fn v_header(ctx: *mut c_void, name: RStr, value: RStr) {
    let item = &mut *(ctx as *mut Item);
    item.headers
        .push((name.to_str().into_owned(), value.to_str().into_owned()));
}

pub(crate) unsafe extern "C" fn v_text(ctx: *mut c_void, text: RStr) {
    let item = &mut *(ctx as *mut Item);
    item.text.push_str(&text.to_str());
}

impl Subscription {
    /// Which events to receive (`ALL`, names, `CUSTOM sub::class …`).
    pub fn set_interest(&self, spec: &str) -> Result<(), HostError> {
        let s = services().ok_or(HostError(Status::GENERR))?;
        // SAFETY: host function; the view outlives the call.
        let st = unsafe { (s.event_set_interest)(self.module, self.id, RStr::new(spec)) };
        if st.is_success() {
            Ok(())
        } else {
            Err(HostError(st))
        }
    }

    /// Which log records to receive (`LogLevel::OFF`: none).
    pub fn set_log_level(&self, level: LogLevel) {
        if let Some(s) = services() {
            // SAFETY: host function.
            unsafe { (s.log_set_level)(self.module, self.id, level) };
        }
    }

    /// The next item, waiting up to `timeout_ms`.
    pub fn next(&self, timeout_ms: u32, format: u32) -> Option<Item> {
        let mut item = Item {
            kind: ItemKind::Event,
            headers: Vec::new(),
            text: String::new(),
        };
        self.next_with(timeout_ms, format, &mut item)
            .then_some(item)
    }

    /// The next item, handed to `sink` part by part; false when none came
    /// within `timeout_ms`. A panic in the sink is raised again here, after
    /// the host's call has returned.
    pub fn next_with<S: ItemSink>(&self, timeout_ms: u32, format: u32, sink: &mut S) -> bool {
        let Some(s) = services() else { return false };
        let mut visit = Visit { sink, panic: None };
        let mut v = EventVisitor {
            ctx: &mut visit as *mut Visit<'_, S> as *mut c_void,
            begin: s_begin::<S>,
            header: s_header::<S>,
            text: s_text::<S>,
        };
        // SAFETY: `v` and `visit` outlive the call; the callbacks never
        // unwind (a panic is caught and kept).
        let st = unsafe { (s.event_next)(self.module, self.id, timeout_ms, format, &mut v) };
        if let Some(p) = visit.panic {
            std::panic::resume_unwind(p);
        }
        st.is_success()
    }

    /// Items lost to a full queue so far.
    pub fn dropped(&self) -> u64 {
        match services() {
            // SAFETY: host function.
            Some(s) => unsafe { (s.event_dropped)(self.module, self.id) },
            None => 0,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(s) = services() {
            // SAFETY: host function; the id is ours.
            unsafe { (s.event_unsubscribe)(self.module, self.id) };
        }
    }
}

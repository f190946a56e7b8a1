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

/// An open subscription; closed when dropped.
pub struct Subscription {
    pub(crate) id: u64,
    pub(crate) module: ModuleHandle,
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
        let s = services()?;
        let mut item = Item {
            kind: ItemKind::Event,
            headers: Vec::with_capacity(64),
            text: String::new(),
        };
        let mut v = EventVisitor {
            ctx: &mut item as *mut Item as *mut c_void,
            begin: v_begin,
            header: v_header,
            text: v_text,
        };
        // SAFETY: `v` and `item` outlive the call.
        let st = unsafe { (s.event_next)(self.module, self.id, timeout_ms, format, &mut v) };
        st.is_success().then_some(item)
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

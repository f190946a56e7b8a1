//! Live reload: the handover contract between two versions of one module.
//!
//! On `reload mod_x` with work in flight, the host loads the new copy next
//! to the old one (design (a), Erlang-style: see `ARCHITECTURE.md`). The new
//! copy becomes *current* and gets every new session, api call, application
//! and chat; the old one becomes *draining*: its sessions go on, on the old
//! code, to their end, and the host purges it when its last one ends. A
//! module takes part by declaring a [`HandoverSpec`] with
//! `declare_module!`'s trailing `handover: &SPEC` argument. Without one,
//! `reload` of a busy module is refused (`-ERR [Module in use.]`), as in
//! FreeSWITCH.
//!
//! What crosses between the versions is small: the old version's
//! [`export`](HandoverSpec::export) writes bytes in its own documented
//! format and names the descriptors it owns (listening sockets), the host
//! dups them and hands both to the new version's load
//! ([`ModuleContext::handover_take`]). While both run, the new version
//! receives all new traffic and hands what belongs to the old version's
//! calls back with [`ModuleContext::handover_forward`]; the host calls the
//! old version's [`deliver`](HandoverSpec::deliver) on a host thread.
//!
//! A module with nothing to hand over (its sessions simply finish on the old
//! copy) declares a spec whose export writes nothing:
//!
//! ```no_run
//! use hotswitch_plugin_api::{declare_module, Export, HandoverSpec, ModuleContext, ModuleError};
//!
//! static HANDOVER: HandoverSpec = HandoverSpec {
//!     format: "mod_hello/handover-v1",
//!     version: 1,
//!     reads_from: 1,
//!     export: |_| Ok(Export::default()),
//!     resume: |_| {},
//!     deliver: |_, _| false,
//! };
//!
//! declare_module! {
//!     name: "mod_hello",
//!     description: "Reloads with calls up",
//!     load: load,
//!     unload: None,
//!     runtime: None,
//!     handover: &HANDOVER,
//! }
//!
//! fn load(m: &ModuleContext) -> Result<(), ModuleError> {
//!     if let Some(prev) = m.handover_take() {
//!         log::info!("taking over from format version {}", prev.version);
//!     }
//!     Ok(())
//! }
//! # fn main() {}
//! ```

use crate::abi::RStr;
use crate::abi_struct;
use crate::module::{guard, guard_or, ModuleContext, ModuleError};
use crate::types::Status;
use core::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What a module declares to take part in live reload (`declare_module!`'s
/// `handover:`).
pub struct HandoverSpec {
    /// The handover format's name, e.g. `"mod_sofia/handover-v1"`: the same
    /// across versions that can hand over to each other.
    pub format: &'static str,
    /// The format version this build writes.
    pub version: u32,
    /// The oldest format version this build reads (it reads
    /// `reads_from..=version`).
    pub reads_from: u32,
    /// Old version, on reload with work in flight: stop taking new work from
    /// its sockets (stop reading listeners / the shared UDP socket; keep them
    /// open for sending), and write what the successor needs. Called on a
    /// host thread, concurrently with the module's runtime.
    pub export: fn(&ModuleContext) -> Result<Export, ModuleError>,
    /// Old version: the reload failed after `export`; take new work again as
    /// before.
    pub resume: fn(&ModuleContext),
    /// Old version (draining): the successor received something that may
    /// belong to this version. Return true when taken (it is this
    /// version's); false when it is not (the other older versions are
    /// asked too). Must be quick (enqueue only). Called on a host thread
    /// (one per version, so deliveries to one version come one at a
    /// time), never on the successor's own threads.
    pub deliver: fn(&ModuleContext, Delivery<'_>) -> bool,
}

/// What `export` returns. The host dups every fd during the call (the module
/// keeps, and later closes, its own).
#[derive(Debug, Default, Clone)]
pub struct Export {
    /// The module's own bytes, in the format its spec names.
    pub data: Vec<u8>,
    /// Descriptors to hand over, by name (e.g. `"udp 127.0.0.1:5060"`).
    pub fds: Vec<(String, RawFd)>,
}

/// A message the successor forwards: `channel` names the socket it came in
/// on (the same name as the fd in the [`Export`], e.g.
/// `"udp 127.0.0.1:5060"`), `peer` the sender (`"1.2.3.4:5060"`).
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The socket it came in on.
    pub channel: &'a str,
    /// Who sent it.
    pub peer: &'a str,
    /// The bytes as read.
    pub data: &'a [u8],
}

/// What the new version receives during its load.
#[derive(Debug, Default)]
pub struct Received {
    /// The format version the predecessor wrote.
    pub version: u32,
    /// The predecessor's bytes.
    pub data: Vec<u8>,
    /// The descriptors, now owned by this version.
    pub fds: Vec<(String, OwnedFd)>,
}

impl Received {
    /// Takes the descriptor named `name` (the first, if several are).
    pub fn take_fd(&mut self, name: &str) -> Option<OwnedFd> {
        let i = self.fds.iter().position(|(n, _)| n == name)?;
        Some(self.fds.remove(i).1)
    }
}

abi_struct! {
    /// Where handover bytes and descriptors go: the host's sink during an
    /// old version's `export`, the module's during `handover_take`. Views
    /// last only for the call. (ABI 6.2)
    pub struct HandoverSink {
        /// The receiver's own state.
        pub ctx: *mut c_void,
        /// The format version of what follows (`handover_take` only).
        pub version: unsafe extern "C" fn(ctx: *mut c_void, version: u32),
        /// Appends bytes to the data.
        pub data: unsafe extern "C" fn(ctx: *mut c_void, bytes: RStr),
        /// One descriptor. On export the host dups it during the call (the
        /// module keeps its own); on take the module owns it from then on.
        pub fd: unsafe extern "C" fn(ctx: *mut c_void, name: RStr, fd: i32),
        /// Why the export failed (export only).
        pub error: unsafe extern "C" fn(ctx: *mut c_void, reason: RStr),
    }
}

abi_struct! {
    /// A forwarded message as it crosses the boundary. (ABI 6.2)
    pub struct DeliveryDesc {
        /// [`Delivery::channel`].
        pub channel: RStr,
        /// [`Delivery::peer`].
        pub peer: RStr,
        /// [`Delivery::data`].
        pub data: RStr,
    }
}

abi_struct! {
    /// [`HandoverSpec`] as the host reads it (`ModuleDescriptor::handover`).
    /// The host compares `format`, `version` and `reads_from` before it runs
    /// any of the new copy's code. (ABI 6.2)
    pub struct HandoverTable {
        /// [`HandoverSpec::format`].
        pub format: RStr,
        /// [`HandoverSpec::version`].
        pub version: u32,
        /// [`HandoverSpec::reads_from`].
        pub reads_from: u32,
        /// Runs `export`, writing into the host's sink; `SUCCESS` or
        /// `GENERR` (the reason went to the sink's `error`).
        pub export: unsafe extern "C" fn(sink: *const HandoverSink) -> Status,
        /// Runs `resume`.
        pub resume: unsafe extern "C" fn() -> Status,
        /// Runs `deliver`: 1 when taken, 0 when not.
        pub deliver: unsafe extern "C" fn(delivery: *const DeliveryDesc) -> u32,
    }
}

// Static data: written once by the macro.
unsafe impl Sync for HandoverTable {}

impl HandoverTable {
    /// The table `declare_module!` writes for `spec`, with its trampolines.
    /// Not for direct use.
    #[doc(hidden)]
    pub const fn __new(
        spec: &'static HandoverSpec,
        export: unsafe extern "C" fn(sink: *const HandoverSink) -> Status,
        resume: unsafe extern "C" fn() -> Status,
        deliver: unsafe extern "C" fn(delivery: *const DeliveryDesc) -> u32,
    ) -> HandoverTable {
        HandoverTable {
            format: RStr::from_static(spec.format),
            version: spec.version,
            reads_from: spec.reads_from,
            export,
            resume,
            deliver,
        }
    }
}

/// The export trampoline `declare_module!` generates. Not for direct use.
///
/// # Safety
/// Called by the host only, with a live sink.
#[doc(hidden)]
pub unsafe fn __export(spec: &HandoverSpec, sink: *const HandoverSink) -> Status {
    let Some(sink) = sink.as_ref() else {
        return Status::GENERR;
    };
    guard(|| match (spec.export)(&ModuleContext::current()) {
        Ok(x) => {
            // SAFETY: the sink is the host's, live for this call; every view
            // is of data that outlives it.
            unsafe {
                (sink.data)(sink.ctx, RStr::from_bytes(&x.data));
                for (name, fd) in &x.fds {
                    (sink.fd)(sink.ctx, RStr::new(name), *fd);
                }
            }
            Status::SUCCESS
        }
        Err(e) => {
            let reason = e.to_string();
            log::error!("handover export failed: {reason}");
            // SAFETY: as above.
            unsafe { (sink.error)(sink.ctx, RStr::new(&reason)) };
            Status::GENERR
        }
    })
}

/// The resume trampoline `declare_module!` generates. Not for direct use.
#[doc(hidden)]
pub fn __resume(spec: &HandoverSpec) -> Status {
    guard(|| {
        (spec.resume)(&ModuleContext::current());
        Status::SUCCESS
    })
}

/// The deliver trampoline `declare_module!` generates. Not for direct use.
///
/// # Safety
/// Called by the host only, with a delivery whose views live for the call.
#[doc(hidden)]
pub unsafe fn __deliver(spec: &HandoverSpec, d: *const DeliveryDesc) -> u32 {
    let Some(d) = d.as_ref() else {
        return 0;
    };
    guard_or(0, || {
        // SAFETY: the host's views live for this call.
        let (channel, peer, data) =
            unsafe { (d.channel.to_str(), d.peer.to_str(), d.data.as_bytes()) };
        (spec.deliver)(
            &ModuleContext::current(),
            Delivery {
                channel: &channel,
                peer: &peer,
                data,
            },
        ) as u32
    })
}

unsafe extern "C" fn take_version(ctx: *mut c_void, version: u32) {
    let r = &mut *(ctx as *mut Received);
    r.version = version;
}

unsafe extern "C" fn take_data(ctx: *mut c_void, bytes: RStr) {
    let r = &mut *(ctx as *mut Received);
    r.data.extend_from_slice(bytes.as_bytes());
}

unsafe extern "C" fn take_fd(ctx: *mut c_void, name: RStr, fd: i32) {
    let r = &mut *(ctx as *mut Received);
    if fd >= 0 {
        // SAFETY: the host hands this descriptor over; it is ours now.
        r.fds
            .push((name.to_str().into_owned(), OwnedFd::from_raw_fd(fd)));
    }
}

unsafe extern "C" fn take_error(_ctx: *mut c_void, _reason: RStr) {}

impl ModuleContext {
    /// During `load` only: the predecessor's handover (`None` on a fresh
    /// load, with no predecessor). Fds
    /// not taken from the [`Received`] are closed when it drops.
    pub fn handover_take(&self) -> Option<Received> {
        let s = crate::module::services()?;
        let mut r = Received::default();
        let sink = HandoverSink {
            ctx: &mut r as *mut Received as *mut c_void,
            version: take_version,
            data: take_data,
            fd: take_fd,
            error: take_error,
        };
        // SAFETY: host function from the live services table (a module of minor 2 only loads on a host of minor 2 or later);
        // the sink and its target outlive the call.
        let st = unsafe { (s.handover_take)(crate::module::handle(), &sink) };
        st.is_success().then_some(r)
    }

    /// From the current version: offers a message to the older versions
    /// (all at once, each on its own host thread) and says whether one's
    /// `deliver` took it (a `deliver` need not pass on what is not its
    /// own: the host asks every older version). `true`:
    /// an older version took it; `false`: none did (no predecessor left,
    /// or none claims it): then handle it yourself (e.g. answer `481`).
    /// From a draining version, the same call goes to the versions older
    /// than IT (the host knows who is asking).
    pub fn handover_forward(&self, d: Delivery<'_>) -> bool {
        let Some(s) = crate::module::services() else {
            return false;
        };
        let desc = DeliveryDesc {
            channel: RStr::new(d.channel),
            peer: RStr::new(d.peer),
            data: RStr::from_bytes(d.data),
        };
        // SAFETY: host function from the live services table (a module of minor 2 only loads on a host of minor 2 or later);
        // the views outlive the call.
        unsafe { (s.handover_forward)(crate::module::handle(), &desc) != 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_fd_hands_out_each_named_descriptor_once() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let mut r = Received {
            version: 1,
            data: vec![],
            fds: vec![("udp 127.0.0.1:5060".into(), OwnedFd::from(f))],
        };
        assert!(r.take_fd("udp 127.0.0.1:5061").is_none());
        assert!(r.take_fd("udp 127.0.0.1:5060").is_some());
        assert!(r.take_fd("udp 127.0.0.1:5060").is_none());
    }
}

//! # hotswitch plugin API
//!
//! The one crate a hotswitch module author needs. A module is a `cdylib`
//! that depends on this crate, calls [`declare_module!`] once, and registers
//! its interfaces — endpoints, applications, api commands, chat protocols —
//! through the [`ModuleContext`] it is handed at load.
//!
//! - [`abi`]: the module header and the ABI identity check (what makes the
//!   host refuse a module built against an incompatible version of this
//!   crate, naming what differs).
//! - [`types`]: status codes, call causes, channel states, signals, message
//!   ids and the opaque handles, with FreeSWITCH's numbers.
//! - [`interfaces`]: the interfaces a module registers, with FreeSWITCH's
//!   `io_routines` and `state_handler` members.
//! - [`host`]: the table of host services handed to `module_load`.
//! - [`module`]: the descriptor, the `declare_module!` macro and the safe
//!   wrappers a module uses.
//! - [`handover`]: the live-reload contract ([`HandoverSpec`]): what a
//!   module hands its next version so that `reload` with calls up loses
//!   nothing.
//! - [`sansio`]: the one shape of a protocol core ([`sansio::Protocol`]);
//!   [`sync`]: the locks that do not poison, which the host and every
//!   module use.
//! - [`session`]: the lent [`Session`], held [`OwnedSession`], typed
//!   private state and the [`Endpoint`] trait; [`frame`]: the safe frame
//!   views endpoints read and fill.
//!
//! ## Rules a module keeps
//! - Build with `crate-type = ["cdylib"]` and `panic = "unwind"` (the host
//!   refuses `panic = "abort"` modules: their panics could not be caught).
//! - Threads the module starts are stopped and joined in its unload; the host
//!   checks after `dlclose` that the library is really gone and reports it
//!   *pinned* otherwise.
//! - Log with the `log` macros: `declare_module!` installs a logger that
//!   forwards to the host. Do not install env_logger or any other logger.
//!
//! ```no_run
//! use hotswitch_plugin_api::{declare_module, ModuleContext, ModuleError};
//! use std::fmt::Write;
//!
//! declare_module! {
//!     name: "mod_hello",
//!     description: "The smallest useful module",
//!     load: load,
//!     unload: None,
//!     runtime: None,
//! }
//!
//! fn load(m: &ModuleContext) -> Result<(), ModuleError> {
//!     m.add_api("hello", "Say hello", "hello [name]", |args, out| {
//!         let _ = writeln!(out, "+OK hello {args}");
//!     })?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! ## An endpoint through its life
//!
//! FreeSWITCH's endpoint lifecycle, with no `unsafe`: the core asks
//! `outgoing_channel` for a leg ([`Endpoint::outgoing`]): the endpoint
//! requests a session, attaches its private state (kept by the host,
//! dropped through the module with the session), names it and puts it in
//! CS_INIT. Its state handlers ([`Endpoint::on_state`]) run before the
//! core's for each state: in CS_INIT it rings and answers (a real endpoint
//! does that when the far end does). Media flows through
//! [`Endpoint::read_frame`] (fill the buffer the host lends) and
//! [`Endpoint::write_frame`]; a hangup reaches [`Endpoint::kill_channel`]
//! and then `on_state(HANGUP)`, and the private state goes after
//! CS_DESTROY, when the session itself does. Handles are ids the host
//! checks, and a [`Session`] is lent for one callback: to keep one, take
//! a hold ([`Session::hold`]). A panic in any of these faults the module
//! (and hangs its calls up with `CRASH`), never the switch.
//!
//! The whole module — `examples/mod_tone.rs`, built by `cargo build -p
//! hotswitch-plugin-api --examples` and, by the end-to-end tests, as a
//! crate of its own outside the workspace (load it, `originate tone/x
//! &echo`, `uuid_kill`: its log says how much it heard):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/mod_tone.rs"), "```")]
#![warn(missing_docs)]

pub mod abi;
pub mod alloc;
pub mod config;
pub mod events;
pub mod frame;
pub mod framing;
pub mod g711;
pub mod handover;
pub mod host;
#[allow(missing_docs)]
pub mod interfaces;
pub mod module;
pub mod sansio;
pub mod session;
pub mod subscription;
pub mod sync;
#[allow(missing_docs)]
pub mod types;
pub mod wire;
pub mod xml;

pub use abi::RStr;
pub use events::EventId;
pub use frame::{FrameBuf, FrameView};
pub use handover::{Delivery, Export, HandoverSpec, Received};
pub use host::{
    EventDesc, EventVisitor, HostServices, OutStream, PrivateDropFn, DIRECTION_INBOUND,
    DIRECTION_OUTBOUND, EVENT_FLAG_ROUTING_HEADERS, EVENT_FORMAT_JSON, EVENT_FORMAT_PLAIN,
    EVENT_FORMAT_XML, ITEM_EVENT, ITEM_LOG, PLAY_STOP_ON_ANY_DIGIT,
};
pub use interfaces::*;
pub use module::{
    guard, guard_or, is_api_word, Chat, HostError, ModuleContext, ModuleDescriptor, ModuleError,
    Stream,
};
pub use session::{Endpoint, Message, Outgoing, OwnedSession, Profile, Session};
pub use subscription::{Item, ItemKind, ItemSink, Subscription};
pub use types::*;

/// Re-exported so that modules log with the same `log` this crate forwards.
pub use log;

//! # hotswitch
//!
//! The host process of the hotswitch softswitch: the core (identity,
//! configuration, event bus, interface registries), the module loader and
//! manager, the host services modules call, the core's api commands and the
//! console. `main.rs` wires them together; `ARCHITECTURE.md` maps them.

pub mod bridge;
pub mod channel_tables;
pub mod commands;
pub mod config;
pub mod console;
pub mod containment;
pub mod core;
pub mod dialplan;
pub mod dialplan_xml;
pub mod dialstring;
pub mod directory;
pub mod dirs;
pub mod drain;
pub mod event;
pub mod executor;
pub mod expand;
pub mod fsctl;
pub mod handles;
pub mod interfaces;
pub mod loader;
pub mod logtap;
/// The media crate, under its old path (`hotswitch::media::…`).
pub use hotswitch_media as media;
pub mod media_io;
pub mod modules;
pub mod originate;
pub mod preprocess;
pub mod registrations;
pub mod reload;
pub mod ringback;
pub mod scheduler;
pub mod services;
pub mod session;
pub mod session_commands;
pub mod show;
pub mod state_machine;
pub mod xml;

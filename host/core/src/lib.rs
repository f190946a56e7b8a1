//! # hotswitch-core
//!
//! The core of the hotswitch softswitch: identity, configuration, the event
//! bus, sessions and their state machine, the executor, interface
//! registries, the module loader and manager, the host services modules
//! call and the core's api commands. The `hotswitch` binary (main and the
//! console) wires it together; `ARCHITECTURE.md` maps it.
//!
//! The pure crates it builds on are re-exported under their old paths:
//! [`media`], [`xml`] and [`preprocess`] (hotswitch-config),
//! [`dialplan_xml`], [`expand`] and [`dialstring`] (hotswitch-dialplan).

pub mod arenas;
pub mod bridge;
pub mod channel_tables;
pub mod commands;
pub mod config;
pub mod containment;
pub mod core;
pub mod dialplan;
pub mod directory;
pub mod dirs;
pub mod drain;
pub mod event;
pub mod executor;
pub mod fsctl;
pub mod handles;
pub mod interfaces;
pub mod loader;
pub mod logtap;
pub use hotswitch_config::{preprocess, xml};
pub use hotswitch_dialplan::{dialplan_xml, dialstring, expand};
pub use hotswitch_media as media;
pub mod media_io;
pub(crate) mod media_loop;
pub mod modules;
pub mod originate;
pub mod registrations;
pub mod reload;
pub mod ringback;
pub mod scheduler;
pub mod services;
pub mod session;
pub mod session_commands;
pub mod show;
pub mod stackpool;
pub mod state_machine;

//! # hotswitch
//!
//! The host process of the hotswitch softswitch: the core (identity,
//! configuration, event bus, interface registries), the module loader and
//! manager, the host services modules call, the core's api commands and the
//! console. `main.rs` wires them together; `ARCHITECTURE.md` maps them.

pub mod commands;
pub mod config;
pub mod console;
pub mod core;
pub mod event;
pub mod interfaces;
pub mod loader;
pub mod modules;
pub mod services;
pub mod xml;

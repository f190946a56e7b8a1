//! # hotswitch-dialplan
//!
//! How hotswitch routes a call, sans-IO: [`dialplan_xml`] (FreeSWITCH's XML
//! dialplan: contexts, extensions, conditions, captures, time of day),
//! [`expand`] (`${variable}` expansion with FreeSWITCH's semantics) and
//! [`dialstring`] (the argument of `originate` and `bridge`).
//!
//! Architecture invariant: pure. Every input comes in as an argument —
//! the call through a trait, the local time as a value — so no clock, no
//! thread, no I/O and no async runtime (`.ci/pure-crates` checks it). It
//! depends on the configuration crate for the element tree and on
//! plugin-api only for the lock that does not poison.

pub mod dialplan_xml;
pub mod dialstring;
pub mod expand;

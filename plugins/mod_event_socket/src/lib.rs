//! # mod_event_socket — FreeSWITCH's event socket, inbound and outbound
//!
//! Clients written for FreeSWITCH (greenswitch, switchio, modesl, fs_cli…)
//! talk to hotswitch unchanged: the same greeting, commands, replies and
//! event frames, byte for byte.
//!
//! - [`config`]: `event_socket.conf` (listen-ip, listen-port, password,
//!   apply-inbound-acl, max-connections, queue-size).
//! - [`acl`]: who may connect (`loopback.auto`, CIDR lists).
//! - [`packet`]: the client's packets, sans-IO (bytes in, packets out).
//! - [`command`]: which command a packet is, and its arguments.
//! - [`frames`]: what the server writes, byte for byte.
//! - [`selection`] and [`filter`]: which events and log records a
//!   connection is sent.
//! - [`pump`]: a connection's host subscription, pulled on its own thread
//!   in bursts, framed into the connection's outbox.
//! - [`outbox`]: the bytes a connection has yet to send, bounded in frames,
//!   and the writer that sends them a burst at a time.
//! - [`connection`]: one client: read, run commands, write; slow clients
//!   are cut off, never waited for.
//! - [`session_ops`]: what commands do to sessions and the event bus.
//! - [`server`]: the listener, ACL and connection limit.
//! - [`outbound`]: the `socket` dialplan application.
//! - [`service`]: the runtime's life — bound at load, served by the
//!   module's runtime thread, every thread joined before unload returns.

pub mod acl;
pub mod command;
pub mod config;
pub mod connection;
pub mod filter;
pub mod frames;
pub mod outbound;
pub mod outbox;
pub mod packet;
pub mod pump;
pub mod selection;
pub mod server;
pub mod service;
pub mod session_ops;

use hotswitch_plugin_api::{declare_module, ModuleContext, Status};

declare_module! {
    name: "mod_event_socket",
    description: "Event socket: FreeSWITCH's inbound and outbound protocol",
    load: load,
    unload: Some(unload),
    runtime: Some(runtime),
}

fn load(m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    service::prepare(m)?;
    m.add_application(
        "socket",
        "Connect the call to an event socket server (outbound mode)",
        "<ip>[:<port>] [async] [full]",
        0,
        outbound::socket_app,
    )
    .map_err(|e| format!("socket application: {e}"))?;
    Ok(())
}

fn runtime(m: &ModuleContext) -> Status {
    service::run(m)
}

fn unload(_m: &ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    service::stop();
    Ok(())
}

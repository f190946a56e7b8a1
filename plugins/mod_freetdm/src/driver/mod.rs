//! The driver interface: how a span reaches its hardware. A driver opens
//! the span's channels, carries 20 ms audio frames and line signalling
//! per channel (off-hook, on-hook, ringing) and D-channel frames, and
//! closes. Events and commands use the [`wire`](crate::wire) message
//! type, whichever driver carries them.
//!
//! - [`virtual_span`]: channels over a Unix datagram socket, for the line
//!   simulator (and every test).
//! - [`dahdi`]: Linux DAHDI devices. Built everywhere, usable only where
//!   the DAHDI kernel driver and a card exist; it cannot be tested here.

pub mod dahdi;
pub mod virtual_span;

use crate::config::{DriverKind, SpanConfig};
use crate::wire::Packet;
use std::io;
use std::time::Duration;

/// A span's hardware.
pub trait Driver: Send + Sync {
    /// Sends an audio frame, a signalling command or a D-channel frame.
    fn send(&self, p: &Packet) -> io::Result<()>;
    /// The next events and frames from the line (what one read brought),
    /// waiting up to `timeout`; empty when nothing came.
    fn recv(&self, timeout: Duration) -> io::Result<Vec<Packet>>;
    /// Releases the hardware (the span is going away).
    fn close(&self);
    /// One line for `ftdm dump`.
    fn describe(&self) -> String;
}

/// Opens the driver a span is configured with.
pub fn open(cfg: &SpanConfig) -> io::Result<Box<dyn Driver>> {
    Ok(match cfg.driver {
        DriverKind::Virtual => Box::new(virtual_span::VirtualSpan::open(&cfg.socket_dir)?),
        DriverKind::Dahdi => Box::new(dahdi::DahdiSpan::open(cfg)?),
    })
}

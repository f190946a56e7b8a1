//! The one shape of every protocol core in hotswitch: sans-IO, as str0m and
//! quinn-proto.
//!
//! A protocol core — SIP transactions and dialogs, the verto session, the
//! event-socket framer, the GSM AT driver, the TDM signalling — does no I/O
//! and reads no clock. Its *driver* (a thread with a socket, a serial port,
//! a D-channel) feeds it and carries out what it asks:
//!
//! - inputs are `handle_*(…, now)` methods: bytes or a parsed message that
//!   arrived, a command from the switch, each with the time it happened
//!   (the driver reads the clock, once per wake-up);
//! - [`Protocol::handle_timeout`] is called when [`Protocol::poll_timeout`]'s
//!   instant has come;
//! - outputs are pulled: [`Protocol::poll_transmit`] until `None` (what to
//!   write to the wire), [`Protocol::poll_event`] until `None` (what the
//!   switch must learn), then [`Protocol::poll_timeout`] for when to wake.
//!
//! So a core is tested by handing it inputs and instants and reading what
//! it asks for, with no sockets, no sleeps and no threads, and a fuzz
//! target drives it the same way.
//!
//! ```
//! use hotswitch_plugin_api::sansio::Protocol;
//! use std::time::{Duration, Instant};
//!
//! /// Answers every line with "+OK" and says "idle" after a second of quiet.
//! #[derive(Default)]
//! struct Echo { out: Vec<String>, events: Vec<&'static str>, quiet_from: Option<Instant> }
//!
//! impl Echo {
//!     fn handle_line(&mut self, line: &str, now: Instant) {
//!         self.out.push(format!("+OK {line}"));
//!         self.quiet_from = Some(now);
//!     }
//! }
//!
//! impl Protocol for Echo {
//!     type Transmit = String;
//!     type Event = &'static str;
//!     fn handle_timeout(&mut self, now: Instant) {
//!         if self.poll_timeout().is_some_and(|t| t <= now) {
//!             self.quiet_from = None;
//!             self.events.push("idle");
//!         }
//!     }
//!     fn poll_transmit(&mut self) -> Option<String> { self.out.pop() }
//!     fn poll_event(&mut self) -> Option<&'static str> { self.events.pop() }
//!     fn poll_timeout(&self) -> Option<Instant> {
//!         self.quiet_from.map(|t| t + Duration::from_secs(1))
//!     }
//! }
//!
//! let t0 = Instant::now();
//! let mut e = Echo::default();
//! e.handle_line("hello", t0);
//! assert_eq!(e.poll_transmit().as_deref(), Some("+OK hello"));
//! e.handle_timeout(e.poll_timeout().unwrap());
//! assert_eq!(e.poll_event(), Some("idle"));
//! assert_eq!(e.poll_timeout(), None);
//! ```

use std::time::Instant;

/// The outputs and the clock of a sans-IO protocol core (see the
/// [module documentation](self)). Inputs are the core's own
/// `handle_*(…, now)` methods, since each protocol has its own.
pub trait Protocol {
    /// What the core asks its driver to write (a datagram with its
    /// destination, a line, a frame). [`std::convert::Infallible`] for a
    /// core that never writes.
    type Transmit;
    /// What the core tells the switch happened.
    type Event;

    /// The instant [`poll_timeout`](Protocol::poll_timeout) named has come
    /// (or passed: `now` is the driver's clock, read once per wake-up).
    fn handle_timeout(&mut self, now: Instant);

    /// The next thing to write, `None` when there is nothing more.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Self::Transmit>;

    /// The next thing that happened, `None` when there is nothing more.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When the core next needs [`handle_timeout`](Protocol::handle_timeout),
    /// `None` when nothing is timed.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
}

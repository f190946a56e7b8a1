//! # hotswitch-config
//!
//! hotswitch's configuration, read the way FreeSWITCH reads it and nothing
//! more: [`preprocess`] turns `conf/freeswitch.xml` and everything it
//! includes into one text, remembering which file and line each of its
//! lines came from; [`xml`] parses that text into an element tree whose
//! errors name that file and line.
//!
//! Architecture invariant: pure. No clock, no thread, no lock, no async
//! runtime; the only I/O is reading the files it is pointed at (`.ci/pure-crates`
//! checks the first three). It knows nothing of sessions, modules or the
//! dialplan's rules: the core and the dialplan crate build on it.

pub mod preprocess;
pub mod xml;

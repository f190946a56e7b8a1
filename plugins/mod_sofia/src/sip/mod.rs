//! The sans-IO SIP core: messages, headers, digest auth and transactions.
//! No sockets and no clocks here; the module's shell feeds bytes and time.

pub mod digest;
#[cfg(any(test, fuzzing))]
pub mod generate;
pub mod headers;
pub mod message;
pub mod text;
pub mod transaction;
pub mod wire;

#[cfg(test)]
mod grammar_tests;

//! Agora's native API as Rust types, and (feature `http`) a typed client for it.
//!
//! The request and response types here are the ones the server serialises, so a client
//! built on them cannot drift from the server. The CLI, the agent runner, the benchmarks and
//! the tests all talk to Agora through this crate.

pub mod types;

#[cfg(feature = "http")]
mod client;
#[cfg(feature = "http")]
pub use client::{Client, ClientError, Reply};

//! Benchmarks for moco: criterion micro-benches live in `benches/`; this library is the load
//! generator behind `cargo xtask bench`, run as the `moco-load` binary.
//!
//! The generator is its own minimal MQTT v3.1.1 client over raw TCP ([`mqtt`], [`client`]):
//! PUBLISH packets are pre-encoded and only their packet id (and, for latency, a timestamp) is
//! patched; QoS 1/2 publishers pipeline a window of outstanding messages; writes are batched.
//! Each [`scenario`] is bounded in message count and time and reports what it got as one JSON
//! line, together with the broker's CPU time and RSS read from `/proc` ([`procfs`]).

pub mod client;
pub mod mqtt;
pub mod procfs;
pub mod scenario;

//! Benchmarks for moco: criterion micro-benches live in `benches/`, the load generator used by
//! `cargo xtask bench` will live here.

//! Placeholder until the crate's benches are written.
fn main() {}

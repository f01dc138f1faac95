//! The `moco` MQTT broker binary.

use clap::Parser;

/// moco, an MQTT v5 / v3.1.1 / v3.0 broker.
#[derive(Debug, Parser)]
#[command(name = "moco", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "moco {}: the broker engine is not built yet; only the codec and topic crates exist.",
        env!("CARGO_PKG_VERSION")
    );
}

//! The `moco` MQTT broker binary.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use moco_engine::{AllowAll, Server};
use tracing::{info, warn};

/// moco, an MQTT v5 / v3.1.1 / v3.0 broker.
#[derive(Debug, Parser)]
#[command(name = "moco", version, about)]
struct Cli {
    /// Address of the MQTT TCP listener. With no configuration, moco listens on loopback only
    /// and allows anonymous clients.
    #[arg(long, default_value = "127.0.0.1:1883")]
    tcp: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if !cli.tcp.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {} without a configuration: anonymous access is only \
             allowed on loopback",
            cli.tcp
        );
    }
    let mut server = Server::builder().hook(AllowAll).build();
    let listener = tokio::net::TcpListener::bind(cli.tcp)
        .await
        .with_context(|| format!("cannot listen on {}", cli.tcp))?;
    let addr = server.add_tcp_listener("tcp", listener)?;
    server.serve();
    info!(
        version = env!("CARGO_PKG_VERSION"),
        %addr,
        "moco serving MQTT on loopback only; anonymous clients allowed (no config given)"
    );
    tokio::signal::ctrl_c().await.ok();
    warn!("shutting down");
    server.shutdown().await;
    Ok(())
}

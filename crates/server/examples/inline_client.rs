//! The inline client: the embedding program publishes and subscribes without a network
//! connection (and without ACL checks, as mochi's inline client). Two callbacks share one
//! filter and are told apart by their ids.
//!
//! `cargo run -p moco --example inline_client` serves until Ctrl-C and prints what arrives on
//! `sensors/#`; `--demo` checks both directions and exits.

mod support;

use moco_engine::codec::QoS;
use moco_engine::{AllowAll, Options, Server};
use moco_transport::TcpListener;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut server = Server::builder()
        .options(Options {
            inline_client: true,
            ..Default::default()
        })
        .hook(AllowAll)
        .build();
    let listener = TcpListener::bind(support::listen_addr()).await?;
    let addr = listener.local_addr()?;
    server.add_listener("tcp", listener);
    server.serve();

    // Two callbacks on one filter, ids 1 and 2: each message reaches both, each with its own
    // subscription identifier.
    let (tx, mut rx) = mpsc::unbounded_channel();
    for id in [1, 2] {
        let tx = tx.clone();
        server.subscribe("sensors/#", id, move |p| {
            println!("callback {id}: {} = {:?}", p.topic, p.payload);
            let _ = tx.send((id, p.properties.subscription_identifiers.clone()));
        })?;
    }

    if support::demo() {
        let mut device = support::connect(addr, "device-7", None).await?;
        device.subscribe("commands/device-7").await?;
        device.publish("sensors/device-7/temp", b"21.5").await?;
        let mut got = Vec::new();
        for _ in 0..2 {
            let v = tokio::time::timeout(support::WAIT, rx.recv()).await?;
            got.push(v.ok_or_else(|| anyhow::anyhow!("callbacks gone"))?);
        }
        got.sort();
        support::check(
            got == [(1, vec![1]), (2, vec![2])],
            "both callbacks got the message, each with its id",
        )?;
        // Unsubscribe callback 1: only 2 remains.
        support::check(server.unsubscribe("sensors/#", 1)?, "callback 1 removed")?;
        device.publish("sensors/device-7/temp", b"22.0").await?;
        let v = tokio::time::timeout(support::WAIT, rx.recv()).await?;
        support::check(v.map(|x| x.0) == Some(2), "only callback 2 remains")?;
        // The program publishes to the device.
        let n = server.publish("commands/device-7", "reboot", false, QoS::AtLeastOnce)?;
        support::check(n == 1, "one subscriber for the command")?;
        let (topic, payload) = device.next().await?;
        support::check(
            topic == "commands/device-7" && payload == b"reboot",
            "the device got the inline publish",
        )?;
        println!("demo ok");
    } else {
        support::until_ctrl_c(addr).await?;
    }
    server.shutdown().await;
    Ok(())
}

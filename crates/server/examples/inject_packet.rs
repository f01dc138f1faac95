//! Packet injection: the program processes a packet as though a connected client had sent
//! it (mochi's `InjectPacket`), with that client's hooks, ACL and acknowledgements.
//!
//! Here a supervisor publishes a status on behalf of `device-1` (no-local and ACL apply as
//! for the device itself). `cargo run -p moco --example inject_packet` serves until Ctrl-C;
//! `--demo` checks it and exits.

mod support;

use moco_engine::codec::{Bytes, Packet, Publish, QoS};
use moco_engine::{AllowAll, Server};
use moco_transport::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut server = Server::builder().hook(AllowAll).build();
    let listener = TcpListener::bind(support::listen_addr()).await?;
    let addr = listener.local_addr()?;
    server.add_listener("tcp", listener);
    server.serve();

    if support::demo() {
        let _device = support::connect(addr, "device-1", None).await?;
        let mut monitor = support::connect(addr, "monitor", None).await?;
        monitor.subscribe("devices/+/status").await?;
        let status = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "devices/device-1/status".into(),
            packet_id: None,
            payload: Bytes::from_static(b"maintenance"),
            properties: Default::default(),
        };
        let open = server.inject_packet("device-1", Packet::Publish(status))?;
        support::check(open, "device-1 is still connected")?;
        let (topic, payload) = monitor.next().await?;
        support::check(
            topic == "devices/device-1/status" && payload == b"maintenance",
            "the injected PUBLISH was routed as device-1's",
        )?;
        support::check(
            server.inject_packet("nobody", Packet::PingReq).is_err(),
            "injecting for an unknown client fails",
        )?;
        println!("demo ok");
    } else {
        support::until_ctrl_c(addr).await?;
    }
    server.shutdown().await;
    Ok(())
}

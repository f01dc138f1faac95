//! The smallest embedded broker: TCP on 127.0.0.1:1883, every client allowed.
//!
//! `cargo run -p moco --example minimal` serves until Ctrl-C; with `--demo` it checks itself
//! (a client publishes to its own subscription) on a free port and exits.

mod support;

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
        let mut c = support::connect(addr, "minimal-demo", None).await?;
        c.subscribe("hello/#").await?;
        c.publish("hello/world", b"hi").await?;
        let (topic, payload) = c.next().await?;
        support::check(topic == "hello/world" && payload == b"hi", "round trip")?;
        println!("demo ok");
    } else {
        support::until_ctrl_c(addr).await?;
    }
    server.shutdown().await;
    Ok(())
}

//! A hook that rewrites payloads: every message published under a configured prefix is
//! upper-cased before it is retained and routed (`OnPublish` may change the packet; the
//! next hook and the subscribers get the changed one). Messages whose payload is `forbidden`
//! are rejected with a reason code instead.
//!
//! `cargo run -p moco --example rewrite_payload` serves until Ctrl-C; `--demo` checks it and
//! exits.

mod support;

use moco_engine::codec::{Bytes, Publish, ReasonCode};
use moco_engine::hooks::{ClientInfo, Event, Hook};
use moco_engine::{AllowAll, Server};
use moco_transport::TcpListener;

/// The hook's typed options.
#[derive(Debug, Clone)]
struct ShoutOptions {
    /// Topics starting with this are upper-cased.
    prefix: String,
}

struct Shout(ShoutOptions);

impl Hook for Shout {
    fn id(&self) -> &str {
        "shout"
    }

    fn provides(&self, event: Event) -> bool {
        event == Event::OnPublish
    }

    fn on_publish(&self, _client: &ClientInfo, publish: &mut Publish) -> Result<(), ReasonCode> {
        if !publish.topic.starts_with(&self.0.prefix) {
            return Ok(());
        }
        if &publish.payload[..] == b"forbidden" {
            return Err(ReasonCode::PayloadFormatInvalid);
        }
        publish.payload = Bytes::from(publish.payload.to_ascii_uppercase());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut server = Server::builder()
        .hook(AllowAll)
        .hook(Shout(ShoutOptions {
            prefix: "shout/".to_owned(),
        }))
        .build();
    let listener = TcpListener::bind(support::listen_addr()).await?;
    let addr = listener.local_addr()?;
    server.add_listener("tcp", listener);
    server.serve();

    if support::demo() {
        let mut c = support::connect(addr, "listener", None).await?;
        c.subscribe("#").await?;
        c.publish("shout/hello", b"hello").await?;
        let (topic, payload) = c.next().await?;
        support::check(
            topic == "shout/hello" && payload == b"HELLO",
            "the payload was rewritten",
        )?;
        c.publish("shout/x", b"forbidden").await?;
        c.publish("quiet/hello", b"hello").await?;
        let (topic, payload) = c.next().await?;
        support::check(
            topic == "quiet/hello" && payload == b"hello",
            "other topics unchanged, the rejected message never routed",
        )?;
        println!("demo ok");
    } else {
        support::until_ctrl_c(addr).await?;
    }
    server.shutdown().await;
    Ok(())
}

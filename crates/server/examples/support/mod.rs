//! Shared by the examples: the `--demo` switch and a small rumqttc client for the self-check
//! each example runs in demo mode (bind a free loopback port, check, exit 0).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Bound on every wait of a demo.
pub const WAIT: Duration = Duration::from_secs(10);

/// True when the example was started with `--demo` (or `MOCO_EXAMPLE_DEMO=1`): it then
/// checks itself on a free port and exits instead of serving until Ctrl-C.
pub fn demo() -> bool {
    std::env::args().any(|a| a == "--demo")
        || std::env::var("MOCO_EXAMPLE_DEMO").is_ok_and(|v| v == "1")
}

/// The address to listen on: a free loopback port in demo mode, else 127.0.0.1:1883.
pub fn listen_addr() -> &'static str {
    if demo() {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:1883"
    }
}

/// Serves until Ctrl-C (outside demo mode).
pub async fn until_ctrl_c(addr: SocketAddr) -> anyhow::Result<()> {
    println!("serving on {addr}; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// A connected MQTT 3.1.1 client whose incoming PUBLISHes arrive on `messages`.
pub struct Client {
    pub client: AsyncClient,
    pub messages: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    subacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects `id` (with optional user name and password); returns the client once its
/// CONNACK arrived, or the connection error (e.g. a refusal).
pub async fn connect(
    addr: SocketAddr,
    id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Client, ConnectionError> {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = credentials {
        o.set_credentials(u, p);
    }
    let (client, mut el) = AsyncClient::new(o, 16);
    // Wait for the CONNACK (or the refusal) before handing the client out.
    loop {
        match tokio::time::timeout(WAIT, el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ConnectionError::NetworkTimeout),
        }
    }
    let (tx, messages) = mpsc::unbounded_channel();
    let (ack_tx, subacks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = ack_tx.send(());
                }
                _ => {}
            }
        }
    });
    Ok(Client {
        client,
        messages,
        subacks,
        task,
    })
}

impl Client {
    /// Subscribes and waits for the SUBACK (the subscription is then in place).
    pub async fn subscribe(&mut self, filter: &str) -> anyhow::Result<()> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        tokio::time::timeout(WAIT, self.subacks.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no SUBACK within {WAIT:?}"))?
            .ok_or_else(|| anyhow::anyhow!("connection closed"))
    }

    /// Publishes at QoS 1.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await?;
        Ok(())
    }

    /// The next message, within [`WAIT`].
    pub async fn next(&mut self) -> anyhow::Result<(String, Vec<u8>)> {
        tokio::time::timeout(WAIT, self.messages.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no message within {WAIT:?}"))?
            .ok_or_else(|| anyhow::anyhow!("connection closed"))
    }
}

/// Fails with `what` unless `cond`.
pub fn check(cond: bool, what: &str) -> anyhow::Result<()> {
    if cond {
        println!("ok: {what}");
        Ok(())
    } else {
        anyhow::bail!("failed: {what}")
    }
}

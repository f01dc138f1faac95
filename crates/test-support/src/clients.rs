//! rumqttc clients (v3.1.1 and v5) whose event loops run in tasks.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5 as p5;

use crate::WAIT;

/// v3.1.1 client options: client `id`, the broker at `addr`, keep-alive 30 s.
pub fn v4_opts(id: &str, addr: SocketAddr) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// v5 client options: client `id`, the broker at `addr`, keep-alive 30 s.
pub fn v5_opts(id: &str, addr: SocketAddr) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// The first packet from `rx` that `pick` maps to `Some`, skipping the others;
/// each wait is bounded by [`WAIT`], and a timeout or the end of the event loop panics with
/// `what` and how the wait ended.
async fn next_of<P: std::fmt::Debug, T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<P>,
    what: &str,
    pick: impl Fn(P) -> Option<T>,
) -> T {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(p)) => {
                if let Some(t) = pick(p) {
                    return t;
                }
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// A v3.1.1 client whose event loop runs in a task; incoming packets arrive on the channel.
pub struct V4 {
    /// The client that sends.
    pub client: rumqttc::AsyncClient,
    /// Every incoming packet, in order.
    pub rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    /// The event loop: returns the error that ended it, `None` once `rx` is dropped.
    pub task: tokio::task::JoinHandle<Option<rumqttc::ConnectionError>>,
}

/// The event loop's task: forwards incoming packets to `tx` until an error or `tx` is closed.
fn forward4(
    mut el: rumqttc::EventLoop,
    tx: tokio::sync::mpsc::UnboundedSender<rumqttc::Packet>,
) -> tokio::task::JoinHandle<Option<rumqttc::ConnectionError>> {
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    })
}

/// Connects a v3.1.1 client: starts its event loop, then asserts the first packet on the
/// channel, within [`WAIT`], is a CONNACK (panics if the connection fails).
pub async fn v4(opts: rumqttc::MqttOptions) -> V4 {
    let (client, el) = rumqttc::AsyncClient::new(opts, 100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = forward4(el, tx);
    // Wait for the CONNACK.
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("connack");
    assert!(
        matches!(first, Some(rumqttc::Packet::ConnAck(_))),
        "{first:?}"
    );
    V4 { client, rx, task }
}

/// Connects a v3.1.1 client: polls the event loop itself until the CONNACK (within
/// [`WAIT`]), then runs it in a task. `Ok` after a CONNACK accepted, `Err` with the connection
/// error (e.g. refused) otherwise.
pub async fn try_v4(opts: rumqttc::MqttOptions) -> Result<V4, rumqttc::ConnectionError> {
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("CONNACK in time")?;
    assert!(
        matches!(first, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))),
        "{first:?}"
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = forward4(el, tx);
    Ok(V4 { client, rx, task })
}

impl V4 {
    /// Next incoming PUBLISH (skipping acks), within [`WAIT`].
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        next_of(&mut self.rx, "no publish", |p| match p {
            rumqttc::Packet::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// Next incoming SUBACK (skipping other packets), within [`WAIT`].
    pub async fn next_suback(&mut self) -> rumqttc::SubAck {
        next_of(&mut self.rx, "no SUBACK", |p| match p {
            rumqttc::Packet::SubAck(a) => Some(a),
            _ => None,
        })
        .await
    }

    /// Next packet matching `f`, within [`WAIT`].
    pub async fn next_where(&mut self, f: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        next_of(&mut self.rx, "no matching packet", |p| f(&p).then_some(p)).await
    }

    /// Subscribes to `topic` at QoS 1, publishes `payload` to it and expects it back.
    pub async fn round_trip(&mut self, topic: &str, payload: &str) {
        self.client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let ack = self.next_suback().await;
        assert_eq!(
            ack.return_codes,
            vec![rumqttc::SubscribeReasonCode::Success(
                rumqttc::QoS::AtLeastOnce
            )]
        );
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_owned())
            .await
            .unwrap();
        let p = self.next_publish().await;
        assert_eq!(p.topic, topic);
        assert_eq!(&p.payload[..], payload.as_bytes());
    }
}

/// A v5 client whose event loop runs in a task; incoming packets arrive on the channel.
pub struct V5 {
    /// The client that sends.
    pub client: rumqttc::v5::AsyncClient,
    /// Every incoming packet after the CONNACK, in order.
    pub rx: tokio::sync::mpsc::UnboundedReceiver<p5::Packet>,
    /// The event loop: returns the error that ended it, `None` once `rx` is dropped.
    pub task: tokio::task::JoinHandle<Option<rumqttc::v5::ConnectionError>>,
    /// The CONNACK.
    pub connack: p5::ConnAck,
}

/// Connects a v5 client: starts its event loop, then expects the first packet on the
/// channel, within [`WAIT`], to be a CONNACK (panics if the connection fails).
pub async fn v5(opts: rumqttc::v5::MqttOptions) -> V5 {
    let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    });
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("connack");
    let connack = match first {
        Some(p5::Packet::ConnAck(c)) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    V5 {
        client,
        rx,
        task,
        connack,
    }
}

impl V5 {
    /// Next incoming PUBLISH, within [`WAIT`].
    pub async fn next_publish(&mut self) -> p5::Publish {
        next_of(&mut self.rx, "no publish", |p| match p {
            p5::Packet::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// Next packet matching `f`, within [`WAIT`].
    pub async fn next_where(&mut self, f: impl Fn(&p5::Packet) -> bool) -> p5::Packet {
        next_of(&mut self.rx, "no matching packet", |p| f(&p).then_some(p)).await
    }
}

/// A v5 client whose event loop runs in a task that drops what it receives; the task returns
/// the error that ended it.
pub struct V5Bare {
    /// The client that sends.
    pub client: rumqttc::v5::AsyncClient,
    /// The event loop: returns the error that ended it (always `Some`).
    pub task: tokio::task::JoinHandle<Option<rumqttc::v5::ConnectionError>>,
}

/// Connects a v5 client: polls the event loop itself until the CONNACK (within [`WAIT`],
/// panicking if the connection fails), then runs it in a task that keeps no packet.
pub async fn v5_bare(opts: rumqttc::v5::MqttOptions) -> V5Bare {
    let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("CONNACK in time")
        .expect("connected");
    assert!(
        matches!(first, rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(_))),
        "{first:?}"
    );
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = el.poll().await {
                return Some(e);
            }
        }
    });
    V5Bare { client, task }
}

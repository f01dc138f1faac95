//! The session sink in virtual time: each change a persistence layer must record is told,
//! in order, through the same code a connection runs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moco_codec::{
    Connect, Disconnect, Packet, ProtocolVersion, PubAck, PubRel, Publish, QoS, ReasonCode,
    Subscribe, SubscriptionOptions,
};
use parking_lot::Mutex;

use super::{SessionEvent, SessionSink};
use crate::broker::Seams;
use crate::options::Options;
use crate::sim::Sim;

/// Keeps each event as one line of text.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

impl SessionSink for Lines {
    fn record(&self, event: SessionEvent<'_>) {
        use SessionEvent as E;
        let line = match event {
            E::Opened {
                client,
                expiry_interval,
                resumed,
                will,
            } => format!(
                "opened {} expiry={expiry_interval} resumed={resumed} will={}",
                client.id,
                will.map_or("-", |w| &*w.topic)
            ),
            E::Detached {
                client_id,
                expiry_interval,
                ..
            } => format!("detached {client_id} expiry={expiry_interval}"),
            E::Ended { client_id } => format!("ended {client_id}"),
            E::Subscribed {
                client_id,
                filter,
                options,
            } => format!("subscribed {client_id} {filter} qos={}", options.qos),
            E::Unsubscribed { client_id, filter } => format!("unsubscribed {client_id} {filter}"),
            E::Queued {
                client_id,
                delivery,
            } => format!(
                "queued {client_id} {} qos={}",
                delivery.msg.topic, delivery.qos as u8
            ),
            E::Dequeued { client_id, message } => format!("dequeued {client_id} {}", message.topic),
            E::Dropped { client_id, message } => format!("dropped {client_id} {}", message.topic),
            E::InFlight {
                client_id,
                packet_id,
                delivery,
            } => format!("inflight {client_id} {packet_id} {}", delivery.msg.topic),
            E::Completed {
                client_id,
                packet_id,
            } => format!("completed {client_id} {packet_id}"),
            E::Abandoned {
                client_id,
                packet_id,
            } => format!("abandoned {client_id} {packet_id}"),
            E::Qos2Received {
                client_id,
                packet_id,
            } => format!("qos2-received {client_id} {packet_id}"),
            E::Qos2Released {
                client_id,
                packet_id,
            } => format!("qos2-released {client_id} {packet_id}"),
            E::RetainedSet { message } => format!("retained {}", message.topic),
            E::RetainedCleared { topic } => format!("retained-cleared {topic}"),
        };
        self.0.lock().push(line);
    }
}

fn connect(id: &str, clean: bool, expiry: u32) -> Connect {
    let mut c = Connect::new(ProtocolVersion::V5, id);
    c.clean_start = clean;
    c.keep_alive = 0;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

fn publish(
    topic: &str,
    qos: QoS,
    packet_id: Option<u16>,
    retain: bool,
    payload: &'static [u8],
) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: Default::default(),
    }
}

fn sim_with(sink: &Arc<Lines>) -> Sim {
    Sim::with_seams(
        Options::default(),
        Seams {
            sink: Some(sink.clone()),
            ..Seams::default()
        },
    )
}

#[test]
fn a_lasting_session_is_recorded_change_by_change() {
    let lines = Arc::new(Lines::default());
    let mut sim = sim_with(&lines);
    let dev = sim.connect(&connect("dev", true, 60)).unwrap();
    sim.recv(&dev);
    sim.send(
        &dev,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("t/#".into(), SubscriptionOptions::new(QoS::AtLeastOnce))],
            properties: Default::default(),
        }),
    );
    sim.recv(&dev);
    assert_eq!(
        lines.take(),
        [
            "opened dev expiry=60 resumed=false will=-",
            "subscribed dev t/# qos=1"
        ]
    );

    // Away: a message for it is queued and recorded; retained ones are recorded as such.
    sim.drop_connection(&dev);
    let publisher = sim.connect(&connect("pub", true, 0)).unwrap();
    sim.recv(&publisher);
    sim.send(
        &publisher,
        Packet::Publish(publish("t/1", QoS::AtLeastOnce, Some(7), false, b"m")),
    );
    sim.send(
        &publisher,
        Packet::Publish(publish("r/1", QoS::AtMostOnce, None, true, b"r")),
    );
    sim.send(
        &publisher,
        Packet::Publish(publish("r/1", QoS::AtMostOnce, None, true, b"")),
    );
    assert_eq!(
        lines.take(),
        [
            "detached dev expiry=60",
            "opened pub expiry=0 resumed=false will=-",
            "queued dev t/1 qos=1",
            "retained r/1",
            "retained-cleared r/1",
        ]
    );

    // Back: the queued message leaves the queue, goes in flight, and is acknowledged.
    let dev = sim.connect(&connect("dev", false, 60)).unwrap();
    let got = sim.recv(&dev);
    let pid = got
        .iter()
        .find_map(|p| match p {
            Packet::Publish(p) if &*p.topic == "t/1" => p.packet_id,
            _ => None,
        })
        .expect("the queued message is delivered");
    sim.send(&dev, Packet::PubAck(PubAck::new(pid)));
    assert_eq!(
        lines.take(),
        [
            "opened dev expiry=60 resumed=true will=-".to_string(),
            "dequeued dev t/1".to_string(),
            format!("inflight dev {pid} t/1"),
            format!("completed dev {pid}"),
        ]
    );

    // An inbound QoS 2 id is recorded until its PUBREL.
    sim.send(
        &dev,
        Packet::Publish(publish("x", QoS::ExactlyOnce, Some(9), false, b"q")),
    );
    sim.send(
        &dev,
        Packet::PubRel(PubRel {
            packet_id: 9,
            reason_code: ReasonCode::Success,
            properties: Default::default(),
        }),
    );
    // A clean DISCONNECT with expiry 0 ends the session; the publisher's ended with it too.
    let mut bye = Disconnect::default();
    bye.properties.session_expiry_interval = Some(0);
    sim.send(&dev, Packet::Disconnect(bye));
    sim.drop_connection(&dev);
    sim.drop_connection(&publisher);
    assert_eq!(
        lines.take(),
        [
            "qos2-received dev 9",
            "qos2-released dev 9",
            "ended dev",
            "ended pub"
        ]
    );

    // An offline session's expiry ends it; so does a retained message's.
    let gone = sim.connect(&connect("gone", true, 5)).unwrap();
    sim.drop_connection(&gone);
    let publisher = sim.connect(&connect("pub", true, 0)).unwrap();
    let mut p = publish("r/2", QoS::AtMostOnce, None, true, b"r");
    p.properties.message_expiry_interval = Some(3);
    sim.send(&publisher, Packet::Publish(p));
    lines.take();
    sim.advance(Duration::from_secs(3));
    assert_eq!(lines.take(), ["retained-cleared r/2"]);
    sim.advance(Duration::from_secs(2));
    assert_eq!(lines.take(), ["ended gone"]);
}

/// A session that ends with its connection costs the sink nothing on the message path.
#[test]
fn a_session_without_expiry_records_no_messages() {
    let lines = Arc::new(Lines::default());
    let mut sim = sim_with(&lines);
    let c = sim.connect(&connect("short", true, 0)).unwrap();
    sim.send(
        &c,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("t".into(), SubscriptionOptions::new(QoS::AtLeastOnce))],
            properties: Default::default(),
        }),
    );
    sim.send(
        &c,
        Packet::Publish(publish("t", QoS::AtLeastOnce, Some(1), false, b"m")),
    );
    let got = sim.recv(&c);
    assert!(
        got.iter().any(|p| matches!(p, Packet::Publish(_))),
        "{got:?}"
    );
    assert_eq!(
        lines.take(),
        [
            "opened short expiry=0 resumed=false will=-",
            "subscribed short t qos=1"
        ]
    );
}

/// A sink whose changes become durable when the test says so (or fail to).
#[derive(Default)]
struct Gate {
    recorded: std::sync::atomic::AtomicU64,
    durable: Arc<std::sync::atomic::AtomicU64>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    fn flush(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.durable.store(self.recorded.load(SeqCst), SeqCst);
    }
}

impl SessionSink for Gate {
    fn record(&self, _: SessionEvent<'_>) {
        self.recorded
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn syncs(&self) -> bool {
        true
    }
    fn durable(&self) -> Option<super::Durable> {
        use std::sync::atomic::Ordering::SeqCst;
        let target = self.recorded.load(SeqCst);
        if self.durable.load(SeqCst) >= target {
            return None;
        }
        let (durable, failing) = (self.durable.clone(), self.failing.clone());
        Some(Box::pin(std::future::poll_fn(move |_| {
            if failing.load(SeqCst) {
                std::task::Poll::Ready(false)
            } else if durable.load(SeqCst) >= target {
                std::task::Poll::Ready(true)
            } else {
                std::task::Poll::Pending
            }
        })))
    }
}

fn acks(got: &[Packet]) -> Vec<(u16, ReasonCode)> {
    got.iter()
        .filter_map(|p| match p {
            Packet::PubAck(a) => Some((a.packet_id, a.reason_code)),
            Packet::PubRec(r) => Some((r.packet_id, r.reason_code)),
            _ => None,
        })
        .collect()
}

/// `durability: sync`: an acknowledgement waits for what its message changed to be durable,
/// only when it changed something, and a store that fails is never acknowledged as stored.
#[test]
fn acknowledgements_wait_for_durability() {
    let gate = Arc::new(Gate::default());
    let mut sim = Sim::with_seams(
        Options::default(),
        Seams {
            sink: Some(gate.clone()),
            ..Seams::default()
        },
    );
    let dev = sim.connect(&connect("dev", true, 60)).unwrap();
    sim.send(
        &dev,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("t".into(), SubscriptionOptions::new(QoS::AtLeastOnce))],
            properties: Default::default(),
        }),
    );
    gate.flush();
    let publisher = sim.connect(&connect("pub", true, 0)).unwrap();
    sim.recv(&publisher);

    // Queued for a lasting session: held until the store says durable.
    sim.send(
        &publisher,
        Packet::Publish(publish("t", QoS::AtLeastOnce, Some(1), false, b"m")),
    );
    assert_eq!(acks(&sim.recv(&publisher)), []);
    gate.flush();
    sim.settle(&publisher);
    assert_eq!(acks(&sim.recv(&publisher)), [(1, ReasonCode::Success)]);

    // Nobody lasting gets it: nothing to store, acknowledged at once.
    sim.send(
        &publisher,
        Packet::Publish(publish("other", QoS::AtLeastOnce, Some(2), false, b"m")),
    );
    assert_eq!(
        acks(&sim.recv(&publisher)),
        [(2, ReasonCode::NoMatchingSubscribers)]
    );

    // The store fails: a v5 publisher hears 0x80, and the QoS 2 id is free again.
    gate.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    sim.send(
        &publisher,
        Packet::Publish(publish("t", QoS::ExactlyOnce, Some(3), false, b"m")),
    );
    assert_eq!(
        acks(&sim.recv(&publisher)),
        [(3, ReasonCode::UnspecifiedError)]
    );
    assert!(!publisher.0.state.lock().session.inbound_qos2.contains(&3));

    // ... and a v3 one, whose acknowledgements carry no code, is disconnected.
    let mut v3 = Connect::new(ProtocolVersion::V311, "v3");
    v3.keep_alive = 0;
    let old = sim.connect(&v3).unwrap();
    sim.recv(&old);
    sim.send(
        &old,
        Packet::Publish(publish("t", QoS::AtLeastOnce, Some(4), false, b"m")),
    );
    assert_eq!(acks(&sim.recv(&old)), []);
    assert!(!old.0.state.lock().is_connected());
}

//! `$SYS` topics, the inline client through `Server`, and the debug hook.

use std::sync::Arc;
use std::time::Duration;

use moco_codec::{Packet, ProtocolVersion, Publish, QoS};
use moco_engine::hooks::{ClientInfo, Event, Hook};
use moco_engine::{AllowAll, DebugHook, DebugOptions, Error, Options, Server};
use moco_test_support::*;
use parking_lot::Mutex;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// mochi's `$SYS` set.
const SYS: [&str; 20] = [
    "$SYS/broker/version",
    "$SYS/broker/time",
    "$SYS/broker/uptime",
    "$SYS/broker/started",
    "$SYS/broker/load/bytes/received",
    "$SYS/broker/load/bytes/sent",
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/disconnected",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/clients/total",
    "$SYS/broker/packets/received",
    "$SYS/broker/packets/sent",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/messages/dropped",
    "$SYS/broker/messages/inflight",
    "$SYS/broker/retained",
    "$SYS/broker/subscriptions",
    "$SYS/broker/system/memory",
    "$SYS/broker/system/threads",
];

async fn sys_values(r: &mut Raw) -> std::collections::HashMap<String, (String, bool)> {
    let mut got = std::collections::HashMap::new();
    while got.len() < SYS.len() {
        match r.recv().await {
            Some(Packet::Publish(p)) => {
                got.insert(
                    p.topic.to_string(),
                    (String::from_utf8_lossy(&p.payload).into_owned(), p.retain),
                );
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    got
}

#[tokio::test]
async fn sys_topics_are_mochis_set_retained_current_on_subscribe_and_resent() {
    let (server, addr) = start(Options {
        sys_topic_resend_interval: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut other = Raw::v5(addr, "other").await;
    other.send(Packet::PingReq).await;
    assert!(matches!(other.recv().await, Some(Packet::PingResp)));
    let mut s = Raw::v5(addr, "sys").await;
    s.sub(subscribe(1, "$SYS/#", 0)).await;
    // On subscribe: every topic, retained, with values as of the subscription.
    let v = sys_values(&mut s).await;
    let mut names: Vec<_> = v.keys().cloned().collect();
    names.sort();
    let mut want: Vec<_> = SYS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    assert!(v.values().all(|(_, retain)| *retain));
    let n = |t: &str| v[t].0.parse::<u64>().unwrap();
    assert_eq!(v["$SYS/broker/version"].0, env!("CARGO_PKG_VERSION"));
    assert_eq!(n("$SYS/broker/clients/connected"), 2);
    assert_eq!(n("$SYS/broker/clients/maximum"), 2);
    assert_eq!(n("$SYS/broker/clients/total"), 2);
    assert_eq!(n("$SYS/broker/clients/disconnected"), 0);
    // Refreshed just before this subscription was added.
    assert_eq!(n("$SYS/broker/subscriptions"), 0);
    assert_eq!(n("$SYS/broker/retained"), 20);
    // Two CONNECTs and the PINGREQ (the SUBSCRIBE is counted once processed).
    assert!(n("$SYS/broker/packets/received") >= 3);
    assert!(n("$SYS/broker/packets/sent") >= 3);
    assert!(n("$SYS/broker/load/bytes/received") > 0);
    assert!(n("$SYS/broker/time") >= n("$SYS/broker/started"));
    assert!(n("$SYS/broker/system/threads") >= 1);
    #[cfg(target_os = "linux")]
    assert!(n("$SYS/broker/system/memory") > 0);
    // Published again every interval (live: not retained).
    let again = sys_values(&mut s).await;
    assert!(again.values().all(|(_, retain)| !*retain));
    server.shutdown().await;
}

struct Seen(Arc<Mutex<Vec<String>>>);

impl Hook for Seen {
    fn id(&self) -> &str {
        "seen"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(
            e,
            Event::OnPublish | Event::OnPublished | Event::OnSubscribed | Event::OnUnsubscribed
        )
    }
    fn on_publish(&self, c: &ClientInfo, p: &mut Publish) -> Result<(), moco_codec::ReasonCode> {
        if &*p.payload == b"no" {
            return Err(moco_codec::ReasonCode::ImplementationSpecificError);
        }
        self.0.lock().push(format!("publish {} {}", c.id, p.topic));
        Ok(())
    }
    fn on_subscribed(
        &self,
        c: &ClientInfo,
        s: &moco_codec::Subscribe,
        _: &[moco_codec::ReasonCode],
    ) {
        self.0
            .lock()
            .push(format!("subscribed {} {}", c.id, s.filters[0].0));
    }
    fn on_unsubscribed(&self, c: &ClientInfo, u: &moco_codec::Unsubscribe) {
        self.0
            .lock()
            .push(format!("unsubscribed {} {}", c.id, u.filters[0]));
    }
}

#[tokio::test]
async fn server_inline_client_callbacks_by_id_bypass_acl_and_run_publish_hooks() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    // No ACL hook at all: a network client could not publish, the inline client can.
    let (server, _) = serve(
        Server::builder()
            .options(Options {
                inline_client: true,
                ..Default::default()
            })
            .hook(Seen(seen.clone()))
            .build(),
    )
    .await;
    let got = Arc::new(Mutex::new(Vec::new()));
    for id in [1u32, 2] {
        let got = got.clone();
        server
            .subscribe("in/#", id, move |p: &Publish| {
                got.lock().push((
                    id,
                    p.topic.to_string(),
                    p.properties.subscription_identifiers.clone(),
                ))
            })
            .unwrap();
    }
    assert_eq!(
        server.publish("in/a", "x", false, QoS::AtMostOnce).unwrap(),
        0
    );
    {
        let mut g = got.lock();
        g.sort();
        assert_eq!(
            *g,
            [
                (1, "in/a".to_owned(), vec![1]),
                (2, "in/a".to_owned(), vec![2])
            ]
        );
        g.clear();
    }
    assert!(server.unsubscribe("in/#", 1).unwrap());
    assert!(!server.unsubscribe("in/#", 1).unwrap());
    server.publish("in/b", "x", false, QoS::AtMostOnce).unwrap();
    assert_eq!(*got.lock(), [(2, "in/b".to_owned(), vec![2])]);
    // OnPublish may reject an inline publish too.
    assert!(matches!(
        server.publish("in/c", "no", false, QoS::AtMostOnce),
        Err(Error::Rejected(
            moco_codec::ReasonCode::ImplementationSpecificError
        ))
    ));
    assert_eq!(
        *seen.lock(),
        [
            "subscribed inline in/#",
            "subscribed inline in/#",
            "publish inline in/a",
            "unsubscribed inline in/#",
            "unsubscribed inline in/#",
            "publish inline in/b",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_inject_packet_acts_as_the_client() {
    let (server, addr) = start(Options::default()).await;
    let mut c = Raw::v5(addr, "inj").await;
    // An injected SUBSCRIBE: the SUBACK goes to the client, the subscription is its own.
    assert!(server
        .inject_packet("inj", Packet::Subscribe(subscribe(7, "inj/#", 0)))
        .unwrap());
    match c.recv().await {
        Some(Packet::SubAck(a)) => assert_eq!(a.packet_id, 7),
        other => panic!("{other:?}"),
    }
    assert!(server
        .inject_packet("inj", Packet::Publish(publish("inj/x", 0, None, b"self")))
        .unwrap());
    match c.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"self"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        server.inject_packet("ghost", Packet::PingReq),
        Err(Error::NoSuchClient)
    ));
    server.shutdown().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_hook_logs_the_packet_flow() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (server, addr) = serve(
        Server::builder()
            .hook(AllowAll)
            .hook(DebugHook::new(DebugOptions {
                show_packet_data: true,
                ..Default::default()
            }))
            .build(),
    )
    .await;
    let mut c = connect_packet("dbg", V5, 0, true);
    c.password = Some(bytes::Bytes::from_static(b"secret"));
    let (mut r, _) = Raw::connect(addr, c).await;
    r.sub(subscribe(1, "d", 0)).await;
    server.shutdown().await;
    let log = String::from_utf8(buf.0.lock().clone()).unwrap();
    for needle in [
        "read",
        "write",
        "ConnAck",
        "Subscribe",
        "SubAck",
        "subscribed",
        "********",
    ] {
        assert!(log.contains(needle), "no `{needle}` in:\n{log}");
    }
    assert!(!log.contains("secret"), "password logged:\n{log}");
}

/// `messages/received` counts every PUBLISH, also when a reader counts a read's worth of them
/// at once, and one injected by the embedding program.
#[tokio::test]
async fn messages_received_counts_each_publish_of_a_read() {
    let (server, addr) = start(Options::default()).await;
    let mut p = Raw::v5(addr, "counted").await;
    // Five QoS 0 PUBLISHes and a QoS 1 one in a single write: one read, one batch.
    let mut out = bytes::BytesMut::new();
    for i in 0..5u8 {
        let mut m = publish("c/t", 0, None, b"");
        m.payload = bytes::Bytes::from(vec![i]);
        Packet::Publish(m).encode(V5, &mut out).unwrap();
    }
    Packet::Publish(publish("c/t", 1, Some(1), b"last"))
        .encode(V5, &mut out)
        .unwrap();
    p.send_bytes(&out).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    let received = || {
        server
            .broker()
            .info
            .messages_received
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(received(), 6);
    server
        .inject_packet(
            "counted",
            Packet::Publish(publish("c/t", 0, None, b"injected")),
        )
        .unwrap();
    assert_eq!(received(), 7);
    server.shutdown().await;
}

//! The embedding API over real sockets: listing and looking up clients, disconnecting one
//! with a reason code, removing a client's subscription, and an injected client that has no
//! socket.

use moco_codec::{Packet, ProtocolVersion, PubAck, QoS, ReasonCode};
use moco_engine::{AllowAll, Error, Server};
use moco_test_support::{clients_connected, connect_packet, publish, subscribe, Raw};

const V3: ProtocolVersion = ProtocolVersion::V311;

/// A server with AllowAll on two listeners, `tcp-a` and `tcp-b`.
async fn two_listeners() -> (Server, std::net::SocketAddr, std::net::SocketAddr) {
    let mut server = Server::builder().hook(AllowAll).build();
    let mut addrs = Vec::new();
    for id in ["tcp-a", "tcp-b"] {
        let l = moco_transport::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        addrs.push(l.local_addr().unwrap());
        server.add_listener(id, l);
    }
    server.serve();
    (server, addrs[0], addrs[1])
}

#[tokio::test]
async fn clients_are_listed_by_listener_and_looked_up() {
    let (server, a, b) = two_listeners().await;
    let _a1 = Raw::v5(a, "a1").await;
    let (_b1, _) = Raw::connect(b, connect_packet("b1", V3, 0, true)).await;
    // A session restored from storage: known, not connected.
    server
        .broker()
        .restore_session(std::time::Instant::now(), "away", 60, &[], &[])
        .unwrap();

    let mut all: Vec<_> = server.clients().into_iter().map(|c| c.id).collect();
    all.sort();
    assert_eq!(all, ["a1", "away", "b1"]);
    let on_a: Vec<_> = server.clients_on_listener("tcp-a");
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a[0].id, "a1");

    let b1 = server.client("b1").unwrap();
    assert_eq!(&*b1.listener, "tcp-b");
    assert_eq!(b1.protocol, V3);
    assert!(b1.remote.starts_with("127.0.0.1:"), "{}", b1.remote);
    assert!(b1.connected && !b1.injected);
    assert!(!server.client("away").unwrap().connected);
    assert!(server.client("nobody").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_client_sends_the_reason_to_v5_and_closes_v3() {
    let (server, a, _) = two_listeners().await;
    let mut c5 = Raw::v5(a, "c5").await;
    let (mut c3, _) = Raw::connect(a, connect_packet("c3", V3, 0, true)).await;
    assert!(server
        .disconnect_client("c5", ReasonCode::AdministrativeAction)
        .unwrap());
    assert_eq!(
        c5.disconnect_reason().await,
        Some(ReasonCode::AdministrativeAction)
    );
    assert!(server
        .disconnect_client("c3", ReasonCode::AdministrativeAction)
        .unwrap());
    assert_eq!(c3.disconnect_reason().await, None, "v3 has no DISCONNECT");
    assert!(matches!(
        server.disconnect_client("nobody", ReasonCode::AdministrativeAction),
        Err(Error::NoSuchClient)
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_client_stops_its_deliveries() {
    let (server, a, _) = two_listeners().await;
    let mut s = Raw::v5(a, "s").await;
    s.sub(subscribe(1, "t/#", 1)).await;
    let mut p = Raw::v5(a, "p").await;
    let puback = async |p: &mut Raw, pid| {
        p.send_publish(publish("t/1", 1, Some(pid), b"x")).await;
        match p.recv().await {
            Some(Packet::PubAck(a)) => a.reason_code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(puback(&mut p, 1).await, ReasonCode::Success);
    assert!(server.unsubscribe_client("s", "t/#").unwrap());
    assert_eq!(puback(&mut p, 2).await, ReasonCode::NoMatchingSubscribers);
    assert!(!server.unsubscribe_client("s", "t/#").unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn an_injected_client_publishes_receives_and_disconnects() {
    let (server, a, _) = two_listeners().await;
    let mut sock = Raw::v5(a, "sock").await;
    sock.sub(subscribe(1, "out/#", 1)).await;

    let inj = server.add_injected_client("inj", "local").unwrap();
    assert!(inj.connected && inj.injected);
    assert_eq!(clients_connected(&server), 2);
    assert!(server
        .inject_packet("inj", Packet::Subscribe(subscribe(1, "in/#", 1)))
        .unwrap());
    // What it publishes reaches the socket client ...
    assert!(server
        .inject_packet(
            "inj",
            Packet::Publish(publish("out/1", 1, Some(7), b"from-inj"))
        )
        .unwrap());
    match sock.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"from-inj"),
        other => panic!("{other:?}"),
    }
    // ... and what the socket client publishes reaches it, with a packet id to acknowledge.
    sock.send_publish(publish("in/1", 1, Some(3), b"to-inj"))
        .await;
    loop {
        match sock.recv().await {
            Some(Packet::PubAck(a)) if a.packet_id == 3 => break,
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
    let out = server.take_injected_output("inj").unwrap();
    let kinds: Vec<_> = out.iter().map(|p| p.packet_type()).collect();
    assert!(
        matches!(
            &out[..],
            [Packet::ConnAck(_), Packet::SubAck(_), Packet::PubAck(a), Packet::Publish(p)]
                if a.packet_id == 7 && &p.payload[..] == b"to-inj" && p.qos == QoS::AtLeastOnce
        ),
        "{kinds:?}"
    );
    let Packet::Publish(p) = &out[3] else {
        unreachable!()
    };
    assert!(server
        .inject_packet("inj", Packet::PubAck(PubAck::new(p.packet_id.unwrap())))
        .unwrap());
    assert!(matches!(
        server.take_injected_output("sock"),
        Err(Error::NotInjected)
    ));

    // A DISCONNECT ends it as a connection's end would: its clean session is gone.
    let open = server
        .inject_packet("inj", Packet::Disconnect(Default::default()))
        .unwrap();
    assert!(!open);
    assert!(server.client("inj").is_none());
    assert_eq!(clients_connected(&server), 1);
    server.shutdown().await;
}

/// An injected client connects through the hooks like any other: a refusal is an error.
#[tokio::test]
async fn an_injected_client_is_judged_by_the_hooks() {
    struct OnlyProbe;
    impl moco_engine::Hook for OnlyProbe {
        fn id(&self) -> &str {
            "only-probe"
        }
        fn provides(&self, e: moco_engine::Event) -> bool {
            e == moco_engine::Event::OnConnectAuthenticate
        }
        fn on_connect_authenticate(
            &self,
            c: &moco_engine::ClientInfo,
            _: &moco_codec::Connect,
        ) -> bool {
            &*c.id == "probe" && &*c.listener == "local"
        }
    }
    let server = Server::builder().hook(OnlyProbe).build();
    assert!(matches!(
        server.add_injected_client("other", "local"),
        Err(Error::Refused(ReasonCode::BadUserNameOrPassword))
    ));
    let c = server.add_injected_client("probe", "local").unwrap();
    assert_eq!(c.id, "probe");
}

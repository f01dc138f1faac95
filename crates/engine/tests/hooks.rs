//! The security default and the hook stack over TCP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use moco_codec::{Connect, Packet, ProtocolVersion, ReasonCode};
use moco_engine::hooks::{Access, ClientInfo, DisconnectInfo, Event};
use moco_engine::{Capabilities, Compatibilities, Hook, Options, Server};
use moco_test_support::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn without_hooks_everyone_is_refused() {
    let (server, addr) = serve(Server::builder().build()).await;
    let (mut r, ack) = Raw::connect(addr, connect_packet("x", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
    assert!(r.recv().await.is_none());
    server.shutdown().await;
}

/// Lets in user "good" only; allows reading `pub/#`, writing `in/#`.
struct Policy {
    disconnects: Arc<AtomicUsize>,
}

impl Hook for Policy {
    fn id(&self) -> &str {
        "policy"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(
            e,
            Event::OnConnectAuthenticate | Event::OnAclCheck | Event::OnDisconnect
        )
    }
    fn on_connect_authenticate(&self, _: &ClientInfo, c: &Connect) -> bool {
        c.username.as_deref() == Some("good")
    }
    fn on_acl_check(&self, _: &ClientInfo, topic: &str, access: Access) -> bool {
        match access {
            Access::Read => topic.starts_with("pub/"),
            Access::Write => topic.starts_with("in/"),
        }
    }
    fn on_disconnect(&self, _: &ClientInfo, _: DisconnectInfo) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn hooks_authenticate_and_authorize() {
    let disconnects = Arc::new(AtomicUsize::new(0));
    let (server, addr) = serve(
        Server::builder()
            .hook(Policy {
                disconnects: disconnects.clone(),
            })
            .build(),
    )
    .await;
    let mut c = connect_packet("u", V5, 0, true);
    c.username = Some("bad".into());
    let (_r, ack) = Raw::connect(addr, c.clone()).await;
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);

    c.username = Some("good".into());
    let (mut r, ack) = Raw::connect(addr, c).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let mut s = subscribe(1, "pub/#", 1);
    s.filters.push(("secret/#".into(), s.filters[0].1));
    r.send(Packet::Subscribe(s)).await;
    match r.recv().await {
        Some(Packet::SubAck(a)) => assert_eq!(
            a.reason_codes,
            vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]
        ),
        other => panic!("{other:?}"),
    }
    r.send_publish(publish("out/x", 1, Some(2), b"x")).await;
    match r.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    r.send_publish(publish("in/x", 1, Some(3), b"x")).await;
    match r.recv().await {
        // Allowed, but nobody listens.
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NoMatchingSubscribers),
        other => panic!("{other:?}"),
    }
    drop(r);
    server.shutdown().await;
    assert!(disconnects.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn obscure_not_authorized_answers_unspecified() {
    let (server, addr) = serve(
        Server::builder()
            .options(Options {
                capabilities: Capabilities {
                    compatibilities: Compatibilities {
                        obscure_not_authorized: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            })
            .hook(Policy {
                disconnects: Arc::default(),
            })
            .build(),
    )
    .await;
    let mut c = connect_packet("u", V5, 0, true);
    c.username = Some("good".into());
    let (mut r, _) = Raw::connect(addr, c).await;
    r.send_publish(publish("out/x", 1, Some(2), b"x")).await;
    match r.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::UnspecifiedError),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn maximum_clients_is_enforced() {
    let (server, addr) = start_with(Capabilities {
        maximum_clients: 1,
        ..Default::default()
    })
    .await;
    let (_a, ack) = Raw::connect(addr, connect_packet("one", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let (_b, ack) = Raw::connect(addr, connect_packet("two", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
    server.shutdown().await;
}

/// A two-step challenge/response over AUTH packets.
struct Toy;

impl Hook for Toy {
    fn id(&self) -> &str {
        "toy-auth"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(e, Event::OnAuthPacket | Event::OnAclCheck)
    }
    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }
    fn on_auth_packet(
        &self,
        _: &ClientInfo,
        auth: &moco_codec::Auth,
    ) -> Result<moco_codec::Auth, ReasonCode> {
        let data = auth.properties.authentication_data.as_deref();
        match data {
            Some(b"hello") => {
                let mut a = moco_codec::Auth::new(ReasonCode::ContinueAuthentication);
                a.properties.authentication_data = Some(bytes::Bytes::from_static(b"challenge"));
                Ok(a)
            }
            Some(b"answer") => {
                let mut a = moco_codec::Auth::new(ReasonCode::Success);
                a.properties.authentication_data = Some(bytes::Bytes::from_static(b"welcome"));
                Ok(a)
            }
            _ => Err(ReasonCode::NotAuthorized),
        }
    }
}

fn auth_connect(id: &str) -> Connect {
    let mut c = connect_packet(id, V5, 0, true);
    c.properties.authentication_method = Some("toy".into());
    c.properties.authentication_data = Some(bytes::Bytes::from_static(b"hello"));
    c
}

fn auth(reason: ReasonCode, data: &'static [u8]) -> Packet {
    let mut a = moco_codec::Auth::new(reason);
    a.properties.authentication_method = Some("toy".into());
    a.properties.authentication_data = Some(bytes::Bytes::from_static(data));
    Packet::Auth(a)
}

#[tokio::test]
async fn enhanced_authentication_exchange_and_reauthentication() {
    let (server, addr) = serve(Server::builder().hook(Toy).build()).await;
    let mut r = Raw::open(addr, V5).await;
    r.send(Packet::from(auth_connect("toy1"))).await;
    match r.recv().await {
        Some(Packet::Auth(a)) => {
            assert_eq!(a.reason_code, ReasonCode::ContinueAuthentication);
            assert_eq!(a.properties.authentication_method.as_deref(), Some("toy"));
            assert_eq!(
                a.properties.authentication_data.as_deref(),
                Some(&b"challenge"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    r.send(auth(ReasonCode::ContinueAuthentication, b"answer"))
        .await;
    match r.recv().await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.reason_code, ReasonCode::Success);
            assert_eq!(a.properties.authentication_method.as_deref(), Some("toy"));
            assert_eq!(
                a.properties.authentication_data.as_deref(),
                Some(&b"welcome"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    // Re-authentication.
    r.send(auth(ReasonCode::ReAuthenticate, b"answer")).await;
    match r.recv().await {
        Some(Packet::Auth(a)) => assert_eq!(a.reason_code, ReasonCode::Success),
        other => panic!("{other:?}"),
    }
    // Failed re-authentication: DISCONNECT with the hook's code.
    r.send(auth(ReasonCode::ReAuthenticate, b"wrong")).await;
    assert_eq!(r.disconnect_reason().await, Some(ReasonCode::NotAuthorized));

    // A wrong answer during CONNECT: CONNACK with the hook's code.
    let mut r = Raw::open(addr, V5).await;
    r.send(Packet::from(auth_connect("toy2"))).await;
    assert!(matches!(r.recv().await, Some(Packet::Auth(_))));
    r.send(auth(ReasonCode::ContinueAuthentication, b"nope"))
        .await;
    match r.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn authentication_method_without_a_hook_is_refused_8c() {
    let (server, addr) = start(Options::default()).await;
    let (_r, ack) = Raw::connect(addr, auth_connect("nohook")).await;
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
    server.shutdown().await;
}

/// Records which events fired; allows everything; refuses PUBLISH to `forbidden` at read time
/// and removes subscriber `hidden` from every selection.
#[derive(Default)]
struct Recorder {
    seen: parking_lot::Mutex<Vec<&'static str>>,
}

impl Recorder {
    fn note(&self, e: &'static str) {
        self.seen.lock().push(e);
    }
    fn count(&self, e: &str) -> usize {
        self.seen.lock().iter().filter(|s| **s == e).count()
    }
}

struct RecorderHook(Arc<Recorder>);

impl Hook for RecorderHook {
    fn id(&self) -> &str {
        "recorder"
    }
    fn provides(&self, _: Event) -> bool {
        true
    }
    fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
        self.0.note("authenticate");
        true
    }
    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }
    fn on_session_established(&self, _: &ClientInfo, _: &Connect) {
        self.0.note("session_established");
    }
    fn on_packet_read(&self, _: &ClientInfo, p: &mut Packet) -> Result<(), ReasonCode> {
        self.0.note("packet_read");
        match p {
            Packet::Publish(p) if &*p.topic == "forbidden" => Err(ReasonCode::AdministrativeAction),
            _ => Ok(()),
        }
    }
    fn on_select_subscribers(&self, _: &str, subs: &mut Vec<moco_engine::Target>) {
        subs.retain(|t| &*t.client_id != "hidden");
    }
    fn on_subscribed(&self, _: &ClientInfo, _: &moco_codec::Subscribe, _: &[ReasonCode]) {
        self.0.note("subscribed");
    }
    fn on_published(&self, _: &ClientInfo, _: &moco_codec::Publish, _: usize) {
        self.0.note("published");
    }
    fn on_qos_publish(&self, _: &str, _: &moco_codec::Publish, _: u32) {
        self.0.note("qos_publish");
    }
    fn on_qos_complete(&self, _: &str, _: u16) {
        self.0.note("qos_complete");
    }
    fn on_retain_message(&self, _: &ClientInfo, _: &moco_codec::Publish) {
        self.0.note("retain_message");
    }
    fn on_retain_published(&self, _: &ClientInfo, _: &moco_codec::Publish) {
        self.0.note("retain_published");
    }
}

#[tokio::test]
async fn hook_events_fire() {
    let rec = Arc::new(Recorder::default());
    let (server, addr) = serve(Server::builder().hook(RecorderHook(rec.clone())).build()).await;
    let mut hidden = Raw::v5(addr, "hidden").await;
    hidden.sub(subscribe(1, "ev", 1)).await;
    let mut c = Raw::v5(addr, "rec").await;
    let mut m = publish("ev", 1, Some(1), b"r");
    m.retain = true;
    c.send_publish(m).await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(_))));
    c.sub(subscribe(2, "ev", 1)).await;
    let got = c.expect_publish().await;
    c.puback(&got).await;
    c.send(Packet::PingReq).await;
    assert!(matches!(c.recv().await, Some(Packet::PingResp)));
    // The hidden subscriber was removed from the selection.
    hidden.send(Packet::PingReq).await;
    assert!(matches!(hidden.recv().await, Some(Packet::PingResp)));
    // A refused packet closes the connection with the hook's code.
    c.send_publish(publish("forbidden", 0, None, b"x")).await;
    assert_eq!(
        c.disconnect_reason().await,
        Some(ReasonCode::AdministrativeAction)
    );
    server.shutdown().await;
    for e in [
        "authenticate",
        "session_established",
        "packet_read",
        "subscribed",
        "published",
        "qos_publish",
        "qos_complete",
        "retain_message",
        "retain_published",
    ] {
        assert!(rec.count(e) >= 1, "{e} never fired: {:?}", rec.seen.lock());
    }
}

/// A hook that calls back into the broker from inside events must not deadlock.
struct Reentrant(
    std::sync::OnceLock<Arc<moco_engine::Broker>>,
    Arc<AtomicUsize>,
);

impl Hook for Reentrant {
    fn id(&self) -> &str {
        "reentrant"
    }
    fn provides(&self, _: Event) -> bool {
        true
    }
    fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
        true
    }
    fn on_acl_check(&self, c: &ClientInfo, _: &str, _: Access) -> bool {
        if let Some(b) = self.0.get() {
            let _ = b.client(&c.id);
            let _ = b.subscription_count();
        }
        true
    }
    fn on_publish_dropped(
        &self,
        id: &str,
        _: &moco_codec::Publish,
        _: moco_engine::hooks::DropReason,
    ) {
        if let Some(b) = self.0.get() {
            let _ = b.client(id);
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn on_published(&self, c: &ClientInfo, _: &moco_codec::Publish, _: usize) {
        if let Some(b) = self.0.get() {
            let _ = b.client(&c.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_may_call_back_into_the_broker() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let hook = Reentrant(std::sync::OnceLock::new(), dropped.clone());
    let mut server = Server::builder()
        .options(Options {
            capabilities: Capabilities {
                maximum_client_writes_pending: 1,
                ..Default::default()
            },
            ..Default::default()
        })
        .build();
    let cell = Arc::new(hook);
    // The hook needs the broker; give it after building.
    struct Shared(Arc<Reentrant>);
    impl Hook for Shared {
        fn id(&self) -> &str {
            self.0.id()
        }
        fn provides(&self, e: Event) -> bool {
            self.0.provides(e)
        }
        fn on_connect_authenticate(&self, c: &ClientInfo, p: &Connect) -> bool {
            self.0.on_connect_authenticate(c, p)
        }
        fn on_acl_check(&self, c: &ClientInfo, t: &str, a: Access) -> bool {
            self.0.on_acl_check(c, t, a)
        }
        fn on_publish_dropped(
            &self,
            id: &str,
            p: &moco_codec::Publish,
            r: moco_engine::hooks::DropReason,
        ) {
            self.0.on_publish_dropped(id, p, r)
        }
        fn on_published(&self, c: &ClientInfo, p: &moco_codec::Publish, n: usize) {
            self.0.on_published(c, p, n)
        }
    }
    server.add_hook(Shared(cell.clone())).unwrap();
    let _ = cell.0.set(server.broker().clone());
    let (server, addr) = serve(server).await;
    // An offline persistent subscriber with a one-message queue: the second message drops
    // the first (OnPublishDropped runs while routing).
    let mut c = connect_packet("away", V5, 0, true);
    c.properties.session_expiry_interval = Some(60);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "re/#", 1)).await;
    drop(s);
    wait_disconnected(&server, "away", 200).await;
    let mut p = Raw::v5(addr, "rp").await;
    for i in 1..=3 {
        p.send_publish(publish("re/x", 1, Some(i), b"x")).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

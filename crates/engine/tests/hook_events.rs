//! One test per hook event: each fires at the point of the lifecycle where mochi calls it,
//! with the right data; for every event that may change a value, the change reaches the wire
//! or the routing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moco_codec::{
    Auth, Connect, Packet, PacketType, ProtocolVersion, PubAck, Publish, QoS, ReasonCode,
    Subscribe, Unsubscribe,
};
use moco_engine::hooks::{Access, ClientInfo, DisconnectInfo, DropReason, Event, HookError};
use moco_engine::message::Will;
use moco_engine::{Capabilities, Hook, Options, Server, SysSnapshot, Target};
use moco_test_support::*;
use parking_lot::Mutex;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// What the probe saw, in order: the event and a short description of its data.
#[derive(Default)]
struct Log(Mutex<Vec<(Event, String)>>);

impl Log {
    fn push(&self, e: Event, d: impl Into<String>) {
        self.0.lock().push((e, d.into()));
    }
    fn of(&self, e: Event) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|(x, _)| *x == e)
            .map(|(_, d)| d.clone())
            .collect()
    }
    fn has(&self, e: Event, d: &str) -> bool {
        self.of(e).iter().any(|x| x == d)
    }
    /// Index of the first `(e, d)`.
    fn pos(&self, e: Event, d: &str) -> usize {
        self.0
            .lock()
            .iter()
            .position(|(x, y)| *x == e && y == d)
            .unwrap_or_else(|| panic!("{e:?} {d} never fired: {:?}", self.0.lock()))
    }
    /// Waits (bounded) until `(e, d)` was seen.
    async fn wait(&self, e: Event, d: &str) {
        self.wait_for(e, d, WAIT).await
    }
    async fn wait_for(&self, e: Event, d: &str, bound: Duration) {
        let t = tokio::time::Instant::now() + bound;
        while !self.has(e, d) {
            assert!(
                tokio::time::Instant::now() < t,
                "{e:?} {d} never fired: {:?}",
                self.of(e)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Records every event; lets everyone in except user `bad`, client `banned` (refused in
/// OnConnect) and topics under `deny/`.
struct Probe(Arc<Log>);

fn pub_desc(p: &Publish) -> String {
    format!(
        "{} {} q{}",
        p.topic,
        String::from_utf8_lossy(&p.payload),
        p.qos as u8
    )
}

impl Hook for Probe {
    fn id(&self) -> &str {
        "probe"
    }
    fn provides(&self, e: Event) -> bool {
        // The loaders and AUTH are tested with their own hooks.
        !matches!(
            e,
            Event::OnAuthPacket
                | Event::StoredClients
                | Event::StoredSubscriptions
                | Event::StoredInflightMessages
                | Event::StoredRetainedMessages
                | Event::StoredQueuedMessages
                | Event::StoredWills
                | Event::StoredSysInfo
        )
    }
    fn init(&self, o: &Options) -> Result<(), HookError> {
        self.0.push(
            Event::OnStarted,
            format!("init {:?}", o.sys_topic_resend_interval),
        );
        Ok(())
    }
    fn stop(&self) -> Result<(), HookError> {
        self.0.push(Event::OnStopped, "stop");
        Ok(())
    }
    fn on_started(&self) {
        self.0.push(Event::OnStarted, "started");
    }
    fn on_stopped(&self) {
        self.0.push(Event::OnStopped, "stopped");
    }
    fn on_connect_authenticate(&self, c: &ClientInfo, p: &Connect) -> bool {
        let user = p.username.as_deref().unwrap_or("-");
        self.0
            .push(Event::OnConnectAuthenticate, format!("{} {user}", c.id));
        user != "bad"
    }
    fn on_acl_check(&self, c: &ClientInfo, topic: &str, a: Access) -> bool {
        self.0
            .push(Event::OnAclCheck, format!("{} {topic} {a:?}", c.id));
        !topic.starts_with("deny/")
    }
    fn on_connect(&self, c: &ClientInfo, _: &Connect) -> Result<(), ReasonCode> {
        self.0.push(Event::OnConnect, c.id.to_string());
        if &*c.id == "banned" {
            return Err(ReasonCode::Banned);
        }
        Ok(())
    }
    fn on_session_establish(&self, c: &ClientInfo, _: &Connect) {
        self.0.push(Event::OnSessionEstablish, c.id.to_string());
    }
    fn on_session_established(&self, c: &ClientInfo, _: &Connect) {
        self.0.push(Event::OnSessionEstablished, c.id.to_string());
    }
    fn on_disconnect(&self, c: &ClientInfo, i: DisconnectInfo) {
        self.0.push(
            Event::OnDisconnect,
            format!("{} {:?} {}", c.id, i.reason, i.session_ends),
        );
    }
    fn on_sys_info_tick(&self, s: &SysSnapshot) {
        self.0.push(
            Event::OnSysInfoTick,
            format!("{} {}", s.version, s.clients_connected),
        );
    }
    fn on_packet_read(&self, c: &ClientInfo, p: &mut Packet) -> Result<(), ReasonCode> {
        self.0
            .push(Event::OnPacketRead, format!("{} {}", c.id, p.packet_type()));
        Ok(())
    }
    fn on_packet_encode(&self, c: &ClientInfo, p: &mut Packet) {
        self.0.push(
            Event::OnPacketEncode,
            format!("{} {}", c.id, p.packet_type()),
        );
    }
    fn on_packet_processed(&self, c: &ClientInfo, t: PacketType) {
        self.0
            .push(Event::OnPacketProcessed, format!("{} {t}", c.id));
    }
    fn on_packet_sent(&self, c: &ClientInfo, b: &[u8]) {
        // The first byte of a batch names its first packet.
        self.0
            .push(Event::OnPacketSent, format!("{} {:02x}", c.id, b[0]));
    }
    fn on_select_subscribers(&self, topic: &str, s: &mut Vec<Target>) {
        let mut ids: Vec<_> = s.iter().map(|t| t.client_id.to_string()).collect();
        ids.sort();
        self.0
            .push(Event::OnSelectSubscribers, format!("{topic} {ids:?}"));
    }
    fn on_retain_published(&self, c: &ClientInfo, p: &Publish) {
        self.0.push(
            Event::OnRetainPublished,
            format!("{} {}", c.id, pub_desc(p)),
        );
    }
    fn on_subscribe(&self, c: &ClientInfo, s: &mut Subscribe) {
        self.0
            .push(Event::OnSubscribe, format!("{} {}", c.id, s.filters[0].0));
    }
    fn on_subscribed(&self, c: &ClientInfo, s: &Subscribe, codes: &[ReasonCode]) {
        self.0.push(
            Event::OnSubscribed,
            format!("{} {} {codes:?}", c.id, s.filters[0].0),
        );
    }
    fn on_unsubscribe(&self, c: &ClientInfo, u: &mut Unsubscribe) {
        self.0
            .push(Event::OnUnsubscribe, format!("{} {}", c.id, u.filters[0]));
    }
    fn on_unsubscribed(&self, c: &ClientInfo, u: &Unsubscribe) {
        self.0
            .push(Event::OnUnsubscribed, format!("{} {}", c.id, u.filters[0]));
    }
    fn on_publish(&self, c: &ClientInfo, p: &mut Publish) -> Result<(), ReasonCode> {
        self.0
            .push(Event::OnPublish, format!("{} {}", c.id, pub_desc(p)));
        Ok(())
    }
    fn on_published(&self, c: &ClientInfo, p: &Publish, n: usize) {
        self.0
            .push(Event::OnPublished, format!("{} {} {n}", c.id, pub_desc(p)));
    }
    fn on_publish_dropped(&self, id: &str, p: &Publish, r: DropReason) {
        self.0.push(
            Event::OnPublishDropped,
            format!("{id} {} {r:?}", pub_desc(p)),
        );
    }
    fn on_retain_message(&self, c: &ClientInfo, p: &Publish) {
        self.0
            .push(Event::OnRetainMessage, format!("{} {}", c.id, pub_desc(p)));
    }
    fn on_qos_publish(&self, id: &str, p: &Publish, resends: u32) {
        self.0.push(
            Event::OnQosPublish,
            format!("{id} {} {:?} {resends}", pub_desc(p), p.packet_id),
        );
    }
    fn on_qos_complete(&self, id: &str, pid: u16) {
        self.0.push(Event::OnQosComplete, format!("{id} {pid}"));
    }
    fn on_qos_dropped(&self, id: &str, pid: u16) {
        self.0.push(Event::OnQosDropped, format!("{id} {pid}"));
    }
    fn on_packet_id_exhausted(&self, id: &str) {
        self.0.push(Event::OnPacketIdExhausted, id.to_string());
    }
    fn on_will(&self, id: &str, w: &mut Will) {
        self.0.push(Event::OnWill, format!("{id} {}", w.topic));
    }
    fn on_will_sent(&self, id: &str, w: &Will) {
        self.0.push(
            Event::OnWillSent,
            format!("{id} {} {}", w.topic, String::from_utf8_lossy(&w.payload)),
        );
    }
    fn on_client_expired(&self, id: &str) {
        self.0.push(Event::OnClientExpired, id.to_string());
    }
    fn on_retained_expired(&self, topic: &str) {
        self.0.push(Event::OnRetainedExpired, topic.to_string());
    }
}

/// The modifying events, each with a fixed rewrite (checked on the wire or in routing).
struct Rewriter;

impl Hook for Rewriter {
    fn id(&self) -> &str {
        "rewriter"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(
            e,
            Event::OnPacketRead
                | Event::OnPacketEncode
                | Event::OnSubscribe
                | Event::OnUnsubscribe
                | Event::OnPublish
                | Event::OnSelectSubscribers
                | Event::OnWill
        )
    }
    fn on_packet_read(&self, _: &ClientInfo, p: &mut Packet) -> Result<(), ReasonCode> {
        match p {
            Packet::Publish(p) if &*p.topic == "read/in" => {
                p.topic = "read/out".into();
                Ok(())
            }
            Packet::Publish(p) if &*p.topic == "read/refuse" => {
                Err(ReasonCode::AdministrativeAction)
            }
            _ => Ok(()),
        }
    }
    fn on_packet_encode(&self, _: &ClientInfo, p: &mut Packet) {
        if let Packet::Publish(p) = p {
            if &*p.topic == "enc" {
                p.payload = Bytes::from_static(b"encoded");
            }
        }
    }
    fn on_subscribe(&self, _: &ClientInfo, s: &mut Subscribe) {
        for (f, _) in &mut s.filters {
            if &**f == "sub/in" {
                *f = "sub/out".into();
            }
        }
    }
    fn on_unsubscribe(&self, _: &ClientInfo, u: &mut Unsubscribe) {
        for f in &mut u.filters {
            if &**f == "unsub/in" {
                *f = "unsub/out".into();
            }
        }
    }
    fn on_publish(&self, _: &ClientInfo, p: &mut Publish) -> Result<(), ReasonCode> {
        if &*p.payload == b"reject" {
            return Err(ReasonCode::ImplementationSpecificError);
        }
        if p.topic.starts_with("upper/") {
            p.payload = Bytes::from(p.payload.to_ascii_uppercase());
        }
        Ok(())
    }
    fn on_select_subscribers(&self, _: &str, s: &mut Vec<Target>) {
        s.retain(|t| &*t.client_id != "hidden");
    }
    fn on_will(&self, _: &str, w: &mut Will) {
        w.payload = Bytes::from_static(b"rewritten will");
    }
}

/// Publishes from the broker itself (no client, no hooks) and returns the subscriber count.
fn push(b: &moco_engine::Broker, topic: &str, qos: QoS, payload: &[u8]) -> usize {
    b.publish_internal(
        std::time::Instant::now(),
        &Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: Bytes::copy_from_slice(payload),
            properties: Default::default(),
        },
    )
}

struct Fixture {
    server: Server,
    addr: std::net::SocketAddr,
    log: Arc<Log>,
}

async fn fixture(options: Options) -> Fixture {
    let log = Arc::new(Log::default());
    let (server, addr) = serve(
        Server::builder()
            .options(options)
            .hook(Probe(log.clone()))
            .hook(Rewriter)
            .build(),
    )
    .await;
    Fixture { server, addr, log }
}

async fn client(addr: std::net::SocketAddr, id: &str) -> Raw {
    Raw::connect_ok(addr, connect_packet(id, V5, 0, true)).await
}

async fn sub(r: &mut Raw, filter: &str, qos: u8) -> Vec<ReasonCode> {
    r.send(Packet::Subscribe(subscribe(9, filter, qos))).await;
    loop {
        match r.recv().await {
            Some(Packet::SubAck(a)) => return a.reason_codes,
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}

async fn next_publish(r: &mut Raw) -> Publish {
    loop {
        match r.recv().await {
            Some(Packet::Publish(p)) => return p,
            Some(_) => continue,
            None => panic!("closed before a PUBLISH"),
        }
    }
}

#[tokio::test]
async fn on_started_and_on_stopped_with_init_and_stop() {
    let f = fixture(Options::default()).await;
    let l = f.log.clone();
    // init ran at build, with the options; OnStarted after the first $SYS values went out.
    assert!(l.pos(Event::OnStarted, "init 1s") < l.pos(Event::OnSysInfoTick, "0.1.0 0"));
    assert!(l.pos(Event::OnSysInfoTick, "0.1.0 0") < l.pos(Event::OnStarted, "started"));
    assert!(l.of(Event::OnStopped).is_empty());
    let mut c = client(f.addr, "s").await;
    f.server.shutdown().await;
    // Stopped after the clients were disconnected, then the hook's stop.
    assert!(c.disconnect_reason().await == Some(ReasonCode::ServerShuttingDown));
    assert!(
        l.pos(Event::OnDisconnect, "s ServerShuttingDown true")
            < l.pos(Event::OnStopped, "stopped")
    );
    assert!(l.pos(Event::OnStopped, "stopped") < l.pos(Event::OnStopped, "stop"));
}

#[tokio::test]
async fn on_sys_info_tick_every_interval_with_the_values() {
    let f = fixture(Options {
        sys_topic_resend_interval: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let _c = client(f.addr, "t").await;
    f.log.wait(Event::OnSysInfoTick, "0.1.0 1").await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_connect_authenticate_decides_with_the_credentials() {
    let f = fixture(Options::default()).await;
    let mut c = connect_packet("a1", V5, 0, true);
    c.username = Some("bad".into());
    let (_r, ack) = Raw::connect(f.addr, c.clone()).await;
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
    c.username = Some("good".into());
    let (_r, ack) = Raw::connect(f.addr, c).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        f.log.of(Event::OnConnectAuthenticate),
        ["a1 bad", "a1 good"]
    );
    // Refused clients never get a session.
    assert_eq!(f.log.of(Event::OnSessionEstablished), ["a1"]);
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_acl_check_for_subscribe_and_publish() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "acl").await;
    assert_eq!(sub(&mut c, "deny/x", 1).await, [ReasonCode::NotAuthorized]);
    assert_eq!(sub(&mut c, "ok/x", 1).await, [ReasonCode::GrantedQoS1]);
    c.send_publish(publish("deny/p", 1, Some(1), b"x")).await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    let acl = f.log.of(Event::OnAclCheck);
    assert_eq!(
        acl,
        ["acl deny/x Read", "acl ok/x Read", "acl deny/p Write"]
    );
    // A denied PUBLISH never reaches OnPublish.
    assert!(f.log.of(Event::OnPublish).is_empty());
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_connect_runs_before_authentication_and_may_refuse() {
    let f = fixture(Options::default()).await;
    let (_r, ack) = Raw::connect(f.addr, connect_packet("banned", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Banned);
    assert!(f.log.of(Event::OnConnectAuthenticate).is_empty());
    let _c = client(f.addr, "fine").await;
    assert!(
        f.log.pos(Event::OnConnect, "fine") < f.log.pos(Event::OnConnectAuthenticate, "fine -")
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_session_establish_between_authentication_and_takeover() {
    let f = fixture(Options::default()).await;
    let mut first = client(f.addr, "dup").await;
    let _second = client(f.addr, "dup").await;
    let l = &f.log;
    // The second connection: authenticated, then OnSessionEstablish, then the first
    // connection is taken over, then OnSessionEstablished.
    let establish: Vec<_> =
        l.0.lock()
            .iter()
            .filter(|(e, _)| {
                matches!(
                    e,
                    Event::OnConnectAuthenticate
                        | Event::OnSessionEstablish
                        | Event::OnSessionEstablished
                )
            })
            .map(|(e, _)| *e)
            .collect();
    assert_eq!(
        establish,
        [
            Event::OnConnectAuthenticate,
            Event::OnSessionEstablish,
            Event::OnSessionEstablished,
            Event::OnConnectAuthenticate,
            Event::OnSessionEstablish,
            Event::OnSessionEstablished,
        ]
    );
    assert_eq!(
        first.disconnect_reason().await,
        Some(ReasonCode::SessionTakenOver)
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_session_established_after_connack_is_queued() {
    let f = fixture(Options::default()).await;
    let _c = client(f.addr, "est").await;
    assert_eq!(f.log.of(Event::OnSessionEstablished), ["est"]);
    // The CONNACK is the first packet encoded for the client, after the session was set.
    assert!(
        f.log.pos(Event::OnSessionEstablished, "est")
            < f.log.pos(Event::OnPacketEncode, "est CONNACK")
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_disconnect_with_reason_and_session_end() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "bye").await;
    c.disconnect(ReasonCode::Success).await;
    f.log.wait(Event::OnDisconnect, "bye Success true").await;
    let mut p = connect_packet("keep", V5, 0, true);
    p.properties.session_expiry_interval = Some(60);
    let (r, _) = Raw::connect(f.addr, p).await;
    drop(r);
    f.log
        .wait(Event::OnDisconnect, "keep UnspecifiedError false")
        .await;
    f.server.shutdown().await;
}

/// Enhanced authentication in two hooks: the first answers, the second adds to the data.
struct AuthA;
struct AuthB;

impl Hook for AuthA {
    fn id(&self) -> &str {
        "auth-a"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(e, Event::OnAuthPacket | Event::OnAclCheck)
    }
    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }
    fn on_auth_packet(&self, _: &ClientInfo, a: &Auth) -> Result<Auth, ReasonCode> {
        match a.properties.authentication_data.as_deref() {
            Some(b"let me in") => {
                let mut r = Auth::new(ReasonCode::Success);
                r.properties.authentication_data = Some(Bytes::from_static(b"welcome"));
                Ok(r)
            }
            _ => Err(ReasonCode::NotAuthorized),
        }
    }
}

impl Hook for AuthB {
    fn id(&self) -> &str {
        "auth-b"
    }
    fn provides(&self, e: Event) -> bool {
        e == Event::OnAuthPacket
    }
    fn on_auth_packet(&self, _: &ClientInfo, a: &Auth) -> Result<Auth, ReasonCode> {
        // Gets the first hook's answer and extends it.
        let mut r = a.clone();
        let mut d = a.properties.authentication_data.clone().unwrap().to_vec();
        d.extend_from_slice(b" (and b)");
        r.properties.authentication_data = Some(d.into());
        Ok(r)
    }
}

#[tokio::test]
async fn on_auth_packet_chains_and_the_answer_reaches_the_wire() {
    let (server, addr) = serve(Server::builder().hook(AuthA).hook(AuthB).build()).await;
    let mut c = connect_packet("ea", V5, 0, true);
    c.properties.authentication_method = Some("m".into());
    c.properties.authentication_data = Some(Bytes::from_static(b"let me in"));
    let (_r, ack) = Raw::connect(addr, c.clone()).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        ack.properties.authentication_data.as_deref(),
        Some(&b"welcome (and b)"[..])
    );
    c.properties.authentication_data = Some(Bytes::from_static(b"wrong"));
    let (_r, ack) = Raw::connect(addr, c).await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    server.shutdown().await;
}

#[tokio::test]
async fn on_packet_read_before_processing_rewrites_and_refuses() {
    let f = fixture(Options::default()).await;
    let mut s = client(f.addr, "rs").await;
    sub(&mut s, "read/out", 0).await;
    let mut p = client(f.addr, "rp").await;
    p.send_publish(publish("read/in", 0, None, b"x")).await;
    // Routed on the rewritten topic.
    assert_eq!(&*next_publish(&mut s).await.topic, "read/out");
    // OnPublish saw the rewritten packet: OnPacketRead ran before processing.
    assert!(f.log.has(Event::OnPublish, "rp read/out x q0"));
    assert!(
        f.log.pos(Event::OnPacketRead, "rp PUBLISH")
            < f.log.pos(Event::OnPublish, "rp read/out x q0")
    );
    p.send_publish(publish("read/refuse", 0, None, b"x")).await;
    assert_eq!(
        p.disconnect_reason().await,
        Some(ReasonCode::AdministrativeAction)
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_packet_encode_rewrites_what_goes_on_the_wire() {
    let f = fixture(Options::default()).await;
    let mut s = client(f.addr, "es").await;
    sub(&mut s, "enc", 1).await;
    let mut p = client(f.addr, "ep").await;
    p.send_publish(publish("enc", 1, Some(3), b"original"))
        .await;
    let got = next_publish(&mut s).await;
    assert_eq!(&got.payload[..], b"encoded");
    assert!(f.log.has(Event::OnPacketEncode, "es PUBLISH"));
    assert!(f.log.has(Event::OnPacketEncode, "es SUBACK"));
    assert!(f.log.has(Event::OnPacketEncode, "ep PUBACK"));
    // Other topics keep their payload.
    p.send_publish(publish("other", 0, None, b"same")).await;
    sub(&mut s, "other", 0).await;
    p.send_publish(publish("other", 0, None, b"same")).await;
    assert_eq!(&next_publish(&mut s).await.payload[..], b"same");
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_packet_sent_after_the_bytes_are_written() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "ps").await;
    // The CONNACK (0x20) batch was written before the client read it.
    assert!(f.log.has(Event::OnPacketSent, "ps 20"));
    c.expect_quiet().await;
    f.log.wait(Event::OnPacketSent, "ps d0").await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_packet_processed_after_each_packet() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "pp").await;
    sub(&mut c, "pp", 0).await;
    c.expect_quiet().await;
    assert_eq!(
        f.log.of(Event::OnPacketProcessed),
        ["pp SUBSCRIBE", "pp PINGREQ"]
    );
    // After the SUBSCRIBE was handled (OnSubscribed) and before the next packet is read.
    assert!(
        f.log.pos(Event::OnSubscribed, "pp pp [Success]")
            < f.log.pos(Event::OnPacketProcessed, "pp SUBSCRIBE")
    );
    assert!(
        f.log.pos(Event::OnPacketProcessed, "pp SUBSCRIBE")
            < f.log.pos(Event::OnPacketRead, "pp PINGREQ")
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_subscribe_rewrite_reaches_routing() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "sb").await;
    assert_eq!(sub(&mut c, "sub/in", 0).await, [ReasonCode::GrantedQoS0]);
    assert_eq!(f.log.of(Event::OnSubscribe), ["sb sub/in"]);
    // The hooks after it, the ACL and the router saw the rewritten filter.
    assert_eq!(f.log.of(Event::OnSubscribed), ["sb sub/out [Success]"]);
    assert!(f.log.has(Event::OnAclCheck, "sb sub/out Read"));
    let b = f.server.broker().clone();
    assert_eq!(push(&b, "sub/out", QoS::AtMostOnce, b"x"), 1);
    assert_eq!(&*next_publish(&mut c).await.topic, "sub/out");
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_subscribed_with_the_reason_codes() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "sd").await;
    sub(&mut c, "deny/a", 2).await;
    sub(&mut c, "q/2", 2).await;
    assert_eq!(
        f.log.of(Event::OnSubscribed),
        ["sd deny/a [NotAuthorized]", "sd q/2 [GrantedQoS2]"]
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_select_subscribers_change_reaches_routing() {
    let f = fixture(Options::default()).await;
    let mut hidden = client(f.addr, "hidden").await;
    sub(&mut hidden, "sel", 0).await;
    let mut seen = client(f.addr, "seen").await;
    sub(&mut seen, "sel", 0).await;
    let mut p = client(f.addr, "sp").await;
    p.send_publish(publish("sel", 1, Some(1), b"x")).await;
    assert_eq!(&next_publish(&mut seen).await.payload[..], b"x");
    hidden.expect_quiet().await;
    // The probe (added first) saw both; the rewriter removed one; OnPublished counts one.
    assert!(f
        .log
        .has(Event::OnSelectSubscribers, r#"sel ["hidden", "seen"]"#));
    f.log.wait(Event::OnPublished, "sp sel x q1 1").await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_unsubscribe_rewrite_reaches_routing_and_on_unsubscribed() {
    let f = fixture(Options::default()).await;
    let mut c = client(f.addr, "us").await;
    sub(&mut c, "unsub/in", 0).await;
    sub(&mut c, "unsub/out", 0).await;
    c.send(Packet::Unsubscribe(Unsubscribe {
        packet_id: 4,
        filters: vec!["unsub/in".into()],
        properties: Default::default(),
    }))
    .await;
    match c.recv().await {
        Some(Packet::UnsubAck(a)) => assert_eq!(a.reason_codes, [ReasonCode::Success]),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.log.of(Event::OnUnsubscribe), ["us unsub/in"]);
    assert_eq!(f.log.of(Event::OnUnsubscribed), ["us unsub/out"]);
    // unsub/out is gone, unsub/in still routes.
    let b = f.server.broker().clone();
    assert_eq!(push(&b, "unsub/out", QoS::AtMostOnce, b"x"), 0);
    assert_eq!(push(&b, "unsub/in", QoS::AtMostOnce, b"x"), 1);
    assert_eq!(&*next_publish(&mut c).await.topic, "unsub/in");
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_publish_rewrite_reaches_subscribers_and_rejection_reaches_the_ack() {
    let f = fixture(Options::default()).await;
    let mut s = client(f.addr, "ps1").await;
    sub(&mut s, "upper/#", 0).await;
    let mut p = client(f.addr, "pp1").await;
    p.send_publish(publish("upper/a", 1, Some(1), b"shout"))
        .await;
    assert!(
        matches!(p.recv().await, Some(Packet::PubAck(a)) if a.reason_code == ReasonCode::Success)
    );
    assert_eq!(&next_publish(&mut s).await.payload[..], b"SHOUT");
    // The probe runs first and sees the original; OnPublished sees the rewritten one.
    assert!(f.log.has(Event::OnPublish, "pp1 upper/a shout q1"));
    assert!(f.log.has(Event::OnPublished, "pp1 upper/a SHOUT q1 1"));
    p.send_publish(publish("upper/a", 1, Some(2), b"reject"))
        .await;
    match p.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.reason_code, ReasonCode::ImplementationSpecificError)
        }
        other => panic!("{other:?}"),
    }
    s.expect_quiet().await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_published_after_routing_with_the_count() {
    let f = fixture(Options::default()).await;
    let mut a = client(f.addr, "pa").await;
    sub(&mut a, "cnt", 0).await;
    let mut b = client(f.addr, "pb").await;
    sub(&mut b, "cnt", 0).await;
    b.send_publish(publish("cnt", 1, Some(1), b"n")).await;
    assert!(matches!(
        b.recv().await,
        Some(Packet::Publish(_)) | Some(Packet::PubAck(_))
    ));
    f.log.wait(Event::OnPublished, "pb cnt n q1 2").await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_publish_dropped_when_a_queue_is_full() {
    let f = fixture(Options {
        capabilities: Capabilities {
            maximum_client_writes_pending: 1,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut p = connect_packet("away", V5, 0, true);
    p.properties.session_expiry_interval = Some(60);
    let (mut s, _) = Raw::connect(f.addr, p).await;
    sub(&mut s, "drop", 1).await;
    drop(s);
    f.log
        .wait(Event::OnDisconnect, "away UnspecifiedError false")
        .await;
    let mut p = client(f.addr, "dp").await;
    for (i, m) in [b"one", b"two"].iter().enumerate() {
        p.send_publish(publish("drop", 1, Some(i as u16 + 1), *m))
            .await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    assert_eq!(
        f.log.of(Event::OnPublishDropped),
        ["away drop one q1 QueueFull"]
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_retain_message_when_set_and_cleared() {
    let f = fixture(Options::default()).await;
    let mut p = client(f.addr, "rm").await;
    let mut m = publish("ret", 0, None, b"kept");
    m.retain = true;
    p.send_publish(m.clone()).await;
    m.payload = Bytes::new();
    p.send_publish(m).await;
    p.expect_quiet().await;
    assert_eq!(
        f.log.of(Event::OnRetainMessage),
        ["rm ret kept q0", "rm ret  q0"]
    );
    assert_eq!(f.server.broker().retained_count(), 20); // only the $SYS topics
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_retain_published_for_each_retained_message_sent_on_subscribe() {
    let f = fixture(Options::default()).await;
    let mut p = client(f.addr, "rpub").await;
    for t in ["rp/a", "rp/b"] {
        let mut m = publish(t, 1, Some(1), b"r");
        m.retain = true;
        p.send_publish(m).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    let mut s = client(f.addr, "rsub").await;
    sub(&mut s, "rp/+", 0).await;
    let mut got = f.log.of(Event::OnRetainPublished);
    got.sort();
    assert_eq!(got, ["rsub rp/a r q0", "rsub rp/b r q0"]);
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_qos_publish_and_on_qos_complete_around_the_flow() {
    let f = fixture(Options::default()).await;
    let mut s = client(f.addr, "qs").await;
    sub(&mut s, "q", 2).await;
    let b = f.server.broker().clone();
    push(&b, "q", QoS::AtLeastOnce, b"x");
    let got = next_publish(&mut s).await;
    let pid = got.packet_id.unwrap();
    f.log
        .wait(Event::OnQosPublish, &format!("qs q x q1 Some({pid}) 0"))
        .await;
    assert!(f.log.of(Event::OnQosComplete).is_empty());
    s.send(Packet::PubAck(PubAck::new(pid))).await;
    f.log.wait(Event::OnQosComplete, &format!("qs {pid}")).await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_qos_dropped_when_an_inflight_message_is_abandoned() {
    let f = fixture(Options::default()).await;
    let mut p = connect_packet("small", V5, 0, true);
    p.properties.maximum_packet_size = Some(64);
    let (mut s, _) = Raw::connect(f.addr, p).await;
    sub(&mut s, "big", 1).await;
    let b = f.server.broker().clone();
    assert_eq!(push(&b, "big", QoS::AtLeastOnce, &[b'x'; 200]), 1);
    f.log.wait(Event::OnQosDropped, "small 1").await;
    f.log
        .wait(
            Event::OnPublishDropped,
            &format!("small big {} q1 TooLarge", "x".repeat(200)),
        )
        .await;
    s.expect_quiet().await;
    f.server.shutdown().await;
}

/// Records only OnPacketIdExhausted (the 65 535 resends stay cheap).
struct Exhausted(Arc<Log>);

impl Hook for Exhausted {
    fn id(&self) -> &str {
        "exhausted"
    }
    fn provides(&self, e: Event) -> bool {
        e == Event::OnPacketIdExhausted
    }
    fn on_packet_id_exhausted(&self, id: &str) {
        self.0.push(Event::OnPacketIdExhausted, id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_packet_id_exhausted_when_every_id_is_in_flight() {
    // A stored session with all 65 535 packet ids in flight: the client resumes it, and the
    // next QoS 1 message finds no free id.
    let store = Arc::new(Stored::default());
    for pid in 1..=u16::MAX {
        let mut p = publish("ex", 1, Some(pid), b"i");
        p.packet_id = Some(pid);
        store
            .inflight
            .lock()
            .push(moco_engine::hooks::StoredInflight {
                client_id: "full".into(),
                publish: p,
            });
    }
    store.clients.lock().push(stored_client("full"));
    store.subs.lock().push(stored_sub("full", "ex", 1));
    let log = Arc::new(Log::default());
    let (server, addr) = serve(
        Server::builder()
            .options(Options {
                inline_client: true,
                capabilities: Capabilities {
                    maximum_inflight: u16::MAX,
                    maximum_client_writes_pending: 200_000,
                    ..Default::default()
                },
                ..Default::default()
            })
            .hook(StoreHook(store.clone()))
            .hook(Exhausted(log.clone()))
            .build(),
    )
    .await;
    let mut c = connect_packet("full", V5, 0, false);
    c.properties.session_expiry_interval = Some(60);
    c.properties.receive_maximum = Some(u16::MAX);
    let (mut r, ack) = Raw::connect(addr, c).await;
    assert!(ack.session_present);
    // The resends (with DUP) come first; the rest is read and discarded, so the writer
    // never waits on the socket.
    let first = next_publish(&mut r).await;
    assert!(first.dup);
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut sink = vec![0u8; 1 << 16];
        while matches!(r.stream.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    server
        .publish("ex", "new", false, QoS::AtLeastOnce)
        .unwrap();
    // 65 535 resends in a debug build on a busy machine: a generous bound.
    log.wait_for(Event::OnPacketIdExhausted, "full", Duration::from_secs(120))
        .await;
    drain.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn on_will_rewrite_reaches_subscribers_and_on_will_sent() {
    let f = fixture(Options::default()).await;
    let mut s = client(f.addr, "ws").await;
    sub(&mut s, "will/t", 0).await;
    let mut c = connect_packet("dies", V5, 0, true);
    c.will = Some(moco_codec::LastWill {
        topic: "will/t".into(),
        payload: Bytes::from_static(b"original"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let (r, _) = Raw::connect(f.addr, c).await;
    drop(r);
    assert_eq!(&next_publish(&mut s).await.payload[..], b"rewritten will");
    assert_eq!(f.log.of(Event::OnWill), ["dies will/t"]);
    f.log
        .wait(Event::OnWillSent, "dies will/t rewritten will")
        .await;
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_client_expired_when_an_offline_session_ends() {
    let f = fixture(Options::default()).await;
    let mut p = connect_packet("brief", V5, 0, true);
    p.properties.session_expiry_interval = Some(1);
    let (r, _) = Raw::connect(f.addr, p).await;
    drop(r);
    f.log
        .wait(Event::OnDisconnect, "brief UnspecifiedError false")
        .await;
    assert!(f.log.of(Event::OnClientExpired).is_empty());
    f.log.wait(Event::OnClientExpired, "brief").await;
    assert!(f.server.broker().client("brief").is_none());
    f.server.shutdown().await;
}

#[tokio::test]
async fn on_retained_expired_when_a_retained_message_expires() {
    let f = fixture(Options::default()).await;
    let mut p = client(f.addr, "rx").await;
    let mut m = publish("short", 0, None, b"lived");
    m.retain = true;
    m.properties.message_expiry_interval = Some(1);
    p.send_publish(m).await;
    p.expect_quiet().await;
    assert!(f.log.of(Event::OnRetainedExpired).is_empty());
    f.log.wait(Event::OnRetainedExpired, "short").await;
    f.server.shutdown().await;
}

// ---- Storage: a hook that stores through the events and loads through the loaders. ----

#[derive(Default)]
struct Stored {
    clients: Mutex<Vec<moco_engine::hooks::StoredClient>>,
    subs: Mutex<Vec<moco_engine::hooks::StoredSubscription>>,
    inflight: Mutex<Vec<moco_engine::hooks::StoredInflight>>,
    retained: Mutex<Vec<Publish>>,
    sys: Mutex<Option<SysSnapshot>>,
    loads: Mutex<Vec<Event>>,
}

fn stored_client(id: &str) -> moco_engine::hooks::StoredClient {
    moco_engine::hooks::StoredClient {
        inbound_qos2: Vec::new(),
        id: id.into(),
        username: None,
        listener: "tcp".into(),
        protocol: V5,
        session_expiry_interval: 60,
        disconnected_at: None,
    }
}

fn stored_sub(id: &str, filter: &str, qos: u8) -> moco_engine::hooks::StoredSubscription {
    moco_engine::hooks::StoredSubscription {
        client_id: id.into(),
        filter: filter.into(),
        options: moco_engine::topic::SubscriptionOptions::with_qos(qos),
    }
}

/// An in-memory storage hook (what a sled or Redis hook does, minus the disk).
struct StoreHook(Arc<Stored>);

impl Hook for StoreHook {
    fn id(&self) -> &str {
        "memory-store"
    }
    fn provides(&self, e: Event) -> bool {
        matches!(
            e,
            Event::OnConnectAuthenticate
                | Event::OnAclCheck
                | Event::OnSessionEstablished
                | Event::OnDisconnect
                | Event::OnSubscribed
                | Event::OnUnsubscribed
                | Event::OnQosPublish
                | Event::OnQosComplete
                | Event::OnQosDropped
                | Event::OnRetainMessage
                | Event::OnSysInfoTick
                | Event::OnClientExpired
                | Event::StoredClients
                | Event::StoredSubscriptions
                | Event::StoredInflightMessages
                | Event::StoredRetainedMessages
                | Event::StoredSysInfo
        )
    }
    fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
        true
    }
    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }
    fn on_session_established(&self, c: &ClientInfo, p: &Connect) {
        let mut s = stored_client(&c.id);
        s.session_expiry_interval = p.properties.session_expiry_interval.unwrap_or(0);
        let mut all = self.0.clients.lock();
        all.retain(|x| x.id != c.id);
        all.push(s);
    }
    fn on_disconnect(&self, c: &ClientInfo, i: DisconnectInfo) {
        if i.session_ends {
            self.0.clients.lock().retain(|x| x.id != c.id);
            self.0.subs.lock().retain(|x| x.client_id != c.id);
        } else if let Some(s) = self.0.clients.lock().iter_mut().find(|x| x.id == c.id) {
            s.disconnected_at = Some(std::time::SystemTime::now());
        }
    }
    fn on_subscribed(&self, c: &ClientInfo, s: &Subscribe, codes: &[ReasonCode]) {
        for ((f, o), code) in s.filters.iter().zip(codes) {
            if !code.is_error() {
                self.0.subs.lock().push(stored_sub(&c.id, f, o.qos as u8));
            }
        }
    }
    fn on_unsubscribed(&self, c: &ClientInfo, u: &Unsubscribe) {
        self.0
            .subs
            .lock()
            .retain(|x| !(x.client_id == c.id && u.filters.contains(&x.filter)));
    }
    fn on_qos_publish(&self, id: &str, p: &Publish, _: u32) {
        self.0
            .inflight
            .lock()
            .push(moco_engine::hooks::StoredInflight {
                client_id: id.into(),
                publish: p.clone(),
            });
    }
    fn on_qos_complete(&self, id: &str, pid: u16) {
        self.0
            .inflight
            .lock()
            .retain(|m| !(&*m.client_id == id && m.publish.packet_id == Some(pid)));
    }
    fn on_qos_dropped(&self, id: &str, pid: u16) {
        self.on_qos_complete(id, pid);
    }
    fn on_retain_message(&self, _: &ClientInfo, p: &Publish) {
        let mut r = self.0.retained.lock();
        r.retain(|x| x.topic != p.topic);
        if !p.payload.is_empty() {
            r.push(p.clone());
        }
    }
    fn on_sys_info_tick(&self, s: &SysSnapshot) {
        *self.0.sys.lock() = Some(s.clone());
    }
    fn on_client_expired(&self, id: &str) {
        self.0.clients.lock().retain(|x| &*x.id != id);
    }
    fn stored_clients(&self) -> Result<Vec<moco_engine::hooks::StoredClient>, HookError> {
        self.0.loads.lock().push(Event::StoredClients);
        Ok(self.0.clients.lock().clone())
    }
    fn stored_subscriptions(
        &self,
    ) -> Result<Vec<moco_engine::hooks::StoredSubscription>, HookError> {
        self.0.loads.lock().push(Event::StoredSubscriptions);
        Ok(self.0.subs.lock().clone())
    }
    fn stored_inflight_messages(
        &self,
    ) -> Result<Vec<moco_engine::hooks::StoredInflight>, HookError> {
        self.0.loads.lock().push(Event::StoredInflightMessages);
        Ok(self.0.inflight.lock().clone())
    }
    fn stored_retained_messages(&self) -> Result<Vec<Publish>, HookError> {
        self.0.loads.lock().push(Event::StoredRetainedMessages);
        Ok(self.0.retained.lock().clone())
    }
    fn stored_sys_info(&self) -> Result<Option<SysSnapshot>, HookError> {
        self.0.loads.lock().push(Event::StoredSysInfo);
        Ok(self.0.sys.lock().clone())
    }
}

async fn store_server(store: &Arc<Stored>) -> (Server, std::net::SocketAddr) {
    serve(
        Server::builder()
            .options(Options {
                capabilities: Capabilities {
                    compatibilities: moco_engine::Compatibilities {
                        restore_sys_info_on_restart: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            })
            .hook(StoreHook(store.clone()))
            .build(),
    )
    .await
}

#[tokio::test]
async fn stored_loaders_restore_what_a_storage_hook_kept_into_a_second_broker() {
    let store = Arc::new(Stored::default());

    // First broker: a persistent subscriber gets a QoS 1 message and does not acknowledge
    // it; a retained message is set; the broker stops.
    let (one, addr) = store_server(&store).await;
    let mut c = connect_packet("keeper", V5, 0, true);
    c.properties.session_expiry_interval = Some(300);
    let (mut k, _) = Raw::connect(addr, c).await;
    sub(&mut k, "s/+", 1).await;
    let mut p = client(addr, "producer").await;
    let mut m = publish("s/1", 1, Some(1), b"unacked");
    p.send_publish(m.clone()).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    let first = next_publish(&mut k).await;
    assert_eq!(&first.payload[..], b"unacked");
    m.topic = "r/1".into();
    m.payload = Bytes::from_static(b"kept");
    m.retain = true;
    m.packet_id = Some(2);
    p.send_publish(m).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    let received = one
        .broker()
        .info
        .messages_received
        .load(std::sync::atomic::Ordering::Relaxed);
    one.broker().publish_sys_info(std::time::Instant::now());
    drop(k);
    drop(p);
    one.shutdown().await;
    assert_eq!(store.inflight.lock().len(), 1);
    store.loads.lock().clear();

    // Second broker, same store: every loader is asked once, before serving.
    let (two, addr) = store_server(&store).await;
    let mut loads = store.loads.lock().clone();
    loads.sort_by_key(|e| *e as u8);
    assert_eq!(
        loads,
        [
            Event::StoredClients,
            Event::StoredSubscriptions,
            Event::StoredInflightMessages,
            Event::StoredRetainedMessages,
            Event::StoredSysInfo,
        ]
    );
    let b = two.broker().clone();
    assert!(b.client("keeper").is_some(), "session restored");
    assert!(b.client("producer").is_none(), "clean session not restored");
    assert_eq!(b.retained_count(), 21, "r/1 and the 20 $SYS topics");
    assert!(
        b.info
            .messages_received
            .load(std::sync::atomic::Ordering::Relaxed)
            >= received,
        "$SYS counters restored"
    );
    // The subscriber resumes: the unacknowledged message is resent with DUP and the same
    // packet id, and its subscription still routes.
    let mut c = connect_packet("keeper", V5, 0, false);
    c.properties.session_expiry_interval = Some(300);
    let (mut k, ack) = Raw::connect(addr, c).await;
    assert!(ack.session_present);
    let again = next_publish(&mut k).await;
    assert!(again.dup);
    assert_eq!(again.packet_id, first.packet_id);
    assert_eq!(&again.payload[..], b"unacked");
    k.send(Packet::PubAck(PubAck::new(again.packet_id.unwrap())))
        .await;
    let mut p = client(addr, "producer2").await;
    p.send_publish(publish("s/2", 0, None, b"live")).await;
    assert_eq!(&next_publish(&mut k).await.payload[..], b"live");
    // And the retained message is there for a new subscriber.
    let mut n = client(addr, "newcomer").await;
    sub(&mut n, "r/#", 0).await;
    assert_eq!(&next_publish(&mut n).await.payload[..], b"kept");
    two.shutdown().await;
}

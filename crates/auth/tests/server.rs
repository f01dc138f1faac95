//! The auth hooks in a real server over TCP: CONNACK, SUBACK and PUBACK codes for v5 and
//! v3.1.1, routing of denied publishes, obscure-not-authorized, placeholders, a hashed
//! password, reload while clients are connected, and what stacking and wide subscriptions do.
//!
//! Exact codes are read from hand-encoded packets (moco-codec over a raw socket, as the
//! engine's `tests/raw.rs` does); rumqttc clients show ordinary clients get through.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use moco_auth::{AllowAllHook, LedgerHook, SharedLedger};
use moco_engine::codec::{self, BytesMut, Connect, Packet, ProtocolVersion, QoS, ReasonCode};
use moco_engine::{Capabilities, Compatibilities, Options, Server};
use moco_test_support::{serve, Raw, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V311;

/// How long to wait for something that must not arrive.
const QUIET: Duration = Duration::from_millis(300);

/// The ledger most tests use.
///
/// - `alice` / `secret`: connects; reads and writes `sensors/#` and `alerts/#`.
/// - `pub` / `secret`: connects; may read but not write `sensors/#`; writes `alerts/#`.
/// - `mallory` / `secret`: a user whose account is suspended (`disallow`).
/// - client id `banned`: barred by an `auth` rule, whatever its credentials.
/// - everyone else, and wrong passwords: refused as bad credentials.
const LEDGER: &str = r##"
users:
  mallory:
    password: secret
    disallow: true
auth:
  - client: banned
    allow: false
  - username: alice
    password: secret
    allow: true
  - username: pub
    password: secret
    allow: true
acl:
  - username: pub
    filters:
      "sensors/#": readonly
      "alerts/#": readwrite
  - username: alice
    filters:
      "sensors/#": readwrite
      "alerts/#": readwrite
  - filters:
      "#": deny
"##;

fn shared(yaml: &str) -> Arc<SharedLedger> {
    let ledger = moco_auth::Ledger::from_yaml_bytes(yaml.as_bytes()).unwrap();
    Arc::new(SharedLedger::new(ledger))
}

async fn start(ledger: &Arc<SharedLedger>, options: Options) -> (Server, SocketAddr) {
    serve(
        Server::builder()
            .options(options)
            .hook(LedgerHook::ledger(ledger.clone()))
            .build(),
    )
    .await
}

fn connect(version: ProtocolVersion, id: &str, user: Option<&str>, pass: Option<&str>) -> Connect {
    let mut c = Connect::new(version, id);
    c.keep_alive = 0;
    c.username = user.map(Into::into);
    c.password = pass.map(|p| codec::Bytes::copy_from_slice(p.as_bytes()));
    c
}

/// Connects and returns the client with the CONNACK's reason code (v3: mapped from the
/// return code by the decoder).
async fn connect_code(addr: SocketAddr, c: Connect) -> (Raw, ReasonCode) {
    let (r, ack) = Raw::connect(addr, c).await;
    (r, ack.reason_code)
}

/// What these tests do with the shared raw client.
trait RawExt {
    /// Subscribes to one filter at QoS 1; returns the SUBACK's reason code.
    async fn subscribe(&mut self, pid: u16, filter: &str) -> ReasonCode;
    /// Sends a PUBLISH.
    async fn publish(&mut self, topic: &str, qos: QoS, pid: Option<u16>, payload: &'static [u8]);
    /// Publishes at QoS 1; returns the PUBACK's reason code.
    async fn publish_qos1(&mut self, topic: &str, pid: u16, payload: &'static [u8]) -> ReasonCode;
    /// The next PUBLISH's topic and payload (acknowledging it if QoS 1).
    async fn next_publish(&mut self) -> (String, Vec<u8>);
    /// Asserts nothing arrives for [`QUIET`] (and the connection stays open).
    async fn quiet(&mut self);
}

impl RawExt for Raw {
    async fn quiet(&mut self) {
        if let Ok(p) = tokio::time::timeout(QUIET, self.read_packet()).await {
            panic!("expected nothing, got {p:?}");
        }
    }

    async fn subscribe(&mut self, pid: u16, filter: &str) -> ReasonCode {
        let mut s = codec::Subscribe {
            packet_id: pid,
            filters: Vec::new(),
            properties: Default::default(),
        };
        s.filters.push((
            filter.into(),
            codec::SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        ));
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => {
                assert_eq!(a.packet_id, pid);
                a.reason_codes[0]
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&mut self, topic: &str, qos: QoS, pid: Option<u16>, payload: &'static [u8]) {
        self.send(Packet::Publish(codec::Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: pid,
            payload: codec::Bytes::from_static(payload),
            properties: Default::default(),
        }))
        .await;
    }

    async fn publish_qos1(&mut self, topic: &str, pid: u16, payload: &'static [u8]) -> ReasonCode {
        self.publish(topic, QoS::AtLeastOnce, Some(pid), payload)
            .await;
        match self.recv().await {
            Some(Packet::PubAck(a)) => {
                assert_eq!(a.packet_id, pid);
                a.reason_code
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    async fn next_publish(&mut self) -> (String, Vec<u8>) {
        loop {
            match self.recv().await {
                Some(Packet::Publish(p)) => {
                    if let Some(pid) = p.packet_id {
                        self.send(Packet::PubAck(codec::PubAck {
                            packet_id: pid,
                            reason_code: ReasonCode::Success,
                            properties: Default::default(),
                        }))
                        .await;
                    }
                    return (p.topic.to_string(), p.payload.to_vec());
                }
                Some(_) => continue,
                None => panic!("connection closed while waiting for a PUBLISH"),
            }
        }
    }
}

/// Sends a v3.1.1 CONNECT and returns the four raw bytes of the CONNACK.
async fn v3_connack_bytes(addr: SocketAddr, c: Connect) -> [u8; 4] {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    Packet::from(c).encode(V4, &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    // A refused client is closed after its CONNACK.
    if ack[3] != 0 {
        let mut rest = [0u8; 1];
        let n = tokio::time::timeout(WAIT, s.read(&mut rest)).await.unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "data after a refusal");
    }
    ack
}

// ---- CONNECT ----

#[tokio::test]
async fn v5_connect_refusals_say_why() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;
    let cases = [
        ("a1", Some("alice"), Some("secret"), ReasonCode::Success),
        (
            "a2",
            Some("alice"),
            Some("wrong"),
            ReasonCode::BadUserNameOrPassword,
        ),
        ("a3", Some("alice"), None, ReasonCode::BadUserNameOrPassword),
        (
            "a4",
            Some("nobody"),
            Some("secret"),
            ReasonCode::BadUserNameOrPassword,
        ),
        ("a5", None, None, ReasonCode::BadUserNameOrPassword),
        // Known and barred: the right password of a suspended account, a banned client id.
        (
            "a6",
            Some("mallory"),
            Some("secret"),
            ReasonCode::NotAuthorized,
        ),
        (
            "banned",
            Some("alice"),
            Some("secret"),
            ReasonCode::NotAuthorized,
        ),
        // A suspended account with a wrong password is just a bad password.
        (
            "a7",
            Some("mallory"),
            Some("wrong"),
            ReasonCode::BadUserNameOrPassword,
        ),
    ];
    for (id, user, pass, want) in cases {
        let (mut r, code) = connect_code(addr, connect(V5, id, user, pass)).await;
        assert_eq!(code, want, "{id} {user:?} {pass:?}");
        if want != ReasonCode::Success {
            assert!(r.recv().await.is_none(), "{id}: not closed after refusal");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn v3_connect_refusals_are_04_and_05() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;
    let c = |id, user, pass| connect(V4, id, Some(user), Some(pass));
    assert_eq!(
        v3_connack_bytes(addr, c("b1", "alice", "secret")).await,
        [0x20, 2, 0, 0x00]
    );
    assert_eq!(
        v3_connack_bytes(addr, c("b2", "alice", "wrong")).await,
        [0x20, 2, 0, 0x04]
    );
    assert_eq!(
        v3_connack_bytes(addr, c("b3", "mallory", "secret")).await,
        [0x20, 2, 0, 0x05]
    );
    assert_eq!(
        v3_connack_bytes(addr, c("banned", "alice", "secret")).await,
        [0x20, 2, 0, 0x05]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rumqttc_clients_connect_or_are_refused() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;

    let opts5 = |user: &str, pass: &str| {
        let mut o = rumqttc::v5::MqttOptions::new("r5", addr.ip().to_string(), addr.port());
        o.set_credentials(user, pass);
        o
    };
    let first5 = |o| async move {
        let (_c, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
        tokio::time::timeout(WAIT, el.poll()).await.unwrap()
    };
    let ok = first5(opts5("alice", "secret")).await.unwrap();
    assert!(
        matches!(&ok, rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a))
            if a.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success),
        "{ok:?}"
    );
    let err = first5(opts5("alice", "wrong")).await.unwrap_err();
    assert!(
        matches!(
            err,
            rumqttc::v5::ConnectionError::ConnectionRefused(
                rumqttc::v5::mqttbytes::v5::ConnectReturnCode::BadUserNamePassword
            )
        ),
        "{err:?}"
    );
    let err = first5(opts5("mallory", "secret")).await.unwrap_err();
    assert!(
        matches!(
            err,
            rumqttc::v5::ConnectionError::ConnectionRefused(
                rumqttc::v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized
            )
        ),
        "{err:?}"
    );

    let opts4 = |user: &str, pass: &str| {
        let mut o = rumqttc::MqttOptions::new("r4", addr.ip().to_string(), addr.port());
        o.set_credentials(user, pass);
        o
    };
    let first4 = |o| async move {
        let (_c, mut el) = rumqttc::AsyncClient::new(o, 10);
        tokio::time::timeout(WAIT, el.poll()).await.unwrap()
    };
    assert!(first4(opts4("alice", "secret")).await.is_ok());
    let err = first4(opts4("alice", "wrong")).await.unwrap_err();
    assert!(
        matches!(
            err,
            rumqttc::ConnectionError::ConnectionRefused(
                rumqttc::ConnectReturnCode::BadUserNamePassword
            )
        ),
        "{err:?}"
    );
    let err = first4(opts4("mallory", "secret")).await.unwrap_err();
    assert!(
        matches!(
            err,
            rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized)
        ),
        "{err:?}"
    );
    server.shutdown().await;
}

/// Argon2id of "hashed-pw" with the cheapest parameters, so debug builds stay fast.
static ARGON2: LazyLock<String> = LazyLock::new(|| {
    let params = Params::new(8, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"hashed-pw")
        .unwrap()
        .to_string()
});

#[tokio::test]
async fn argon2_password_over_the_wire() {
    let yaml = format!(
        "users:\n  carol:\n    password: \"{}\"\n  dave:\n    password: \"{}\"\n",
        *ARGON2,
        // The crate's own hasher (default argon2id parameters), as `--example hash` makes.
        moco_auth::hash_password(b"dave-pw", moco_auth::HashAlgorithm::Argon2id).unwrap()
    );
    let ledger = shared(&yaml);
    let (server, addr) = start(&ledger, Options::default()).await;
    let (_a, code) = connect_code(addr, connect(V5, "c1", Some("carol"), Some("hashed-pw"))).await;
    assert_eq!(code, ReasonCode::Success);
    let (_b, code) = connect_code(addr, connect(V5, "c2", Some("carol"), Some("hashed"))).await;
    assert_eq!(code, ReasonCode::BadUserNameOrPassword);
    // The hash string itself is not a password.
    let (_c, code) = connect_code(addr, connect(V5, "c3", Some("carol"), Some(&ARGON2))).await;
    assert_eq!(code, ReasonCode::BadUserNameOrPassword);
    let (_d, code) = connect_code(addr, connect(V4, "c4", Some("dave"), Some("dave-pw"))).await;
    assert_eq!(code, ReasonCode::Success);
    server.shutdown().await;
}

// ---- SUBSCRIBE and PUBLISH ----

#[tokio::test]
async fn denied_subscribe_gets_87_in_v5_and_80_in_v3() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;
    let mut a5 = Raw::connect_ok(addr, connect(V5, "s5", Some("alice"), Some("secret"))).await;
    assert_eq!(a5.subscribe(1, "sensors/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(a5.subscribe(2, "secret/#").await, ReasonCode::NotAuthorized);
    // `sensors/#` does not cover `#`.
    assert_eq!(a5.subscribe(3, "#").await, ReasonCode::NotAuthorized);

    // v3.1.1: the SUBACK return code is the failure byte 0x80.
    let mut a4 = Raw::connect_ok(addr, connect(V4, "s4", Some("alice"), Some("secret"))).await;
    let mut s = BytesMut::new();
    Packet::Subscribe(codec::Subscribe {
        packet_id: 7,
        filters: vec![("secret/#".into(), Default::default())],
        properties: Default::default(),
    })
    .encode(V4, &mut s)
    .unwrap();
    a4.stream.write_all(&s).await.unwrap();
    let mut suback = [0u8; 5];
    tokio::time::timeout(WAIT, a4.stream.read_exact(&mut suback))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(suback, [0x90, 3, 0, 7, 0x80]);
    server.shutdown().await;
}

#[tokio::test]
async fn rumqttc_subscribe_is_refused_per_filter() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, SubscribeReasonCode as S5};
    let mut o = rumqttc::v5::MqttOptions::new("rs5", addr.ip().to_string(), addr.port());
    o.set_credentials("alice", "secret");
    let (c, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
    c.subscribe("secret/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    c.subscribe("alerts/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let event = tokio::time::timeout(WAIT, el.poll())
            .await
            .unwrap()
            .unwrap();
        if let rumqttc::v5::Event::Incoming(P5::SubAck(a)) = event {
            codes.extend(a.return_codes);
        }
    }
    assert_eq!(
        codes,
        [
            S5::NotAuthorized,
            S5::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        ]
    );

    let mut o = rumqttc::MqttOptions::new("rs4", addr.ip().to_string(), addr.port());
    o.set_credentials("alice", "secret");
    let (c, mut el) = rumqttc::AsyncClient::new(o, 10);
    c.subscribe("secret/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(WAIT, el.poll())
            .await
            .unwrap()
            .unwrap();
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a)) = event {
            assert_eq!(a.return_codes, [rumqttc::SubscribeReasonCode::Failure]);
            break;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn denied_publishes_are_not_routed() {
    let ledger = shared(LEDGER);
    let (server, addr) = start(&ledger, Options::default()).await;
    let mut sub = Raw::connect_ok(addr, connect(V5, "sub", Some("alice"), Some("secret"))).await;
    assert_eq!(sub.subscribe(1, "sensors/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(sub.subscribe(2, "alerts/#").await, ReasonCode::GrantedQoS1);

    // v5 publisher: QoS 1 denied gets PUBACK 0x87; QoS 0 denied is dropped silently.
    let mut p5 = Raw::connect_ok(addr, connect(V5, "p5", Some("pub"), Some("secret"))).await;
    assert_eq!(
        p5.publish_qos1("sensors/t", 1, b"denied-1").await,
        ReasonCode::NotAuthorized
    );
    p5.publish("sensors/t", QoS::AtMostOnce, None, b"denied-0")
        .await;
    p5.publish("alerts/fire", QoS::AtMostOnce, None, b"allowed-0")
        .await;
    assert_eq!(
        p5.publish_qos1("alerts/fire", 2, b"allowed-1").await,
        ReasonCode::Success
    );
    p5.quiet().await; // still connected, nothing more to say

    // v3.1.1 publisher: no reason code exists; a denied QoS 1 gets a plain PUBACK (MQTT 3.1.1
    // §3.3.5 allows a positive acknowledgement) and is dropped; the connection stays open.
    let mut p4 = Raw::connect_ok(addr, connect(V4, "p4", Some("pub"), Some("secret"))).await;
    p4.publish_qos1("sensors/t", 3, b"denied-v3").await;
    p4.publish("sensors/t", QoS::AtMostOnce, None, b"denied-v3-0")
        .await;
    p4.publish_qos1("alerts/fire", 4, b"allowed-v3").await;

    // The subscriber (who may read sensors/#) sees only the allowed messages, in order.
    for want in ["allowed-0", "allowed-1", "allowed-v3"] {
        let (topic, payload) = sub.next_publish().await;
        assert_eq!(
            (topic.as_str(), payload.as_slice()),
            ("alerts/fire", want.as_bytes())
        );
    }
    sub.quiet().await;
    server.shutdown().await;
}

#[tokio::test]
async fn obscure_not_authorized_turns_87_into_80_for_subscribe_and_publish() {
    let ledger = shared(LEDGER);
    let options = Options {
        capabilities: Capabilities {
            compatibilities: Compatibilities {
                obscure_not_authorized: true,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, addr) = start(&ledger, options).await;
    let mut p = Raw::connect_ok(addr, connect(V5, "o1", Some("pub"), Some("secret"))).await;
    assert_eq!(
        p.subscribe(1, "secret/#").await,
        ReasonCode::UnspecifiedError
    );
    assert_eq!(
        p.publish_qos1("sensors/t", 2, b"x").await,
        ReasonCode::UnspecifiedError
    );
    // Allowed things are unaffected.
    assert_eq!(p.subscribe(3, "alerts/#").await, ReasonCode::GrantedQoS1);
    // The engine's option covers SUBACK and PUBACK only: a CONNECT refused by a hook keeps
    // its code (0x87 for a barred client, 0x86 for bad credentials), as in mochi.
    let (_r, code) = connect_code(addr, connect(V5, "o2", Some("mallory"), Some("secret"))).await;
    assert_eq!(code, ReasonCode::NotAuthorized);
    let (_r, code) = connect_code(addr, connect(V5, "o3", Some("alice"), Some("bad"))).await;
    assert_eq!(code, ReasonCode::BadUserNameOrPassword);
    server.shutdown().await;
}

#[tokio::test]
async fn placeholders_give_each_device_its_own_subtree() {
    let ledger = shared(
        r##"
auth:
  - username: device
    password: device-pw
    allow: true
acl:
  - username: device
    filters:
      "devices/%c/#": readwrite
      "devices/%u/announce": writeonly
  - filters:
      "#": deny
"##,
    );
    let (server, addr) = start(&ledger, Options::default()).await;
    let dev = |id| connect(V5, id, Some("device"), Some("device-pw"));
    let mut d1 = Raw::connect_ok(addr, dev("d1")).await;
    let mut d2 = Raw::connect_ok(addr, dev("d2")).await;
    assert_eq!(
        d1.subscribe(1, "devices/d1/#").await,
        ReasonCode::GrantedQoS1
    );
    assert_eq!(
        d2.subscribe(1, "devices/d2/+").await,
        ReasonCode::GrantedQoS1
    );
    assert_eq!(
        d1.subscribe(2, "devices/d2/#").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        d2.subscribe(2, "devices/+/temp").await,
        ReasonCode::NotAuthorized
    );
    // %u: the username's subtree is write-only for every device.
    assert_eq!(
        d2.subscribe(3, "devices/device/announce").await,
        ReasonCode::NotAuthorized
    );

    // Neither may write into the other's subtree.
    assert_eq!(
        d1.publish_qos1("devices/d2/cmd", 1, b"intrude").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        d2.publish_qos1("devices/d1/cmd", 2, b"intrude").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        d2.publish_qos1("devices/device/announce", 3, b"hello")
            .await,
        ReasonCode::NoMatchingSubscribers
    );
    // Each writes its own and reads it back.
    assert_eq!(
        d1.publish_qos1("devices/d1/temp", 3, b"21").await,
        ReasonCode::Success
    );
    assert_eq!(
        d2.publish_qos1("devices/d2/temp", 4, b"22").await,
        ReasonCode::Success
    );
    assert_eq!(
        d1.next_publish().await,
        ("devices/d1/temp".into(), b"21".to_vec())
    );
    assert_eq!(
        d2.next_publish().await,
        ("devices/d2/temp".into(), b"22".to_vec())
    );
    d1.quiet().await;
    d2.quiet().await;
    server.shutdown().await;
}

// ---- reload ----

fn write_file(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// Next SUBACK or PUBLISH from a rumqttc v5 event loop's channel.
async fn next5(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
) -> rumqttc::v5::mqttbytes::v5::Packet {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    loop {
        let p = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("nothing arrived")
            .expect("event loop ended");
        if matches!(p, P5::SubAck(_) | P5::Publish(_)) {
            return p;
        }
    }
}

#[tokio::test]
async fn reload_changes_new_connections_and_keeps_existing_clients() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.yaml");
    write_file(
        &path,
        r##"
auth:
  - {username: alice, password: secret, allow: true}
acl:
  - username: alice
    filters: {"a/#": readwrite, "b/#": readwrite}
"##,
    );
    let ledger = Arc::new(SharedLedger::from_path(&path).unwrap());
    let (server, addr) = start(&ledger, Options::default()).await;

    // Before the reload: alice connects with rumqttc and subscribes to `a/#`; a second
    // alice connection (raw) may publish to `b/#`.
    let mut o = rumqttc::v5::MqttOptions::new("alice-1", addr.ip().to_string(), addr.port());
    o.set_credentials("alice", "secret");
    o.set_keep_alive(Duration::from_secs(30));
    let (alice, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let alice_loop = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    let _ = tx.send(p);
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    });
    alice.subscribe("a/#", Q5::AtLeastOnce).await.unwrap();
    assert!(matches!(next5(&mut rx).await, P5::SubAck(_)));
    let mut alice_raw =
        Raw::connect_ok(addr, connect(V5, "alice-2", Some("alice"), Some("secret"))).await;
    assert_eq!(
        alice_raw.publish_qos1("b/1", 1, b"before").await,
        ReasonCode::NoMatchingSubscribers
    );

    // SIGHUP: the new file lets bob in instead of alice and takes `b/#` from alice.
    write_file(
        &path,
        r##"
auth:
  - {username: bob, password: bob-pw, allow: true}
acl:
  - username: alice
    filters: {"a/#": readwrite, "b/#": deny}
"##,
    );
    ledger.reload().unwrap();

    // New connections follow the new file.
    let (_r, code) =
        connect_code(addr, connect(V5, "alice-3", Some("alice"), Some("secret"))).await;
    assert_eq!(code, ReasonCode::BadUserNameOrPassword);
    let mut bob = Raw::connect_ok(addr, connect(V5, "bob", Some("bob"), Some("bob-pw"))).await;

    // Existing connections stay up: alice's subscription still delivers and she still
    // publishes where the new file lets her ...
    bob.publish("a/1", QoS::AtMostOnce, None, b"from-bob").await;
    alice
        .publish("a/2", Q5::AtLeastOnce, false, "from-alice")
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        if let P5::Publish(p) = next5(&mut rx).await {
            got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        }
    }
    got.sort();
    assert_eq!(got, ["from-alice", "from-bob"]);
    assert!(!alice_loop.is_finished(), "alice was disconnected");
    // ... and every check after the reload uses the new rules, for old connections too.
    assert_eq!(
        alice_raw.publish_qos1("b/2", 2, b"after").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        alice_raw.publish_qos1("a/3", 3, b"still-ok").await,
        ReasonCode::Success
    );
    assert!(matches!(next5(&mut rx).await, P5::Publish(p) if &p.payload[..] == b"still-ok"));

    // A reload that fails keeps the ledger in force.
    write_file(&path, "auth: [{username: eve, allow: maybe}]\n");
    assert!(ledger.reload().is_err());
    let (_r, code) = connect_code(addr, connect(V5, "bob-2", Some("bob"), Some("bob-pw"))).await;
    assert_eq!(code, ReasonCode::Success);

    server.shutdown().await;
    alice_loop.abort();
}

// ---- stacking and wide subscriptions ----

#[tokio::test]
async fn allow_all_stacked_with_a_ledger_defeats_its_acl_but_not_its_connect() {
    let ledger = shared(LEDGER);
    let (server, addr) = serve(
        Server::builder()
            .hook(LedgerHook::ledger(ledger.clone()))
            .hook(AllowAllHook::allow_all())
            .build(),
    )
    .await;
    // CONNECT: the ledger's refusal is a veto, AllowAll cannot override it.
    let (_r, code) = connect_code(addr, connect(V5, "x1", Some("alice"), Some("wrong"))).await;
    assert_eq!(code, ReasonCode::BadUserNameOrPassword);
    // ACL: any hook that allows wins, so what the ledger denies is allowed.
    let mut p = Raw::connect_ok(addr, connect(V5, "x2", Some("pub"), Some("secret"))).await;
    assert_eq!(p.subscribe(1, "secret/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(
        p.publish_qos1("sensors/t", 2, b"x").await,
        ReasonCode::NoMatchingSubscribers
    );
    server.shutdown().await;
}

#[tokio::test]
async fn allow_all_hook_allows_everything() {
    let (server, addr) = serve(Server::builder().hook(AllowAllHook::allow_all()).build()).await;
    let mut p = Raw::connect_ok(addr, connect(V5, "any", None, None)).await;
    assert_eq!(p.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    assert_eq!(
        p.publish_qos1("any/thing", 2, b"x").await,
        ReasonCode::Success
    );
    assert_eq!(p.next_publish().await, ("any/thing".into(), b"x".to_vec()));
    server.shutdown().await;
}

/// Read access is checked again for each delivered topic (as mochi and Mosquitto do): a
/// `Deny` inside a wider granted filter stops delivery.
#[tokio::test]
async fn deny_inside_a_wider_subscription_is_enforced_on_delivery() {
    let ledger = shared(
        r##"
auth:
  - allow: true
acl:
  - client: reader
    filters: {"secret/#": deny}
  - filters: {"#": readwrite}
"##,
    );
    let (server, addr) = start(&ledger, Options::default()).await;
    let mut reader = Raw::connect_ok(addr, connect(V5, "reader", None, None)).await;
    assert_eq!(
        reader.subscribe(1, "secret/#").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(reader.subscribe(2, "#").await, ReasonCode::GrantedQoS1);
    let mut writer = Raw::connect_ok(addr, connect(V5, "writer", None, None)).await;
    assert_eq!(
        writer.publish_qos1("secret/plans", 1, b"s").await,
        ReasonCode::NoMatchingSubscribers
    );
    assert_eq!(
        writer.publish_qos1("open/news", 2, b"n").await,
        ReasonCode::Success
    );
    // QoS 1 from one publisher arrives in order: had `secret/plans` been delivered, it
    // would come first.
    assert_eq!(
        reader.next_publish().await,
        ("open/news".into(), b"n".to_vec())
    );
    server.shutdown().await;
}

/// The ACL of mochi's README (`hooks/auth` example), without its first rule (`remote:
/// 127.0.0.1:*` allows everything to local clients, which every test client is). `melon`
/// may subscribe to `#` (the catch-all rule grants it) but not read `updates/…`, which its
/// own rule makes write-only; everyone else reads everything through `#`, since within one
/// rule a grant wins over the `Deny` (in mochi's ledger too).
const MOCHI_README: &str = r##"
auth:
  - {username: peach, password: password1, allow: true}
  - {username: melon, password: password2, allow: true}
acl:
  - username: melon
    filters:
      "melon/#": readwrite
      "updates/#": writeonly
  - filters:
      "#": readonly
      "updates/#": deny
"##;

#[tokio::test]
async fn mochi_readme_ledger_keeps_updates_from_melons_wide_subscription() {
    let ledger = shared(MOCHI_README);
    let (server, addr) = start(&ledger, Options::default()).await;
    let mut melon = Raw::connect_ok(addr, connect(V5, "m", Some("melon"), Some("password2"))).await;
    let mut peach = Raw::connect_ok(addr, connect(V5, "p", Some("peach"), Some("password1"))).await;
    assert_eq!(melon.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    assert_eq!(peach.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    let mut writer =
        Raw::connect_ok(addr, connect(V5, "w", Some("melon"), Some("password2"))).await;
    assert_eq!(
        writer.publish_qos1("updates/x", 1, b"u").await,
        ReasonCode::Success
    );
    assert_eq!(
        writer.publish_qos1("melon/x", 2, b"o").await,
        ReasonCode::Success
    );
    assert_eq!(
        peach.next_publish().await,
        ("updates/x".into(), b"u".to_vec())
    );
    assert_eq!(
        peach.next_publish().await,
        ("melon/x".into(), b"o".to_vec())
    );
    // melon: `updates/x` was skipped (it would have come first).
    assert_eq!(
        melon.next_publish().await,
        ("melon/x".into(), b"o".to_vec())
    );
    melon.quiet().await;
    server.shutdown().await;
}

/// A reload that adds a deny reaches a subscription made before it, once the engine is told
/// (`Server::acl_changed`, which the `moco` binary calls on SIGHUP).
#[tokio::test]
async fn a_reload_that_adds_a_deny_reaches_existing_subscriptions() {
    let open = "auth: [{allow: true}]\nacl: [{filters: {\"#\": readwrite}}]\n";
    let ledger = shared(open);
    let (server, addr) = start(&ledger, Options::default()).await;
    let mut reader = Raw::connect_ok(addr, connect(V5, "reader", None, None)).await;
    assert_eq!(reader.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    let mut writer = Raw::connect_ok(addr, connect(V5, "writer", None, None)).await;
    writer.publish_qos1("updates/1", 1, b"before").await;
    assert_eq!(
        reader.next_publish().await,
        ("updates/1".into(), b"before".to_vec())
    );

    ledger.store(
        moco_auth::Ledger::from_yaml_bytes(
            br##"
auth: [{allow: true}]
acl:
  - client: reader
    filters: {"updates/#": deny}
  - filters: {"#": readwrite}
"##,
        )
        .unwrap(),
    );
    server.acl_changed();
    writer.publish_qos1("updates/2", 2, b"after").await;
    writer.publish_qos1("other/2", 3, b"other").await;
    assert_eq!(
        reader.next_publish().await,
        ("other/2".into(), b"other".to_vec())
    );
    server.shutdown().await;
}

/// Counts the read checks the wrapped ledger hook is asked, and forwards everything.
struct Counting(LedgerHook, Arc<std::sync::atomic::AtomicUsize>);

impl moco_engine::Hook for Counting {
    fn id(&self) -> &str {
        "counting"
    }
    fn provides(&self, e: moco_engine::Event) -> bool {
        self.0.provides(e)
    }
    fn on_connect_authenticate(&self, c: &moco_engine::ClientInfo, p: &Connect) -> bool {
        self.0.on_connect_authenticate(c, p)
    }
    fn on_connect(&self, c: &moco_engine::ClientInfo, p: &Connect) -> Result<(), ReasonCode> {
        self.0.on_connect(c, p)
    }
    fn on_acl_check(&self, c: &moco_engine::ClientInfo, t: &str, a: moco_engine::Access) -> bool {
        if a == moco_engine::Access::Read {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.0.on_acl_check(c, t, a)
    }
    fn acl_may_deny_within(&self, c: &moco_engine::ClientInfo, f: &str) -> bool {
        self.0.acl_may_deny_within(c, f)
    }
}

/// With an allow-all ledger every message is delivered and the ACL hook is asked once, at
/// SUBSCRIBE, not per message.
#[tokio::test]
async fn an_allow_all_ledger_is_not_asked_per_delivery() {
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ledger = shared("auth: [{allow: true}]\n");
    let (server, addr) = serve(
        Server::builder()
            .hook(Counting(LedgerHook::ledger(ledger), reads.clone()))
            .build(),
    )
    .await;
    let mut reader = Raw::connect_ok(addr, connect(V5, "reader", None, None)).await;
    assert_eq!(reader.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    let mut writer = Raw::connect_ok(addr, connect(V5, "writer", None, None)).await;
    const TOPICS: [&str; 5] = ["a", "b/c", "updates/x", "d/e/f", "a"];
    for (i, t) in TOPICS.iter().enumerate() {
        assert_eq!(
            writer.publish_qos1(t, i as u16 + 1, b"m").await,
            ReasonCode::Success
        );
    }
    for t in TOPICS {
        assert_eq!(reader.next_publish().await.0, t);
    }
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the SUBSCRIBE"
    );
    server.shutdown().await;
}

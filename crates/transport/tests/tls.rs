//! TLS and mutual TLS over real loopback sockets: a client trusting the test CA connects,
//! subscribes and receives; the verified client certificate reaches the hooks and, with
//! `use_identity_as_username`, the auth ledger; bad files fail start-up naming the listener
//! and the file; bad input is closed without disturbing anyone.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use moco_codec::{Connect, ReasonCode};
use moco_engine::{AllowAll, ClientInfo, Event, Hook, ListenerKind, Server};
use moco_test_support::pki::Pki;
use moco_test_support::stream::Mqtt;
use moco_test_support::WAIT;
use moco_transport::{AnyListener, Bound, Error, Spec, TlsSettings, ALPN_MQTT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const V5: moco_codec::ProtocolVersion = moco_codec::ProtocolVersion::V5;

async fn serve(mut server: Server, spec: Spec) -> (Server, SocketAddr) {
    let l = AnyListener::bind("secure", &spec).await.unwrap();
    let Bound::Ip(addr) = l.bound().unwrap() else {
        panic!("not an IP listener")
    };
    l.add_to(&mut server, "secure");
    server.serve();
    (server, addr)
}

fn tls(settings: TlsSettings) -> Spec {
    Spec::Tls("127.0.0.1:0".parse().unwrap(), settings)
}

/// Records what the hooks see of each connecting client.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<ClientInfo>>>);

impl Hook for Seen {
    fn id(&self) -> &str {
        "seen"
    }
    fn provides(&self, e: Event) -> bool {
        e == Event::OnConnect
    }
    fn on_connect(&self, client: &ClientInfo, _: &Connect) -> Result<(), ReasonCode> {
        self.0.lock().unwrap().push(client.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_client_trusting_the_ca_connects_subscribes_and_receives() {
    let pki = Pki::new();
    let (server, addr) = serve(
        Server::builder().hook(AllowAll).build(),
        tls(pki.settings()),
    )
    .await;
    let stream = pki.connect(addr, None, ALPN_MQTT).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"mqtt"[..]));
    let mut c = Mqtt::new(stream, V5);
    assert_eq!(c.connect("tls-1", None).await, ReasonCode::Success);
    assert_eq!(c.subscribe(1, "t/#").await, ReasonCode::GrantedQoS1);
    c.publish("t/x", b"over tls").await;
    assert_eq!(c.next_publish().await, ("t/x".into(), b"over tls".to_vec()));
    // TLS 1.2 too.
    let tls12 = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(pki.roots())
    .with_no_client_auth();
    let s12 = pki.connect_with(addr, Arc::new(tls12)).await.unwrap();
    assert_eq!(
        s12.get_ref().1.protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2)
    );
    let mut c12 = Mqtt::new(s12, V5);
    assert_eq!(c12.connect("tls-12", None).await, ReasonCode::Success);
    // A client offering no ALPN at all is served too.
    let mut d = Mqtt::new(pki.connect(addr, None, &[]).await.unwrap(), V5);
    assert_eq!(d.connect("tls-2", None).await, ReasonCode::Success);
    let info = server.client("tls-2").expect("connected");
    assert!(info.remote.starts_with("127.0.0.1:"), "{}", info.remote);
    server.shutdown().await;
}

const LEDGER: &str = r##"
auth:
  - username: device-1
    allow: true
acl:
  - username: device-1
    filters:
      "devices/device-1/#": readwrite
  - filters:
      "#": deny
"##;

#[tokio::test]
async fn the_certificate_names_the_client_and_the_ledger_judges_by_it() {
    let pki = Pki::new();
    let ledger = moco_auth::Ledger::from_yaml_bytes(LEDGER.as_bytes()).unwrap();
    let shared = Arc::new(moco_auth::SharedLedger::new(ledger));
    let seen = Seen::default();
    let builder = Server::builder()
        .hook(moco_auth::LedgerHook::ledger(shared))
        .hook(seen.clone());
    let (server, addr) = serve(builder.build(), tls(pki.mutual(true, true))).await;

    // The CONNECT's user name is replaced by the certificate's common name.
    let cert = pki.client("device-1", &["device-1.example", "127.0.0.2"]);
    let der = cert.chain[0].to_vec();
    let mut c = Mqtt::new(pki.connect(addr, Some(cert), ALPN_MQTT).await.unwrap(), V5);
    assert_eq!(c.connect("d1", Some("mallory")).await, ReasonCode::Success);
    assert_eq!(
        c.subscribe(1, "devices/device-1/cmd").await,
        ReasonCode::GrantedQoS1
    );
    assert_eq!(
        c.subscribe(2, "devices/device-2/cmd").await,
        ReasonCode::NotAuthorized
    );
    c.publish("devices/device-1/cmd", b"mine").await;
    assert_eq!(c.next_publish().await.1, b"mine".to_vec());
    {
        let seen = seen.0.lock().unwrap();
        let info = seen.last().unwrap();
        assert_eq!(info.username.as_deref(), Some("device-1"));
        assert_eq!(info.kind, ListenerKind::Tls);
        let id = info.tls.as_ref().expect("a TLS identity");
        assert_eq!(id.common_name.as_deref(), Some("device-1"));
        assert_eq!(
            id.sans,
            vec!["device-1.example".to_owned(), "127.0.0.2".to_owned()]
        );
        assert_eq!(id.der, der);
    }

    // Another device's certificate: the ledger does not know that name.
    let other = pki.client("device-2", &[]);
    let mut d = Mqtt::new(pki.connect(addr, Some(other), ALPN_MQTT).await.unwrap(), V5);
    assert_eq!(
        d.connect("d2", Some("device-1")).await,
        ReasonCode::BadUserNameOrPassword
    );

    // Without a common name, the first SAN is the name.
    let san_only = pki.client("", &["device-1"]);
    let mut e = Mqtt::new(
        pki.connect(addr, Some(san_only), ALPN_MQTT).await.unwrap(),
        V5,
    );
    assert_eq!(e.connect("d3", None).await, ReasonCode::Success);
    server.shutdown().await;
}

/// Whether a client's connection was refused: at the handshake (TLS 1.3 reports a refused
/// client certificate only at the first read) or by the server closing before CONNACK.
async fn refused(
    pki: &Pki,
    addr: SocketAddr,
    cert: Option<moco_test_support::pki::ClientCert>,
) -> bool {
    let Ok(stream) = pki.connect(addr, cert, ALPN_MQTT).await else {
        return true;
    };
    let mut c = Mqtt::new(stream, V5);
    let mut connect = Connect::new(V5, "x");
    connect.keep_alive = 0;
    c.send(connect).await;
    c.recv().await.is_none()
}

#[tokio::test]
async fn a_required_client_certificate_must_be_signed_by_the_client_ca() {
    let pki = Pki::new();
    let (server, addr) = serve(
        Server::builder().hook(AllowAll).build(),
        tls(pki.mutual(true, false)),
    )
    .await;
    assert!(refused(&pki, addr, None).await, "no certificate");
    assert!(
        refused(&pki, addr, Some(pki.stranger("device-1"))).await,
        "unknown CA"
    );
    assert!(
        !refused(&pki, addr, Some(pki.client("ok", &[]))).await,
        "a good certificate"
    );
    server.shutdown().await;

    // Optional: no certificate is fine (and no identity), a bad one is still refused.
    let seen = Seen::default();
    let (server, addr) = serve(
        Server::builder().hook(AllowAll).hook(seen.clone()).build(),
        tls(pki.mutual(false, false)),
    )
    .await;
    let mut c = Mqtt::new(pki.connect(addr, None, ALPN_MQTT).await.unwrap(), V5);
    assert_eq!(c.connect("anon", Some("u")).await, ReasonCode::Success);
    assert!(seen.0.lock().unwrap()[0].tls.is_none());
    assert!(
        refused(&pki, addr, Some(pki.stranger("device-1"))).await,
        "unknown CA"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_certificate_and_key_files_name_the_listener_the_file_and_the_problem() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    async fn check(settings: TlsSettings) -> Result<AnyListener, Error> {
        AnyListener::bind("secure", &tls(settings)).await
    }
    // Missing.
    let mut s = pki.settings();
    s.cert_file = dir.join("missing.pem");
    let e = check(s).await.unwrap_err().to_string();
    assert!(e.starts_with("listener `secure`: certificate file "), "{e}");
    assert!(e.contains("missing.pem"), "{e}");
    // Not PEM.
    std::fs::write(dir.join("junk.pem"), "hello").unwrap();
    let mut s = pki.settings();
    s.cert_file = dir.join("junk.pem");
    let e = check(s).await.unwrap_err().to_string();
    assert!(
        e.contains("junk.pem") && e.contains("no PEM certificate"),
        "{e}"
    );
    let mut s = pki.settings();
    s.key_file = dir.join("junk.pem");
    let e = check(s).await.unwrap_err().to_string();
    assert!(
        e.contains("private key file") && e.contains("no PEM private key"),
        "{e}"
    );
    // A key that is not the certificate's.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
    let mut s = pki.settings();
    s.key_file = dir.join("other.key");
    let e = check(s).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::File {
                what: "private key file",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("does not match the certificate"),
        "{e}"
    );
    // A missing client CA.
    let mut s = pki.mutual(true, false);
    s.client_ca_file = Some(dir.join("nope.pem"));
    let e = check(s).await.unwrap_err().to_string();
    assert!(
        e.contains("client CA file") && e.contains("nope.pem"),
        "{e}"
    );
    // Spec::check reads the same files without binding.
    let mut s = pki.settings();
    s.cert_file = dir.join("missing.pem");
    assert!(tls(s).check("secure").is_err());
    assert!(tls(pki.settings()).check("secure").is_ok());
}

#[tokio::test]
async fn plain_mqtt_to_a_tls_port_and_a_client_hello_to_a_plain_port_are_closed() {
    let pki = Pki::new();
    let (server, addr) = serve(
        Server::builder().hook(AllowAll).build(),
        tls(pki.settings()),
    )
    .await;
    // A bystander over TLS, connected throughout.
    let mut bystander = Mqtt::new(pki.connect(addr, None, ALPN_MQTT).await.unwrap(), V5);
    assert_eq!(
        bystander.connect("bystander", None).await,
        ReasonCode::Success
    );
    assert_eq!(bystander.subscribe(1, "b").await, ReasonCode::GrantedQoS1);

    // Plain MQTT to the TLS port: not a ClientHello; the server answers with a TLS alert (or
    // nothing) and closes.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = bytes::BytesMut::new();
    moco_codec::Packet::from(Connect::new(V5, "plain"))
        .encode(V5, &mut out)
        .unwrap();
    plain.write_all(&out).await.unwrap();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the TLS port kept a plain client open");
    assert!(sink.first() != Some(&0x20), "a CONNACK went out in clear");
    assert!(server.client("plain").is_none());

    // A ClientHello to a plain TCP port: a malformed packet, closed.
    let plain_port = moco_transport::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let plain_addr = plain_port.local_addr().unwrap();
    let mut plain_server = Server::builder().hook(AllowAll).build();
    plain_server.add_listener("tcp", plain_port);
    plain_server.serve();
    let hello = pki.connect(plain_addr, None, ALPN_MQTT).await;
    assert!(
        hello.is_err(),
        "a TLS handshake succeeded against plain MQTT"
    );

    // The bystander noticed nothing.
    bystander.publish("b", b"still here").await;
    assert_eq!(bystander.next_publish().await.1, b"still here".to_vec());
    plain_server.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_at_the_connect_timeout_and_blocks_nobody() {
    let pki = Pki::new();
    let options = moco_engine::Options {
        connect_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let (server, addr) = serve(
        Server::builder().options(options).hook(AllowAll).build(),
        tls(pki.settings()),
    )
    .await;
    // Slowloris: a TCP connection that never says anything.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Meanwhile another client connects at once.
    let mut c = Mqtt::new(pki.connect(addr, None, ALPN_MQTT).await.unwrap(), V5);
    assert_eq!(c.connect("prompt", None).await, ReasonCode::Success);
    let started = std::time::Instant::now();
    let mut sink = [0u8; 16];
    let n = tokio::time::timeout(WAIT, stalled.read(&mut sink)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    server.shutdown().await;
}

#[test]
fn keys_in_pkcs8_pkcs1_and_sec1_are_read() {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let settings = |cert: &str, key: &str| TlsSettings {
        cert_file: keys.join(cert),
        key_file: keys.join(key),
        ..Default::default()
    };
    // PKCS#8 (rcgen's form) is what every other test here uses.
    assert!(settings("sec1.pem", "sec1.key")
        .load("ec", ALPN_MQTT)
        .is_ok());
    assert!(settings("pkcs1.pem", "pkcs1.key")
        .load("rsa", ALPN_MQTT)
        .is_ok());
    let e = settings("sec1.pem", "pkcs1.key")
        .load("mixed", ALPN_MQTT)
        .unwrap_err();
    assert!(
        e.to_string().contains("does not match the certificate"),
        "{e}"
    );
}

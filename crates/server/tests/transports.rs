//! The `moco` binary builds each listener `type` of its configuration: a mutual-TLS listener
//! whose certificates' common names are the user names the inline ledger judges, a WebSocket
//! and a Unix socket beside it; `check-config` reads the certificate files; `--ws` works.

mod common;

use std::net::SocketAddr;

use common::{run, write, Moco};
use moco_codec::{ProtocolVersion, ReasonCode};
use moco_test_support::pki::Pki;
use moco_test_support::stream::Mqtt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn config(pki: &Pki, sock: &str) -> String {
    format!(
        r##"listeners:
  - type: tls
    id: devices
    address: 127.0.0.1:0
    tls_cert_file: server.pem
    tls_key_file: server.key
    tls_client_ca_file: ca.pem
    require_client_cert: true
    use_identity_as_username: true
  - type: ws
    id: web
    address: 127.0.0.1:0
    path: /mqtt
  - type: unix
    id: local
    address: {sock}
    mode: "0600"
hooks:
  auth:
    ledger:
      auth:
        - username: device-1
          allow: true
      acl:
        - username: device-1
          filters:
            "devices/device-1/#": readwrite
        - filters:
            "#": deny
"##
    )
    .replace("server.pem", &pki.cert_file.display().to_string())
    .replace("server.key", &pki.key_file.display().to_string())
    .replace("ca.pem", &pki.ca_file.display().to_string())
}

/// The address of listener `id` in the start-up line (`id=ADDR`).
fn listener(line: &str, id: &str) -> String {
    let at = line.find(&format!("{id}=")).unwrap() + id.len() + 1;
    line[at..].split([' ', '"']).next().unwrap().to_owned()
}

#[tokio::test]
async fn each_listener_type_from_the_file() {
    let pki = Pki::new();
    let sock = pki.dir.path().join("moco.sock");
    let file = write(
        pki.dir.path(),
        "moco.yaml",
        &config(&pki, &sock.display().to_string()),
    );
    let out = run(&["check-config", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut m = Moco::start(&["--config", &file]);
    let line = m.wait_for_log("moco serving");
    let tls: SocketAddr = listener(&line, "devices").parse().unwrap();
    let ws: SocketAddr = listener(&line, "web").parse().unwrap();
    assert_eq!(listener(&line, "local"), format!("unix:{}", sock.display()));

    // The certificate's CN is the user name the ledger judges.
    let cert = pki.client("device-1", &[]);
    let mut c = Mqtt::new(pki.connect(tls, Some(cert), &[b"mqtt"]).await.unwrap(), V5);
    assert_eq!(
        c.connect("d1", Some("someone-else")).await,
        ReasonCode::Success
    );
    assert_eq!(
        c.subscribe(1, "devices/device-1/up").await,
        ReasonCode::GrantedQoS1
    );
    assert_eq!(
        c.subscribe(2, "devices/device-2/up").await,
        ReasonCode::NotAuthorized
    );
    let other = pki.client("device-2", &[]);
    let mut d = Mqtt::new(pki.connect(tls, Some(other), &[b"mqtt"]).await.unwrap(), V5);
    assert_eq!(
        d.connect("d2", Some("device-1")).await,
        ReasonCode::BadUserNameOrPassword
    );

    // The Unix socket answers (and the ledger refuses an anonymous client there).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut u = Mqtt::new(tokio::net::UnixStream::connect(&sock).await.unwrap(), V5);
    assert_eq!(
        u.connect("u", None).await,
        ReasonCode::BadUserNameOrPassword
    );

    // The WebSocket listener upgrades /mqtt only.
    let mut tcp = tokio::net::TcpStream::connect(ws).await.unwrap();
    let req = "GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
               Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    m.signal("TERM");
    assert!(m.wait_exit(std::time::Duration::from_secs(10)).success());
    assert!(!sock.exists(), "the socket file outlived moco");
}

#[test]
fn check_config_reads_the_certificate_files() {
    let pki = Pki::new();
    let sock = pki.dir.path().join("moco.sock");
    let other = rcgen::KeyPair::generate().unwrap();
    let wrong_key = write(pki.dir.path(), "other.key", &other.serialize_pem());
    let text = config(&pki, &sock.display().to_string())
        .replace(&pki.key_file.display().to_string(), &wrong_key);
    let file = write(pki.dir.path(), "bad.yaml", &text);
    let out = run(&["check-config", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("listeners[0].tls_key_file"), "{err}");
    assert!(
        err.contains("listener `devices`: private key file") && err.contains("other.key"),
        "{err}"
    );
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[test]
fn the_ws_flag_adds_a_websocket_listener() {
    let mut m = Moco::start(&["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0"]);
    let line = m.wait_for_log("moco serving");
    let ws: SocketAddr = listener(&line, "ws").parse().unwrap();
    let mut tcp = std::net::TcpStream::connect(ws).unwrap();
    use std::io::{Read, Write};
    tcp.set_read_timeout(Some(moco_test_support::WAIT)).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    m.signal("TERM");
    assert!(m.wait_exit(std::time::Duration::from_secs(10)).success());
}

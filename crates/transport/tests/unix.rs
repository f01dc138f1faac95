//! Unix sockets: MQTT over one, a stale socket file replaced, a live one refused, the mode
//! applied, the file removed when the server stops.

use std::os::unix::fs::PermissionsExt;

use moco_codec::ReasonCode;
use moco_engine::{AllowAll, Server};
use moco_test_support::stream::Mqtt;
use moco_transport::{AnyListener, Bound, Error, Spec, UnixListener};

const V5: moco_codec::ProtocolVersion = moco_codec::ProtocolVersion::V5;

#[tokio::test]
async fn mqtt_over_a_unix_socket_with_its_file_managed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moco.sock");
    // A stale socket file, as a crashed run leaves it: bound once, its listener gone.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());

    let mut server = Server::builder().hook(AllowAll).build();
    let l = AnyListener::bind("local", &Spec::Unix(path.clone(), Some(0o660)))
        .await
        .unwrap();
    assert_eq!(l.bound().unwrap(), Bound::Unix(path.clone()));
    l.add_to(&mut server, "local");
    server.serve();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut c = Mqtt::new(stream, V5);
    assert_eq!(c.connect("u1", None).await, ReasonCode::Success);
    assert_eq!(c.subscribe(1, "u/#").await, ReasonCode::GrantedQoS1);
    c.publish("u/1", b"local").await;
    assert_eq!(c.next_publish().await.1, b"local".to_vec());
    let info = server.client("u1").unwrap();
    assert_eq!(info.remote.as_ref(), format!("unix:{}", path.display()));

    // A live socket is not taken over.
    let e = UnixListener::bind("again", &path, None).await.unwrap_err();
    assert!(matches!(e, Error::Unix { .. }), "{e}");
    assert!(
        e.to_string().contains("another process is listening"),
        "{e}"
    );
    // Nor is a file that is not a socket.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let e = UnixListener::bind("file", &file, None).await.unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert!(file.exists());

    server.shutdown().await;
    assert!(!path.exists(), "the socket file outlived the server");
}

//! The HTTP listeners through the real `moco` binary: `--info`, the listener kinds of the
//! configuration file, credentials and the rule against an open admin API beyond loopback.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use moco_test_support::WAIT;

/// The address of listener `id` in the start-up line (`listeners=tcp=ADDR http=ADDR`).
fn listener_addr(line: &str, id: &str) -> SocketAddr {
    let key = format!("{id}=");
    line.split([' ', '"'])
        .map(|t| t.strip_prefix("listeners=").unwrap_or(t))
        .find_map(|t| t.strip_prefix(key.as_str()))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no `{id}` listener in `{line}`"))
}

/// A GET over a fresh loopback connection: status and body.
fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply.split(' ').nth(1).unwrap().parse().unwrap();
    let body = reply.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn info_flag_serves_sys_json_health_and_metrics() {
    let mut m = Moco::start(&["--tcp", "127.0.0.1:0", "--info", "127.0.0.1:0"]);
    let line = m.wait_for_log("moco serving");
    let http = listener_addr(&line, "http");
    assert!(http.ip().is_loopback());
    let (status, body) = get(http, "/api/v1/sys", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(get(http, "/readyz", None).0, 200);
    assert_eq!(get(http, "/healthcheck", None).0, 200);
    let (status, metrics) = get(http, "/metrics", None);
    assert_eq!(status, 200);
    assert!(metrics.contains("moco_clients_connected 0"), "{metrics}");
    assert!(
        metrics.contains("moco_messages_dropped_by_reason_total{reason=\"queue_full\"} 0"),
        "the metrics hook is installed: {metrics}"
    );
    assert_eq!(get(http, "/dashboard", None).0, 200);
    m.signal("TERM");
    assert_eq!(m.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn listener_kinds_from_a_file_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "http.yaml",
        "listeners:\n\
         \x20 - { type: tcp, address: 127.0.0.1:0 }\n\
         \x20 - type: http\n\
         \x20   address: 127.0.0.1:0\n\
         \x20   auth: { bearer_token: s3cret }\n\
         \x20 - { type: sysinfo, address: 127.0.0.1:0 }\n\
         \x20 - { type: healthcheck, address: 127.0.0.1:0 }\n\
         hooks:\n  auth:\n    allow_all: true\n",
    );
    let mut m = Moco::start(&["--config", &config]);
    let line = m.wait_for_log("moco serving");
    let http = listener_addr(&line, "http");
    let sysinfo = listener_addr(&line, "sysinfo");
    let health = listener_addr(&line, "healthcheck");
    assert_eq!(get(http, "/api/v5/clients", None).0, 401);
    let (status, body) = get(http, "/api/v5/clients", Some("Bearer s3cret"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(sysinfo, "/", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"clients_maximum\""), "{body}");
    assert_eq!(get(health, "/healthcheck", None).0, 200);
    assert_eq!(get(health, "/api/v1/sys", None).0, 404);

    // check-config shows the listener, its token redacted.
    let out = run(&["check-config", &config]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("type: sysinfo") && shown.contains("bearer_token: <redacted>"));
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn http_beyond_loopback_without_credentials_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let open = write(
        dir.path(),
        "open.yaml",
        "listeners:\n  - type: tcp\n    address: 127.0.0.1:0\n  - type: http\n    address: 0.0.0.0:0\n",
    );
    let out = run(&["--config", &open]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "open.yaml",
        "line 5",
        "listeners[1].address",
        "without credentials",
    ] {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }

    // A read-only kind may be opened on purpose (checked, not started: loopback only here).
    let probe = write(
        dir.path(),
        "probe.yaml",
        "listeners:\n  - type: healthcheck\n    address: 0.0.0.0:0\n    anonymous_read: true\n",
    );
    assert!(run(&["check-config", &probe]).status.success());

    // MQTT listeners take no HTTP credentials; bad hashes are refused where they are written.
    for (name, text, field) in [
        (
            "tcp-auth.yaml",
            "listeners:\n  - type: tcp\n    address: 127.0.0.1:0\n    auth: { bearer_token: x }\n",
            "listeners[0].auth",
        ),
        (
            "bad-hash.yaml",
            "listeners:\n  - type: http\n    address: 127.0.0.1:0\n    auth:\n      users: { ops: \"$argon2id$nope\" }\n",
            "listeners[0].auth",
        ),
    ] {
        let path = write(dir.path(), name, text);
        let out = run(&["check-config", &path]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(field), "{name}: {err}");
    }
}

#[test]
fn passwd_prints_a_hash_the_http_users_and_the_ledger_accept() {
    use std::process::Stdio;
    let mut child = moco()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let p = moco_auth::Password::parse(hash).unwrap();
    assert!(p.verify(b"hunter2") && !p.verify(b"hunter3"));
    assert!(moco_http::HttpAuth::default()
        .with_user("ops", hash)
        .is_ok());
}

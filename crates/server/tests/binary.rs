//! The real `moco` binary: start without a configuration, help and version, signals, reload.

mod common;

use std::time::Duration;

use common::*;
use moco_test_support::{try_v4, v4_opts, v5_bare, v5_opts, WAIT};

#[test]
fn help_lists_config_and_examples_and_version_prints() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--config",
        "--tcp",
        "--ws",
        "--info",
        "--tls-cert-file",
        "check-config",
        "Examples:",
        "MOCO_CONFIG",
        "SIGHUP",
    ] {
        assert!(help.contains(needle), "--help lacks `{needle}`:\n{help}");
    }
    let out = run(&["--version"]);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert_eq!(v.trim(), format!("moco {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--tls-cert-file", "c.pem"]);
    assert_eq!(out.status.code(), Some(2), "cert without key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_config_start_round_trip_and_connection_log() {
    let mut m = Moco::start(&["--tcp", "127.0.0.1:0"]);
    let line = m.wait_for_log("moco serving");
    assert!(
        line.contains("loopback only") && line.contains("anonymous clients allowed"),
        "{line}"
    );
    assert!(m.addr.ip().is_loopback());

    let mut c = try_v4(v4_opts("round-trip", m.addr))
        .await
        .expect("connect");
    c.round_trip("a/b", "hello").await;
    let connected = m.wait_for_log("client connected");
    for field in ["round-trip", "remote=127.0.0.1:", "protocol=3.1.1"] {
        assert!(connected.contains(field), "`{field}` missing: {connected}");
    }
    c.client.disconnect().await.unwrap();
    let gone = m.wait_for_log("client disconnected");
    assert!(
        gone.contains("round-trip") && gone.contains("reason=") && gone.contains("protocol="),
        "{gone}"
    );

    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(8)).code(), Some(0));
}

/// `moco` with no arguments listens on 127.0.0.1:1883 (TCP) and 127.0.0.1:1882 (WebSocket).
/// Another process may hold a port on a shared machine; then moco must say so and exit 1,
/// naming the address.
#[test]
fn no_arguments_means_loopback_1883() {
    let mut child = moco()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            if line.contains("moco serving") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Either it serves (then SIGTERM stops it with 0) or the port is taken (exit 1).
    let serving = rx.recv_timeout(WAIT).is_ok();
    if serving {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("moco did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    if serving {
        assert!(
            err.contains("tcp=127.0.0.1:1883")
                && err.contains("ws=127.0.0.1:1882")
                && err.contains("anonymous clients allowed"),
            "{err}"
        );
        assert_eq!(status.code(), Some(0), "{err}");
    } else {
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(
            err.contains("cannot listen on 127.0.0.1:1883")
                || err.contains("cannot listen on 127.0.0.1:1882"),
            "{err}"
        );
    }
}

#[test]
fn beyond_loopback_without_config_is_refused() {
    for addr in ["0.0.0.0:0", ":0"] {
        let out = run(&["--tcp", addr]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("refusing to listen") && err.contains("--config"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = run(&["--tcp", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("command line") && err.contains("listeners[0].address"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_0x8b_to_every_v5_client_and_exits_0() {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
    let mut m = Moco::start(&["--tcp", "127.0.0.1:0"]);
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(v5_bare(v5_opts(&format!("v5-{i}"), m.addr)).await);
    }
    m.signal("TERM");
    for c in clients {
        let e = tokio::time::timeout(WAIT, c.task)
            .await
            .expect("client ended in time")
            .unwrap();
        match e {
            Some(rumqttc::v5::ConnectionError::MqttState(
                rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
            )) => assert_eq!(reason_code, DisconnectReasonCode::ServerShuttingDown),
            other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
        }
    }
    let status = m.wait_exit(Duration::from_secs(6));
    assert_eq!(status.code(), Some(0), "log:\n{}", m.log().join("\n"));
    assert!(m.log().iter().any(|l| l.contains("SIGTERM")));
}

#[test]
fn sigint_exits_0() {
    let mut m = Moco::start(&["--tcp", "127.0.0.1:0"]);
    m.signal("INT");
    assert_eq!(m.wait_exit(Duration::from_secs(6)).code(), Some(0));
}

fn ledger_allowing(user: &str) -> String {
    format!("auth:\n  - username: {user}\n    password: pw\n    allow: true\n")
}

fn with_login(mut o: rumqttc::MqttOptions, user: &str) -> rumqttc::MqttOptions {
    o.set_credentials(user, "pw");
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_ledger_file_and_keeps_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = write(dir.path(), "ledger.yaml", &ledger_allowing("alice"));
    let config = write(
        dir.path(),
        "moco.yaml",
        "listeners:\n  - type: tcp\n    address: 127.0.0.1:0\nhooks:\n  auth:\n    ledger_file: ledger.yaml\n",
    );
    let mut m = Moco::start(&["--config", &config]);
    assert!(m.wait_for_log("moco serving").contains("auth=\"a ledger\""));

    let mut alice = try_v4(with_login(v4_opts("alice-1", m.addr), "alice"))
        .await
        .expect("alice may connect");
    assert!(try_v4(with_login(v4_opts("bob-1", m.addr), "bob"))
        .await
        .is_err());
    let refused = m.wait_for_log("client refused");
    for field in [
        "bob-1",
        "remote=127.0.0.1:",
        "protocol=3.1.1",
        "reason=BadUserNameOrPassword",
    ] {
        assert!(refused.contains(field), "`{field}` missing: {refused}");
    }

    std::fs::write(&ledger, ledger_allowing("bob")).unwrap();
    let from = m.log_len();
    m.signal("HUP");
    m.wait_for_log_after(from, "auth ledger reloaded");

    let refused = try_v4(with_login(v4_opts("alice-2", m.addr), "alice")).await;
    assert!(
        matches!(refused, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
        "alice must be refused after the reload: {:?}",
        refused.err()
    );
    let mut bob = try_v4(with_login(v4_opts("bob-2", m.addr), "bob"))
        .await
        .expect("bob may connect after the reload");
    // The client connected before the reload is still there and works.
    alice.round_trip("still/here", "yes").await;
    assert!(!alice.task.is_finished());

    // A broken ledger: the reload fails, says why, and the old ledger stays.
    std::fs::write(&ledger, "auth:\n  - username: bob\n    allow: perhaps\n").unwrap();
    let from = m.log_len();
    m.signal("HUP");
    let why = m.wait_for_log_after(from, "reload failed");
    assert!(
        why.contains("ledger.yaml") && why.contains("line 3"),
        "{why}"
    );
    try_v4(with_login(v4_opts("bob-3", m.addr), "bob"))
        .await
        .expect("the old ledger stays after a failed reload");
    bob.round_trip("bob/t", "x").await;

    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(8)).code(), Some(0));
}

/// A SIGHUP that adds a deny inside a granted filter stops deliveries on a subscription
/// made before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_deny_reaches_an_existing_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let users = "auth:\n  - {username: watcher, password: pw, allow: true}\n  - {username: writer, password: pw, allow: true}\n";
    let ledger = write(
        dir.path(),
        "ledger.yaml",
        &format!("{users}acl:\n  - filters: {{\"#\": readwrite}}\n"),
    );
    let config = write(
        dir.path(),
        "moco.yaml",
        "listeners:\n  - type: tcp\n    address: 127.0.0.1:0\nhooks:\n  auth:\n    ledger_file: ledger.yaml\n",
    );
    let mut m = Moco::start(&["--config", &config]);
    m.wait_for_log("moco serving");
    let mut watcher = try_v4(with_login(v4_opts("watcher", m.addr), "watcher"))
        .await
        .unwrap();
    watcher.round_trip("updates/1", "before").await;
    watcher
        .client
        .subscribe("#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    watcher.next_suback().await;
    let writer = try_v4(with_login(v4_opts("writer", m.addr), "writer"))
        .await
        .unwrap();

    std::fs::write(
        &ledger,
        format!("{users}acl:\n  - username: watcher\n    filters: {{\"updates/#\": deny}}\n  - filters: {{\"#\": readwrite}}\n"),
    )
    .unwrap();
    let from = m.log_len();
    m.signal("HUP");
    m.wait_for_log_after(from, "auth ledger reloaded");
    for (topic, payload) in [("updates/2", "denied"), ("other/2", "allowed")] {
        writer
            .client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    // QoS 1 from one publisher keeps its order: `updates/2` would have come first.
    let p = watcher.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("other/2", &b"allowed"[..])
    );

    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(8)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_an_inline_ledger_and_reports_restart_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let text = |user: &str, inflight: u32| {
        format!(
            "listeners:\n  - type: tcp\n    address: 127.0.0.1:0\n\
             options:\n  capabilities:\n    maximum_inflight: {inflight}\n\
             hooks:\n  auth:\n    ledger:\n      auth:\n        - username: {user}\n          allow: true\n"
        )
    };
    let config = write(dir.path(), "moco.yaml", &text("carol", 100));
    let mut m = Moco::start(&["--config", &config]);
    let mut o = v4_opts("carol", m.addr);
    o.set_credentials("carol", "");
    let _carol = try_v4(o).await.expect("carol may connect");

    std::fs::write(&config, text("dave", 200)).unwrap();
    let from = m.log_len();
    m.signal("HUP");
    m.wait_for_log_after(from, "auth ledger reloaded");
    let note = m.wait_for_log_after(from, "only applied at restart");
    assert!(note.contains("options"), "{note}");
    let mut o = v4_opts("dave", m.addr);
    o.set_credentials("dave", "");
    try_v4(o).await.expect("dave may connect after the reload");
    let mut o = v4_opts("carol-2", m.addr);
    o.set_credentials("carol", "");
    assert!(try_v4(o).await.is_err());

    // A broken file keeps everything as it was.
    std::fs::write(&config, "listeners:\n  - type: tcp\n    adress: x\n").unwrap();
    let from = m.log_len();
    m.signal("HUP");
    let why = m.wait_for_log_after(from, "reload failed");
    assert!(
        why.contains("moco.yaml at line 3") && why.contains("unknown field `adress`"),
        "{why}"
    );
    let mut o = v4_opts("dave-2", m.addr);
    o.set_credentials("dave", "");
    try_v4(o).await.expect("dave still may connect");

    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(8)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_from_env_json_logs_and_deny_all_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "moco.json",
        r#"{"listeners": [{"type": "tcp", "id": "j", "address": "127.0.0.1:0"}],
            "logging": {"format": "json"}}"#,
    );
    let mut m = Moco::start_with(moco().env("MOCO_CONFIG", &config));
    let line = m.wait_for_log("moco serving");
    assert!(line.starts_with('{'), "JSON log expected: {line}");
    assert!(line.contains("moco.json"), "{line}");
    m.wait_for_log("every client is refused");
    // A file without hooks.auth refuses everyone.
    assert!(try_v4(v4_opts("nobody", m.addr)).await.is_err());
    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(8)).code(), Some(0));
}

#[test]
fn bad_moco_log_is_a_configuration_error() {
    let out = moco()
        .args(["--tcp", "127.0.0.1:0"])
        .env("MOCO_LOG", "info,=[")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MOCO_LOG"));
}

/// `moco --tcp 127.0.0.1:PORT`, as the bench harness starts it: the port is listening and
/// serves anonymous clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_tcp_port_as_the_bench_uses_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = Moco::start(&["--tcp", &format!("127.0.0.1:{port}")]);
    assert_eq!(m.addr.port(), port);
    let mut c = try_v4(v4_opts("bench-like", m.addr))
        .await
        .expect("connect");
    c.round_trip("bench/t", "hi").await;
}

/// `interop/moco.yaml` gives the interop suite what it expects: anonymous clients, SUBACK
/// 0x80 for `test/nosubscribe` (v3.1.1 and v5), Server Keep Alive 60.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_config_refuses_test_nosubscribe_with_0x80() {
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, SubscribeReasonCode as S5};
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("interop/moco.yaml"))
        .unwrap()
        .replace("@PORT@", "0");
    let config = write(dir.path(), "interop.yaml", &text);
    let m = Moco::start(&["--config", &config]);

    let mut c = try_v4(v4_opts("interop-v4", m.addr))
        .await
        .expect("anonymous");
    c.client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("ok/t".into(), rumqttc::QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new("test/nosubscribe".into(), rumqttc::QoS::AtLeastOnce),
        ])
        .await
        .unwrap();
    let ack = c.next_suback().await;
    assert_eq!(
        ack.return_codes,
        vec![
            rumqttc::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
            rumqttc::SubscribeReasonCode::Failure
        ]
    );
    // Publishing there is allowed; the connection stays usable.
    c.client
        .publish("test/nosubscribe", rumqttc::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    c.round_trip("ok/t2", "still").await;

    let mut o = v5_opts("interop-v5", m.addr);
    o.set_keep_alive(std::time::Duration::from_secs(120));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .unwrap()
        .unwrap();
    let rumqttc::v5::Event::Incoming(P5::ConnAck(connack)) = first else {
        panic!("{first:?}")
    };
    let props = connack.properties.expect("CONNACK properties");
    assert_eq!(props.server_keep_alive, Some(60));
    assert_eq!(props.max_packet_size, Some(65536));
    client
        .subscribe("test/nosubscribe", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = tokio::time::timeout(WAIT, async {
        loop {
            if let rumqttc::v5::Event::Incoming(P5::SubAck(a)) = el.poll().await.unwrap() {
                return a.return_codes;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![S5::Unspecified]);
}

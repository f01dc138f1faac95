//! moco-http over real HTTP on loopback, against a broker with real MQTT clients: the JSON
//! contract with mochi, counters that move, Prometheus text a real parser reads, readiness
//! during shutdown, kicking, the admin API, and the credentials rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use moco_engine::codec::ReasonCode;
use moco_engine::{Options, Server};
use moco_http::{Endpoints, Error, Health, HttpAuth, HttpOptions, HttpServer};
use moco_test_support::{publish, subscribe, Raw, WAIT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// mochi's `system.Info` JSON keys (mochi-mqtt/server, `system/system.go`), the contract of
/// `/api/v1/sys`.
const MOCHI_KEYS: [&str; 21] = [
    "version",
    "started",
    "time",
    "uptime",
    "bytes_received",
    "bytes_sent",
    "clients_connected",
    "clients_disconnected",
    "clients_maximum",
    "clients_total",
    "messages_received",
    "messages_sent",
    "messages_dropped",
    "retained",
    "inflight",
    "inflight_dropped",
    "subscriptions",
    "packets_received",
    "packets_sent",
    "memory_alloc",
    "threads",
];

struct Fixture {
    server: Server,
    mqtt: SocketAddr,
    http: SocketAddr,
    health: Arc<Health>,
    _listener: HttpServer,
}

/// A broker (allow-all, inline client on) on loopback with one HTTP listener of `options`.
async fn start(options: HttpOptions) -> Fixture {
    let (server, mqtt) = moco_test_support::start(Options {
        inline_client: true,
        ..Default::default()
    })
    .await;
    let health = Health::new();
    health.set_ready(true);
    let listener = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        server.broker().clone(),
        health.clone(),
        &options,
        "http",
    )
    .await
    .expect("HTTP listener");
    Fixture {
        http: listener.local_addr(),
        server,
        mqtt,
        health,
        _listener: listener,
    }
}

/// One HTTP/1.1 response: status, headers (lower-case names), body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A request over a fresh loopback connection (`Connection: close`), bounded by [`WAIT`].
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP reply in time");
    let text = String::from_utf8(raw).expect("UTF-8 reply");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<_, _> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], "").await
}

async fn sys(addr: SocketAddr) -> Value {
    let r = get(addr, "/api/v1/sys").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

#[tokio::test]
async fn sys_json_has_exactly_mochis_keys_on_both_listener_kinds() {
    let f = start(HttpOptions::default()).await;
    let mochi: BTreeSet<String> = MOCHI_KEYS.iter().map(|k| k.to_string()).collect();
    let v = sys(f.http).await;
    assert_eq!(keys(&v), mochi);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["memory_alloc"].as_u64().unwrap() > 0);
    // `/api/v5/stats` gives the same numbers.
    assert_eq!(keys(&get(f.http, "/api/v5/stats").await.json()), mochi);

    // mochi's `sysinfo` listener: the object on `/`.
    let info = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        f.server.broker().clone(),
        f.health.clone(),
        &HttpOptions::new(Endpoints::SysInfo),
        "sysinfo",
    )
    .await
    .unwrap();
    let root = get(info.local_addr(), "/").await;
    assert_eq!(root.status, 200);
    assert!(root.headers["content-type"].starts_with("application/json"));
    assert_eq!(keys(&root.json()), mochi);
    // It serves nothing of the admin API.
    assert_eq!(get(info.local_addr(), "/api/v5/clients").await.status, 404);
    info.shutdown().await;
}

#[tokio::test]
async fn counters_move_as_real_clients_connect_and_publish() {
    let f = start(HttpOptions::default()).await;
    let before = sys(f.http).await;
    assert_eq!(before["clients_connected"], 0);
    let mut sub = Raw::v5(f.mqtt, "sub").await;
    sub.sub(subscribe(1, "t/#", 0)).await;
    let mut publ = Raw::v5(f.mqtt, "pub").await;
    for _ in 0..5 {
        publ.send_publish(publish("t/a", 0, None, b"hello")).await;
    }
    for _ in 0..5 {
        sub.expect_publish().await;
    }
    let after = sys(f.http).await;
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(n(&after, "clients_connected"), 2);
    assert_eq!(n(&after, "clients_total"), 2);
    assert_eq!(n(&after, "clients_maximum"), 2);
    assert_eq!(n(&after, "subscriptions"), 1);
    assert_eq!(
        n(&after, "messages_received") - n(&before, "messages_received"),
        5
    );
    assert_eq!(n(&after, "messages_sent") - n(&before, "messages_sent"), 5);
    assert!(n(&after, "bytes_received") > n(&before, "bytes_received") + 5 * 5);
    assert!(n(&after, "packets_received") >= n(&before, "packets_received") + 8);
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_agree_with_sys() {
    let f = start(HttpOptions::default()).await;
    let mut sub = Raw::v5(f.mqtt, "sub").await;
    sub.sub(subscribe(1, "m/#", 1)).await;
    let mut publ = Raw::v5(f.mqtt, "pub").await;
    publ.send_publish(publish("m/1", 0, None, b"abc")).await;
    sub.expect_publish().await;
    f.server
        .publish("m/kept", "x", true, moco_engine::codec::QoS::AtMostOnce)
        .unwrap();
    sub.expect_publish().await;

    let r = get(f.http, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let s = sys(f.http).await;
    let lines = r.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|x| x.metric == name)
            .unwrap_or_else(|| panic!("no {name}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    for (metric, key) in [
        ("moco_clients_connected", "clients_connected"),
        ("moco_sessions", "clients_total"),
        ("moco_messages_received_total", "messages_received"),
        ("moco_messages_sent_total", "messages_sent"),
        ("moco_messages_dropped_total", "messages_dropped"),
        ("moco_received_bytes_total", "bytes_received"),
        ("moco_sent_bytes_total", "bytes_sent"),
        ("moco_packets_received_total", "packets_received"),
        ("moco_retained_messages", "retained"),
        ("moco_subscriptions", "subscriptions"),
        ("moco_inflight_messages", "inflight"),
    ] {
        assert_eq!(
            value(metric),
            s[key].as_u64().unwrap() as f64,
            "{metric} vs {key}"
        );
    }
    assert_eq!(value("moco_clients_connected"), 2.0);
    assert!(value("moco_messages_received_total") >= 2.0);
    assert!(value("moco_process_resident_memory_bytes") > 0.0);
    // Counters are declared counters and end in `_total`; nothing else does.
    for (name, doc) in &scrape.docs {
        assert!(!doc.is_empty(), "{name} has HELP");
    }
    for sample in &scrape.samples {
        let counter = matches!(sample.value, prometheus_parse::Value::Counter(_));
        assert_eq!(
            counter,
            sample.metric.ends_with("_total"),
            "{}",
            sample.metric
        );
        assert!(sample.metric.starts_with("moco_"), "{}", sample.metric);
    }
}

#[tokio::test]
async fn readyz_turns_503_while_shutting_down() {
    let f = start(HttpOptions::default()).await;
    assert_eq!(get(f.http, "/readyz").await.status, 200);
    assert_eq!(get(f.http, "/livez").await.status, 200);
    assert_eq!(get(f.http, "/healthcheck").await.status, 200);
    f.health.set_ready(false);
    assert_eq!(get(f.http, "/readyz").await.status, 503);
    f.health.set_ready(true);
    // A v5 client that never closes keeps the shutdown going (the broker lingers on it).
    let mut stubborn = Raw::v5(f.mqtt, "stubborn").await;
    let shutdown = tokio::spawn(f.server.shutdown());
    let mut status = 0;
    for _ in 0..200 {
        status = get(f.http, "/readyz").await.status;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 503);
    // Liveness is not readiness: the process still serves.
    assert_eq!(get(f.http, "/livez").await.status, 200);
    assert_eq!(
        stubborn.disconnect_reason().await,
        Some(ReasonCode::ServerShuttingDown)
    );
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_kicked_v5_client_gets_administrative_action() {
    let f = start(HttpOptions::default()).await;
    let mut victim = Raw::v5(f.mqtt, "victim").await;
    let r = request(f.http, "DELETE", "/api/v5/clients/victim", &[], "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        victim.disconnect_reason().await,
        Some(ReasonCode::AdministrativeAction)
    );
    let gone = request(f.http, "DELETE", "/api/v5/clients/nobody", &[], "").await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["code"], "NOT_FOUND");
}

#[tokio::test]
async fn the_admin_api_lists_reads_publishes_and_deletes() {
    let f = start(HttpOptions::default()).await;
    let mut a = Raw::v5(f.mqtt, "dev-a").await;
    a.sub(subscribe(1, "cmd/#", 1)).await;
    let _b = Raw::v5(f.mqtt, "dev-b").await;
    let _c = Raw::v5(f.mqtt, "other").await;

    let page = get(f.http, "/api/v5/clients?clientid_prefix=dev-&limit=1")
        .await
        .json();
    assert_eq!(page["meta"]["count"], 2);
    assert_eq!(page["meta"]["hasnext"], true);
    assert_eq!(page["data"][0]["clientid"], "dev-a");
    assert_eq!(page["data"][0]["proto_ver"], 5);
    assert_eq!(page["data"][0]["listener"], "tcp");
    let second = get(
        f.http,
        "/api/v5/clients?clientid_prefix=dev-&limit=1&page=2",
    )
    .await
    .json();
    assert_eq!(second["data"][0]["clientid"], "dev-b");
    assert_eq!(second["meta"]["hasnext"], false);
    let away = get(f.http, "/api/v5/clients?conn_state=disconnected")
        .await
        .json();
    assert_eq!(away["meta"]["count"], 0);
    assert_eq!(
        get(f.http, "/api/v5/clients?listener=nope").await.json()["meta"]["count"],
        0
    );
    assert_eq!(get(f.http, "/api/v5/clients?limit=0").await.status, 400);

    let d = get(f.http, "/api/v5/clients/dev-a").await.json();
    assert_eq!(d["connected"], true);
    assert_eq!(d["subscriptions_cnt"], 1);
    assert_eq!(d["subscriptions"][0]["topic"], "cmd/#");
    assert_eq!(d["subscriptions"][0]["qos"], 1);
    assert_eq!(get(f.http, "/api/v5/clients/nobody").await.status, 404);
    let subs = get(f.http, "/api/v5/subscriptions").await.json();
    assert_eq!(subs["meta"]["count"], 1);
    assert_eq!(subs["data"][0]["clientid"], "dev-a");

    // Publish: the subscriber gets it, retained.
    let body =
        r#"{"topic":"cmd/x","payload":"aGk=","payload_encoding":"base64","qos":1,"retain":true}"#;
    let r = request(
        f.http,
        "POST",
        "/api/v5/publish",
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["delivered"], 1);
    let p = a.expect_publish().await;
    assert_eq!((&*p.topic, &p.payload[..]), ("cmd/x", &b"hi"[..]));
    a.puback(&p).await;
    for (bad, status) in [
        (r#"{"topic":"$SYS/broker/version","payload":"x"}"#, 403),
        (r#"{"topic":"a/+","payload":"x"}"#, 400),
        (r#"{"topic":"a","qos":3}"#, 400),
        (
            r#"{"topic":"a","payload":"%%","payload_encoding":"base64"}"#,
            400,
        ),
        ("not json", 400),
    ] {
        let r = request(f.http, "POST", "/api/v5/publish", &[], bad).await;
        assert_eq!(r.status, status, "{bad}: {}", r.body);
        assert!(r.json()["message"].is_string());
    }

    // Retained: listed (without `$SYS`), read (base64 payload), deleted.
    let list = get(f.http, "/api/v5/mqtt/retainer/messages").await.json();
    assert_eq!(list["meta"]["count"], 1);
    assert_eq!(list["data"][0]["topic"], "cmd/x");
    let sys_list = get(f.http, "/api/v5/mqtt/retainer/messages?topic=%24SYS%2F%23")
        .await
        .json();
    assert!(sys_list["meta"]["count"].as_u64().unwrap() >= 20);
    let one = get(f.http, "/api/v5/mqtt/retainer/message/cmd%2Fx")
        .await
        .json();
    assert_eq!(one["payload"], "aGk=");
    assert_eq!(one["qos"], 1);
    let del = request(
        f.http,
        "DELETE",
        "/api/v5/mqtt/retainer/message/cmd/x",
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        get(f.http, "/api/v5/mqtt/retainer/message/cmd/x")
            .await
            .status,
        404
    );
    assert_eq!(
        sys(f.http).await["retained"].as_u64().unwrap(),
        sys_list["meta"]["count"].as_u64().unwrap()
    );

    // Unknown paths and oversized bodies are refused as JSON / 413.
    let nf = get(f.http, "/api/v5/nothing").await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["code"], "NOT_FOUND");
    let big = format!(r#"{{"topic":"a","payload":"{}"}}"#, "x".repeat(100 * 1024));
    assert_eq!(
        request(f.http, "POST", "/api/v5/publish", &[], &big)
            .await
            .status,
        413
    );
}

#[tokio::test]
async fn the_dashboard_is_one_self_contained_page() {
    let f = start(HttpOptions::default()).await;
    for path in ["/dashboard", "/"] {
        let r = get(f.http, path).await;
        assert_eq!(r.status, 200);
        assert!(r.headers["content-type"].starts_with("text/html"));
        assert!(r.body.contains("<canvas id=\"chart-msgs\""));
        assert!(r.body.contains("/api/v1/sys") && r.body.contains("/api/v5/clients"));
        // No CDN: nothing is loaded from elsewhere.
        assert!(!r.body.contains("src=\"http") && !r.body.contains("href=\"http"));
    }
}

#[tokio::test]
async fn a_token_is_required_when_set() {
    let auth = HttpAuth::bearer("t0ken").unwrap();
    let f = start(HttpOptions::default().with_auth(auth.clone())).await;
    let anon = get(f.http, "/api/v1/sys").await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["code"], "UNAUTHORIZED");
    assert!(anon.headers["www-authenticate"].starts_with("Bearer"));
    for path in ["/metrics", "/api/v5/clients", "/readyz"] {
        assert_eq!(get(f.http, path).await.status, 401, "{path}");
    }
    let wrong = request(
        f.http,
        "GET",
        "/api/v1/sys",
        &[("Authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let right = request(
        f.http,
        "GET",
        "/api/v1/sys",
        &[("Authorization", "Bearer t0ken")],
        "",
    )
    .await;
    assert_eq!(right.status, 200);
    // The page holds no data: it is served, and asks for the token.
    assert_eq!(get(f.http, "/dashboard").await.status, 200);

    // Read-only endpoints opened to anonymous readers on purpose; the admin API stays closed.
    let g = start(
        HttpOptions::default()
            .with_auth(auth)
            .with_anonymous_read(true),
    )
    .await;
    assert_eq!(get(g.http, "/metrics").await.status, 200);
    assert_eq!(get(g.http, "/readyz").await.status, 200);
    assert_eq!(get(g.http, "/api/v5/clients").await.status, 401);
}

#[tokio::test]
async fn beyond_loopback_without_credentials_is_refused_at_start() {
    let (server, _) = moco_test_support::start(Options::default()).await;
    let err = HttpServer::bind(
        "0.0.0.0:0".parse().unwrap(),
        server.broker().clone(),
        Health::new(),
        &HttpOptions::default(),
        "http",
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, Error::Unprotected { .. }));
    assert!(err.to_string().contains("without credentials"), "{err}");
    // The rule only (no socket beyond loopback is opened in tests): credentials, or a
    // read-only kind opened on purpose, pass it; anonymous_read does not open the admin API.
    let wide: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let token = HttpAuth::bearer("x").unwrap();
    assert!(HttpOptions::default()
        .with_auth(token)
        .check_exposure(wide)
        .is_ok());
    assert!(HttpOptions::new(Endpoints::HealthCheck)
        .with_anonymous_read(true)
        .check_exposure(wide)
        .is_ok());
    assert!(HttpOptions::default()
        .with_anonymous_read(true)
        .check_exposure(wide)
        .is_err());
    assert!(HttpOptions::default()
        .check_exposure("[::1]:8080".parse().unwrap())
        .is_ok());
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let f =
        start(HttpOptions::default().with_header_read_timeout(Duration::from_millis(200))).await;
    let mut s = tokio::net::TcpStream::connect(f.http).await.unwrap();
    s.write_all(b"GET /api/v1/sys HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server closes (after a 408 or nothing); never waits for the rest.
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let reply = String::from_utf8_lossy(&rest);
    assert!(!reply.contains("200 OK"), "{reply}");
    // A prompt client is served meanwhile.
    assert_eq!(get(f.http, "/livez").await.status, 200);
}

#[tokio::test]
async fn the_metrics_hook_counts_connections_by_listener_and_drops_by_reason() {
    use moco_engine::codec::ProtocolVersion;
    let hook = moco_http::MetricsHook::default();
    let (server, mqtt) = moco_test_support::serve(
        Server::builder()
            .hook(hook.clone())
            .hook(RefuseIntruder)
            .hook(moco_engine::AllowAll)
            .build(),
    )
    .await;
    let listener = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        server.broker().clone(),
        Health::new(),
        &HttpOptions::default().with_metrics(hook),
        "http",
    )
    .await
    .unwrap();
    // A v5 subscriber that takes packets of 64 bytes at most: a larger message is dropped.
    let mut small = moco_test_support::connect_packet("small", ProtocolVersion::V5, 0, true);
    small.properties.maximum_packet_size = Some(64);
    let mut sub = Raw::connect_ok(mqtt, small).await;
    sub.sub(subscribe(1, "big/#", 1)).await;
    let mut v311 = Raw::connect_ok(
        mqtt,
        moco_test_support::connect_packet("old", ProtocolVersion::V311, 0, true),
    )
    .await;
    let (_, refused) = Raw::connect(
        mqtt,
        moco_test_support::connect_packet("intruder", ProtocolVersion::V5, 0, true),
    )
    .await;
    assert_eq!(refused.reason_code, ReasonCode::NotAuthorized);
    // QoS 1: a QoS 1/2 message too large for its subscriber is abandoned and counted (a QoS 0
    // one is left out uncounted).
    v311.send_publish(publish("big/1", 1, Some(7), &[b'x'; 200]))
        .await;
    assert!(matches!(
        v311.recv().await,
        Some(moco_engine::codec::Packet::PubAck(_))
    ));
    sub.expect_quiet().await;

    // The subscriber's writer abandons the message on its own task: wait for its count.
    let mut text = String::new();
    for _ in 0..200 {
        text = get(listener.local_addr(), "/metrics").await.body;
        if text.contains("moco_messages_dropped_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let find = |name: &str, label: &str, value: &str| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label) == Some(value))
            .unwrap_or_else(|| panic!("no {name}{{{label}={value}}} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    let by_protocol = |p: &str| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "moco_connections_accepted_total")
            .filter(|s| {
                s.labels.get("listener") == Some("tcp") && s.labels.get("protocol") == Some(p)
            })
            .count()
    };
    assert_eq!(by_protocol("5"), 1);
    assert_eq!(by_protocol("4"), 1);
    let v5 = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("protocol") == Some("5"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{other:?}"),
            })
    };
    assert_eq!(v5("moco_connect_attempts_total"), Some(2.0), "{text}");
    assert_eq!(
        find(
            "moco_messages_dropped_by_reason_total",
            "reason",
            "too_large"
        ),
        1.0
    );
    assert_eq!(
        find(
            "moco_messages_dropped_by_reason_total",
            "reason",
            "queue_full"
        ),
        0.0
    );
    assert_eq!(
        find("moco_connections_accepted_total", "protocol", "5"),
        1.0
    );
    let total = scrape
        .samples
        .iter()
        .find(|s| s.metric == "moco_messages_dropped_total")
        .map(|s| matches!(s.value, prometheus_parse::Value::Counter(v) if v == 1.0));
    assert_eq!(total, Some(true), "{text}");
    listener.shutdown().await;
    server.shutdown().await;
}

/// Refuses client `intruder` in OnConnect (after the metrics hook saw its CONNECT).
struct RefuseIntruder;

impl moco_engine::Hook for RefuseIntruder {
    fn id(&self) -> &str {
        "refuse-intruder"
    }
    fn provides(&self, e: moco_engine::Event) -> bool {
        e == moco_engine::Event::OnConnect
    }
    fn on_connect(
        &self,
        client: &moco_engine::ClientInfo,
        _: &moco_engine::codec::Connect,
    ) -> Result<(), ReasonCode> {
        if &*client.id == "intruder" {
            Err(ReasonCode::NotAuthorized)
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn metrics_speak_openmetrics_when_asked() {
    let f = start(HttpOptions::default()).await;
    let accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let r = request(f.http, "GET", "/metrics", &[("Accept", accept)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(r.body.contains("# TYPE moco_messages_received counter\n"));
    assert!(r.body.contains("\nmoco_messages_received_total 0\n"));
    assert!(!r.body.contains("# TYPE moco_messages_received_total"));
    // A plain scraper still gets the Prometheus text format.
    let plain = get(f.http, "/metrics").await;
    assert!(plain.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    assert!(!plain.body.contains("# EOF"));
}

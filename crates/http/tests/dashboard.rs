//! The dashboard in a real browser: headless Chromium driven through chromedriver (W3C
//! WebDriver over loopback) loads `/dashboard` while MQTT clients connect and publish, and the
//! test checks that the client count and the rate charts move and that kick works. A
//! screenshot is written under `target/` on every run and its path printed.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`), so it is ignored by default:
//! `cargo test -p moco-http --test dashboard -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use moco_engine::codec::ReasonCode;
use moco_engine::Options;
use moco_http::{Health, HttpOptions, HttpServer};
use moco_test_support::{publish, subscribe, Raw, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A JSON request over a fresh loopback connection; the reply's JSON (`Null` if none).
/// chromedriver keeps connections open, so the body is read by its length.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(body) = complete_body(&raw) {
                return body;
            }
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return complete_body(&raw).unwrap_or_default();
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .expect("WebDriver reply in time");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The body of a complete HTTP response in `raw` (by Content-Length, or a chunked body up to
/// its last chunk), or `None` while more is to come.
fn complete_body(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let head = head.to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, tail) = rest.split_once("\r\n")?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return Some(out);
            }
            out.push_str(tail.get(..n)?);
            rest = tail.get(n + 2..)?;
        }
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (body.len() >= len).then(|| body[..len].to_owned())
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Close the browser first (DELETE the session), or it outlives chromedriver.
        if !self.session.is_empty() {
            use std::io::Write;
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                    self.session
                );
                let _ = std::io::Read::read(&mut s, &mut [0u8; 4096]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Phone-sized: the layout must hold on a small screen.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=412,915"]
            }
        }}});
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
        };
        let r = call(addr, "POST", "/session", Some(caps)).await;
        d.session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        d
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        call(self.addr, method, &full, body).await["value"].clone()
    }

    /// The element matching `css`, if any.
    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_object()?.values().next()?.as_str().map(str::to_owned)
    }

    async fn text(&self, css: &str) -> Option<String> {
        let e = self.find(css).await?;
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await?;
        self.cmd("GET", &format!("/element/{e}/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// How many points the messages chart has drawn.
    async fn points(&self) -> Option<u32> {
        self.attribute("#chart-msgs", "data-points")
            .await
            .and_then(|p| p.parse().ok())
    }

    /// Polls `f` until it returns `Some` (bounded).
    async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard never showed {what}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The messages-per-second chart's last (in, out) values, as the page records them.
fn rates(last: &str) -> (f64, f64) {
    let (i, o) = last.split_once(',').expect("in,out");
    (i.parse().unwrap(), o.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium and chromium-driver; run with --ignored"]
async fn the_dashboard_moves_under_load_and_kicks_in_a_real_browser() {
    let (server, mqtt) = moco_test_support::start(Options {
        inline_client: true,
        ..Default::default()
    })
    .await;
    let health = Health::new();
    health.set_ready(true);
    let http = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        server.broker().clone(),
        health,
        &HttpOptions::default(),
        "http",
    )
    .await
    .unwrap();
    let driver = Driver::start().await;
    let page = format!("http://{}/dashboard", http.local_addr());
    driver.cmd("POST", "/url", Some(json!({"url": page}))).await;
    driver
        .wait_for("0 clients", WAIT, || async {
            (driver.text("#clients-connected").await? == "0").then_some(())
        })
        .await;

    // Load: a subscriber, a victim and a publisher sending steadily.
    let mut sub = Raw::v5(mqtt, "watcher").await;
    sub.sub(subscribe(1, "load/#", 0)).await;
    let mut victim = Raw::v5(mqtt, "victim").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut p = Raw::v5(mqtt, "publisher").await;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..20 {
                    p.send_publish(publish("load/t", 0, None, b"payload-of-the-load"))
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let drain = tokio::spawn(async move { while sub.recv().await.is_some() {} });

    driver
        .wait_for("3 clients", WAIT, || async {
            (driver.text("#clients-connected").await? == "3").then_some(())
        })
        .await;
    // The rate charts move: messages in and out per second above zero, and changing.
    let first = driver
        .wait_for("a rate above zero", WAIT, || async {
            let last = driver.attribute("#chart-msgs", "data-last").await?;
            let (i, o) = rates(&last);
            (i > 0.0 && o > 0.0).then_some(last)
        })
        .await;
    let before = driver.points().await.unwrap_or(0);
    driver
        .wait_for("the chart moving on", WAIT, || async {
            let now = driver.points().await?;
            let last = driver.attribute("#chart-msgs", "data-last").await?;
            (now >= before + 2 && last != first).then_some(())
        })
        .await;
    assert_ne!(driver.text("#bytes-in-rate").await.as_deref(), Some("0 B"));

    // Kick from the client table: the v5 client gets DISCONNECT 0x98.
    driver
        .wait_for("a kick button for the victim", WAIT, || async {
            let e = driver.find("button.kick[data-client=\"victim\"]").await?;
            let r = driver
                .cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
                .await;
            // A stale element (the table was just redrawn) answers an error object.
            r.get("error").is_none().then_some(())
        })
        .await;
    assert_eq!(
        victim.disconnect_reason().await,
        Some(ReasonCode::AdministrativeAction)
    );
    driver
        .wait_for("2 clients after the kick", WAIT, || async {
            (driver.text("#clients-connected").await? == "2").then_some(())
        })
        .await;

    // The screenshot, on every run, from the top of the page.
    driver
        .cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": "window.scrollTo(0, 0)", "args": []})),
        )
        .await;
    let png = driver.cmd("GET", "/screenshot", None).await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().expect("base64 PNG"))
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    println!(
        "dashboard screenshot: {}",
        path.canonicalize().unwrap().display()
    );
    assert!(png.starts_with(b"\x89PNG"));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.await.unwrap();
    drain.abort();
    http.shutdown().await;
    server.shutdown().await;
}

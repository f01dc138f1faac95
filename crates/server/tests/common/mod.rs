//! Helpers for tests that run the real `moco` binary: start it, read its log, signal it, and
//! MQTT clients (rumqttc) that talk to it. Everything is on loopback and bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bound on any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `moco` binary built for these tests.
pub fn moco() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moco"));
    // The tests decide the configuration and the log level.
    cmd.env_remove("MOCO_CONFIG")
        .env_remove("MOCO_LOG")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `moco` with `args` to completion (bounded by the command itself: check-config,
/// --help, a refused start).
pub fn run(args: &[&str]) -> Output {
    let mut child = moco()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moco");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("moco {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running `moco`; killed when dropped.
pub struct Moco {
    child: Child,
    log: Arc<Log>,
    /// The address of the first listener, from the start-up log line.
    pub addr: SocketAddr,
}

impl Moco {
    /// Starts `moco` with `args` and waits until it logs that it serves.
    pub fn start(args: &[&str]) -> Moco {
        Self::start_with(moco().args(args))
    }

    /// Starts the prepared command and waits until it logs that it serves.
    pub fn start_with(cmd: &mut Command) -> Moco {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moco");
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().push(line);
                sink.changed.notify_all();
            }
        });
        let mut m = Moco {
            child,
            log,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = m.wait_for_log("moco serving");
        m.addr = first_listener(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
        m
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().clone()
    }

    /// Waits (bounded) for a log line containing `needle`, looking at every line so far.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.wait_for_log_after(0, needle)
    }

    /// Waits (bounded) for a log line containing `needle` among the lines from `from` on.
    pub fn wait_for_log_after(&mut self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().skip(from).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            if now > deadline {
                panic!(
                    "no log line with `{needle}` within {WAIT:?}; log:\n{}",
                    lines.join("\n")
                );
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "moco exited ({status}) before logging `{needle}`; log:\n{}",
                    lines.join("\n")
                );
            }
            lines = self
                .log
                .changed
                .wait_timeout(lines, Duration::from_millis(100).min(deadline - now))
                .unwrap()
                .0;
        }
    }

    /// Number of log lines so far.
    pub fn log_len(&self) -> usize {
        self.log.lines.lock().unwrap().len()
    }

    /// Sends a signal (`TERM`, `HUP`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits (bounded by `limit`) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "moco did not exit within {limit:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Moco {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `listeners=ID=ADDR` (text) or `"listeners":"ID=ADDR"` (JSON) of the
/// start-up line.
fn first_listener(line: &str) -> Option<SocketAddr> {
    let key = ["listeners=", "\"listeners\":"]
        .into_iter()
        .find(|k| line.contains(k))?;
    let rest = &line[line.find(key)? + key.len()..];
    let rest = rest.trim_start_matches('"');
    let token = rest.split([' ', '"']).next()?;
    token.split_once('=')?.1.parse().ok()
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ------------------------------------------------------------------------------------------
// MQTT clients
// ------------------------------------------------------------------------------------------

/// v3.1.1 client options.
pub fn v4_opts(id: &str, addr: SocketAddr) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// v5 client options.
pub fn v5_opts(id: &str, addr: SocketAddr) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A v3.1.1 client whose event loop runs in a task.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    pub task: tokio::task::JoinHandle<Option<rumqttc::ConnectionError>>,
}

/// Connects a v3.1.1 client: `Ok` after CONNACK accepted, `Err` with the connection error
/// (e.g. refused) otherwise.
pub async fn v4(opts: rumqttc::MqttOptions) -> Result<V4, rumqttc::ConnectionError> {
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("CONNACK in time")?;
    assert!(
        matches!(first, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))),
        "{first:?}"
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    });
    Ok(V4 { client, rx, task })
}

impl V4 {
    /// Next packet matching `f`, within [`WAIT`].
    pub async fn next_where(&mut self, f: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(p)) if f(&p) => return p,
                Ok(Some(_)) => continue,
                other => panic!("no matching packet: {other:?}"),
            }
        }
    }

    /// Subscribes to `topic` at QoS 1, publishes `payload` to it and expects it back.
    pub async fn round_trip(&mut self, topic: &str, payload: &str) {
        self.client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let ack = self
            .next_where(|p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await;
        let rumqttc::Packet::SubAck(ack) = ack else {
            unreachable!()
        };
        assert_eq!(
            ack.return_codes,
            vec![rumqttc::SubscribeReasonCode::Success(
                rumqttc::QoS::AtLeastOnce
            )]
        );
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_owned())
            .await
            .unwrap();
        let p = self
            .next_where(|p| matches!(p, rumqttc::Packet::Publish(_)))
            .await;
        let rumqttc::Packet::Publish(p) = p else {
            unreachable!()
        };
        assert_eq!(p.topic, topic);
        assert_eq!(&p.payload[..], payload.as_bytes());
    }
}

/// A v5 client whose event loop runs in a task; the task returns the error that ended it.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub task: tokio::task::JoinHandle<Option<rumqttc::v5::ConnectionError>>,
}

/// Connects a v5 client and waits for its CONNACK.
pub async fn v5(opts: rumqttc::v5::MqttOptions) -> V5 {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
    let first = tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("CONNACK in time")
        .expect("connected");
    assert!(
        matches!(first, rumqttc::v5::Event::Incoming(Packet::ConnAck(_))),
        "{first:?}"
    );
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = el.poll().await {
                return Some(e);
            }
        }
    });
    V5 { client, task }
}

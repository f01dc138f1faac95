//! Helpers for tests that run the real `moco` binary: start it, read its log, signal it; the
//! MQTT clients (rumqttc) that talk to it come from moco-test-support. Everything is on
//! loopback and bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use moco_test_support::WAIT;

/// The `moco` binary built for these tests.
pub fn moco() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moco"));
    // The tests decide the configuration and the log level.
    cmd.env_remove("MOCO_CONFIG")
        .env_remove("MOCO_LOG")
        .env_remove("RUST_LOG")
        .env_remove("MOCO_DATA_DIR")
        // Without a file moco keeps its state in ./moco-data; tests that run it side by side
        // keep nothing unless they ask for a directory of their own.
        .env("MOCO_IN_MEMORY", "true");
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

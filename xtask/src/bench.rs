//! `cargo xtask bench`: the same bounded load against moco, Mosquitto and rumqttd, side by side.
//!
//! Each broker runs as a child process on a free loopback port with a comparable configuration
//! (no persistence, no auth, generous queue and inflight limits, TCP_NODELAY). For every
//! scenario variant and round the brokers take turns (A B C A B C …), each freshly started, and
//! `moco-load` (the `moco-benches` binary) runs one variant against it as a separate process,
//! reading the broker's CPU time and RSS from `/proc` around the measured window. Medians over
//! the rounds go into a table on stdout, `target/bench-report/bench.json` and
//! `target/bench-report/bench.svg`.
//!
//! A broker that cannot be built, installed or started is reported as unavailable, never given
//! numbers. Everything is bounded: loopback only, message counts and time caps on every run, a
//! hard timeout on every child, and every child killed on exit, on error and on Ctrl-C.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::{cargo, root, run};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A reduced set: one round, small counts, short caps (under 3 minutes for all brokers).
    #[arg(long)]
    quick: bool,
    /// Run only this scenario: a group (`fan-in`, `fan-out`, `many-to-many`, `latency`,
    /// `connections`, `retained`) or one variant (e.g. `fan-in-q1-16B`). Repeatable.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Rounds per variant (default 3, or 1 with --quick); the table shows medians.
    #[arg(long)]
    rounds: Option<usize>,
    /// Brokers to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "moco,mosquitto,rumqttd")]
    brokers: Vec<BrokerKind>,
    /// Serve moco's clients through an auth ledger of this many ACL rules (none of which can
    /// deny the bench's topics) instead of `allow_all`: what a rule ledger costs on routing.
    #[arg(long, default_value_t = 0)]
    moco_acl_rules: usize,
}

/// A broker under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BrokerKind {
    /// This project's broker, built in release from the workspace.
    Moco,
    /// Mosquitto, from Debian's package.
    Mosquitto,
    /// rumqttd 0.20.0, from crates.io.
    Rumqttd,
}

impl BrokerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Moco => "moco",
            Self::Mosquitto => "mosquitto",
            Self::Rumqttd => "rumqttd",
        }
    }
}

/// THE one place that says how the harness starts moco: `moco --tcp 127.0.0.1:PORT`, like
/// mochi's `--tcp` flag. Everything else moco needs for a fair run (anonymous clients allowed,
/// nothing persisted) must be its default with no configuration file.
fn moco_command(bin: &Path, addr: SocketAddr, dir: &Path, acl_rules: usize) -> Result<Command> {
    let conf = dir.join("moco.yaml");
    fs::write(&conf, moco_config(acl_rules))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(conf);
    cmd.arg("--tcp").arg(addr.to_string());
    // Warnings and errors only, as the peers are configured to log.
    cmd.env("RUST_LOG", "warn");
    Ok(cmd)
}

/// moco's configuration: anonymous clients as the peers have, and the per-client queue raised
/// to Mosquitto's `max_queued_messages` below, so no broker drops where another would queue.
/// With `acl_rules`, a ledger instead of `allow_all`: every client may connect, and as many ACL
/// rules, each for every client, deny topics outside the bench's `mb/` tree.
fn moco_config(acl_rules: usize) -> String {
    let mut conf = String::from("# written by cargo xtask bench\n");
    if acl_rules == 0 {
        conf.push_str("hooks: {auth: {allow_all: true}}\n");
    } else {
        conf.push_str("hooks:\n  auth:\n    ledger:\n      auth: [{allow: true}]\n      acl:\n");
        for i in 0..acl_rules {
            conf.push_str(&format!("        - filters: {{\"other/{i}/#\": deny}}\n"));
        }
    }
    conf.push_str("options: {capabilities: {maximum_client_writes_pending: 1000000}}\n");
    conf
}

/// Mosquitto's configuration: what it needs to match the others, and no more.
fn mosquitto_config(addr: SocketAddr) -> String {
    format!(
        "# written by cargo xtask bench\n\
         listener {port} {ip}\n\
         allow_anonymous true\n\
         persistence false\n\
         # the default of 1000 drops QoS 1/2 messages in fan-in: raise it for a fair run\n\
         max_queued_messages 1000000\n\
         max_inflight_messages 1000\n\
         max_connections -1\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         connection_messages false\n",
        port = addr.port(),
        ip = addr.ip(),
    )
}

/// rumqttd 0.20's configuration: one v4 (MQTT 3.1.1) server, generous limits, no connection
/// throttling (`next_connection_delay_ms` defaults to 1 ms in its sample, capping connects at
/// 1000/s), no console, no Prometheus.
fn rumqttd_config(addr: SocketAddr) -> String {
    format!(
        "# written by cargo xtask bench\n\
         id = 0\n\
         \n\
         [router]\n\
         max_connections = 20010\n\
         max_outgoing_packet_count = 200\n\
         max_segment_size = 104857600\n\
         max_segment_count = 10\n\
         \n\
         [v4.1]\n\
         name = \"v4-1\"\n\
         listen = \"{addr}\"\n\
         next_connection_delay_ms = 0\n\
         \n\
         [v4.1.connections]\n\
         connection_timeout_ms = 60000\n\
         max_payload_size = 1048576\n\
         max_inflight_count = 1000\n\
         dynamic_filters = true\n"
    )
}

/// One scenario variant: a name and the `moco-load` arguments it runs with.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    args: Vec<String>,
    /// Time cap handed to moco-load; the child is killed well after it.
    seconds: f64,
}

fn variant(name: &str, seconds: f64, args: &[&str]) -> Variant {
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push("--seconds".into());
    args.push(seconds.to_string());
    Variant {
        name: name.into(),
        args,
        seconds,
    }
}

/// The scenario variants of issue 9, full or quick.
fn variants(quick: bool) -> Vec<Variant> {
    let mut v = Vec::new();
    let (fan_in_msgs, fan_in_kib_msgs, cap) = if quick {
        ("50000", "10000", 3.0)
    } else {
        ("250000", "100000", 10.0)
    };
    let payloads: &[(&str, &str, &str)] = if quick {
        &[("16B", "16", fan_in_msgs)]
    } else {
        &[
            ("16B", "16", fan_in_msgs),
            ("1KiB", "1024", fan_in_kib_msgs),
        ]
    };
    for &(label, bytes, msgs) in payloads {
        for qos in ["0", "1", "2"] {
            v.push(variant(
                &format!("fan-in-q{qos}-{label}"),
                cap,
                &[
                    "--scenario",
                    "fan-in",
                    "--qos",
                    qos,
                    "--payload",
                    bytes,
                    "--publishers",
                    "4",
                    "--messages",
                    msgs,
                ],
            ));
        }
    }
    let fan_out_msgs = if quick { "10000" } else { "100000" };
    for qos in ["0", "1"] {
        v.push(variant(
            &format!("fan-out-q{qos}"),
            cap,
            &[
                "--scenario",
                "fan-out",
                "--qos",
                qos,
                "--subscribers",
                "16",
                "--messages",
                fan_out_msgs,
            ],
        ));
    }
    let (m2m, m2m_msgs) = if quick {
        ("20", "2000")
    } else {
        ("100", "5000")
    };
    v.push(variant(
        "many-to-many-q1",
        cap,
        &[
            "--scenario",
            "many-to-many",
            "--qos",
            "1",
            "--publishers",
            m2m,
            "--subscribers",
            m2m,
            "--messages",
            m2m_msgs,
        ],
    ));
    let lat_msgs = if quick { "10000" } else { "50000" };
    for qos in ["0", "1"] {
        v.push(variant(
            &format!("latency-q{qos}"),
            cap.max(6.0),
            &[
                "--scenario",
                "latency",
                "--qos",
                qos,
                "--rate",
                "10000",
                "--messages",
                lat_msgs,
            ],
        ));
    }
    let conns = if quick { "2000" } else { "10000" };
    v.push(variant(
        "connections",
        if quick { 10.0 } else { 30.0 },
        &[
            "--scenario",
            "connections",
            "--connections",
            conns,
            "--concurrency",
            "32",
        ],
    ));
    let retained = if quick { "10000" } else { "100000" };
    v.push(variant(
        "retained",
        if quick { 10.0 } else { 30.0 },
        &[
            "--scenario",
            "retained",
            "--qos",
            "1",
            "--window",
            "1000",
            "--messages",
            retained,
        ],
    ));
    v
}

/// What a row of the table reads from a run's report, and which way is better.
struct Metric {
    label: &'static str,
    unit: &'static str,
    variant: &'static str,
    higher_is_better: bool,
    /// Path into the report JSON.
    field: &'static [&'static str],
    /// Only runs that delivered everything count (a time to receive *all*).
    needs_complete: bool,
}

const fn m(
    label: &'static str,
    unit: &'static str,
    variant: &'static str,
    higher_is_better: bool,
    field: &'static [&'static str],
) -> Metric {
    Metric {
        label,
        unit,
        variant,
        higher_is_better,
        field,
        needs_complete: false,
    }
}

const RATE: &[&str] = &["rate"];
const CPU: &[&str] = &["cpu_us_per_msg"];

/// The rows of the table: issue 9's goals first, then the rest of what the scenarios measure.
const METRICS: &[Metric] = &[
    m(
        "fan-in 4→1 QoS 0, 16 B",
        "msg/s",
        "fan-in-q0-16B",
        true,
        RATE,
    ),
    m(
        "fan-in 4→1 QoS 1, 16 B",
        "msg/s",
        "fan-in-q1-16B",
        true,
        RATE,
    ),
    m(
        "fan-in 4→1 QoS 2, 16 B",
        "msg/s",
        "fan-in-q2-16B",
        true,
        RATE,
    ),
    m(
        "fan-in 4→1 QoS 0, 1 KiB",
        "msg/s",
        "fan-in-q0-1KiB",
        true,
        RATE,
    ),
    m(
        "fan-in 4→1 QoS 1, 1 KiB",
        "msg/s",
        "fan-in-q1-1KiB",
        true,
        RATE,
    ),
    m(
        "fan-in 4→1 QoS 2, 1 KiB",
        "msg/s",
        "fan-in-q2-1KiB",
        true,
        RATE,
    ),
    m("fan-out 1→16 QoS 0", "deliv/s", "fan-out-q0", true, RATE),
    m("fan-out 1→16 QoS 1", "deliv/s", "fan-out-q1", true, RATE),
    m("many-to-many QoS 1", "msg/s", "many-to-many-q1", true, RATE),
    m(
        "CPU fan-in QoS 0, 16 B",
        "µs/msg",
        "fan-in-q0-16B",
        false,
        CPU,
    ),
    m(
        "CPU fan-in QoS 1, 16 B",
        "µs/msg",
        "fan-in-q1-16B",
        false,
        CPU,
    ),
    m(
        "CPU fan-in QoS 2, 16 B",
        "µs/msg",
        "fan-in-q2-16B",
        false,
        CPU,
    ),
    m("CPU fan-out QoS 0", "µs/deliv", "fan-out-q0", false, CPU),
    m("CPU fan-out QoS 1", "µs/deliv", "fan-out-q1", false, CPU),
    m(
        "latency p50 QoS 0 @10k/s",
        "µs",
        "latency-q0",
        false,
        &["latency", "p50_us"],
    ),
    m(
        "latency p99 QoS 0 @10k/s",
        "µs",
        "latency-q0",
        false,
        &["latency", "p99_us"],
    ),
    m(
        "latency p999 QoS 0 @10k/s",
        "µs",
        "latency-q0",
        false,
        &["latency", "p999_us"],
    ),
    m(
        "latency p50 QoS 1 @10k/s",
        "µs",
        "latency-q1",
        false,
        &["latency", "p50_us"],
    ),
    m(
        "latency p99 QoS 1 @10k/s",
        "µs",
        "latency-q1",
        false,
        &["latency", "p99_us"],
    ),
    m(
        "latency p999 QoS 1 @10k/s",
        "µs",
        "latency-q1",
        false,
        &["latency", "p999_us"],
    ),
    m("connects", "conn/s", "connections", true, RATE),
    m(
        "RSS per idle connection",
        "KiB",
        "connections",
        false,
        &["rss_per_conn_kib"],
    ),
    m("CPU per connect", "µs", "connections", false, CPU),
    Metric {
        needs_complete: true,
        ..m(
            "retained: receive all",
            "s",
            "retained",
            false,
            &["elapsed_s"],
        )
    },
];

/// Child processes to kill if the user presses Ctrl-C.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A child process that is killed when dropped (normal end, error or panic).
struct Guard {
    child: Child,
}

impl Guard {
    fn spawn(mut cmd: Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", crate::display(&cmd)))?;
        CHILDREN.lock().expect("lock").push(child.id());
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        CHILDREN.lock().expect("lock").retain(|&p| p != pid);
    }
}

/// How to start one broker.
#[derive(Debug)]
struct Broker {
    kind: BrokerKind,
    /// moco only: the ACL rules of its ledger (see [`moco_config`]).
    acl_rules: usize,
    /// Binary, or why the broker cannot run.
    bin: std::result::Result<PathBuf, String>,
    version: String,
}

struct Running {
    guard: Guard,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    fn start(&self, work: &Path, logs: &Path) -> Result<Running> {
        let bin = match &self.bin {
            Ok(b) => b,
            Err(why) => bail!("{why}"),
        };
        let addr = free_port()?;
        let dir = work.join(format!("{}-{}", self.kind.name(), addr.port()));
        fs::create_dir_all(&dir)?;
        let mut cmd = match self.kind {
            BrokerKind::Moco => moco_command(bin, addr, &dir, self.acl_rules)?,
            BrokerKind::Mosquitto => {
                let conf = dir.join("mosquitto.conf");
                fs::write(&conf, mosquitto_config(addr))?;
                let mut c = Command::new(bin);
                c.arg("-c").arg(conf);
                c
            }
            BrokerKind::Rumqttd => {
                let conf = dir.join("rumqttd.toml");
                fs::write(&conf, rumqttd_config(addr))?;
                let mut c = Command::new(bin);
                c.arg("--quiet").arg("--config").arg(conf);
                c
            }
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{}.log", self.kind.name())))?;
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut guard = Guard::spawn(cmd)?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = guard.child.try_wait()? {
                let log = logs.join(format!("{}.log", self.kind.name()));
                let last = fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                bail!(
                    "{} exited ({status}) before listening on {addr}: \"{last}\" (log: {})",
                    self.kind.name(),
                    log.display()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() >= until {
                bail!("{} did not listen on {addr} within 10 s", self.kind.name());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Running { guard, addr, dir })
    }
}

fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free loopback port")?;
    Ok(l.local_addr()?)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// Builds moco in release; a failed build makes moco unavailable, not the bench.
fn prepare_moco(acl_rules: usize) -> Broker {
    let mut build = cargo();
    build.args(["build", "--release", "-p", "moco", "--bin", "moco"]);
    let bin = match run("bench: build moco", build) {
        Ok(()) => Ok(target_dir().join("release/moco")),
        Err(e) => Err(format!("release build failed: {e:#}")),
    };
    let version = bin
        .as_ref()
        .map(|b| first_line(b, &["--version"]))
        .unwrap_or_default();
    Broker {
        kind: BrokerKind::Moco,
        acl_rules,
        bin,
        version,
    }
}

/// Finds Mosquitto, installing Debian's package when it is missing.
fn prepare_mosquitto() -> Broker {
    let found = on_path("mosquitto").ok_or(()).or_else(|()| {
        let mut update = Command::new("apt-get");
        update.arg("update");
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "--no-install-recommends", "mosquitto"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run("bench: install mosquitto", update)
            .and_then(|()| run("bench: install mosquitto", install))
            .map_err(|e| format!("apt-get install mosquitto failed: {e:#}"))?;
        on_path("mosquitto").ok_or_else(|| "mosquitto not found after install".to_string())
    });
    let version = found
        .as_ref()
        .map(|b| first_line(b, &["-h"]))
        .unwrap_or_default();
    Broker {
        kind: BrokerKind::Mosquitto,
        acl_rules: 0,
        bin: found,
        version,
    }
}

/// Finds rumqttd, installing 0.20.0 from crates.io when it is missing (without `--locked`:
/// its lock file no longer builds).
fn prepare_rumqttd() -> Broker {
    let found = on_path("rumqttd").ok_or(()).or_else(|()| {
        let mut install = cargo();
        install.args(["install", "rumqttd", "--version", "0.20.0"]);
        // Its own target directory: never the workspace's, whose lock it must not touch.
        install.env("CARGO_TARGET_DIR", target_dir().join("rumqttd-install"));
        run("bench: install rumqttd", install)
            .map_err(|e| format!("cargo install rumqttd failed: {e:#}"))?;
        on_path("rumqttd").ok_or_else(|| "rumqttd not found after install".to_string())
    });
    let version = found
        .as_ref()
        .map(|b| first_line(b, &["--version"]))
        .unwrap_or_default();
    Broker {
        kind: BrokerKind::Rumqttd,
        acl_rules: 0,
        bin: found,
        version,
    }
}

/// Lifts the open-files limit so the brokers and moco-load (which inherit it) can hold the
/// connections scenario's sockets.
fn raise_fd_limit() {
    use rlimit::Resource;
    const WANT: u64 = 65_536;
    if let Ok((soft, hard)) = rlimit::getrlimit(Resource::NOFILE) {
        if hard < WANT && rlimit::setrlimit(Resource::NOFILE, WANT, WANT).is_ok() {
            return;
        }
        if soft < hard {
            let _ = rlimit::setrlimit(Resource::NOFILE, hard, hard);
        }
    }
}

/// One moco-load run against one running broker; returns its JSON report.
fn load(load_bin: &Path, broker: &Running, v: &Variant, logs: &Path) -> Result<Value> {
    let mut cmd = Command::new(load_bin);
    cmd.arg("--addr")
        .arg(broker.addr.to_string())
        .arg("--broker-pid")
        .arg(broker.guard.pid().to_string())
        .args(&v.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join("moco-load.log"))?,
        );
    let mut guard = Guard::spawn(cmd)?;
    // Set-up (connect, subscribe, store retained) + the cap + moco-load's own grace + margin.
    let limit = Duration::from_secs_f64(v.seconds * 4.0 + 60.0);
    let started = Instant::now();
    loop {
        if guard.child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            bail!("moco-load ran past {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut stdout) = guard.child.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out)?;
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("moco-load printed no JSON")?;
    Ok(serde_json::from_str(line)?)
}

fn field(report: &Value, path: &[&str]) -> Option<f64> {
    let mut v = report;
    for key in path {
        v = v.get(key)?;
    }
    v.as_f64()
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// One table row's medians, per broker.
#[derive(Debug)]
struct Row {
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    values: BTreeMap<BrokerKind, Option<f64>>,
    /// Brokers that dropped messages (delivered < expected) or failed in some round.
    partial: BTreeMap<BrokerKind, bool>,
}

impl Row {
    /// `a` relative to `b`, oriented so that > 1 means `a` is better.
    fn ratio(&self, a: f64, b: f64) -> Option<f64> {
        if a <= 0.0 || b <= 0.0 {
            return None;
        }
        Some(if self.higher_is_better { a / b } else { b / a })
    }

    fn best_peer(&self) -> Option<f64> {
        let peers = self
            .values
            .iter()
            .filter(|(k, _)| **k != BrokerKind::Moco)
            .filter_map(|(_, v)| *v);
        if self.higher_is_better {
            peers.max_by(f64::total_cmp)
        } else {
            peers.min_by(f64::total_cmp)
        }
    }
}

/// Entry point of `cargo xtask bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let started = Instant::now();
    ctrlc::set_handler(|| {
        for pid in CHILDREN.lock().map(|c| c.clone()).unwrap_or_default() {
            kill_pid(pid);
        }
        eprintln!("\ninterrupted: brokers and load generator stopped");
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")?;
    raise_fd_limit();

    let all = variants(args.quick);
    let chosen: Vec<Variant> = if args.scenarios.is_empty() {
        all.clone()
    } else {
        let picked: Vec<Variant> = all
            .iter()
            .filter(|v| {
                args.scenarios
                    .iter()
                    .any(|s| v.name == *s || v.name.starts_with(&format!("{s}-")))
            })
            .cloned()
            .collect();
        if picked.is_empty() {
            let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
            bail!(
                "no scenario matches {:?}; groups: fan-in fan-out many-to-many latency \
                 connections retained; variants: {}",
                args.scenarios,
                names.join(" ")
            );
        }
        picked
    };
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);

    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "moco-benches",
        "--bin",
        "moco-load",
    ]);
    run("bench: build moco-load", build)?;
    let load_bin = target_dir().join("release/moco-load");

    let mut kinds = args.brokers.clone();
    kinds.sort();
    kinds.dedup();
    let report_dir = root().join("target/bench-report");
    let logs = report_dir.join("logs");
    let work = report_dir.join("work");
    let _ = fs::remove_dir_all(&logs);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&logs)?;
    fs::create_dir_all(&work)?;

    let mut brokers: Vec<Broker> = kinds
        .iter()
        .map(|k| match k {
            BrokerKind::Moco => prepare_moco(args.moco_acl_rules),
            BrokerKind::Mosquitto => prepare_mosquitto(),
            BrokerKind::Rumqttd => prepare_rumqttd(),
        })
        .collect();

    // Preflight: each broker must start and answer an MQTT CONNECT and PINGREQ.
    let probe = Variant {
        name: "probe".into(),
        args: vec!["--scenario".into(), "probe".into()],
        seconds: 5.0,
    };
    for b in &mut brokers {
        if b.bin.is_err() {
            continue;
        }
        let verdict = b.start(&work, &logs).and_then(|r| {
            let rep = load(&load_bin, &r, &probe, &logs)?;
            if rep.get("ok") == Some(&Value::Bool(true)) {
                Ok(())
            } else {
                bail!(
                    "does not answer MQTT on {}: {}",
                    r.addr,
                    rep.get("error").and_then(Value::as_str).unwrap_or("?")
                )
            }
        });
        if let Err(e) = verdict {
            b.bin = Err(format!("{e:#}"));
        }
    }
    for b in &brokers {
        match &b.bin {
            Ok(p) => println!(
                "bench: {:<9} {} ({})",
                b.kind.name(),
                b.version,
                p.display()
            ),
            Err(why) => println!("bench: {:<9} UNAVAILABLE: {why}", b.kind.name()),
        }
    }
    let live: Vec<&Broker> = brokers.iter().filter(|b| b.bin.is_ok()).collect();

    let total = (rounds * chosen.len() * live.len()) as u64;
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut runs: Vec<Value> = Vec::new();
    for round in 1..=rounds {
        for v in &chosen {
            for b in &live {
                pb.set_message(format!(
                    "round {round}/{rounds} {} {}",
                    b.kind.name(),
                    v.name
                ));
                let result = b
                    .start(&work, &logs)
                    .and_then(|r| load(&load_bin, &r, v, &logs));
                let line = match &result {
                    Ok(rep) => summary(rep),
                    Err(e) => format!("error: {e:#}"),
                };
                pb.suspend(|| println!("  r{round} {:<9} {:<16} {line}", b.kind.name(), v.name));
                runs.push(json!({
                    "round": round,
                    "broker": b.kind.name(),
                    "variant": v.name,
                    "args": v.args,
                    "report": result.as_ref().ok(),
                    "error": result.as_ref().err().map(|e| format!("{e:#}")),
                }));
                pb.inc(1);
            }
        }
    }
    pb.finish_and_clear();

    let rows = aggregate(&chosen, &brokers, &runs);
    let table = render_table(&rows, &brokers);
    println!();
    println!("{table}");

    let report = json!({
        "quick": args.quick,
        "moco_acl_rules": args.moco_acl_rules,
        "rounds": rounds,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "brokers": brokers.iter().map(|b| json!({
            "name": b.kind.name(),
            "available": b.bin.is_ok(),
            "unavailable_reason": b.bin.as_ref().err(),
            "version": b.version,
        })).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| json!({
            "label": r.label,
            "unit": r.unit,
            "higher_is_better": r.higher_is_better,
            "median": r.values.iter().map(|(k, v)| (k.name(), *v)).collect::<BTreeMap<_, _>>(),
            "partial": r.partial.iter().map(|(k, v)| (k.name(), *v)).collect::<BTreeMap<_, _>>(),
            "moco_vs_best_peer": r.values.get(&BrokerKind::Moco).copied().flatten()
                .zip(r.best_peer()).and_then(|(m, p)| r.ratio(m, p)),
        })).collect::<Vec<_>>(),
        "runs": runs,
    });
    let json_path = report_dir.join("bench.json");
    fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let svg_path = report_dir.join("bench.svg");
    chart(&rows, &brokers, &svg_path)?;
    println!("report: {}", json_path.display());
    println!("chart:  {}", svg_path.display());
    println!("bench finished in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One line per run for the log above the progress bar.
fn summary(rep: &Value) -> String {
    let num = |k: &str| rep.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let mut s = format!(
        "{:>10.0}/s  delivered {}/{}",
        num("rate"),
        num("delivered"),
        num("expected")
    );
    if let Some(cpu) = rep.get("cpu_us_per_msg").and_then(Value::as_f64) {
        s.push_str(&format!("  cpu {cpu:.2} µs/msg"));
    }
    if let Some(p99) = field(rep, &["latency", "p99_us"]) {
        s.push_str(&format!("  p99 {p99:.0} µs"));
    }
    if let Some(kib) = rep.get("rss_per_conn_kib").and_then(Value::as_f64) {
        s.push_str(&format!("  {kib:.2} KiB/conn"));
    }
    if rep.get("capped") == Some(&Value::Bool(true)) {
        s.push_str("  (time cap)");
    }
    if let Some(e) = rep.get("error").and_then(Value::as_str) {
        s.push_str(&format!("  error: {e}"));
    }
    s
}

fn aggregate(chosen: &[Variant], brokers: &[Broker], runs: &[Value]) -> Vec<Row> {
    let mut rows = Vec::new();
    for metric in METRICS {
        if !chosen.iter().any(|v| v.name == metric.variant) {
            continue;
        }
        let mut values = BTreeMap::new();
        let mut partial = BTreeMap::new();
        for b in brokers {
            let mine: Vec<&Value> = runs
                .iter()
                .filter(|r| r["broker"] == b.kind.name() && r["variant"] == metric.variant)
                .collect();
            let mut xs = Vec::new();
            let mut part = false;
            for r in &mine {
                let rep = &r["report"];
                let complete = rep.get("complete") == Some(&Value::Bool(true));
                let ok = rep.get("ok") == Some(&Value::Bool(true));
                part |= !(complete && ok);
                // A run that delivered nothing has no rate to speak of.
                if rep.get("delivered").and_then(Value::as_u64).unwrap_or(0) == 0 {
                    continue;
                }
                if metric.needs_complete && !complete {
                    continue;
                }
                if let Some(x) = field(rep, metric.field) {
                    xs.push(x);
                }
            }
            values.insert(b.kind, median(xs));
            partial.insert(b.kind, part && !mine.is_empty());
        }
        rows.push(Row {
            label: metric.label,
            unit: metric.unit,
            higher_is_better: metric.higher_is_better,
            values,
            partial,
        });
    }
    rows
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x >= 100_000.0 => format!("{:.0}k", x / 1e3),
        Some(x) if x >= 1_000.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn render_table(rows: &[Row], brokers: &[Broker]) -> String {
    let mut header = vec!["scenario".to_string(), "unit".to_string()];
    for b in brokers {
        header.push(match b.bin {
            Ok(_) => b.kind.name().to_string(),
            Err(_) => format!("{} (n/a)", b.kind.name()),
        });
    }
    let has_moco = brokers.iter().any(|b| b.kind == BrokerKind::Moco);
    let peers: Vec<&Broker> = brokers
        .iter()
        .filter(|b| b.kind != BrokerKind::Moco)
        .collect();
    if has_moco {
        for p in &peers {
            header.push(format!("moco/{}", p.kind.name()));
        }
        header.push("moco ahead?".into());
    }
    let mut lines = vec![header];
    for r in rows {
        let mut cells = vec![r.label.to_string(), r.unit.to_string()];
        for b in brokers {
            let partial = r.partial.get(&b.kind) == Some(&true);
            let mut s = match (&b.bin, r.values.get(&b.kind).copied().flatten()) {
                (Err(_), _) => "unavailable".into(),
                (Ok(_), None) if partial => "incomplete".into(),
                (Ok(_), v) => fmt_value(v),
            };
            if partial && b.bin.is_ok() {
                s.push('!');
            }
            cells.push(s);
        }
        if has_moco {
            let moco = r.values.get(&BrokerKind::Moco).copied().flatten();
            for p in &peers {
                let peer = r.values.get(&p.kind).copied().flatten();
                cells.push(match moco.zip(peer).and_then(|(a, b)| r.ratio(a, b)) {
                    Some(x) => format!("{x:.2}x"),
                    None => "-".into(),
                });
            }
            let moco_partial = r.partial.get(&BrokerKind::Moco) == Some(&true);
            cells.push(
                match moco.zip(r.best_peer()).and_then(|(a, b)| r.ratio(a, b)) {
                    // Faster while losing messages is not ahead.
                    Some(_) if moco_partial => "no (drops)".into(),
                    Some(x) if x > 1.0 => "yes".into(),
                    Some(_) => "no".into(),
                    None => "-".into(),
                },
            );
        }
        lines.push(cells);
    }
    let ncols = lines[0].len();
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = widths[c] - s.chars().count();
                if c < 2 {
                    format!("{s}{}", " ".repeat(pad))
                } else {
                    format!("{}{s}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (ncols - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out.push_str(
        "medians over the rounds; ratios > 1 mean moco is ahead (for lower-is-better rows the \
         ratio is peer/moco);\n'!' = some round dropped messages (delivered < expected) or \
         failed: see bench.json; CPU is the broker's own (from /proc).\n",
    );
    out
}

fn broker_color(kind: BrokerKind) -> plotters::style::RGBColor {
    match kind {
        BrokerKind::Moco => plotters::style::RGBColor(0xd9, 0x5f, 0x02),
        BrokerKind::Mosquitto => plotters::style::RGBColor(0x1b, 0x9e, 0x77),
        BrokerKind::Rumqttd => plotters::style::RGBColor(0x75, 0x70, 0xb3),
    }
}

/// A grouped horizontal bar chart: per row, each broker's score relative to the best broker of
/// that row (1.0 = best; orientation already applied for lower-is-better rows).
fn chart(rows: &[Row], brokers: &[Broker], path: &Path) -> Result<()> {
    use plotters::prelude::*;

    let n = rows.len().max(1);
    let height = 110 + 34 * n as u32;
    let root_area = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root_area.fill(&WHITE)?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.label, r.unit))
        .collect();
    let mut chart = ChartBuilder::on(&root_area)
        .caption(
            "cargo xtask bench: score relative to the best broker per row (1.0 = best)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d(0.0f64..1.3f64, 0.0f64..n as f64)?;
    let labels_for_axis = labels.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&move |y: &f64| {
            // Label only the row centres (k + 0.5), counted from the top.
            let k = y - 0.5;
            if (k - k.round()).abs() < 1e-6 && k >= 0.0 {
                let i = n - 1 - k.round() as usize;
                labels_for_axis.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("relative score")
        .draw()?;
    let live: Vec<&Broker> = brokers.iter().collect();
    let slot = 0.8 / live.len().max(1) as f64;
    for (bi, b) in live.iter().enumerate() {
        let color = broker_color(b.kind);
        let mut bars = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let all: Vec<f64> = r.values.values().filter_map(|v| *v).collect();
            let best = if r.higher_is_better {
                all.iter().copied().fold(f64::MIN, f64::max)
            } else {
                all.iter().copied().fold(f64::MAX, f64::min)
            };
            let Some(v) = r.values.get(&b.kind).copied().flatten() else {
                continue;
            };
            let score = if v <= 0.0 || best <= 0.0 {
                0.0
            } else if r.higher_is_better {
                v / best
            } else {
                best / v
            };
            let top = (n - i) as f64 - 0.1 - slot * bi as f64;
            bars.push(Rectangle::new(
                [(0.0, top - slot * 0.9), (score, top)],
                color.filled(),
            ));
        }
        let name = match b.bin {
            Ok(_) => b.kind.name().to_string(),
            Err(_) => format!("{} (unavailable)", b.kind.name()),
        };
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root_area.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_names_a_full_variant() {
        let names: Vec<String> = variants(false).into_iter().map(|v| v.name).collect();
        for m in METRICS {
            assert!(names.iter().any(|n| n == m.variant), "{}", m.variant);
        }
    }

    #[test]
    fn quick_variants_are_a_subset_with_short_caps() {
        let full: Vec<String> = variants(false).into_iter().map(|v| v.name).collect();
        for v in variants(true) {
            assert!(full.contains(&v.name), "{}", v.name);
            assert!(v.seconds <= 10.0);
        }
    }

    #[test]
    fn ratios_read_greater_than_one_as_moco_ahead() {
        let row = |higher_is_better| Row {
            label: "x",
            unit: "u",
            higher_is_better,
            values: BTreeMap::from([
                (BrokerKind::Moco, Some(2.0)),
                (BrokerKind::Mosquitto, Some(1.0)),
                (BrokerKind::Rumqttd, Some(4.0)),
            ]),
            partial: BTreeMap::new(),
        };
        let up = row(true);
        assert_eq!(up.best_peer(), Some(4.0));
        assert_eq!(up.ratio(2.0, 4.0), Some(0.5));
        let down = row(false);
        assert_eq!(down.best_peer(), Some(1.0));
        assert_eq!(down.ratio(2.0, 1.0), Some(0.5));
        assert_eq!(down.ratio(0.0, 1.0), None);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}

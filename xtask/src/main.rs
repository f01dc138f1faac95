//! Project automation for moco: `cargo xtask test | fuzz | interop`.
//!
//! Every command prints what it runs before running it, so a long CI log shows where time went.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod interop;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "moco project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run every check and test: fmt, clippy (-D warnings), docs, all workspace tests, and the
    /// interoperability suite against moco.
    ///
    /// Installs on a fresh machine whatever the tests need first.
    Test,
    /// Run a cargo-fuzz target for a bounded time.
    Fuzz {
        /// Which fuzzed crate: `codec`.
        target: FuzzTarget,
        /// How long to fuzz, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run the interoperability suite (interop/, paho-mqtt, MQTT v3.1.1 and v5) against a broker.
    ///
    /// Builds and starts the broker on a free loopback port, runs the suite, stops the broker;
    /// the last line is `N passed, N failed`.
    Interop {
        /// Which broker to test: the release `moco` binary, or Mosquitto to check the suite.
        #[arg(long, value_enum, default_value_t = interop::Broker::Moco)]
        broker: interop::Broker,
        /// The transport the suite's clients use (moco only for all but tcp).
        #[arg(long, value_enum, default_value_t = interop::Transport::Tcp)]
        transport: interop::Transport,
        /// Run only the scenarios whose name contains this text, e.g. `-k retained` or `-k v5`.
        #[arg(short = 'k')]
        filter: Option<String>,
    },
    /// Benchmark moco against Mosquitto and rumqttd under the same bounded load (issue 9).
    ///
    /// Builds moco and the load generator in release, installs the peers if missing, runs each
    /// scenario against each broker in turn and prints a table of medians with moco/peer ratios;
    /// writes target/bench-report/bench.json and bench.svg.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FuzzTarget {
    /// The MQTT decoder (crates/codec/fuzz, target `decode`).
    Codec,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Test => test(),
        Cmd::Fuzz { target, seconds } => fuzz(target, seconds),
        Cmd::Interop {
            broker,
            transport,
            filter,
        } => interop::interop(broker, transport, filter),
        Cmd::Bench(args) => bench::bench(args),
    }
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, printing it first with a step counter, and fails on a non-zero exit.
fn run(step: &str, mut cmd: Command) -> Result<()> {
    println!("==> [{step}] {}", display(&cmd));
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", display(&cmd)))?;
    if !status.success() {
        bail!("[{step}] failed ({status}): {}", display(&cmd));
    }
    println!("<== [{step}] ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Makes sure rustfmt and clippy are present: a minimal rustup profile lacks them.
fn ensure_rust_components() -> Result<()> {
    for (component, probe) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        if !succeeds("cargo", &[probe, "--version"]) {
            let mut cmd = Command::new("rustup");
            cmd.args(["component", "add", component]);
            run("setup", cmd)?;
        }
    }
    Ok(())
}

fn test() -> Result<()> {
    let started = Instant::now();
    ensure_rust_components()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("1/5 fmt", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("2/5 clippy", clippy)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("3/5 doc", doc)?;

    // moco-storage's Redis tests run against a throw-away redis-server (Debian's package,
    // installed when missing) on a free loopback port, stopped when the tests are done.
    let redis = RedisTestServer::start()?;
    let mut tests = cargo();
    tests
        .args(["test", "--workspace"])
        .env("MOCO_TEST_REDIS_URL", &redis.url);
    run("4/5 test", tests)?;
    drop(redis);

    // The interoperability suite against the release build of moco (paho-mqtt from PyPI in
    // interop/.venv, created on a fresh machine; a free loopback port).
    println!("==> [5/5 interop] cargo xtask interop --broker moco");
    let interop_started = Instant::now();
    if !interop::run_interop(interop::Broker::Moco, interop::Transport::Tcp, None)? {
        bail!("[5/5 interop] failed: the interoperability suite against moco");
    }
    println!(
        "<== [5/5 interop] ok in {:.1}s",
        interop_started.elapsed().as_secs_f64()
    );

    println!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `scripts/redis-test-server.sh`: started on creation, stopped on drop.
struct RedisTestServer {
    url: String,
}

impl RedisTestServer {
    fn script() -> PathBuf {
        root().join("scripts/redis-test-server.sh")
    }

    fn start() -> Result<Self> {
        let mut cmd = Command::new("bash");
        cmd.arg(Self::script()).arg("start");
        println!("==> [setup] {}", display(&cmd));
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("could not run scripts/redis-test-server.sh")?;
        if !out.status.success() {
            bail!(
                "[setup] the Redis test server did not start ({})",
                out.status
            );
        }
        let url = String::from_utf8(out.stdout)?.trim().to_string();
        println!("<== [setup] Redis test server at {url}");
        Ok(Self { url })
    }
}

impl Drop for RedisTestServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .status();
    }
}

fn fuzz(target: FuzzTarget, seconds: u64) -> Result<()> {
    let (dir, fuzz_target) = match target {
        FuzzTarget::Codec => (root().join("crates/codec/fuzz"), "decode"),
    };
    if !succeeds("cargo", &["fuzz", "--version"]) {
        let mut install = cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        run("setup", install)?;
    }
    // libFuzzer needs sanitizer flags that only nightly accepts; use the installed nightly
    // when there is one, else let stable accept them (the only toolchain a machine may have).
    let nightly = succeeds("rustup", &["run", "nightly", "rustc", "--version"]);
    let mut cmd = Command::new("cargo");
    if nightly {
        cmd.arg("+nightly");
    } else {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    cmd.current_dir(&dir).args([
        "fuzz",
        "run",
        fuzz_target,
        "--",
        &format!("-max_total_time={seconds}"),
        "-print_final_stats=1",
    ]);
    run(&format!("fuzz {fuzz_target} for {seconds}s"), cmd)
}

//! `moco-load`: runs one load scenario against an MQTT broker on loopback and prints one JSON
//! line with the result (see `moco_benches::scenario::Report`).
//!
//! ```sh
//! moco-load --addr 127.0.0.1:1883 --scenario fan-in --qos 1 --payload 16 --publishers 4 \
//!     --messages 100000 --seconds 10 --broker-pid "$(pidof mosquitto)"
//! ```
//!
//! With `MOCO_LOAD_DUMP=FILE`, the latency scenario also writes every sample to FILE
//! (`send-stamp-ns latency-ns` per line).
//!
//! The exit status is 0 when the scenario ran to its end, 1 when it failed (the JSON line still
//! says why), 2 on bad arguments.

use std::net::SocketAddr;

use clap::Parser;
use moco_benches::scenario::{self, Params, Report, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "moco-load",
    about = "Bounded MQTT load scenarios against a loopback broker"
)]
struct Args {
    /// Broker address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    addr: SocketAddr,
    /// Scenario to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// QoS of publications and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 16)]
    payload: usize,
    /// Publishers (fan-in, many-to-many).
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Subscribers (fan-out, many-to-many).
    #[arg(long, default_value_t = 16)]
    subscribers: usize,
    /// Messages per publisher; for `retained`, the number of retained topics.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Time cap of the measured phase, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Latency scenario: messages per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Outstanding QoS 1/2 messages per publisher.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Connections scenario: idle connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections scenario: connects in flight at once. Keep it under the broker's listen
    /// backlog (Mosquitto's is 100): an overflowing SYN queue stalls a connect by a second.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The broker's pid, to read its CPU time and RSS from /proc around the measured window.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Tokio worker threads; 0 runs everything on one current-thread runtime. One worker is the
    /// default: the generator needs a few percent of a core even at millions of deliveries per
    /// second, and on two shared cores a second worker measured no faster (fan-in, many-to-many)
    /// or slower (fan-out 1→16, connects) by competing with the broker for the cores.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() {
    let args = Args::parse();
    raise_fd_limit();
    let params = Params {
        addr: args.addr,
        scenario: args.scenario,
        qos: args.qos,
        payload: args.payload,
        publishers: args.publishers,
        subscribers: args.subscribers,
        messages: args.messages,
        seconds: args.seconds,
        rate: args.rate,
        window: args.window,
        connections: args.connections,
        concurrency: args.concurrency,
        broker_pid: args.broker_pid,
        tag: std::process::id().to_string(),
    };
    let runtime = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = runtime.expect("a tokio runtime");
    let report = runtime
        .block_on(scenario::run(&params))
        .unwrap_or_else(|e| Report {
            scenario: format!("{:?}", params.scenario),
            error: Some(format!("{e:#}")),
            ..Report::default()
        });
    println!(
        "{}",
        serde_json::to_string(&report).expect("reports serialize")
    );
    // Exit without waiting for tasks still parked on sockets.
    std::process::exit(if report.ok { 0 } else { 1 });
}

/// Lifts the soft open-files limit to the hard one: the connections scenario holds thousands.
fn raise_fd_limit() {
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        if soft < hard {
            let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
        }
    }
}

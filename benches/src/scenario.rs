//! The load scenarios of issue 9, each bounded in message count and in time, loopback only.
//!
//! Every scenario connects and subscribes first (outside the measured window), samples the
//! broker's `/proc` counters, runs, samples them again, and reports what it got: a broker that
//! drops messages shows `delivered < expected`, never a failure hidden as a rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::BytesMut;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::Conn;
use crate::mqtt::{self, PublishTemplate};
use crate::procfs::{self, Sample};

/// Bound on any set-up exchange (connect, subscribe, ping).
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// After the publishers are done, the run ends once no delivery arrived for this long.
const QUIET: Duration = Duration::from_secs(1);
/// How long past the time cap stragglers (unacknowledged messages, queued deliveries) may take.
const GRACE: Duration = Duration::from_secs(5);
/// Bytes a publisher batches into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// The scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// P publishers on distinct topics → 1 subscriber on a wildcard.
    FanIn,
    /// 1 publisher → N subscribers on one topic.
    FanOut,
    /// P publishers and S subscribers, each subscriber on its own topic (IoT shape).
    ManyToMany,
    /// 1 publisher at a fixed rate → 1 subscriber; end-to-end latency from a payload timestamp.
    Latency,
    /// C idle connections: connect rate and broker RSS per connection.
    Connections,
    /// M retained topics, then one wildcard subscription: time to receive them all.
    Retained,
    /// One CONNECT/CONNACK and PINGREQ/PINGRESP: does the broker speak MQTT at all.
    Probe,
}

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct Params {
    /// Broker address (loopback).
    pub addr: SocketAddr,
    /// Which scenario.
    pub scenario: Scenario,
    /// QoS of publications and subscriptions.
    pub qos: u8,
    /// Payload bytes per message (at least 8 for `latency`, which carries a timestamp).
    pub payload: usize,
    /// Publishers (fan-in, many-to-many).
    pub publishers: usize,
    /// Subscribers (fan-out, many-to-many).
    pub subscribers: usize,
    /// Messages per publisher (retained: retained topics).
    pub messages: u64,
    /// Time cap of the measured phase, in seconds.
    pub seconds: f64,
    /// Latency: messages per second, all publishers together.
    pub rate: u64,
    /// Outstanding QoS 1/2 messages per publisher.
    pub window: usize,
    /// Connections scenario: how many to open.
    pub connections: usize,
    /// Connections scenario: how many connects in flight at once.
    pub concurrency: usize,
    /// The broker's process id, to read its CPU time and RSS from `/proc`.
    pub broker_pid: Option<u32>,
    /// Prefix that keeps topics and client ids of this run apart from any other.
    pub tag: String,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Samples kept (after the warm-up 1%).
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// The one JSON line `moco-load` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// QoS used.
    pub qos: u8,
    /// Payload bytes.
    pub payload: usize,
    /// Publishers used.
    pub publishers: usize,
    /// Subscribers used.
    pub subscribers: usize,
    /// Whether the scenario ran to its end without an error.
    pub ok: bool,
    /// The error, when it did not.
    pub error: Option<String>,
    /// Messages the publishers sent (retained: retained messages stored).
    pub sent: u64,
    /// Deliveries expected from what was sent.
    pub expected: u64,
    /// Deliveries counted at the subscribers.
    pub delivered: u64,
    /// `delivered == expected`.
    pub complete: bool,
    /// Whether the time cap cut the run short of its message count.
    pub capped: bool,
    /// Measured wall time in seconds: start → last delivery (connections: → last CONNACK).
    pub elapsed_s: f64,
    /// Deliveries per second over `elapsed_s` (connections: connects per second).
    pub rate: f64,
    /// Broker CPU seconds (user + system) over the measured window.
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU microseconds per delivery (connections: per connect).
    pub cpu_us_per_msg: Option<f64>,
    /// The load generator's own CPU seconds over the measured window: near `2 × elapsed_s` on
    /// two cores means it, not the broker, may have been the limit.
    pub loadgen_cpu_s: Option<f64>,
    /// Broker RSS before the measured window, KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS at its end, KiB.
    pub rss_after_kib: Option<u64>,
    /// Latency scenario: percentiles.
    pub latency: Option<Latency>,
    /// Connections scenario: connections that completed CONNACK and PINGRESP.
    pub connections: Option<u64>,
    /// Connections scenario: broker RSS growth per connection, KiB.
    pub rss_per_conn_kib: Option<f64>,
}

impl Report {
    fn new(p: &Params) -> Self {
        Self {
            scenario: format!("{:?}", p.scenario),
            qos: p.qos,
            payload: p.payload,
            publishers: p.publishers,
            subscribers: p.subscribers,
            ..Self::default()
        }
    }

    fn loadgen(&mut self, before: Option<Sample>) {
        if let (Some(b), Some(a)) = (before, procfs::maybe_sample(Some(std::process::id()))) {
            self.loadgen_cpu_s = Some((a.cpu_s - b.cpu_s).max(0.0));
        }
    }

    fn broker(&mut self, before: Option<Sample>, after: Option<Sample>, per: u64) {
        if let (Some(b), Some(a)) = (before, after) {
            let cpu = (a.cpu_s - b.cpu_s).max(0.0);
            self.broker_cpu_s = Some(cpu);
            if per > 0 {
                self.cpu_us_per_msg = Some(cpu * 1e6 / per as f64);
            }
            self.rss_before_kib = Some(b.rss_kib);
            self.rss_after_kib = Some(a.rss_kib);
        }
    }
}

/// Runs one scenario. Errors are returned, not printed: the caller turns them into a report.
pub async fn run(p: &Params) -> Result<Report> {
    ensure!(p.qos <= 2, "QoS is 0, 1 or 2");
    ensure!(p.seconds > 0.0, "--seconds must be positive");
    ensure!(
        p.addr.ip().is_loopback(),
        "the load generator targets loopback only"
    );
    let mut p = p.clone();
    match p.scenario {
        Scenario::FanIn => {
            let subs = vec![format!("mb/{}/in/+", p.tag)];
            let pubs = (0..p.publishers.max(1))
                .map(|i| format!("mb/{}/in/{i}", p.tag))
                .collect();
            p.subscribers = 1;
            pubsub(&p, subs, pubs, 1, None).await
        }
        Scenario::FanOut => {
            let topic = format!("mb/{}/out", p.tag);
            let n = p.subscribers.max(1);
            p.publishers = 1;
            pubsub(&p, vec![topic.clone(); n], vec![topic], n as u64, None).await
        }
        Scenario::ManyToMany => {
            let s = p.subscribers.max(1);
            let subs = (0..s).map(|i| format!("mb/{}/m/{i}", p.tag)).collect();
            let pubs = (0..p.publishers.max(1))
                .map(|i| format!("mb/{}/m/{}", p.tag, i % s))
                .collect();
            pubsub(&p, subs, pubs, 1, None).await
        }
        Scenario::Latency => {
            p.payload = p.payload.max(8);
            p.publishers = 1;
            p.subscribers = 1;
            ensure!(p.rate > 0, "--rate must be positive");
            let topic = format!("mb/{}/lat", p.tag);
            let rate = p.rate as f64;
            pubsub(&p, vec![topic.clone()], vec![topic], 1, Some(rate)).await
        }
        Scenario::Connections => connections(&p).await,
        Scenario::Retained => retained(&p).await,
        Scenario::Probe => probe(&p).await,
    }
}

fn kebab(s: Scenario) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Counters shared by the tasks of one run.
#[derive(Debug, Default)]
struct Shared {
    delivered: AtomicU64,
    stop: AtomicBool,
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct SubOut {
    delivered: u64,
    last: Option<Instant>,
    latencies_ns: Vec<u64>,
    /// The send stamp of each latency sample, for [`DUMP_ENV`].
    sent_ns: Vec<u64>,
}

async fn connect_all(p: &Params, ids: Vec<String>) -> Result<Vec<Conn>> {
    let mut set = JoinSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let addr = p.addr;
        set.spawn(async move { (i, Conn::connect(addr, &id, SETUP_TIMEOUT).await) });
    }
    let mut out: Vec<Option<Conn>> = (0..set.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, conn) = r?;
        out[i] = Some(conn?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// The shape behind fan-in, fan-out, many-to-many and latency: subscribers on `subs` filters,
/// one publisher per `pubs` topic; each message reaches `factor` subscribers.
async fn pubsub(
    p: &Params,
    subs: Vec<String>,
    pubs: Vec<String>,
    factor: u64,
    rate: Option<f64>,
) -> Result<Report> {
    let mut report = Report::new(p);
    report.scenario = kebab(p.scenario);
    let stamp_base = Instant::now();

    let sub_ids = (0..subs.len())
        .map(|i| format!("mb{}s{i}", p.tag))
        .collect();
    let mut sub_conns = connect_all(p, sub_ids).await.context("subscribers")?;
    for (conn, filter) in sub_conns.iter_mut().zip(&subs) {
        conn.subscribe(filter, p.qos, SETUP_TIMEOUT)
            .await
            .context("subscribe")?;
    }
    let pub_ids = (0..pubs.len())
        .map(|i| format!("mb{}p{i}", p.tag))
        .collect();
    let pub_conns = connect_all(p, pub_ids).await.context("publishers")?;

    let shared = Arc::new(Shared::default());
    let before = procfs::maybe_sample(p.broker_pid);
    let me = procfs::maybe_sample(Some(std::process::id()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(p.seconds);
    let stamp = rate.map(|_| stamp_base);
    let per_pub_rate = rate.map(|r| r / pubs.len() as f64);

    let mut sub_set = JoinSet::new();
    for conn in sub_conns {
        let shared = shared.clone();
        sub_set.spawn(subscriber(conn, shared, stamp));
    }
    let mut pub_set = JoinSet::new();
    for (conn, topic) in pub_conns.into_iter().zip(&pubs) {
        let job = PubJob {
            template: PublishTemplate::new(topic, p.payload, p.qos, false),
            qos: p.qos,
            total: p.messages,
            window: p.window.max(1),
            rate: per_pub_rate,
            start,
            deadline,
            stamp,
        };
        pub_set.spawn(publisher(conn, job));
    }

    let mut sent = 0u64;
    let mut capped = false;
    let mut keep = Vec::new(); // publisher sockets stay open until the end
    let mut first_err = None;
    while let Some(r) = pub_set.join_next().await {
        match r? {
            Ok((n, was_capped, conn)) => {
                sent += n;
                capped |= was_capped;
                keep.push(conn);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let expected = sent * factor;
    // Wait for the deliveries: all of them, or until they stop coming, or the grace ends.
    let hard_end = deadline + GRACE;
    let mut last_seen = shared.delivered.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let got = shared.delivered.load(Ordering::Relaxed);
        if got >= expected || now >= hard_end || now - last_progress >= QUIET {
            break;
        }
        if got != last_seen {
            last_seen = got;
            last_progress = now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut delivered = 0;
    let mut last = None::<Instant>;
    let mut lat = Vec::new();
    while let Some(r) = sub_set.join_next().await {
        match r? {
            Ok(out) => {
                delivered += out.delivered;
                last = last.max(out.last);
                if let Ok(path) = std::env::var(DUMP_ENV) {
                    dump(&path, &out).with_context(|| format!("{DUMP_ENV}={path}"))?;
                }
                lat.extend(out.latencies_ns);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let after = procfs::maybe_sample(p.broker_pid);
    report.loadgen(me);
    drop(keep);

    report.sent = sent;
    report.expected = expected;
    report.delivered = delivered;
    report.complete = delivered == expected;
    report.capped = capped;
    let elapsed = last.map(|l| l - start).unwrap_or_default().as_secs_f64();
    report.elapsed_s = elapsed;
    report.rate = if elapsed > 0.0 {
        delivered as f64 / elapsed
    } else {
        0.0
    };
    report.broker(before, after, delivered);
    if rate.is_some() {
        report.latency = percentiles(lat);
    }
    if let Some(e) = first_err {
        report.error = Some(format!("{e:#}"));
    } else {
        report.ok = true;
    }
    Ok(report)
}

/// Environment variable naming a file where the latency scenario writes every sample, one
/// `send-stamp-ns latency-ns` line each, in arrival order (the stamps count from one instant of
/// the run): to see where the tail samples fall in time (bursts, periodic stalls), not only the
/// percentiles. Diagnostics only; the report is the same with or without it.
pub const DUMP_ENV: &str = "MOCO_LOAD_DUMP";

fn dump(path: &str, out: &SubOut) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (s, l) in out.sent_ns.iter().zip(&out.latencies_ns) {
        writeln!(f, "{s} {l}")?;
    }
    f.flush()?;
    Ok(())
}

fn percentiles(mut ns: Vec<u64>) -> Option<Latency> {
    // Samples arrive per subscriber in order; the first 1% is warm-up (first allocations,
    // page faults) and is left out.
    let skip = ns.len() / 100;
    ns.drain(..skip);
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1e3;
    let sum: u128 = ns.iter().map(|&v| u128::from(v)).sum();
    Some(Latency {
        samples: ns.len(),
        p50_us: at(0.50),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: *ns.last().expect("not empty") as f64 / 1e3,
        mean_us: sum as f64 / ns.len() as f64 / 1e3,
    })
}

async fn subscriber(mut conn: Conn, shared: Arc<Shared>, stamp: Option<Instant>) -> Result<SubOut> {
    let mut out = SubOut::default();
    while !shared.stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(50), conn.read_more()).await {
            Err(_) => continue,
            Ok(r) => {
                r?;
            }
        }
        let now = Instant::now();
        let now_ns = stamp.map(|b| (now - b).as_nanos() as u64);
        let mut got = 0u64;
        let lat = &mut out.latencies_ns;
        let sent_v = &mut out.sent_ns;
        conn.drain(|f, w| match f.kind {
            mqtt::PUBLISH => {
                got += 1;
                if let Some((pid, payload)) = f.publish() {
                    match f.qos() {
                        1 => mqtt::ack(w, mqtt::PUBACK, pid),
                        2 => mqtt::ack(w, mqtt::PUBREC, pid),
                        _ => {}
                    }
                    if let (Some(now_ns), Some(bytes)) = (now_ns, payload.get(..8)) {
                        let sent = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                        lat.push(now_ns.saturating_sub(sent));
                        sent_v.push(sent);
                    }
                }
            }
            mqtt::PUBREL => {
                if let Some(pid) = f.ack_id() {
                    mqtt::ack(w, mqtt::PUBCOMP, pid);
                }
            }
            _ => {}
        })?;
        conn.flush().await?;
        if got > 0 {
            out.delivered += got;
            out.last = Some(now);
            shared.delivered.fetch_add(got, Ordering::Relaxed);
        }
    }
    Ok(out)
}

/// One publisher's instructions.
struct PubJob {
    template: PublishTemplate,
    qos: u8,
    total: u64,
    window: usize,
    rate: Option<f64>,
    start: Instant,
    deadline: Instant,
    stamp: Option<Instant>,
}

/// Packet ids in flight, so a slow QoS 2 exchange never has its id reused.
struct PacketIds {
    used: Vec<bool>,
    next: u16,
    inflight: usize,
}

impl PacketIds {
    fn new() -> Self {
        Self {
            used: vec![false; 65_536],
            next: 1,
            inflight: 0,
        }
    }

    fn take(&mut self) -> u16 {
        loop {
            let id = self.next;
            self.next = self.next.checked_add(1).unwrap_or(1);
            if !self.used[usize::from(id)] {
                self.used[usize::from(id)] = true;
                self.inflight += 1;
                return id;
            }
        }
    }

    fn release(&mut self, id: u16) {
        if std::mem::replace(&mut self.used[usize::from(id)], false) {
            self.inflight -= 1;
        }
    }
}

/// Publishes `job.total` messages (or until the deadline); returns (sent, capped, socket).
async fn publisher(mut conn: Conn, job: PubJob) -> Result<(u64, bool, Conn)> {
    if job.qos == 0 && job.rate.is_none() {
        // Unpaced QoS 0: write the same pre-encoded batch over and over.
        let one = job.template.len();
        let per_batch = (WRITE_BATCH / one).max(1);
        let mut batch = BytesMut::with_capacity(per_batch * one);
        for _ in 0..per_batch {
            job.template.append(&mut batch, 0, None);
        }
        let mut sent = 0u64;
        while sent < job.total {
            if Instant::now() >= job.deadline {
                return Ok((sent, true, conn));
            }
            let n = (job.total - sent).min(per_batch as u64) as usize;
            conn.write_raw(&batch[..n * one]).await?;
            sent += n as u64;
        }
        return Ok((sent, false, conn));
    }

    let mut ids = PacketIds::new();
    let mut sent = 0u64;
    let mut limit = job.total;
    let mut capped = false;
    let grace_end = job.deadline + GRACE;
    loop {
        let now = Instant::now();
        if now >= job.deadline && sent < limit {
            limit = sent;
            capped = true;
        }
        let due = match job.rate {
            Some(r) => limit.min(((now - job.start).as_secs_f64() * r) as u64 + 1),
            None => limit,
        };
        while sent < due
            && (job.qos == 0 || ids.inflight < job.window)
            && conn.wbuf.len() < WRITE_BATCH
        {
            let id = if job.qos > 0 { ids.take() } else { 0 };
            let stamp = job.stamp.map(|b| b.elapsed().as_nanos() as u64);
            job.template.append(&mut conn.wbuf, id, stamp);
            sent += 1;
        }
        conn.flush().await?;
        if sent >= limit && ids.inflight == 0 {
            break;
        }
        let window_open = job.qos == 0 || ids.inflight < job.window;
        if sent < due && window_open {
            continue; // the write batch was full
        }
        if ids.inflight > 0 {
            let now = Instant::now();
            if now >= grace_end {
                bail!("{} messages never acknowledged", ids.inflight);
            }
            let wait = if job.rate.is_some() {
                Duration::from_millis(1)
            } else {
                (grace_end - now).min(Duration::from_millis(200))
            };
            if tokio::time::timeout(wait, conn.read_more()).await.is_err() {
                continue;
            }
            let qos = job.qos;
            conn.drain(|f, w| match (f.kind, f.ack_id()) {
                (mqtt::PUBACK, Some(id)) if qos == 1 => ids.release(id),
                (mqtt::PUBREC, Some(id)) if qos == 2 => mqtt::ack(w, mqtt::PUBREL, id),
                (mqtt::PUBCOMP, Some(id)) if qos == 2 => ids.release(id),
                _ => {}
            })?;
        } else if job.rate.is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok((sent, capped, conn))
}

/// Opens `p.connections` idle clients, `p.concurrency` at a time; each must CONNACK and then
/// answer a PINGREQ. RSS per connection is read while they are all open.
async fn connections(p: &Params) -> Result<Report> {
    let mut report = Report::new(p);
    report.scenario = kebab(p.scenario);
    let n = p.connections.max(1);
    let before = procfs::maybe_sample(p.broker_pid);
    let me = procfs::maybe_sample(Some(std::process::id()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(p.seconds);
    let sem = Arc::new(tokio::sync::Semaphore::new(p.concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let addr = p.addr;
        let id = format!("mb{}c{i}", p.tag);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            if Instant::now() >= deadline {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let conn = Conn::connect(addr, &id, left.min(SETUP_TIMEOUT)).await;
            Some((conn, Instant::now()))
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut last = start;
    let mut failed = 0u64;
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r? {
            Some((Ok(c), at)) => {
                conns.push(c);
                last = last.max(at);
            }
            Some((Err(e), _)) => {
                failed += 1;
                first_err.get_or_insert(e);
            }
            None => report.capped = true,
        }
    }
    let connected = conns.len() as u64;
    let elapsed = (last - start).as_secs_f64();
    let after_connect = procfs::maybe_sample(p.broker_pid);
    report.loadgen(me);

    // Every connection must still be alive: one PINGREQ each, answered.
    let mut set = JoinSet::new();
    for mut c in conns {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = c.ping(SETUP_TIMEOUT).await;
            (c, r)
        });
    }
    let mut alive = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        let (c, r) = r?;
        match r {
            Ok(()) => alive.push(c),
            Err(e) => {
                failed += 1;
                first_err.get_or_insert(e);
            }
        }
    }
    // Let the broker settle (lazy buffers, deferred frees) before reading its RSS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = procfs::maybe_sample(p.broker_pid);
    let live = alive.len() as u64;
    drop(alive);

    report.sent = n as u64;
    report.expected = n as u64;
    report.delivered = live;
    report.complete = live == n as u64;
    report.connections = Some(live);
    report.elapsed_s = elapsed;
    report.rate = if elapsed > 0.0 {
        connected as f64 / elapsed
    } else {
        0.0
    };
    report.broker(before, after_connect, connected);
    if let (Some(b), Some(h)) = (before, held) {
        report.rss_after_kib = Some(h.rss_kib);
        if live > 0 {
            report.rss_per_conn_kib =
                Some((h.rss_kib as f64 - b.rss_kib as f64).max(0.0) / live as f64);
        }
    }
    match first_err {
        Some(e) => report.error = Some(format!("{failed} connections failed, first: {e:#}")),
        None => report.ok = true,
    }
    Ok(report)
}

/// Stores `p.messages` retained messages (QoS 1, acknowledged), then times one subscription to
/// a wildcard over all of them.
async fn retained(p: &Params) -> Result<Report> {
    let mut report = Report::new(p);
    report.scenario = kebab(p.scenario);
    report.publishers = 1;
    report.subscribers = 1;
    let m = p.messages;
    let setup_deadline = Instant::now() + Duration::from_secs_f64(p.seconds) * 3;

    // Set-up, not measured: one loader with a QoS 1 window, every message acknowledged.
    let mut loader = Conn::connect(p.addr, &format!("mb{}l", p.tag), SETUP_TIMEOUT).await?;
    let mut ids = PacketIds::new();
    let window = p.window.max(1);
    let mut stored = 0u64;
    let mut i = 0u64;
    let payload = vec![0x5a; p.payload];
    while stored < m {
        while i < m && ids.inflight < window && loader.wbuf.len() < WRITE_BATCH {
            let topic = format!("mb/{}/r/{i}", p.tag);
            let id = ids.take();
            put_publish(&mut loader.wbuf, &topic, &payload, id);
            i += 1;
        }
        loader.flush().await?;
        if ids.inflight < window && i < m {
            continue;
        }
        let left = setup_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("storing {m} retained messages: only {stored} acknowledged in time");
        }
        tokio::time::timeout(left, loader.read_more())
            .await
            .context("retained set-up timed out")??;
        loader.drain(|f, _| {
            if let (mqtt::PUBACK, Some(id)) = (f.kind, f.ack_id()) {
                ids.release(id);
                stored += 1;
            }
        })?;
    }

    let sub = Conn::connect(p.addr, &format!("mb{}s", p.tag), SETUP_TIMEOUT).await?;
    let shared = Arc::new(Shared::default());
    let before = procfs::maybe_sample(p.broker_pid);
    let me = procfs::maybe_sample(Some(std::process::id()));
    let start = Instant::now();
    let hard_end = start + Duration::from_secs_f64(p.seconds) + GRACE;
    let filter = format!("mb/{}/r/#", p.tag);
    let task = {
        let shared = shared.clone();
        let qos = p.qos;
        tokio::spawn(async move {
            let mut sub = sub;
            mqtt::subscribe(&mut sub.wbuf, 1, &filter, qos);
            sub.flush().await?;
            subscriber(sub, shared, None).await
        })
    };
    let mut last_seen = 0;
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let got = shared.delivered.load(Ordering::Relaxed);
        if got >= m || now >= hard_end || now - last_progress >= QUIET {
            report.capped = got < m && now >= hard_end;
            break;
        }
        if got != last_seen {
            last_seen = got;
            last_progress = now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let out = task.await??;
    let after = procfs::maybe_sample(p.broker_pid);
    report.loadgen(me);
    drop(loader);

    report.sent = stored;
    report.expected = m;
    report.delivered = out.delivered;
    report.complete = out.delivered >= m;
    let elapsed = out
        .last
        .map(|l| l - start)
        .unwrap_or_default()
        .as_secs_f64();
    report.elapsed_s = elapsed;
    report.rate = if elapsed > 0.0 {
        out.delivered as f64 / elapsed
    } else {
        0.0
    };
    report.broker(before, after, out.delivered);
    report.ok = true;
    Ok(report)
}

/// A QoS 1 retained PUBLISH (set-up only: the hot paths use [`PublishTemplate`]).
fn put_publish(buf: &mut BytesMut, topic: &str, payload: &[u8], id: u16) {
    PublishTemplate::new(topic, payload.len(), 1, true).append(buf, id, None);
    let n = buf.len();
    buf[n - payload.len()..].copy_from_slice(payload);
}

/// One client: CONNECT/CONNACK then PINGREQ/PINGRESP.
async fn probe(p: &Params) -> Result<Report> {
    let mut report = Report::new(p);
    report.scenario = kebab(p.scenario);
    let start = Instant::now();
    let mut c = Conn::connect(p.addr, &format!("mb{}probe", p.tag), SETUP_TIMEOUT).await?;
    c.ping(SETUP_TIMEOUT).await?;
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.ok = true;
    report.complete = true;
    Ok(report)
}

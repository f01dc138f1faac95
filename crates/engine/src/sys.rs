//! `$SYS`: the broker's counters ([`SysInfo`]), a point-in-time copy of them
//! ([`SysSnapshot`], what hooks and storage see) and the topics they are published on.
//!
//! The topics are mochi's set, under `$SYS/broker/`: `version`, `time`, `uptime`, `started`,
//! `load/bytes/received`, `load/bytes/sent`, `clients/connected`, `clients/disconnected`,
//! `clients/maximum`, `clients/total`, `packets/received`, `packets/sent`,
//! `messages/received`, `messages/sent`, `messages/dropped`, `messages/inflight`, `retained`,
//! `subscriptions`, `system/memory` and `system/threads`. Every value is a decimal string
//! published retained (QoS 0) every [`Options::sys_topic_resend_interval`]; a subscription to
//! a `$SYS` filter refreshes the retained values first, so a new subscriber reads current
//! ones.
//!
//! [`Options::sys_topic_resend_interval`]: crate::Options::sys_topic_resend_interval

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The broker's live counters (atomics, updated on the hot path with relaxed ordering).
#[derive(Debug)]
pub struct SysInfo {
    /// Clients connected now.
    pub clients_connected: AtomicU64,
    /// Connections accepted since start.
    pub clients_total: AtomicU64,
    /// Most clients connected at once since start.
    pub clients_maximum: AtomicU64,
    /// PUBLISH packets received.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent.
    pub messages_sent: AtomicU64,
    /// Messages dropped.
    pub messages_dropped: AtomicU64,
    /// Inflight QoS 1/2 messages abandoned.
    pub inflight_dropped: AtomicU64,
    /// Packets of any type received.
    pub packets_received: AtomicU64,
    /// Packets of any type sent.
    pub packets_sent: AtomicU64,
    /// Bytes received.
    pub bytes_received: AtomicU64,
    /// Bytes sent.
    pub bytes_sent: AtomicU64,
    /// When the broker started (wall clock, for `$SYS/broker/started`).
    pub started: SystemTime,
    /// When the broker started (monotonic, for the uptime).
    pub started_at: Instant,
}

impl Default for SysInfo {
    fn default() -> Self {
        SysInfo {
            clients_connected: AtomicU64::new(0),
            clients_total: AtomicU64::new(0),
            clients_maximum: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            inflight_dropped: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            started: SystemTime::now(),
            started_at: Instant::now(),
        }
    }
}

impl SysInfo {
    /// Counts one more connected client and raises the maximum if needed.
    pub fn client_connected(&self) {
        let now = self.clients_connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.clients_total.fetch_add(1, Ordering::Relaxed);
        self.clients_maximum.fetch_max(now, Ordering::Relaxed);
    }

    /// Puts back the cumulative counters of a snapshot (restart with
    /// `restore_sys_info_on_restart`).
    pub fn restore(&self, s: &SysSnapshot) {
        let r = Ordering::Relaxed;
        self.bytes_received.store(s.bytes_received, r);
        self.bytes_sent.store(s.bytes_sent, r);
        self.clients_maximum.store(s.clients_maximum, r);
        self.messages_received.store(s.messages_received, r);
        self.messages_sent.store(s.messages_sent, r);
        self.messages_dropped.store(s.messages_dropped, r);
        self.inflight_dropped.store(s.inflight_dropped, r);
        self.packets_received.store(s.packets_received, r);
        self.packets_sent.store(s.packets_sent, r);
    }
}

/// The `$SYS` values at one instant (mochi's `system.Info`). With the `serde` feature it
/// (de)serialises with mochi's JSON keys, which are its field names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SysSnapshot {
    /// The broker's version.
    pub version: String,
    /// Start time, Unix seconds.
    pub started: u64,
    /// Current time, Unix seconds.
    pub time: u64,
    /// Seconds since start.
    pub uptime: u64,
    /// Bytes received since start.
    pub bytes_received: u64,
    /// Bytes sent since start.
    pub bytes_sent: u64,
    /// Clients connected now.
    pub clients_connected: u64,
    /// Clients with a live session that are not connected.
    pub clients_disconnected: u64,
    /// Most clients connected at once.
    pub clients_maximum: u64,
    /// Clients known: connected plus disconnected with a live session.
    pub clients_total: u64,
    /// PUBLISH packets received.
    pub messages_received: u64,
    /// PUBLISH packets sent.
    pub messages_sent: u64,
    /// Messages dropped.
    pub messages_dropped: u64,
    /// Retained messages held.
    pub retained: u64,
    /// QoS 1/2 messages in flight to clients now.
    pub inflight: u64,
    /// Inflight messages abandoned since start.
    pub inflight_dropped: u64,
    /// Subscriptions held.
    pub subscriptions: u64,
    /// Packets of any type received.
    pub packets_received: u64,
    /// Packets of any type sent.
    pub packets_sent: u64,
    /// Resident memory of the process, in bytes (0 where unknown).
    pub memory_alloc: u64,
    /// Threads of the process (or the runtime's workers where `/proc` is absent).
    pub threads: u64,
}

impl SysSnapshot {
    /// The `$SYS` topics and their values, in mochi's set.
    pub fn topics(&self) -> [(&'static str, String); 20] {
        [
            ("$SYS/broker/version", self.version.clone()),
            ("$SYS/broker/time", self.time.to_string()),
            ("$SYS/broker/uptime", self.uptime.to_string()),
            ("$SYS/broker/started", self.started.to_string()),
            (
                "$SYS/broker/load/bytes/received",
                self.bytes_received.to_string(),
            ),
            ("$SYS/broker/load/bytes/sent", self.bytes_sent.to_string()),
            (
                "$SYS/broker/clients/connected",
                self.clients_connected.to_string(),
            ),
            (
                "$SYS/broker/clients/disconnected",
                self.clients_disconnected.to_string(),
            ),
            (
                "$SYS/broker/clients/maximum",
                self.clients_maximum.to_string(),
            ),
            ("$SYS/broker/clients/total", self.clients_total.to_string()),
            (
                "$SYS/broker/packets/received",
                self.packets_received.to_string(),
            ),
            ("$SYS/broker/packets/sent", self.packets_sent.to_string()),
            (
                "$SYS/broker/messages/received",
                self.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", self.messages_sent.to_string()),
            (
                "$SYS/broker/messages/dropped",
                self.messages_dropped.to_string(),
            ),
            ("$SYS/broker/messages/inflight", self.inflight.to_string()),
            ("$SYS/broker/retained", self.retained.to_string()),
            ("$SYS/broker/subscriptions", self.subscriptions.to_string()),
            ("$SYS/broker/system/memory", self.memory_alloc.to_string()),
            ("$SYS/broker/system/threads", self.threads.to_string()),
        ]
    }
}

/// What the broker knows besides the counters, for a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub clients_total: u64,
    pub retained: u64,
    pub inflight: u64,
    pub subscriptions: u64,
}

/// Takes a snapshot of `info` plus the broker's gauges at `now`.
pub(crate) fn snapshot(info: &SysInfo, g: Gauges, now: Instant) -> SysSnapshot {
    let r = Ordering::Relaxed;
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let connected = info.clients_connected.load(r);
    let (memory_alloc, threads) = process_stats();
    SysSnapshot {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started: unix(info.started),
        time: unix(SystemTime::now()),
        uptime: now.saturating_duration_since(info.started_at).as_secs(),
        bytes_received: info.bytes_received.load(r),
        bytes_sent: info.bytes_sent.load(r),
        clients_connected: connected,
        clients_disconnected: g.clients_total.saturating_sub(connected),
        clients_maximum: info.clients_maximum.load(r),
        clients_total: g.clients_total,
        messages_received: info.messages_received.load(r),
        messages_sent: info.messages_sent.load(r),
        messages_dropped: info.messages_dropped.load(r),
        retained: g.retained,
        inflight: g.inflight,
        inflight_dropped: info.inflight_dropped.load(r),
        subscriptions: g.subscriptions,
        packets_received: info.packets_received.load(r),
        packets_sent: info.packets_sent.load(r),
        memory_alloc,
        threads,
    }
}

/// Resident memory in bytes and thread count of this process: `VmRSS` and `Threads` of
/// `/proc/self/status` on Linux; elsewhere no memory figure and the tokio runtime's workers.
pub fn process_stats() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let memory = field("VmRSS:").map_or(0, |kib| kib * 1024);
    let threads = field("Threads:").unwrap_or_else(|| {
        tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers() as u64)
    });
    (memory, threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_topics_under_sys_broker() {
        let t = SysSnapshot::default().topics();
        assert!(t.iter().all(|(k, _)| k.starts_with("$SYS/broker/")));
        let mut names: Vec<_> = t.iter().map(|(k, _)| *k).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 20);
    }

    #[test]
    fn maximum_follows_the_peak() {
        let i = SysInfo::default();
        i.client_connected();
        i.client_connected();
        i.clients_connected.fetch_sub(1, Ordering::Relaxed);
        i.client_connected();
        assert_eq!(i.clients_maximum.load(Ordering::Relaxed), 2);
        assert_eq!(i.clients_total.load(Ordering::Relaxed), 3);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_stats_read_proc() {
        let (mem, threads) = process_stats();
        assert!(mem > 0 && threads >= 1);
    }
}

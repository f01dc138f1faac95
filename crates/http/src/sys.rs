//! `$SYS` as JSON: mochi's `system.Info` object, key for key.

use std::sync::Arc;
use std::time::Instant;

use moco_engine::{Broker, SysSnapshot};
use serde::{Deserialize, Serialize};

/// mochi's `system.Info` with its JSON keys (`bytes_received`, `clients_maximum`,
/// `memory_alloc`…), so a script written against mochi's `sysinfo` listener reads moco's
/// unchanged. Values are taken at each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SysJson {
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
    /// Clients known: connected plus away with a live session.
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
    /// Resident memory of the process, bytes.
    pub memory_alloc: u64,
    /// Threads of the process.
    pub threads: u64,
}

impl SysJson {
    /// The broker's numbers now.
    pub fn now(broker: &Arc<Broker>) -> Self {
        Self::from(broker.sys_snapshot(Instant::now()))
    }
}

impl From<SysSnapshot> for SysJson {
    fn from(s: SysSnapshot) -> Self {
        Self {
            version: s.version,
            started: s.started,
            time: s.time,
            uptime: s.uptime,
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
            clients_connected: s.clients_connected,
            clients_disconnected: s.clients_disconnected,
            clients_maximum: s.clients_maximum,
            clients_total: s.clients_total,
            messages_received: s.messages_received,
            messages_sent: s.messages_sent,
            messages_dropped: s.messages_dropped,
            retained: s.retained,
            inflight: s.inflight,
            inflight_dropped: s.inflight_dropped,
            subscriptions: s.subscriptions,
            packets_received: s.packets_received,
            packets_sent: s.packets_sent,
            memory_alloc: s.memory_alloc,
            threads: s.threads,
        }
    }
}

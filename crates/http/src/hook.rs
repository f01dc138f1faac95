//! A hook that counts what the `$SYS` numbers do not break down, for `/metrics`: connections
//! accepted by listener and protocol version, and messages dropped by reason.
//!
//! It only provides rare events (a session established, a message dropped), so the per-message
//! path pays nothing for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use moco_engine::codec::{Connect, Publish};
use moco_engine::state::DropReason;
use moco_engine::{ClientInfo, Event, Hook};

/// Counters kept by hook events; clones share them. Install one clone in the broker
/// (`ServerBuilder::hook`) and give another to the HTTP listeners
/// ([`HttpOptions::with_metrics`](crate::HttpOptions::with_metrics)).
#[derive(Debug, Clone, Default)]
pub struct MetricsHook {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (listener, protocol level) to connections accepted.
    connects: Mutex<BTreeMap<(Arc<str>, u8), u64>>,
    /// Queue full, expired, too large, other.
    dropped: [AtomicU64; 4],
}

/// The `reason` label of each drop counter, in the order of `Inner::dropped`.
pub(crate) const DROP_REASONS: [&str; 4] = ["queue_full", "expired", "too_large", "other"];

impl MetricsHook {
    /// Connections accepted so far, by (listener, protocol level).
    pub fn connects(&self) -> Vec<(Arc<str>, u8, u64)> {
        let map = self
            .inner
            .connects
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.iter().map(|((l, p), n)| (l.clone(), *p, *n)).collect()
    }

    /// Messages dropped so far, by reason (the labels of [`DROP_REASONS`]).
    pub(crate) fn dropped(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.inner.dropped[i].load(Ordering::Relaxed))
    }
}

impl Hook for MetricsHook {
    fn id(&self) -> &str {
        "http-metrics"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnSessionEstablished | Event::OnPublishDropped)
    }

    fn on_session_established(&self, client: &ClientInfo, _: &Connect) {
        let mut map = self
            .inner
            .connects
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry((client.listener.clone(), client.protocol.level()))
            .or_default() += 1;
    }

    fn on_publish_dropped(&self, _: &str, _: &Publish, reason: DropReason) {
        let i = match reason {
            DropReason::QueueFull => 0,
            DropReason::Expired => 1,
            DropReason::TooLarge => 2,
            _ => 3,
        };
        self.inner.dropped[i].fetch_add(1, Ordering::Relaxed);
    }
}

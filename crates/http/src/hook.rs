//! A hook that counts what the `$SYS` numbers do not break down, for `/metrics`: connection
//! attempts and connections accepted by listener and protocol version (their difference is
//! what authentication and the other checks refused), and messages dropped by reason.
//!
//! It only provides rare events (a CONNECT, a session established, a message dropped), so the
//! per-message path pays nothing for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use moco_engine::codec::{Connect, Publish, ReasonCode};
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
    /// (listener, protocol level) to (CONNECTs received, connections accepted).
    connects: Mutex<Connects>,
    /// Queue full, expired, too large, other.
    dropped: [AtomicU64; 4],
}

/// (listener, protocol level) to (CONNECTs received, connections accepted).
type Connects = BTreeMap<(Arc<str>, u8), (u64, u64)>;

/// The `reason` label of each drop counter, in the order of `Inner::dropped`.
pub(crate) const DROP_REASONS: [&str; 4] = ["queue_full", "expired", "too_large", "other"];

impl MetricsHook {
    /// CONNECTs received and connections accepted so far, by (listener, protocol level).
    pub fn connects(&self) -> Vec<(Arc<str>, u8, u64, u64)> {
        let map = self.lock();
        map.iter()
            .map(|((l, p), (tried, ok))| (l.clone(), *p, *tried, *ok))
            .collect()
    }

    /// Messages dropped so far, by reason (the labels of [`DROP_REASONS`]).
    pub(crate) fn dropped(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.inner.dropped[i].load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connects> {
        self.inner
            .connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, client: &ClientInfo, f: impl FnOnce(&mut (u64, u64))) {
        let mut map = self.lock();
        f(map
            .entry((client.listener.clone(), client.protocol.level()))
            .or_default());
    }
}

impl Hook for MetricsHook {
    fn id(&self) -> &str {
        "http-metrics"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(
            event,
            Event::OnConnect | Event::OnSessionEstablished | Event::OnPublishDropped
        )
    }

    fn on_connect(&self, client: &ClientInfo, _: &Connect) -> Result<(), ReasonCode> {
        self.count(client, |c| c.0 += 1);
        Ok(())
    }

    fn on_session_established(&self, client: &ClientInfo, _: &Connect) {
        self.count(client, |c| c.1 += 1);
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

//! Publisher back-pressure for QoS 1/2: a publisher waits for a subscriber that is behind but
//! keeping up, instead of overflowing its queue.
//!
//! The per-client queue is bounded (see the queue policy in [`crate::state`]); past it
//! messages are dropped. A subscriber that reads and acknowledges, only more slowly than
//! several publishers together send (fan-in), would lose QoS 1/2 messages to that bound
//! although it is healthy. So, when a QoS 1/2 delivery leaves a connected subscriber's queue
//! at half its bound or more, the publisher's reader is asked to wait: before it reads the
//! next packets it waits until that queue is down to a quarter of the bound. Its PUBACKs are
//! already on their way, so the publisher runs into its own inflight window and TCP does the
//! rest (RabbitMQ's credit flow works the same way).
//!
//! A subscriber that does not make progress must hurt only itself: the wait lasts as long as
//! the subscriber's queue keeps shrinking, and ends after [`STALL_AFTER`] without progress.
//! The subscriber is then marked stalled and nobody waits for it again until its queue is back
//! under a quarter of the bound; meanwhile messages past its bound are dropped (counted, with
//! `OnPublishDropped`). QoS 0 never causes waiting, a client never waits for itself, and
//! messages of the broker itself (wills, `$SYS`, the inline client) never wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::broker::ClientHandle;
use crate::state::ClientState;

/// How long a publisher waits for a subscriber whose queue does not shrink at all.
pub const STALL_AFTER: Duration = Duration::from_millis(500);

/// Flow-control state of one client, as a subscriber and as a publisher.
#[derive(Debug, Default)]
pub struct FlowControl {
    /// Notified by this client's writer after each batch while someone waits for it.
    drained: Notify,
    /// How many publishers wait for this client's queue to drain.
    watchers: AtomicUsize,
    /// This client made no progress while a publisher waited: nobody waits for it until its
    /// queue is low again.
    stalled: AtomicBool,
    /// As a publisher: the subscribers to wait for before reading more.
    waits: Mutex<Vec<Arc<ClientHandle>>>,
    /// As a publisher: `waits` is not empty (read per packet without the lock).
    must_wait: AtomicBool,
}

fn high_watermark(st: &ClientState) -> usize {
    (st.limits.max_pending / 2).max(1)
}

fn low_watermark(st: &ClientState) -> usize {
    st.limits.max_pending / 4
}

impl FlowControl {
    /// After a QoS 1/2 delivery to this client (as a subscriber): whether a publisher should
    /// wait for it.
    pub(crate) fn congested(&self, st: &ClientState) -> bool {
        st.is_connected()
            && st.session.pending.len() >= high_watermark(st)
            && !self.stalled.load(Ordering::Relaxed)
    }

    /// Asks this client's reader (as a publisher) to wait for `subscriber`.
    pub(crate) fn wait_for(&self, subscriber: &Arc<ClientHandle>) {
        let mut w = self.waits.lock();
        if !w.iter().any(|h| Arc::ptr_eq(h, subscriber)) {
            w.push(subscriber.clone());
        }
        self.must_wait.store(true, Ordering::Relaxed);
    }

    /// As a publisher: whether a subscriber asked it to wait before its next packet. A read
    /// brings in up to hundreds of messages, so the reader checks after each one, not only
    /// after the read: the queue bound is what is protected.
    pub(crate) fn must_wait(&self) -> bool {
        self.must_wait.load(Ordering::Relaxed)
    }

    /// Called by this client's writer after it took a batch from the queue.
    pub(crate) fn after_batch(&self, st: &ClientState) {
        if self.stalled.load(Ordering::Relaxed) && st.session.pending.len() <= low_watermark(st) {
            self.stalled.store(false, Ordering::Relaxed);
        }
        if self.watchers.load(Ordering::SeqCst) > 0 {
            self.drained.notify_waiters();
        }
    }
}

/// The reader of `publisher` waits here (before its next packet) for the subscribers that its
/// last messages left congested; returns at once when there are none.
pub(crate) async fn wait_for_subscribers(publisher: &ClientHandle) {
    if !publisher.flow.must_wait() {
        return;
    }
    let waits = {
        let mut w = publisher.flow.waits.lock();
        publisher.flow.must_wait.store(false, Ordering::Relaxed);
        std::mem::take(&mut *w)
    };
    if waits.is_empty() {
        return;
    }
    // Boxed: the wait holds timers and notifications (a few hundred bytes) that would
    // otherwise enlarge every connection's reader future, idle or not, for a rare event.
    Box::pin(wait_for(publisher, waits)).await;
}

async fn wait_for(publisher: &ClientHandle, waits: Vec<Arc<ClientHandle>>) {
    for sub in waits {
        let flow = &sub.flow;
        flow.watchers.fetch_add(1, Ordering::SeqCst);
        let _watching = Watching(flow);
        let mut last = usize::MAX;
        let mut deadline = tokio::time::Instant::now() + STALL_AFTER;
        loop {
            let drained = flow.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let queued = {
                let st = sub.state.lock();
                if !st.is_connected() || st.session.pending.len() <= low_watermark(&st) {
                    None
                } else {
                    Some(st.session.pending.len())
                }
            };
            let Some(queued) = queued else { break };
            if queued < last {
                // Progress: keep waiting, from now.
                last = queued;
                deadline = tokio::time::Instant::now() + STALL_AFTER;
            }
            tokio::select! {
                _ = &mut drained => {}
                _ = tokio::time::sleep_until(deadline) => {
                    flow.stalled.store(true, Ordering::Relaxed);
                    break;
                }
                _ = publisher.closing.notified() => return,
            }
        }
    }
}

/// Counts a waiting publisher out again, however its wait ends.
struct Watching<'a>(&'a FlowControl);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

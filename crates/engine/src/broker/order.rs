//! Order across connections: packets that became readable first are handled first, also when
//! two workers pick up the connections.
//!
//! Tokio's I/O driver wakes connections in the order their data arrived (epoll's ready list
//! is first in, first out), but the scheduler does not run them in that order: the last task
//! woken in a driver turn goes to the worker's LIFO slot and runs first, and the others may be
//! stolen by the other worker, which may take a while to get going (a halted vCPU, a
//! preempted thread). On a quiet broker a SUBSCRIBE written a millisecond before another
//! client's PUBLISH was then applied after it, and the message was lost to the subscriber.
//!
//! So an idle reader waits for its data through a waker of its own ([`ClientHandle`] is one):
//! when the driver wakes it after [`QUIET`] or more of waiting, it draws a ticket from one
//! process-wide counter, in the driver's order. The reader hands the ticket back once the
//! packets of that read are handled. A reader about to route a PUBLISH with ticket `t` first
//! lets every earlier ticket be handed back (yielding meanwhile), within bounds ([`STUCK`], [`WAIT_MAX`]). A busy reader, whose
//! data is waiting when it reads or which waited less than [`QUIET`], neither draws nor waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::broker::ClientHandle;

/// How long the oldest ticket out may go without being handed back before a waiting PUBLISH
/// takes it as handed back: a reader that is starved or gone must not hold every other
/// publisher up. While tickets keep coming back, waiting goes on (a burst of wake-ups on a
/// busy machine), up to [`WAIT_MAX`].
pub(crate) const STUCK: Duration = Duration::from_millis(5);

/// The longest a PUBLISH waits for its turn in all.
pub(crate) const WAIT_MAX: Duration = Duration::from_millis(50);

/// Slots for tickets handed back out of order; more tickets outstanding at once than this only
/// make a waiter wait until [`STUCK`].
const SLOTS: usize = 4096;

/// The process-wide ticket counter and the mark below which every ticket is handed back.
struct Tickets<const N: usize> {
    /// The next ticket (tickets start at 1; 0 means none).
    next: AtomicU64,
    /// Every ticket below this one has been handed back.
    done_below: AtomicU64,
    /// `t + 1` in slot `t % N` once ticket `t` is handed back.
    done: [AtomicU64; N],
}

// A static, not a lazily allocated table: nothing on the heap for it.
static TICKETS: Tickets<SLOTS> = Tickets::new();

impl<const N: usize> Tickets<N> {
    const fn new() -> Self {
        Tickets {
            next: AtomicU64::new(1),
            done_below: AtomicU64::new(1),
            done: [const { AtomicU64::new(0) }; N],
        }
    }

    fn draw(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel)
    }

    fn hand_back(&self, t: u64) {
        self.done[t as usize % N].store(t + 1, Ordering::Release);
        self.advance();
    }

    /// Moves `done_below` over every ticket handed back in sequence.
    fn advance(&self) {
        let mut below = self.done_below.load(Ordering::Acquire);
        while self.done[below as usize % N].load(Ordering::Acquire) == below + 1 {
            match self.done_below.compare_exchange(
                below,
                below + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => below += 1,
                Err(now) => below = now,
            }
        }
    }

    fn earlier_pending(&self, t: u64) -> bool {
        self.done_below.load(Ordering::Acquire) < t
    }

    /// Takes ticket `t` as handed back if the mark is still at it (see [`STUCK`]).
    fn skip(&self, t: u64) {
        if self
            .done_below
            .compare_exchange(t, t + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.advance();
        }
    }
}

/// How long a connection must have been idle for its wake-up to draw a ticket. The case that
/// needs ordering is a quiet broker, whose workers are asleep and slow to wake; a reader idle
/// for microseconds between the batches of a busy exchange (a publisher waiting for its
/// PUBACKs) neither draws nor waits: every wake-up from idle drawing a ticket, and every PUBLISH
/// waiting for the earlier ones, made the readers of fan-in QoS 1 take turns (-25 % throughput,
/// many-to-many QoS 1 -30 to -50 %).
const QUIET: Duration = Duration::from_millis(2);

/// Nanoseconds since the first call, plus one (0 means "not idle").
fn clock() -> u64 {
    static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    u64::try_from(BASE.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// The part of a [`ClientHandle`] that makes it its reader's idle waker.
#[derive(Debug, Default)]
pub(crate) struct IdleWake {
    /// The ticket drawn when the driver last woke the idle reader, not yet taken (0: none).
    ticket: AtomicU64,
    /// When the reader started waiting for data ([`clock`]; 0: it is not waiting).
    since: AtomicU64,
    /// The reader task's own waker.
    task: parking_lot::Mutex<Option<Waker>>,
}

impl Wake for ClientHandle {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let idle = &self.idle;
        let since = idle.since.load(Ordering::Acquire);
        let quiet = since != 0 && clock().saturating_sub(since) >= QUIET.as_nanos() as u64;
        if quiet && idle.ticket.load(Ordering::Acquire) == 0 {
            let t = TICKETS.draw();
            if idle
                .ticket
                .compare_exchange(0, t, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                TICKETS.hand_back(t);
            }
        }
        if let Some(w) = idle.task.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// The waker an idle reader polls its socket with: it wakes `task`, and draws a ticket once
/// the connection has been quiet for [`QUIET`].
pub(crate) fn idle_waker(handle: &Arc<ClientHandle>, task: &Waker) -> Waker {
    if handle.idle.since.load(Ordering::Relaxed) == 0 {
        handle.idle.since.store(clock(), Ordering::Release);
    }
    {
        let mut slot = handle.idle.task.lock();
        if !slot.as_ref().is_some_and(|w| w.will_wake(task)) {
            *slot = Some(task.clone());
        }
    }
    Waker::from(handle.clone())
}

/// The idle reader got data: it is no longer waiting (see [`IdleWake::since`]).
pub(crate) fn not_idle(handle: &ClientHandle) {
    handle.idle.since.store(0, Ordering::Relaxed);
}

/// The ticket a connection's reader holds from its wake-up from idle until it has handled
/// the packets that came with it; it is kept in the handle, so the reader's future (which
/// every idle connection's task holds) carries nothing for it.
pub(crate) struct Ticket;

impl Ticket {
    /// Whether connections woken from idle before this one have not handled their packets yet
    /// (then [`Ticket::wait_turn`] waits for them).
    pub(crate) fn must_wait(handle: &ClientHandle) -> bool {
        let t = handle.idle.ticket.load(Ordering::Acquire);
        t != 0 && TICKETS.earlier_pending(t)
    }

    /// Waits until every connection woken before this one has handled what it read (bounded:
    /// see [`STUCK`] and [`WAIT_MAX`]).
    pub(crate) async fn wait_turn(handle: &ClientHandle) {
        let t = handle.idle.ticket.load(Ordering::Acquire);
        if t == 0 {
            return;
        }
        let started = Instant::now();
        let (mut mark, mut since) = (TICKETS.done_below.load(Ordering::Acquire), started);
        while TICKETS.earlier_pending(t) {
            let now = Instant::now();
            let m = TICKETS.done_below.load(Ordering::Acquire);
            if m != mark {
                (mark, since) = (m, now);
            } else if now - since >= STUCK {
                tracing::debug!(ticket = m, "a wake-up from idle was not handled in time");
                TICKETS.skip(m);
                since = now;
            }
            if now - started >= WAIT_MAX {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Hands back the connection's ticket, if it holds one.
    pub(crate) fn hand_back(handle: &ClientHandle) {
        if handle.idle.ticket.load(Ordering::Relaxed) != 0 {
            let t = handle.idle.ticket.swap(0, Ordering::AcqRel);
            if t != 0 {
                TICKETS.hand_back(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_handed_back_out_of_order_move_the_mark_in_order() {
        let t = Tickets::<8>::new();
        let (a, b, c) = (t.draw(), t.draw(), t.draw());
        assert!(!t.earlier_pending(a));
        assert!(t.earlier_pending(b) && t.earlier_pending(c));
        t.hand_back(b);
        assert!(t.earlier_pending(b), "a is still out");
        t.hand_back(a);
        assert!(!t.earlier_pending(c), "a and b are back");
        let d = t.draw();
        t.skip(b);
        assert!(t.earlier_pending(d), "skips only the ticket at the mark");
        t.skip(c);
        assert!(!t.earlier_pending(d), "c taken as back");
        t.hand_back(c);
        assert!(!t.earlier_pending(d));
    }
}

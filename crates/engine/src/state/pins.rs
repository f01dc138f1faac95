//! How much memory the messages held for a client keep alive in the read buffers they were
//! decoded from, and when to copy them out (see "Reads grow while a publisher is busy" in
//! docs/architecture.md).

use super::*;

/// What the messages a client holds (queued or inflight) may keep alive of their publishers'
/// read buffers.
///
/// A routed message's topic and payload are slices of the read buffer it arrived in (up to
/// 64 KiB while its publisher is busy), which stays allocated while any slice lives. When a
/// client holds many messages out of few buffers (fan-in to a slow subscriber) that costs
/// nothing; when it holds a few messages out of each of many buffers (a stuck subscriber to a
/// topic that is one message in a thousand) each small message keeps a whole buffer alive.
/// Since the client last held nothing, this adds up the sizes of the distinct buffers its held
/// messages came from (each message knows the size of the read buffer it was decoded from; a
/// buffer seen among the last few counts once, so messages of a few publishers interleaved do
/// not look like many buffers) against their own bytes. Past [`PIN_SLACK`] plus [`PIN_RATIO`] times their own bytes, the held
/// messages are copied out of their buffers, and so is every message queued until the client
/// holds nothing again (see [`Message::unpinned`]). A client that keeps up never gets there
/// and never pays for a copy.
#[derive(Debug, Default)]
pub(super) struct Pins {
    /// Bytes of the held messages' own topics and payloads.
    pub(super) bytes: usize,
    /// Buffer memory they may keep alive (an estimate).
    pub(super) pinned: usize,
    /// The buffers seen last (most recent first), as the address of the first message seen
    /// in each and its size.
    pub(super) recent: [(usize, usize); PIN_RECENT],
}

/// The buffer size [`Pins`] assumes when a message does not know its own: the largest read.
pub(super) const PIN_REGION: usize = 64 * 1024;

/// How many recent buffers [`Pins`] remembers.
pub(super) const PIN_RECENT: usize = 8;

/// Buffer memory a client's held messages may keep alive regardless of their size.
pub(super) const PIN_SLACK: usize = 512 * 1024;

/// ... and beyond that, how many times their own bytes.
pub(super) const PIN_RATIO: usize = 4;

impl Pins {
    /// Counts a held message that shares a buffer; true when the bound is passed.
    pub(super) fn add(&mut self, m: &Message) -> bool {
        // A buffer is told by the span of its size from the first message seen in it: later
        // messages of that buffer lie further on within it. Messages of the next buffer in
        // memory may fall in that span too, so this counts between half and all of the
        // buffers. Small reads (a publisher held back by its receive maximum reads a few KiB
        // at a time) count as what they are, not as 64 KiB each.
        let size = match m.origin() {
            0 => PIN_REGION,
            s => s,
        };
        let at = if m.payload.is_empty() {
            m.topic.as_ptr()
        } else {
            m.payload.as_ptr()
        } as usize;
        // The empty slots, (0, 0), span nothing.
        match self
            .recent
            .iter()
            .position(|&(start, size)| at >= start && at - start < size)
        {
            Some(0) => {}
            Some(i) => self.recent[..=i].rotate_right(1),
            None => {
                self.recent.rotate_right(1);
                self.recent[0] = (at, size);
                self.pinned += size;
            }
        }
        self.bytes += m.payload.len() + m.topic.len();
        self.pinned > PIN_SLACK + PIN_RATIO * self.bytes
    }
}

impl ClientState {
    /// Copies every held message (queued or inflight) out of the read buffer it shares.
    pub(super) fn unpin_held(&mut self) {
        let s = &mut self.session;
        for d in s.pending.iter_mut() {
            d.msg = d.msg.unpinned();
        }
        for i in s.inflight.iter_mut() {
            i.delivery.msg = i.delivery.msg.unpinned();
        }
    }

    /// The client holds no message any more: start counting [`Pins`] afresh.
    pub(super) fn maybe_reset_pins(&mut self) {
        if self.session.pending.is_empty() && self.session.inflight.is_empty() {
            self.pins = None;
            self.unpin_all = false;
        }
    }
}

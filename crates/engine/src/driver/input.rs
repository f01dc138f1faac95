//! Reading bytes: how much a connection reads at once, the idle probe, and reading until a
//! packet is complete.

use super::*;

/// The connection's inbound side: the stream, its read buffer and the packet decoder.
pub(super) struct Input<'a, R> {
    pub(super) rd: &'a mut R,
    pub(super) buf: &'a mut BytesMut,
    pub(super) decoder: &'a mut Decoder,
    /// The first and smallest read size (`client_net_read_buffer_size`; see [`ReadSize`]).
    pub(super) read_size: usize,
}

/// How much a connection reads at once. It starts at `client_net_read_buffer_size`, doubles
/// (up to [`MAX_READ`]) while reads fill all the room they were given — more is waiting in
/// the socket — and halves back while they bring in far less.
///
/// Everything one read brings in is handled as one batch: each subscriber it reaches gets its
/// share in one write and one wake-up, so small reads make small writes and many wake-ups on
/// every subscriber's side too (docs/perf-log.md has the figures). A connection that sends a
/// packet now and then never
/// grows its reads, and an idle one holds no buffer at all (see [`read_some`]). Messages that
/// wait (for a slow or absent subscriber) are copied out of the larger buffers they would pin:
/// see `Pins` in [`crate::state`].
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadSize {
    // u32: this lives in every connection's reader future, idle or not.
    pub(super) now: u32,
    pub(super) min: u32,
    /// The last read filled its room: more is probably waiting.
    pub(super) full: bool,
}

impl ReadSize {
    pub(super) fn new(min: usize) -> Self {
        let min = u32::try_from(min).unwrap_or(u32::MAX);
        ReadSize {
            now: min,
            min,
            full: false,
        }
    }

    /// The size of the next read.
    pub(super) fn get(&self) -> usize {
        self.now as usize
    }

    /// After a read of `got` bytes into `room`.
    pub(super) fn update(&mut self, got: usize, room: usize) {
        let now = self.get();
        self.full = got > 0 && got >= room;
        if self.full && room >= now / 2 {
            self.now = self
                .now
                .saturating_mul(2)
                .min((MAX_READ as u32).max(self.min));
        } else if got < now / 8 {
            self.now = (self.now / 2).max(self.min);
        }
    }
}

/// Reads more of `rd` into `buf` (0 = end of stream) and says how much room the read had.
/// When nothing is readable and `buf` holds no partial packet, the buffer is given back at
/// once, so an idle connection holds none; the wait then reads into a probe on the stack (not
/// part of the future), and a buffer is taken when data arrives: exactly what came if the probe
/// was not filled (a small, thread-cached allocation for the usual lone packet, freed once
/// decoded), `size` bytes if it was (more is waiting). A stream with data waiting never reaches
/// `Pending` and keeps its buffer.
///
/// `eager`: the last read filled its room, so read straight into a buffer even if the last one
/// was used up (in place when its packets are gone, a new one when they still share it).
///
/// `idle`: the connected client's handle, which the wait for data from idle uses as its waker
/// (see [`crate::broker::order`]); none during the handshake.
pub(super) fn read_some<'a, R: AsyncRead + Unpin>(
    rd: &'a mut R,
    buf: &'a mut BytesMut,
    size: usize,
    eager: bool,
    idle: Option<&'a Arc<ClientHandle>>,
) -> impl std::future::Future<Output = std::io::Result<(usize, usize)>> + 'a {
    // A plain poll_fn owning its arguments (no `async fn` frame around it keeping copies):
    // this is part of every connection's reader future, idle or not. The size as a u32 packs
    // with `eager`.
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    std::future::poll_fn(move |cx| poll_read_some(cx, rd, buf, size as usize, eager, idle))
}

/// One poll of [`read_some`]: the bytes read and the room they had.
pub(super) fn poll_read_some<R: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    rd: &mut R,
    buf: &mut BytesMut,
    size: usize,
    eager: bool,
    idle: Option<&Arc<ClientHandle>>,
) -> Poll<std::io::Result<(usize, usize)>> {
    if buf.capacity() > 0 || eager {
        // Room for a read of `size`: in place when the packets of the last read are gone,
        // in a new buffer when they still share it.
        let want = size.saturating_sub(buf.len()).max(PROBE);
        if buf.capacity() - buf.len() < want / 2 {
            buf.reserve(want);
        }
        let room = buf.capacity() - buf.len();
        let r = std::future::Future::poll(std::pin::pin!(rd.read_buf(&mut *buf)), cx);
        if !(r.is_pending() && buf.is_empty()) {
            return r.map_ok(|n| (n, room));
        }
        *buf = BytesMut::new();
    }
    let mut probe = [0u8; PROBE];
    let mut rb = tokio::io::ReadBuf::new(&mut probe);
    let polled = match idle {
        Some(h) => {
            let waker = crate::broker::order::idle_waker(h, cx.waker());
            let r = Pin::new(&mut *rd).poll_read(&mut Context::from_waker(&waker), &mut rb);
            if r.is_ready() {
                crate::broker::order::not_idle(h);
            }
            r
        }
        None => Pin::new(&mut *rd).poll_read(cx, &mut rb),
    };
    std::task::ready!(polled)?;
    let got = rb.filled();
    if !got.is_empty() {
        // `with_capacity`, not `reserve`: a BytesMut sizes the buffers that replace it
        // after it is split by the capacity it was created with.
        let cap = if got.len() == PROBE {
            size.max(PROBE)
        } else {
            got.len()
        };
        *buf = BytesMut::with_capacity(cap);
        buf.extend_from_slice(got);
    }
    std::task::Poll::Ready(Ok((got.len(), PROBE)))
}

/// Reads packets until one is complete (bounded by the caller's timeout).
pub(super) async fn next_packet<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    size: usize,
) -> Result<Packet, Error> {
    loop {
        if let Some(p) = decoder.decode(buf)? {
            return Ok(p);
        }
        if read_some(rd, buf, size, false, None).await?.0 == 0 {
            return Err(Error::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_they_fill_their_room_and_shrink_back() {
        let mut s = ReadSize::new(2048);
        // A lone packet: no change.
        s.update(40, 2048);
        assert_eq!(s.get(), 2048);
        assert!(!s.full);
        // Full reads double the size up to MAX_READ.
        let mut sizes = Vec::new();
        while s.get() < MAX_READ {
            s.update(s.get(), s.get());
            sizes.push(s.get());
        }
        assert_eq!(sizes, [4096, 8192, 16384, 32768, 65536]);
        s.update(s.get(), s.get());
        assert_eq!(s.get(), MAX_READ);
        assert!(s.full);
        // A full read of a leftover sliver of room says little: no growth from it.
        let mut small = ReadSize::new(2048);
        small.update(100, 100);
        assert_eq!(small.get(), 2048);
        assert!(small.full);
        // Small reads halve it back to the configured size, never below.
        for _ in 0..10 {
            s.update(10, s.get());
        }
        assert_eq!(s.get(), 2048);
        assert!(!s.full);
        // A configured size above MAX_READ is kept.
        let mut big = ReadSize::new(4 * MAX_READ);
        big.update(4 * MAX_READ, 4 * MAX_READ);
        assert_eq!(big.get(), 4 * MAX_READ);
    }
}

//! The thin tokio driver of one connection over any `AsyncRead + AsyncWrite` stream.
//!
//! The reader (the task that calls [`run_connection`]) reads into a `BytesMut` (sized to how
//! busy the client is, none while it is idle), decodes packets, feeds them to the client's
//! [`ClientState`](crate::state::ClientState) and lets the broker route what comes out; it
//! also enforces the keep-alive deadline. While the client only needs replies to its own
//! packets (CONNACK, PINGRESP, SUBACK...), the reader writes them; from the first message or
//! acknowledgement on, a writer task waits for the client's `Notify`, drains every transmit
//! that is ready into one buffer (control packets, then queued messages as quota allows) and
//! writes it with one `write_all`. A slow reader on the other end fills only its own bounded
//! queue.

use std::any::Any;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use moco_codec::{Auth, Decoder, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::time::{timeout, Sleep};
use tokio_util::either::Either;
use tracing::{debug, trace};

use crate::broker::order::Ticket;
use crate::broker::{report_notes, Broker, ClientHandle, ConnectOutcome};
use crate::error::Error;
use crate::hooks::{ClientInfo, Event};
use crate::state::{AppEvent, Transmit};

/// How long a connection must be quiet (nothing read) before its control queue and its
/// writer's batch are given back: idle connections then hold neither (~0.9 KiB or more), and
/// one with messages less than this apart does not reallocate them per message. A quiet
/// spell is noticed between one and two of these after the last read (see [`Timer`]).
const IDLE_TRIM: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a connection the broker ended is read and discarded before it is closed, so that
/// the client can read why (see [`linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// [`LINGER`] with `passive_client_disconnect`: closing is left to the client (as mochi), and
/// the write side stays open meanwhile.
const PASSIVE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest batch the writer gathers before writing.
const WRITE_BATCH: usize = 64 * 1024;

/// Largest read: a busy publisher's reads grow to this (see [`ReadSize`]).
const MAX_READ: usize = 64 * 1024;

/// What an idle reader waits with: a read into a probe of this size on the stack (see
/// [`read_some`]).
const PROBE: usize = 1024;

/// First allocation of the write buffer after idle when the state encodes into it directly.
const DIRECT_FIRST_RESERVE: usize = 1024;

/// Serves one client connection on `stream` until it ends. `remote` describes the peer and
/// `listener` names the listener it came through (both for hooks and logs).
pub fn run_connection<S>(
    broker: Arc<Broker>,
    stream: S,
    remote: Arc<str>,
    listener: Arc<str>,
) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The reader and the writer run as two tasks, often on two workers at once. The halves of
    // `tokio::io::split` share one mutex held across each read and write syscall, so they
    // block each other (a futex sleep and wake, or a whole time slice when the holder is
    // preempted); a TCP stream splits into halves that share nothing but the socket.
    // A plain function choosing the future, not an `async fn`: that would keep the (emptied)
    // stream slot in every connection's task for its lifetime (40 bytes for TCP, a whole TLS
    // stream's size for others).
    let mut slot = Some(stream);
    if let Some(tcp) = (&mut slot as &mut dyn Any).downcast_mut::<Option<TcpStream>>() {
        let (rd, wr) = tcp.take().expect("just put there").into_split();
        return Either::Left(serve(broker, rd, TcpWriter(Some(wr)), remote, listener));
    }
    let (rd, wr) = tokio::io::split(slot.expect("not taken"));
    Either::Right(serve(broker, rd, wr, remote, listener))
}

/// The write half of a TCP stream that, like the halves of `tokio::io::split`, leaves the
/// socket open when dropped: closing is `poll_shutdown`'s job, or the read half's (a passive
/// disconnect waits for the client to close first).
struct TcpWriter(Option<OwnedWriteHalf>);

impl Drop for TcpWriter {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.forget();
        }
    }
}

impl TcpWriter {
    fn half(self: Pin<&mut Self>) -> Pin<&mut OwnedWriteHalf> {
        Pin::new(self.get_mut().0.as_mut().expect("taken only on drop"))
    }
}

impl AsyncWrite for TcpWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.half().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_shutdown(cx)
    }
}

async fn serve<R, W>(
    broker: Arc<Broker>,
    mut rd: R,
    mut wr: W,
    remote: Arc<str>,
    listener: Arc<str>,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // This future lives as long as the connection, so what it holds across an await is paid by
    // every idle client: the handshake (CONNECT packet, enhanced-auth exchange, refusals) runs
    // in its own boxed future, freed once the client is connected, and only scalars of the
    // options are kept.
    let read_size = broker.options().client_net_read_buffer_size;
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(broker.options().capabilities.maximum_packet_size);
    let handle = match Box::pin(handshake(
        &broker,
        &mut rd,
        &mut wr,
        &mut buf,
        &mut decoder,
        remote.clone(),
        listener,
    ))
    .await
    {
        Ok(h) => h,
        Err(e) => {
            debug!(%remote, error = %e, "connection ended");
            return Err(e);
        }
    };
    drop(remote);
    let passive = broker
        .options()
        .capabilities
        .compatibilities
        .passive_client_disconnect;
    let input = Input {
        rd: &mut rd,
        buf: &mut buf,
        decoder: &mut decoder,
        read_size,
    };
    let result = read_loop(&broker, &handle, input, Writer::Parked(wr)).await;
    // The client id is free for a take-over at once, even while the socket lingers.
    broker.disconnected(Instant::now(), &handle);
    debug!(client = %handle.info.id, ?result, "client disconnected");
    if !matches!(result, Err(Error::Closed | Error::Io(_))) {
        // The broker ended the connection (its DISCONNECT, if any, is out and the write side
        // shut down) or the client sent DISCONNECT: the client has not closed yet.
        drop((buf, decoder));
        let bound = if passive { PASSIVE_LINGER } else { LINGER };
        Box::pin(linger(&mut rd, bound)).await;
    }
    drop(rd);
    // A wake-up from idle after the reader's last read drew a ticket nobody would hand back.
    Ticket::hand_back(&handle);
    result
}

/// The connection's inbound side: the stream, its read buffer and the packet decoder.
struct Input<'a, R> {
    rd: &'a mut R,
    buf: &'a mut BytesMut,
    decoder: &'a mut Decoder,
    /// The first and smallest read size (`client_net_read_buffer_size`; see [`ReadSize`]).
    read_size: usize,
}

/// How much a connection reads at once. It starts at `client_net_read_buffer_size`, doubles
/// (up to [`MAX_READ`]) while reads fill all the room they were given — more is waiting in
/// the socket — and halves back while they bring in far less.
///
/// Everything one read brings in is handled as one batch: each subscriber it reaches gets its
/// share in one write and one wake-up. With 2 KiB reads a fan-out to 16 subscribers wrote
/// ~2 KiB per syscall to each and its subscribers read as often; 64 KiB reads measured 1.7x the
/// deliveries per second at half the broker CPU per delivery (fan-out 1→16, QoS 0, 16 B), and
/// the clients' own syscalls fell tenfold. A connection that sends a packet now and then never
/// grows its reads, and an idle one holds no buffer at all (see [`read_some`]). Messages that
/// wait (for a slow or absent subscriber) are copied out of the larger buffers they would pin:
/// see `Pins` in [`crate::state`].
#[derive(Debug, Clone, Copy)]
struct ReadSize {
    // u32: this lives in every connection's reader future, idle or not.
    now: u32,
    min: u32,
    /// The last read filled its room: more is probably waiting.
    full: bool,
}

impl ReadSize {
    fn new(min: usize) -> Self {
        let min = u32::try_from(min).unwrap_or(u32::MAX);
        ReadSize {
            now: min,
            min,
            full: false,
        }
    }

    /// The size of the next read.
    fn get(&self) -> usize {
        self.now as usize
    }

    /// After a read of `got` bytes into `room`.
    fn update(&mut self, got: usize, room: usize) {
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
fn read_some<'a, R: AsyncRead + Unpin>(
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
fn poll_read_some<R: AsyncRead + Unpin>(
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
async fn next_packet<R: AsyncRead + Unpin>(
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

/// Reads and discards until the client closes, for at most `bound`.
///
/// A socket closed while the client's data is unread, or while more arrives, is reset (TCP
/// RST), and a client that is still writing (one flooding QoS 2 PUBLISHes past its receive
/// maximum) then gets `ECONNRESET` instead of the DISCONNECT or refusing CONNACK that says
/// why. Lingering lets that last packet be read: the write side is already shut down, so the
/// client sees it followed by the end of the stream, and closes.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R, bound: std::time::Duration) {
    let _ = timeout(bound, async {
        let mut sink = [0u8; 512];
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// [`negotiate`], and after a refusal (or a CONNECT that does not decode) the connection
/// lingers (see [`linger`]) so that the client can read the refusing CONNACK.
async fn handshake<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    remote: Arc<str>,
    listener: Arc<str>,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let r = negotiate(broker, rd, wr, buf, decoder, remote, listener).await;
    if let Err(Error::Refused(_) | Error::Decode(_) | Error::Protocol(_)) = &r {
        *buf = BytesMut::new();
        let _ = timeout(LINGER, wr.shutdown()).await;
        linger(rd, LINGER).await;
    }
    r
}

/// CONNECT (with OnPacketRead), enhanced authentication and the broker's verdict; the CONNACK
/// of an accepted client is queued on its state, a refusal is written here.
async fn negotiate<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    remote: Arc<str>,
    listener: Arc<str>,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opts = broker.options();
    let read_size = opts.client_net_read_buffer_size;
    // CONNECT, within the connect timeout.
    let first = timeout(
        opts.connect_timeout,
        next_packet(rd, buf, decoder, read_size),
    )
    .await;
    let connect = match first {
        Err(_) => return Err(Error::ConnectTimeout),
        Ok(Err(e)) => {
            match (&e, decoder.version()) {
                (Error::Decode(d), Some(v)) => {
                    // The CONNECT was readable enough to know the version: answer it.
                    let _ = write_connack_refusal(wr, v, d.reason_code()).await;
                }
                (Error::Decode(d), None)
                    if d.reason_code() == ReasonCode::UnsupportedProtocolVersion =>
                {
                    // An unknown level: answer as v3.1.1 does (return code 1).
                    let _ = write_connack_refusal(
                        wr,
                        ProtocolVersion::V311,
                        ReasonCode::UnsupportedProtocolVersion,
                    )
                    .await;
                }
                _ => {}
            }
            return Err(e);
        }
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => return Err(Error::Protocol(ReasonCode::ProtocolError)),
    };
    broker.info.packets_received.fetch_add(1, Ordering::Relaxed);
    let mut connect = connect;
    if broker.hooks().provides(Event::OnPacketRead) {
        // OnPacketRead sees (and may rewrite or refuse) the CONNECT too, as mochi.
        let info = ClientInfo {
            id: connect.client_id.clone(),
            username: connect.username.clone(),
            remote: remote.clone(),
            listener: listener.clone(),
            protocol: connect.protocol,
        };
        let mut p = Packet::Connect(connect);
        let read = broker.hooks().on_packet_read(&info, &mut p);
        let Packet::Connect(c) = p else {
            return Err(Error::Protocol(ReasonCode::ProtocolError));
        };
        connect = c;
        if let Err(code) = read {
            write_connack_refusal(wr, connect.protocol, code).await?;
            wr.shutdown().await.ok();
            return Err(Error::Refused(code));
        }
    }
    let version = connect.protocol;
    let mut enhanced = None;
    if let Some(method) = connect.properties.authentication_method.clone() {
        let info = ClientInfo {
            id: connect.client_id.clone(),
            username: connect.username.clone(),
            remote: remote.clone(),
            listener: listener.clone(),
            protocol: version,
        };
        let mut auth = Auth::new(ReasonCode::Success);
        auth.properties.authentication_method = Some(method.clone());
        auth.properties.authentication_data = connect.properties.authentication_data.clone();
        let deadline = tokio::time::Instant::now() + opts.connect_timeout;
        loop {
            match broker.hooks().on_auth_packet(&info, &auth) {
                Ok(reply) if reply.reason_code == ReasonCode::ContinueAuthentication => {
                    let mut reply = reply;
                    reply.properties.authentication_method = Some(method.clone());
                    let mut out = BytesMut::new();
                    Packet::Auth(reply).encode(version, &mut out)?;
                    wr.write_all(&out).await?;
                    let next =
                        tokio::time::timeout_at(deadline, next_packet(rd, buf, decoder, read_size))
                            .await
                            .map_err(|_| Error::ConnectTimeout)??;
                    match next {
                        Packet::Auth(a)
                            if a.reason_code == ReasonCode::ContinueAuthentication
                                && a.properties.authentication_method.as_ref() == Some(&method) =>
                        {
                            auth = a;
                        }
                        _ => {
                            write_connack_refusal(wr, version, ReasonCode::ProtocolError).await?;
                            return Err(Error::Protocol(ReasonCode::ProtocolError));
                        }
                    }
                }
                Ok(done) => {
                    enhanced = Some(done);
                    break;
                }
                Err(code) => {
                    write_connack_refusal(wr, version, code).await?;
                    wr.shutdown().await.ok();
                    return Err(Error::Refused(code));
                }
            }
        }
    }
    let now = Instant::now();
    let outcome = broker.connect_with(now, &connect, remote.clone(), listener.clone(), enhanced);
    match outcome {
        ConnectOutcome::Refused(ack) => {
            let code = ack.reason_code;
            let mut out = BytesMut::new();
            let mut p = Packet::ConnAck(ack);
            if broker.hooks().provides(Event::OnPacketEncode) {
                let info = ClientInfo {
                    id: connect.client_id.clone(),
                    username: connect.username.clone(),
                    remote,
                    listener,
                    protocol: version,
                };
                broker.hooks().on_packet_encode(&info, &mut p);
            }
            p.encode(version, &mut out)?;
            wr.write_all(&out).await?;
            wr.shutdown().await.ok();
            Err(Error::Refused(code))
        }
        ConnectOutcome::Accepted(h) => {
            debug!(client = %h.info.id, %version, "client connected");
            Ok(h)
        }
    }
}

async fn write_connack_refusal<W: AsyncWrite + Unpin>(
    wr: &mut W,
    version: ProtocolVersion,
    code: ReasonCode,
) -> Result<(), Error> {
    let mut out = BytesMut::new();
    Packet::from(moco_codec::ConnAck {
        session_present: false,
        reason_code: code,
        properties: Default::default(),
    })
    .encode(version, &mut out)?;
    wr.write_all(&out).await?;
    Ok(())
}

/// What [`handle_buffered`] did.
struct Batch {
    /// The stream is broken (the client is told why and closed).
    failed: Option<moco_codec::DecodeError>,
    /// A subscriber asked the reader to wait before its next packet.
    paused: bool,
}

/// Handles every complete packet already buffered, as one batch: one clock read (they arrived
/// together), the writers they give work to woken once at the end (see
/// [`crate::broker::WakeBatch`]). Stops early when the connection closes or back-pressure asks
/// it to wait. `read_size` is the size the connection reads at (see [`ReadSize`]).
fn handle_buffered(
    broker: &Arc<Broker>,
    handle: &Arc<ClientHandle>,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    read_size: usize,
) -> Batch {
    let mut batch = Batch {
        failed: None,
        paused: false,
    };
    let (mut packets, mut publishes) = (0u64, 0u64);
    let now = Instant::now();
    // What the messages decoded here pin: the buffer is allocated at the read size (its
    // remaining capacity would differ from one read to the next into the same buffer).
    let wakes = crate::broker::WakeBatch::open(read_size);
    loop {
        match decoder.decode(buf) {
            Ok(Some(p)) => {
                packets += 1;
                if let Packet::Publish(_) = p {
                    publishes += 1;
                }
                if !process_at(broker, handle, p, now) {
                    break;
                }
                if handle.flow.must_wait() {
                    batch.paused = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                batch.failed = Some(e);
                break;
            }
        }
    }
    drop(wakes);
    if packets > 0 {
        broker
            .info
            .packets_received
            .fetch_add(packets, Ordering::Relaxed);
    }
    if publishes > 0 {
        broker
            .info
            .messages_received
            .fetch_add(publishes, Ordering::Relaxed);
    }
    batch
}

/// A connection's writer: not started yet (the reader holds the write half and sends the
/// replies of a quiet connection itself), or its task.
///
/// A connection that only connects, pings and perhaps subscribes — most of an idle fleet —
/// never needs a second task: the reader writes its CONNACK, PINGRESPs and SUBACKs. The writer
/// task starts the first time anything else is due (a message, an acknowledgement, a
/// DISCONNECT) and runs until the connection ends, so that a busy client's reading and writing
/// go on in parallel (serialising them cost fan-in QoS 1 half its rate; see
/// docs/architecture.md). Starting it lazily saves an idle connection the writer task's
/// allocation (~0.4 KiB) and a connect one task spawn.
enum Writer<W> {
    Parked(W),
    Running(tokio::task::JoinHandle<Result<(), Error>>),
    /// Only while switching from one to the other.
    Switching,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Writer<W> {
    /// Sends what the client's state has to send: here while it is only replies, through the
    /// writer task (started now) as soon as it is anything else.
    async fn send_pending(
        &mut self,
        broker: &Arc<Broker>,
        handle: &Arc<ClientHandle>,
    ) -> Result<(), Error> {
        let Writer::Parked(wr) = self else {
            return Ok(());
        };
        // Whatever queued work for the writer also stored a wake-up for it; that work is
        // looked at now, so the wake-up is used up here instead of waking the reader's next
        // wait for nothing (an extra turn of the loop per connect and per PINGREQ).
        let _ = std::future::Future::poll(
            std::pin::pin!(handle.notify.notified()),
            &mut Context::from_waker(std::task::Waker::noop()),
        );
        let (wants, replies) = {
            let st = handle.state.lock();
            (st.wants_transmit(), st.only_replies_to_send())
        };
        if !wants {
            return Ok(());
        }
        let mut out = BytesMut::new();
        if replies {
            let f = fill(
                broker,
                handle,
                writer_mode(broker, handle),
                &mut out,
                &mut Vec::new(),
            );
            // Counted once, here, also if the writer task writes the end of it.
            count_sent(broker, handle, &out, f.sent, f.packets);
            // Only what the socket takes at once: a client that does not read its replies
            // must not block the reader (which enforces its keep-alive); the rest goes to a
            // writer task.
            let n = write_now(wr, &out)?;
            // `advance`, not `split_to`: a split would make the buffer shared (an allocation).
            bytes::Buf::advance(&mut out, n);
            if out.is_empty() && !f.more {
                // A quiet connection's control queue is given back as soon as its replies are
                // out (one allocation per reply), so it needs no idle-trim timer.
                handle.state.lock().release_idle_memory();
                return Ok(());
            }
        }
        let Writer::Parked(wr) = std::mem::replace(self, Writer::Switching) else {
            unreachable!("checked above");
        };
        *self = Writer::Running(tokio::spawn(write_loop(
            broker.clone(),
            handle.clone(),
            wr,
            out,
        )));
        Ok(())
    }

    /// The connection is over: the last packets (a DISCONNECT) are written, within a bound
    /// for a client that does not read, and the write side is closed.
    async fn finish(self, broker: &Arc<Broker>, handle: &Arc<ClientHandle>) {
        const BOUND: std::time::Duration = std::time::Duration::from_secs(5);
        match self {
            Writer::Running(task) => {
                handle.notify.notify_one();
                let abort = task.abort_handle();
                if timeout(BOUND, task).await.is_err() {
                    abort.abort();
                }
            }
            Writer::Parked(wr) => {
                // A writer's last turns, run here (boxed: only connections that end parked
                // pay for its future, and only now).
                let last = write_loop(broker.clone(), handle.clone(), wr, BytesMut::new());
                let _ = timeout(BOUND, Box::pin(last)).await;
            }
            Writer::Switching => {}
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin, W>(
    broker: &Arc<Broker>,
    handle: &Arc<ClientHandle>,
    input: Input<'_, R>,
    mut writer: Writer<W>,
) -> Result<(), Error>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Input {
        rd,
        buf,
        decoder,
        read_size,
    } = input;
    // Whether something was read since the trim check was set (see `IDLE_TRIM`), and when
    // that check is due: only while the writer task runs (a parked writer's replies give
    // their memory back at once), none once trimmed until the next read.
    let mut active = false;
    let mut trim_at = None;
    let mut timer = Timer::default();
    let mut size = ReadSize::new(read_size);
    // Bytes read since this task last let the others run.
    let mut since_yield = 0;
    let result = loop {
        if Ticket::must_wait(handle) && holds_publish(buf) {
            // Woken from idle with a PUBLISH: the connections woken before this one are
            // handled first (see `crate::broker::order`). Boxed: only a reader that has to wait pays
            // for the waiting future.
            Box::pin(Ticket::wait_turn(handle)).await;
        }
        let Batch { failed, paused } = handle_buffered(broker, handle, decoder, buf, size.get());
        // The ticket of a wake-up from idle stays with the handle until its packets are
        // handled: handing it back lets later PUBLISHes through (see `crate::broker::order`).
        Ticket::hand_back(handle);
        if let Some(e) = failed {
            handle.close(e.reason_code());
            break Err(Error::Decode(e));
        }
        // The replies to what was just read (and, first of all, the CONNACK).
        let was_parked = matches!(writer, Writer::Parked(_));
        if let Err(e) = writer.send_pending(broker, handle).await {
            break Err(e);
        }
        let parked = matches!(writer, Writer::Parked(_));
        if was_parked && !parked && trim_at.is_none() {
            // The writer just started: its batch and the control queue are trimmed once the
            // connection is quiet.
            trim_at = Some(Instant::now() + IDLE_TRIM);
        }
        // Back-pressure: QoS 1/2 messages just routed may have left a subscriber that keeps
        // up, but slowly, with a long queue; wait for it before the next packet (bounded).
        crate::broker::flow::wait_for_subscribers(handle).await;
        let deadline = {
            let st = handle.state.lock();
            if !st.is_connected() {
                break Ok(());
            }
            st.poll_timeout()
        };
        if paused {
            // Packets of the last read may still be buffered: handle them before reading.
            continue;
        }
        if since_yield >= MAX_READ {
            // Fairness: tokio's budget lets a task with data always waiting run ~128 reads
            // before it yields; with 64 KiB reads that starved the writers on this worker
            // while its publisher kept queuing (fan-in QoS 0: queues of 100k+ messages, 200 MB
            // and page faults). One large read's worth of work, then the others run.
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        timer.arm(match (deadline, trim_at) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        });
        tokio::select! {
            // Data first: after a back-pressure wait, a PINGREQ already in the socket is read
            // before the keep-alive deadline is judged (closing is seen at the loop's top).
            biased;
            r = read_some(rd, buf, size.get(), size.full, Some(handle)) => match r {
                Ok((0, _)) => break Err(Error::Closed),
                Ok((n, room)) => {
                    if parked {
                        // Nothing to trim later (see `trim_at`).
                    } else if trim_at.is_none() {
                        // The first read after a trim sets the check; a lone packet (a
                        // PINGREQ) then costs one timer firing, not two.
                        trim_at = Some(Instant::now() + IDLE_TRIM);
                    } else {
                        active = true;
                    }
                    size.update(n, room);
                    since_yield += n;
                    broker.info.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => break Err(Error::Io(e)),
            },
            _ = timer.fired() => {
                let now = Instant::now();
                if trim_at.is_some_and(|t| now >= t) {
                    if active {
                        // Read since the check was set: look again one spell later.
                        active = false;
                        trim_at = Some(now + IDLE_TRIM);
                    } else {
                        trim_at = None;
                        handle.state.lock().release_idle_memory();
                        if let Writer::Running(_) = writer {
                            handle.trim.store(true, Ordering::Relaxed);
                            handle.notify.notify_one();
                        }
                    }
                }
                if deadline.is_some_and(|d| now >= d) {
                    handle.state.lock().handle_timeout(now);
                    handle.notify.notify_one();
                }
            }
            // Closing wakes the reader through `closing`, and also through the writer's
            // `notify`. While the writer is parked the reader waits on `notify` alone (one
            // waiter less in every idle connection's future): work for the writer (a message
            // from another client) then wakes the reader, which starts it (the loop's top).
            _ = reader_wake(parked, handle) => {}
            w = running(&mut writer), if !parked => {
                // The writer ended: the connection was closed from our side or the socket died.
                return match w {
                    Ok(r) => r,
                    Err(_) => Err(Error::Closed),
                };
            }
        }
    };
    // Make sure the writer flushes a final DISCONNECT (if any) and stops.
    {
        let mut st = handle.state.lock();
        if st.close_reason().is_none() {
            st.close(ReasonCode::UnspecifiedError);
            st.detach();
        }
    }
    writer.finish(broker, handle).await;
    result
}

/// Whether the complete packets at the start of `buf` include a PUBLISH (only the first few
/// are looked at): only a PUBLISH waits for its turn (see [`crate::broker::order`]).
fn holds_publish(buf: &[u8]) -> bool {
    const LOOK: usize = 16;
    let mut at = 0;
    for _ in 0..LOOK {
        let Some(&first) = buf.get(at) else {
            return false;
        };
        if first >> 4 == 3 {
            return true;
        }
        // The remaining length, a variable byte integer of up to four bytes.
        let (mut len, mut shift, mut i) = (0usize, 0, at + 1);
        loop {
            let Some(&b) = buf.get(i) else {
                return false;
            };
            len |= usize::from(b & 0x7F) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                return false;
            }
        }
        at = i + len;
    }
    false
}

/// Writes as much of `out` as the socket takes without waiting; returns how much that was.
fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, out: &[u8]) -> std::io::Result<usize> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut done = 0;
    while done < out.len() {
        match Pin::new(&mut *wr).poll_write(&mut cx, &out[done..]) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => done += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(done)
}

/// Waits for a running writer task (pending forever otherwise; the select guards it).
async fn running<W>(writer: &mut Writer<W>) -> Result<Result<(), Error>, tokio::task::JoinError> {
    match writer {
        Writer::Running(task) => task.await,
        _ => std::future::pending().await,
    }
}

/// What wakes an idle reader besides its socket (see the select in [`read_loop`]).
fn reader_wake(parked: bool, handle: &ClientHandle) -> tokio::sync::futures::Notified<'_> {
    if parked {
        handle.notify.notified()
    } else {
        handle.closing.notified()
    }
}

/// The reader's one timer, for the keep-alive deadline and the idle trim check alike, armed
/// lazily. A timer made per read (as a `select!` branch) registered and cancelled a timer entry
/// for every read; this one is moved only when it fires, or when a deadline earlier than its
/// own is asked for: a keep-alive deadline only moves later as packets arrive, so it fires
/// early, at most once per keep-alive period, and is re-armed then. Boxed, and made only while
/// there is a deadline: inline, its 112 bytes would be part of every connection's future.
#[derive(Default)]
struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    /// Makes sure the timer fires no later than `at` (not at all for `None`).
    fn arm(&mut self, at: Option<Instant>) {
        let Some(at) = at else {
            self.0 = None;
            return;
        };
        let at = tokio::time::Instant::from_std(at);
        match &mut self.0 {
            Some(s) if !s.is_elapsed() && s.deadline() <= at => {}
            Some(s) => s.as_mut().reset(at),
            None => self.0 = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Completes when the armed deadline passes (never when none is armed).
    fn fired(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| match &mut self.0 {
            Some(s) => std::future::Future::poll(s.as_mut(), cx),
            None => Poll::Pending,
        })
    }
}

/// Injects `packet` as if the connected client `client_id` had sent it (mochi's
/// `InjectPacket`); returns whether the connection is still open.
pub fn inject_packet(broker: &Arc<Broker>, client_id: &str, packet: Packet) -> Result<bool, Error> {
    let handle = broker.client(client_id).ok_or(Error::NoSuchClient)?;
    broker.info.packets_received.fetch_add(1, Ordering::Relaxed);
    if let Packet::Publish(_) = packet {
        broker
            .info
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(process(broker, &handle, packet))
}

/// Feeds one packet to the client's state and acts on the outcome; false once the
/// connection is closing.
pub(crate) fn process(broker: &Arc<Broker>, handle: &Arc<ClientHandle>, packet: Packet) -> bool {
    process_at(broker, handle, packet, Instant::now())
}

/// [`process`] for a packet received at `now`.
fn process_at(
    broker: &Arc<Broker>,
    handle: &Arc<ClientHandle>,
    mut packet: Packet,
    now: Instant,
) -> bool {
    let ptype = packet.packet_type();
    trace!(client = %handle.info.id, packet = %ptype, "received");
    let hooks = broker.hooks();
    if hooks.provides(Event::OnPacketRead) {
        if let Err(code) = hooks.on_packet_read(&handle.info, &mut packet) {
            handle.close(code);
            return false;
        }
    }
    // The writer needs a wake-up only when this packet gives it something to do that it had
    // not (`idle` is read under the same lock as the change): each change that makes work
    // for it notifies, so work that was already there has had its notification.
    let mut st = handle.state.lock();
    let mut idle = !st.wants_transmit();
    let event = st.handle_packet(now, packet);
    if let Some(event) = event {
        drop(st);
        match event {
            AppEvent::Publish(p) => {
                let (qos, pid) = (p.qos, p.packet_id.unwrap_or(0));
                let code = broker.publish_counted(now, &handle.info, p);
                st = handle.state.lock();
                idle = !st.wants_transmit();
                st.publish_done(qos, pid, code);
            }
            AppEvent::Subscribe(s) => {
                broker.subscribe(now, handle, s);
                st = handle.state.lock();
                idle = true;
            }
            AppEvent::Unsubscribe(u) => {
                broker.unsubscribe(handle, u);
                st = handle.state.lock();
                idle = true;
            }
            AppEvent::Auth(a) => {
                let reply = broker.hooks().on_auth_packet(&handle.info, &a);
                st = handle.state.lock();
                idle = true;
                match reply {
                    Ok(mut r) => {
                        if r.properties.authentication_method.is_none() {
                            r.properties.authentication_method =
                                a.properties.authentication_method.clone();
                        }
                        st.send(Packet::Auth(r));
                    }
                    Err(code) => st.close(code),
                }
            }
            AppEvent::Disconnect { .. } => {
                st = handle.state.lock();
                idle = true;
            }
        }
    }
    let open = st.is_connected();
    let wake = idle && st.wants_transmit();
    let notes = st.take_notes();
    drop(st);
    if wake {
        handle.notify.notify_one();
    }
    if !notes.is_empty() {
        report_notes(hooks, &broker.info, &handle.info.id, notes);
    }
    hooks.on_packet_processed(&handle.info, ptype);
    open
}

/// How a connection's writer encodes (fixed for its life).
#[derive(Debug, Clone, Copy)]
struct WriterMode {
    version: ProtocolVersion,
    /// `OnPacketEncode`: every packet goes through the hooks before it is encoded (and
    /// PUBLISH is then encoded per subscriber, not once per variant).
    encode_hook: bool,
    /// With no hook that must see each packet, the state encodes straight into `out` under
    /// its lock: no per-packet Transmit, no copy of inflight deliveries, one lock per batch.
    direct: bool,
    buf_size: usize,
}

fn writer_mode(broker: &Broker, handle: &ClientHandle) -> WriterMode {
    let encode_hook = broker.hooks().provides(Event::OnPacketEncode);
    WriterMode {
        version: handle.info.protocol,
        encode_hook,
        direct: !encode_hook && !broker.hooks().provides(Event::OnQosPublish),
        buf_size: broker.options().client_net_write_buffer_size,
    }
}

/// After `out` was written: `OnPacketSent` and the `$SYS` counters.
fn count_sent(broker: &Broker, handle: &ClientHandle, out: &[u8], sent: u64, packets: u64) {
    broker.hooks().on_packet_sent(&handle.info, out);
    let info = &broker.info;
    info.bytes_sent
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    info.messages_sent.fetch_add(sent, Ordering::Relaxed);
    info.packets_sent.fetch_add(packets, Ordering::Relaxed);
}

/// What [`fill`] put in the write buffer.
struct Filled {
    /// PUBLISH packets.
    sent: u64,
    /// Packets of any type.
    packets: u64,
    /// More is ready to send (direct mode only: read with the batch).
    more: bool,
    /// The connection is closing and everything is out.
    finished: bool,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    broker: Arc<Broker>,
    handle: Arc<ClientHandle>,
    mut wr: W,
    // Bytes to write before anything else: the end of replies the reader could not write at
    // once (already counted).
    carried: BytesMut,
) -> Result<(), Error> {
    if !carried.is_empty() {
        wr.write_all(&carried).await?;
    }
    let mut out = BytesMut::new();
    // A `Transmit` is over 200 bytes and a Vec's first growth takes 4 slots: starting with one
    // keeps a connection that sends one packet at a time (CONNACK, PINGRESP) at one slot.
    let mut batch = Vec::with_capacity(1);
    let mode = writer_mode(&broker, &handle);
    loop {
        // Synchronous, so what it needs (notes, abandoned ids, the clock) is not kept in this
        // future, which every connection's writer task holds, idle or not.
        let Filled {
            sent,
            packets,
            mut more,
            finished,
        } = fill(&broker, &handle, mode, &mut out, &mut batch);
        if !out.is_empty() {
            wr.write_all(&out).await?;
            count_sent(&broker, &handle, &out, sent, packets);
            out.clear();
        }
        if finished {
            wr.flush().await.ok();
            let passive = broker
                .options()
                .capabilities
                .compatibilities
                .passive_client_disconnect;
            if !passive {
                wr.shutdown().await.ok();
            }
            return Ok(());
        }
        // In direct mode `more` was read with the batch: whatever became ready since came
        // with a notification, which `notified()` below returns at once for.
        if !mode.direct {
            more = handle.state.lock().wants_transmit();
        }
        if !more {
            // Idle: give the write buffer back, so an idle connection holds none. The batch
            // (a `Transmit` is over 200 bytes; a busy subscriber's grows to hundreds of KiB) is
            // given back when the reader says the connection has been quiet for a while, so a
            // writer that pauses between batches does not grow it again each time.
            out = BytesMut::new();
            handle.notify.notified().await;
            if handle.trim.swap(false, Ordering::Relaxed) {
                batch = Vec::new();
            }
        }
    }
}

/// Encodes what is ready to send into `out` (one batch), runs the per-packet hooks and reports
/// the notes.
fn fill(
    broker: &Broker,
    handle: &ClientHandle,
    mode: WriterMode,
    out: &mut BytesMut,
    batch: &mut Vec<Transmit>,
) -> Filled {
    let WriterMode {
        version,
        encode_hook,
        direct,
        buf_size,
    } = mode;
    let now = Instant::now();
    let mut sent = 0u64;
    let mut packets = 0u64;
    let mut notes = Vec::new();
    let mut more = false;
    let mut wanted = 0;
    if direct && out.capacity() == 0 {
        // After idle the buffer is unallocated: start within glibc's thread cache (up to
        // ~1 KiB) so that one ack or one message costs a fast allocation; a large batch
        // grows it on demand.
        out.reserve(DIRECT_FIRST_RESERVE.min(buf_size));
    }
    let (max_packet, finished) = {
        let mut st = handle.state.lock();
        if direct {
            let w = st.write_transmits(now, out, WRITE_BATCH);
            (sent, packets) = (w.publishes, w.packets);
            notes = st.take_notes();
            more = st.wants_transmit();
        } else {
            let mut budget = WRITE_BATCH;
            while budget > 0 {
                match st.poll_transmit(now) {
                    Some(t) => {
                        budget = budget.saturating_sub(transmit_size_hint(&t));
                        batch.push(t);
                    }
                    None => break,
                }
            }
            wanted = WRITE_BATCH - budget;
        }
        handle.flow.after_batch(&st);
        let finished = st.close_reason().is_some() && !st.wants_transmit();
        (st.limits.client_maximum_packet_size, finished)
    };
    // After idle the buffer is empty: a small batch (an ack, one message) gets a small
    // allocation (glibc serves those from its thread cache; 2 KiB ones take the slow path),
    // a large one starts at `buf_size` and grows on demand.
    out.reserve(wanted.min(buf_size));
    let mut abandoned = Vec::new();
    for t in batch.drain(..) {
        match t {
            Transmit::Packet(mut p) => {
                if encode_hook {
                    broker.hooks().on_packet_encode(&handle.info, &mut p);
                }
                match p.encode(version, out) {
                    Ok(_) => packets += 1,
                    Err(e) => {
                        debug!(client = %handle.info.id, error = %e, "cannot encode packet")
                    }
                }
            }
            Transmit::Publish {
                delivery,
                packet_id,
                dup,
                alias,
            } => {
                let start = out.len();
                let params = delivery.params(dup, packet_id, alias);
                let written = if encode_hook {
                    let mut p = Packet::Publish(delivery.msg.to_publish(&params, now));
                    broker.hooks().on_packet_encode(&handle.info, &mut p);
                    p.encode(version, out)
                } else {
                    delivery.msg.write_to(version, &params, now, out)
                };
                match written {
                    Ok(n) if max_packet > 0 && n > max_packet as usize => {
                        out.truncate(start);
                        if let Some(pid) = packet_id {
                            abandoned.push(pid);
                        }
                    }
                    Ok(_) => {
                        sent += 1;
                        packets += 1;
                        if packet_id.is_some() && broker.hooks().provides(Event::OnQosPublish) {
                            let p = delivery.msg.to_publish(&params, now);
                            broker
                                .hooks()
                                .on_qos_publish(&handle.info.id, &p, u32::from(dup));
                        }
                    }
                    Err(e) => {
                        out.truncate(start);
                        debug!(client = %handle.info.id, error = %e, "cannot encode publish");
                    }
                }
            }
        }
    }
    if !direct {
        let mut st = handle.state.lock();
        for pid in abandoned {
            st.abandon(pid);
        }
        notes = st.take_notes();
    }
    if !notes.is_empty() {
        report_notes(broker.hooks(), &broker.info, &handle.info.id, notes);
    }
    Filled {
        sent,
        packets,
        more,
        finished,
    }
}

fn transmit_size_hint(t: &Transmit) -> usize {
    match t {
        Transmit::Packet(_) => 16,
        Transmit::Publish { delivery, .. } => {
            delivery.msg.payload.len() + delivery.msg.topic.len() + 16
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

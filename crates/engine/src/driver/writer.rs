//! The writer: drains what a client's state has to send into one buffer and writes it with
//! one syscall; while only replies are due, the reader writes them itself.

use super::*;

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
pub(super) enum Writer<W> {
    Parked(W),
    Running(tokio::task::JoinHandle<Result<(), Error>>),
    /// Only while switching from one to the other.
    Switching,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Writer<W> {
    /// Sends what the client's state has to send: here while it is only replies, through the
    /// writer task (started now) as soon as it is anything else.
    pub(super) async fn send_pending(
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
    pub(super) async fn finish(self, broker: &Arc<Broker>, handle: &Arc<ClientHandle>) {
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

/// Writes as much of `out` as the socket takes without waiting; returns how much that was.
pub(super) fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, out: &[u8]) -> std::io::Result<usize> {
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

/// How a connection's writer encodes (fixed for its life).
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterMode {
    pub(super) version: ProtocolVersion,
    /// `OnPacketEncode`: every packet goes through the hooks before it is encoded (and
    /// PUBLISH is then encoded per subscriber, not once per variant).
    pub(super) encode_hook: bool,
    /// With no hook that must see each packet, the state encodes straight into `out` under
    /// its lock: no per-packet Transmit, no copy of inflight deliveries, one lock per batch.
    pub(super) direct: bool,
    pub(super) buf_size: usize,
}

pub(super) fn writer_mode(broker: &Broker, handle: &ClientHandle) -> WriterMode {
    let encode_hook = broker.hooks().provides(Event::OnPacketEncode);
    WriterMode {
        version: handle.info.protocol,
        encode_hook,
        direct: !encode_hook && !broker.hooks().provides(Event::OnQosPublish),
        buf_size: broker.options().client_net_write_buffer_size,
    }
}

/// After `out` was written: `OnPacketSent` and the `$SYS` counters.
pub(super) fn count_sent(
    broker: &Broker,
    handle: &ClientHandle,
    out: &[u8],
    sent: u64,
    packets: u64,
) {
    broker.hooks().on_packet_sent(&handle.info, out);
    let info = &broker.info;
    info.bytes_sent
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    info.messages_sent.fetch_add(sent, Ordering::Relaxed);
    info.packets_sent.fetch_add(packets, Ordering::Relaxed);
}

/// What [`fill`] put in the write buffer.
pub(super) struct Filled {
    /// PUBLISH packets.
    pub(super) sent: u64,
    /// Packets of any type.
    pub(super) packets: u64,
    /// More is ready to send (direct mode only: read with the batch).
    pub(super) more: bool,
    /// The connection is closing and everything is out.
    pub(super) finished: bool,
}

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
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
pub(super) fn fill(
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
        report_notes(broker, &handle.info.id, notes);
    }
    Filled {
        sent,
        packets,
        more,
        finished,
    }
}

pub(super) fn transmit_size_hint(t: &Transmit) -> usize {
    match t {
        Transmit::Packet(_) => 16,
        Transmit::Publish { delivery, .. } => {
            delivery.msg.payload.len() + delivery.msg.topic.len() + 16
        }
    }
}

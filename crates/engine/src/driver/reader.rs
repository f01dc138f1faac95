//! The reader loop of a connected client: read, handle the packets of one read as a batch,
//! enforce the keep-alive, start the writer when it is needed.

use super::*;

/// What [`handle_buffered`] did.
pub(super) struct Batch {
    /// The stream is broken (the client is told why and closed).
    pub(super) failed: Option<moco_codec::DecodeError>,
    /// A subscriber asked the reader to wait before its next packet.
    pub(super) paused: bool,
}

/// Handles every complete packet already buffered, as one batch: one clock read (they arrived
/// together), the writers they give work to woken once at the end (see
/// [`crate::broker::WakeBatch`]). Stops early when the connection closes or back-pressure asks
/// it to wait. `read_size` is the size the connection reads at (see [`ReadSize`]).
pub(super) fn handle_buffered(
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

pub(super) async fn read_loop<R: AsyncRead + Unpin, W>(
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
            handle.close(e.clone());
            break Err(Error::Decode(e));
        }
        if broker.syncs_acks() && handle.state.lock().holds_acks() {
            // `durability: sync`: what this read's messages changed is made durable before
            // they are acknowledged (other connections share the flush).
            let stored = match broker.durable() {
                Some(durable) => durable.await,
                None => true,
            };
            handle.state.lock().release_acks(stored);
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
            st.close(CloseReason::TransportEnded);
            st.detach();
        }
    }
    writer.finish(broker, handle).await;
    result
}

/// Whether the complete packets at the start of `buf` include a PUBLISH (only the first few
/// are looked at): only a PUBLISH waits for its turn (see [`crate::broker::order`]).
pub(super) fn holds_publish(buf: &[u8]) -> bool {
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

/// Waits for a running writer task (pending forever otherwise; the select guards it).
pub(super) async fn running<W>(
    writer: &mut Writer<W>,
) -> Result<Result<(), Error>, tokio::task::JoinError> {
    match writer {
        Writer::Running(task) => task.await,
        _ => std::future::pending().await,
    }
}

/// What wakes an idle reader besides its socket (see the select in [`read_loop`]).
pub(super) fn reader_wake(
    parked: bool,
    handle: &ClientHandle,
) -> tokio::sync::futures::Notified<'_> {
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
pub(super) struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    /// Makes sure the timer fires no later than `at` (not at all for `None`).
    pub(super) fn arm(&mut self, at: Option<Instant>) {
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
    pub(super) fn fired(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| match &mut self.0 {
            Some(s) => std::future::Future::poll(s.as_mut(), cx),
            None => Poll::Pending,
        })
    }
}

//! The client registry: looking clients up, ending connections and sessions, and the clients an
//! embedding program drives itself (injected clients).

use super::*;

impl Broker {
    /// The client registered under `id`, if any.
    pub fn client(&self, id: &str) -> Option<Arc<ClientHandle>> {
        self.clients.read().get(id).cloned()
    }

    /// Every client known (connected, or away with a live session), as mochi's
    /// `Clients.GetAll`: for an admin view or to pick clients to act on.
    pub fn clients(&self) -> Vec<ClientSnapshot> {
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        handles.iter().map(|h| h.snapshot()).collect()
    }

    /// The clients that came through listener `listener` (mochi's `Clients.GetByListener`).
    pub fn clients_on_listener(&self, listener: &str) -> Vec<ClientSnapshot> {
        let handles: Vec<_> = self
            .clients
            .read()
            .values()
            .filter(|h| &*h.info.listener == listener)
            .cloned()
            .collect();
        handles.iter().map(|h| h.snapshot()).collect()
    }

    /// Disconnects client `id` from the server's side (mochi's `DisconnectClient`): a v5
    /// client gets DISCONNECT with `reason` (e.g. 0x98 administrative action), a v3 client a
    /// plain close; its will and session then go as for any disconnection. Returns false if
    /// it was not connected.
    pub fn disconnect_client(&self, id: &str, reason: ReasonCode) -> Result<bool, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        if !h.state.lock().is_connected() {
            return Ok(false);
        }
        h.close(CloseReason::Administrative(reason));
        // A connection's driver reports its end; an injected client has none.
        self.end_injected(&h);
        Ok(true)
    }

    /// Removes client `id`'s subscription to `filter` without an UNSUBSCRIBE from it (as
    /// mochi's `UnsubscribeClient`, for one filter); `OnUnsubscribed` runs, so a storage hook
    /// forgets it too. Returns whether it existed.
    pub fn unsubscribe_client(&self, id: &str, filter: &str) -> Result<bool, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        let existed = self.router.unsubscribe(&h.info.id, filter);
        self.routes_changed();
        h.forget_subscription(filter);
        self.record_unsubscribed(&h.info.id, filter, existed);
        if existed {
            let unsub = Unsubscribe {
                packet_id: 0,
                filters: vec![ByteString::from(filter)],
                properties: Default::default(),
            };
            self.hooks.on_unsubscribed(&h.info, &unsub);
        }
        Ok(existed)
    }

    /// Registers a client that has no connection (mochi's `NewClient` + `Clients.Add`), so
    /// that the embedding program can act as it with
    /// [`Server::inject_packet`](crate::Server::inject_packet) and read what the broker sends
    /// it with [`Broker::take_injected_output`]. It connects as a v5 client with a clean
    /// session through the same hooks as any CONNECT (remote `injected`, listener
    /// `listener`), taking over a client with the same id; a refusal is
    /// [`Error::Refused`].
    pub fn add_injected_client(
        &self,
        id: &str,
        listener: &str,
    ) -> Result<Arc<ClientHandle>, Error> {
        let mut c = Connect::new(ProtocolVersion::V5, id);
        c.keep_alive = 0;
        let outcome = self.connect(
            Instant::now(),
            &c,
            Arc::from("injected"),
            Arc::from(listener),
        );
        match outcome {
            ConnectOutcome::Accepted(h) => {
                h.injected.store(true, Ordering::Relaxed);
                // Injected packets are handled synchronously, with no reader to wait for
                // durability: their acknowledgements go at once.
                h.state.lock().set_hold_acks(false);
                Ok(h)
            }
            ConnectOutcome::Refused(ack) => Err(Error::Refused(ack.reason_code)),
        }
    }

    /// Takes what the broker has to send to injected client `id`, as packets, in order
    /// (its CONNACK, acknowledgements, deliveries with their packet ids); what is not taken
    /// waits in its queues, bounded as any client's.
    pub fn take_injected_output(&self, id: &str) -> Result<Vec<Packet>, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        if !h.injected.load(Ordering::Relaxed) {
            return Err(Error::NotInjected);
        }
        Ok(self.drain_output(&h, Instant::now()))
    }

    /// Everything a client without a socket has to be sent at `now`, as packets (what a
    /// writer would encode), its notes reported.
    pub(crate) fn drain_output(&self, h: &ClientHandle, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        let notes = {
            let mut st = h.state.lock();
            while let Some(t) = st.poll_transmit(now) {
                out.push(match t {
                    crate::state::Transmit::Packet(p) => p,
                    crate::state::Transmit::Publish {
                        delivery,
                        packet_id,
                        dup,
                        alias,
                    } => Packet::Publish(
                        delivery
                            .msg
                            .to_publish(&delivery.params(dup, packet_id, alias), now),
                    ),
                });
            }
            st.take_notes()
        };
        report_notes(self, &h.info.id, notes);
        out
    }

    /// Ends injected client `h` as a connection's driver would when it closes (once).
    pub(crate) fn end_injected(&self, h: &Arc<ClientHandle>) {
        if h.injected.swap(false, Ordering::Relaxed) {
            if h.taken_over.load(Ordering::Relaxed) {
                self.info.clients_connected.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.disconnected(Instant::now(), h);
            }
        }
    }

    pub(super) fn record_ended(&self, client_id: &str) {
        if let Some(sink) = &self.sink {
            sink.record(SessionEvent::Ended { client_id });
        }
    }

    /// Whether the changes of `expiry_interval`'s session are recorded as they happen (a sink
    /// is installed and the session outlives its connection).
    pub(super) fn records_messages(&self, expiry_interval: u32) -> bool {
        self.sink.is_some() && expiry_interval > 0
    }

    /// Number of clients known (connected or with a live session).
    pub fn client_count(&self) -> usize {
        self.clients.read().len()
    }

    /// Forgets a session that ended: its subscriptions leave the router, its in-flight
    /// messages are reported abandoned, and the session sink forgets it.
    pub(super) fn drop_session(&self, client_id: &ByteString, session: Session) {
        let mut filters = session.subscriptions.keys().map(|f| &**f);
        self.router.remove_client(client_id, &mut filters);
        self.routes_changed();
        self.record_ended(client_id);
        for inf in &session.inflight {
            self.hooks.on_qos_dropped(client_id, inf.packet_id);
        }
    }

    /// Called by the driver when a client's connection has ended (for whatever reason).
    pub fn disconnected(&self, now: Instant, handle: &Arc<ClientHandle>) {
        self.info.clients_connected.fetch_sub(1, Ordering::Relaxed);
        let (reason, expiry) = {
            let mut st = handle.state.lock();
            st.detach();
            (
                st.close_reason().unwrap_or(ReasonCode::UnspecifiedError),
                st.session.expiry_interval,
            )
        };
        let taken_over = handle.taken_over.load(Ordering::Relaxed);
        let session_ends = !taken_over && expiry == 0;
        self.hooks.on_disconnect(
            &handle.info,
            DisconnectInfo {
                reason,
                session_ends,
            },
        );
        if taken_over {
            return;
        }
        let will = handle.will.lock().take().map(|w| *w);
        if let Some(w) = will {
            // A normal DISCONNECT (0x00) suppresses the will; 0x04 and every error send it.
            if reason != ReasonCode::Success {
                let delay = w.delay().min(expiry);
                if delay == 0 {
                    self.publish_will(now, &handle.info.id, w);
                } else {
                    self.delay_will(now, handle.info.id.clone(), w, delay);
                }
            }
        }
        if session_ends {
            let mut clients = self.clients.write();
            self.routes_changed();
            if clients
                .get(&handle.info.id)
                .is_some_and(|h| Arc::ptr_eq(h, handle))
            {
                clients.remove(&handle.info.id);
                drop(clients);
                let session = std::mem::take(&mut handle.state.lock().session);
                self.drop_session(&handle.info.id, session);
                self.registry.release(&handle.info.id);
            }
        } else {
            if let Some(sink) = &self.sink {
                sink.record(SessionEvent::Detached {
                    client_id: &handle.info.id,
                    expiry_interval: expiry,
                    at: std::time::SystemTime::now(),
                });
            }
            // u32::MAX (v3 persistent sessions by default) effectively never expires.
            let deadline = now.checked_add(Duration::from_secs(u64::from(expiry)));
            *handle.expires_at.lock() = deadline;
            if let Some(t) = deadline {
                self.session_deadlines
                    .lock()
                    .insert((t, handle.info.id.clone()));
            }
        }
    }
}

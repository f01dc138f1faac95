//! What goes to a client: the queue and the retained backlog, inflight messages within the
//! send quota, packet ids, outbound topic aliases, and the transmits the writer drains.

use super::*;

/// Encodes one delivery's PUBLISH: from the message's shared bytes, or straight into `out`
/// when this delivery is the message's only holder (one subscriber: nobody would reuse a
/// shared encoding, and making it costs an allocation).
pub(super) fn write_publish(
    d: &Delivery,
    version: ProtocolVersion,
    params: &DeliveryParams<'_>,
    now: Instant,
    out: &mut BytesMut,
) -> Result<usize, moco_codec::EncodeError> {
    if Arc::strong_count(&d.msg) == 1 {
        Packet::Publish(d.msg.to_publish(params, now)).encode(version, out)
    } else {
        d.msg.write_to(version, params, now, out)
    }
}

/// Whether packet ids (the inflight queue's, front to back) are in circular order: each one
/// further from the first than the one before.
pub(super) fn ids_in_order(mut ids: impl Iterator<Item = u16>) -> bool {
    let Some(first) = ids.next() else {
        return true;
    };
    let mut last = 0u16;
    ids.all(|id| {
        let d = id.wrapping_sub(first);
        let ok = d > last;
        last = d;
        ok
    })
}

impl ClientState {
    /// Queues a live message for the client. The queue is bounded (see the module's queue
    /// policy): when it is full, the message is dropped for a connected client, and the oldest
    /// queued one makes room for a client that is away. Expired messages are never queued.
    pub fn deliver(&mut self, now: Instant, delivery: Delivery) {
        if delivery.msg.is_expired(now) {
            self.notes
                .push(Note::Dropped(delivery.msg, DropReason::Expired));
            return;
        }
        if self.session.pending.len() >= self.limits.max_pending.max(1) {
            if self.life.attached() {
                self.notes
                    .push(Note::Dropped(delivery.msg, DropReason::QueueFull));
                return;
            }
            if let Some(old) = self.session.pending.pop_front() {
                self.notes
                    .push(Note::Dropped(old.msg, DropReason::QueueFull));
            }
        }
        let mut delivery = delivery;
        if !self.life.attached() || self.unpin_all {
            delivery.msg = delivery.msg.unpinned();
        } else if !delivery.msg.is_owned() && self.pins.get_or_insert_default().add(&delivery.msg) {
            self.pins = None;
            self.unpin_all = true;
            self.unpin_held();
            delivery.msg = delivery.msg.unpinned();
        }
        if self.note_storage {
            self.notes.push(Note::Queued(delivery.clone()));
        }
        self.session.pending.push_back(delivery);
    }

    /// Adds retained messages matched by a SUBSCRIBE to the retained backlog: they are sent
    /// before the queue, as the writer drains and the send quota allows, and are not bounded
    /// by the queue length.
    pub fn deliver_retained(&mut self, retained: impl IntoIterator<Item = Delivery>) {
        self.session.retained.extend(retained);
    }

    /// Messages waiting to be sent: the retained backlog and the queue.
    pub fn queued(&self) -> usize {
        self.session.retained.len() + self.session.pending.len()
    }

    /// The message that goes out next: the retained backlog first, then the queue.
    pub(super) fn next_queued(&self) -> Option<&Delivery> {
        self.session
            .retained
            .front()
            .or_else(|| self.session.pending.front())
    }

    pub(super) fn pop_queued(&mut self) -> Option<Delivery> {
        match self.session.retained.pop_front() {
            Some(d) => Some(d),
            None => {
                let d = self.session.pending.pop_front();
                self.maybe_reset_pins();
                if let (true, Some(d)) = (self.note_storage, &d) {
                    self.notes.push(Note::Dequeued(d.msg.clone()));
                }
                d
            }
        }
    }

    /// Gives back the memory of emptied control queues; the reader calls it once a connection
    /// has been quiet for a while. A `Packet` is over 200 bytes, so even a one-slot queue is
    /// worth giving back on an idle connection, and one that held a few packets (CONNACK,
    /// SUBACK, PINGRESP together) keeps ~1 KiB.
    pub fn release_idle_memory(&mut self) {
        if self.control.is_empty() && self.control.capacity() > 0 {
            self.control = VecDeque::new();
        }
        if self.resend.is_empty() && self.resend.capacity() > 0 {
            self.resend = VecDeque::new();
        }
    }

    /// Whether all there is to send are replies of a quiet connection (CONNACK, PINGRESP, SUBACK,
    /// UNSUBACK, AUTH): no message, no acknowledgement of one, no DISCONNECT.
    pub fn only_replies_to_send(&self) -> bool {
        self.life.reason().is_none()
            && self.resend.is_empty()
            && self.session.retained.is_empty()
            && self.session.pending.is_empty()
            && self.control.iter().all(|p| {
                matches!(
                    p,
                    Packet::ConnAck(_)
                        | Packet::PingResp
                        | Packet::SubAck(_)
                        | Packet::UnsubAck(_)
                        | Packet::Auth(_)
                )
            })
    }

    /// True if there is something to transmit.
    pub fn wants_transmit(&self) -> bool {
        if self.life.reason().is_some() {
            return self.life.disconnect_due();
        }
        if !self.control.is_empty() {
            return true;
        }
        if !self.life.attached() {
            return false;
        }
        if !self.resend.is_empty() {
            return true;
        }
        match self.next_queued() {
            None => false,
            Some(d) => {
                d.qos == QoS::AtMostOnce
                    || self.session.inflight.len() < usize::from(self.limits.send_quota.max(1))
            }
        }
    }

    /// The next thing to write, if any. Control packets go first, then resends of
    /// unacknowledged messages (with DUP), then the retained backlog and the queue as the send
    /// quota allows, in order (a QoS 1/2 message waiting for quota holds back the ones behind
    /// it).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Some(match self.next_transmit(now)? {
            Next::Control => Transmit::Packet(self.control.pop_front()?),
            Next::Publish(delivery, alias) => Transmit::Publish {
                delivery,
                packet_id: None,
                dup: false,
                alias,
            },
            Next::Inflight(i, dup, alias) => {
                let inf = &self.session.inflight[i];
                Transmit::Publish {
                    delivery: inf.delivery.clone(),
                    packet_id: Some(inf.packet_id),
                    dup,
                    alias,
                }
            }
        })
    }

    /// Encodes what [`ClientState::poll_transmit`] would return into `out`, until nothing is
    /// ready or about `budget` bytes were added: the same packets in the same order, without
    /// the per-packet [`Transmit`] (no copy of an inflight delivery; a PUBLISH comes from its
    /// message's shared encoding). A QoS 1/2 PUBLISH larger than the client's maximum packet
    /// size is abandoned, as the caller of `poll_transmit` does; a QoS 0 one is left out. For
    /// callers with no hook that must see each packet (`OnPacketEncode`, `OnQosPublish`).
    pub fn write_transmits(&mut self, now: Instant, out: &mut BytesMut, budget: usize) -> Written {
        let version = self.version();
        let max = self.limits.client_maximum_packet_size as usize;
        let start = out.len();
        let mut w = Written::default();
        while out.len() - start < budget {
            let Some(next) = self.next_transmit(now) else {
                break;
            };
            let at = out.len();
            let (written, abandon) = match &next {
                Next::Control => match self.control.pop_front() {
                    Some(p) => (p.encode(version, out), None),
                    None => break,
                },
                Next::Publish(d, alias) => {
                    let params = d.params(false, None, *alias);
                    (write_publish(d, version, &params, now, out), None)
                }
                Next::Inflight(i, dup, alias) => {
                    let inf = &self.session.inflight[*i];
                    let d = &inf.delivery;
                    let params = d.params(*dup, Some(inf.packet_id), *alias);
                    (
                        write_publish(d, version, &params, now, out),
                        Some(inf.packet_id),
                    )
                }
            };
            let is_publish = !matches!(next, Next::Control);
            match written {
                Ok(n) if is_publish && max > 0 && n > max => {
                    out.truncate(at);
                    if let Some(pid) = abandon {
                        self.abandon(pid);
                    }
                }
                Ok(_) => {
                    w.packets += 1;
                    w.publishes += u64::from(is_publish);
                }
                Err(e) => {
                    out.truncate(at);
                    tracing::debug!(client = %self.client_id, error = %e, "cannot encode packet");
                }
            }
        }
        w
    }

    pub(super) fn next_transmit(&mut self, now: Instant) -> Option<Next> {
        if let Some(reason) = self.life.reason() {
            if !self.life.disconnect_due() {
                return None;
            }
            self.life = match self.life {
                Lifecycle::Away { ended, .. } => Lifecycle::Away {
                    ended,
                    disconnect_due: false,
                },
                _ => Lifecycle::Closed(reason),
            };
            if self.version().is_v5() {
                // A reason string is always allowed on DISCONNECT; it also makes the packet
                // carry a property length, which some clients (rumqttc 0.25) need.
                let properties = DisconnectProperties {
                    reason_string: Some(ByteString::from_static(reason.description())),
                    ..Default::default()
                };
                self.control.push_front(Packet::Disconnect(Disconnect {
                    reason_code: reason,
                    properties,
                }));
                return Some(Next::Control);
            }
            return None;
        }
        if !self.control.is_empty() {
            return Some(Next::Control);
        }
        if !self.life.attached() {
            return None;
        }
        while let Some(pid) = self.resend.pop_front() {
            let Some(i) = self.inflight_index(pid) else {
                continue;
            };
            let inf = &mut self.session.inflight[i];
            inf.resends += 1;
            if inf.stage == Stage::AwaitPubComp {
                self.control.push_back(Packet::PubRel(PubRel {
                    packet_id: pid,
                    reason_code: ReasonCode::Success,
                    properties: Default::default(),
                }));
                return Some(Next::Control);
            }
            let topic = inf.delivery.msg.topic.clone();
            let alias = self.alias_for(&topic);
            return Some(Next::Inflight(i, true, alias));
        }
        loop {
            let front = self.next_queued()?;
            if front.msg.is_expired(now) {
                let d = self.pop_queued()?;
                self.notes.push(Note::Dropped(d.msg, DropReason::Expired));
                continue;
            }
            if front.qos == QoS::AtMostOnce {
                let d = self.pop_queued()?;
                let alias = self.alias_for(&d.msg.topic);
                return Some(Next::Publish(d, alias));
            }
            if self.session.inflight.len() >= usize::from(u16::MAX) {
                // Every packet identifier is in use (the quota may allow no more either).
                self.notes.push(Note::PacketIdExhausted);
                return None;
            }
            if self.session.inflight.len() >= usize::from(self.limits.send_quota.max(1)) {
                return None;
            }
            let Some(pid) = self.next_packet_id() else {
                self.notes.push(Note::PacketIdExhausted);
                return None;
            };
            let d = self.pop_queued()?;
            let stage = if d.qos == QoS::AtLeastOnce {
                Stage::AwaitPubAck
            } else {
                Stage::AwaitPubRec
            };
            let alias = self.alias_for(&d.msg.topic);
            if self.note_storage {
                self.notes.push(Note::InFlight(pid, d.clone()));
            }
            self.session.inflight.push_back(Inflight {
                packet_id: pid,
                delivery: d,
                stage,
                resends: 0,
            });
            return Some(Next::Inflight(
                self.session.inflight.len() - 1,
                false,
                alias,
            ));
        }
    }

    /// The outbound alias for `topic`: known ones are reused (topic omitted), new ones are
    /// assigned while the client's topic alias maximum allows.
    pub(super) fn alias_for(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
        let max = self.limits.client_topic_alias_maximum;
        if max == 0 {
            return None;
        }
        if let Some(&a) = self.out_aliases.get(topic) {
            return Some((a, false));
        }
        let n = self.out_aliases.len();
        if n >= usize::from(max) {
            return None;
        }
        let a = u16::try_from(n + 1).ok()?;
        self.out_aliases.insert(topic.clone(), a);
        Some((a, true))
    }

    /// Abandons an inflight message the client cannot take (e.g. too large for it).
    pub fn abandon(&mut self, packet_id: u16) {
        if let Some(i) = self.inflight_index(packet_id) {
            if let Some(inf) = self.remove_inflight(i) {
                self.notes.push(Note::QosDropped(packet_id));
                self.notes
                    .push(Note::Dropped(inf.delivery.msg, DropReason::TooLarge));
            }
        }
    }

    pub(super) fn remove_inflight(&mut self, i: usize) -> Option<Inflight> {
        let inf = self.session.inflight.remove(i)?;
        if self.session.inflight.is_empty() {
            self.inflight_ordered = true;
            self.maybe_reset_pins();
        }
        Some(inf)
    }

    pub(super) fn next_packet_id(&mut self) -> Option<u16> {
        if self.session.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let s = &mut self.session;
            s.next_packet_id = s.next_packet_id.wrapping_add(1).max(1);
            let pid = s.next_packet_id;
            if !self.packet_id_in_use(pid) {
                return Some(pid);
            }
        }
    }

    /// Whether an inflight message has `pid`. Ids are given in sequence (wrapping, skipping
    /// those in use), so the inflight queue holds them in circular order from its front to its
    /// back; an id outside that span is free without a look at the queue. Only after the id
    /// space wrapped around a message still unacknowledged does a candidate fall inside it.
    pub(super) fn packet_id_in_use(&self, pid: u16) -> bool {
        let q = &self.session.inflight;
        let (Some(front), Some(back)) = (q.front(), q.back()) else {
            return false;
        };
        if !self.inflight_ordered {
            return q.iter().any(|i| i.packet_id == pid);
        }
        let first = front.packet_id;
        pid.wrapping_sub(first) <= back.packet_id.wrapping_sub(first)
            && self.inflight_index(pid).is_some()
    }

    /// Puts back an inflight message of a stored session (see [`crate::store`]): it is sent
    /// again, with DUP, when the client connects.
    pub(crate) fn restore_inflight(&mut self, inflight: Inflight) {
        if self.note_storage {
            // Recorded again: what a store handed back is replaced by what runs now.
            self.notes.push(Note::InFlight(
                inflight.packet_id,
                inflight.delivery.clone(),
            ));
        }
        if let Some(back) = self.session.inflight.back() {
            let first = self.session.inflight[0].packet_id;
            if inflight.packet_id.wrapping_sub(first) <= back.packet_id.wrapping_sub(first) {
                self.inflight_ordered = false;
            }
        }
        self.session.inflight.push_back(inflight);
    }
}

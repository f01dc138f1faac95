//! What a client sends: PUBLISH with its QoS flows (receive maximum, topic aliases, QoS 2
//! duplicates), the acknowledgements of what was sent to it, DISCONNECT.

use super::*;

impl ClientState {
    pub(super) fn handle_disconnect(&mut self, d: Disconnect) -> Option<AppEvent> {
        if let Some(e) = d.properties.session_expiry_interval {
            if self.limits.connect_expiry_zero && e != 0 {
                self.close(ProtocolViolation::SessionExpiryFromZero);
                return None;
            }
            self.session.expiry_interval = e;
        }
        // The client closed: nothing more is sent.
        self.life = Lifecycle::Away {
            ended: Some(d.reason_code),
            disconnect_due: false,
        };
        Some(AppEvent::Disconnect {
            reason: d.reason_code,
        })
    }

    pub(super) fn handle_publish(&mut self, mut p: Publish) -> Option<AppEvent> {
        if p.qos > self.limits.maximum_qos {
            self.close(PolicyRefusal::QoSNotSupported);
            return None;
        }
        if p.retain && !self.limits.retain_available {
            self.close(PolicyRefusal::RetainNotSupported);
            return None;
        }
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.limits.topic_alias_maximum {
                self.close(ProtocolViolation::TopicAliasOutOfRange);
                return None;
            }
            if p.topic.is_empty() {
                match self.in_aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        self.close(ProtocolViolation::UnknownTopicAlias);
                        return None;
                    }
                }
            } else {
                self.in_aliases.insert(alias, p.topic.clone());
            }
            p.properties.topic_alias = None;
        }
        if moco_topic::validate_topic_name(&p.topic).is_err() {
            self.close(ProtocolViolation::TopicNameInvalid);
            return None;
        }
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {}
            QoS::ExactlyOnce => {
                let pid = p.packet_id.unwrap_or(0);
                if self.session.inbound_qos2.contains(&pid) {
                    // A repeated PUBLISH before PUBREL: acknowledge again, do not route again.
                    let properties = moco_codec::AckProperties {
                        user_properties: self.inherited(&p.properties.user_properties),
                        ..Default::default()
                    };
                    self.control.push_back(Packet::PubRec(PubRec {
                        packet_id: pid,
                        reason_code: ReasonCode::Success,
                        properties,
                    }));
                    return None;
                }
                if self.session.inbound_qos2.len() >= usize::from(self.limits.receive_maximum) {
                    self.close(ProtocolViolation::ReceiveMaximumExceeded);
                    return None;
                }
                self.session.inbound_qos2.insert(pid);
            }
        }
        if p.qos != QoS::AtMostOnce {
            let props = self.inherited(&p.properties.user_properties);
            self.ack_props = (!props.is_empty()).then(|| Box::new(props));
        }
        Some(AppEvent::Publish(p))
    }

    /// Acknowledges an inbound QoS 1/2 PUBLISH once the broker has routed (or refused) it.
    pub fn publish_done(&mut self, qos: QoS, packet_id: u16, reason: ReasonCode) {
        let mut properties = moco_codec::AckProperties::default();
        if let Some(p) = self.ack_props.take() {
            properties.user_properties = *p;
        }
        let ack = match qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => Packet::PubAck(PubAck {
                packet_id,
                reason_code: reason,
                properties,
            }),
            QoS::ExactlyOnce => {
                if reason.is_error() {
                    self.session.inbound_qos2.remove(&packet_id);
                } else if self.note_storage {
                    self.notes.push(Note::Qos2Received(packet_id));
                }
                Packet::PubRec(PubRec {
                    packet_id,
                    reason_code: reason,
                    properties,
                })
            }
        };
        match &mut self.held_acks {
            Some(held) => held.push(ack),
            None if self.hold_acks => self.held_acks = Some(Box::new(vec![ack])),
            None => self.control.push_back(ack),
        }
    }

    /// Whether PUBACK / PUBREC wait for [`ClientState::release_acks`] instead of going out
    /// at once: while what their messages changed is being made durable (a session sink's
    /// `durability: sync`). Off by default.
    pub fn set_hold_acks(&mut self, on: bool) {
        self.hold_acks = on;
    }

    /// Whether acknowledgements are held, waiting for [`ClientState::release_acks`].
    pub fn holds_acks(&self) -> bool {
        self.held_acks.is_some()
    }

    /// Sends the held acknowledgements, in the order their PUBLISHes arrived: as they are
    /// once what they acknowledge is durable (`stored` true); otherwise a v5 client gets each
    /// with 0x80 unspecified error (and a QoS 2 id is forgotten, so a resent PUBLISH is
    /// routed again), and a v3 client, whose acknowledgements carry no code, is disconnected.
    pub fn release_acks(&mut self, stored: bool) {
        let Some(held) = self.held_acks.take() else {
            return;
        };
        if !stored && !self.limits.version.is_v5() {
            self.close(CloseReason::NotStored);
            return;
        }
        for mut ack in *held {
            if !stored {
                match &mut ack {
                    Packet::PubAck(a) => a.reason_code = ReasonCode::UnspecifiedError,
                    Packet::PubRec(r) => {
                        r.reason_code = ReasonCode::UnspecifiedError;
                        self.session.inbound_qos2.remove(&r.packet_id);
                    }
                    _ => {}
                }
            }
            self.control.push_back(ack);
        }
    }

    /// Where the inflight message with `packet_id` is. Ids are given in sequence and mostly
    /// acknowledged in order, so its distance from the front's id is tried first; a scan
    /// covers the rest.
    pub(super) fn inflight_index(&self, packet_id: u16) -> Option<usize> {
        let q = &self.session.inflight;
        let guess = usize::from(packet_id.wrapping_sub(q.front()?.packet_id));
        if q.get(guess).is_some_and(|i| i.packet_id == packet_id) {
            return Some(guess);
        }
        q.iter().position(|i| i.packet_id == packet_id)
    }

    pub(super) fn handle_pubrec(&mut self, r: PubRec) {
        let pos = self.inflight_index(r.packet_id);
        match pos {
            Some(i) if self.session.inflight[i].stage == Stage::AwaitPubRec => {
                if r.reason_code.is_error() {
                    self.remove_inflight(i);
                    if self.note_completions {
                        self.notes.push(Note::QosComplete(r.packet_id));
                    }
                } else {
                    self.session.inflight[i].stage = Stage::AwaitPubComp;
                    let properties = moco_codec::AckProperties {
                        user_properties: self.inherited(&r.properties.user_properties),
                        ..Default::default()
                    };
                    self.control.push_back(Packet::PubRel(PubRel {
                        packet_id: r.packet_id,
                        reason_code: ReasonCode::Success,
                        properties,
                    }));
                }
            }
            Some(_) => {
                // PUBREC again after PUBREL was sent: send PUBREL again.
                self.control.push_back(Packet::PubRel(PubRel {
                    packet_id: r.packet_id,
                    reason_code: ReasonCode::Success,
                    properties: Default::default(),
                }));
            }
            None => self.control.push_back(Packet::PubRel(PubRel {
                packet_id: r.packet_id,
                reason_code: ReasonCode::PacketIdentifierNotFound,
                properties: Default::default(),
            })),
        }
    }

    pub(super) fn complete(&mut self, packet_id: u16, stage: Stage) {
        // (Packet ids in flight are distinct.)
        if let Some(i) = self
            .inflight_index(packet_id)
            .filter(|&i| self.session.inflight[i].stage == stage)
        {
            self.remove_inflight(i);
            if self.note_completions {
                self.notes.push(Note::QosComplete(packet_id));
            }
        }
    }

    /// Whether acknowledgements copy the user properties of the packet they answer (mochi's
    /// default, which [`Compatibilities::no_inherited_properties_on_ack`] turns off). Off
    /// unless set.
    ///
    /// [`Compatibilities::no_inherited_properties_on_ack`]: crate::Compatibilities
    pub fn set_inherit_ack_properties(&mut self, on: bool) {
        self.inherit_ack_props = on;
    }

    /// The user properties an acknowledgement of a packet carrying `props` copies: none
    /// unless inherited (v5 only), and none if they could make the acknowledgement larger
    /// than the client's maximum packet size (MQTT-3.4.2-3 and its twins).
    pub(super) fn inherited(
        &self,
        props: &moco_codec::UserProperties,
    ) -> moco_codec::UserProperties {
        if !self.inherit_ack_props || props.is_empty() || !self.version().is_v5() {
            return Vec::new();
        }
        let max = self.limits.client_maximum_packet_size as usize;
        // Fixed header, packet id, reason code, property length: at most 12 bytes.
        let size = 12
            + props
                .iter()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum::<usize>();
        if max > 0 && size > max {
            return Vec::new();
        }
        props.clone()
    }
}

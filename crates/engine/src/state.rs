//! The per-client protocol state machine, sans-IO (in the style of quinn-proto).
//!
//! [`ClientState`] owns everything about one client that is pure protocol: the QoS 1/2 flows
//! in both directions, packet-id allocation, receive-maximum quotas both ways, inbound topic
//! aliases, the bounded outbound queue and the keep-alive deadline. It has no clock and does no
//! I/O: the caller passes `now` to [`ClientState::handle_packet`] and
//! [`ClientState::handle_timeout`], asks [`ClientState::poll_timeout`] when to call again, and
//! drains [`ClientState::poll_transmit`] to get what to write. What needs the broker (routing,
//! subscriptions, authorization) comes back as an [`AppEvent`].
//!
//! The persistent part ([`Session`]) outlives the connection: it moves to the next connection
//! of the same client id when the session is resumed.
//!
//! # Queue policy
//!
//! Messages for a client go through three stages: the **retained backlog**
//! ([`Session::retained`], what a SUBSCRIBE matched in the retained store), the **queue**
//! ([`Session::pending`], live messages) and **inflight** ([`Session::inflight`], QoS 1/2
//! messages sent and not yet acknowledged, at most the send quota: the client's receive
//! maximum capped by the broker's maximum inflight).
//!
//! * A QoS 1/2 message beyond the send quota waits in the queue until an acknowledgement frees
//!   a slot; a QoS 0 message waits until the writer drains. Order is kept: a QoS 1/2 message
//!   waiting for quota holds back the ones behind it.
//! * The queue is bounded by `max_pending` ([`Capabilities::maximum_client_writes_pending`],
//!   like Mosquitto's `max_queued_messages` and EMQX's `max_mqueue_len`). When it is full, a
//!   message for a connected client is dropped, whatever its QoS (the queue keeps what it
//!   has, in order); for a client that is away, the oldest queued message makes room (a
//!   returning device gets the freshest ones). Every drop is a [`Note::Dropped`] with
//!   [`DropReason::QueueFull`]: the broker counts it (`$SYS` messages dropped) and calls
//!   `OnPublishDropped`. A client is never disconnected for a full queue: a subscriber that
//!   reads slowly or not at all only loses its own messages.
//! * Before the queue fills, a subscriber that keeps draining it holds up its QoS 1/2
//!   publishers instead (back-pressure, [`crate::flow`]): when a QoS 1/2 delivery leaves the
//!   queue half full, the publisher's reader waits for it to drain to a quarter, for as long as
//!   it makes progress. Fan-in to a slower subscriber so loses nothing; a subscriber that
//!   makes no progress for [`crate::flow::STALL_AFTER`] is left to drop.
//! * Retained messages sent on SUBSCRIBE do not go through the bounded queue: the SUBSCRIBE
//!   puts references to them (no copies) in the backlog, and [`ClientState::poll_transmit`]
//!   takes them from there, before the queue, as fast as the writer drains and the send quota
//!   allows. A subscription matching 100 000 retained messages gets all of them; the backlog
//!   is bounded by the retained store itself.
//!
//! [`Capabilities::maximum_client_writes_pending`]: crate::Capabilities::maximum_client_writes_pending

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use moco_codec::{
    Auth, Disconnect, DisconnectProperties, Packet, ProtocolVersion, PubAck, PubComp, PubRec,
    PubRel, Publish, QoS, ReasonCode, Subscribe, Unsubscribe,
};

use crate::hooks::DropReason;
use crate::message::{Delivery, DeliveryParams, Message};

/// A QoS 1/2 message sent to the client and not yet fully acknowledged.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// Its packet identifier.
    pub packet_id: u16,
    /// The delivery.
    pub delivery: Delivery,
    /// Where the flow stands.
    pub stage: Stage,
    /// How many times it was sent before the last send.
    pub resends: u32,
}

/// Stage of an outbound QoS flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// QoS 1, PUBLISH sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2, PUBLISH sent, waiting for PUBREC.
    AwaitPubRec,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// The part of a client that persists across connections (MQTT "session state").
#[derive(Debug, Default)]
pub struct Session {
    /// Subscriptions by filter, as stored in the trie (for resumption and clean-up).
    pub subscriptions: HashMap<ByteString, moco_topic::SubscriptionOptions>,
    /// Outbound QoS 1/2 messages not yet completed, in the order first sent.
    pub inflight: VecDeque<Inflight>,
    /// Messages waiting to be sent (the bounded outbound queue; the offline queue when the
    /// client is away).
    pub pending: VecDeque<Delivery>,
    /// Retained messages matched by a SUBSCRIBE and not sent yet; sent before `pending`, with
    /// flow control, and not bounded by the queue length (see the module's queue policy).
    pub retained: VecDeque<Delivery>,
    /// Inbound QoS 2 packet ids whose PUBREC was sent and PUBREL not yet received.
    pub inbound_qos2: HashSet<u16, moco_topic::SeededState>,
    /// Session expiry interval in seconds (0 = ends with the connection).
    pub expiry_interval: u32,
    /// The subscriptions (keys of `subscriptions`) on which an ACL hook may deny a delivery:
    /// each message to this client is checked while there is one (see
    /// [`Hook::acl_may_deny_within`](crate::Hook::acl_may_deny_within)).
    pub acl_checked: HashSet<ByteString, moco_topic::SeededState>,
    next_packet_id: u16,
}

impl Session {
    /// A fresh session.
    pub fn new(expiry_interval: u32) -> Self {
        Session {
            expiry_interval,
            ..Default::default()
        }
    }
}

/// Limits and flags of one connection, fixed at CONNECT.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Protocol level of the client.
    pub version: ProtocolVersion,
    /// Effective keep-alive in seconds (0 = none).
    pub keep_alive: u16,
    /// How many QoS 1/2 messages may be in flight to the client (its receive maximum, capped
    /// by the broker's maximum inflight).
    pub send_quota: u16,
    /// The broker's receive maximum (inbound quota).
    pub receive_maximum: u16,
    /// Highest inbound topic alias accepted (0 = none).
    pub topic_alias_maximum: u16,
    /// Largest packet the client accepts (0 = no limit).
    pub client_maximum_packet_size: u32,
    /// Highest QoS accepted from the client.
    pub maximum_qos: QoS,
    /// Whether the client may publish retained messages.
    pub retain_available: bool,
    /// Length of the bounded outbound queue.
    pub max_pending: usize,
    /// Whether the session expiry was zero at CONNECT (DISCONNECT may not raise it then).
    pub connect_expiry_zero: bool,
    /// Highest topic alias the client accepts from the broker (0 = none; v5 only).
    pub client_topic_alias_maximum: u16,
}

/// What the broker must act on after [`ClientState::handle_packet`].
#[derive(Debug)]
pub enum AppEvent {
    /// A validated, de-aliased PUBLISH to authorize and route; then call
    /// [`ClientState::publish_done`] for QoS 1/2.
    Publish(Publish),
    /// A SUBSCRIBE to process; answer with a SUBACK through [`ClientState::send`].
    Subscribe(Subscribe),
    /// An UNSUBSCRIBE to process; answer with an UNSUBACK.
    Unsubscribe(Unsubscribe),
    /// An AUTH packet (enhanced authentication / re-authentication).
    Auth(Auth),
    /// The client sent DISCONNECT; the connection is over.
    Disconnect {
        /// The client's reason code (0x04 asks for the will to be published).
        reason: ReasonCode,
    },
}

/// Something the broker should tell the hooks about, noted by the state machine.
#[derive(Debug, Clone)]
pub enum Note {
    /// A message for this client was dropped.
    Dropped(Arc<Message>, DropReason),
    /// The outbound QoS 1/2 flow of this packet id completed.
    QosComplete(u16),
    /// The outbound QoS 1/2 flow of this packet id was abandoned.
    QosDropped(u16),
    /// No packet identifier was free.
    PacketIdExhausted,
}

/// Something to write to the client.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, moved through one reused batch Vec
pub enum Transmit {
    /// A control packet.
    Packet(Packet),
    /// A PUBLISH of a queued message.
    Publish {
        /// The delivery.
        delivery: Delivery,
        /// Packet id for QoS 1/2.
        packet_id: Option<u16>,
        /// DUP flag (a resend).
        dup: bool,
        /// Outbound topic alias and whether the topic must still be sent with it (first use).
        alias: Option<(u16, bool)>,
    },
}

/// Encodes one delivery's PUBLISH: from the message's shared bytes, or straight into `out`
/// when this delivery is the message's only holder (one subscriber: nobody would reuse a
/// shared encoding, and making it costs an allocation).
fn write_publish(
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
struct Pins {
    /// Bytes of the held messages' own topics and payloads.
    bytes: usize,
    /// Buffer memory they may keep alive (an estimate).
    pinned: usize,
    /// The buffers seen last (most recent first), as the address of the first message seen
    /// in each and its size.
    recent: [(usize, usize); PIN_RECENT],
}

/// The buffer size [`Pins`] assumes when a message does not know its own: the largest read.
const PIN_REGION: usize = 64 * 1024;
/// How many recent buffers [`Pins`] remembers.
const PIN_RECENT: usize = 8;
/// Buffer memory a client's held messages may keep alive regardless of their size.
const PIN_SLACK: usize = 512 * 1024;
/// ... and beyond that, how many times their own bytes.
const PIN_RATIO: usize = 4;

impl Pins {
    /// Counts a held message that shares a buffer; true when the bound is passed.
    fn add(&mut self, m: &Message) -> bool {
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

/// Whether packet ids (the inflight queue's, front to back) are in circular order: each one
/// further from the first than the one before.
fn ids_in_order(mut ids: impl Iterator<Item = u16>) -> bool {
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

/// What [`ClientState::write_transmits`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Packets of any type.
    pub packets: u64,
    /// PUBLISH packets among them.
    pub publishes: u64,
}

/// The next thing to send, before it becomes a [`Transmit`] or bytes. Small: a control
/// packet stays at the front of the control queue until it is taken.
enum Next {
    /// The packet at the front of the control queue.
    Control,
    /// A QoS 0 message taken from the queue, with its outbound alias.
    Publish(Delivery, Option<(u16, bool)>),
    /// The inflight message at this index, with DUP and its outbound alias.
    Inflight(usize, bool, Option<(u16, bool)>),
}

/// The sans-IO protocol state of one connected client.
#[derive(Debug)]
pub struct ClientState {
    /// The client id.
    pub client_id: ByteString,
    /// Connection limits.
    pub limits: ConnLimits,
    /// The persistent session.
    pub session: Session,
    last_received: Instant,
    in_aliases: HashMap<u16, ByteString>,
    out_aliases: HashMap<ByteString, u16>,
    /// `session.inflight` is in the order its ids were given (see
    /// [`ClientState::packet_id_in_use`]); false only after inflight messages were restored in
    /// another order, until it is empty again.
    inflight_ordered: bool,
    /// What held messages may keep alive of read buffers; boxed and made only while the
    /// client holds messages that share buffers (not part of an idle client).
    pins: Option<Box<Pins>>,
    /// Past the [`Pins`] bound: every message queued until the client holds nothing is copied.
    unpin_all: bool,
    control: VecDeque<Packet>,
    resend: VecDeque<u16>,
    notes: Vec<Note>,
    /// Whether completed QoS flows are noted (someone listens to `OnQosComplete`).
    note_completions: bool,
    /// Whether a v5 acknowledgement carries the user properties of the packet it answers
    /// (mochi's default; see [`Compatibilities`](crate::Compatibilities)).
    inherit_ack_props: bool,
    /// The user properties of the PUBLISH being routed, for its PUBACK / PUBREC.
    ack_props: Option<Box<moco_codec::UserProperties>>,
    close: Option<ReasonCode>,
    disconnect_queued: bool,
    connected: bool,
}

impl ClientState {
    /// A state for a client that connected at `now` with `session` (fresh or resumed).
    /// Unacknowledged outbound messages of a resumed session are resent first, with DUP.
    pub fn new(client_id: ByteString, limits: ConnLimits, session: Session, now: Instant) -> Self {
        let resend = session.inflight.iter().map(|i| i.packet_id).collect();
        let inflight_ordered = ids_in_order(session.inflight.iter().map(|i| i.packet_id));
        ClientState {
            client_id,
            limits,
            session,
            last_received: now,
            in_aliases: HashMap::new(),
            out_aliases: HashMap::new(),
            inflight_ordered,
            pins: None,
            unpin_all: false,
            // One slot: a `Packet` is over 200 bytes and a queue's first growth takes 4, while
            // most connections queue one control packet at a time (CONNACK, an ack, PINGRESP).
            control: VecDeque::with_capacity(1),
            resend,
            notes: Vec::new(),
            note_completions: true,
            inherit_ack_props: false,
            ack_props: None,
            close: None,
            disconnect_queued: false,
            connected: true,
        }
    }

    /// The protocol level.
    #[inline]
    pub fn version(&self) -> ProtocolVersion {
        self.limits.version
    }

    /// True while the connection is up (not closing).
    #[inline]
    pub fn is_connected(&self) -> bool {
        self.connected && self.close.is_none()
    }

    /// The reason the connection is closing, if it is.
    #[inline]
    pub fn close_reason(&self) -> Option<ReasonCode> {
        self.close
    }

    /// Copies every held message (queued or inflight) out of the read buffer it shares.
    fn unpin_held(&mut self) {
        let s = &mut self.session;
        for d in s.pending.iter_mut() {
            d.msg = d.msg.unpinned();
        }
        for i in s.inflight.iter_mut() {
            i.delivery.msg = i.delivery.msg.unpinned();
        }
    }

    /// The client holds no message any more: start counting [`Pins`] afresh.
    fn maybe_reset_pins(&mut self) {
        if self.session.pending.is_empty() && self.session.inflight.is_empty() {
            self.pins = None;
            self.unpin_all = false;
        }
    }

    /// Marks the connection as gone (the transport closed); the session stays, and its
    /// messages, which may now wait for long, stop sharing their publishers' read buffers.
    pub fn detach(&mut self) {
        self.connected = false;
        self.unpin_held();
    }

    /// Closes the connection with `reason`: for v5 a DISCONNECT carrying it is the next and
    /// last thing [`ClientState::poll_transmit`] returns; for v3 the connection just closes.
    pub fn close(&mut self, reason: ReasonCode) {
        if self.close.is_none() {
            self.close = Some(reason);
        }
    }

    /// Queues a control packet (CONNACK, SUBACK, UNSUBACK, AUTH, ...).
    pub fn send(&mut self, packet: Packet) {
        self.control.push_back(packet);
    }

    /// Whether [`Note::QosComplete`] is noted (the default). Nobody may listen to completions,
    /// and noting one per acknowledgement costs an allocation per batch of them.
    pub fn set_note_completions(&mut self, on: bool) {
        self.note_completions = on;
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
    fn inherited(&self, props: &moco_codec::UserProperties) -> moco_codec::UserProperties {
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

    /// Takes the notes (drops, completed and abandoned flows) since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// Handles one packet from the client. Protocol violations close the connection with the
    /// right reason code; what needs the broker comes back as an [`AppEvent`].
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Option<AppEvent> {
        if self.close.is_some() {
            return None;
        }
        self.last_received = now;
        match packet {
            Packet::Publish(p) => self.handle_publish(p),
            Packet::PubAck(a) => {
                self.complete(a.packet_id, Stage::AwaitPubAck);
                None
            }
            Packet::PubRec(r) => {
                self.handle_pubrec(r);
                None
            }
            Packet::PubRel(r) => {
                let code = if self.session.inbound_qos2.remove(&r.packet_id) {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                let properties = moco_codec::AckProperties {
                    user_properties: self.inherited(&r.properties.user_properties),
                    ..Default::default()
                };
                self.control.push_back(Packet::PubComp(PubComp {
                    packet_id: r.packet_id,
                    reason_code: code,
                    properties,
                }));
                None
            }
            Packet::PubComp(c) => {
                self.complete(c.packet_id, Stage::AwaitPubComp);
                None
            }
            Packet::Subscribe(s) => Some(AppEvent::Subscribe(s)),
            Packet::Unsubscribe(u) => Some(AppEvent::Unsubscribe(u)),
            Packet::PingReq => {
                self.control.push_back(Packet::PingResp);
                None
            }
            Packet::Disconnect(d) => self.handle_disconnect(d),
            Packet::Auth(a) if self.version().is_v5() => Some(AppEvent::Auth(a)),
            // CONNECT twice, or server-to-client packets.
            _ => {
                self.close(ReasonCode::ProtocolError);
                None
            }
        }
    }

    fn handle_disconnect(&mut self, d: Disconnect) -> Option<AppEvent> {
        if let Some(e) = d.properties.session_expiry_interval {
            if self.limits.connect_expiry_zero && e != 0 {
                self.close(ReasonCode::ProtocolError);
                return None;
            }
            self.session.expiry_interval = e;
        }
        self.connected = false;
        self.close = Some(d.reason_code);
        // The client closed: nothing more is sent.
        self.disconnect_queued = true;
        Some(AppEvent::Disconnect {
            reason: d.reason_code,
        })
    }

    fn handle_publish(&mut self, mut p: Publish) -> Option<AppEvent> {
        if p.qos > self.limits.maximum_qos {
            self.close(ReasonCode::QoSNotSupported);
            return None;
        }
        if p.retain && !self.limits.retain_available {
            self.close(ReasonCode::RetainNotSupported);
            return None;
        }
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.limits.topic_alias_maximum {
                self.close(ReasonCode::TopicAliasInvalid);
                return None;
            }
            if p.topic.is_empty() {
                match self.in_aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        self.close(ReasonCode::ProtocolError);
                        return None;
                    }
                }
            } else {
                self.in_aliases.insert(alias, p.topic.clone());
            }
            p.properties.topic_alias = None;
        }
        if moco_topic::validate_topic_name(&p.topic).is_err() {
            self.close(ReasonCode::TopicNameInvalid);
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
                    self.close(ReasonCode::ReceiveMaximumExceeded);
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
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.control.push_back(Packet::PubAck(PubAck {
                packet_id,
                reason_code: reason,
                properties,
            })),
            QoS::ExactlyOnce => {
                if reason.is_error() {
                    self.session.inbound_qos2.remove(&packet_id);
                }
                self.control.push_back(Packet::PubRec(PubRec {
                    packet_id,
                    reason_code: reason,
                    properties,
                }));
            }
        }
    }

    /// Where the inflight message with `packet_id` is. Ids are given in sequence and mostly
    /// acknowledged in order, so its distance from the front's id is tried first; a scan
    /// covers the rest.
    fn inflight_index(&self, packet_id: u16) -> Option<usize> {
        let q = &self.session.inflight;
        let guess = usize::from(packet_id.wrapping_sub(q.front()?.packet_id));
        if q.get(guess).is_some_and(|i| i.packet_id == packet_id) {
            return Some(guess);
        }
        q.iter().position(|i| i.packet_id == packet_id)
    }

    fn handle_pubrec(&mut self, r: PubRec) {
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

    fn complete(&mut self, packet_id: u16, stage: Stage) {
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
            if self.connected {
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
        if !self.connected || self.unpin_all {
            delivery.msg = delivery.msg.unpinned();
        } else if !delivery.msg.is_owned() && self.pins.get_or_insert_default().add(&delivery.msg) {
            self.pins = None;
            self.unpin_all = true;
            self.unpin_held();
            delivery.msg = delivery.msg.unpinned();
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
    fn next_queued(&self) -> Option<&Delivery> {
        self.session
            .retained
            .front()
            .or_else(|| self.session.pending.front())
    }

    fn pop_queued(&mut self) -> Option<Delivery> {
        match self.session.retained.pop_front() {
            Some(d) => Some(d),
            None => {
                let d = self.session.pending.pop_front();
                self.maybe_reset_pins();
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
        self.close.is_none()
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
        if self.close.is_some() {
            return !self.disconnect_queued;
        }
        if !self.control.is_empty() {
            return true;
        }
        if !self.connected {
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

    fn next_transmit(&mut self, now: Instant) -> Option<Next> {
        if let Some(reason) = self.close {
            if self.disconnect_queued {
                return None;
            }
            self.disconnect_queued = true;
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
        if !self.connected {
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
    fn alias_for(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
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

    fn remove_inflight(&mut self, i: usize) -> Option<Inflight> {
        let inf = self.session.inflight.remove(i)?;
        if self.session.inflight.is_empty() {
            self.inflight_ordered = true;
            self.maybe_reset_pins();
        }
        Some(inf)
    }

    fn next_packet_id(&mut self) -> Option<u16> {
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
    fn packet_id_in_use(&self, pid: u16) -> bool {
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
        if let Some(back) = self.session.inflight.back() {
            let first = self.session.inflight[0].packet_id;
            if inflight.packet_id.wrapping_sub(first) <= back.packet_id.wrapping_sub(first) {
                self.inflight_ordered = false;
            }
        }
        self.session.inflight.push_back(inflight);
    }

    /// When [`ClientState::handle_timeout`] must next be called (the keep-alive deadline:
    /// 1.5 times the keep-alive after the last packet received).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.is_connected() || self.limits.keep_alive == 0 {
            return None;
        }
        Some(self.last_received + Duration::from_millis(u64::from(self.limits.keep_alive) * 1500))
    }

    /// Handles the passage of time: closes with 0x8D when the keep-alive deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.close(ReasonCode::KeepAliveTimeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use moco_codec::PublishProperties;

    fn limits(version: ProtocolVersion) -> ConnLimits {
        ConnLimits {
            version,
            keep_alive: 10,
            send_quota: 2,
            receive_maximum: 2,
            topic_alias_maximum: 4,
            client_maximum_packet_size: 0,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            max_pending: 3,
            connect_expiry_zero: false,
            client_topic_alias_maximum: 0,
        }
    }

    /// v5 limits with the largest send quota and a queue that never fills in a test.
    fn roomy_limits() -> ConnLimits {
        let mut l = limits(ProtocolVersion::V5);
        l.send_quota = u16::MAX;
        l.max_pending = 100_000;
        l
    }

    fn state(now: Instant) -> ClientState {
        ClientState::new(
            "c".into(),
            limits(ProtocolVersion::V5),
            Session::new(60),
            now,
        )
    }

    fn publish(topic: &str, qos: QoS, pid: Option<u16>) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: pid,
            payload: Bytes::from_static(b"x"),
            properties: PublishProperties::default(),
        }
    }

    fn delivery(now: Instant, qos: QoS, expiry: Option<u32>) -> Delivery {
        let mut p = publish("t", qos, None);
        p.properties.message_expiry_interval = expiry;
        Delivery {
            msg: Arc::new(Message::from_publish(&p, None, now, 0)),
            qos,
            retain: false,
            sub_ids: Vec::new(),
        }
    }

    fn dropped(st: &mut ClientState) -> Vec<DropReason> {
        st.take_notes()
            .into_iter()
            .filter_map(|n| match n {
                Note::Dropped(_, r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn drain(st: &mut ClientState, now: Instant) -> Vec<Transmit> {
        std::iter::from_fn(|| st.poll_transmit(now)).collect()
    }

    fn reason_of(t: &Transmit) -> Option<ReasonCode> {
        match t {
            Transmit::Packet(Packet::Disconnect(d)) => Some(d.reason_code),
            _ => None,
        }
    }

    #[test]
    fn keep_alive_deadline_is_one_and_a_half_times() {
        let t0 = Instant::now();
        let mut st = state(t0);
        assert_eq!(st.poll_timeout(), Some(t0 + Duration::from_secs(15)));
        st.handle_timeout(t0 + Duration::from_secs(14));
        assert!(st.is_connected());
        // A packet moves the deadline.
        st.handle_packet(t0 + Duration::from_secs(14), Packet::PingReq);
        assert_eq!(st.poll_timeout(), Some(t0 + Duration::from_secs(29)));
        st.handle_timeout(t0 + Duration::from_secs(29));
        assert_eq!(st.close_reason(), Some(ReasonCode::KeepAliveTimeout));
        let out = drain(&mut st, t0 + Duration::from_secs(29));
        // Once closing, only the DISCONNECT goes out, and only once.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(reason_of(&out[0]), Some(ReasonCode::KeepAliveTimeout));
        assert!(st.poll_transmit(t0).is_none());
    }

    #[test]
    fn write_transmits_writes_what_poll_transmit_returns() {
        // Control packets, QoS 0 and QoS 1 messages, quota-limited, then resends with DUP after
        // a reconnect: the direct encoding and poll_transmit + encode give the same bytes.
        fn load(st: &mut ClientState, t0: Instant) {
            st.send(Packet::PingResp);
            st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
            for _ in 0..3 {
                st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
            }
        }
        fn by_poll(st: &mut ClientState, t0: Instant) -> BytesMut {
            let mut out = BytesMut::new();
            for t in drain(st, t0) {
                match t {
                    Transmit::Packet(p) => {
                        p.encode(ProtocolVersion::V5, &mut out).unwrap();
                    }
                    Transmit::Publish {
                        delivery,
                        packet_id,
                        dup,
                        alias,
                    } => {
                        let params = delivery.params(dup, packet_id, alias);
                        delivery
                            .msg
                            .write_to(ProtocolVersion::V5, &params, t0, &mut out)
                            .unwrap();
                    }
                }
            }
            out
        }
        let t0 = Instant::now();
        let (mut a, mut b) = (state(t0), state(t0));
        load(&mut a, t0);
        load(&mut b, t0);
        let want = by_poll(&mut a, t0);
        let mut got = BytesMut::new();
        let w = b.write_transmits(t0, &mut got, usize::MAX);
        assert_eq!(got, want);
        // PINGRESP, one QoS 0, two QoS 1 (send quota 2).
        assert_eq!(
            w,
            Written {
                packets: 4,
                publishes: 3
            }
        );
        let resume = |st: &mut ClientState| {
            st.detach();
            let session = std::mem::take(&mut st.session);
            ClientState::new("c".into(), limits(ProtocolVersion::V5), session, t0)
        };
        let (mut a, mut b) = (resume(&mut a), resume(&mut b));
        let want = by_poll(&mut a, t0);
        let mut got = BytesMut::new();
        b.write_transmits(t0, &mut got, usize::MAX);
        assert_eq!(got, want);
        assert_eq!(got[0] & 0x08, 0x08, "a resend carries DUP");
        // A budget stops the batch early; the rest follows on the next call.
        let mut st = state(t0);
        for _ in 0..3 {
            st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
        }
        let mut out = BytesMut::new();
        assert_eq!(st.write_transmits(t0, &mut out, 1).publishes, 1);
        assert_eq!(st.write_transmits(t0, &mut out, usize::MAX).publishes, 2);
    }

    #[test]
    fn packet_ids_stay_unique_with_acks_out_of_order() {
        let t0 = Instant::now();
        let mut l = limits(ProtocolVersion::V5);
        l.send_quota = 100;
        l.max_pending = 1000;
        let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
        st.set_note_completions(false);
        let mut in_use = std::collections::BTreeSet::new();
        for round in 0..50u16 {
            for _ in 0..40 {
                st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
            }
            for t in drain(&mut st, t0) {
                let Transmit::Publish {
                    packet_id: Some(p), ..
                } = t
                else {
                    panic!("{t:?}")
                };
                assert!(in_use.insert(p), "packet id {p} given twice");
            }
            // Acknowledge every other one, newest first; the rest stay in flight a while.
            let acks: Vec<u16> = in_use.iter().rev().step_by(2).copied().collect();
            for p in acks {
                st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
                in_use.remove(&p);
            }
            if round % 10 == 9 {
                for p in std::mem::take(&mut in_use) {
                    st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
                }
            }
            assert_eq!(st.session.inflight.len(), in_use.len());
        }
        // Completions were not noted: nobody listens.
        assert!(st.take_notes().is_empty());
        let mut st = state(t0);
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        drain(&mut st, t0);
        st.handle_packet(t0, Packet::PubAck(PubAck::new(1)));
        assert!(matches!(st.take_notes()[..], [Note::QosComplete(1)]));
    }

    #[test]
    fn v3_close_sends_nothing() {
        let t0 = Instant::now();
        let mut st = ClientState::new(
            "c".into(),
            limits(ProtocolVersion::V311),
            Session::new(0),
            t0,
        );
        st.handle_timeout(t0 + Duration::from_secs(16));
        assert_eq!(st.close_reason(), Some(ReasonCode::KeepAliveTimeout));
        assert!(drain(&mut st, t0).is_empty());
    }

    #[test]
    fn outbound_quota_packet_ids_and_acks() {
        let t0 = Instant::now();
        let mut st = state(t0);
        for _ in 0..3 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        let out = drain(&mut st, t0);
        let ids: Vec<_> = out
            .iter()
            .map(|t| match t {
                Transmit::Publish { packet_id, .. } => packet_id.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        // Send quota 2: the third waits.
        assert_eq!(ids, vec![1, 2]);
        assert!(!st.wants_transmit());
        st.handle_packet(t0, Packet::PubAck(PubAck::new(1)));
        assert!(st.wants_transmit());
        let out = drain(&mut st, t0);
        assert!(matches!(
            out[..],
            [Transmit::Publish {
                packet_id: Some(3),
                dup: false,
                ..
            }]
        ));
    }

    #[test]
    fn qos2_outbound_flow_and_resend_with_dup() {
        let t0 = Instant::now();
        let mut st = state(t0);
        st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
        st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
        assert_eq!(drain(&mut st, t0).len(), 2);
        st.handle_packet(t0, Packet::PubRec(PubRec::new(1)));
        let out = drain(&mut st, t0);
        assert!(matches!(&out[..], [Transmit::Packet(Packet::PubRel(r))] if r.packet_id == 1));
        // Connection lost; the session moves to a new connection.
        st.detach();
        let session = std::mem::take(&mut st.session);
        let mut st2 = ClientState::new("c".into(), limits(ProtocolVersion::V5), session, t0);
        let out = drain(&mut st2, t0);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Transmit::Packet(Packet::PubRel(r)) if r.packet_id == 1));
        assert!(matches!(
            &out[1],
            Transmit::Publish {
                packet_id: Some(2),
                dup: true,
                ..
            }
        ));
        st2.handle_packet(t0, Packet::PubComp(PubComp::new(1)));
        st2.handle_packet(t0, Packet::PubRec(PubRec::new(2)));
        st2.handle_packet(t0, Packet::PubComp(PubComp::new(2)));
        assert!(st2.session.inflight.is_empty());
    }

    #[test]
    fn inbound_qos2_duplicate_is_reacknowledged_not_rerouted() {
        let t0 = Instant::now();
        let mut st = state(t0);
        let ev = st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(7))));
        assert!(matches!(ev, Some(AppEvent::Publish(_))));
        st.publish_done(QoS::ExactlyOnce, 7, ReasonCode::Success);
        let again = st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(7))));
        assert!(again.is_none());
        let out = drain(&mut st, t0);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|t| matches!(t, Transmit::Packet(Packet::PubRec(r)) if r.packet_id == 7)));
        st.handle_packet(t0, Packet::PubRel(PubRel::new(7)));
        let out = drain(&mut st, t0);
        assert!(
            matches!(&out[..], [Transmit::Packet(Packet::PubComp(c))] if c.reason_code == ReasonCode::Success)
        );
        // Unknown PUBREL: PUBCOMP 0x92.
        st.handle_packet(t0, Packet::PubRel(PubRel::new(8)));
        let out = drain(&mut st, t0);
        assert!(
            matches!(&out[..], [Transmit::Packet(Packet::PubComp(c))] if c.reason_code == ReasonCode::PacketIdentifierNotFound)
        );
    }

    #[test]
    fn inbound_receive_maximum_exceeded() {
        let t0 = Instant::now();
        let mut st = state(t0);
        for pid in 1..=2 {
            assert!(st
                .handle_packet(
                    t0,
                    Packet::Publish(publish("a", QoS::ExactlyOnce, Some(pid)))
                )
                .is_some());
        }
        st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(3))));
        assert_eq!(st.close_reason(), Some(ReasonCode::ReceiveMaximumExceeded));
    }

    #[test]
    fn inbound_topic_aliases() {
        let t0 = Instant::now();
        let mut st = state(t0);
        let mut p = publish("long/topic", QoS::AtMostOnce, None);
        p.properties.topic_alias = Some(3);
        assert!(st.handle_packet(t0, Packet::Publish(p)).is_some());
        let mut p = publish("", QoS::AtMostOnce, None);
        p.properties.topic_alias = Some(3);
        match st.handle_packet(t0, Packet::Publish(p)) {
            Some(AppEvent::Publish(p)) => {
                assert_eq!(&*p.topic, "long/topic");
                assert_eq!(p.properties.topic_alias, None);
            }
            other => panic!("{other:?}"),
        }
        // Unknown alias with empty topic: protocol error.
        let mut p = publish("", QoS::AtMostOnce, None);
        p.properties.topic_alias = Some(2);
        st.handle_packet(t0, Packet::Publish(p));
        assert_eq!(st.close_reason(), Some(ReasonCode::ProtocolError));
        // Alias above the maximum: 0x94.
        let mut st = state(t0);
        let mut p = publish("a", QoS::AtMostOnce, None);
        p.properties.topic_alias = Some(5);
        st.handle_packet(t0, Packet::Publish(p));
        assert_eq!(st.close_reason(), Some(ReasonCode::TopicAliasInvalid));
    }

    #[test]
    fn qos_above_maximum_is_refused_with_9b() {
        let t0 = Instant::now();
        let mut l = limits(ProtocolVersion::V5);
        l.maximum_qos = QoS::AtLeastOnce;
        let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
        st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(1))));
        assert_eq!(st.close_reason(), Some(ReasonCode::QoSNotSupported));
    }

    #[test]
    fn bounded_queue_drops_new_messages_and_evicts_oldest_offline() {
        let t0 = Instant::now();
        let mut st = state(t0);
        for _ in 0..3 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
        st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
        assert_eq!(st.session.pending.len(), 3);
        assert!(st.session.pending.iter().all(|d| d.qos == QoS::AtLeastOnce));
        assert_eq!(dropped(&mut st).len(), 2);
        assert!(st.is_connected());
        // Offline: the oldest makes room, whatever the QoS.
        st.detach();
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
        assert_eq!(st.session.pending.len(), 3);
        assert_eq!(st.session.pending.back().unwrap().qos, QoS::AtMostOnce);
        assert_eq!(dropped(&mut st)[0], DropReason::QueueFull);
    }

    #[test]
    fn qos1_beyond_the_quota_waits_and_past_the_queue_is_dropped_not_disconnected() {
        let t0 = Instant::now();
        let mut st = state(t0);
        // Send quota 2, queue 3: two go out, three wait, the sixth is dropped.
        for _ in 0..6 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
            let _ = drain(&mut st, t0);
        }
        assert!(st.is_connected(), "{:?}", st.close_reason());
        assert_eq!(st.session.inflight.len(), 2);
        assert_eq!(st.session.pending.len(), 3);
        assert_eq!(dropped(&mut st), vec![DropReason::QueueFull]);
        // Every acknowledgement lets one more out, in order, until all five were sent.
        let mut sent = 2;
        let mut pid = 1;
        while let Some(p) = st.session.inflight.front().map(|i| i.packet_id) {
            assert_eq!(p, pid);
            pid += 1;
            st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
            sent += drain(&mut st, t0).len();
        }
        assert_eq!(sent, 5);
        assert!(st.session.pending.is_empty() && st.is_connected());
    }

    #[test]
    fn retained_backlog_is_not_bounded_by_the_queue_and_flows_with_the_quota() {
        // Virtual time: a client with send quota 2 and a queue of 3 subscribes to 20 000
        // retained QoS 1 messages and acknowledges as they come, 10 ms apart; live messages
        // published meanwhile wait behind the backlog.
        let t0 = Instant::now();
        let mut st = state(t0);
        let n = 20_000;
        st.deliver_retained((0..n).map(|_| delivery(t0, QoS::AtLeastOnce, None)));
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
        assert_eq!(st.queued(), n + 1);
        let mut now = t0;
        let mut got = 0;
        let mut live = 0;
        loop {
            let out = drain(&mut st, now);
            if out.is_empty() {
                break;
            }
            for t in out {
                match t {
                    Transmit::Publish {
                        delivery,
                        packet_id: Some(pid),
                        ..
                    } => {
                        assert!(live == 0, "a live message overtook the retained ones");
                        assert_eq!(delivery.qos, QoS::AtLeastOnce);
                        got += 1;
                        now += Duration::from_millis(10);
                        st.handle_packet(now, Packet::PubAck(PubAck::new(pid)));
                    }
                    Transmit::Publish {
                        packet_id: None, ..
                    } => live += 1,
                    other => panic!("{other:?}"),
                }
            }
            // Never more in flight than the quota.
            assert!(st.session.inflight.len() <= 2);
        }
        assert_eq!((got, live), (n, 1));
        assert!(dropped(&mut st).is_empty());
        assert!(st.is_connected());
    }

    #[test]
    fn expired_messages_are_never_sent_and_expiry_counts_down() {
        let t0 = Instant::now();
        let mut st = state(t0);
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, Some(5)));
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, Some(60)));
        let t = t0 + Duration::from_secs(10);
        let out = drain(&mut st, t);
        assert_eq!(out.len(), 1);
        match &out[0] {
            Transmit::Publish { delivery, .. } => {
                assert_eq!(delivery.msg.remaining_expiry(t), Some(50));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(dropped(&mut st)[0], DropReason::Expired);
    }

    #[test]
    fn disconnect_cannot_raise_zero_session_expiry() {
        let t0 = Instant::now();
        let mut l = limits(ProtocolVersion::V5);
        l.connect_expiry_zero = true;
        let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
        let mut d = Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties::default(),
        };
        d.properties.session_expiry_interval = Some(30);
        st.handle_packet(t0, Packet::Disconnect(d));
        assert_eq!(st.close_reason(), Some(ReasonCode::ProtocolError));
    }

    /// A delivery of a message whose payload is a slice of `buf` at `at`.
    fn delivery_from(buf: &Bytes, at: usize, len: usize, qos: QoS) -> Delivery {
        let mut p = publish("t", qos, None);
        p.payload = buf.slice(at..at + len);
        Delivery {
            msg: Arc::new(Message::from_publish(&p, None, Instant::now(), 0)),
            qos,
            retain: false,
            sub_ids: Vec::new(),
        }
    }

    /// Held messages keep sharing their publishers' read buffers while they are many out of
    /// few buffers; a few out of each of many buffers get bytes of their own past the bound, as
    /// does everything held for a client that is away.
    #[test]
    fn held_messages_stop_sharing_read_buffers_when_they_would_pin_many() {
        let t0 = Instant::now();
        let l = roomy_limits();
        let owned = |st: &ClientState| -> (usize, usize) {
            let q = st
                .session
                .pending
                .iter()
                .filter(|d| d.msg.is_owned())
                .count();
            let i = st.session.inflight.iter();
            (q, i.filter(|i| i.delivery.msg.is_owned()).count())
        };
        // 64 buffers' worth of memory, one region each.
        let big = Bytes::from(vec![7u8; 64 * PIN_REGION]);

        // Dense: thousands of messages out of a few buffers are never copied.
        let mut st = ClientState::new("dense".into(), l.clone(), Session::new(60), t0);
        for i in 0..4 * PIN_REGION / 64 {
            st.deliver(t0, delivery_from(&big, i * 64, 60, QoS::AtMostOnce));
        }
        assert_eq!(owned(&st), (0, 0));

        // Sparse: one small message per buffer, QoS 1, sent and never acknowledged. Past the
        // slack they are all copied, sent or not, and so is what comes after.
        let mut st = ClientState::new("sparse".into(), l.clone(), Session::new(60), t0);
        st.set_note_completions(false);
        let within = PIN_SLACK / PIN_REGION;
        for i in 0..within {
            st.deliver(
                t0,
                delivery_from(&big, i * PIN_REGION, 16, QoS::AtLeastOnce),
            );
        }
        drain(&mut st, t0);
        assert_eq!(owned(&st), (0, 0), "within the slack nothing is copied");
        st.deliver(
            t0,
            delivery_from(&big, within * PIN_REGION, 16, QoS::AtLeastOnce),
        );
        assert_eq!(owned(&st), (1, within));
        st.deliver(t0, delivery_from(&big, 0, 16, QoS::AtLeastOnce));
        assert_eq!(owned(&st), (2, within));
        assert!(st
            .session
            .pending
            .iter()
            .all(|d| d.msg.payload == [7u8; 16][..]));
        // Holding nothing again, counting starts afresh.
        let held: Vec<u16> = st.session.inflight.iter().map(|i| i.packet_id).collect();
        drain(&mut st, t0);
        for p in held
            .into_iter()
            .chain([within as u16 + 1, within as u16 + 2])
        {
            st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
        }
        assert!(st.session.inflight.is_empty() && st.session.pending.is_empty());
        st.deliver(t0, delivery_from(&big, 0, 16, QoS::AtLeastOnce));
        assert_eq!(owned(&st), (0, 0));

        // Away: what is held and what comes is copied.
        st.detach();
        assert_eq!(owned(&st), (1, 0));
        st.deliver(t0, delivery_from(&big, PIN_REGION, 16, QoS::AtMostOnce));
        assert_eq!(owned(&st), (2, 0));
    }

    /// Messages decoded from small read buffers (a publisher held back by its receive maximum
    /// reads a few KiB at a time) count as pinning those buffers' sizes, not 64 KiB each.
    #[test]
    fn small_read_buffers_count_as_their_size() {
        let t0 = Instant::now();
        const SMALL: usize = 4096;
        // Small buffers scattered over memory: one at the start of each 64 KiB region.
        let memory = Bytes::from(vec![7u8; 400 * PIN_REGION]);
        let from_small_buffer = |b: usize, at: usize, len: usize| {
            let _batch = crate::broker::WakeBatch::open(SMALL);
            delivery_from(&memory, b * PIN_REGION + at, len, QoS::AtMostOnce)
        };
        let owned = |st: &ClientState| {
            st.session
                .pending
                .iter()
                .filter(|d| d.msg.is_owned())
                .count()
        };
        // 200 buffers with ten 100-byte messages each: 800 KiB pinned for 200 KB held, within
        // the bound (counted as 64 KiB buffers they would be 12.5 MiB, far past it).
        let mut st = ClientState::new("fan-in".into(), roomy_limits(), Session::new(60), t0);
        for b in 0..200 {
            for m in 0..10 {
                st.deliver(t0, from_small_buffer(b, m * 100, 100));
            }
        }
        assert_eq!(owned(&st), 0);
        // One 16-byte message out of each of 200 small buffers: past the bound all the same.
        let mut st = ClientState::new("sparse".into(), roomy_limits(), Session::new(60), t0);
        for b in 200..400 {
            st.deliver(t0, from_small_buffer(b, 0, 16));
        }
        assert!(
            owned(&st) > 0,
            "small buffers pinned for tiny messages are never copied"
        );
    }

    /// Ids given after the id space wrapped skip one message that stayed unacknowledged all
    /// along, and restored messages in any order are skipped too.
    #[test]
    fn packet_ids_skip_an_old_unacknowledged_id_after_wrapping_and_restored_ones() {
        let t0 = Instant::now();
        let mut l = limits(ProtocolVersion::V5);
        l.send_quota = 10;
        l.max_pending = 100;
        let ids = |st: &mut ClientState| -> Vec<u16> {
            drain(st, t0)
                .iter()
                .filter_map(|t| match t {
                    Transmit::Publish { packet_id, .. } => *packet_id,
                    _ => None,
                })
                .collect()
        };
        let mut st = ClientState::new("c".into(), l.clone(), Session::new(0), t0);
        st.set_note_completions(false);
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        assert_eq!(ids(&mut st), [1]);
        let mut given = 0u32;
        while given < 2 * u32::from(u16::MAX) {
            for _ in 0..5 {
                st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
            }
            let batch = ids(&mut st);
            assert_eq!(batch.len(), 5);
            for &p in &batch {
                assert_ne!(p, 1, "id 1 is still in flight");
                st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
            }
            given += 5;
        }
        assert_eq!(st.session.inflight.len(), 1);

        // Restored out of order (a stored session): still never given twice.
        let mut st = ClientState::new("r".into(), l, Session::new(0), t0);
        for p in [5, 3, 9] {
            st.restore_inflight(Inflight {
                packet_id: p,
                delivery: delivery(t0, QoS::AtLeastOnce, None),
                stage: Stage::AwaitPubAck,
                resends: 0,
            });
        }
        for _ in 0..7 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        assert_eq!(ids(&mut st), [1, 2, 4, 6, 7, 8, 10]);
    }

    #[test]
    fn packet_ids_skip_ids_in_use() {
        let t0 = Instant::now();
        let mut st = ClientState::new("c".into(), roomy_limits(), Session::new(0), t0);
        st.session.next_packet_id = u16::MAX - 1;
        for _ in 0..3 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        let ids: Vec<_> = drain(&mut st, t0)
            .iter()
            .map(|t| match t {
                Transmit::Publish { packet_id, .. } => packet_id.unwrap(),
                _ => 0,
            })
            .collect();
        assert_eq!(ids, vec![u16::MAX, 1, 2]);
    }
}

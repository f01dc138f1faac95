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
//!   publishers instead (back-pressure, [`crate::broker::flow`]): when a QoS 1/2 delivery leaves the
//!   queue half full, the publisher's reader waits for it to drain to a quarter, for as long as
//!   it makes progress. Fan-in to a slower subscriber so loses nothing; a subscriber that
//!   makes no progress for [`crate::broker::flow::STALL_AFTER`] is left to drop.
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

use crate::error::{CloseReason, PolicyRefusal, ProtocolViolation};
use crate::message::{Delivery, DeliveryParams, Message};

mod inbound;
mod outbound;
mod pins;
#[cfg(test)]
mod tests;

use outbound::ids_in_order;
use pins::Pins;

/// Why a message to a client was dropped (reported to `Hook::on_publish_dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The client's outbound queue was full (QoS 0 dropped, or oldest evicted).
    QueueFull,
    /// The message expired before it could be delivered.
    Expired,
    /// The message exceeded the client's maximum packet size.
    TooLarge,
}

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
    /// A message joined the queue of a lasting session (noted only with
    /// [`ClientState::set_note_storage`], as the four below).
    Queued(Delivery),
    /// A queued message left the queue to be sent.
    Dequeued(Arc<Message>),
    /// A QoS 1/2 message was sent with this packet id for the first time.
    InFlight(u16, Delivery),
    /// An inbound QoS 2 PUBLISH with this packet id was accepted; its PUBREL is awaited.
    Qos2Received(u16),
    /// The PUBREL of this inbound packet id arrived.
    Qos2Released(u16),
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
    /// Whether the changes a persistence layer records are noted (a session sink is
    /// installed and this session outlives its connection).
    note_storage: bool,
    /// Whether acknowledgements of inbound QoS 1/2 messages wait until their changes are
    /// durable (see [`ClientState::set_hold_acks`]).
    hold_acks: bool,
    /// The acknowledgements waiting. Boxed: 8 bytes instead of a `Vec`'s 24 in every client's
    /// state, where most never hold any.
    #[allow(clippy::box_collection)]
    held_acks: Option<Box<Vec<Packet>>>,
    /// Whether a v5 acknowledgement carries the user properties of the packet it answers
    /// (mochi's default; see [`Compatibilities`](crate::Compatibilities)).
    inherit_ack_props: bool,
    /// The user properties of the PUBLISH being routed, for its PUBACK / PUBREC.
    ack_props: Option<Box<moco_codec::UserProperties>>,
    life: Lifecycle,
}

/// Where a connection is in its life. A client that is away keeps its state (its session
/// waits for it), so "closed" and "away" are apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// A connection is attached and serving.
    Open,
    /// The broker ends the connection with this reason; for v5 its DISCONNECT is still to go.
    Closing(ReasonCode),
    /// The connection ended with this reason, still attached; nothing more is sent (the
    /// DISCONNECT is out, or none is due for v3).
    Closed(ReasonCode),
    /// No connection is attached: it ended (why, if it did) or the session was restored.
    /// `disconnect_due`: it was closing when the transport went, and its DISCONNECT is still
    /// what the writer's last turn sends.
    Away {
        ended: Option<ReasonCode>,
        disconnect_due: bool,
    },
}

impl Lifecycle {
    /// A connection is attached (serving or ending).
    fn attached(self) -> bool {
        matches!(
            self,
            Lifecycle::Open | Lifecycle::Closing(_) | Lifecycle::Closed(_)
        )
    }

    fn reason(self) -> Option<ReasonCode> {
        match self {
            Lifecycle::Open => None,
            Lifecycle::Closing(r) | Lifecycle::Closed(r) => Some(r),
            Lifecycle::Away { ended, .. } => ended,
        }
    }

    /// A DISCONNECT (v5) or the end of the connection is still to be sent.
    fn disconnect_due(self) -> bool {
        matches!(
            self,
            Lifecycle::Closing(_)
                | Lifecycle::Away {
                    disconnect_due: true,
                    ..
                }
        )
    }
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
            note_storage: false,
            hold_acks: false,
            held_acks: None,
            inherit_ack_props: false,
            ack_props: None,
            life: Lifecycle::Open,
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
        self.life == Lifecycle::Open
    }

    /// The reason the connection is closing, if it is.
    #[inline]
    pub fn close_reason(&self) -> Option<ReasonCode> {
        self.life.reason()
    }

    /// Marks the connection as gone (the transport closed); the session stays, and its
    /// messages, which may now wait for long, stop sharing their publishers' read buffers.
    pub fn detach(&mut self) {
        self.life = Lifecycle::Away {
            ended: self.life.reason(),
            disconnect_due: self.life.disconnect_due(),
        };
        self.unpin_held();
    }

    /// Closes the connection with `reason`: for v5 a DISCONNECT carrying it is the next and
    /// last thing [`ClientState::poll_transmit`] returns; for v3 the connection just closes.
    pub fn close(&mut self, why: impl Into<CloseReason>) {
        let why = why.into();
        let reason = ReasonCode::from(&why);
        if self.life == Lifecycle::Open {
            tracing::debug!(client = %self.client_id, reason = %why, "closing");
        }
        self.life = match self.life {
            Lifecycle::Open => Lifecycle::Closing(reason),
            Lifecycle::Away { ended: None, .. } => Lifecycle::Away {
                ended: Some(reason),
                disconnect_due: true,
            },
            ended => ended,
        };
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

    /// Whether the changes of session state a persistence layer records are noted
    /// ([`Note::Queued`], [`Note::Dequeued`], [`Note::InFlight`], [`Note::Qos2Received`],
    /// [`Note::Qos2Released`], and completions); off by default.
    pub fn set_note_storage(&mut self, on: bool) {
        self.note_storage = on;
    }

    /// Takes the notes (drops, completed and abandoned flows) since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// Handles one packet from the client. Protocol violations close the connection with the
    /// right reason code; what needs the broker comes back as an [`AppEvent`].
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Option<AppEvent> {
        if self.life.reason().is_some() {
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
                    if self.note_storage {
                        self.notes.push(Note::Qos2Released(r.packet_id));
                    }
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
                self.close(ProtocolViolation::Unexpected);
                None
            }
        }
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
                self.close(CloseReason::KeepAliveTimeout);
            }
        }
    }
}

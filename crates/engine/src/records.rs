//! What a storage hook keeps of a session, read back when the server starts (the `Stored*`
//! loaders of [`Hook`](crate::Hook)): the records the persistence seam exchanges.

use std::time::SystemTime;

use bytestring::ByteString;
use moco_codec::{ProtocolVersion, Publish};

/// A client session kept by a storage hook ([`Hook::stored_clients`](crate::Hook::stored_clients)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClient {
    /// The client identifier.
    pub id: ByteString,
    /// The user name it connected with.
    pub username: Option<ByteString>,
    /// The listener it came through.
    pub listener: ByteString,
    /// Its protocol level.
    pub protocol: ProtocolVersion,
    /// Its session expiry interval, in seconds.
    pub session_expiry_interval: u32,
    /// When it disconnected, if known: the session then expires `session_expiry_interval`
    /// seconds after that instant rather than after the restart.
    pub disconnected_at: Option<SystemTime>,
    /// Inbound QoS 2 packet ids whose PUBREL had not arrived: a PUBLISH resent with one of
    /// them is not routed again, and its PUBREL gets PUBCOMP.
    pub inbound_qos2: Vec<u16>,
}

/// The will of a client that was connected when the broker stopped without closing its
/// connection (a crash), kept by a storage hook
/// ([`Hook::stored_wills`](crate::Hook::stored_wills)): the connection was lost without a
/// DISCONNECT, so its will is published when the broker starts again, after its delay (at
/// most the session's expiry interval), counted from the start.
#[derive(Debug, Clone)]
pub struct StoredWill {
    /// The client whose will it is.
    pub client_id: ByteString,
    /// The will.
    pub will: crate::message::Will,
    /// The client's session expiry interval, in seconds (0: the session ended with it).
    pub session_expiry_interval: u32,
}

/// A message queued for a session, kept by a storage hook
/// ([`Hook::stored_queued_messages`](crate::Hook::stored_queued_messages)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQueued {
    /// The client it is queued for.
    pub client_id: ByteString,
    /// The PUBLISH as it is to be delivered: the QoS and RETAIN flag of this delivery, the
    /// subscription identifiers in its properties, no packet id.
    pub publish: Publish,
}

/// A subscription kept by a storage hook ([`Hook::stored_subscriptions`](crate::Hook::stored_subscriptions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The subscribing client.
    pub client_id: ByteString,
    /// The filter (plain or `$share/…`).
    pub filter: ByteString,
    /// Its options as granted.
    pub options: moco_topic::SubscriptionOptions,
}

/// An inflight QoS 1/2 message kept by a storage hook ([`Hook::stored_inflight_messages`](crate::Hook::stored_inflight_messages)),
/// as [`Hook::on_qos_publish`](crate::Hook::on_qos_publish) saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInflight {
    /// The client the message was sent to.
    pub client_id: ByteString,
    /// The PUBLISH as sent: its packet id, QoS, topic, payload and properties.
    pub publish: Publish,
}

//! The [`SessionSink`] seam: the changes of session state a persistence layer records.
//!
//! The broker tells the sink, as they happen, every change that must outlive a restart:
//! sessions opened, detached and ended, subscriptions added and removed, messages queued for
//! a lasting session, taken from its queue, put in flight and acknowledged, inbound QoS 2
//! packet ids awaiting PUBREL, and retained messages set and cleared. A storage layer maps
//! these to records (the `Stored*` types of [`records`](crate::records) are what it hands back
//! at start-up through the hooks' loaders) and writes them to its backend.
//!
//! No sink is installed by default, and then none of this is computed: the events of the
//! message path (queued, dequeued, in flight, completed) are noted only for sessions that
//! outlive their connection (session expiry above zero) and only when a sink is installed.
//!
//! Messages are passed as the broker's own `Arc<Message>`: the same allocation while it is
//! queued, in flight and acknowledged for one session, and shared between every session it was
//! routed to, so a sink can store the message once and refer to it by `Arc::as_ptr` while it
//! lives. A [`SessionEvent::Dropped`] may name a message that was never queued (it expired or
//! found a full queue on arrival); a sink ignores what it does not know.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use moco_topic::SubscriptionOptions;

use crate::hooks::ClientInfo;
use crate::message::{Delivery, Message, Will};

/// One change of session state, for [`SessionSink::record`].
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent<'a> {
    /// A connection opened a session: a new one, or `resumed` (its subscriptions and messages
    /// continue). A session with `expiry_interval` 0 ends with its connection.
    Opened {
        /// The client, as hooks see it.
        client: &'a ClientInfo,
        /// The session expiry interval granted, in seconds (`u32::MAX`: never).
        expiry_interval: u32,
        /// Whether an existing session was resumed.
        resumed: bool,
        /// The connection's will, if it has one.
        will: Option<&'a Will>,
    },
    /// The connection ended at `at`; the session lasts `expiry_interval` seconds more unless
    /// the client comes back.
    Detached {
        /// The client.
        client_id: &'a str,
        /// The session expiry interval in force when it ended, in seconds.
        expiry_interval: u32,
        /// When it ended (wall clock, so a restart can tell how long ago).
        at: SystemTime,
    },
    /// The session ended (a clean disconnect, its expiry, a clean start, or it moved to
    /// another broker): forget it with its subscriptions and messages.
    Ended {
        /// The client.
        client_id: &'a str,
    },
    /// A subscription was added or replaced.
    Subscribed {
        /// The client.
        client_id: &'a str,
        /// The filter (plain or `$share/…`).
        filter: &'a str,
        /// Its options as granted.
        options: SubscriptionOptions,
    },
    /// A subscription was removed.
    Unsubscribed {
        /// The client.
        client_id: &'a str,
        /// The filter.
        filter: &'a str,
    },
    /// A message joined the queue of a lasting session.
    Queued {
        /// The client.
        client_id: &'a str,
        /// The delivery: the message (shared with every other session it was routed to),
        /// and this session's QoS, RETAIN flag and subscription identifiers.
        delivery: &'a Delivery,
    },
    /// A queued message left the queue to be sent (a QoS 1/2 one is then
    /// [`InFlight`](SessionEvent::InFlight)).
    Dequeued {
        /// The client.
        client_id: &'a str,
        /// The message.
        message: &'a Arc<Message>,
    },
    /// A message for the client was dropped (expired, or the queue was full).
    Dropped {
        /// The client.
        client_id: &'a str,
        /// The message.
        message: &'a Arc<Message>,
    },
    /// A QoS 1/2 message was sent with `packet_id` and awaits its acknowledgement.
    InFlight {
        /// The client.
        client_id: &'a str,
        /// Its packet identifier.
        packet_id: u16,
        /// The delivery.
        delivery: &'a Delivery,
    },
    /// The flow of outbound `packet_id` completed (PUBACK or PUBCOMP received).
    Completed {
        /// The client.
        client_id: &'a str,
        /// The packet identifier.
        packet_id: u16,
    },
    /// The flow of outbound `packet_id` was abandoned.
    Abandoned {
        /// The client.
        client_id: &'a str,
        /// The packet identifier.
        packet_id: u16,
    },
    /// An inbound QoS 2 PUBLISH was received and PUBREC sent; its PUBREL is awaited, and a
    /// resent PUBLISH with this id must not be routed again.
    Qos2Received {
        /// The client.
        client_id: &'a str,
        /// The packet identifier.
        packet_id: u16,
    },
    /// The PUBREL of inbound `packet_id` arrived: the id is free.
    Qos2Released {
        /// The client.
        client_id: &'a str,
        /// The packet identifier.
        packet_id: u16,
    },
    /// The retained message of its topic was set (replacing any).
    RetainedSet {
        /// The message, detached from any read buffer.
        message: &'a Arc<Message>,
    },
    /// The retained message of `topic` was cleared (an empty retained PUBLISH, or expiry).
    RetainedCleared {
        /// The topic.
        topic: &'a str,
    },
}

/// What an acknowledgement waits for ([`SessionSink::durable`]): true once the changes are
/// durable, false if they could not be stored.
pub type Durable = Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

/// Receives the changes of session state (see the module docs). Called on connection tasks
/// outside the broker's locks, in the order the changes happened: record quickly (append to a
/// batch that a writer task takes) and never block on I/O here.
pub trait SessionSink: Send + Sync + 'static {
    /// Records one change.
    fn record(&self, event: SessionEvent<'_>);

    /// Whether a publisher's PUBACK / PUBREC waits until the changes its message made are
    /// durable (`durability: sync`): then, after each read of a connection whose packets were
    /// acknowledged, the connection awaits [`durable`](SessionSink::durable) before it sends
    /// the acknowledgements. Asked once, when the broker is built. The default, false, sends
    /// them at once (the changes are written in the background).
    fn syncs(&self) -> bool {
        false
    }

    /// Resolves once every change recorded so far is durable (true) or could not be stored
    /// (false: a v5 publisher then gets 0x80 in its acknowledgement, a v3 one is
    /// disconnected). `None`: nothing recorded is waiting. Many connections wait at once:
    /// let them share one flush (group commit).
    fn durable(&self) -> Option<Durable> {
        None
    }
}

#[cfg(test)]
mod tests;

//! The events a hook may provide, and the bitset the stack keeps of them.

/// Every event a hook may provide (mochi's full set, including the storage events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Event {
    /// The server has started.
    OnStarted,
    /// The server has stopped.
    OnStopped,
    /// `$SYS` values were refreshed.
    OnSysInfoTick,
    /// Authenticate a CONNECT (allow or deny).
    OnConnectAuthenticate,
    /// Authorize a client to read (subscribe) or write (publish) a topic.
    OnAclCheck,
    /// A client sent a valid CONNECT (before authentication, as mochi); may refuse it with a
    /// reason code.
    OnConnect,
    /// A client was authenticated and its session is about to be set up (before an existing
    /// session is taken over or resumed).
    OnSessionEstablish,
    /// A client's session was established (after CONNACK was queued).
    OnSessionEstablished,
    /// A client disconnected.
    OnDisconnect,
    /// An AUTH packet arrived (enhanced authentication).
    OnAuthPacket,
    /// A packet was read from a client, before it is processed; the hook may change it or
    /// refuse it (the connection closes with the code).
    OnPacketRead,
    /// A packet is about to be encoded and written to a client; the hook may change it.
    OnPacketEncode,
    /// A packet from a client was processed.
    OnPacketProcessed,
    /// Bytes were written to a client.
    OnPacketSent,
    /// Subscribers were selected for a message; the hook may change the selection.
    OnSelectSubscribers,
    /// Retained messages were sent to a client because it subscribed.
    OnRetainPublished,
    /// A SUBSCRIBE arrived; the hook may change it.
    OnSubscribe,
    /// A SUBSCRIBE was processed.
    OnSubscribed,
    /// An UNSUBSCRIBE arrived; the hook may change it.
    OnUnsubscribe,
    /// An UNSUBSCRIBE was processed.
    OnUnsubscribed,
    /// A PUBLISH arrived; the hook may change or reject it.
    OnPublish,
    /// A PUBLISH was routed.
    OnPublished,
    /// A message to a client was dropped (queue full, expired, or evicted).
    OnPublishDropped,
    /// A retained message was set or cleared.
    OnRetainMessage,
    /// A QoS 1/2 message was sent to a client (first time or resent).
    OnQosPublish,
    /// A QoS 1/2 flow to a client completed.
    OnQosComplete,
    /// An inflight QoS 1/2 message was abandoned.
    OnQosDropped,
    /// A client ran out of packet identifiers.
    OnPacketIdExhausted,
    /// A will message is about to be published; the hook may change it.
    OnWill,
    /// A will message was published.
    OnWillSent,
    /// A disconnected client's session expired.
    OnClientExpired,
    /// A retained message expired.
    OnRetainedExpired,
    /// Loader: the clients (sessions) kept by a storage hook, read when the server starts.
    StoredClients,
    /// Loader: the subscriptions kept by a storage hook.
    StoredSubscriptions,
    /// Loader: the inflight (sent, unacknowledged) QoS 1/2 messages kept by a storage hook.
    StoredInflightMessages,
    /// Loader: the retained messages kept by a storage hook.
    StoredRetainedMessages,
    /// Loader: the messages queued for offline sessions, kept by a storage hook.
    StoredQueuedMessages,
    /// Loader: the wills of clients connected when the broker stopped without closing them.
    StoredWills,
    /// Loader: the `$SYS` counters kept by a storage hook.
    StoredSysInfo,
}

impl Event {
    #[inline]
    const fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

/// A set of [`Event`]s as a bitset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSet(pub(super) u64);

impl EventSet {
    /// The empty set.
    pub const EMPTY: EventSet = EventSet(0);

    /// A set of the given events.
    pub const fn of(events: &[Event]) -> EventSet {
        let mut bits = 0;
        let mut i = 0;
        while i < events.len() {
            bits |= events[i].bit();
            i += 1;
        }
        EventSet(bits)
    }

    /// True if the set holds `event`.
    #[inline]
    pub const fn contains(self, event: Event) -> bool {
        self.0 & event.bit() != 0
    }

    /// Adds `event`.
    #[inline]
    pub fn insert(&mut self, event: Event) {
        self.0 |= event.bit();
    }
}

/// Every event, in declaration order.
pub const ALL_EVENTS: [Event; 39] = [
    Event::OnStarted,
    Event::OnStopped,
    Event::OnSysInfoTick,
    Event::OnConnectAuthenticate,
    Event::OnAclCheck,
    Event::OnConnect,
    Event::OnSessionEstablish,
    Event::OnSessionEstablished,
    Event::OnDisconnect,
    Event::OnAuthPacket,
    Event::OnPacketRead,
    Event::OnPacketEncode,
    Event::OnPacketProcessed,
    Event::OnPacketSent,
    Event::OnSelectSubscribers,
    Event::OnRetainPublished,
    Event::OnSubscribe,
    Event::OnSubscribed,
    Event::OnUnsubscribe,
    Event::OnUnsubscribed,
    Event::OnPublish,
    Event::OnPublished,
    Event::OnPublishDropped,
    Event::OnRetainMessage,
    Event::OnQosPublish,
    Event::OnQosComplete,
    Event::OnQosDropped,
    Event::OnPacketIdExhausted,
    Event::OnWill,
    Event::OnWillSent,
    Event::OnClientExpired,
    Event::OnRetainedExpired,
    Event::StoredClients,
    Event::StoredSubscriptions,
    Event::StoredInflightMessages,
    Event::StoredRetainedMessages,
    Event::StoredQueuedMessages,
    Event::StoredWills,
    Event::StoredSysInfo,
];

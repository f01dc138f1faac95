//! The [`Hook`] trait, the hook stack and the [`AllowAll`] hook.
//!
//! A hook declares the events it handles with [`Hook::provides`]; the stack keeps the union of
//! every hook's events in a bitset, so the hot path skips events nobody listens to with one
//! bit test (a hook that provides only [`Event::OnStarted`] costs the hot path nothing). Every
//! method has a default that does nothing (or, for the two authorization events, denies), so a
//! hook implements only what it provides.
//!
//! Hooks run in the order they were added. The events that may change a value
//! ([`Event::OnPacketRead`], [`Event::OnPacketEncode`], [`Event::OnSubscribe`],
//! [`Event::OnUnsubscribe`], [`Event::OnPublish`], [`Event::OnSelectSubscribers`],
//! [`Event::OnWill`], [`Event::OnAuthPacket`]) hand the value, as changed by one hook, to the
//! next; those that return a `Result` stop at the first refusal, whose reason code goes on
//! the wire.
//!
//! A hook is configured through its own typed options (the arguments of its constructor,
//! e.g. [`DebugHook::new`](crate::DebugHook::new)); [`Hook::init`] runs when it is added to a
//! server (with the broker's [`Options`]) and [`Hook::stop`] when the server has stopped.
//!
//! The `Stored*` events are loaders: when the server starts, the broker asks the first hook
//! that provides each of them for what a storage hook kept (sessions, subscriptions, inflight
//! and retained messages, `$SYS` counters) and restores it
//! ([`Broker::load_stored`](crate::Broker::load_stored)).
//!
//! The engine itself denies everything: a CONNECT is refused and every subscribe and publish
//! is unauthorized unless some hook that provides [`Event::OnConnectAuthenticate`] /
//! [`Event::OnAclCheck`] allows it.

use std::sync::Arc;
use std::time::SystemTime;

use bytestring::ByteString;
use moco_codec::{
    Auth, Connect, Packet, PacketType, ProtocolVersion, Publish, ReasonCode, Subscribe, Unsubscribe,
};

use crate::message::Will;
use crate::options::Options;
use crate::router::Target;
use crate::sys::SysSnapshot;

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
pub struct EventSet(u64);

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

/// What a client is, as hooks see it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client identifier (assigned by the broker if the client sent none).
    pub id: ByteString,
    /// The user name from CONNECT, if any.
    pub username: Option<ByteString>,
    /// The peer's address as the transport describes it (e.g. `127.0.0.1:50000`).
    pub remote: Arc<str>,
    /// The listener the client came through.
    pub listener: Arc<str>,
    /// The protocol level the client speaks.
    pub protocol: ProtocolVersion,
}

impl ClientInfo {
    /// The inline client: what hooks see for messages published and subscriptions made by the
    /// embedding program (id `inline`, listener `local`, as mochi).
    pub fn inline() -> ClientInfo {
        ClientInfo {
            id: ByteString::from_static("inline"),
            username: None,
            remote: Arc::from("local"),
            listener: Arc::from("local"),
            protocol: ProtocolVersion::V5,
        }
    }
}

/// Read or write access, for [`Hook::on_acl_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe to / receive from a topic filter.
    Read,
    /// Publish to a topic.
    Write,
}

/// Why a client's connection ended, for [`Hook::on_disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectInfo {
    /// The reason code (sent or received); `Success` for a normal DISCONNECT from the client.
    pub reason: ReasonCode,
    /// True if the client's session ends with the connection.
    pub session_ends: bool,
}

pub use crate::error::HookError;
pub use crate::state::DropReason;

/// A client session kept by a storage hook ([`Hook::stored_clients`]).
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
}

/// A subscription kept by a storage hook ([`Hook::stored_subscriptions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The subscribing client.
    pub client_id: ByteString,
    /// The filter (plain or `$share/…`).
    pub filter: ByteString,
    /// Its options as granted.
    pub options: moco_topic::SubscriptionOptions,
}

/// An inflight QoS 1/2 message kept by a storage hook ([`Hook::stored_inflight_messages`]),
/// as [`Hook::on_qos_publish`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInflight {
    /// The client the message was sent to.
    pub client_id: ByteString,
    /// The PUBLISH as sent: its packet id, QoS, topic, payload and properties.
    pub publish: Publish,
}

/// A handler of broker events. See the module docs; implement [`Hook::provides`] and the
/// methods of the events provided.
#[allow(unused_variables)]
pub trait Hook: Send + Sync + 'static {
    /// A short identifier for logs.
    fn id(&self) -> &str;

    /// True if this hook handles `event`. Asked once, when the hook is added.
    fn provides(&self, event: Event) -> bool;

    /// Called once when the hook is added to a server, with the broker's options; an error
    /// stops the server from being built.
    fn init(&self, options: &Options) -> Result<(), HookError> {
        Ok(())
    }

    /// Called once after the server has stopped (after [`Hook::on_stopped`]), to release
    /// what the hook holds (files, connections).
    fn stop(&self) -> Result<(), HookError> {
        Ok(())
    }

    /// The server has started: the stored state is loaded, listeners accept and the first
    /// `$SYS` values are published.
    fn on_started(&self) {}

    /// The server has stopped: listeners are closed and clients disconnected.
    fn on_stopped(&self) {}

    /// Authenticates a CONNECT; the connection is accepted only if some hook returns true.
    fn on_connect_authenticate(&self, client: &ClientInfo, connect: &Connect) -> bool {
        false
    }

    /// Authorizes `client` to read or write `topic`; allowed only if some hook returns true.
    fn on_acl_check(&self, client: &ClientInfo, topic: &str, access: Access) -> bool {
        false
    }

    /// Whether [`on_acl_check`](Hook::on_acl_check) could deny `client` reading some topic
    /// that `filter` matches (a subscription the hooks just allowed, plain or `$share/…`).
    ///
    /// Read access is checked again for each delivered message, as mochi and Mosquitto do;
    /// the broker asks this once per subscription (and again on
    /// [`Broker::acl_changed`](crate::Broker::acl_changed)) so that a subscription no rule
    /// could deny costs nothing per message. Never answer no when a denial is possible.
    /// The default, yes, has every delivery checked: keep it for a hook whose answers may
    /// change without `acl_changed` being called.
    fn acl_may_deny_within(&self, client: &ClientInfo, filter: &str) -> bool {
        true
    }

    /// A valid CONNECT arrived, before authentication (mochi's order). Returning an error
    /// refuses the client with that code in CONNACK.
    fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        Ok(())
    }

    /// A client was authenticated; its session is about to be created, resumed or taken
    /// over.
    fn on_session_establish(&self, client: &ClientInfo, connect: &Connect) {}

    /// A client's session is established (its CONNACK is queued).
    fn on_session_established(&self, client: &ClientInfo, connect: &Connect) {}

    /// A client's connection ended.
    fn on_disconnect(&self, client: &ClientInfo, info: DisconnectInfo) {}

    /// Enhanced authentication: answers an AUTH packet (during CONNECT or re-authentication)
    /// with the AUTH to send back (`ContinueAuthentication`) or `Success`, or refuses. With
    /// several hooks, each gets the previous hook's answer.
    fn on_auth_packet(&self, client: &ClientInfo, auth: &Auth) -> Result<Auth, ReasonCode> {
        Err(ReasonCode::BadAuthenticationMethod)
    }

    /// The `$SYS` values were refreshed and published.
    fn on_sys_info_tick(&self, info: &SysSnapshot) {}

    /// A packet was read from `client`, before processing; the hook may rewrite it, or refuse
    /// it with a reason code (the connection is closed with it).
    fn on_packet_read(&self, client: &ClientInfo, packet: &mut Packet) -> Result<(), ReasonCode> {
        Ok(())
    }

    /// A packet is about to be encoded and written to `client`; the hook may rewrite it.
    /// (Providing this event makes every PUBLISH be encoded per subscriber instead of once
    /// per variant.)
    fn on_packet_encode(&self, client: &ClientInfo, packet: &mut Packet) {}

    /// A packet of type `packet` from `client` was processed.
    fn on_packet_processed(&self, client: &ClientInfo, packet: PacketType) {}

    /// `bytes` were written to `client` (one batch of packets).
    fn on_packet_sent(&self, client: &ClientInfo, bytes: &[u8]) {}

    /// The subscribers of a message on `topic` were selected (one member per shared group
    /// already picked); the hook may change them.
    fn on_select_subscribers(&self, topic: &str, subscribers: &mut Vec<Target>) {}

    /// A retained message was queued for `client` because it subscribed.
    fn on_retain_published(&self, client: &ClientInfo, publish: &Publish) {}

    /// A SUBSCRIBE arrived; the hook may rewrite it.
    fn on_subscribe(&self, client: &ClientInfo, subscribe: &mut Subscribe) {}

    /// A SUBSCRIBE was processed with these per-filter reason codes.
    fn on_subscribed(&self, client: &ClientInfo, subscribe: &Subscribe, codes: &[ReasonCode]) {}

    /// An UNSUBSCRIBE arrived; the hook may rewrite it.
    fn on_unsubscribe(&self, client: &ClientInfo, unsubscribe: &mut Unsubscribe) {}

    /// An UNSUBSCRIBE was processed.
    fn on_unsubscribed(&self, client: &ClientInfo, unsubscribe: &Unsubscribe) {}

    /// A PUBLISH arrived (after the ACL check); the hook may rewrite it, or reject it with a
    /// reason code (sent in PUBACK/PUBREC for QoS 1/2).
    fn on_publish(&self, client: &ClientInfo, publish: &mut Publish) -> Result<(), ReasonCode> {
        Ok(())
    }

    /// A PUBLISH was routed to `subscribers` subscribers.
    fn on_published(&self, client: &ClientInfo, publish: &Publish, subscribers: usize) {}

    /// A message for `client_id` was dropped.
    fn on_publish_dropped(&self, client_id: &str, publish: &Publish, reason: DropReason) {}

    /// A retained message was set (`payload` non-empty) or cleared.
    fn on_retain_message(&self, client: &ClientInfo, publish: &Publish) {}

    /// A QoS 1/2 message was sent to `client_id` (`resends` counts earlier attempts).
    fn on_qos_publish(&self, client_id: &str, publish: &Publish, resends: u32) {}

    /// The QoS 1/2 flow of `packet_id` to `client_id` completed.
    fn on_qos_complete(&self, client_id: &str, packet_id: u16) {}

    /// An inflight QoS 1/2 message to `client_id` was abandoned.
    fn on_qos_dropped(&self, client_id: &str, packet_id: u16) {}

    /// `client_id` has no free packet identifier.
    fn on_packet_id_exhausted(&self, client_id: &str) {}

    /// A will is about to be published; the hook may rewrite it.
    fn on_will(&self, client_id: &str, will: &mut Will) {}

    /// A will was published.
    fn on_will_sent(&self, client_id: &str, will: &Will) {}

    /// A disconnected client's session expired and was removed.
    fn on_client_expired(&self, client_id: &str) {}

    /// A retained message on `topic` expired.
    fn on_retained_expired(&self, topic: &str) {}

    /// Loader: the client sessions to restore at start.
    fn stored_clients(&self) -> Result<Vec<StoredClient>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the subscriptions to restore at start (those of restored clients are kept).
    fn stored_subscriptions(&self) -> Result<Vec<StoredSubscription>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the inflight messages to restore at start (resent, with DUP, when their
    /// client comes back).
    fn stored_inflight_messages(&self) -> Result<Vec<StoredInflight>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the retained messages to restore at start.
    fn stored_retained_messages(&self) -> Result<Vec<Publish>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the `$SYS` counters to restore at start (restored only with
    /// [`Compatibilities::restore_sys_info_on_restart`](crate::Compatibilities)).
    fn stored_sys_info(&self) -> Result<Option<SysSnapshot>, HookError> {
        Ok(None)
    }
}

/// The ordered stack of hooks, with the union of their events precomputed.
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Vec<(Arc<dyn Hook>, EventSet)>,
    provided: EventSet,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|(h, _)| h.id()))
            .finish()
    }
}

/// Every event, in declaration order.
pub const ALL_EVENTS: [Event; 37] = [
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
    Event::StoredSysInfo,
];

/// Runs a loader on the first hook that provides it and returns something (mochi's rule).
fn first_stored<T>(
    hooks: &Hooks,
    event: Event,
    load: impl Fn(&dyn Hook) -> Result<T, HookError>,
    empty: impl Fn(&T) -> bool,
) -> Result<Option<T>, crate::Error> {
    for h in hooks.each(event) {
        let v = load(h.as_ref()).map_err(|source| crate::Error::Hook {
            id: h.id().to_owned(),
            source,
        })?;
        if !empty(&v) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

impl Hooks {
    /// An empty stack (which denies every CONNECT, subscribe and publish).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a hook; hooks run in the order added. (Its [`Hook::init`] is run by the
    /// server; see [`Hooks::init`].)
    pub fn add(&mut self, hook: Arc<dyn Hook>) {
        let mut set = EventSet::EMPTY;
        for e in ALL_EVENTS {
            if hook.provides(e) {
                set.insert(e);
            }
        }
        self.provided.0 |= set.0;
        self.hooks.push((hook, set));
    }

    /// Runs every hook's [`Hook::init`] in order; the first error names the hook.
    pub fn init(&self, options: &Options) -> Result<(), crate::Error> {
        for (h, _) in &self.hooks {
            h.init(options).map_err(|source| crate::Error::Hook {
                id: h.id().to_owned(),
                source,
            })?;
        }
        Ok(())
    }

    /// Runs every hook's [`Hook::stop`] in order; errors are logged, not returned.
    pub fn stop(&self) {
        for (h, _) in &self.hooks {
            if let Err(e) = h.stop() {
                tracing::warn!(hook = h.id(), error = %e, "hook failed to stop");
            }
        }
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// True if there are no hooks.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// True if any hook provides `event`.
    #[inline]
    pub fn provides(&self, event: Event) -> bool {
        self.provided.contains(event)
    }

    /// The hooks that provide `event`, in order; nothing at all (not even a walk over the
    /// stack) when no hook provides it.
    #[inline]
    fn each(&self, event: Event) -> impl Iterator<Item = &Arc<dyn Hook>> {
        let hooks: &[(Arc<dyn Hook>, EventSet)] = if self.provided.contains(event) {
            &self.hooks
        } else {
            &[]
        };
        hooks
            .iter()
            .filter(move |(_, s)| s.contains(event))
            .map(|(h, _)| h)
    }

    /// Calls [`Hook::on_started`].
    pub fn on_started(&self) {
        self.each(Event::OnStarted).for_each(|h| h.on_started());
    }

    /// Calls [`Hook::on_stopped`].
    pub fn on_stopped(&self) {
        self.each(Event::OnStopped).for_each(|h| h.on_stopped());
    }

    /// True if some hook authenticates the CONNECT.
    #[inline]
    pub fn on_connect_authenticate(&self, client: &ClientInfo, connect: &Connect) -> bool {
        self.each(Event::OnConnectAuthenticate)
            .any(|h| h.on_connect_authenticate(client, connect))
    }

    /// True if some hook authorizes the access.
    #[inline]
    pub fn on_acl_check(&self, client: &ClientInfo, topic: &str, access: Access) -> bool {
        self.each(Event::OnAclCheck)
            .any(|h| h.on_acl_check(client, topic, access))
    }

    /// Whether [`Hooks::on_acl_check`] could deny `client` reading a topic that `filter`
    /// matches: only if every hook providing [`Event::OnAclCheck`] may deny (any one hook's
    /// yes allows). With no such hook every delivery is denied, so this says yes too.
    pub fn acl_may_deny_within(&self, client: &ClientInfo, filter: &str) -> bool {
        self.each(Event::OnAclCheck)
            .all(|h| h.acl_may_deny_within(client, filter))
    }

    /// Calls [`Hook::on_connect`]; the first refusal wins.
    pub fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        self.each(Event::OnConnect)
            .try_for_each(|h| h.on_connect(client, connect))
    }

    /// Calls [`Hook::on_session_establish`].
    pub fn on_session_establish(&self, client: &ClientInfo, connect: &Connect) {
        self.each(Event::OnSessionEstablish)
            .for_each(|h| h.on_session_establish(client, connect));
    }

    /// Calls [`Hook::on_session_established`].
    pub fn on_session_established(&self, client: &ClientInfo, connect: &Connect) {
        self.each(Event::OnSessionEstablished)
            .for_each(|h| h.on_session_established(client, connect));
    }

    /// Calls [`Hook::on_disconnect`].
    pub fn on_disconnect(&self, client: &ClientInfo, info: DisconnectInfo) {
        self.each(Event::OnDisconnect)
            .for_each(|h| h.on_disconnect(client, info));
    }

    /// Calls [`Hook::on_auth_packet`] in order, each hook getting the previous one's answer;
    /// the first refusal wins. No hook means bad authentication method.
    pub fn on_auth_packet(&self, client: &ClientInfo, auth: &Auth) -> Result<Auth, ReasonCode> {
        let mut hooks = self.each(Event::OnAuthPacket);
        let Some(first) = hooks.next() else {
            return Err(ReasonCode::BadAuthenticationMethod);
        };
        let mut answer = first.on_auth_packet(client, auth)?;
        for h in hooks {
            answer = h.on_auth_packet(client, &answer)?;
        }
        Ok(answer)
    }

    /// Calls [`Hook::on_sys_info_tick`].
    pub fn on_sys_info_tick(&self, info: &SysSnapshot) {
        self.each(Event::OnSysInfoTick)
            .for_each(|h| h.on_sys_info_tick(info));
    }

    /// Calls [`Hook::on_packet_read`] in order; the first refusal wins.
    #[inline]
    pub fn on_packet_read(
        &self,
        client: &ClientInfo,
        packet: &mut Packet,
    ) -> Result<(), ReasonCode> {
        self.each(Event::OnPacketRead)
            .try_for_each(|h| h.on_packet_read(client, packet))
    }

    /// Calls [`Hook::on_packet_encode`] in order.
    #[inline]
    pub fn on_packet_encode(&self, client: &ClientInfo, packet: &mut Packet) {
        self.each(Event::OnPacketEncode)
            .for_each(|h| h.on_packet_encode(client, packet));
    }

    /// Calls [`Hook::on_packet_processed`].
    #[inline]
    pub fn on_packet_processed(&self, client: &ClientInfo, packet: PacketType) {
        self.each(Event::OnPacketProcessed)
            .for_each(|h| h.on_packet_processed(client, packet));
    }

    /// Calls [`Hook::on_packet_sent`].
    #[inline]
    pub fn on_packet_sent(&self, client: &ClientInfo, bytes: &[u8]) {
        self.each(Event::OnPacketSent)
            .for_each(|h| h.on_packet_sent(client, bytes));
    }

    /// Calls [`Hook::on_select_subscribers`] in order.
    #[inline]
    pub fn on_select_subscribers(&self, topic: &str, subscribers: &mut Vec<Target>) {
        self.each(Event::OnSelectSubscribers)
            .for_each(|h| h.on_select_subscribers(topic, subscribers));
    }

    /// Calls [`Hook::on_retain_published`].
    pub fn on_retain_published(&self, client: &ClientInfo, publish: &Publish) {
        self.each(Event::OnRetainPublished)
            .for_each(|h| h.on_retain_published(client, publish));
    }

    /// Calls [`Hook::on_subscribe`] in order.
    pub fn on_subscribe(&self, client: &ClientInfo, subscribe: &mut Subscribe) {
        self.each(Event::OnSubscribe)
            .for_each(|h| h.on_subscribe(client, subscribe));
    }

    /// Calls [`Hook::on_subscribed`].
    pub fn on_subscribed(&self, client: &ClientInfo, subscribe: &Subscribe, codes: &[ReasonCode]) {
        self.each(Event::OnSubscribed)
            .for_each(|h| h.on_subscribed(client, subscribe, codes));
    }

    /// Calls [`Hook::on_unsubscribe`] in order.
    pub fn on_unsubscribe(&self, client: &ClientInfo, unsubscribe: &mut Unsubscribe) {
        self.each(Event::OnUnsubscribe)
            .for_each(|h| h.on_unsubscribe(client, unsubscribe));
    }

    /// Calls [`Hook::on_unsubscribed`].
    pub fn on_unsubscribed(&self, client: &ClientInfo, unsubscribe: &Unsubscribe) {
        self.each(Event::OnUnsubscribed)
            .for_each(|h| h.on_unsubscribed(client, unsubscribe));
    }

    /// Calls [`Hook::on_publish`] in order; the first rejection wins.
    #[inline]
    pub fn on_publish(&self, client: &ClientInfo, publish: &mut Publish) -> Result<(), ReasonCode> {
        self.each(Event::OnPublish)
            .try_for_each(|h| h.on_publish(client, publish))
    }

    /// Calls [`Hook::on_published`].
    #[inline]
    pub fn on_published(&self, client: &ClientInfo, publish: &Publish, subscribers: usize) {
        self.each(Event::OnPublished)
            .for_each(|h| h.on_published(client, publish, subscribers));
    }

    /// Calls [`Hook::on_publish_dropped`].
    pub fn on_publish_dropped(&self, client_id: &str, publish: &Publish, reason: DropReason) {
        self.each(Event::OnPublishDropped)
            .for_each(|h| h.on_publish_dropped(client_id, publish, reason));
    }

    /// Calls [`Hook::on_retain_message`].
    pub fn on_retain_message(&self, client: &ClientInfo, publish: &Publish) {
        self.each(Event::OnRetainMessage)
            .for_each(|h| h.on_retain_message(client, publish));
    }

    /// Calls [`Hook::on_qos_publish`].
    pub fn on_qos_publish(&self, client_id: &str, publish: &Publish, resends: u32) {
        self.each(Event::OnQosPublish)
            .for_each(|h| h.on_qos_publish(client_id, publish, resends));
    }

    /// Calls [`Hook::on_qos_complete`].
    pub fn on_qos_complete(&self, client_id: &str, packet_id: u16) {
        self.each(Event::OnQosComplete)
            .for_each(|h| h.on_qos_complete(client_id, packet_id));
    }

    /// Calls [`Hook::on_qos_dropped`].
    pub fn on_qos_dropped(&self, client_id: &str, packet_id: u16) {
        self.each(Event::OnQosDropped)
            .for_each(|h| h.on_qos_dropped(client_id, packet_id));
    }

    /// Calls [`Hook::on_packet_id_exhausted`].
    pub fn on_packet_id_exhausted(&self, client_id: &str) {
        self.each(Event::OnPacketIdExhausted)
            .for_each(|h| h.on_packet_id_exhausted(client_id));
    }

    /// Calls [`Hook::on_will`] in order.
    pub fn on_will(&self, client_id: &str, will: &mut Will) {
        self.each(Event::OnWill)
            .for_each(|h| h.on_will(client_id, will));
    }

    /// Calls [`Hook::on_will_sent`].
    pub fn on_will_sent(&self, client_id: &str, will: &Will) {
        self.each(Event::OnWillSent)
            .for_each(|h| h.on_will_sent(client_id, will));
    }

    /// Calls [`Hook::on_client_expired`].
    pub fn on_client_expired(&self, client_id: &str) {
        self.each(Event::OnClientExpired)
            .for_each(|h| h.on_client_expired(client_id));
    }

    /// Calls [`Hook::on_retained_expired`].
    pub fn on_retained_expired(&self, topic: &str) {
        self.each(Event::OnRetainedExpired)
            .for_each(|h| h.on_retained_expired(topic));
    }

    /// The stored clients of the first hook that provides [`Event::StoredClients`] and has
    /// some.
    pub fn stored_clients(&self) -> Result<Vec<StoredClient>, crate::Error> {
        first_stored(
            self,
            Event::StoredClients,
            |h| h.stored_clients(),
            Vec::is_empty,
        )
        .map(Option::unwrap_or_default)
    }

    /// The stored subscriptions (first hook that has some).
    pub fn stored_subscriptions(&self) -> Result<Vec<StoredSubscription>, crate::Error> {
        first_stored(
            self,
            Event::StoredSubscriptions,
            |h| h.stored_subscriptions(),
            Vec::is_empty,
        )
        .map(Option::unwrap_or_default)
    }

    /// The stored inflight messages (first hook that has some).
    pub fn stored_inflight_messages(&self) -> Result<Vec<StoredInflight>, crate::Error> {
        first_stored(
            self,
            Event::StoredInflightMessages,
            |h| h.stored_inflight_messages(),
            Vec::is_empty,
        )
        .map(Option::unwrap_or_default)
    }

    /// The stored retained messages (first hook that has some).
    pub fn stored_retained_messages(&self) -> Result<Vec<Publish>, crate::Error> {
        first_stored(
            self,
            Event::StoredRetainedMessages,
            |h| h.stored_retained_messages(),
            Vec::is_empty,
        )
        .map(Option::unwrap_or_default)
    }

    /// The stored `$SYS` counters (first hook that has them).
    pub fn stored_sys_info(&self) -> Result<Option<SysSnapshot>, crate::Error> {
        first_stored(
            self,
            Event::StoredSysInfo,
            |h| h.stored_sys_info(),
            Option::is_none,
        )
        .map(Option::flatten)
    }
}
/// Allows every CONNECT, subscribe and publish. For tests and for the `moco` binary's
/// loopback-only default; the real auth hooks live in `moco-auth`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Hook for AllowAll {
    fn id(&self) -> &str {
        "allow-all"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnConnectAuthenticate | Event::OnAclCheck)
    }

    fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
        true
    }

    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }

    fn acl_may_deny_within(&self, _: &ClientInfo, _: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct AclOnly(AtomicUsize);

    impl Hook for AclOnly {
        fn id(&self) -> &str {
            "acl-only"
        }
        fn provides(&self, e: Event) -> bool {
            e == Event::OnAclCheck
        }
        fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
            true
        }
    }

    fn info() -> ClientInfo {
        ClientInfo {
            id: "c".into(),
            username: None,
            remote: Arc::from("r"),
            listener: Arc::from("l"),
            protocol: ProtocolVersion::V5,
        }
    }

    fn connect() -> Connect {
        Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: "c".into(),
            username: None,
            password: None,
            will: None,
            properties: Default::default(),
        }
    }

    #[test]
    fn empty_stack_denies_everything() {
        let h = Hooks::new();
        assert!(!h.on_connect_authenticate(&info(), &connect()));
        assert!(!h.on_acl_check(&info(), "t", Access::Write));
        assert!(h.on_auth_packet(&info(), &Auth::default()).is_err());
    }

    #[test]
    fn events_not_provided_are_skipped() {
        let hook = Arc::new(AclOnly(AtomicUsize::new(0)));
        let mut h = Hooks::new();
        h.add(hook.clone());
        assert!(h.provides(Event::OnAclCheck));
        assert!(!h.provides(Event::OnConnectAuthenticate));
        assert!(h.on_acl_check(&info(), "t", Access::Read));
        // Not provided: never called, so the CONNECT stays denied.
        assert!(!h.on_connect_authenticate(&info(), &connect()));
        assert_eq!(hook.0.load(Ordering::SeqCst), 0);
    }

    /// Appends its tag to payloads, topics of subscribe filters and AUTH data, so the order
    /// in which the stack runs shows in the result.
    struct Tag(&'static str);

    impl Hook for Tag {
        fn id(&self) -> &str {
            self.0
        }
        fn provides(&self, e: Event) -> bool {
            matches!(
                e,
                Event::OnPublish | Event::OnAuthPacket | Event::OnPacketRead | Event::OnWill
            )
        }
        fn on_publish(&self, _: &ClientInfo, p: &mut Publish) -> Result<(), ReasonCode> {
            if p.payload.as_ref() == b"reject" {
                return Err(ReasonCode::PayloadFormatInvalid);
            }
            let mut v = p.payload.to_vec();
            v.extend_from_slice(self.0.as_bytes());
            p.payload = v.into();
            Ok(())
        }
        fn on_auth_packet(&self, _: &ClientInfo, a: &Auth) -> Result<Auth, ReasonCode> {
            let mut out = a.clone();
            let mut v = a
                .properties
                .authentication_data
                .clone()
                .unwrap_or_default()
                .to_vec();
            v.extend_from_slice(self.0.as_bytes());
            out.properties.authentication_data = Some(v.into());
            Ok(out)
        }
        fn on_packet_read(&self, _: &ClientInfo, p: &mut Packet) -> Result<(), ReasonCode> {
            if let Packet::Publish(p) = p {
                p.topic = format!("{}{}", p.topic, self.0).into();
            }
            Ok(())
        }
        fn on_will(&self, _: &str, w: &mut Will) {
            w.topic = format!("{}{}", w.topic, self.0).into();
        }
    }

    #[test]
    fn modifying_events_chain_in_the_order_added_and_stop_at_a_refusal() {
        let mut h = Hooks::new();
        h.add(Arc::new(Tag("1")));
        h.add(Arc::new(Tag("2")));
        let mut p = Publish {
            dup: false,
            qos: moco_codec::QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: bytes::Bytes::from_static(b"x"),
            properties: Default::default(),
        };
        h.on_publish(&info(), &mut p).unwrap();
        assert_eq!(&p.payload[..], b"x12");
        let mut pk = Packet::Publish(p.clone());
        h.on_packet_read(&info(), &mut pk).unwrap();
        assert!(matches!(&pk, Packet::Publish(p) if &*p.topic == "t12"));
        let a = h.on_auth_packet(&info(), &Auth::default()).unwrap();
        assert_eq!(
            a.properties.authentication_data.as_deref(),
            Some(&b"12"[..])
        );
        let mut w = Will {
            topic: "w".into(),
            payload: bytes::Bytes::new(),
            qos: moco_codec::QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        };
        h.on_will("c", &mut w);
        assert_eq!(&*w.topic, "w12");
        p.payload = bytes::Bytes::from_static(b"reject");
        assert_eq!(
            h.on_publish(&info(), &mut p),
            Err(ReasonCode::PayloadFormatInvalid)
        );
    }

    #[test]
    fn all_events_lists_every_variant_once() {
        assert_eq!(ALL_EVENTS.len(), Event::StoredSysInfo as usize + 1);
        for (i, e) in ALL_EVENTS.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?} out of order");
        }
    }

    #[test]
    fn every_event_has_its_own_bit() {
        let mut all = EventSet::EMPTY;
        for e in ALL_EVENTS {
            assert!(!all.contains(e), "{e:?} shares a bit");
            all.insert(e);
        }
    }
}

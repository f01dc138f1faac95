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

use bytestring::ByteString;
use moco_codec::{
    Auth, Connect, Packet, PacketType, ProtocolVersion, Publish, ReasonCode, Subscribe, Unsubscribe,
};

use crate::listener::{ListenerKind, TlsIdentity};
use crate::message::Will;
use crate::options::Options;
use crate::router::Target;
use crate::sys::SysSnapshot;

mod allow;
mod event;
mod stack;

pub use crate::error::HookError;
pub use crate::records::{
    StoredClient, StoredInflight, StoredQueued, StoredSubscription, StoredWill,
};
pub use crate::state::DropReason;
pub use allow::AllowAll;
pub use event::{Event, EventSet, ALL_EVENTS};
pub use stack::Hooks;

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
    /// The kind of listener the client came through.
    pub kind: ListenerKind,
    /// The verified client certificate on a mutual-TLS listener (common name, SANs, DER).
    pub tls: Option<Arc<TlsIdentity>>,
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
            kind: ListenerKind::Other,
            tls: None,
        }
    }

    /// The remote address as a socket address, for IP transports (parsed from
    /// [`ClientInfo::remote`], which is kept as text so that each client pays for one form).
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.remote.parse().ok()
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

    /// Loader: the messages queued for sessions, in queue order per client, to restore at
    /// start (sent when their client comes back).
    fn stored_queued_messages(&self) -> Result<Vec<StoredQueued>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the wills of clients that were connected when the broker stopped without
    /// closing their connections; published at start, after their delay.
    fn stored_wills(&self) -> Result<Vec<StoredWill>, HookError> {
        Ok(Vec::new())
    }

    /// Loader: the `$SYS` counters to restore at start (restored only with
    /// [`Compatibilities::restore_sys_info_on_restart`](crate::Compatibilities)).
    fn stored_sys_info(&self) -> Result<Option<SysSnapshot>, HookError> {
        Ok(None)
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
            kind: ListenerKind::Other,
            tls: None,
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

//! The broker core: client registry, sessions, routing, retained messages, wills, `$SYS`.
//!
//! Everything here is synchronous and takes `now` from the caller; locks are held for
//! microseconds and never across I/O. A client's [`ClientState`] lives in its
//! [`ClientHandle`] behind a mutex: the connection's driver locks it to feed packets and drain
//! transmits, and publishers lock it briefly to queue a delivery.
//!
//! One concern a file, each an `impl Broker` block over the one [`Broker`] struct defined
//! here: `connect` (a CONNECT's verdict and the CONNACK), `registry` (who is connected, ending
//! connections and sessions, injected clients), `route` (a message to its subscribers, the
//! per-thread batch), `acl` (read access per delivery), `subscribe`, `retained`, `expiry`
//! (wills, session and retained expiry), `inline` (the embedding program's client), `sys`
//! (`$SYS`), `restore` (stored sessions at start-up); [`flow`] is publisher back-pressure and
//! `order` the order of packets across connections.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use moco_codec::{
    Auth, ConnAck, ConnAckProperties, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::error::{CloseReason, Error, ProtocolViolation};
use crate::hooks::{Access, ClientInfo, DisconnectInfo, Hooks};
use crate::message::{Delivery, Message, Will};
use crate::options::Options;
use crate::registry::{LocalRegistry, SessionRegistry};
use crate::retained::{LocalRetained, RetainedStore};
use crate::router::{LocalRouter, Router, Target};
use crate::sink::{SessionEvent, SessionSink};
use crate::state::{ClientState, ConnLimits, Note, Session};

mod acl;
mod connect;
mod expiry;
pub mod flow;
mod inline;
pub(crate) mod order;
mod registry;
mod restore;
mod retained;
mod route;
mod subscribe;
mod sys;
#[cfg(test)]
mod tests;

use connect::{limits_qos, obscure};
use expiry::PendingWill;
pub use inline::InlineHandler;
use inline::InlineSub;
pub(crate) use route::WakeBatch;
use route::BROKER_IDS;

/// One client known to the broker (connected, or disconnected with a live session).
#[derive(Debug)]
pub struct ClientHandle {
    /// What hooks see of the client.
    pub info: ClientInfo,
    /// The protocol state.
    pub state: Mutex<ClientState>,
    /// Woken when there is something to transmit or the connection must close (the writer).
    pub notify: Notify,
    /// Woken when the connection must close (the reader, which may be idle).
    pub closing: Notify,
    /// Boxed: a `Will` is over 200 bytes and most clients have none.
    will: Mutex<Option<Box<Will>>>,
    /// When the session expires (set while disconnected).
    expires_at: Mutex<Option<Instant>>,
    taken_over: AtomicBool,
    /// Set by the reader once the connection has been quiet for a while: the writer then
    /// shrinks its batch (see `driver::write_loop`).
    pub(crate) trim: AtomicBool,
    /// Publisher back-pressure (see [`crate::broker::flow`]).
    pub(crate) flow: crate::broker::flow::FlowControl,
    /// Makes the handle its idle reader's waker (see [`crate::broker::order`]).
    pub(crate) idle: crate::broker::order::IdleWake,
    /// Some subscription of this client may be denied a delivery by the ACL hooks (its
    /// session's `acl_checked` is not empty): routing then checks each message to it. Read
    /// without a lock on every delivery; written under the state lock.
    acl_read: AtomicBool,
    /// Made by [`Broker::add_injected_client`] and not ended yet: no connection drives it.
    injected: AtomicBool,
}

impl ClientHandle {
    /// Queues a delivery; returns the notes to report (outside locks), whether the publisher
    /// of this QoS 1/2 delivery should wait (see [`crate::broker::flow`]) and whether the writer must
    /// be woken (it had nothing to send).
    fn deliver(&self, now: Instant, d: Delivery) -> (Vec<Note>, bool, bool) {
        let qos = d.qos;
        let (notes, congested, wake) = {
            let mut st = self.state.lock();
            // A wake-up costs far more than queueing. When there was already something to
            // send, the change that made it so notified the writer (or the writer saw it when
            // it last looked, and has not slept since): no second notification is needed.
            // (A first message that must wait for quota still wakes it: polling it is what
            // reports an exhausted packet-id space.)
            let idle = !st.wants_transmit();
            let was_empty = st.queued() == 0;
            st.deliver(now, d);
            let wake = idle && (was_empty || st.wants_transmit());
            let congested = qos != QoS::AtMostOnce && self.flow.congested(&st);
            (st.take_notes(), congested, wake)
        };
        (notes, congested, wake)
    }

    /// Removes `filter` from the session (the router's side is the caller's).
    fn forget_subscription(&self, filter: &str) {
        let mut st = self.state.lock();
        st.session.subscriptions.remove(filter);
        st.session.acl_checked.remove(filter);
        self.acl_read
            .store(!st.session.acl_checked.is_empty(), Ordering::Relaxed);
    }

    /// Whether each message to this client must pass an ACL read check.
    #[inline]
    fn checks_reads(&self) -> bool {
        self.acl_read.load(Ordering::Relaxed)
    }

    /// What an embedder may see of this client.
    pub fn snapshot(&self) -> ClientSnapshot {
        let i = &self.info;
        ClientSnapshot {
            id: i.id.clone(),
            username: i.username.clone(),
            remote: i.remote.clone(),
            listener: i.listener.clone(),
            protocol: i.protocol,
            connected: self.state.lock().is_connected(),
            injected: self.injected.load(Ordering::Relaxed),
        }
    }

    /// Closes the connection with `reason` (DISCONNECT for v5) and wakes the driver.
    pub fn close(&self, why: impl Into<CloseReason>) {
        self.state.lock().close(why);
        self.notify.notify_one();
        self.closing.notify_one();
    }
}

/// A client as an embedder sees it ([`Broker::clients`], [`Server::client`](crate::Server::client)):
/// a copy taken at one moment, so holding it keeps nothing of the client alive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSnapshot {
    /// The client identifier.
    pub id: ByteString,
    /// The user name it connected with.
    pub username: Option<ByteString>,
    /// The peer's address as its listener described it.
    pub remote: Arc<str>,
    /// The listener it came through.
    pub listener: Arc<str>,
    /// Its protocol level.
    pub protocol: ProtocolVersion,
    /// False while its session waits for it to come back (or to expire).
    pub connected: bool,
    /// Made by [`Broker::add_injected_client`]: it has no connection, packets are injected.
    pub injected: bool,
}

/// Reports a client's notes to the hooks, the `$SYS` counters and the session sink; called
/// outside locks, so that hooks may call back into the broker.
pub(crate) fn report_notes(broker: &Broker, id: &str, notes: Vec<Note>) {
    use crate::hooks::Event;
    use crate::sink::SessionEvent as E;
    let (hooks, info) = (&broker.hooks, &broker.info);
    let sink = broker.sink.as_deref();
    for n in notes {
        match n {
            Note::Dropped(m, why) => {
                info.messages_dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(sink) = sink {
                    sink.record(E::Dropped {
                        client_id: id,
                        message: &m,
                    });
                }
                if hooks.provides(Event::OnPublishDropped) {
                    let p = Publish {
                        dup: false,
                        qos: m.qos,
                        retain: m.retain,
                        topic: m.topic.clone(),
                        packet_id: None,
                        payload: m.payload.clone(),
                        properties: m.properties.clone(),
                    };
                    hooks.on_publish_dropped(id, &p, why);
                }
            }
            Note::QosComplete(packet_id) => {
                if let Some(sink) = sink {
                    sink.record(E::Completed {
                        client_id: id,
                        packet_id,
                    });
                }
                hooks.on_qos_complete(id, packet_id)
            }
            Note::QosDropped(packet_id) => {
                info.inflight_dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(sink) = sink {
                    sink.record(E::Abandoned {
                        client_id: id,
                        packet_id,
                    });
                }
                hooks.on_qos_dropped(id, packet_id);
            }
            Note::PacketIdExhausted => hooks.on_packet_id_exhausted(id),
            Note::Queued(delivery) => {
                if let Some(sink) = sink {
                    sink.record(E::Queued {
                        client_id: id,
                        delivery: &delivery,
                    });
                }
            }
            Note::Dequeued(message) => {
                if let Some(sink) = sink {
                    sink.record(E::Dequeued {
                        client_id: id,
                        message: &message,
                    });
                }
            }
            Note::InFlight(packet_id, delivery) => {
                if let Some(sink) = sink {
                    sink.record(E::InFlight {
                        client_id: id,
                        packet_id,
                        delivery: &delivery,
                    });
                }
            }
            Note::Qos2Received(packet_id) => {
                if let Some(sink) = sink {
                    sink.record(E::Qos2Received {
                        client_id: id,
                        packet_id,
                    });
                }
            }
            Note::Qos2Released(packet_id) => {
                if let Some(sink) = sink {
                    sink.record(E::Qos2Released {
                        client_id: id,
                        packet_id,
                    });
                }
            }
        }
    }
}

pub use crate::sys::SysInfo;

/// Result of a CONNECT: the new client, or the CONNACK that refuses it.
#[derive(Debug)]
pub enum ConnectOutcome {
    /// Accepted: the CONNACK is queued in the client's state.
    Accepted(Arc<ClientHandle>),
    /// Refused with this CONNACK (send it, then close).
    Refused(Box<ConnAck>),
}

/// The seams a broker is built with ([`Broker::with_seams`]), each a small trait whose
/// in-memory implementation is the default (`None`): where a cluster or a persistence layer
/// plugs in without touching the engine.
#[derive(Default, Clone)]
#[non_exhaustive]
pub struct Seams {
    /// Who gets a message ([`LocalRouter`] by default).
    pub router: Option<Arc<dyn Router>>,
    /// Where retained messages live ([`LocalRetained`] by default).
    pub retained: Option<Arc<dyn RetainedStore>>,
    /// Who owns a client id ([`LocalRegistry`] by default).
    pub registry: Option<Arc<dyn SessionRegistry>>,
    /// What persistence records (none by default: nothing is recorded).
    pub sink: Option<Arc<dyn SessionSink>>,
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams")
            .field("router", &self.router.is_some())
            .field("retained", &self.retained.is_some())
            .field("registry", &self.registry.is_some())
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

/// The broker: shared by every connection.
pub struct Broker {
    /// Tells this broker's cached routes from another's (see [`RouteCache`]).
    id: u64,
    /// Changes whenever a subscription or the client registry changes: routes cached before
    /// are stale.
    routes: AtomicU64,
    options: Options,
    hooks: Hooks,
    clients: RwLock<HashMap<ByteString, Arc<ClientHandle>, moco_topic::SeededState>>,
    router: Arc<dyn Router>,
    retained: Arc<dyn RetainedStore>,
    registry: Arc<dyn SessionRegistry>,
    sink: Option<Arc<dyn SessionSink>>,
    /// The sink holds acknowledgements until durable ([`SessionSink::syncs`]).
    sync_acks: bool,
    wills: Mutex<Vec<PendingWill>>,
    inline_subs: RwLock<Vec<InlineSub>>,
    /// `inline_subs` is not empty (read per message without its lock).
    has_inline_subs: AtomicBool,
    session_deadlines: Mutex<BTreeSet<(Instant, ByteString)>>,
    retained_deadlines: Mutex<BTreeSet<(Instant, ByteString)>>,
    /// `$SYS` counters.
    pub info: SysInfo,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("options", &self.options)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with these options and hooks and the local router.
    pub fn new(options: Options, hooks: Hooks) -> Self {
        let strategy = options.capabilities.shared_sub_strategy;
        Self::with_router(
            options,
            hooks,
            Arc::new(LocalRouter::with_strategy(strategy)),
        )
    }

    /// A broker with a custom router.
    pub fn with_router(options: Options, hooks: Hooks, router: Arc<dyn Router>) -> Self {
        Self::with_stores(options, hooks, router, Arc::new(LocalRetained::new()))
    }

    /// A broker with a custom router and retained store.
    pub fn with_stores(
        options: Options,
        hooks: Hooks,
        router: Arc<dyn Router>,
        retained: Arc<dyn RetainedStore>,
    ) -> Self {
        Self::with_seams(
            options,
            hooks,
            Seams {
                router: Some(router),
                retained: Some(retained),
                ..Seams::default()
            },
        )
    }

    /// A broker with the given seams (see [`Seams`]): what a cluster or a persistent store
    /// plugs into. A seam left `None` is the in-memory default.
    pub fn with_seams(options: Options, hooks: Hooks, seams: Seams) -> Self {
        let strategy = options.capabilities.shared_sub_strategy;
        Broker {
            options: options.normalized(),
            hooks,
            clients: RwLock::new(HashMap::default()),
            router: seams
                .router
                .unwrap_or_else(|| Arc::new(LocalRouter::with_strategy(strategy))),
            retained: seams
                .retained
                .unwrap_or_else(|| Arc::new(LocalRetained::new())),
            registry: seams.registry.unwrap_or_else(|| Arc::new(LocalRegistry)),
            sync_acks: seams.sink.as_ref().is_some_and(|s| s.syncs()),
            sink: seams.sink,
            wills: Mutex::new(Vec::new()),
            inline_subs: RwLock::new(Vec::new()),
            has_inline_subs: AtomicBool::new(false),
            session_deadlines: Mutex::new(BTreeSet::new()),
            retained_deadlines: Mutex::new(BTreeSet::new()),
            info: SysInfo::default(),
            shutting_down: AtomicBool::new(false),
            id: BROKER_IDS.fetch_add(1, Ordering::Relaxed),
            routes: AtomicU64::new(0),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Appends a hook (only while the broker is not shared yet).
    pub fn add_hook(&mut self, hook: Arc<dyn crate::hooks::Hook>) {
        self.hooks.add(hook);
    }

    /// The hook stack.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.router.len()
    }

    /// Starts shutting down: refuses new connections and closes every connected client with
    /// 0x8B (server shutting down).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        for h in handles {
            let connected = h.state.lock().is_connected();
            if connected {
                h.close(CloseReason::ServerShuttingDown);
            }
        }
    }

    /// Whether acknowledgements of inbound QoS 1/2 messages wait until what the messages
    /// changed is durable (a session sink with [`SessionSink::syncs`]).
    pub fn syncs_acks(&self) -> bool {
        self.sync_acks
    }

    /// What held acknowledgements wait for (see [`SessionSink::durable`]); `None`: nothing.
    pub fn durable(&self) -> Option<crate::sink::Durable> {
        self.sink.as_ref()?.durable()
    }

    /// True once [`Broker::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

//! The broker core: client registry, sessions, routing, retained messages, wills, `$SYS`.
//!
//! Everything here is synchronous and takes `now` from the caller; locks are held for
//! microseconds and never across I/O. A client's [`ClientState`] lives in its
//! [`ClientHandle`] behind a mutex: the connection's driver locks it to feed packets and drain
//! transmits, and publishers lock it briefly to queue a delivery.

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
use moco_topic::RetainedIndex;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::error::Error;
use crate::hooks::{Access, ClientInfo, DisconnectInfo, Hooks};
use crate::message::{Delivery, Message, Will};
use crate::options::Options;
use crate::router::{LocalRouter, Router, Target};
use crate::state::{ClientState, ConnLimits, Note, Session};

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
    /// Publisher back-pressure (see [`crate::flow`]).
    pub(crate) flow: crate::flow::FlowControl,
    /// Makes the handle its idle reader's waker (see [`crate::order`]).
    pub(crate) idle: crate::order::IdleWake,
    /// Some subscription of this client may be denied a delivery by the ACL hooks (its
    /// session's `acl_checked` is not empty): routing then checks each message to it. Read
    /// without a lock on every delivery; written under the state lock.
    acl_read: AtomicBool,
    /// Made by [`Broker::add_injected_client`] and not ended yet: no connection drives it.
    injected: AtomicBool,
}

impl ClientHandle {
    /// Queues a delivery; returns the notes to report (outside locks), whether the publisher
    /// of this QoS 1/2 delivery should wait (see [`crate::flow`]) and whether the writer must
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
    pub fn close(&self, reason: ReasonCode) {
        self.state.lock().close(reason);
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

pub(crate) fn report_notes(hooks: &Hooks, info: &SysInfo, id: &str, notes: Vec<Note>) {
    use crate::hooks::Event;
    for n in notes {
        match n {
            Note::Dropped(m, why) => {
                info.messages_dropped.fetch_add(1, Ordering::Relaxed);
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
            Note::QosComplete(pid) => hooks.on_qos_complete(id, pid),
            Note::QosDropped(pid) => {
                info.inflight_dropped.fetch_add(1, Ordering::Relaxed);
                hooks.on_qos_dropped(id, pid);
            }
            Note::PacketIdExhausted => hooks.on_packet_id_exhausted(id),
        }
    }
}

pub use crate::sys::SysInfo;

thread_local! {
    static TARGETS: std::cell::Cell<Vec<Target>> = const { std::cell::Cell::new(Vec::new()) };
    /// Whether a [`WakeBatch`] is open on this thread.
    static BATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The writers it will wake.
    static DEFERRED: std::cell::Cell<Vec<Arc<ClientHandle>>> =
        const { std::cell::Cell::new(Vec::new()) };
    /// The size of the read buffer whose packets the open batch handles (0: none).
    static READ_BUFFER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The targets of the last message routed on this thread (see [`RouteCache`]).
    static ROUTE_CACHE: std::cell::Cell<Option<Box<RouteCache>>> =
        const { std::cell::Cell::new(None) };
}

/// The subscribers the last message routed in this thread's [`WakeBatch`] went to, resolved to
/// their handles, valid while no subscription or client changed since (the broker's `routes`
/// generation) and dropped when the batch closes. A publisher sends a read buffer's worth of
/// messages on one topic at a time: after the first, they skip the trie's lock and walk, and
/// the registry's lock and one hash lookup per subscriber.
struct RouteCache {
    /// Which broker (a process may run several, one after another at the same address).
    broker: u64,
    generation: u64,
    topic: ByteString,
    publisher: Option<ByteString>,
    /// The publisher's handle, for back-pressure.
    publisher_handle: Option<Arc<ClientHandle>>,
    targets: Vec<CachedTarget>,
}

struct CachedTarget {
    handle: Arc<ClientHandle>,
    qos: u8,
    retain_as_published: bool,
    sub_ids: Vec<u32>,
}

/// The size of the read buffer the packets being handled on this thread were read into, 0
/// outside a connection's batch: what a message made from one of them keeps alive (see
/// `Pins` in [`crate::state`]).
pub(crate) fn read_buffer_size() -> u32 {
    READ_BUFFER.get()
}

/// Back-pressure: the publisher's reader waits for the congested subscriber `h`.
fn wait_for(publisher: Option<&Arc<ClientHandle>>, h: &Arc<ClientHandle>) {
    if let Some(p) = publisher {
        if !Arc::ptr_eq(p, h) {
            p.flow.wait_for(h);
        }
    }
}

/// Wakes the writer of `h`: now, or when the open [`WakeBatch`] of this thread closes.
fn wake_writer(h: &Arc<ClientHandle>) {
    if BATCHING.get() {
        let mut v = DEFERRED.take();
        v.push(h.clone());
        DEFERRED.set(v);
    } else {
        h.notify.notify_one();
    }
}

/// While a reader handles the packets of one read, the subscribers' writers it gives work to
/// are woken once, when the batch closes (this guard is dropped), not at their first message:
/// a writer woken at once runs on the other worker while messages keep coming, and writes
/// them a few per syscall. The batch is synchronous (no `.await` while it is open), so the
/// wake-ups wait at most for the packets of one read buffer.
pub(crate) struct WakeBatch {
    opened: bool,
}

impl WakeBatch {
    /// Opens a batch on this thread for the packets of a read buffer of `read_buffer` bytes
    /// (a nested one does nothing).
    pub(crate) fn open(read_buffer: usize) -> WakeBatch {
        let opened = !BATCHING.replace(true);
        if opened {
            READ_BUFFER.set(u32::try_from(read_buffer).unwrap_or(u32::MAX));
        }
        WakeBatch { opened }
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        if !self.opened {
            return;
        }
        BATCHING.set(false);
        READ_BUFFER.set(0);
        drop(ROUTE_CACHE.take());
        let mut v = DEFERRED.take();
        for h in v.drain(..) {
            h.notify.notify_one();
        }
        DEFERRED.set(v);
    }
}

struct PendingWill {
    due: Instant,
    client_id: ByteString,
    will: Will,
}

/// A handler of messages for an inline subscription.
pub type InlineHandler = Arc<dyn Fn(&Publish) + Send + Sync>;

struct InlineSub {
    filter: String,
    id: u32,
    handler: InlineHandler,
}

/// Result of a CONNECT: the new client, or the CONNACK that refuses it.
#[derive(Debug)]
pub enum ConnectOutcome {
    /// Accepted: the CONNACK is queued in the client's state.
    Accepted(Arc<ClientHandle>),
    /// Refused with this CONNACK (send it, then close).
    Refused(Box<ConnAck>),
}

/// Numbers brokers for [`RouteCache`].
static BROKER_IDS: AtomicU64 = AtomicU64::new(0);

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
    retained: RwLock<RetainedIndex<Arc<Message>>>,
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

fn obscure(options: &Options, code: ReasonCode) -> ReasonCode {
    if options.capabilities.compatibilities.obscure_not_authorized
        && code == ReasonCode::NotAuthorized
    {
        ReasonCode::UnspecifiedError
    } else {
        code
    }
}

fn refuse(code: ReasonCode) -> ConnectOutcome {
    ConnectOutcome::Refused(Box::new(ConnAck {
        session_present: false,
        reason_code: code,
        properties: ConnAckProperties::default(),
    }))
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
        Broker {
            options: options.normalized(),
            hooks,
            clients: RwLock::new(HashMap::default()),
            router,
            retained: RwLock::new(RetainedIndex::new()),
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

    /// The client registered under `id`, if any.
    pub fn client(&self, id: &str) -> Option<Arc<ClientHandle>> {
        self.clients.read().get(id).cloned()
    }

    /// Every client known (connected, or away with a live session), as mochi's
    /// `Clients.GetAll`: for an admin view or to pick clients to act on.
    pub fn clients(&self) -> Vec<ClientSnapshot> {
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        handles.iter().map(|h| h.snapshot()).collect()
    }

    /// The clients that came through listener `listener` (mochi's `Clients.GetByListener`).
    pub fn clients_on_listener(&self, listener: &str) -> Vec<ClientSnapshot> {
        let handles: Vec<_> = self
            .clients
            .read()
            .values()
            .filter(|h| &*h.info.listener == listener)
            .cloned()
            .collect();
        handles.iter().map(|h| h.snapshot()).collect()
    }

    /// Disconnects client `id` from the server's side (mochi's `DisconnectClient`): a v5
    /// client gets DISCONNECT with `reason` (e.g. 0x98 administrative action), a v3 client a
    /// plain close; its will and session then go as for any disconnection. Returns false if
    /// it was not connected.
    pub fn disconnect_client(&self, id: &str, reason: ReasonCode) -> Result<bool, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        if !h.state.lock().is_connected() {
            return Ok(false);
        }
        h.close(reason);
        // A connection's driver reports its end; an injected client has none.
        self.end_injected(&h);
        Ok(true)
    }

    /// Removes client `id`'s subscription to `filter` without an UNSUBSCRIBE from it (as
    /// mochi's `UnsubscribeClient`, for one filter); `OnUnsubscribed` runs, so a storage hook
    /// forgets it too. Returns whether it existed.
    pub fn unsubscribe_client(&self, id: &str, filter: &str) -> Result<bool, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        let existed = self.router.unsubscribe(&h.info.id, filter);
        self.routes_changed();
        h.forget_subscription(filter);
        if existed {
            let unsub = Unsubscribe {
                packet_id: 0,
                filters: vec![ByteString::from(filter)],
                properties: Default::default(),
            };
            self.hooks.on_unsubscribed(&h.info, &unsub);
        }
        Ok(existed)
    }

    /// Registers a client that has no connection (mochi's `NewClient` + `Clients.Add`), so
    /// that the embedding program can act as it with
    /// [`Server::inject_packet`](crate::Server::inject_packet) and read what the broker sends
    /// it with [`Broker::take_injected_output`]. It connects as a v5 client with a clean
    /// session through the same hooks as any CONNECT (remote `injected`, listener
    /// `listener`), taking over a client with the same id; a refusal is
    /// [`Error::Refused`].
    pub fn add_injected_client(
        &self,
        id: &str,
        listener: &str,
    ) -> Result<Arc<ClientHandle>, Error> {
        let mut c = Connect::new(ProtocolVersion::V5, id);
        c.keep_alive = 0;
        let outcome = self.connect(
            Instant::now(),
            &c,
            Arc::from("injected"),
            Arc::from(listener),
        );
        match outcome {
            ConnectOutcome::Accepted(h) => {
                h.injected.store(true, Ordering::Relaxed);
                Ok(h)
            }
            ConnectOutcome::Refused(ack) => Err(Error::Refused(ack.reason_code)),
        }
    }

    /// Takes what the broker has to send to injected client `id`, as packets, in order
    /// (its CONNACK, acknowledgements, deliveries with their packet ids); what is not taken
    /// waits in its queues, bounded as any client's.
    pub fn take_injected_output(&self, id: &str) -> Result<Vec<Packet>, Error> {
        let h = self.client(id).ok_or(Error::NoSuchClient)?;
        if !h.injected.load(Ordering::Relaxed) {
            return Err(Error::NotInjected);
        }
        let now = Instant::now();
        let mut out = Vec::new();
        let mut st = h.state.lock();
        while let Some(t) = st.poll_transmit(now) {
            out.push(match t {
                crate::state::Transmit::Packet(p) => p,
                crate::state::Transmit::Publish {
                    delivery,
                    packet_id,
                    dup,
                    alias,
                } => Packet::Publish(
                    delivery
                        .msg
                        .to_publish(&delivery.params(dup, packet_id, alias), now),
                ),
            });
        }
        let notes = st.take_notes();
        drop(st);
        report_notes(&self.hooks, &self.info, &h.info.id, notes);
        Ok(out)
    }

    /// Ends injected client `h` as a connection's driver would when it closes (once).
    pub(crate) fn end_injected(&self, h: &Arc<ClientHandle>) {
        if h.injected.swap(false, Ordering::Relaxed) {
            if h.taken_over.load(Ordering::Relaxed) {
                self.info.clients_connected.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.disconnected(Instant::now(), h);
            }
        }
    }

    /// Number of clients known (connected or with a live session).
    pub fn client_count(&self) -> usize {
        self.clients.read().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.router.len()
    }

    /// Handles a CONNECT that arrived at `now` from `remote` on `listener` (no enhanced
    /// authentication: a CONNECT carrying an authentication method is refused with 0x8C).
    pub fn connect(
        &self,
        now: Instant,
        connect: &Connect,
        remote: Arc<str>,
        listener: Arc<str>,
    ) -> ConnectOutcome {
        self.connect_with(now, connect, remote, listener, None)
    }

    /// Handles a CONNECT; `enhanced` is the final AUTH of a completed enhanced
    /// authentication exchange (MQTT 5 §4.12), which then replaces `OnConnectAuthenticate`
    /// and whose method and data go into CONNACK.
    pub fn connect_with(
        &self,
        now: Instant,
        connect: &Connect,
        remote: Arc<str>,
        listener: Arc<str>,
        enhanced: Option<Auth>,
    ) -> ConnectOutcome {
        let caps = &self.options.capabilities;
        let version = connect.protocol;
        let v5 = version.is_v5();
        if self.shutting_down.load(Ordering::Relaxed) {
            return refuse(ReasonCode::ServerUnavailable);
        }
        if version.level() < caps.minimum_protocol_version {
            return refuse(ReasonCode::UnsupportedProtocolVersion);
        }
        let mut assigned = None;
        let client_id: ByteString = if connect.client_id.is_empty() {
            if version == ProtocolVersion::V3 || (!v5 && !connect.clean_start) {
                return refuse(ReasonCode::ClientIdentifierNotValid);
            }
            let id = ByteString::from(format!("moco-{:016x}", rand::random::<u64>()));
            assigned = Some(id.clone());
            id
        } else {
            // A copy, not a slice: the CONNECT's strings share the connection's read buffer,
            // which a slice kept for the client's lifetime would pin (2 KiB per idle client).
            ByteString::from(&*connect.client_id)
        };
        if caps.maximum_clients > 0
            && self.info.clients_connected.load(Ordering::Relaxed) >= caps.maximum_clients
        {
            return refuse(if v5 {
                ReasonCode::QuotaExceeded
            } else {
                ReasonCode::ServerUnavailable
            });
        }
        let info = ClientInfo {
            id: client_id.clone(),
            username: connect.username.as_deref().map(ByteString::from),
            remote,
            listener,
            protocol: version,
        };
        // mochi's order: OnConnect, then authentication, then OnSessionEstablish.
        if let Err(code) = self.hooks.on_connect(&info, connect) {
            return refuse(code);
        }
        let method = connect.properties.authentication_method.as_ref();
        match (&enhanced, method) {
            (Some(_), Some(_)) => {}
            (None, Some(_)) => return refuse(ReasonCode::BadAuthenticationMethod),
            _ => {
                if !self.hooks.on_connect_authenticate(&info, connect) {
                    return refuse(obscure(&self.options, ReasonCode::BadUserNameOrPassword));
                }
            }
        }
        self.hooks.on_session_establish(&info, connect);

        // Session expiry (v5) or its v3 meaning: clean session ends with the connection,
        // otherwise the session lasts as long as the broker allows.
        let asked_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let expiry = asked_expiry.min(caps.maximum_session_expiry_interval);

        let mut keep_alive = connect.keep_alive;
        let mut server_keep_alive: Option<u16> = None;
        if caps.maximum_keep_alive > 0 && (keep_alive == 0 || keep_alive > caps.maximum_keep_alive)
        {
            keep_alive = caps.maximum_keep_alive;
            server_keep_alive = Some(keep_alive);
        }
        if !v5 && server_keep_alive.is_some() {
            // v3 has no way to tell the client a server keep-alive: it is held to the maximum
            // unknowingly (as Mosquitto's max_keepalive), or refused if so configured.
            if caps.compatibilities.refuse_v3_keep_alive_above_maximum {
                return refuse(ReasonCode::ClientIdentifierNotValid);
            }
            tracing::debug!(
                client = %client_id,
                asked = connect.keep_alive,
                held_to = keep_alive,
                "v3 keep-alive above the maximum"
            );
            server_keep_alive = None;
        }

        let cp = &connect.properties;
        let send_quota = cp
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(caps.maximum_inflight)
            .max(1);
        let limits = ConnLimits {
            version,
            keep_alive,
            send_quota,
            receive_maximum: caps.receive_maximum,
            topic_alias_maximum: if v5 { caps.topic_alias_maximum } else { 0 },
            client_maximum_packet_size: cp.maximum_packet_size.unwrap_or(0),
            maximum_qos: QoS::try_from(caps.maximum_qos).unwrap_or(QoS::ExactlyOnce),
            retain_available: caps.retain_available,
            max_pending: caps.maximum_client_writes_pending as usize,
            connect_expiry_zero: asked_expiry == 0,
            client_topic_alias_maximum: if v5 {
                cp.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
        };

        // Registry: take over a live connection, resume or discard an existing session.
        let mut wills_now = Vec::new();
        let mut ended = None;
        let (handle, session_present) = {
            let mut clients = self.clients.write();
            self.routes_changed();
            let mut session = None;
            if let Some(old) = clients.remove(&client_id) {
                old.taken_over.store(true, Ordering::Relaxed);
                self.end_injected(&old);
                let mut st = old.state.lock();
                let was_connected = st.is_connected();
                if was_connected {
                    st.close(ReasonCode::SessionTakenOver);
                }
                let old_session = std::mem::take(&mut st.session);
                drop(st);
                old.notify.notify_one();
                old.closing.notify_one();
                let expired = old.expires_at.lock().is_some_and(|t| t <= now);
                let resume = !connect.clean_start && old_session.expiry_interval > 0 && !expired;
                if let Some(w) = old.will.lock().take().map(|w| *w) {
                    // The old connection's will goes out now unless its session continues
                    // and the will was delayed.
                    if w.delay() == 0 || !resume {
                        wills_now.push((old.info.id.clone(), w));
                    }
                }
                // Delayed wills of the old connection: cancelled if the session resumes,
                // published now if it ends.
                let mut pending = self.wills.lock();
                let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut *pending)
                    .into_iter()
                    .partition(|w| w.client_id == client_id);
                *pending = others;
                drop(pending);
                if !resume {
                    wills_now.extend(mine.into_iter().map(|w| (w.client_id, w.will)));
                }
                if resume {
                    session = Some(old_session);
                } else {
                    ended = Some(old_session);
                }
            }
            let session_present = session.is_some();
            let mut session = session.unwrap_or_else(|| Session::new(expiry));
            session.expiry_interval = expiry;
            let mut st = ClientState::new(client_id.clone(), limits, session, now);
            st.set_note_completions(self.hooks.provides(crate::hooks::Event::OnQosComplete));
            st.set_inherit_ack_properties(!caps.compatibilities.no_inherited_properties_on_ack);

            let mut props = ConnAckProperties::default();
            if v5 {
                props.assigned_client_identifier = assigned;
                props.receive_maximum = Some(caps.receive_maximum);
                if caps.maximum_qos < 2 {
                    props.maximum_qos = Some(limits_qos(caps.maximum_qos));
                }
                if !caps.retain_available {
                    props.retain_available = Some(false);
                }
                if caps.maximum_packet_size > 0 {
                    props.maximum_packet_size = Some(caps.maximum_packet_size);
                }
                props.topic_alias_maximum = Some(caps.topic_alias_maximum);
                if !caps.wildcard_sub_available {
                    props.wildcard_subscription_available = Some(false);
                }
                if !caps.sub_id_available {
                    props.subscription_identifiers_available = Some(false);
                }
                if !caps.shared_sub_available {
                    props.shared_subscription_available = Some(false);
                }
                props.server_keep_alive = server_keep_alive;
                if let Some(a) = &enhanced {
                    props.authentication_method = method.cloned();
                    props.authentication_data = a.properties.authentication_data.clone();
                }
                if expiry != asked_expiry {
                    props.session_expiry_interval = Some(expiry);
                }
                if cp.request_response_information == Some(true)
                    || caps.compatibilities.always_return_response_info
                {
                    props.response_information =
                        Some(ByteString::from(self.options.response_information.clone()));
                }
            }
            st.send(Packet::from(ConnAck {
                session_present,
                reason_code: ReasonCode::Success,
                properties: props,
            }));
            // Copied out of the read buffer for the same reason as the client id.
            let will = connect.will.as_ref().map(|w| {
                Box::new(Will {
                    topic: ByteString::from(&*w.topic),
                    payload: Bytes::copy_from_slice(&w.payload),
                    qos: w.qos,
                    retain: w.retain,
                    properties: w.properties.clone(),
                })
            });
            let handle = Arc::new(ClientHandle {
                info: info.clone(),
                state: Mutex::new(st),
                notify: Notify::new(),
                closing: Notify::new(),
                will: Mutex::new(will),
                expires_at: Mutex::new(None),
                taken_over: AtomicBool::new(false),
                trim: AtomicBool::new(false),
                flow: Default::default(),
                idle: Default::default(),
                // A resumed session's subscriptions are checked until asked again for this
                // connection (below): the hooks' answers may depend on who connected.
                acl_read: AtomicBool::new(session_present),
                injected: AtomicBool::new(false),
            });
            clients.insert(client_id.clone(), handle.clone());
            (handle, session_present)
        };
        if session_present {
            self.refresh_acl(&handle);
        }
        if let Some(old_session) = ended {
            self.drop_session(&client_id, old_session);
        }
        for (id, w) in wills_now {
            self.publish_will(now, &id, w);
        }
        self.info.client_connected();
        self.hooks.on_session_established(&info, connect);
        ConnectOutcome::Accepted(handle)
    }

    fn drop_session(&self, client_id: &ByteString, session: Session) {
        let mut filters = session.subscriptions.keys().map(|f| &**f);
        self.router.remove_client(client_id, &mut filters);
        self.routes_changed();
        for inf in &session.inflight {
            self.hooks.on_qos_dropped(client_id, inf.packet_id);
        }
    }

    /// Called by the driver when a client's connection has ended (for whatever reason).
    pub fn disconnected(&self, now: Instant, handle: &Arc<ClientHandle>) {
        self.info.clients_connected.fetch_sub(1, Ordering::Relaxed);
        let (reason, expiry) = {
            let mut st = handle.state.lock();
            st.detach();
            (
                st.close_reason().unwrap_or(ReasonCode::UnspecifiedError),
                st.session.expiry_interval,
            )
        };
        let taken_over = handle.taken_over.load(Ordering::Relaxed);
        let session_ends = !taken_over && expiry == 0;
        self.hooks.on_disconnect(
            &handle.info,
            DisconnectInfo {
                reason,
                session_ends,
            },
        );
        if taken_over {
            return;
        }
        let will = handle.will.lock().take().map(|w| *w);
        if let Some(w) = will {
            // A normal DISCONNECT (0x00) suppresses the will; 0x04 and every error send it.
            if reason != ReasonCode::Success {
                let delay = w.delay().min(expiry);
                if delay == 0 {
                    self.publish_will(now, &handle.info.id, w);
                } else {
                    self.wills.lock().push(PendingWill {
                        due: now + Duration::from_secs(u64::from(delay)),
                        client_id: handle.info.id.clone(),
                        will: w,
                    });
                }
            }
        }
        if session_ends {
            let mut clients = self.clients.write();
            self.routes_changed();
            if clients
                .get(&handle.info.id)
                .is_some_and(|h| Arc::ptr_eq(h, handle))
            {
                clients.remove(&handle.info.id);
                drop(clients);
                let session = std::mem::take(&mut handle.state.lock().session);
                self.drop_session(&handle.info.id, session);
            }
        } else {
            // u32::MAX (v3 persistent sessions by default) effectively never expires.
            let deadline = now.checked_add(Duration::from_secs(u64::from(expiry)));
            *handle.expires_at.lock() = deadline;
            if let Some(t) = deadline {
                self.session_deadlines
                    .lock()
                    .insert((t, handle.info.id.clone()));
            }
        }
    }

    fn publish_will(&self, now: Instant, client_id: &str, mut will: Will) {
        self.hooks.on_will(client_id, &mut will);
        let p = will.to_publish();
        let publisher = self.client(client_id).map(|h| h.info.clone());
        if let Some(info) = &publisher {
            if !self.hooks.on_acl_check(info, &p.topic, Access::Write) {
                return;
            }
        }
        if p.topic.starts_with("$SYS") {
            return;
        }
        let msg = Arc::new(Message::from_publish(
            &p,
            Some(ByteString::from(client_id)),
            now,
            self.options.capabilities.maximum_message_expiry_interval,
        ));
        if p.retain {
            self.retain(&msg);
        }
        self.route(now, &msg);
        self.hooks.on_will_sent(client_id, &will);
    }

    /// Time-driven work: due wills, expired sessions, expired retained messages.
    pub fn handle_timeout(&self, now: Instant) {
        let due: Vec<PendingWill> = {
            let mut wills = self.wills.lock();
            let (due, keep) = std::mem::take(&mut *wills)
                .into_iter()
                .partition(|w| w.due <= now);
            *wills = keep;
            due
        };
        for w in due {
            self.publish_will(now, &w.client_id, w.will);
        }
        // Sessions and retained messages whose deadline passed: only the due entries of the
        // deadline indexes are looked at, never every client or retained message.
        let due_sessions = take_due(&self.session_deadlines, now);
        for (deadline, id) in due_sessions {
            let mut clients = self.clients.write();
            self.routes_changed();
            let Some(h) = clients.get(&id).cloned() else {
                continue;
            };
            // Still the same offline session with this deadline (not resumed since)?
            if *h.expires_at.lock() != Some(deadline) || h.state.lock().is_connected() {
                continue;
            }
            clients.remove(&id);
            drop(clients);
            let session = std::mem::take(&mut h.state.lock().session);
            self.drop_session(&id, session);
            self.hooks.on_client_expired(&id);
        }
        let due_retained = take_due(&self.retained_deadlines, now);
        if !due_retained.is_empty() {
            let mut gone = Vec::new();
            let mut r = self.retained.write();
            for (deadline, topic) in due_retained {
                if r.get(&topic)
                    .is_some_and(|m| m.expires_at == Some(deadline))
                {
                    r.remove(&topic);
                    gone.push(topic);
                }
            }
            drop(r);
            for topic in gone {
                self.hooks.on_retained_expired(&topic);
            }
        }
    }

    fn retain(&self, msg: &Arc<Message>) {
        if msg.payload.is_empty() {
            self.retained.write().remove(&msg.topic);
        } else {
            // A retained message may live for days: copy it out of the publisher's read
            // buffer so it does not pin that whole buffer.
            self.retained
                .write()
                .set(&msg.topic, Arc::new(msg.detached()));
            if let Some(t) = msg.expires_at {
                self.retained_deadlines
                    .lock()
                    .insert((t, msg.topic.clone()));
            }
        }
    }

    /// Routes a message to every matching subscriber; returns how many got it.
    pub fn route(&self, now: Instant, msg: &Arc<Message>) -> usize {
        // The targets buffer is reused across messages; a nested route (a hook publishing from
        // inside one) finds it taken and uses a fresh one.
        let mut targets = TARGETS.take();
        let n = self.route_targets(now, msg, &mut targets);
        targets.clear();
        TARGETS.set(targets);
        n
    }

    fn route_targets(&self, now: Instant, msg: &Arc<Message>, targets: &mut Vec<Target>) -> usize {
        // Read before routing: a change while routing leaves what is cached stale at once.
        let generation = self.routes.load(Ordering::Acquire);
        // Only within a reader's batch, which drops the cache when it closes: a cached handle
        // must not keep a client that has gone alive.
        let select_hook = self
            .hooks
            .provides(crate::hooks::Event::OnSelectSubscribers);
        let cacheable = BATCHING.get() && !select_hook;
        // Taken out while used: delivering may run hooks that route (and cache) themselves.
        let cached = ROUTE_CACHE.take().filter(|c| {
            cacheable
                && c.broker == self.id
                && c.generation == generation
                && c.topic == msg.topic
                && c.publisher == msg.publisher
        });
        if let Some(cache) = cached {
            self.deliver_inline(now, msg);
            let mut to_report = Vec::new();
            let mut n = 0;
            for t in &cache.targets {
                // Read live, not cached: a cached route never skips the check.
                if t.handle.checks_reads() && !self.may_read(&t.handle, msg) {
                    continue;
                }
                let sub = (t.qos, t.retain_as_published, t.sub_ids.clone());
                if self.deliver_to(now, msg, &t.handle, sub, &mut to_report) {
                    wait_for(cache.publisher_handle.as_ref(), &t.handle);
                }
                n += 1;
            }
            ROUTE_CACHE.set(Some(cache));
            self.report(to_report);
            return n;
        }
        let stable = self.router.route_stable(msg, targets);
        self.deliver_inline(now, msg);
        if select_hook {
            self.hooks.on_select_subscribers(&msg.topic, targets);
        }
        if targets.is_empty() {
            return 0;
        }
        let clients = self.clients.read();
        // Looked up when a subscriber is congested, or once for the cache.
        let publisher = || msg.publisher.as_ref().and_then(|id| clients.get(id));
        let mut cache = (stable && cacheable).then(|| RouteCache {
            broker: self.id,
            generation,
            topic: msg.topic.clone(),
            publisher: msg.publisher.clone(),
            publisher_handle: publisher().cloned(),
            targets: Vec::with_capacity(targets.len()),
        });
        let mut n = 0;
        let mut to_report = Vec::new();
        // Subscribers whose deliveries the ACL hooks must see, checked once the registry's
        // lock is released (no hook runs under a lock). Allocates only when there are some.
        let mut to_check = Vec::new();
        for t in targets.drain(..) {
            let Some(h) = clients.get(&t.client_id) else {
                continue;
            };
            if let Some(c) = cache.as_mut() {
                c.targets.push(CachedTarget {
                    handle: h.clone(),
                    qos: t.qos,
                    retain_as_published: t.retain_as_published,
                    sub_ids: t.sub_ids.clone(),
                });
            }
            let sub = (t.qos, t.retain_as_published, t.sub_ids);
            if h.checks_reads() {
                to_check.push((h.clone(), sub));
                continue;
            }
            if self.deliver_to(now, msg, h, sub, &mut to_report) {
                wait_for(publisher(), h);
            }
            n += 1;
        }
        let publisher = if to_check.is_empty() {
            None
        } else {
            publisher().cloned()
        };
        drop(clients);
        for (h, sub) in to_check {
            if !self.may_read(&h, msg) {
                continue;
            }
            if self.deliver_to(now, msg, &h, sub, &mut to_report) {
                wait_for(publisher.as_ref(), &h);
            }
            n += 1;
        }
        if let Some(c) = cache {
            ROUTE_CACHE.set(Some(Box::new(c)));
        }
        self.report(to_report);
        n
    }

    /// The per-delivery ACL check (as mochi's `publishToClient`): may `h` read `msg`'s topic?
    /// A refused delivery is skipped, not counted as dropped.
    #[cold]
    fn may_read(&self, h: &ClientHandle, msg: &Message) -> bool {
        self.hooks.on_acl_check(&h.info, &msg.topic, Access::Read)
    }

    /// Asks the hooks again which of `h`'s subscriptions may be denied a delivery, for the
    /// client `h` is now (its session's filters against its info).
    fn refresh_acl(&self, h: &ClientHandle) {
        let filters: Vec<ByteString> = h
            .state
            .lock()
            .session
            .subscriptions
            .keys()
            .cloned()
            .collect();
        let answers: Vec<(ByteString, bool)> = filters
            .into_iter()
            .map(|f| {
                let may_deny = self.hooks.acl_may_deny_within(&h.info, &f);
                (f, may_deny)
            })
            .collect();
        let mut st = h.state.lock();
        let session = &mut st.session;
        for (f, may_deny) in answers {
            // Unsubscribed meanwhile: nothing to keep.
            if may_deny && session.subscriptions.contains_key(&f) {
                session.acl_checked.insert(f);
            } else {
                session.acl_checked.remove(&f);
            }
        }
        h.acl_read
            .store(!session.acl_checked.is_empty(), Ordering::Relaxed);
    }

    /// Asks the hooks again, for every subscription of every client, whether an ACL hook may
    /// deny one of its deliveries: call it once what an ACL hook answers has changed (the
    /// `moco` binary does after reloading its ledger on SIGHUP), so that a new deny covers
    /// existing subscriptions too. Until it returns, a subscription judged undeniable before
    /// the change is delivered unchecked. Messages already queued are not checked again.
    ///
    /// ```
    /// use moco_engine::{AllowAll, Broker, Hooks, Options};
    /// use std::sync::Arc;
    ///
    /// let mut hooks = Hooks::new();
    /// hooks.add(Arc::new(AllowAll));
    /// let broker = Broker::new(Options::default(), hooks);
    /// // ... the ACL hook's rules change (e.g. `SharedLedger::reload`), then:
    /// broker.acl_changed();
    /// ```
    pub fn acl_changed(&self) {
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        for h in handles {
            self.refresh_acl(&h);
        }
    }

    /// Queues `msg` for subscriber `h` with its subscription's (QoS, retain-as-published,
    /// subscription ids); true when `h` is congested (see [`wait_for`]).
    fn deliver_to(
        &self,
        now: Instant,
        msg: &Arc<Message>,
        h: &Arc<ClientHandle>,
        (sub_qos, retain_as_published, sub_ids): (u8, bool, Vec<u32>),
        to_report: &mut Vec<(ByteString, Vec<Note>)>,
    ) -> bool {
        let d = Delivery {
            msg: msg.clone(),
            qos: msg.qos.min(limits_qos(sub_qos)),
            retain: msg.retain && retain_as_published,
            sub_ids,
        };
        let (notes, congested, wake) = h.deliver(now, d);
        if wake {
            wake_writer(h);
        }
        if !notes.is_empty() {
            to_report.push((h.info.id.clone(), notes));
        }
        congested
    }

    /// Reports delivery notes, outside the registry lock so that hooks may call back into
    /// the broker.
    fn report(&self, to_report: Vec<(ByteString, Vec<Note>)>) {
        for (id, notes) in to_report {
            report_notes(&self.hooks, &self.info, &id, notes);
        }
    }

    /// Subscriptions or the client registry changed: routes cached on any thread are stale.
    fn routes_changed(&self) {
        self.routes.fetch_add(1, Ordering::Release);
    }

    /// Handles a PUBLISH from `client` (already validated and de-aliased by its state);
    /// returns the reason code for its PUBACK/PUBREC.
    pub fn publish(&self, now: Instant, client: &ClientInfo, publish: Publish) -> ReasonCode {
        self.info.messages_received.fetch_add(1, Ordering::Relaxed);
        self.publish_counted(now, client, publish)
    }

    /// [`Broker::publish`] for a PUBLISH the caller has counted in `messages_received`
    /// already (a reader counts a read's worth at once: one shared counter written per
    /// message by every publisher's reader is a cache line passed between the cores).
    pub(crate) fn publish_counted(
        &self,
        now: Instant,
        client: &ClientInfo,
        publish: Publish,
    ) -> ReasonCode {
        if publish.topic.starts_with("$SYS") {
            return obscure(&self.options, ReasonCode::NotAuthorized);
        }
        if !self
            .hooks
            .on_acl_check(client, &publish.topic, Access::Write)
        {
            return obscure(&self.options, ReasonCode::NotAuthorized);
        }
        match self.publish_authorized(now, client, publish) {
            Ok(0) if client.protocol.is_v5() => ReasonCode::NoMatchingSubscribers,
            Ok(_) => ReasonCode::Success,
            Err(code) => code,
        }
    }

    /// An authorized PUBLISH: `OnPublish` (which may change or reject it), retain, route,
    /// `OnPublished`; returns how many subscribers got it.
    fn publish_authorized(
        &self,
        now: Instant,
        client: &ClientInfo,
        mut publish: Publish,
    ) -> Result<usize, ReasonCode> {
        self.hooks.on_publish(client, &mut publish)?;
        let msg = Arc::new(Message::from_publish(
            &publish,
            Some(client.id.clone()),
            now,
            self.options.capabilities.maximum_message_expiry_interval,
        ));
        if publish.retain {
            self.retain(&msg);
            self.hooks.on_retain_message(client, &publish);
        }
        let n = self.route(now, &msg);
        self.hooks.on_published(client, &publish, n);
        Ok(n)
    }

    /// Publishes a message from the broker itself (inline client, `$SYS`): no ACL, no hooks.
    pub fn publish_internal(&self, now: Instant, publish: &Publish) -> usize {
        let msg = Arc::new(Message::from_publish(publish, None, now, 0));
        if publish.retain {
            self.retain(&msg);
        }
        self.route(now, &msg)
    }

    /// Handles a SUBSCRIBE from `handle`: queues the SUBACK and the retained messages.
    pub fn subscribe(&self, now: Instant, handle: &ClientHandle, mut sub: Subscribe) {
        let caps = &self.options.capabilities;
        let info = &handle.info;
        self.hooks.on_subscribe(info, &mut sub);
        // No Local on a shared subscription is a protocol error (MQTT-3.8.3-4).
        if sub.filters.iter().any(|(f, o)| {
            o.no_local && f.starts_with(moco_topic::SHARE_PREFIX) && info.protocol.is_v5()
        }) {
            handle.close(ReasonCode::ProtocolError);
            return;
        }
        if sub.filters.iter().any(|(f, _)| f.starts_with("$SYS")) {
            self.refresh_sys_info(now);
        }
        let sub_id = sub.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained: Vec<Delivery> = Vec::new();
        let mut added: Vec<(ByteString, moco_topic::SubscriptionOptions, bool)> = Vec::new();
        for (filter, opts) in &sub.filters {
            let code = (|| {
                let Ok(f) = moco_topic::parse_filter(filter) else {
                    return ReasonCode::TopicFilterInvalid;
                };
                if f.is_shared() && !caps.shared_sub_available {
                    return ReasonCode::SharedSubscriptionsNotSupported;
                }
                if f.filter.contains(['+', '#']) && !caps.wildcard_sub_available {
                    return ReasonCode::WildcardSubscriptionsNotSupported;
                }
                if sub_id.is_some() && !caps.sub_id_available {
                    return ReasonCode::SubscriptionIdentifiersNotSupported;
                }
                if !self.hooks.on_acl_check(info, filter, Access::Read) {
                    return obscure(&self.options, ReasonCode::NotAuthorized);
                }
                // Whether each delivery on it must be checked: known before the router has
                // it, so that no message slips through unchecked.
                let check_reads = self.hooks.acl_may_deny_within(info, filter);
                if check_reads {
                    handle.acl_read.store(true, Ordering::Relaxed);
                }
                let granted = (opts.qos as u8).min(caps.maximum_qos);
                let topts = moco_topic::SubscriptionOptions {
                    qos: granted,
                    no_local: opts.no_local && !f.is_shared(),
                    retain_as_published: opts.retain_as_published,
                    retain_handling: match opts.retain_handling {
                        RetainHandling::SendAtSubscribe => {
                            moco_topic::RetainHandling::SendAtSubscribe
                        }
                        RetainHandling::SendAtSubscribeIfNew => {
                            moco_topic::RetainHandling::SendIfNew
                        }
                        _ => moco_topic::RetainHandling::DoNotSend,
                    },
                    identifier: sub_id.and_then(std::num::NonZeroU32::new),
                };
                let is_new = match self.router.subscribe(&info.id, filter, topts) {
                    Ok(n) => n,
                    Err(_) => return ReasonCode::TopicFilterInvalid,
                };
                self.routes_changed();
                // A copy: a slice would pin the connection's read buffer (see connect_with).
                added.push((ByteString::from(&**filter), topts, check_reads));
                let send_retained = !f.is_shared()
                    && caps.retain_available
                    && match topts.retain_handling {
                        moco_topic::RetainHandling::SendAtSubscribe => true,
                        moco_topic::RetainHandling::SendIfNew => is_new,
                        moco_topic::RetainHandling::DoNotSend => false,
                    };
                if send_retained {
                    let from = retained.len();
                    self.retained.read().for_each_match(f.filter, |m| {
                        if !m.is_expired(now) {
                            retained.push(Delivery {
                                msg: m.clone(),
                                qos: m.qos.min(limits_qos(granted)),
                                retain: true,
                                sub_ids: sub_id.into_iter().collect(),
                            });
                        }
                    });
                    if check_reads {
                        // The same per-topic check as live messages, outside the lock.
                        let matched = retained.split_off(from);
                        retained.extend(
                            matched
                                .into_iter()
                                .filter(|d| self.may_read(handle, &d.msg)),
                        );
                    }
                }
                match granted {
                    0 => ReasonCode::GrantedQoS0,
                    1 => ReasonCode::GrantedQoS1,
                    _ => ReasonCode::GrantedQoS2,
                }
            })();
            codes.push(code);
        }
        {
            let mut st = handle.state.lock();
            for (f, o, check_reads) in added {
                if check_reads {
                    st.session.acl_checked.insert(f.clone());
                } else {
                    st.session.acl_checked.remove(&f);
                }
                st.session.subscriptions.insert(f, o);
            }
            handle
                .acl_read
                .store(!st.session.acl_checked.is_empty(), Ordering::Relaxed);
            st.send(Packet::SubAck(SubAck {
                packet_id: sub.packet_id,
                reason_codes: codes.clone(),
                properties: Default::default(),
            }));
            let published: Vec<Publish> =
                if self.hooks.provides(crate::hooks::Event::OnRetainPublished) {
                    retained
                        .iter()
                        .map(|d| {
                            d.msg.to_publish(
                                &crate::message::DeliveryParams {
                                    qos: d.qos,
                                    retain: true,
                                    dup: false,
                                    packet_id: None,
                                    sub_ids: &d.sub_ids,
                                    alias: None,
                                },
                                now,
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
            // Retained messages go to the backlog, not the bounded queue: all of them are
            // sent, as fast as the client takes them (see the queue policy in `state`).
            st.deliver_retained(retained);
            let notes = st.take_notes();
            drop(st);
            for p in &published {
                self.hooks.on_retain_published(info, p);
            }
            report_notes(&self.hooks, &self.info, &info.id, notes);
        }
        handle.notify.notify_one();
        self.hooks.on_subscribed(info, &sub, &codes);
    }

    /// Handles an UNSUBSCRIBE from `handle`: queues the UNSUBACK.
    pub fn unsubscribe(&self, handle: &ClientHandle, mut unsub: Unsubscribe) {
        let info = &handle.info;
        self.hooks.on_unsubscribe(info, &mut unsub);
        let mut codes = Vec::with_capacity(unsub.filters.len());
        for f in &unsub.filters {
            let existed = self.router.unsubscribe(&info.id, f);
            self.routes_changed();
            handle.forget_subscription(f);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        handle.state.lock().send(Packet::UnsubAck(UnsubAck {
            packet_id: unsub.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        handle.notify.notify_one();
        self.hooks.on_unsubscribed(info, &unsub);
    }

    fn deliver_inline(&self, now: Instant, msg: &Message) {
        // Without the read lock when there are none: taking it writes its cache line, which
        // every publisher's reader would do for every message.
        if !self.options.inline_client || !self.has_inline_subs.load(Ordering::Acquire) {
            return;
        }
        let subs = self.inline_subs.read();
        if subs.is_empty() {
            return;
        }
        for s in subs.iter() {
            if moco_topic::filter_matches(&s.filter, &msg.topic) {
                let p = msg.to_publish(
                    &crate::message::DeliveryParams {
                        qos: msg.qos,
                        retain: msg.retain,
                        dup: false,
                        packet_id: None,
                        sub_ids: &[s.id],
                        alias: None,
                    },
                    now,
                );
                (s.handler)(&p);
            }
        }
    }

    fn check_inline(&self) -> Result<(), Error> {
        if self.options.inline_client {
            Ok(())
        } else {
            Err(Error::InlineClientDisabled)
        }
    }

    /// Publishes from the embedding program (the inline client, [`ClientInfo::inline`]): no
    /// ACL check (as mochi), but the `OnPublish` hooks run and may change or reject it
    /// ([`Error::Rejected`]); the topic is validated. `qos` caps the QoS subscribers get.
    /// Returns how many subscribers got it. Needs [`Options::inline_client`].
    pub fn inline_publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<usize, Error> {
        self.check_inline()?;
        moco_topic::validate_topic_name(topic).map_err(Error::Topic)?;
        let p = Publish {
            dup: false,
            qos,
            retain,
            topic: ByteString::from(topic),
            packet_id: None,
            payload: payload.into(),
            properties: Default::default(),
        };
        self.info.messages_received.fetch_add(1, Ordering::Relaxed);
        self.publish_authorized(Instant::now(), &ClientInfo::inline(), p)
            .map_err(Error::Rejected)
    }

    /// Subscribes the embedding program to `filter` (a plain filter) under identifier `id`;
    /// `handler` is called, on the publisher's task, for every matching message, starting
    /// with the retained ones. Needs [`Options::inline_client`].
    pub fn inline_subscribe(
        &self,
        filter: &str,
        id: u32,
        handler: InlineHandler,
    ) -> Result<(), Error> {
        self.check_inline()?;
        moco_topic::validate_topic_filter(filter).map_err(Error::Topic)?;
        let now = Instant::now();
        // As mochi, the hooks see the inline subscription (their changes are not applied).
        let inline = ClientInfo::inline();
        let mut sub = Subscribe {
            packet_id: 0,
            filters: vec![(
                ByteString::from(filter),
                moco_codec::SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            )],
            properties: moco_codec::SubscribeProperties {
                subscription_identifier: Some(id),
                ..Default::default()
            },
        };
        self.hooks.on_subscribe(&inline, &mut sub);
        let mut retained = Vec::new();
        self.retained.read().for_each_match(filter, |m| {
            if !m.is_expired(now) {
                retained.push(m.clone());
            }
        });
        for m in retained {
            let p = m.to_publish(
                &crate::message::DeliveryParams {
                    qos: m.qos,
                    retain: true,
                    dup: false,
                    packet_id: None,
                    sub_ids: &[id],
                    alias: None,
                },
                now,
            );
            handler(&p);
        }
        let mut subs = self.inline_subs.write();
        subs.retain(|s| !(s.filter == filter && s.id == id));
        subs.push(InlineSub {
            filter: filter.to_owned(),
            id,
            handler,
        });
        self.has_inline_subs.store(true, Ordering::Release);
        drop(subs);
        self.hooks
            .on_subscribed(&inline, &sub, &[ReasonCode::GrantedQoS2]);
        Ok(())
    }

    /// Removes the inline subscription `id` on `filter`; returns whether it existed.
    pub fn inline_unsubscribe(&self, filter: &str, id: u32) -> Result<bool, Error> {
        self.check_inline()?;
        let inline = ClientInfo::inline();
        let mut unsub = Unsubscribe {
            packet_id: 0,
            filters: vec![ByteString::from(filter)],
            properties: Default::default(),
        };
        self.hooks.on_unsubscribe(&inline, &mut unsub);
        let existed = {
            let mut subs = self.inline_subs.write();
            let before = subs.len();
            subs.retain(|s| !(s.filter == filter && s.id == id));
            self.has_inline_subs
                .store(!subs.is_empty(), Ordering::Release);
            subs.len() != before
        };
        self.hooks.on_unsubscribed(&inline, &unsub);
        Ok(existed)
    }

    /// Restores a retained message (from storage, before serving).
    pub fn restore_retained(&self, now: Instant, publish: &Publish) {
        let msg = Arc::new(Message::from_publish(
            publish,
            None,
            now,
            self.options.capabilities.maximum_message_expiry_interval,
        ));
        self.retain(&msg);
    }

    /// Restores a disconnected client's session (from storage, before serving): its
    /// subscriptions go back into the router and `pending` into its offline queue; it expires
    /// `expiry_interval` seconds after `now` unless the client comes back first.
    pub fn restore_session(
        &self,
        now: Instant,
        client_id: &str,
        expiry_interval: u32,
        subscriptions: &[(ByteString, moco_topic::SubscriptionOptions)],
        pending: &[(Publish, QoS)],
    ) -> Result<(), Error> {
        let id = ByteString::from(client_id);
        let info = ClientInfo {
            id: id.clone(),
            username: None,
            remote: Arc::from("restored"),
            listener: Arc::from("storage"),
            protocol: ProtocolVersion::V5,
        };
        let mut session = Session::new(expiry_interval);
        for (filter, opts) in subscriptions {
            if self.hooks.acl_may_deny_within(&info, filter) {
                session.acl_checked.insert(filter.clone());
            }
            self.router
                .subscribe(&id, filter, *opts)
                .map_err(Error::Topic)?;
            self.routes_changed();
            session.subscriptions.insert(filter.clone(), *opts);
        }
        let acl_read = !session.acl_checked.is_empty();
        let limits = ConnLimits {
            version: ProtocolVersion::V5,
            keep_alive: 0,
            send_quota: 1,
            receive_maximum: self.options.capabilities.receive_maximum,
            topic_alias_maximum: 0,
            client_maximum_packet_size: 0,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            max_pending: self.options.capabilities.maximum_client_writes_pending as usize,
            connect_expiry_zero: false,
            client_topic_alias_maximum: 0,
        };
        let mut st = ClientState::new(id.clone(), limits, session, now);
        st.detach();
        for (p, qos) in pending {
            let msg = Arc::new(Message::from_publish(
                p,
                None,
                now,
                self.options.capabilities.maximum_message_expiry_interval,
            ));
            st.deliver(
                now,
                Delivery {
                    msg,
                    qos: *qos,
                    retain: p.retain,
                    sub_ids: p.properties.subscription_identifiers.clone(),
                },
            );
        }
        let deadline = now.checked_add(Duration::from_secs(u64::from(expiry_interval)));
        let handle = Arc::new(ClientHandle {
            info,
            state: Mutex::new(st),
            notify: Notify::new(),
            closing: Notify::new(),
            will: Mutex::new(None),
            expires_at: Mutex::new(deadline),
            taken_over: AtomicBool::new(false),
            trim: AtomicBool::new(false),
            flow: Default::default(),
            idle: Default::default(),
            acl_read: AtomicBool::new(acl_read),
            injected: AtomicBool::new(false),
        });
        if let Some(t) = deadline {
            self.session_deadlines.lock().insert((t, id.clone()));
        }
        self.clients.write().insert(id, handle);
        self.routes_changed();
        Ok(())
    }

    /// The `$SYS` values at `now`.
    pub fn sys_snapshot(&self, now: Instant) -> crate::sys::SysSnapshot {
        let (clients_total, inflight) = {
            let clients = self.clients.read();
            let inflight = clients
                .values()
                .map(|h| h.state.lock().session.inflight.len() as u64)
                .sum();
            (clients.len() as u64, inflight)
        };
        let gauges = crate::sys::Gauges {
            clients_total,
            retained: self.retained_count() as u64,
            inflight,
            subscriptions: self.subscription_count() as u64,
        };
        crate::sys::snapshot(&self.info, gauges, now)
    }

    fn sys_publish(value: (&'static str, String)) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: ByteString::from_static(value.0),
            packet_id: None,
            payload: Bytes::from(value.1),
            properties: Default::default(),
        }
    }

    /// Publishes the `$SYS/broker/...` topics (retained) to their subscribers, then calls
    /// `OnSysInfoTick`.
    pub fn publish_sys_info(&self, now: Instant) {
        let snap = self.sys_snapshot(now);
        for v in snap.topics() {
            self.publish_internal(now, &Self::sys_publish(v));
        }
        self.hooks.on_sys_info_tick(&snap);
    }

    /// Refreshes the retained `$SYS` values without publishing them (before a client
    /// subscribes to `$SYS`).
    fn refresh_sys_info(&self, now: Instant) {
        for v in self.sys_snapshot(now).topics() {
            let msg = Arc::new(Message::from_publish(&Self::sys_publish(v), None, now, 0));
            self.retain(&msg);
        }
    }

    /// Starts shutting down: refuses new connections and closes every connected client with
    /// 0x8B (server shutting down).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        for h in handles {
            let connected = h.state.lock().is_connected();
            if connected {
                h.close(ReasonCode::ServerShuttingDown);
            }
        }
    }

    /// True once [`Broker::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// Removes and returns the entries of `set` due at `now`.
fn take_due(
    set: &Mutex<BTreeSet<(Instant, ByteString)>>,
    now: Instant,
) -> Vec<(Instant, ByteString)> {
    let mut set = set.lock();
    let mut due = Vec::new();
    while let Some(first) = set.first() {
        if first.0 > now {
            break;
        }
        if let Some(e) = set.pop_first() {
            due.push(e);
        }
    }
    due
}

fn limits_qos(q: u8) -> QoS {
    QoS::try_from(q.min(2)).unwrap_or(QoS::ExactlyOnce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::AllowAll;

    fn broker() -> Broker {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        Broker::new(Options::default(), hooks)
    }

    fn connect(b: &Broker, now: Instant, id: &str, expiry: u32) -> Arc<ClientHandle> {
        let mut c = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: false,
            keep_alive: 0,
            client_id: id.into(),
            username: None,
            password: None,
            will: None,
            properties: Default::default(),
        };
        c.properties.session_expiry_interval = Some(expiry);
        match b.connect(now, &c, Arc::from("t"), Arc::from("t")) {
            ConnectOutcome::Accepted(h) => h,
            ConnectOutcome::Refused(a) => panic!("{a:?}"),
        }
    }

    #[test]
    fn v3_keep_alive_above_the_maximum_is_held_to_it_in_virtual_time() {
        let opts = |refuse| Options {
            capabilities: crate::Capabilities {
                maximum_keep_alive: 60,
                compatibilities: crate::Compatibilities {
                    refuse_v3_keep_alive_above_maximum: refuse,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let b = Broker::new(opts(false), hooks.clone());
        let strict = Broker::new(opts(true), hooks);
        let t0 = Instant::now();
        for version in [ProtocolVersion::V311, ProtocolVersion::V3] {
            for asked in [0u16, 61, 120] {
                let c = Connect {
                    protocol: version,
                    clean_start: true,
                    keep_alive: asked,
                    client_id: format!("ka-{asked}").into(),
                    username: None,
                    password: None,
                    will: None,
                    properties: Default::default(),
                };
                let h = match b.connect(t0, &c, Arc::from("t"), Arc::from("t")) {
                    ConnectOutcome::Accepted(h) => h,
                    ConnectOutcome::Refused(a) => panic!("{version:?} {asked}: {a:?}"),
                };
                let mut st = h.state.lock();
                let Some(crate::state::Transmit::Packet(Packet::ConnAck(ack))) =
                    st.poll_transmit(t0)
                else {
                    panic!("no CONNACK");
                };
                assert_eq!(ack.properties.server_keep_alive, None, "v3 cannot be told");
                // Held to 60 s: closed at 1.5 x 60 s of silence, not before.
                assert_eq!(st.poll_timeout(), Some(t0 + Duration::from_secs(90)));
                st.handle_timeout(t0 + Duration::from_millis(89_999));
                assert!(st.is_connected(), "{version:?} {asked}");
                st.handle_timeout(t0 + Duration::from_secs(90));
                assert_eq!(st.close_reason(), Some(ReasonCode::KeepAliveTimeout));
                drop(st);
                match strict.connect(t0, &c, Arc::from("t"), Arc::from("t")) {
                    ConnectOutcome::Refused(a) => {
                        assert_eq!(a.reason_code, ReasonCode::ClientIdentifierNotValid)
                    }
                    ConnectOutcome::Accepted(_) => panic!("{version:?} {asked}: accepted"),
                }
            }
        }
    }

    #[test]
    fn retained_message_expires_in_virtual_time() {
        let b = broker();
        let t0 = Instant::now();
        let mut p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "r".into(),
            packet_id: None,
            payload: Bytes::from_static(b"x"),
            properties: Default::default(),
        };
        p.properties.message_expiry_interval = Some(10);
        b.publish_internal(t0, &p);
        assert_eq!(b.retained_count(), 1);
        b.handle_timeout(t0 + Duration::from_secs(9));
        assert_eq!(b.retained_count(), 1);
        b.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(b.retained_count(), 0);
    }

    #[test]
    fn offline_session_expires_in_virtual_time_unless_resumed() {
        let b = broker();
        let t0 = Instant::now();
        let h = connect(&b, t0, "a", 30);
        b.disconnected(t0, &h);
        assert!(b.client("a").is_some());
        // Resumed at 20 s, gone again at 25 s: the first deadline (30 s) no longer applies.
        let h2 = connect(&b, t0 + Duration::from_secs(20), "a", 30);
        b.disconnected(t0 + Duration::from_secs(25), &h2);
        b.handle_timeout(t0 + Duration::from_secs(31));
        assert!(b.client("a").is_some(), "expired by a stale deadline");
        b.handle_timeout(t0 + Duration::from_secs(55));
        assert!(b.client("a").is_none());
    }

    fn sub(filter: &str) -> Subscribe {
        Subscribe {
            packet_id: 1,
            filters: vec![(filter.into(), moco_codec::SubscriptionOptions::default())],
            properties: Default::default(),
        }
    }

    /// Messages taken by `h` so far (queued for its writer).
    fn got(h: &ClientHandle) -> usize {
        h.state.lock().session.pending.len()
    }

    /// Within a reader's batch the targets of a topic are cached; every change of
    /// subscriptions or clients made meanwhile is seen by the next message all the same, and a
    /// shared group still takes turns.
    #[test]
    fn routes_cached_in_a_batch_follow_every_change() {
        let b = broker();
        let t0 = Instant::now();
        let (a, c) = (connect(&b, t0, "a", 0), connect(&b, t0, "c", 0));
        let p = connect(&b, t0, "p", 0);
        b.subscribe(t0, &a, sub("t"));
        let publish = |n: u8| {
            let msg = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                packet_id: None,
                payload: Bytes::from(vec![n]),
                properties: Default::default(),
            };
            b.publish(t0, &p.info, msg)
        };
        let _batch = WakeBatch::open(4096);
        publish(1);
        publish(2);
        assert_eq!((got(&a), got(&c)), (2, 0));
        b.subscribe(t0, &c, sub("t"));
        publish(3);
        assert_eq!((got(&a), got(&c)), (3, 1), "a new subscriber is missed");
        b.unsubscribe(
            &a,
            Unsubscribe {
                packet_id: 2,
                filters: vec!["t".into()],
                properties: Default::default(),
            },
        );
        publish(4);
        assert_eq!(
            (got(&a), got(&c)),
            (3, 2),
            "an unsubscribed client still gets messages"
        );
        // A new connection takes "c" over (a clean session, taken out of the old handle): the
        // old handle gets nothing more.
        let c2 = connect(&b, t0, "c", 0);
        b.subscribe(t0, &c2, sub("t"));
        publish(5);
        assert_eq!(
            (got(&c), got(&c2)),
            (0, 1),
            "the taken-over handle still gets messages"
        );
        // A session resumed by a new connection keeps its subscriptions (nothing changes in
        // the router): the new handle gets what follows.
        let r = connect(&b, t0, "r", 60);
        b.subscribe(t0, &r, sub("t"));
        publish(6);
        let r2 = connect(&b, t0, "r", 60);
        let before = got(&r2);
        publish(7);
        assert_eq!(
            got(&r2),
            before + 1,
            "the resumed session's new handle is missed"
        );
        // A shared group: its members take turns, message by message.
        let (s1, s2) = (connect(&b, t0, "s1", 0), connect(&b, t0, "s2", 0));
        b.subscribe(t0, &s1, sub("$share/g/u"));
        b.subscribe(t0, &s2, sub("$share/g/u"));
        for n in 0..4 {
            b.publish(
                t0,
                &p.info,
                Publish {
                    dup: false,
                    qos: QoS::AtMostOnce,
                    retain: false,
                    topic: "u".into(),
                    packet_id: None,
                    payload: Bytes::from(vec![n]),
                    properties: Default::default(),
                },
            );
        }
        assert_eq!(
            (got(&s1), got(&s2)),
            (2, 2),
            "a shared group's pick was cached"
        );
    }

    /// Denies reading `secret/…` to everyone and `updates/…` to user `guest` (and, once
    /// `deny_all_updates` is set, to everyone); counts the read checks per topic.
    #[derive(Default)]
    struct Rules {
        deny_all_updates: AtomicBool,
        reads: Mutex<Vec<String>>,
    }

    impl Rules {
        fn denies(&self, client: &ClientInfo, topic: &str) -> bool {
            let guest = client.username.as_deref() == Some("guest");
            topic.starts_with("secret/")
                || (topic.starts_with("updates/")
                    && (guest || self.deny_all_updates.load(Ordering::Relaxed)))
        }
        fn reads(&self) -> usize {
            self.reads.lock().len()
        }
    }

    struct Acl(Arc<Rules>);

    impl crate::Hook for Acl {
        fn id(&self) -> &str {
            "acl"
        }
        fn provides(&self, e: crate::Event) -> bool {
            matches!(
                e,
                crate::Event::OnConnectAuthenticate | crate::Event::OnAclCheck
            )
        }
        fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
            true
        }
        fn on_acl_check(&self, c: &ClientInfo, topic: &str, a: Access) -> bool {
            if a == Access::Read && !topic.contains(['+', '#']) {
                self.0.reads.lock().push(topic.to_owned());
            }
            !(a == Access::Read && self.0.denies(c, topic))
        }
        fn acl_may_deny_within(&self, c: &ClientInfo, filter: &str) -> bool {
            let f = moco_topic::parse_filter(filter).unwrap().filter;
            ["secret/x", "updates/x"]
                .iter()
                .any(|t| moco_topic::filter_matches(f, t) && self.0.denies(c, t))
        }
    }

    fn acl_broker() -> (Broker, Arc<Rules>) {
        let rules = Arc::new(Rules::default());
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(Acl(rules.clone())));
        (Broker::new(Options::default(), hooks), rules)
    }

    fn msg(topic: &str) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: Bytes::from_static(b"m"),
            properties: Default::default(),
        }
    }

    /// Topics of the messages queued for `h` (taken out).
    fn topics(h: &ClientHandle) -> Vec<String> {
        let mut st = h.state.lock();
        let mut out: Vec<String> = st
            .session
            .retained
            .drain(..)
            .map(|d| d.msg.topic.to_string())
            .collect();
        out.extend(
            st.session
                .pending
                .drain(..)
                .map(|d| d.msg.topic.to_string()),
        );
        out
    }

    /// A deny inside a granted subscription is enforced per delivered topic, on the cached
    /// route of a read batch too; a subscription no rule can deny is never checked.
    #[test]
    fn reads_are_checked_per_delivery_only_where_a_deny_is_possible() {
        let (b, rules) = acl_broker();
        let t0 = Instant::now();
        let (wide, narrow, p) = (
            connect(&b, t0, "wide", 0),
            connect(&b, t0, "narrow", 0),
            connect(&b, t0, "p", 0),
        );
        b.subscribe(t0, &wide, sub("#"));
        b.subscribe(t0, &narrow, sub("pub/#"));
        let before = rules.reads();
        for _ in 0..2 {
            // Outside a batch, then twice on the same topic inside one (the cached route).
            let _batch = WakeBatch::open(4096);
            for t in ["pub/a", "pub/a", "secret/a", "secret/a"] {
                b.publish(t0, &p.info, msg(t));
            }
        }
        assert_eq!(topics(&wide), ["pub/a"; 4]);
        assert_eq!(topics(&narrow), ["pub/a"; 4]);
        // One check per message to `wide` (8), none for `narrow`.
        assert_eq!(rules.reads() - before, 8);
        let n = b.publish(t0, &p.info, msg("secret/b"));
        assert_eq!(
            n,
            ReasonCode::NoMatchingSubscribers,
            "a denied delivery is not counted"
        );
        // Unsubscribing the deniable filter ends the checks.
        b.unsubscribe(
            &wide,
            Unsubscribe {
                packet_id: 2,
                filters: vec!["#".into()],
                properties: Default::default(),
            },
        );
        b.subscribe(t0, &wide, sub("pub/#"));
        let before = rules.reads();
        b.publish(t0, &p.info, msg("pub/z"));
        assert_eq!(rules.reads(), before);
        assert_eq!(topics(&wide), ["pub/z"]);
    }

    #[test]
    fn retained_messages_on_subscribe_pass_the_same_check() {
        let (b, _rules) = acl_broker();
        let t0 = Instant::now();
        for t in ["secret/r", "pub/r"] {
            let mut m = msg(t);
            m.retain = true;
            b.publish_internal(t0, &m);
        }
        let c = connect(&b, t0, "c", 0);
        b.subscribe(t0, &c, sub("#"));
        assert_eq!(topics(&c), ["pub/r"]);
    }

    /// After the rules change, `acl_changed` makes existing subscriptions follow them.
    #[test]
    fn acl_changed_reaches_existing_subscriptions() {
        let (b, rules) = acl_broker();
        let t0 = Instant::now();
        let (c, p) = (connect(&b, t0, "c", 0), connect(&b, t0, "p", 0));
        b.subscribe(t0, &c, sub("updates/#"));
        b.publish(t0, &p.info, msg("updates/1"));
        rules.deny_all_updates.store(true, Ordering::Relaxed);
        // Judged undeniable at SUBSCRIBE: delivered unchecked until told.
        b.publish(t0, &p.info, msg("updates/2"));
        b.acl_changed();
        b.publish(t0, &p.info, msg("updates/3"));
        assert_eq!(topics(&c), ["updates/1", "updates/2"]);
        rules.deny_all_updates.store(false, Ordering::Relaxed);
        b.acl_changed();
        let before = rules.reads();
        b.publish(t0, &p.info, msg("updates/4"));
        assert_eq!(topics(&c), ["updates/4"]);
        assert_eq!(
            rules.reads(),
            before,
            "checked again after the deny went away"
        );
    }

    /// A resumed session is judged again for the client that resumed it.
    #[test]
    fn a_resumed_session_is_judged_for_who_resumed_it() {
        let (b, rules) = acl_broker();
        let t0 = Instant::now();
        let p = connect(&b, t0, "p", 0);
        let login = |user: &str| {
            let mut c = Connect::new(ProtocolVersion::V5, "r");
            c.username = Some(user.into());
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(60);
            match b.connect(t0, &c, Arc::from("t"), Arc::from("t")) {
                ConnectOutcome::Accepted(h) => h,
                ConnectOutcome::Refused(a) => panic!("{a:?}"),
            }
        };
        let admin = login("admin");
        b.subscribe(t0, &admin, sub("updates/#"));
        b.subscribe(t0, &admin, sub("pub/#"));
        b.publish(t0, &p.info, msg("updates/1"));
        assert_eq!(topics(&admin), ["updates/1"]);
        b.disconnected(t0, &admin);
        let guest = login("guest");
        b.publish(t0, &p.info, msg("updates/2"));
        b.publish(t0, &p.info, msg("pub/2"));
        assert_eq!(topics(&guest), ["pub/2"]);
        // And back to a user no rule denies: no check at all.
        b.disconnected(t0, &guest);
        let admin = login("admin");
        let before = rules.reads();
        b.publish(t0, &p.info, msg("updates/3"));
        assert_eq!(topics(&admin), ["updates/3"]);
        assert_eq!(rules.reads(), before);
    }

    /// A shared group's member that may not read the topic does not get the message.
    #[test]
    fn a_denied_shared_member_gets_nothing() {
        let (b, _rules) = acl_broker();
        let t0 = Instant::now();
        let p = connect(&b, t0, "p", 0);
        let (s1, s2) = (connect(&b, t0, "s1", 0), connect(&b, t0, "s2", 0));
        b.subscribe(t0, &s1, sub("$share/g/#"));
        b.subscribe(t0, &s2, sub("$share/g/#"));
        for t in ["secret/1", "secret/2", "pub/1", "pub/2"] {
            b.publish(t0, &p.info, msg(t));
        }
        let mut got = topics(&s1);
        got.extend(topics(&s2));
        got.sort();
        assert_eq!(got, ["pub/1", "pub/2"]);
    }

    #[test]
    fn session_expiry_is_capped_by_the_option() {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let b = Broker::new(
            Options {
                capabilities: crate::Capabilities {
                    maximum_session_expiry_interval: 5,
                    ..Default::default()
                },
                ..Default::default()
            },
            hooks,
        );
        let t0 = Instant::now();
        let h = connect(&b, t0, "c", 1000);
        b.disconnected(t0, &h);
        b.handle_timeout(t0 + Duration::from_secs(5));
        assert!(b.client("c").is_none());
    }
}

#[cfg(test)]
mod restore_tests {
    use super::*;
    use crate::hooks::AllowAll;
    use crate::state::Transmit;

    #[test]
    fn restored_session_queues_and_resumes() {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let b = Broker::new(Options::default(), hooks);
        let t0 = Instant::now();
        let p = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "s/1".into(),
            packet_id: None,
            payload: Bytes::from_static(b"stored"),
            properties: Default::default(),
        };
        b.restore_session(
            t0,
            "back",
            60,
            &[("s/+".into(), moco_topic::SubscriptionOptions::with_qos(1))],
            &[(p.clone(), QoS::AtLeastOnce)],
        )
        .unwrap();
        // A live message while the client is away joins the offline queue.
        b.publish_internal(t0, &p);
        let c = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: false,
            keep_alive: 0,
            client_id: "back".into(),
            username: None,
            password: None,
            will: None,
            properties: moco_codec::ConnectProperties {
                session_expiry_interval: Some(60),
                ..Default::default()
            },
        };
        let h = match b.connect(t0, &c, Arc::from("t"), Arc::from("t")) {
            ConnectOutcome::Accepted(h) => h,
            ConnectOutcome::Refused(a) => panic!("{a:?}"),
        };
        let mut st = h.state.lock();
        match st.poll_transmit(t0) {
            Some(Transmit::Packet(Packet::ConnAck(a))) => assert!(a.session_present),
            other => panic!("{other:?}"),
        }
        let mut n = 0;
        while let Some(t) = st.poll_transmit(t0) {
            assert!(matches!(t, Transmit::Publish { .. }));
            n += 1;
        }
        assert_eq!(n, 2);
    }
}

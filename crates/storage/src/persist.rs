//! [`Persistence`]: the one layer that maps the engine's session changes to records, writes
//! them through a [`Backend`], and hands them back when a broker starts.
//!
//! It is the engine's [`SessionSink`] (every change is appended to the pending batch, under
//! one short lock, and never waits for I/O) and a [`Hook`] that provides the `Stored*`
//! loaders and keeps the `$SYS` counters. One writer task takes the pending batch and writes
//! it; with [`Durability::Sync`] it writes as soon as there is something and acknowledgements
//! wait for it ([`SessionSink::durable`]), so publishers waiting at once share one write and
//! one flush (group commit); with [`Durability::Periodic`] it writes at most once per interval
//! and nothing waits.
//!
//! A message is stored once (`m/`), whatever the number of sessions it is queued or in
//! flight for; their records refer to it by id, and it is deleted with the last of them. The
//! engine's `Arc<Message>` is its identity while it lives: a `Weak` to it is kept with its id,
//! so the allocation (and its address) cannot be reused while the id is in use.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use bytestring::ByteString;
use moco_engine::codec::{ProtocolVersion, Publish, QoS};
use moco_engine::hooks::{
    HookError, StoredClient, StoredInflight, StoredQueued, StoredSubscription, StoredWill,
};
use moco_engine::message::{Delivery, Message, Will};
use moco_engine::topic::{RetainHandling, SubscriptionOptions};
use moco_engine::{Durable, Event, Hook, SessionEvent, SessionSink, SysSnapshot};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tracing::{debug, error, info};

use crate::records::*;
use crate::{decode_value, encode_value, Backend, Batch, StoreError};

/// When an acknowledgement may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// PUBACK / PUBREC wait until every record their message created is durable (flushed to
    /// disk for sled, answered by the server for Redis). A crash loses nothing acknowledged.
    Sync,
    /// Acknowledge at once; write at most once per interval. A crash loses what changed in
    /// the last interval.
    Periodic(Duration),
}

/// What a broker's start-up takes back (each loader once).
#[derive(Debug, Default)]
struct Loaded {
    clients: Vec<StoredClient>,
    subscriptions: Vec<StoredSubscription>,
    queued: Vec<StoredQueued>,
    inflight: Vec<StoredInflight>,
    retained: Vec<Publish>,
    wills: Vec<StoredWill>,
    sys: Option<SysSnapshot>,
}

/// How far the writer got: every change numbered up to `durable` is stored; the write of
/// those up to `failed` failed (they are retried, but their acknowledgements said so).
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    durable: u64,
    failed: u64,
}

/// A stored message and who holds it.
struct Stored {
    id: u64,
    holders: u32,
    /// Keeps the address from being reused while `id` stands for it.
    _alive: Weak<Message>,
}

#[derive(Default)]
struct ClientIndex {
    /// Queue sequence numbers and messages, in queue order.
    queue: VecDeque<(u64, usize)>,
    /// Messages in flight by packet id.
    inflight: HashMap<u16, usize>,
}

#[derive(Default)]
struct State {
    batch: Batch,
    /// Number of the last change appended to `batch`.
    seq: u64,
    sessions: HashMap<String, SessionRecord>,
    /// Clients whose will is recorded.
    wills: std::collections::HashSet<String>,
    clients: HashMap<String, ClientIndex>,
    messages: HashMap<usize, Stored>,
    next_message: u64,
    next_queued: u64,
}

struct Inner {
    backend: Arc<dyn Backend>,
    durability: Durability,
    state: Mutex<State>,
    /// `state.seq`, readable without the lock.
    seq: AtomicU64,
    progress: watch::Sender<Progress>,
    kick: Notify,
    /// The last write failed (logged once per episode).
    failing: AtomicBool,
    closing: AtomicBool,
    loaded: Mutex<Loaded>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The persistence layer: install it as both the session sink and a hook of a server (see
/// [`Persistence::install`]).
#[derive(Clone)]
pub struct Persistence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("backend", &self.inner.backend.name())
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

impl Persistence {
    /// Reads what `backend` holds (handed to the broker by the loaders when it starts) and
    /// starts the writer task; call it within a tokio runtime.
    ///
    /// Queue and in-flight records are replaced, in the first write, by those the engine
    /// records again as it restores the sessions; sessions whose expiry passed while the
    /// broker was down are deleted with their records.
    pub async fn open(
        backend: Arc<dyn Backend>,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let now = SystemTime::now();
        let mut state = State::default();
        let mut loaded = Loaded::default();
        let mut batch = Batch::new();

        let mut live: HashMap<String, StoredClient> = HashMap::new();
        for (key, value) in backend.scan_prefix(SESSION).await? {
            let id = String::from_utf8_lossy(&key[SESSION.len()..]).into_owned();
            let r: SessionRecord = decode_value(&value)?;
            let expired = r.detached_at_ms.is_some_and(|at| {
                let gone = now
                    .duration_since(from_unix_ms(at))
                    .map_or(0, |d| d.as_secs());
                gone >= u64::from(r.expiry)
            });
            if r.expiry == 0 || expired {
                forget_client(&mut batch, &id);
                continue;
            }
            live.insert(
                id.clone(),
                StoredClient {
                    id: ByteString::from(id.as_str()),
                    username: r.username.as_deref().map(ByteString::from),
                    listener: ByteString::from(r.listener.as_str()),
                    protocol: protocol(r.protocol),
                    session_expiry_interval: r.expiry,
                    disconnected_at: r.detached_at_ms.map(from_unix_ms),
                    inbound_qos2: Vec::new(),
                },
            );
            state.sessions.insert(id, r);
        }
        for (key, value) in backend.scan_prefix(SUBSCRIPTION).await? {
            let Some((client, filter)) = split_client_key(SUBSCRIPTION, &key) else {
                continue;
            };
            if !live.contains_key(&client) {
                batch.delete(key);
                continue;
            }
            let r: SubscriptionRecord = decode_value(&value)?;
            loaded.subscriptions.push(StoredSubscription {
                client_id: ByteString::from(client),
                filter: ByteString::from(String::from_utf8_lossy(&filter).into_owned()),
                options: r.into(),
            });
        }
        for (key, _) in backend.scan_prefix(PENDING_REL).await? {
            let Some((client, pid)) = split_client_key(PENDING_REL, &key) else {
                continue;
            };
            match (live.get_mut(&client), <[u8; 2]>::try_from(pid.as_slice())) {
                (Some(c), Ok(pid)) => c.inbound_qos2.push(u16::from_be_bytes(pid)),
                _ => {
                    batch.delete(key);
                }
            }
        }
        let mut messages: HashMap<u64, Option<Publish>> = HashMap::new();
        for (key, value) in backend.scan_prefix(MESSAGE).await? {
            let Ok(id) = <[u8; 8]>::try_from(&key[MESSAGE.len()..]) else {
                continue;
            };
            let id = u64::from_be_bytes(id);
            state.next_message = state.next_message.max(id + 1);
            messages.insert(id, decode_message(&value, now)?);
        }
        let delivery = |value: &Bytes| -> Result<Option<Publish>, StoreError> {
            let r: DeliveryRecord = decode_value(value)?;
            let Some(Some(p)) = messages.get(&r.message) else {
                return Ok(None);
            };
            let mut p = p.clone();
            p.qos = QoS::try_from(r.qos).unwrap_or(QoS::AtLeastOnce);
            p.retain = r.retain;
            p.properties.subscription_identifiers = r.sub_ids;
            Ok(Some(p))
        };
        for (key, value) in backend.scan_prefix(QUEUED).await? {
            let Some((client, seq)) = split_client_key(QUEUED, &key) else {
                continue;
            };
            if let Ok(seq) = <[u8; 8]>::try_from(seq.as_slice()) {
                state.next_queued = state.next_queued.max(u64::from_be_bytes(seq) + 1);
            }
            if !live.contains_key(&client) {
                continue;
            }
            if let Some(publish) = delivery(&value)? {
                loaded.queued.push(StoredQueued {
                    client_id: ByteString::from(client),
                    publish,
                });
            }
        }
        for (key, value) in backend.scan_prefix(INFLIGHT).await? {
            let Some((client, pid)) = split_client_key(INFLIGHT, &key) else {
                continue;
            };
            let (true, Ok(pid)) = (
                live.contains_key(&client),
                <[u8; 2]>::try_from(pid.as_slice()),
            ) else {
                continue;
            };
            if let Some(mut publish) = delivery(&value)? {
                publish.packet_id = Some(u16::from_be_bytes(pid));
                loaded.inflight.push(StoredInflight {
                    client_id: ByteString::from(client),
                    publish,
                });
            }
        }
        // The engine records the queues and flights again as it restores them: the first
        // write replaces these (and the messages they held) with what it records.
        batch
            .delete_prefix(QUEUED)
            .delete_prefix(INFLIGHT)
            .delete_prefix(MESSAGE);
        for (key, value) in backend.scan_prefix(RETAINED).await? {
            match decode_message(&value, now)? {
                Some(p) => loaded.retained.push(p),
                None => {
                    batch.delete(key);
                }
            }
        }
        for (key, value) in backend.scan_prefix(WILL).await? {
            let client = String::from_utf8_lossy(&key[WILL.len()..]).into_owned();
            let r: WillRecord = decode_value(&value)?;
            let Some(p) = decode_message(&Bytes::from(r.message), now)? else {
                continue;
            };
            let mut properties = moco_engine::codec::WillProperties {
                will_delay_interval: (r.delay > 0).then_some(r.delay),
                payload_format_indicator: p.properties.payload_format_indicator,
                message_expiry_interval: p.properties.message_expiry_interval,
                content_type: p.properties.content_type,
                response_topic: p.properties.response_topic,
                correlation_data: p.properties.correlation_data,
                ..Default::default()
            };
            properties.user_properties = p.properties.user_properties;
            loaded.wills.push(StoredWill {
                client_id: ByteString::from(client),
                will: Will {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    retain: p.retain,
                    properties,
                },
                session_expiry_interval: r.expiry,
            });
        }
        // The broker publishes them as it starts: they are done with.
        batch.delete_prefix(WILL);
        if let Some(v) = backend.get(SYS).await? {
            loaded.sys = Some(decode_value(&v)?);
        }
        loaded.clients = live.into_values().collect();
        debug!(
            backend = backend.name(),
            sessions = loaded.clients.len(),
            subscriptions = loaded.subscriptions.len(),
            queued = loaded.queued.len(),
            inflight = loaded.inflight.len(),
            retained = loaded.retained.len(),
            "stored state read"
        );
        state.batch = batch;
        state.seq = 1;
        let inner = Arc::new(Inner {
            backend,
            durability,
            state: Mutex::new(state),
            seq: AtomicU64::new(1),
            progress: watch::channel(Progress::default()).0,
            kick: Notify::new(),
            failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            loaded: Mutex::new(loaded),
            writer: Mutex::new(None),
        });
        *inner.writer.lock() = Some(tokio::spawn(write_loop(inner.clone())));
        Ok(Persistence { inner })
    }

    /// Installs this persistence into a server builder: as its session sink and as a hook
    /// (the loaders and the `$SYS` counters).
    pub fn install(&self, builder: moco_engine::ServerBuilder) -> moco_engine::ServerBuilder {
        builder
            .session_sink(Arc::new(self.clone()))
            .hook(self.clone())
    }

    /// Writes everything recorded so far and waits until it is durable; false if the store
    /// failed. Call it after the server stopped (with `Periodic`, what the last interval
    /// changed is written only then).
    pub async fn flush(&self) -> bool {
        let target = self.inner.seq.load(Ordering::Acquire);
        wait_durable(self.inner.clone(), target).await
    }

    /// Flushes and stops the writer task; once every clone of this persistence (and the
    /// server it was installed in) is dropped, the backend is closed (sled's directory lock
    /// released).
    pub async fn close(&self) -> bool {
        let stored = self.flush().await;
        self.inner.closing.store(true, Ordering::Release);
        self.inner.kick.notify_one();
        let writer = self.inner.writer.lock().take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        stored
    }

    /// The backend's name (`sled`, `redis`, `memory`).
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Applies `f` to the state; numbers the change if it wrote anything, so an
    /// acknowledgement waits only when there is something to wait for.
    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.inner.state.lock();
        let before = st.batch.len();
        f(&mut st);
        if st.batch.len() == before {
            return;
        }
        st.seq += 1;
        self.inner.seq.store(st.seq, Ordering::Release);
        drop(st);
        if self.inner.durability == Durability::Sync {
            self.inner.kick.notify_one();
        }
    }
}

fn forget_client(batch: &mut Batch, client: &str) {
    batch.delete(session_key(client));
    for kind in [SUBSCRIPTION, QUEUED, INFLIGHT, PENDING_REL] {
        batch.delete_prefix(client_prefix(kind, client));
    }
}

fn protocol(level: u8) -> ProtocolVersion {
    match level {
        3 => ProtocolVersion::V3,
        4 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    }
}

impl State {
    /// The id of `msg`'s `m/` record, written now if it has none; one more holder.
    fn hold(&mut self, msg: &Arc<Message>) -> Result<u64, StoreError> {
        let ptr = Arc::as_ptr(msg) as usize;
        if let Some(s) = self.messages.get_mut(&ptr) {
            s.holders += 1;
            return Ok(s.id);
        }
        let id = self.next_message;
        self.next_message += 1;
        self.batch.put(message_key(id), encode_message(msg)?);
        self.messages.insert(
            ptr,
            Stored {
                id,
                holders: 1,
                _alive: Arc::downgrade(msg),
            },
        );
        Ok(id)
    }

    /// One holder less for the message at `ptr`; its record goes with the last.
    fn release(&mut self, ptr: usize) {
        if let Some(s) = self.messages.get_mut(&ptr) {
            s.holders -= 1;
            if s.holders == 0 {
                let id = s.id;
                self.messages.remove(&ptr);
                self.batch.delete(message_key(id));
            }
        }
    }

    fn forget_will(&mut self, client: &str) {
        if self.wills.remove(client) {
            self.batch.delete(will_key(client));
        }
    }

    /// Whether `client`'s session outlives its connection (only those are recorded).
    fn knows(&self, client: &str) -> bool {
        self.sessions.contains_key(client)
    }

    fn end_session(&mut self, client: &str) {
        self.sessions.remove(client);
        if let Some(idx) = self.clients.remove(client) {
            for (_, ptr) in idx.queue {
                self.release(ptr);
            }
            for (_, ptr) in idx.inflight {
                self.release(ptr);
            }
        }
        forget_client(&mut self.batch, client);
    }

    fn put_session(&mut self, client: &str) -> Result<(), StoreError> {
        if let Some(r) = self.sessions.get(client) {
            let value = encode_value(r)?;
            self.batch.put(session_key(client), value);
        }
        Ok(())
    }

    fn delivery(&mut self, d: &Delivery) -> Result<Bytes, StoreError> {
        let message = self.hold(&d.msg)?;
        encode_value(&DeliveryRecord {
            message,
            qos: d.qos as u8,
            retain: d.retain,
            sub_ids: d.sub_ids.clone(),
        })
    }

    fn apply(&mut self, event: SessionEvent<'_>) -> Result<(), StoreError> {
        use SessionEvent as E;
        match event {
            E::Opened {
                client,
                expiry_interval,
                resumed,
                will,
            } => {
                let id = &*client.id;
                match will {
                    Some(w) => {
                        let value = encode_value(&WillRecord {
                            expiry: expiry_interval,
                            delay: w.delay(),
                            message: encode_publish(w.to_publish())?.to_vec(),
                        })?;
                        self.batch.put(will_key(id), value);
                        self.wills.insert(id.to_owned());
                    }
                    None => self.forget_will(id),
                }
                if (expiry_interval == 0 || !resumed) && self.knows(id) {
                    // A session that ends with its connection keeps nothing; a new one
                    // replaces what an old one kept.
                    self.end_session(id);
                }
                if expiry_interval > 0 {
                    self.sessions.insert(
                        id.to_owned(),
                        SessionRecord {
                            username: client.username.as_deref().map(str::to_owned),
                            listener: client.listener.to_string(),
                            protocol: client.protocol.level(),
                            expiry: expiry_interval,
                            detached_at_ms: None,
                        },
                    );
                    self.put_session(id)?;
                }
            }
            E::Detached {
                client_id,
                expiry_interval,
                at,
            } => {
                // The broker handles the will from here (sent, delayed or suppressed).
                self.forget_will(client_id);
                if let Some(r) = self.sessions.get_mut(client_id) {
                    r.expiry = expiry_interval;
                    r.detached_at_ms = Some(unix_ms(at));
                    self.put_session(client_id)?;
                }
            }
            E::Ended { client_id } => {
                self.forget_will(client_id);
                if self.knows(client_id) {
                    self.end_session(client_id);
                }
            }
            E::Subscribed {
                client_id,
                filter,
                options,
            } if self.knows(client_id) => {
                let value = encode_value(&SubscriptionRecord::from(options))?;
                self.batch.put(
                    client_key(SUBSCRIPTION, client_id, filter.as_bytes()),
                    value,
                );
            }
            E::Unsubscribed { client_id, filter } if self.knows(client_id) => {
                self.batch
                    .delete(client_key(SUBSCRIPTION, client_id, filter.as_bytes()));
            }
            E::Queued {
                client_id,
                delivery,
            } if self.knows(client_id) => {
                let value = self.delivery(delivery)?;
                let seq = self.next_queued;
                self.next_queued += 1;
                self.batch
                    .put(client_key(QUEUED, client_id, &seq.to_be_bytes()), value);
                self.clients
                    .entry(client_id.to_owned())
                    .or_default()
                    .queue
                    .push_back((seq, Arc::as_ptr(&delivery.msg) as usize));
            }
            E::Dequeued { client_id, message } | E::Dropped { client_id, message } => {
                let ptr = Arc::as_ptr(message) as usize;
                let Some(idx) = self.clients.get_mut(client_id) else {
                    return Ok(());
                };
                let Some(at) = idx.queue.iter().position(|(_, p)| *p == ptr) else {
                    return Ok(());
                };
                let (seq, _) = idx.queue.remove(at).expect("found");
                self.batch
                    .delete(client_key(QUEUED, client_id, &seq.to_be_bytes()));
                self.release(ptr);
            }
            E::InFlight {
                client_id,
                packet_id,
                delivery,
            } if self.knows(client_id) => {
                let value = self.delivery(delivery)?;
                self.batch.put(
                    client_key(INFLIGHT, client_id, &packet_id.to_be_bytes()),
                    value,
                );
                let ptr = Arc::as_ptr(&delivery.msg) as usize;
                let before = self
                    .clients
                    .entry(client_id.to_owned())
                    .or_default()
                    .inflight
                    .insert(packet_id, ptr);
                if let Some(old) = before {
                    self.release(old);
                }
            }
            E::Completed {
                client_id,
                packet_id,
            }
            | E::Abandoned {
                client_id,
                packet_id,
            } => {
                let Some(ptr) = self
                    .clients
                    .get_mut(client_id)
                    .and_then(|idx| idx.inflight.remove(&packet_id))
                else {
                    return Ok(());
                };
                self.batch
                    .delete(client_key(INFLIGHT, client_id, &packet_id.to_be_bytes()));
                self.release(ptr);
            }
            E::Qos2Received {
                client_id,
                packet_id,
            } if self.knows(client_id) => {
                self.batch.put(
                    client_key(PENDING_REL, client_id, &packet_id.to_be_bytes()),
                    Bytes::new(),
                );
            }
            E::Qos2Released {
                client_id,
                packet_id,
            } if self.knows(client_id) => {
                self.batch
                    .delete(client_key(PENDING_REL, client_id, &packet_id.to_be_bytes()));
            }
            E::RetainedSet { message } => {
                self.batch
                    .put(retained_key(&message.topic), encode_message(message)?);
            }
            E::RetainedCleared { topic } => {
                self.batch.delete(retained_key(topic));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SessionSink for Persistence {
    fn record(&self, event: SessionEvent<'_>) {
        let mut failed = None;
        self.change(|st| {
            if let Err(e) = st.apply(event) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            // A record that cannot be encoded is a bug, not a store failure: say so once per
            // occurrence, and keep serving.
            error!(error = %e, "session change not recorded");
        }
    }

    fn syncs(&self) -> bool {
        self.inner.durability == Durability::Sync
    }

    fn durable(&self) -> Option<Durable> {
        let target = self.inner.seq.load(Ordering::Acquire);
        if self.inner.progress.borrow().durable >= target {
            return None;
        }
        // `wait_durable` kicks the writer.
        Some(Box::pin(wait_durable(self.inner.clone(), target)))
    }
}

async fn wait_durable(inner: Arc<Inner>, target: u64) -> bool {
    let mut rx = inner.progress.subscribe();
    inner.kick.notify_one();
    loop {
        let p = *rx.borrow_and_update();
        if p.durable >= target {
            return true;
        }
        if p.failed >= target {
            return false;
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

/// The writer task: takes the pending batch and writes it, one write at a time; what is
/// recorded meanwhile goes into the next one (group commit).
async fn write_loop(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match inner.durability {
            Durability::Sync => inner.kick.notified().await,
            Durability::Periodic(every) => {
                let _ = tokio::time::timeout(every, inner.kick.notified()).await;
            }
        }
        loop {
            let (batch, seq) = {
                let mut st = inner.state.lock();
                (std::mem::take(&mut st.batch), st.seq)
            };
            if batch.is_empty() {
                inner
                    .progress
                    .send_modify(|p| p.durable = p.durable.max(seq));
                break;
            }
            match inner.backend.write(batch.clone()).await {
                Ok(()) => {
                    inner
                        .progress
                        .send_modify(|p| p.durable = p.durable.max(seq));
                    backoff = Duration::from_millis(50);
                    if inner.failing.swap(false, Ordering::Relaxed) {
                        info!(backend = inner.backend.name(), "store writes again");
                    }
                }
                Err(e) => {
                    if !inner.failing.swap(true, Ordering::Relaxed) {
                        error!(backend = inner.backend.name(), error = %e, "store write failed; acknowledgements say so until it recovers");
                    }
                    inner.progress.send_modify(|p| p.failed = p.failed.max(seq));
                    {
                        // Retried first, before what was recorded since.
                        let mut st = inner.state.lock();
                        let later = std::mem::replace(&mut st.batch, batch);
                        st.batch.extend(later);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if inner.closing.load(Ordering::Acquire) {
            break;
        }
    }
}

impl Hook for Persistence {
    fn id(&self) -> &str {
        "storage"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(
            event,
            Event::OnSysInfoTick
                | Event::StoredClients
                | Event::StoredSubscriptions
                | Event::StoredInflightMessages
                | Event::StoredRetainedMessages
                | Event::StoredQueuedMessages
                | Event::StoredWills
                | Event::StoredSysInfo
        )
    }

    fn on_sys_info_tick(&self, info: &SysSnapshot) {
        self.change(|st| match encode_value(info) {
            Ok(v) => {
                st.batch.put(SYS, v);
            }
            Err(e) => error!(error = %e, "$SYS counters not recorded"),
        });
    }

    fn stored_clients(&self) -> Result<Vec<StoredClient>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().clients))
    }

    fn stored_subscriptions(&self) -> Result<Vec<StoredSubscription>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().subscriptions))
    }

    fn stored_inflight_messages(&self) -> Result<Vec<StoredInflight>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().inflight))
    }

    fn stored_retained_messages(&self) -> Result<Vec<Publish>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().retained))
    }

    fn stored_queued_messages(&self) -> Result<Vec<StoredQueued>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().queued))
    }

    fn stored_wills(&self) -> Result<Vec<StoredWill>, HookError> {
        Ok(std::mem::take(&mut self.inner.loaded.lock().wills))
    }

    fn stored_sys_info(&self) -> Result<Option<SysSnapshot>, HookError> {
        Ok(self.inner.loaded.lock().sys.take())
    }
}

impl From<SubscriptionOptions> for SubscriptionRecord {
    fn from(o: SubscriptionOptions) -> Self {
        SubscriptionRecord {
            qos: o.qos,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            retain_handling: match o.retain_handling {
                RetainHandling::SendAtSubscribe => 0,
                RetainHandling::SendIfNew => 1,
                RetainHandling::DoNotSend => 2,
            },
            identifier: o.identifier.map(|i| i.get()),
        }
    }
}

impl From<SubscriptionRecord> for SubscriptionOptions {
    fn from(r: SubscriptionRecord) -> Self {
        let mut o = SubscriptionOptions::with_qos(r.qos.min(2));
        o.no_local = r.no_local;
        o.retain_as_published = r.retain_as_published;
        o.retain_handling = match r.retain_handling {
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => RetainHandling::SendAtSubscribe,
        };
        o.identifier = r.identifier.and_then(std::num::NonZeroU32::new);
        o
    }
}

//! Routing a message to its subscribers, with the per-thread batch that defers writer wake-ups
//! and reuses a topic's route within a read (see docs/architecture.md, "The path of one
//! delivery").

use super::*;

thread_local! {
    static TARGETS: std::cell::Cell<Vec<Target>> = const { std::cell::Cell::new(Vec::new()) };
    /// Whether a [`WakeBatch`] is open on this thread.
    static BATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The writers it will wake.
    static DEFERRED: std::cell::Cell<Vec<Arc<ClientHandle>>> =
        const { std::cell::Cell::new(Vec::new()) };
    /// The targets of the last message routed on this thread (see [`RouteCache`]).
    static ROUTE_CACHE: std::cell::Cell<Option<Box<RouteCache>>> =
        const { std::cell::Cell::new(None) };
}

/// The subscribers the last message routed in this thread's [`WakeBatch`] went to, resolved to
/// their handles, valid while no subscription or client changed since (the broker's `routes`
/// generation) and dropped when the batch closes. A publisher sends a read buffer's worth of
/// messages on one topic at a time: after the first, they skip the trie's lock and walk, and
/// the registry's lock and one hash lookup per subscriber.
pub(super) struct RouteCache {
    /// Which broker (a process may run several, one after another at the same address).
    pub(super) broker: u64,
    pub(super) generation: u64,
    pub(super) topic: ByteString,
    pub(super) publisher: Option<ByteString>,
    /// The publisher's handle, for back-pressure.
    pub(super) publisher_handle: Option<Arc<ClientHandle>>,
    pub(super) targets: Vec<CachedTarget>,
}

pub(super) struct CachedTarget {
    pub(super) handle: Arc<ClientHandle>,
    pub(super) qos: u8,
    pub(super) retain_as_published: bool,
    pub(super) sub_ids: Vec<u32>,
}

/// Back-pressure: the publisher's reader waits for the congested subscriber `h`.
pub(super) fn wait_for(publisher: Option<&Arc<ClientHandle>>, h: &Arc<ClientHandle>) {
    if let Some(p) = publisher {
        if !Arc::ptr_eq(p, h) {
            p.flow.wait_for(h);
        }
    }
}

/// Wakes the writer of `h`: now, or when the open [`WakeBatch`] of this thread closes.
pub(super) fn wake_writer(h: &Arc<ClientHandle>) {
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
    pub(super) opened: bool,
}

impl WakeBatch {
    /// Opens a batch on this thread for the packets of a read buffer of `read_buffer` bytes
    /// (a nested one does nothing).
    pub(crate) fn open(read_buffer: usize) -> WakeBatch {
        let opened = !BATCHING.replace(true);
        if opened {
            crate::message::set_read_buffer_size(u32::try_from(read_buffer).unwrap_or(u32::MAX));
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
        crate::message::set_read_buffer_size(0);
        drop(ROUTE_CACHE.take());
        let mut v = DEFERRED.take();
        for h in v.drain(..) {
            h.notify.notify_one();
        }
        DEFERRED.set(v);
    }
}

/// Numbers brokers for [`RouteCache`].
pub(super) static BROKER_IDS: AtomicU64 = AtomicU64::new(0);

impl Broker {
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

    pub(super) fn route_targets(
        &self,
        now: Instant,
        msg: &Arc<Message>,
        targets: &mut Vec<Target>,
    ) -> usize {
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

    /// Queues `msg` for subscriber `h` with its subscription's (QoS, retain-as-published,
    /// subscription ids); true when `h` is congested (see [`wait_for`]).
    pub(super) fn deliver_to(
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
    pub(super) fn report(&self, to_report: Vec<(ByteString, Vec<Note>)>) {
        for (id, notes) in to_report {
            report_notes(self, &id, notes);
        }
    }

    /// Subscriptions or the client registry changed: routes cached on any thread are stale.
    pub(super) fn routes_changed(&self) {
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
    pub(super) fn publish_authorized(
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
}

//! The hook stack: runs every hook that provides an event, in the order added.

use super::*;

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

    /// The stored queued messages (first hook that has some).
    pub fn stored_queued_messages(&self) -> Result<Vec<StoredQueued>, crate::Error> {
        first_stored(
            self,
            Event::StoredQueuedMessages,
            |h| h.stored_queued_messages(),
            Vec::is_empty,
        )
        .map(Option::unwrap_or_default)
    }

    /// The stored wills (first hook that has some).
    pub fn stored_wills(&self) -> Result<Vec<StoredWill>, crate::Error> {
        first_stored(
            self,
            Event::StoredWills,
            |h| h.stored_wills(),
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

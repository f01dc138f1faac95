//! Read-only views and operator actions for an admin API (moco-http's `/api/v5`): one client's
//! detail, every subscription, the retained messages, and deleting one.
//!
//! Every view is a copy taken one client (or one index) at a time, so a long listing never
//! holds a lock across clients and holding its result pins nothing of the broker.

use super::*;

/// One client in detail ([`Broker::client_detail`]): what an operator asks about a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientDetail {
    /// Who it is and where it came from.
    pub client: ClientSnapshot,
    /// The keep-alive in force, in seconds (0: none).
    pub keep_alive: u16,
    /// The session expiry interval in seconds (0: the session ends with the connection).
    pub session_expiry_interval: u32,
    /// How many QoS 1/2 messages may be in flight to it at once.
    pub receive_maximum: u16,
    /// QoS 1/2 messages sent to it and not yet acknowledged.
    pub inflight: usize,
    /// Messages waiting to be sent to it (queue plus retained backlog).
    pub queued: usize,
    /// Its subscriptions, sorted by filter.
    pub subscriptions: Vec<SubscriptionSnapshot>,
}

/// One subscription of one client, as a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionSnapshot {
    /// The subscribing client.
    pub client_id: ByteString,
    /// The filter as subscribed (a shared subscription keeps its `$share/group/` prefix).
    pub filter: ByteString,
    /// The maximum QoS granted.
    pub qos: u8,
    /// v5 No Local.
    pub no_local: bool,
    /// v5 Retain As Published.
    pub retain_as_published: bool,
    /// v5 Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
}

impl SubscriptionSnapshot {
    fn new(
        client_id: &ByteString,
        filter: &ByteString,
        o: &moco_topic::SubscriptionOptions,
    ) -> Self {
        Self {
            client_id: client_id.clone(),
            filter: filter.clone(),
            qos: o.qos,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            retain_handling: o.retain_handling.as_u8(),
        }
    }
}

/// A page of retained messages ([`Broker::retained_messages`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetainedPage {
    /// The messages of the page, in the store's order.
    pub messages: Vec<Arc<Message>>,
    /// How many messages matched in all.
    pub total: usize,
}

impl Broker {
    /// Client `id` in detail, if known (connected, or away with a live session). Takes the
    /// client's state lock once, briefly.
    pub fn client_detail(&self, id: &str) -> Option<ClientDetail> {
        let h = self.client(id)?;
        let client = h.snapshot();
        let st = h.state.lock();
        let mut subscriptions: Vec<_> = st
            .session
            .subscriptions
            .iter()
            .map(|(f, o)| SubscriptionSnapshot::new(&h.info.id, f, o))
            .collect();
        subscriptions.sort_unstable_by(|a, b| a.filter.cmp(&b.filter));
        Some(ClientDetail {
            client,
            keep_alive: st.limits.keep_alive,
            session_expiry_interval: st.session.expiry_interval,
            receive_maximum: st.limits.receive_maximum,
            inflight: st.session.inflight.len(),
            queued: st.queued(),
            subscriptions,
        })
    }

    /// Every client's subscriptions, sorted by client id then filter. Each client's state
    /// lock is taken in turn, never two at once, and the registry's read lock only to copy
    /// the list of clients.
    pub fn subscriptions(&self) -> Vec<SubscriptionSnapshot> {
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        let mut out = Vec::new();
        for h in handles {
            let st = h.state.lock();
            out.extend(
                st.session
                    .subscriptions
                    .iter()
                    .map(|(f, o)| SubscriptionSnapshot::new(&h.info.id, f, o)),
            );
        }
        out.sort_unstable_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
        out
    }

    /// The retained messages matching `filter` (unexpired), skipping `offset` and keeping at
    /// most `limit`, with the number that matched. The store's read lock is held while it is
    /// walked; the messages are shared, not copied.
    pub fn retained_messages(
        &self,
        filter: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RetainedPage, Error> {
        moco_topic::validate_topic_filter(filter).map_err(Error::Topic)?;
        let now = Instant::now();
        let mut total = 0;
        let mut messages = Vec::new();
        self.retained.for_each_match(filter, &mut |m| {
            if m.is_expired(now) {
                return;
            }
            if total >= offset && messages.len() < limit {
                messages.push(m.clone());
            }
            total += 1;
        });
        Ok(RetainedPage { messages, total })
    }

    /// The retained message of `topic`, if there is one (and it has not expired).
    pub fn retained_message(&self, topic: &str) -> Result<Option<Arc<Message>>, Error> {
        moco_topic::validate_topic_name(topic).map_err(Error::Topic)?;
        let now = Instant::now();
        let mut found = None;
        // A topic name is a filter without wildcards that matches only itself.
        self.retained.for_each_match(topic, &mut |m| {
            if &*m.topic == topic && !m.is_expired(now) {
                found = Some(m.clone());
            }
        });
        Ok(found)
    }

    /// Clears the retained message of `topic` without publishing anything (an operator's
    /// delete, as EMQX's): the session sink records it cleared and `OnRetainMessage` hooks
    /// see an empty retained publish from the inline client, so storage forgets it too.
    /// Returns whether there was one.
    pub fn delete_retained(&self, topic: &str) -> Result<bool, Error> {
        moco_topic::validate_topic_name(topic).map_err(Error::Topic)?;
        let existed = self.retained.remove(topic);
        if existed {
            if let Some(sink) = self.sink.as_deref() {
                sink.record(SessionEvent::RetainedCleared { topic });
            }
            let cleared = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: ByteString::from(topic),
                packet_id: None,
                payload: Bytes::new(),
                properties: Default::default(),
            };
            self.hooks
                .on_retain_message(&ClientInfo::inline(), &cleared);
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::AllowAll;

    fn broker() -> Broker {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let options = Options {
            inline_client: true,
            ..Default::default()
        };
        Broker::new(options, hooks)
    }

    #[test]
    fn retained_pages_count_every_match_and_delete_clears_one() {
        let b = broker();
        for t in ["a/1", "a/2", "a/3", "b/1"] {
            b.inline_publish(t, "x", QoS::AtLeastOnce, true).unwrap();
        }
        let page = b.retained_messages("a/#", 1, 1).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.messages.len(), 1);
        assert_eq!(b.retained_messages("#", 0, 100).unwrap().total, 4);
        let m = b.retained_message("b/1").unwrap().expect("retained");
        assert_eq!(&m.payload[..], b"x");
        assert!(b.delete_retained("b/1").unwrap());
        assert!(!b.delete_retained("b/1").unwrap());
        assert!(b.retained_message("b/1").unwrap().is_none());
        assert!(b.retained_message("a/+").is_err());
    }

    #[test]
    fn a_deleted_retained_message_is_recorded_cleared() {
        #[derive(Default)]
        struct Cleared(Mutex<Vec<String>>);
        impl crate::SessionSink for Cleared {
            fn record(&self, event: SessionEvent<'_>) {
                if let SessionEvent::RetainedCleared { topic } = event {
                    self.0.lock().push(topic.to_owned());
                }
            }
        }
        let sink = Arc::new(Cleared::default());
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let options = Options {
            inline_client: true,
            ..Default::default()
        };
        let seams = crate::broker::Seams {
            sink: Some(sink.clone()),
            ..Default::default()
        };
        let b = Broker::with_seams(options, hooks, seams);
        b.inline_publish("kept", "x", QoS::AtMostOnce, true)
            .unwrap();
        assert!(b.delete_retained("kept").unwrap());
        assert!(!b.delete_retained("kept").unwrap());
        assert_eq!(*sink.0.lock(), vec!["kept".to_owned()]);
    }

    #[test]
    fn detail_and_subscriptions_copy_the_session() {
        let b = broker();
        let now = Instant::now();
        let mut c = Connect::new(ProtocolVersion::V5, "c1");
        c.keep_alive = 30;
        let ConnectOutcome::Accepted(h) = b.connect(now, &c, Arc::from("r"), Arc::from("l")) else {
            panic!("refused")
        };
        let sub = Subscribe {
            packet_id: 1,
            filters: vec![(
                ByteString::from("x/+"),
                moco_codec::SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            )],
            properties: Default::default(),
        };
        b.subscribe(now, &h, sub);
        let d = b.client_detail("c1").expect("known");
        assert_eq!(d.keep_alive, 30);
        assert_eq!(d.subscriptions.len(), 1);
        assert_eq!(&*d.subscriptions[0].filter, "x/+");
        assert!(d.subscriptions[0].no_local);
        assert_eq!(d.subscriptions[0].qos, 1);
        assert_eq!(b.subscriptions(), d.subscriptions);
        assert!(b.client_detail("nobody").is_none());
    }
}

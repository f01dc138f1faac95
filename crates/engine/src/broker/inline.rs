//! The inline client: publish, subscribe and unsubscribe from the embedding program.

use super::*;

/// A handler of messages for an inline subscription.
pub type InlineHandler = Arc<dyn Fn(&Publish) + Send + Sync>;

pub(super) struct InlineSub {
    pub(super) filter: String,
    pub(super) id: u32,
    pub(super) handler: InlineHandler,
}

impl Broker {
    pub(super) fn deliver_inline(&self, now: Instant, msg: &Message) {
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

    pub(super) fn check_inline(&self) -> Result<(), Error> {
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
        self.retained.for_each_match(filter, &mut |m| {
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
}

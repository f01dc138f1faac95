//! Restoring stored state (sessions) at start-up.

use super::*;

impl Broker {
    /// Puts a session's subscriptions (restored, or handed over by another broker) into the
    /// router for `client_id`.
    pub(super) fn adopt_subscriptions<'a>(
        &self,
        client_id: &ByteString,
        subscriptions: impl IntoIterator<Item = (&'a ByteString, &'a moco_topic::SubscriptionOptions)>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        for (filter, opts) in subscriptions {
            if let Err(e) = self.router.subscribe(client_id, filter, *opts) {
                result = result.and(Err(Error::Topic(e)));
            }
        }
        self.routes_changed();
        result
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
            kind: crate::listener::ListenerKind::Other,
            tls: None,
        };
        let mut session = Session::new(expiry_interval);
        for (filter, opts) in subscriptions {
            if self.hooks.acl_may_deny_within(&info, filter) {
                session.acl_checked.insert(filter.clone());
            }
            session.subscriptions.insert(filter.clone(), *opts);
        }
        self.adopt_subscriptions(&id, &session.subscriptions)?;
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
        // A session sink records the queue again as it is restored: the records it handed
        // back are replaced by those of the messages that now stand for them.
        st.set_note_storage(self.records_messages(expiry_interval));
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
}

#[cfg(test)]
mod tests {
    use super::super::*;
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

//! The CONNECT handshake's verdict: refusals, session take-over or resumption, the negotiated
//! limits and the CONNACK.

use super::*;
use crate::listener::Origin;

pub(super) fn obscure(options: &Options, code: ReasonCode) -> ReasonCode {
    if options.capabilities.compatibilities.obscure_not_authorized
        && code == ReasonCode::NotAuthorized
    {
        ReasonCode::UnspecifiedError
    } else {
        code
    }
}

pub(super) fn refuse(code: ReasonCode) -> ConnectOutcome {
    ConnectOutcome::Refused(Box::new(ConnAck {
        session_present: false,
        reason_code: code,
        properties: ConnAckProperties::default(),
    }))
}

pub(super) fn limits_qos(q: u8) -> QoS {
    QoS::try_from(q.min(2)).unwrap_or(QoS::ExactlyOnce)
}

/// What a CONNECT and the broker's options agree on, before the registry is touched.
#[derive(Debug)]
pub(super) struct Negotiated {
    /// The limits the client's state enforces.
    pub(super) limits: ConnLimits,
    /// The session expiry granted, in seconds (`u32::MAX`: a v3 persistent session).
    pub(super) expiry: u32,
    /// The CONNACK's properties (v5), but for the assigned client id and enhanced
    /// authentication, which the connection decides.
    pub(super) props: ConnAckProperties,
}

/// Negotiates a CONNECT against the broker's options: session expiry, keep-alive, quotas,
/// topic aliases, packet sizes and what CONNACK announces. A pure function, so every
/// combination is tested without a broker; `Err` is the code that refuses the client.
pub(super) fn negotiate(connect: &Connect, options: &Options) -> Result<Negotiated, ReasonCode> {
    let caps = &options.capabilities;
    let version = connect.protocol;
    let v5 = version.is_v5();
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
    if caps.maximum_keep_alive > 0 && (keep_alive == 0 || keep_alive > caps.maximum_keep_alive) {
        keep_alive = caps.maximum_keep_alive;
        server_keep_alive = Some(keep_alive);
    }
    if !v5 && server_keep_alive.is_some() {
        // v3 has no way to tell the client a server keep-alive: it is held to the maximum
        // unknowingly (as Mosquitto's max_keepalive), or refused if so configured.
        if caps.compatibilities.refuse_v3_keep_alive_above_maximum {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
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

    let mut props = ConnAckProperties::default();
    if v5 {
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
        if expiry != asked_expiry {
            props.session_expiry_interval = Some(expiry);
        }
        if cp.request_response_information == Some(true)
            || caps.compatibilities.always_return_response_info
        {
            props.response_information =
                Some(ByteString::from(options.response_information.clone()));
        }
    }
    Ok(Negotiated {
        limits,
        expiry,
        props,
    })
}

impl Broker {
    /// Handles a CONNECT that arrived at `now` from `remote` on `listener` (no enhanced
    /// authentication: a CONNECT carrying an authentication method is refused with 0x8C).
    pub fn connect(
        &self,
        now: Instant,
        connect: &Connect,
        remote: Arc<str>,
        listener: Arc<str>,
    ) -> ConnectOutcome {
        self.connect_with(now, connect, Origin::new(remote, listener), None)
    }

    /// Handles a CONNECT; `enhanced` is the final AUTH of a completed enhanced
    /// authentication exchange (MQTT 5 §4.12), which then replaces `OnConnectAuthenticate`
    /// and whose method and data go into CONNACK.
    pub fn connect_with(
        &self,
        now: Instant,
        connect: &Connect,
        origin: Origin,
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
            remote: origin.remote,
            listener: origin.listener,
            protocol: version,
            kind: origin.kind,
            tls: origin.tls,
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
        let Negotiated {
            limits,
            expiry,
            mut props,
        } = match negotiate(connect, &self.options) {
            Ok(n) => n,
            Err(code) => return refuse(code),
        };
        if !v5 && limits.keep_alive != connect.keep_alive {
            tracing::debug!(
                client = %client_id,
                asked = connect.keep_alive,
                held_to = limits.keep_alive,
                "v3 keep-alive above the maximum"
            );
        }

        // Ownership first (a cluster's registry may take the id from another broker), then
        // this broker's table: take over a live connection, resume or discard a session.
        let handed = match self.registry.claim(&client_id, connect.clean_start) {
            Ok(s) => s,
            Err(code) => return refuse(code),
        };
        let mut wills_now = Vec::new();
        let mut ended = None;
        let mut adopted = false;
        let (handle, session_present) = {
            let mut clients = self.clients.write();
            self.routes_changed();
            let mut session = None;
            if let Some(old) = clients.remove(&client_id) {
                match self.take_over(now, &old, connect.clean_start, &mut wills_now) {
                    TakenOver::Resumed(kept) => session = Some(kept),
                    TakenOver::Ended(gone) => ended = Some(gone),
                }
            } else if let Some(s) = handed {
                // A session handed over from another broker: its subscriptions route here now.
                if let Err(e) = self.adopt_subscriptions(&client_id, &s.subscriptions) {
                    // Filters come from a broker with the same rules: one that does not parse
                    // is skipped, not a reason to refuse the client.
                    tracing::warn!(client = %client_id, error = %e, "handed-over subscription");
                }
                session = Some(s);
                adopted = true;
            }
            let session_present = session.is_some();
            let mut session = session.unwrap_or_else(|| Session::new(expiry));
            session.expiry_interval = expiry;
            let mut st = ClientState::new(client_id.clone(), limits, session, now);
            let stored = self.records_messages(expiry);
            st.set_note_storage(stored);
            st.set_hold_acks(self.sync_acks);
            st.set_note_completions(
                stored || self.hooks.provides(crate::hooks::Event::OnQosComplete),
            );
            st.set_inherit_ack_properties(!caps.compatibilities.no_inherited_properties_on_ack);

            if v5 {
                props.assigned_client_identifier = assigned;
                if let Some(a) = &enhanced {
                    props.authentication_method = method.cloned();
                    props.authentication_data = a.properties.authentication_data.clone();
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
        if let Some(sink) = &self.sink {
            let will = handle.will.lock();
            sink.record(SessionEvent::Opened {
                client: &info,
                expiry_interval: expiry,
                resumed: session_present,
                will: will.as_deref(),
            });
            drop(will);
            if adopted {
                // A session handed over by another broker: this broker's store has not seen
                // its subscriptions.
                let subs = handle.state.lock().session.subscriptions.clone();
                for (filter, options) in &subs {
                    sink.record(SessionEvent::Subscribed {
                        client_id: &info.id,
                        filter,
                        options: *options,
                    });
                }
            }
        }
        self.info.client_connected();
        self.hooks.on_session_established(&info, connect);
        ConnectOutcome::Accepted(handle)
    }
}

/// What becomes of a session whose connection was taken over.
pub(super) enum TakenOver {
    /// The new connection resumes it.
    Resumed(Session),
    /// It ends (its subscriptions and messages are dropped).
    Ended(Session),
}

impl Broker {
    /// Ends `old`'s connection as taken over by a new one for its id and splits off its
    /// session: resumed by the new connection (not a clean start, a session that lasts, not
    /// expired) or ended. The old connection's will, and delayed wills
    /// of its id, that must go out now are appended to `wills_now` (published by the caller,
    /// outside the registry lock).
    pub(super) fn take_over(
        &self,
        now: Instant,
        old: &Arc<ClientHandle>,
        clean_start: bool,
        wills_now: &mut Vec<(ByteString, Will)>,
    ) -> TakenOver {
        old.taken_over.store(true, Ordering::Relaxed);
        self.end_injected(old);
        let mut st = old.state.lock();
        if st.is_connected() {
            st.close(CloseReason::SessionTakenOver);
        }
        let old_session = std::mem::take(&mut st.session);
        drop(st);
        old.notify.notify_one();
        old.closing.notify_one();
        let expired = old.expires_at.lock().is_some_and(|t| t <= now);
        let resume = !clean_start && old_session.expiry_interval > 0 && !expired;
        if let Some(w) = old.will.lock().take().map(|w| *w) {
            // The old connection's will goes out now unless its session continues and the
            // will was delayed.
            if w.delay() == 0 || !resume {
                wills_now.push((old.info.id.clone(), w));
            }
        }
        // Delayed wills of the old connection: cancelled if the session resumes, published
        // now if it ends.
        let mut pending = self.wills.lock();
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut *pending)
            .into_iter()
            .partition(|w| w.client_id == old.info.id);
        *pending = others;
        drop(pending);
        if resume {
            TakenOver::Resumed(old_session)
        } else {
            wills_now.extend(mine.into_iter().map(|w| (w.client_id, w.will)));
            TakenOver::Ended(old_session)
        }
    }

    /// Gives client `client_id` up to another broker that a [`SessionRegistry`] says now owns
    /// it (this broker's side of a cross-broker take-over): its connection here ends with
    /// 0x8E session taken over, wills go out as for a take-over here, and its session leaves
    /// this broker. Returns the session when the new connection resumes it (`clean_start`
    /// false and the session lasts), for the registry to hand to the new owner; `None` if
    /// the client is not here or its session ended.
    pub fn hand_over(&self, now: Instant, client_id: &str, clean_start: bool) -> Option<Session> {
        let old = {
            let mut clients = self.clients.write();
            self.routes_changed();
            clients.remove(client_id)?
        };
        let mut wills_now = Vec::new();
        let kept = self.take_over(now, &old, clean_start, &mut wills_now);
        for (id, w) in wills_now {
            self.publish_will(now, &id, w);
        }
        match kept {
            TakenOver::Resumed(session) => {
                // Its subscriptions route to the new owner now; its messages go with it.
                let mut filters = session.subscriptions.keys().map(|f| &**f);
                self.router.remove_client(&old.info.id, &mut filters);
                self.routes_changed();
                self.record_ended(&old.info.id);
                Some(session)
            }
            TakenOver::Ended(gone) => {
                self.drop_session(&old.info.id, gone);
                None
            }
        }
    }
}

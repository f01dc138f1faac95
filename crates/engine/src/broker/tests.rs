//! Unit tests of the broker core, in virtual time.

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
            let Some(crate::state::Transmit::Packet(Packet::ConnAck(ack))) = st.poll_transmit(t0)
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

/// A retained store that records what the broker asks of it, over the local one.
#[derive(Default)]
struct Recording {
    inner: crate::LocalRetained,
    calls: Mutex<Vec<String>>,
}

impl crate::RetainedStore for Recording {
    fn set(&self, msg: Arc<Message>) {
        self.calls.lock().push(format!("set {}", msg.topic));
        self.inner.set(msg);
    }
    fn remove(&self, topic: &str) -> bool {
        self.calls.lock().push(format!("remove {topic}"));
        self.inner.remove(topic)
    }
    fn remove_expired(&self, topic: &str, deadline: Instant) -> bool {
        self.calls.lock().push(format!("remove_expired {topic}"));
        self.inner.remove_expired(topic, deadline)
    }
    fn for_each_match(&self, filter: &str, f: &mut dyn FnMut(&Arc<Message>)) {
        self.calls.lock().push(format!("match {filter}"));
        self.inner.for_each_match(filter, f);
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[test]
fn retained_messages_go_through_the_retained_store_seam() {
    let store = Arc::new(Recording::default());
    let mut hooks = Hooks::new();
    hooks.add(Arc::new(AllowAll));
    let strategy = Options::default().capabilities.shared_sub_strategy;
    let b = Broker::with_stores(
        Options::default(),
        hooks,
        Arc::new(LocalRouter::with_strategy(strategy)),
        store.clone(),
    );
    let t0 = Instant::now();
    let retained = |topic: &str, payload: &'static [u8], expiry: Option<u32>| {
        let mut p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: topic.into(),
            packet_id: None,
            payload: Bytes::from_static(payload),
            properties: Default::default(),
        };
        p.properties.message_expiry_interval = expiry;
        p
    };
    b.publish_internal(t0, &retained("a/1", b"x", None));
    b.publish_internal(t0, &retained("a/2", b"y", Some(5)));
    b.publish_internal(t0, &retained("a/1", b"", None));
    assert_eq!(b.retained_count(), 1);
    // A subscriber gets what the store matches.
    let h = connect(&b, t0, "sub", 0);
    b.subscribe(t0, &h, sub("a/#"));
    assert_eq!(topics(&h), ["a/2"]);
    // Expiry asks the store to clear the message only if it is still the one that expires.
    b.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(b.retained_count(), 0);
    assert_eq!(
        *store.calls.lock(),
        [
            "set a/1",
            "set a/2",
            "remove a/1",
            "match a/#",
            "remove_expired a/2"
        ]
    );
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

mod negotiation {
    use super::super::connect::negotiate;
    use super::*;

    fn connect(version: ProtocolVersion, keep_alive: u16) -> Connect {
        Connect {
            protocol: version,
            clean_start: true,
            keep_alive,
            client_id: "n".into(),
            username: None,
            password: None,
            will: None,
            properties: Default::default(),
        }
    }

    fn options(f: impl FnOnce(&mut crate::Capabilities)) -> Options {
        let mut o = Options::default();
        f(&mut o.capabilities);
        o
    }

    #[test]
    fn session_expiry_is_granted_up_to_the_cap_and_told_when_lowered() {
        let o = options(|c| c.maximum_session_expiry_interval = 100);
        let mut c = connect(ProtocolVersion::V5, 0);
        c.properties.session_expiry_interval = Some(50);
        let n = negotiate(&c, &o).unwrap();
        assert_eq!((n.expiry, n.props.session_expiry_interval), (50, None));
        assert!(!n.limits.connect_expiry_zero);
        c.properties.session_expiry_interval = Some(1000);
        let n = negotiate(&c, &o).unwrap();
        assert_eq!(
            (n.expiry, n.props.session_expiry_interval),
            (100, Some(100))
        );
        c.properties.session_expiry_interval = None;
        let n = negotiate(&c, &o).unwrap();
        assert_eq!(n.expiry, 0);
        assert!(n.limits.connect_expiry_zero);
        // v3: a clean session ends with the connection, a persistent one lasts to the cap.
        let mut v3 = connect(ProtocolVersion::V311, 0);
        assert_eq!(negotiate(&v3, &o).unwrap().expiry, 0);
        v3.clean_start = false;
        let n = negotiate(&v3, &o).unwrap();
        assert_eq!(n.expiry, 100);
        assert_eq!(
            n.props,
            ConnAckProperties::default(),
            "v3 CONNACK has no properties"
        );
    }

    #[test]
    fn keep_alive_is_held_to_the_maximum_and_only_v5_is_told() {
        let o = options(|c| c.maximum_keep_alive = 60);
        for (version, asked, held, told) in [
            (ProtocolVersion::V5, 30, 30, None),
            (ProtocolVersion::V5, 0, 60, Some(60)),
            (ProtocolVersion::V5, 61, 60, Some(60)),
            (ProtocolVersion::V311, 0, 60, None),
            (ProtocolVersion::V3, 120, 60, None),
            (ProtocolVersion::V311, 60, 60, None),
        ] {
            let n = negotiate(&connect(version, asked), &o).unwrap();
            assert_eq!(n.limits.keep_alive, held, "{version:?} {asked}");
            assert_eq!(n.props.server_keep_alive, told, "{version:?} {asked}");
        }
        let strict = options(|c| {
            c.maximum_keep_alive = 60;
            c.compatibilities.refuse_v3_keep_alive_above_maximum = true;
        });
        assert_eq!(
            negotiate(&connect(ProtocolVersion::V311, 0), &strict).unwrap_err(),
            ReasonCode::ClientIdentifierNotValid
        );
        assert!(negotiate(&connect(ProtocolVersion::V5, 0), &strict).is_ok());
        // No cap: what the client asked for.
        let n = negotiate(&connect(ProtocolVersion::V5, 0), &Options::default()).unwrap();
        assert_eq!((n.limits.keep_alive, n.props.server_keep_alive), (0, None));
    }

    #[test]
    fn quotas_aliases_and_what_connack_announces() {
        let o = options(|c| {
            c.maximum_inflight = 100;
            c.maximum_qos = 1;
            c.retain_available = false;
            c.maximum_packet_size = 4096;
            c.topic_alias_maximum = 10;
            c.shared_sub_available = false;
        });
        let mut c = connect(ProtocolVersion::V5, 0);
        let n = negotiate(&c, &o).unwrap();
        assert_eq!(n.limits.send_quota, 100, "capped by maximum_inflight");
        assert_eq!(n.limits.topic_alias_maximum, 10);
        assert_eq!(n.limits.client_topic_alias_maximum, 0);
        assert_eq!(n.props.maximum_qos, Some(QoS::AtLeastOnce));
        assert_eq!(n.props.retain_available, Some(false));
        assert_eq!(n.props.maximum_packet_size, Some(4096));
        assert_eq!(n.props.topic_alias_maximum, Some(10));
        assert_eq!(n.props.shared_subscription_available, Some(false));
        assert_eq!(n.props.wildcard_subscription_available, None);
        assert_eq!(n.props.response_information, None);
        c.properties.receive_maximum = Some(5);
        c.properties.topic_alias_maximum = Some(7);
        c.properties.maximum_packet_size = Some(500);
        c.properties.request_response_information = Some(true);
        let n = negotiate(&c, &o).unwrap();
        assert_eq!(n.limits.send_quota, 5);
        assert_eq!(n.limits.client_topic_alias_maximum, 7);
        assert_eq!(n.limits.client_maximum_packet_size, 500);
        assert!(n.props.response_information.is_some());
        // v3: no topic aliases either way, whatever the options.
        let n = negotiate(&connect(ProtocolVersion::V311, 0), &o).unwrap();
        assert_eq!(n.limits.topic_alias_maximum, 0);
        assert_eq!(n.limits.client_topic_alias_maximum, 0);
    }
}

/// Two brokers sharing one ownership table, as a cluster's registry would: a claim of an id
/// another broker owns takes it from that broker with [`Broker::hand_over`].
#[derive(Default)]
struct SharedOwners {
    owners: Mutex<HashMap<ByteString, usize>>,
    nodes: Mutex<Vec<std::sync::Weak<Broker>>>,
    unreachable: AtomicBool,
}

struct Node(Arc<SharedOwners>, usize);

impl crate::registry::SessionRegistry for Node {
    fn claim(&self, id: &ByteString, clean_start: bool) -> Result<Option<Session>, ReasonCode> {
        if self.0.unreachable.load(Ordering::Relaxed) {
            return Err(ReasonCode::ServerUnavailable);
        }
        let before = self.0.owners.lock().insert(id.clone(), self.1);
        match before {
            Some(owner) if owner != self.1 => {
                let node = self.0.nodes.lock()[owner].upgrade().expect("node alive");
                Ok(node.hand_over(Instant::now(), id, clean_start))
            }
            _ => Ok(None),
        }
    }

    fn release(&self, id: &ByteString) {
        let mut owners = self.0.owners.lock();
        if owners.get(id) == Some(&self.1) {
            owners.remove(id);
        }
    }
}

fn cluster_of_two() -> (Arc<SharedOwners>, Arc<Broker>, Arc<Broker>) {
    let shared = Arc::new(SharedOwners::default());
    let node = |n: usize| {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        let b = Arc::new(Broker::with_seams(
            Options::default(),
            hooks,
            Seams {
                registry: Some(Arc::new(Node(shared.clone(), n))),
                ..Seams::default()
            },
        ));
        shared.nodes.lock().push(Arc::downgrade(&b));
        b
    };
    let (a, b) = (node(0), node(1));
    (shared, a, b)
}

/// The CONNACK queued first for `h` (what follows stays queued).
fn connack(h: &ClientHandle, now: Instant) -> ConnAck {
    match h.state.lock().poll_transmit(now) {
        Some(crate::state::Transmit::Packet(Packet::ConnAck(a))) => *a,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Take-over across brokers through the registry seam: the session (subscriptions and a
/// message in flight) moves with the client, the old connection gets 0x8E, and the broker it
/// left no longer routes to it.
#[test]
fn a_shared_registry_moves_a_session_between_brokers() {
    let (shared, a, b) = cluster_of_two();
    let t0 = Instant::now();
    let dev = connect(&a, t0, "dev", 60);
    assert!(!connack(&dev, t0).session_present);
    let mut s = sub("t/#");
    s.filters[0].1.qos = QoS::AtLeastOnce;
    a.subscribe(t0, &dev, s);
    let mut p = msg("t/1");
    p.qos = QoS::AtLeastOnce;
    a.publish_internal(t0, &p);
    let sent = a.drain_output(&dev, t0);
    assert!(
        sent.iter()
            .any(|p| matches!(p, Packet::Publish(p) if &*p.topic == "t/1" && !p.dup)),
        "{sent:?}"
    );

    // The same client comes back through the other broker, resuming its session.
    let moved = connect(&b, t0, "dev", 60);
    assert!(connack(&moved, t0).session_present);
    assert_eq!(
        dev.state.lock().close_reason(),
        Some(ReasonCode::SessionTakenOver)
    );
    assert!(a.client("dev").is_none());
    assert_eq!(a.subscription_count(), 0);
    assert_eq!(b.subscription_count(), 1);
    // The unacknowledged message is sent again, with DUP, by the broker it moved to.
    let resent = b.drain_output(&moved, t0);
    assert!(
        resent
            .iter()
            .any(|p| matches!(p, Packet::Publish(p) if &*p.topic == "t/1" && p.dup)),
        "{resent:?}"
    );
    // New messages reach it from its new broker; the old one has no route to it.
    assert_eq!(a.publish_internal(t0, &msg("t/2")), 0);
    assert_eq!(b.publish_internal(t0, &msg("t/3")), 1);
    assert_eq!(shared.owners.lock().get("dev"), Some(&1));

    // A clean start back on the first broker discards the session on the second.
    let fresh = connect_clean(&a, t0, "dev");
    assert!(!connack(&fresh, t0).session_present);
    assert_eq!(b.subscription_count(), 0);
    assert!(b.client("dev").is_none());

    // Its session ends with a clean disconnect: the id is released.
    let bye = moco_codec::Disconnect::default();
    fresh
        .state
        .lock()
        .handle_packet(t0, Packet::Disconnect(bye));
    a.disconnected(t0, &fresh);
    assert!(shared.owners.lock().get("dev").is_none());

    // A registry that cannot answer refuses the CONNECT with its code.
    shared.unreachable.store(true, Ordering::Relaxed);
    let c = Connect::new(ProtocolVersion::V5, "other");
    match b.connect(t0, &c, Arc::from("t"), Arc::from("t")) {
        ConnectOutcome::Refused(ack) => assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable),
        ConnectOutcome::Accepted(_) => panic!("accepted without the registry"),
    }
}

fn connect_clean(b: &Broker, now: Instant, id: &str) -> Arc<ClientHandle> {
    let c = Connect::new(ProtocolVersion::V5, id);
    match b.connect(now, &c, Arc::from("t"), Arc::from("t")) {
        ConnectOutcome::Accepted(h) => h,
        ConnectOutcome::Refused(a) => panic!("{a:?}"),
    }
}

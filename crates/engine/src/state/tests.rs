//! Unit tests of the per-client state machine, in virtual time.

use super::pins::{PIN_REGION, PIN_SLACK};
use super::*;
use bytes::Bytes;
use moco_codec::PublishProperties;

fn limits(version: ProtocolVersion) -> ConnLimits {
    ConnLimits {
        version,
        keep_alive: 10,
        send_quota: 2,
        receive_maximum: 2,
        topic_alias_maximum: 4,
        client_maximum_packet_size: 0,
        maximum_qos: QoS::ExactlyOnce,
        retain_available: true,
        max_pending: 3,
        connect_expiry_zero: false,
        client_topic_alias_maximum: 0,
    }
}

/// v5 limits with the largest send quota and a queue that never fills in a test.
fn roomy_limits() -> ConnLimits {
    let mut l = limits(ProtocolVersion::V5);
    l.send_quota = u16::MAX;
    l.max_pending = 100_000;
    l
}

fn state(now: Instant) -> ClientState {
    ClientState::new(
        "c".into(),
        limits(ProtocolVersion::V5),
        Session::new(60),
        now,
    )
}

fn publish(topic: &str, qos: QoS, pid: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: pid,
        payload: Bytes::from_static(b"x"),
        properties: PublishProperties::default(),
    }
}

fn delivery(now: Instant, qos: QoS, expiry: Option<u32>) -> Delivery {
    let mut p = publish("t", qos, None);
    p.properties.message_expiry_interval = expiry;
    Delivery {
        msg: Arc::new(Message::from_publish(&p, None, now, 0)),
        qos,
        retain: false,
        sub_ids: Vec::new(),
    }
}

fn dropped(st: &mut ClientState) -> Vec<DropReason> {
    st.take_notes()
        .into_iter()
        .filter_map(|n| match n {
            Note::Dropped(_, r) => Some(r),
            _ => None,
        })
        .collect()
}

fn drain(st: &mut ClientState, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| st.poll_transmit(now)).collect()
}

fn reason_of(t: &Transmit) -> Option<ReasonCode> {
    match t {
        Transmit::Packet(Packet::Disconnect(d)) => Some(d.reason_code),
        _ => None,
    }
}

#[test]
fn keep_alive_deadline_is_one_and_a_half_times() {
    let t0 = Instant::now();
    let mut st = state(t0);
    assert_eq!(st.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    st.handle_timeout(t0 + Duration::from_secs(14));
    assert!(st.is_connected());
    // A packet moves the deadline.
    st.handle_packet(t0 + Duration::from_secs(14), Packet::PingReq);
    assert_eq!(st.poll_timeout(), Some(t0 + Duration::from_secs(29)));
    st.handle_timeout(t0 + Duration::from_secs(29));
    assert_eq!(st.close_reason(), Some(ReasonCode::KeepAliveTimeout));
    let out = drain(&mut st, t0 + Duration::from_secs(29));
    // Once closing, only the DISCONNECT goes out, and only once.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(reason_of(&out[0]), Some(ReasonCode::KeepAliveTimeout));
    assert!(st.poll_transmit(t0).is_none());
}

#[test]
fn write_transmits_writes_what_poll_transmit_returns() {
    // Control packets, QoS 0 and QoS 1 messages, quota-limited, then resends with DUP after
    // a reconnect: the direct encoding and poll_transmit + encode give the same bytes.
    fn load(st: &mut ClientState, t0: Instant) {
        st.send(Packet::PingResp);
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
        for _ in 0..3 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
    }
    fn by_poll(st: &mut ClientState, t0: Instant) -> BytesMut {
        let mut out = BytesMut::new();
        for t in drain(st, t0) {
            match t {
                Transmit::Packet(p) => {
                    p.encode(ProtocolVersion::V5, &mut out).unwrap();
                }
                Transmit::Publish {
                    delivery,
                    packet_id,
                    dup,
                    alias,
                } => {
                    let params = delivery.params(dup, packet_id, alias);
                    delivery
                        .msg
                        .write_to(ProtocolVersion::V5, &params, t0, &mut out)
                        .unwrap();
                }
            }
        }
        out
    }
    let t0 = Instant::now();
    let (mut a, mut b) = (state(t0), state(t0));
    load(&mut a, t0);
    load(&mut b, t0);
    let want = by_poll(&mut a, t0);
    let mut got = BytesMut::new();
    let w = b.write_transmits(t0, &mut got, usize::MAX);
    assert_eq!(got, want);
    // PINGRESP, one QoS 0, two QoS 1 (send quota 2).
    assert_eq!(
        w,
        Written {
            packets: 4,
            publishes: 3
        }
    );
    let resume = |st: &mut ClientState| {
        st.detach();
        let session = std::mem::take(&mut st.session);
        ClientState::new("c".into(), limits(ProtocolVersion::V5), session, t0)
    };
    let (mut a, mut b) = (resume(&mut a), resume(&mut b));
    let want = by_poll(&mut a, t0);
    let mut got = BytesMut::new();
    b.write_transmits(t0, &mut got, usize::MAX);
    assert_eq!(got, want);
    assert_eq!(got[0] & 0x08, 0x08, "a resend carries DUP");
    // A budget stops the batch early; the rest follows on the next call.
    let mut st = state(t0);
    for _ in 0..3 {
        st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
    }
    let mut out = BytesMut::new();
    assert_eq!(st.write_transmits(t0, &mut out, 1).publishes, 1);
    assert_eq!(st.write_transmits(t0, &mut out, usize::MAX).publishes, 2);
}

#[test]
fn packet_ids_stay_unique_with_acks_out_of_order() {
    let t0 = Instant::now();
    let mut l = limits(ProtocolVersion::V5);
    l.send_quota = 100;
    l.max_pending = 1000;
    let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
    st.set_note_completions(false);
    let mut in_use = std::collections::BTreeSet::new();
    for round in 0..50u16 {
        for _ in 0..40 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        for t in drain(&mut st, t0) {
            let Transmit::Publish {
                packet_id: Some(p), ..
            } = t
            else {
                panic!("{t:?}")
            };
            assert!(in_use.insert(p), "packet id {p} given twice");
        }
        // Acknowledge every other one, newest first; the rest stay in flight a while.
        let acks: Vec<u16> = in_use.iter().rev().step_by(2).copied().collect();
        for p in acks {
            st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
            in_use.remove(&p);
        }
        if round % 10 == 9 {
            for p in std::mem::take(&mut in_use) {
                st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
            }
        }
        assert_eq!(st.session.inflight.len(), in_use.len());
    }
    // Completions were not noted: nobody listens.
    assert!(st.take_notes().is_empty());
    let mut st = state(t0);
    st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    drain(&mut st, t0);
    st.handle_packet(t0, Packet::PubAck(PubAck::new(1)));
    assert!(matches!(st.take_notes()[..], [Note::QosComplete(1)]));
}

#[test]
fn v3_close_sends_nothing() {
    let t0 = Instant::now();
    let mut st = ClientState::new(
        "c".into(),
        limits(ProtocolVersion::V311),
        Session::new(0),
        t0,
    );
    st.handle_timeout(t0 + Duration::from_secs(16));
    assert_eq!(st.close_reason(), Some(ReasonCode::KeepAliveTimeout));
    assert!(drain(&mut st, t0).is_empty());
}

#[test]
fn outbound_quota_packet_ids_and_acks() {
    let t0 = Instant::now();
    let mut st = state(t0);
    for _ in 0..3 {
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    }
    let out = drain(&mut st, t0);
    let ids: Vec<_> = out
        .iter()
        .map(|t| match t {
            Transmit::Publish { packet_id, .. } => packet_id.unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    // Send quota 2: the third waits.
    assert_eq!(ids, vec![1, 2]);
    assert!(!st.wants_transmit());
    st.handle_packet(t0, Packet::PubAck(PubAck::new(1)));
    assert!(st.wants_transmit());
    let out = drain(&mut st, t0);
    assert!(matches!(
        out[..],
        [Transmit::Publish {
            packet_id: Some(3),
            dup: false,
            ..
        }]
    ));
}

#[test]
fn qos2_outbound_flow_and_resend_with_dup() {
    let t0 = Instant::now();
    let mut st = state(t0);
    st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
    st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
    assert_eq!(drain(&mut st, t0).len(), 2);
    st.handle_packet(t0, Packet::PubRec(PubRec::new(1)));
    let out = drain(&mut st, t0);
    assert!(matches!(&out[..], [Transmit::Packet(Packet::PubRel(r))] if r.packet_id == 1));
    // Connection lost; the session moves to a new connection.
    st.detach();
    let session = std::mem::take(&mut st.session);
    let mut st2 = ClientState::new("c".into(), limits(ProtocolVersion::V5), session, t0);
    let out = drain(&mut st2, t0);
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], Transmit::Packet(Packet::PubRel(r)) if r.packet_id == 1));
    assert!(matches!(
        &out[1],
        Transmit::Publish {
            packet_id: Some(2),
            dup: true,
            ..
        }
    ));
    st2.handle_packet(t0, Packet::PubComp(PubComp::new(1)));
    st2.handle_packet(t0, Packet::PubRec(PubRec::new(2)));
    st2.handle_packet(t0, Packet::PubComp(PubComp::new(2)));
    assert!(st2.session.inflight.is_empty());
}

#[test]
fn inbound_qos2_duplicate_is_reacknowledged_not_rerouted() {
    let t0 = Instant::now();
    let mut st = state(t0);
    let ev = st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(7))));
    assert!(matches!(ev, Some(AppEvent::Publish(_))));
    st.publish_done(QoS::ExactlyOnce, 7, ReasonCode::Success);
    let again = st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(7))));
    assert!(again.is_none());
    let out = drain(&mut st, t0);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|t| matches!(t, Transmit::Packet(Packet::PubRec(r)) if r.packet_id == 7)));
    st.handle_packet(t0, Packet::PubRel(PubRel::new(7)));
    let out = drain(&mut st, t0);
    assert!(
        matches!(&out[..], [Transmit::Packet(Packet::PubComp(c))] if c.reason_code == ReasonCode::Success)
    );
    // Unknown PUBREL: PUBCOMP 0x92.
    st.handle_packet(t0, Packet::PubRel(PubRel::new(8)));
    let out = drain(&mut st, t0);
    assert!(
        matches!(&out[..], [Transmit::Packet(Packet::PubComp(c))] if c.reason_code == ReasonCode::PacketIdentifierNotFound)
    );
}

#[test]
fn inbound_receive_maximum_exceeded() {
    let t0 = Instant::now();
    let mut st = state(t0);
    for pid in 1..=2 {
        assert!(st
            .handle_packet(
                t0,
                Packet::Publish(publish("a", QoS::ExactlyOnce, Some(pid)))
            )
            .is_some());
    }
    st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(3))));
    assert_eq!(st.close_reason(), Some(ReasonCode::ReceiveMaximumExceeded));
}

#[test]
fn inbound_topic_aliases() {
    let t0 = Instant::now();
    let mut st = state(t0);
    let mut p = publish("long/topic", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(3);
    assert!(st.handle_packet(t0, Packet::Publish(p)).is_some());
    let mut p = publish("", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(3);
    match st.handle_packet(t0, Packet::Publish(p)) {
        Some(AppEvent::Publish(p)) => {
            assert_eq!(&*p.topic, "long/topic");
            assert_eq!(p.properties.topic_alias, None);
        }
        other => panic!("{other:?}"),
    }
    // Unknown alias with empty topic: protocol error.
    let mut p = publish("", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(2);
    st.handle_packet(t0, Packet::Publish(p));
    assert_eq!(st.close_reason(), Some(ReasonCode::ProtocolError));
    // Alias above the maximum: 0x94.
    let mut st = state(t0);
    let mut p = publish("a", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(5);
    st.handle_packet(t0, Packet::Publish(p));
    assert_eq!(st.close_reason(), Some(ReasonCode::TopicAliasInvalid));
}

#[test]
fn qos_above_maximum_is_refused_with_9b() {
    let t0 = Instant::now();
    let mut l = limits(ProtocolVersion::V5);
    l.maximum_qos = QoS::AtLeastOnce;
    let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
    st.handle_packet(t0, Packet::Publish(publish("a", QoS::ExactlyOnce, Some(1))));
    assert_eq!(st.close_reason(), Some(ReasonCode::QoSNotSupported));
}

#[test]
fn bounded_queue_drops_new_messages_and_evicts_oldest_offline() {
    let t0 = Instant::now();
    let mut st = state(t0);
    for _ in 0..3 {
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    }
    st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
    st.deliver(t0, delivery(t0, QoS::ExactlyOnce, None));
    assert_eq!(st.session.pending.len(), 3);
    assert!(st.session.pending.iter().all(|d| d.qos == QoS::AtLeastOnce));
    assert_eq!(dropped(&mut st).len(), 2);
    assert!(st.is_connected());
    // Offline: the oldest makes room, whatever the QoS.
    st.detach();
    st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
    assert_eq!(st.session.pending.len(), 3);
    assert_eq!(st.session.pending.back().unwrap().qos, QoS::AtMostOnce);
    assert_eq!(dropped(&mut st)[0], DropReason::QueueFull);
}

#[test]
fn qos1_beyond_the_quota_waits_and_past_the_queue_is_dropped_not_disconnected() {
    let t0 = Instant::now();
    let mut st = state(t0);
    // Send quota 2, queue 3: two go out, three wait, the sixth is dropped.
    for _ in 0..6 {
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        let _ = drain(&mut st, t0);
    }
    assert!(st.is_connected(), "{:?}", st.close_reason());
    assert_eq!(st.session.inflight.len(), 2);
    assert_eq!(st.session.pending.len(), 3);
    assert_eq!(dropped(&mut st), vec![DropReason::QueueFull]);
    // Every acknowledgement lets one more out, in order, until all five were sent.
    let mut sent = 2;
    let mut pid = 1;
    while let Some(p) = st.session.inflight.front().map(|i| i.packet_id) {
        assert_eq!(p, pid);
        pid += 1;
        st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
        sent += drain(&mut st, t0).len();
    }
    assert_eq!(sent, 5);
    assert!(st.session.pending.is_empty() && st.is_connected());
}

#[test]
fn retained_backlog_is_not_bounded_by_the_queue_and_flows_with_the_quota() {
    // Virtual time: a client with send quota 2 and a queue of 3 subscribes to 20 000
    // retained QoS 1 messages and acknowledges as they come, 10 ms apart; live messages
    // published meanwhile wait behind the backlog.
    let t0 = Instant::now();
    let mut st = state(t0);
    let n = 20_000;
    st.deliver_retained((0..n).map(|_| delivery(t0, QoS::AtLeastOnce, None)));
    st.deliver(t0, delivery(t0, QoS::AtMostOnce, None));
    assert_eq!(st.queued(), n + 1);
    let mut now = t0;
    let mut got = 0;
    let mut live = 0;
    loop {
        let out = drain(&mut st, now);
        if out.is_empty() {
            break;
        }
        for t in out {
            match t {
                Transmit::Publish {
                    delivery,
                    packet_id: Some(pid),
                    ..
                } => {
                    assert!(live == 0, "a live message overtook the retained ones");
                    assert_eq!(delivery.qos, QoS::AtLeastOnce);
                    got += 1;
                    now += Duration::from_millis(10);
                    st.handle_packet(now, Packet::PubAck(PubAck::new(pid)));
                }
                Transmit::Publish {
                    packet_id: None, ..
                } => live += 1,
                other => panic!("{other:?}"),
            }
        }
        // Never more in flight than the quota.
        assert!(st.session.inflight.len() <= 2);
    }
    assert_eq!((got, live), (n, 1));
    assert!(dropped(&mut st).is_empty());
    assert!(st.is_connected());
}

#[test]
fn expired_messages_are_never_sent_and_expiry_counts_down() {
    let t0 = Instant::now();
    let mut st = state(t0);
    st.deliver(t0, delivery(t0, QoS::AtMostOnce, Some(5)));
    st.deliver(t0, delivery(t0, QoS::AtMostOnce, Some(60)));
    let t = t0 + Duration::from_secs(10);
    let out = drain(&mut st, t);
    assert_eq!(out.len(), 1);
    match &out[0] {
        Transmit::Publish { delivery, .. } => {
            assert_eq!(delivery.msg.remaining_expiry(t), Some(50));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dropped(&mut st)[0], DropReason::Expired);
}

#[test]
fn disconnect_cannot_raise_zero_session_expiry() {
    let t0 = Instant::now();
    let mut l = limits(ProtocolVersion::V5);
    l.connect_expiry_zero = true;
    let mut st = ClientState::new("c".into(), l, Session::new(0), t0);
    let mut d = Disconnect {
        reason_code: ReasonCode::Success,
        properties: DisconnectProperties::default(),
    };
    d.properties.session_expiry_interval = Some(30);
    st.handle_packet(t0, Packet::Disconnect(d));
    assert_eq!(st.close_reason(), Some(ReasonCode::ProtocolError));
}

/// A delivery of a message whose payload is a slice of `buf` at `at`.
fn delivery_from(buf: &Bytes, at: usize, len: usize, qos: QoS) -> Delivery {
    let mut p = publish("t", qos, None);
    p.payload = buf.slice(at..at + len);
    Delivery {
        msg: Arc::new(Message::from_publish(&p, None, Instant::now(), 0)),
        qos,
        retain: false,
        sub_ids: Vec::new(),
    }
}

/// Held messages keep sharing their publishers' read buffers while they are many out of
/// few buffers; a few out of each of many buffers get bytes of their own past the bound, as
/// does everything held for a client that is away.
#[test]
fn held_messages_stop_sharing_read_buffers_when_they_would_pin_many() {
    let t0 = Instant::now();
    let l = roomy_limits();
    let owned = |st: &ClientState| -> (usize, usize) {
        let q = st
            .session
            .pending
            .iter()
            .filter(|d| d.msg.is_owned())
            .count();
        let i = st.session.inflight.iter();
        (q, i.filter(|i| i.delivery.msg.is_owned()).count())
    };
    // 64 buffers' worth of memory, one region each.
    let big = Bytes::from(vec![7u8; 64 * PIN_REGION]);

    // Dense: thousands of messages out of a few buffers are never copied.
    let mut st = ClientState::new("dense".into(), l.clone(), Session::new(60), t0);
    for i in 0..4 * PIN_REGION / 64 {
        st.deliver(t0, delivery_from(&big, i * 64, 60, QoS::AtMostOnce));
    }
    assert_eq!(owned(&st), (0, 0));

    // Sparse: one small message per buffer, QoS 1, sent and never acknowledged. Past the
    // slack they are all copied, sent or not, and so is what comes after.
    let mut st = ClientState::new("sparse".into(), l.clone(), Session::new(60), t0);
    st.set_note_completions(false);
    let within = PIN_SLACK / PIN_REGION;
    for i in 0..within {
        st.deliver(
            t0,
            delivery_from(&big, i * PIN_REGION, 16, QoS::AtLeastOnce),
        );
    }
    drain(&mut st, t0);
    assert_eq!(owned(&st), (0, 0), "within the slack nothing is copied");
    st.deliver(
        t0,
        delivery_from(&big, within * PIN_REGION, 16, QoS::AtLeastOnce),
    );
    assert_eq!(owned(&st), (1, within));
    st.deliver(t0, delivery_from(&big, 0, 16, QoS::AtLeastOnce));
    assert_eq!(owned(&st), (2, within));
    assert!(st
        .session
        .pending
        .iter()
        .all(|d| d.msg.payload == [7u8; 16][..]));
    // Holding nothing again, counting starts afresh.
    let held: Vec<u16> = st.session.inflight.iter().map(|i| i.packet_id).collect();
    drain(&mut st, t0);
    for p in held
        .into_iter()
        .chain([within as u16 + 1, within as u16 + 2])
    {
        st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
    }
    assert!(st.session.inflight.is_empty() && st.session.pending.is_empty());
    st.deliver(t0, delivery_from(&big, 0, 16, QoS::AtLeastOnce));
    assert_eq!(owned(&st), (0, 0));

    // Away: what is held and what comes is copied.
    st.detach();
    assert_eq!(owned(&st), (1, 0));
    st.deliver(t0, delivery_from(&big, PIN_REGION, 16, QoS::AtMostOnce));
    assert_eq!(owned(&st), (2, 0));
}

/// Messages decoded from small read buffers (a publisher held back by its receive maximum
/// reads a few KiB at a time) count as pinning those buffers' sizes, not 64 KiB each.
#[test]
fn small_read_buffers_count_as_their_size() {
    let t0 = Instant::now();
    const SMALL: usize = 4096;
    // Small buffers scattered over memory: one at the start of each 64 KiB region.
    let memory = Bytes::from(vec![7u8; 400 * PIN_REGION]);
    let from_small_buffer = |b: usize, at: usize, len: usize| {
        crate::message::set_read_buffer_size(SMALL as u32);
        let d = delivery_from(&memory, b * PIN_REGION + at, len, QoS::AtMostOnce);
        crate::message::set_read_buffer_size(0);
        d
    };
    let owned = |st: &ClientState| {
        st.session
            .pending
            .iter()
            .filter(|d| d.msg.is_owned())
            .count()
    };
    // 200 buffers with ten 100-byte messages each: 800 KiB pinned for 200 KB held, within
    // the bound (counted as 64 KiB buffers they would be 12.5 MiB, far past it).
    let mut st = ClientState::new("fan-in".into(), roomy_limits(), Session::new(60), t0);
    for b in 0..200 {
        for m in 0..10 {
            st.deliver(t0, from_small_buffer(b, m * 100, 100));
        }
    }
    assert_eq!(owned(&st), 0);
    // One 16-byte message out of each of 200 small buffers: past the bound all the same.
    let mut st = ClientState::new("sparse".into(), roomy_limits(), Session::new(60), t0);
    for b in 200..400 {
        st.deliver(t0, from_small_buffer(b, 0, 16));
    }
    assert!(
        owned(&st) > 0,
        "small buffers pinned for tiny messages are never copied"
    );
}

/// Ids given after the id space wrapped skip one message that stayed unacknowledged all
/// along, and restored messages in any order are skipped too.
#[test]
fn packet_ids_skip_an_old_unacknowledged_id_after_wrapping_and_restored_ones() {
    let t0 = Instant::now();
    let mut l = limits(ProtocolVersion::V5);
    l.send_quota = 10;
    l.max_pending = 100;
    let ids = |st: &mut ClientState| -> Vec<u16> {
        drain(st, t0)
            .iter()
            .filter_map(|t| match t {
                Transmit::Publish { packet_id, .. } => *packet_id,
                _ => None,
            })
            .collect()
    };
    let mut st = ClientState::new("c".into(), l.clone(), Session::new(0), t0);
    st.set_note_completions(false);
    st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    assert_eq!(ids(&mut st), [1]);
    let mut given = 0u32;
    while given < 2 * u32::from(u16::MAX) {
        for _ in 0..5 {
            st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
        }
        let batch = ids(&mut st);
        assert_eq!(batch.len(), 5);
        for &p in &batch {
            assert_ne!(p, 1, "id 1 is still in flight");
            st.handle_packet(t0, Packet::PubAck(PubAck::new(p)));
        }
        given += 5;
    }
    assert_eq!(st.session.inflight.len(), 1);

    // Restored out of order (a stored session): still never given twice.
    let mut st = ClientState::new("r".into(), l, Session::new(0), t0);
    for p in [5, 3, 9] {
        st.restore_inflight(Inflight {
            packet_id: p,
            delivery: delivery(t0, QoS::AtLeastOnce, None),
            stage: Stage::AwaitPubAck,
            resends: 0,
        });
    }
    for _ in 0..7 {
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    }
    assert_eq!(ids(&mut st), [1, 2, 4, 6, 7, 8, 10]);
}

#[test]
fn packet_ids_skip_ids_in_use() {
    let t0 = Instant::now();
    let mut st = ClientState::new("c".into(), roomy_limits(), Session::new(0), t0);
    st.session.next_packet_id = u16::MAX - 1;
    for _ in 0..3 {
        st.deliver(t0, delivery(t0, QoS::AtLeastOnce, None));
    }
    let ids: Vec<_> = drain(&mut st, t0)
        .iter()
        .map(|t| match t {
            Transmit::Publish { packet_id, .. } => packet_id.unwrap(),
            _ => 0,
        })
        .collect();
    assert_eq!(ids, vec![u16::MAX, 1, 2]);
}

//! Setup and measured steps shared by the engine's benches (`hooks`, `routing`): v5 clients
//! subscribed to `bench/+/t` at QoS 0, one QoS 0 PUBLISH to `bench/x/t`, and each delivery
//! drained from the subscriber's state and encoded as the writer does.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use moco_codec::{Connect, ProtocolVersion, Publish, QoS, RetainHandling, Subscribe};
use moco_engine::message::DeliveryParams;
use moco_engine::state::Transmit;
use moco_engine::{Broker, ClientHandle};

/// A v5 CONNECT for `id`: clean start, no keep-alive, nothing else.
pub fn connect(id: String) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        username: None,
        password: None,
        will: None,
        properties: Default::default(),
    }
}

/// Drops whatever `h` has to send (a CONNACK, a SUBACK).
pub fn drain(h: &ClientHandle, now: Instant) {
    while h.state.lock().poll_transmit(now).is_some() {}
}

/// Subscribes `h` to `bench/+/t` at QoS 0 (no retained messages) and drops the SUBACK.
pub fn subscribe(broker: &Broker, now: Instant, h: &Arc<ClientHandle>) {
    broker.subscribe(
        now,
        h,
        Subscribe {
            packet_id: 1,
            filters: vec![(
                "bench/+/t".into(),
                moco_codec::SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::DoNotSend,
                },
            )],
            properties: Default::default(),
        },
    );
    drain(h, now);
}

/// A QoS 0 PUBLISH of `payload` to `bench/x/t`.
#[inline]
pub fn publish(payload: &Bytes) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "bench/x/t".into(),
        packet_id: None,
        payload: payload.clone(),
        properties: Default::default(),
    }
}

/// Drains every subscriber's deliveries and encodes each into `out` (cleared after each
/// subscriber), as the writer does; returns how many were delivered.
#[inline]
pub fn drain_and_encode(subs: &[Arc<ClientHandle>], now: Instant, out: &mut BytesMut) -> usize {
    let mut delivered = 0;
    for h in subs {
        let mut st = h.state.lock();
        while let Some(t) = st.poll_transmit(now) {
            if let Transmit::Publish {
                delivery,
                packet_id,
                dup,
                alias,
            } = t
            {
                let params = DeliveryParams {
                    qos: delivery.qos,
                    retain: delivery.retain,
                    dup,
                    packet_id,
                    sub_ids: &delivery.sub_ids,
                    alias,
                };
                delivery
                    .msg
                    .write_to(ProtocolVersion::V5, &params, now, out)
                    .unwrap();
                delivered += 1;
            }
        }
        out.clear();
    }
    delivered
}

//! A virtual-time harness (tests only): a broker and its clients driven through the same code
//! the driver runs (`driver::process_at`, the connection's end), with no sockets and a clock the
//! test moves. Keep-alive, will delay, message and session expiry are tested here in
//! microseconds of real time; the socket tests test the driver and the sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moco_codec::{ConnAck, Connect, Packet};

use crate::broker::{report_notes, Broker, ClientHandle, ConnectOutcome};
use crate::error::CloseReason;
use crate::hooks::{AllowAll, Hooks};
use crate::options::Options;
use crate::state::Transmit;

/// A broker and a virtual clock.
pub(crate) struct Sim {
    pub(crate) broker: Arc<Broker>,
    pub(crate) now: Instant,
    clients: Vec<Arc<ClientHandle>>,
}

/// A connected client of a [`Sim`].
#[derive(Clone)]
pub(crate) struct SimClient(pub(crate) Arc<ClientHandle>);

impl Sim {
    /// A broker with `options` and [`AllowAll`], at an arbitrary instant.
    pub(crate) fn new(options: Options) -> Sim {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        Sim {
            broker: Arc::new(Broker::new(options, hooks)),
            now: Instant::now(),
            clients: Vec::new(),
        }
    }

    /// CONNECT as the driver's handshake ends it: the client, or the refusing CONNACK.
    pub(crate) fn connect(&mut self, connect: &Connect) -> Result<SimClient, Box<ConnAck>> {
        match self
            .broker
            .connect(self.now, connect, Arc::from("sim"), Arc::from("sim"))
        {
            ConnectOutcome::Accepted(h) => {
                self.clients.push(h.clone());
                Ok(SimClient(h))
            }
            ConnectOutcome::Refused(ack) => Err(ack),
        }
    }

    /// The client sends `packet` now; false once its connection is closing.
    pub(crate) fn send(&self, c: &SimClient, packet: Packet) -> bool {
        crate::driver::process_at(&self.broker, &c.0, packet, self.now)
    }

    /// Everything the broker has to send the client now, as the writer would write it.
    pub(crate) fn recv(&self, c: &SimClient) -> Vec<Packet> {
        let mut out = Vec::new();
        let notes = {
            let mut st = c.0.state.lock();
            while let Some(t) = st.poll_transmit(self.now) {
                out.push(match t {
                    Transmit::Packet(p) => p,
                    Transmit::Publish {
                        delivery,
                        packet_id,
                        dup,
                        alias,
                    } => Packet::Publish(
                        delivery
                            .msg
                            .to_publish(&delivery.params(dup, packet_id, alias), self.now),
                    ),
                });
            }
            st.take_notes()
        };
        report_notes(self.broker.hooks(), &self.broker.info, &c.0.info.id, notes);
        out
    }

    /// The client's transport ends now (a network failure, or the client closing after
    /// its DISCONNECT): as the driver ends a connection.
    pub(crate) fn drop_connection(&mut self, c: &SimClient) {
        {
            let mut st = c.0.state.lock();
            if st.close_reason().is_none() {
                st.close(CloseReason::TransportEnded);
                st.detach();
            }
        }
        self.end(c.0.clone());
    }

    fn end(&mut self, h: Arc<ClientHandle>) {
        if let Some(i) = self.clients.iter().position(|x| Arc::ptr_eq(x, &h)) {
            self.clients.swap_remove(i);
            self.broker.disconnected(self.now, &h);
        }
    }

    /// Moves the clock by `d` and runs what the timers would: each connection's keep-alive (a
    /// connection that closes ends; its last packets are returned with it), then the broker's
    /// housekeeping (wills, session and retained expiry).
    pub(crate) fn advance(&mut self, d: Duration) -> Vec<(SimClient, Vec<Packet>)> {
        self.now += d;
        let mut ended = Vec::new();
        for h in self.clients.clone() {
            let closed = {
                let mut st = h.state.lock();
                st.handle_timeout(self.now);
                !st.is_connected()
            };
            if closed {
                let c = SimClient(h.clone());
                let last = self.recv(&c);
                self.end(h);
                ended.push((c, last));
            }
        }
        self.broker.handle_timeout(self.now);
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use moco_codec::{
        Disconnect, LastWill, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Subscribe,
        SubscriptionOptions, WillProperties,
    };

    fn connect(id: &str, version: ProtocolVersion, keep_alive: u16, expiry: u32) -> Connect {
        let mut c = Connect {
            protocol: version,
            clean_start: true,
            keep_alive,
            client_id: id.into(),
            username: None,
            password: None,
            will: None,
            properties: Default::default(),
        };
        if version.is_v5() {
            c.properties.session_expiry_interval = Some(expiry);
        }
        c
    }

    fn subscribe(filter: &str, qos: QoS) -> Packet {
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            )],
            properties: Default::default(),
        })
    }

    fn publish(topic: &str, payload: &'static [u8], expiry: Option<u32>) -> Packet {
        let mut p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: Bytes::from_static(payload),
            properties: Default::default(),
        };
        p.properties.message_expiry_interval = expiry;
        Packet::Publish(p)
    }

    fn publishes(packets: &[Packet]) -> Vec<&Publish> {
        packets
            .iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn with_will(mut c: Connect, delay: u32) -> Connect {
        let properties = WillProperties {
            will_delay_interval: Some(delay),
            ..Default::default()
        };
        c.will = Some(LastWill {
            topic: "will/gone".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties,
        });
        c
    }

    #[test]
    fn keep_alive_closes_at_one_and_a_half_times_and_sends_the_will() {
        let mut sim = Sim::new(Options::default());
        let s = sim
            .connect(&connect("s", ProtocolVersion::V5, 0, 0))
            .unwrap();
        sim.send(&s, subscribe("will/#", QoS::AtMostOnce));
        sim.recv(&s);
        let c = with_will(connect("ka", ProtocolVersion::V5, 10, 0), 0);
        let c = sim.connect(&c).unwrap();
        sim.recv(&c);
        // A packet at 9 s moves the deadline to 9 + 15 s.
        sim.advance(Duration::from_secs(9));
        sim.send(&c, Packet::PingReq);
        assert!(sim.advance(Duration::from_millis(14_999)).is_empty());
        let ended = sim.advance(Duration::from_millis(1));
        assert_eq!(ended.len(), 1);
        let last = &ended[0].1;
        assert!(
            matches!(last.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::KeepAliveTimeout),
            "{last:?}"
        );
        let got = sim.recv(&s);
        assert_eq!(publishes(&got)[0].payload, Bytes::from_static(b"gone"));
    }

    #[test]
    fn a_v3_client_is_closed_without_a_disconnect() {
        let mut sim = Sim::new(Options::default());
        let c = sim
            .connect(&connect("v3", ProtocolVersion::V311, 2, 0))
            .unwrap();
        sim.recv(&c);
        assert!(sim.advance(Duration::from_millis(2_999)).is_empty());
        let ended = sim.advance(Duration::from_millis(1));
        assert_eq!(ended.len(), 1);
        assert!(ended[0].1.is_empty(), "{:?}", ended[0].1);
    }

    #[test]
    fn a_delayed_will_waits_and_a_resumed_session_cancels_it() {
        let mut sim = Sim::new(Options::default());
        let s = sim
            .connect(&connect("s", ProtocolVersion::V5, 0, 0))
            .unwrap();
        sim.send(&s, subscribe("will/#", QoS::AtMostOnce));
        sim.recv(&s);

        // Not resumed: the will goes out after its delay, not before.
        let w = sim
            .connect(&with_will(connect("w", ProtocolVersion::V5, 0, 60), 5))
            .unwrap();
        sim.drop_connection(&w);
        sim.advance(Duration::from_millis(4_999));
        assert!(sim.recv(&s).is_empty());
        sim.advance(Duration::from_millis(1));
        assert_eq!(publishes(&sim.recv(&s)).len(), 1);

        // Resumed within the delay: no will, ever.
        let w = sim
            .connect(&with_will(connect("w2", ProtocolVersion::V5, 0, 60), 5))
            .unwrap();
        sim.drop_connection(&w);
        sim.advance(Duration::from_secs(2));
        let mut again = connect("w2", ProtocolVersion::V5, 0, 60);
        again.clean_start = false;
        let w = sim.connect(&again).unwrap();
        assert!(matches!(
            sim.recv(&w).first(),
            Some(Packet::ConnAck(a)) if a.session_present
        ));
        sim.advance(Duration::from_secs(60));
        assert!(sim.recv(&s).is_empty());

        // A will delay longer than the session: the will goes when the session ends.
        let w = sim
            .connect(&with_will(connect("w3", ProtocolVersion::V5, 0, 3), 30))
            .unwrap();
        sim.drop_connection(&w);
        sim.advance(Duration::from_millis(2_999));
        assert!(sim.recv(&s).is_empty());
        sim.advance(Duration::from_millis(1));
        assert_eq!(publishes(&sim.recv(&s)).len(), 1);

        // A normal DISCONNECT: no will.
        let w = sim
            .connect(&with_will(connect("w4", ProtocolVersion::V5, 0, 0), 0))
            .unwrap();
        sim.send(
            &w,
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::Success,
                properties: Default::default(),
            }),
        );
        sim.drop_connection(&w);
        sim.advance(Duration::from_secs(1));
        assert!(sim.recv(&s).is_empty());
    }

    #[test]
    fn messages_queued_for_an_away_session_expire_and_count_down() {
        let mut sim = Sim::new(Options::default());
        let c = connect("away", ProtocolVersion::V5, 0, 600);
        let s = sim.connect(&c).unwrap();
        sim.send(&s, subscribe("m", QoS::AtLeastOnce));
        sim.recv(&s);
        sim.drop_connection(&s);
        let p = sim
            .connect(&connect("p", ProtocolVersion::V5, 0, 0))
            .unwrap();
        sim.send(&p, publish("m", b"short", Some(2)));
        sim.send(&p, publish("m", b"long", Some(100)));
        sim.advance(Duration::from_secs(3));
        let mut again = c.clone();
        again.clean_start = false;
        let s = sim.connect(&again).unwrap();
        let got = sim.recv(&s);
        let got = publishes(&got);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].payload, Bytes::from_static(b"long"));
        assert_eq!(got[0].properties.message_expiry_interval, Some(97));
    }

    #[test]
    fn an_away_session_expires_with_its_subscriptions() {
        let mut sim = Sim::new(Options::default());
        let c = connect("exp", ProtocolVersion::V5, 0, 10);
        let s = sim.connect(&c).unwrap();
        sim.send(&s, subscribe("exp/#", QoS::AtLeastOnce));
        sim.recv(&s);
        sim.drop_connection(&s);
        sim.advance(Duration::from_millis(9_999));
        assert!(sim.broker.client("exp").is_some());
        assert_eq!(sim.broker.subscription_count(), 1);
        sim.advance(Duration::from_millis(1));
        assert!(sim.broker.client("exp").is_none());
        assert_eq!(sim.broker.subscription_count(), 0);
        let mut again = c;
        again.clean_start = false;
        let s = sim.connect(&again).unwrap();
        assert!(matches!(
            sim.recv(&s).first(),
            Some(Packet::ConnAck(a)) if !a.session_present
        ));
    }
}

//! A virtual-time harness (tests only): a broker and its clients driven through the same code
//! the driver runs (`driver::process_at`, the connection's end), with no sockets and a clock the
//! test moves. Keep-alive, will delay, message and session expiry are tested here in
//! microseconds of real time; the socket tests test the driver and the sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moco_codec::{ConnAck, Connect, Packet};

use crate::broker::{Broker, ClientHandle};
use crate::error::CloseReason;
use crate::handshake::{Handshake, Step};
use crate::hooks::{AllowAll, Hooks};
use crate::options::Options;

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
        Sim::with_seams(options, crate::broker::Seams::default())
    }

    /// A broker with `options`, [`AllowAll`] and these seams.
    pub(crate) fn with_seams(options: Options, seams: crate::broker::Seams) -> Sim {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(AllowAll));
        Sim {
            broker: Arc::new(Broker::with_seams(options, hooks, seams)),
            now: Instant::now(),
            clients: Vec::new(),
        }
    }

    /// CONNECT through the sans-IO handshake: the client, or the refusing CONNACK.
    pub(crate) fn connect(&mut self, connect: &Connect) -> Result<SimClient, Box<ConnAck>> {
        let mut hs = self.handshake();
        match hs.handle_packet(&self.broker, self.now, Packet::from(connect.clone())) {
            Step::Accepted(h) => Ok(self.accepted(h)),
            Step::Refuse(Some((Packet::ConnAck(ack), _)), _) => Err(ack),
            other => panic!("CONNECT without enhanced authentication: {other:?}"),
        }
    }

    /// A handshake for a new connection at the current instant.
    pub(crate) fn handshake(&self) -> Handshake {
        Handshake::new(
            &self.broker,
            self.now,
            crate::listener::Origin::new(Arc::from("sim"), Arc::from("sim")),
        )
    }

    /// Takes a client the handshake accepted.
    pub(crate) fn accepted(&mut self, h: Arc<ClientHandle>) -> SimClient {
        self.clients.push(h.clone());
        SimClient(h)
    }

    /// The client sends `packet` now; false once its connection is closing.
    pub(crate) fn send(&self, c: &SimClient, packet: Packet) -> bool {
        let open = crate::driver::process_at(&self.broker, &c.0, packet, self.now);
        self.settle(c);
        open
    }

    /// Releases the client's held acknowledgements if what they wait for is durable now (as
    /// the reader does after a read); they stay held while it is not.
    pub(crate) fn settle(&self, c: &SimClient) {
        if !c.0.state.lock().holds_acks() {
            return;
        }
        let stored = match self.broker.durable() {
            None => Some(true),
            Some(mut durable) => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match durable.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(stored) => Some(stored),
                    std::task::Poll::Pending => None,
                }
            }
        };
        if let Some(stored) = stored {
            c.0.state.lock().release_acks(stored);
        }
    }

    /// Everything the broker has to send the client now, as the writer would write it.
    pub(crate) fn recv(&self, c: &SimClient) -> Vec<Packet> {
        self.broker.drain_output(&c.0, self.now)
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

    /// Enhanced authentication in two rounds: "hello" → continue, "proof" → success.
    struct TwoRounds;

    impl crate::Hook for TwoRounds {
        fn id(&self) -> &str {
            "two-rounds"
        }
        fn provides(&self, e: crate::Event) -> bool {
            matches!(
                e,
                crate::Event::OnAuthPacket | crate::Event::OnConnectAuthenticate
            )
        }
        fn on_connect_authenticate(&self, _: &crate::ClientInfo, _: &Connect) -> bool {
            true
        }
        fn on_auth_packet(
            &self,
            _: &crate::ClientInfo,
            a: &moco_codec::Auth,
        ) -> Result<moco_codec::Auth, ReasonCode> {
            match a.properties.authentication_data.as_deref() {
                Some(b"hello") => Ok(moco_codec::Auth::new(ReasonCode::ContinueAuthentication)),
                Some(b"proof") => Ok(moco_codec::Auth::new(ReasonCode::Success)),
                _ => Err(ReasonCode::NotAuthorized),
            }
        }
    }

    /// The code and version of the CONNACK `step` refuses with, if it has one.
    fn connack_of(step: &Step) -> Option<(ReasonCode, ProtocolVersion)> {
        match step {
            Step::Refuse(Some((Packet::ConnAck(a), v)), _) => Some((a.reason_code, *v)),
            _ => None,
        }
    }

    fn auth(data: &'static [u8]) -> Packet {
        let mut a = moco_codec::Auth::new(ReasonCode::ContinueAuthentication);
        a.properties.authentication_method = Some("m".into());
        a.properties.authentication_data = Some(Bytes::from_static(data));
        Packet::Auth(a)
    }

    #[test]
    fn enhanced_authentication_runs_in_the_sans_io_handshake() {
        let mut hooks = Hooks::new();
        hooks.add(Arc::new(TwoRounds));
        let mut sim = Sim {
            broker: Arc::new(Broker::new(Options::default(), hooks)),
            now: Instant::now(),
            clients: Vec::new(),
        };
        let mut c = connect("ea", ProtocolVersion::V5, 0, 0);
        c.properties.authentication_method = Some("m".into());
        c.properties.authentication_data = Some(Bytes::from_static(b"hello"));

        // Two rounds, then CONNACK with the method.
        let mut hs = sim.handshake();
        let step = hs.handle_packet(&sim.broker, sim.now, Packet::from(c.clone()));
        assert!(
            matches!(&step, Step::Send(Packet::Auth(a), _) if a.reason_code == ReasonCode::ContinueAuthentication
                && a.properties.authentication_method.as_deref() == Some("m")),
            "{step:?}"
        );
        let Step::Accepted(h) = hs.handle_packet(&sim.broker, sim.now, auth(b"proof")) else {
            panic!("not accepted");
        };
        let client = sim.accepted(h);
        assert!(matches!(
            sim.recv(&client).first(),
            Some(Packet::ConnAck(a)) if a.reason_code == ReasonCode::Success
                && a.properties.authentication_method.as_deref() == Some("m")
        ));

        // A wrong answer: refused with the hook's code.
        let mut hs = sim.handshake();
        hs.handle_packet(&sim.broker, sim.now, Packet::from(c.clone()));
        let step = hs.handle_packet(&sim.broker, sim.now, auth(b"wrong"));
        assert_eq!(
            connack_of(&step).map(|c| c.0),
            Some(ReasonCode::NotAuthorized)
        );
        assert!(
            matches!(
                step,
                Step::Refuse(_, crate::Error::Refused(ReasonCode::NotAuthorized))
            ),
            "{step:?}"
        );

        // Anything but AUTH during the exchange: a protocol error.
        let mut hs = sim.handshake();
        hs.handle_packet(&sim.broker, sim.now, Packet::from(c.clone()));
        let step = hs.handle_packet(&sim.broker, sim.now, Packet::PingReq);
        assert_eq!(
            connack_of(&step).map(|c| c.0),
            Some(ReasonCode::ProtocolError)
        );
        assert!(
            matches!(step, Step::Refuse(_, crate::Error::Protocol(_))),
            "{step:?}"
        );

        // The connect timeout covers the whole exchange.
        let hs = sim.handshake();
        let timeout = Options::default().connect_timeout;
        assert!(!hs.timed_out(sim.now + timeout - Duration::from_millis(1)));
        assert!(hs.timed_out(sim.now + timeout));
    }

    #[test]
    fn the_first_packet_must_be_connect_and_bad_ones_are_answered_when_possible() {
        let sim = Sim::new(Options::default());
        let mut hs = sim.handshake();
        assert!(matches!(
            hs.handle_packet(&sim.broker, sim.now, Packet::PingReq),
            Step::Refuse(None, crate::Error::Protocol(_))
        ));
        let step = hs.handle_decode_error(
            moco_codec::DecodeError::Malformed("x"),
            Some(ProtocolVersion::V5),
        );
        assert_eq!(
            connack_of(&step),
            Some((ReasonCode::MalformedPacket, ProtocolVersion::V5))
        );
        let step =
            hs.handle_decode_error(moco_codec::DecodeError::UnsupportedProtocolVersion(9), None);
        assert_eq!(
            connack_of(&step),
            Some((
                ReasonCode::UnsupportedProtocolVersion,
                ProtocolVersion::V311
            ))
        );
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

//! The CONNECT / AUTH handshake, sans-IO: from the first packet of a connection to a connected
//! client or a refusal. The driver reads packets and hands them over with the time; the
//! handshake says what to send and how it ends ([`Step`]). No I/O and no clock of its own, so
//! enhanced authentication, refusals and the connect timeout are tested in virtual time (see
//! `sim.rs`), as [`ClientState`](crate::state::ClientState) is once the client is connected.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use moco_codec::{Auth, ConnAck, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode};

use crate::broker::{Broker, ClientHandle, ConnectOutcome};
use crate::error::{Error, ProtocolViolation};
use crate::hooks::{ClientInfo, Event};
use crate::listener::Origin;

/// What the driver does after the handshake handled a packet (or a failure to read one).
#[derive(Debug)]
pub enum Step {
    /// Send this packet (an AUTH continuing enhanced authentication) encoded for this
    /// version, then hand over the next packet.
    Send(Packet, ProtocolVersion),
    /// The client is connected; its CONNACK is queued on its state.
    Accepted(Arc<ClientHandle>),
    /// The connection ends with this error, after the reply (a refusing CONNACK, encoded for
    /// its version) if there is one.
    Refuse(Option<(Packet, ProtocolVersion)>, Error),
}

/// An enhanced authentication in progress (MQTT 5 §4.12).
#[derive(Debug)]
struct Exchange {
    connect: Box<Connect>,
    method: ByteString,
    info: ClientInfo,
}

/// One connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    origin: Origin,
    deadline: Instant,
    exchange: Option<Exchange>,
}

fn refusal(version: ProtocolVersion, code: ReasonCode) -> Option<(Packet, ProtocolVersion)> {
    let ack = ConnAck {
        session_present: false,
        reason_code: code,
        properties: Default::default(),
    };
    Some((Packet::from(ack), version))
}

impl Handshake {
    /// A handshake for a connection accepted at `now` from `origin`; it must end within the
    /// broker's connect timeout.
    pub fn new(broker: &Broker, now: Instant, origin: Origin) -> Self {
        Handshake {
            origin,
            deadline: now + broker.options().connect_timeout,
            exchange: None,
        }
    }

    /// When the handshake times out (the connection is then closed without a reply).
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Whether the handshake timed out at `now`.
    pub fn timed_out(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// The packets did not decode. `version` is what the decoder learnt of the CONNECT, if
    /// anything: a CONNECT readable enough to know it is answered with a refusing CONNACK, an
    /// unknown protocol level as v3.1.1 answers it (return code 1).
    pub fn handle_decode_error(&self, e: DecodeError, version: Option<ProtocolVersion>) -> Step {
        let code = e.reason_code();
        let reply = match version {
            Some(v) => refusal(v, code),
            None if code == ReasonCode::UnsupportedProtocolVersion => {
                refusal(ProtocolVersion::V311, code)
            }
            None => None,
        };
        Step::Refuse(reply, Error::Decode(e))
    }

    /// Handles the next packet of the connection, received at `now`.
    pub fn handle_packet(&mut self, broker: &Broker, now: Instant, packet: Packet) -> Step {
        match self.exchange.take() {
            None => self.handle_connect(broker, now, packet),
            Some(ex) => match packet {
                Packet::Auth(a)
                    if a.reason_code == ReasonCode::ContinueAuthentication
                        && a.properties.authentication_method.as_ref() == Some(&ex.method) =>
                {
                    self.authenticate(broker, now, ex, a)
                }
                _ => Step::Refuse(
                    refusal(ex.connect.protocol, ReasonCode::ProtocolError),
                    Error::Protocol(ProtocolViolation::Unexpected),
                ),
            },
        }
    }

    fn handle_connect(&mut self, broker: &Broker, now: Instant, packet: Packet) -> Step {
        let Packet::Connect(connect) = packet else {
            return Step::Refuse(None, Error::Protocol(ProtocolViolation::NotConnectFirst));
        };
        broker.info.packets_received.fetch_add(1, Ordering::Relaxed);
        let mut connect = connect;
        if let Some(tls) = self.origin.tls.as_ref().filter(|t| t.use_as_username) {
            // The listener's `use_identity_as_username`: the certificate names the client, not
            // the CONNECT (a listener with it requires a client certificate).
            match tls.name() {
                Some(name) => connect.username = Some(ByteString::from(name)),
                None => {
                    let code = ReasonCode::NotAuthorized;
                    return Step::Refuse(refusal(connect.protocol, code), Error::Refused(code));
                }
            }
        }
        let info = |c: &Connect| {
            self.origin
                .client_info(c.client_id.clone(), c.username.clone(), c.protocol)
        };
        if broker.hooks().provides(Event::OnPacketRead) {
            // OnPacketRead sees (and may rewrite or refuse) the CONNECT too, as mochi.
            let who = info(&connect);
            let mut p = Packet::Connect(connect);
            let read = broker.hooks().on_packet_read(&who, &mut p);
            let Packet::Connect(c) = p else {
                return Step::Refuse(None, Error::Protocol(ProtocolViolation::Unexpected));
            };
            connect = c;
            if let Err(code) = read {
                return Step::Refuse(refusal(connect.protocol, code), Error::Refused(code));
            }
        }
        match connect.properties.authentication_method.clone() {
            Some(method) => {
                let mut auth = Auth::new(ReasonCode::Success);
                auth.properties.authentication_method = Some(method.clone());
                auth.properties.authentication_data =
                    connect.properties.authentication_data.clone();
                let info = info(&connect);
                let ex = Exchange {
                    connect,
                    method,
                    info,
                };
                self.authenticate(broker, now, ex, auth)
            }
            None => self.finish(broker, now, &connect, None),
        }
    }

    /// One turn of enhanced authentication: the hooks judge `auth`.
    fn authenticate(&mut self, broker: &Broker, now: Instant, ex: Exchange, auth: Auth) -> Step {
        let version = ex.connect.protocol;
        match broker.hooks().on_auth_packet(&ex.info, &auth) {
            Ok(mut reply) if reply.reason_code == ReasonCode::ContinueAuthentication => {
                reply.properties.authentication_method = Some(ex.method.clone());
                self.exchange = Some(ex);
                Step::Send(Packet::Auth(reply), version)
            }
            Ok(done) => self.finish(broker, now, &ex.connect, Some(done)),
            Err(code) => Step::Refuse(refusal(version, code), Error::Refused(code)),
        }
    }

    /// The broker's verdict.
    fn finish(
        &mut self,
        broker: &Broker,
        now: Instant,
        connect: &Connect,
        enhanced: Option<Auth>,
    ) -> Step {
        let outcome = broker.connect_with(now, connect, self.origin.clone(), enhanced);
        match outcome {
            ConnectOutcome::Accepted(h) => Step::Accepted(h),
            ConnectOutcome::Refused(ack) => {
                let code = ack.reason_code;
                let mut p = Packet::ConnAck(ack);
                if broker.hooks().provides(Event::OnPacketEncode) {
                    let info = self.origin.client_info(
                        connect.client_id.clone(),
                        connect.username.clone(),
                        connect.protocol,
                    );
                    broker.hooks().on_packet_encode(&info, &mut p);
                }
                Step::Refuse(Some((p, connect.protocol)), Error::Refused(code))
            }
        }
    }
}

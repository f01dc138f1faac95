//! CONNECT, enhanced authentication and the broker's verdict, before the connection is a client.

use super::*;

/// [`negotiate`], and after a refusal (or a CONNECT that does not decode) the connection
/// lingers (see [`linger`]) so that the client can read the refusing CONNACK.
pub(super) async fn handshake<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    remote: Arc<str>,
    listener: Arc<str>,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let r = negotiate(broker, rd, wr, buf, decoder, remote, listener).await;
    if let Err(Error::Refused(_) | Error::Decode(_) | Error::Protocol(_)) = &r {
        *buf = BytesMut::new();
        let _ = timeout(LINGER, wr.shutdown()).await;
        linger(rd, LINGER).await;
    }
    r
}

/// CONNECT (with OnPacketRead), enhanced authentication and the broker's verdict; the CONNACK
/// of an accepted client is queued on its state, a refusal is written here.
pub(super) async fn negotiate<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    remote: Arc<str>,
    listener: Arc<str>,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opts = broker.options();
    let read_size = opts.client_net_read_buffer_size;
    // CONNECT, within the connect timeout.
    let first = timeout(
        opts.connect_timeout,
        next_packet(rd, buf, decoder, read_size),
    )
    .await;
    let connect = match first {
        Err(_) => return Err(Error::ConnectTimeout),
        Ok(Err(e)) => {
            match (&e, decoder.version()) {
                (Error::Decode(d), Some(v)) => {
                    // The CONNECT was readable enough to know the version: answer it.
                    let _ = write_connack_refusal(wr, v, d.reason_code()).await;
                }
                (Error::Decode(d), None)
                    if d.reason_code() == ReasonCode::UnsupportedProtocolVersion =>
                {
                    // An unknown level: answer as v3.1.1 does (return code 1).
                    let _ = write_connack_refusal(
                        wr,
                        ProtocolVersion::V311,
                        ReasonCode::UnsupportedProtocolVersion,
                    )
                    .await;
                }
                _ => {}
            }
            return Err(e);
        }
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => return Err(Error::Protocol(ProtocolViolation::NotConnectFirst)),
    };
    broker.info.packets_received.fetch_add(1, Ordering::Relaxed);
    let mut connect = connect;
    if broker.hooks().provides(Event::OnPacketRead) {
        // OnPacketRead sees (and may rewrite or refuse) the CONNECT too, as mochi.
        let info = ClientInfo {
            id: connect.client_id.clone(),
            username: connect.username.clone(),
            remote: remote.clone(),
            listener: listener.clone(),
            protocol: connect.protocol,
        };
        let mut p = Packet::Connect(connect);
        let read = broker.hooks().on_packet_read(&info, &mut p);
        let Packet::Connect(c) = p else {
            return Err(Error::Protocol(ProtocolViolation::Unexpected));
        };
        connect = c;
        if let Err(code) = read {
            write_connack_refusal(wr, connect.protocol, code).await?;
            wr.shutdown().await.ok();
            return Err(Error::Refused(code));
        }
    }
    let version = connect.protocol;
    let mut enhanced = None;
    if let Some(method) = connect.properties.authentication_method.clone() {
        let info = ClientInfo {
            id: connect.client_id.clone(),
            username: connect.username.clone(),
            remote: remote.clone(),
            listener: listener.clone(),
            protocol: version,
        };
        let mut auth = Auth::new(ReasonCode::Success);
        auth.properties.authentication_method = Some(method.clone());
        auth.properties.authentication_data = connect.properties.authentication_data.clone();
        let deadline = tokio::time::Instant::now() + opts.connect_timeout;
        loop {
            match broker.hooks().on_auth_packet(&info, &auth) {
                Ok(reply) if reply.reason_code == ReasonCode::ContinueAuthentication => {
                    let mut reply = reply;
                    reply.properties.authentication_method = Some(method.clone());
                    let mut out = BytesMut::new();
                    Packet::Auth(reply).encode(version, &mut out)?;
                    wr.write_all(&out).await?;
                    let next =
                        tokio::time::timeout_at(deadline, next_packet(rd, buf, decoder, read_size))
                            .await
                            .map_err(|_| Error::ConnectTimeout)??;
                    match next {
                        Packet::Auth(a)
                            if a.reason_code == ReasonCode::ContinueAuthentication
                                && a.properties.authentication_method.as_ref() == Some(&method) =>
                        {
                            auth = a;
                        }
                        _ => {
                            write_connack_refusal(wr, version, ReasonCode::ProtocolError).await?;
                            return Err(Error::Protocol(ProtocolViolation::Unexpected));
                        }
                    }
                }
                Ok(done) => {
                    enhanced = Some(done);
                    break;
                }
                Err(code) => {
                    write_connack_refusal(wr, version, code).await?;
                    wr.shutdown().await.ok();
                    return Err(Error::Refused(code));
                }
            }
        }
    }
    let now = Instant::now();
    let outcome = broker.connect_with(now, &connect, remote.clone(), listener.clone(), enhanced);
    match outcome {
        ConnectOutcome::Refused(ack) => {
            let code = ack.reason_code;
            let mut out = BytesMut::new();
            let mut p = Packet::ConnAck(ack);
            if broker.hooks().provides(Event::OnPacketEncode) {
                let info = ClientInfo {
                    id: connect.client_id.clone(),
                    username: connect.username.clone(),
                    remote,
                    listener,
                    protocol: version,
                };
                broker.hooks().on_packet_encode(&info, &mut p);
            }
            p.encode(version, &mut out)?;
            wr.write_all(&out).await?;
            wr.shutdown().await.ok();
            Err(Error::Refused(code))
        }
        ConnectOutcome::Accepted(h) => {
            debug!(client = %h.info.id, %version, "client connected");
            Ok(h)
        }
    }
}

pub(super) async fn write_connack_refusal<W: AsyncWrite + Unpin>(
    wr: &mut W,
    version: ProtocolVersion,
    code: ReasonCode,
) -> Result<(), Error> {
    let mut out = BytesMut::new();
    Packet::from(moco_codec::ConnAck {
        session_present: false,
        reason_code: code,
        properties: Default::default(),
    })
    .encode(version, &mut out)?;
    wr.write_all(&out).await?;
    Ok(())
}

//! CONNECT, enhanced authentication and the broker's verdict, before the connection is a client.

use super::*;

/// Reads packets into the sans-IO [`Handshake`] until it accepts or refuses the client, within
/// the connect timeout, and writes what it says to. After a refusal (or a CONNECT that does not
/// decode) the connection lingers (see [`linger`]) so that the client can read the refusing
/// CONNACK.
pub(super) async fn handshake<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    origin: Box<Origin>,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let origin = *origin;
    let remote = origin.remote.clone();
    let result = exchange(broker, rd, wr, buf, decoder, origin).await;
    if let Err(e) = &result {
        debug!(%remote, error = %e, "connection ended");
    }
    result
}

async fn exchange<R, W>(
    broker: &Arc<Broker>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    origin: Origin,
) -> Result<Arc<ClientHandle>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let read_size = broker.options().client_net_read_buffer_size;
    let mut hs = Handshake::new(broker, Instant::now(), origin);
    let deadline = tokio::time::Instant::from_std(hs.poll_timeout());
    let refused = loop {
        let next =
            tokio::time::timeout_at(deadline, next_packet(rd, buf, decoder, read_size)).await;
        let step = match next {
            Err(_) => return Err(Error::ConnectTimeout),
            Ok(Err(Error::Decode(e))) => hs.handle_decode_error(e, decoder.version()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(p)) => hs.handle_packet(broker, Instant::now(), p),
        };
        match step {
            Step::Send(p, version) => write_packet(wr, &p, version).await?,
            Step::Accepted(h) => {
                debug!(client = %h.info.id, version = %h.info.protocol, "client connected");
                return Ok(h);
            }
            Step::Refuse(reply, e) => {
                if let Some((p, version)) = reply {
                    // The connection ends either way: a reply that cannot be written changes
                    // nothing.
                    let _ = write_packet(wr, &p, version).await;
                }
                break e;
            }
        }
    };
    *buf = BytesMut::new();
    let _ = timeout(LINGER, wr.shutdown()).await;
    linger(rd, LINGER).await;
    Err(refused)
}

async fn write_packet<W: AsyncWrite + Unpin>(
    wr: &mut W,
    p: &Packet,
    version: ProtocolVersion,
) -> Result<(), Error> {
    let mut out = BytesMut::new();
    p.encode(version, &mut out)?;
    wr.write_all(&out).await?;
    Ok(())
}

//! The thin tokio driver of one connection over any `AsyncRead + AsyncWrite` stream.
//!
//! The reader (the task that calls [`run_connection`]) reads into a `BytesMut` (sized to how
//! busy the client is, none while it is idle), decodes packets, feeds them to the client's
//! [`ClientState`](crate::state::ClientState) and lets the broker route what comes out; it
//! also enforces the keep-alive deadline. While the client only needs replies to its own
//! packets (CONNACK, PINGRESP, SUBACK...), the reader writes them; from the first message or
//! acknowledgement on, a writer task waits for the client's `Notify`, drains every transmit
//! that is ready into one buffer (control packets, then queued messages as quota allows) and
//! writes it with one `write_all`. A slow reader on the other end fills only its own bounded
//! queue.
//!
//! Here: the connection's life (`run_connection`: the transport's handshake and split, the
//! linger after the broker ends it). `handshake`: CONNECT and enhanced authentication; `input`: how bytes
//! are read; `reader`: the reader loop; `process`: one packet through the state and the
//! broker; `writer`: the writer task and the reader's own writes.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use moco_codec::{Decoder, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, Sleep};
use tokio_util::either::Either;
use tracing::{debug, trace};

use crate::broker::order::Ticket;
use crate::broker::{report_notes, Broker, ClientHandle};
use crate::error::{CloseReason, Error, PolicyRefusal};
use crate::handshake::{Handshake, Step};
use crate::hooks::Event;
use crate::listener::{Connection, Establish, ListenerKind, Origin};
use crate::state::{AppEvent, Transmit};

mod handshake;
mod input;
mod process;
mod reader;
mod writer;

use handshake::*;
use input::*;
pub use process::inject_packet;
pub(crate) use process::process_at;
use reader::*;
use writer::*;

/// How long a connection must be quiet (nothing read) before its control queue and its
/// writer's batch are given back: idle connections then hold neither (~0.9 KiB or more), and
/// one with messages less than this apart does not reallocate them per message. A quiet
/// spell is noticed between one and two of these after the last read (see [`Timer`]).
const IDLE_TRIM: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a connection the broker ended is read and discarded before it is closed, so that
/// the client can read why (see [`linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// [`LINGER`] with `passive_client_disconnect`: closing is left to the client (as mochi), and
/// the write side stays open meanwhile.
const PASSIVE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest batch the writer gathers before writing.
const WRITE_BATCH: usize = 64 * 1024;

/// Largest read: a busy publisher's reads grow to this (see [`ReadSize`]).
const MAX_READ: usize = 64 * 1024;

/// What an idle reader waits with: a read into a probe of this size on the stack (see
/// [`read_some`]).
const PROBE: usize = 1024;

/// First allocation of the write buffer after idle when the state encodes into it directly.
const DIRECT_FIRST_RESERVE: usize = 1024;

/// Serves one client connection until it ends: its transport handshake first (if it has one,
/// bounded by the connect timeout), then MQTT. `listener` names the listener it came through
/// and `kind` says what that is (both for hooks and logs).
pub fn run_connection<C: Connection>(
    broker: Arc<Broker>,
    conn: C,
    listener: Arc<str>,
    kind: ListenerKind,
) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static {
    // The reader and the writer run as two tasks, often on two workers at once, so each
    // transport splits into halves that share as little as it can: TCP and Unix sockets into
    // owned halves that share nothing but the socket (the halves of `tokio::io::split` share
    // one mutex held across each read and write syscall, so they block each other).
    // A plain function choosing the future, not an `async fn`: that would keep the (emptied)
    // connection slot in every connection's task for its lifetime.
    // A transport with a handshake has its task boxed: the future choosing between the two is
    // as large as the larger of them, and TCP's (the idle connection) must not pay for it.
    match conn.establish() {
        Establish::Ready(e) => {
            let origin = Box::new(Origin::of(e.peer, listener, kind));
            Either::Left(serve(broker, e.read, e.write, origin))
        }
        Establish::Handshake(hs) => Either::Right(Box::pin(async move {
            let bound = broker.options().connect_timeout;
            let e = match timeout(bound, hs).await {
                Ok(Ok(e)) => e,
                Ok(Err(e)) => {
                    debug!(%listener, %kind, error = %e, "transport handshake failed");
                    return Err(Error::Io(e));
                }
                Err(_) => {
                    debug!(%listener, %kind, "transport handshake timed out");
                    return Err(Error::ConnectTimeout);
                }
            };
            let origin = Box::new(Origin::of(e.peer, listener, kind));
            serve(broker, e.read, e.write, origin).await
        })),
    }
}

async fn serve<R, W>(
    broker: Arc<Broker>,
    mut rd: R,
    mut wr: W,
    // Boxed: it is needed only until the client is connected, and the argument's slot stays
    // in the connection's task for its lifetime.
    origin: Box<Origin>,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // This future lives as long as the connection, so what it holds across an await is paid by
    // every idle client: the handshake (CONNECT packet, enhanced-auth exchange, refusals) runs
    // in its own boxed future, freed once the client is connected, and only scalars of the
    // options are kept.
    let read_size = broker.options().client_net_read_buffer_size;
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(broker.options().capabilities.maximum_packet_size);
    let handle = match Box::pin(handshake(
        &broker,
        &mut rd,
        &mut wr,
        &mut buf,
        &mut decoder,
        origin,
    ))
    .await
    {
        Ok(h) => h,
        Err(e) => return Err(e),
    };
    let passive = broker
        .options()
        .capabilities
        .compatibilities
        .passive_client_disconnect;
    let input = Input {
        rd: &mut rd,
        buf: &mut buf,
        decoder: &mut decoder,
        read_size,
    };
    let result = read_loop(&broker, &handle, input, Writer::Parked(wr)).await;
    // The client id is free for a take-over at once, even while the socket lingers.
    broker.disconnected(Instant::now(), &handle);
    debug!(client = %handle.info.id, ?result, "client disconnected");
    if !matches!(result, Err(Error::Closed | Error::Io(_))) {
        // The broker ended the connection (its DISCONNECT, if any, is out and the write side
        // shut down) or the client sent DISCONNECT: the client has not closed yet.
        drop((buf, decoder));
        let bound = if passive { PASSIVE_LINGER } else { LINGER };
        Box::pin(linger(&mut rd, bound)).await;
    }
    drop(rd);
    // A wake-up from idle after the reader's last read drew a ticket nobody would hand back.
    Ticket::hand_back(&handle);
    result
}

/// Reads and discards until the client closes, for at most `bound`.
///
/// A socket closed while the client's data is unread, or while more arrives, is reset (TCP
/// RST), and a client that is still writing (one flooding QoS 2 PUBLISHes past its receive
/// maximum) then gets `ECONNRESET` instead of the DISCONNECT or refusing CONNACK that says
/// why. Lingering lets that last packet be read: the write side is already shut down, so the
/// client sees it followed by the end of the stream, and closes.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R, bound: std::time::Duration) {
    let _ = timeout(bound, async {
        let mut sink = [0u8; 512];
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

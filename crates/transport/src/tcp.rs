//! Plain TCP: `TCP_NODELAY`, and a split into owned halves that share no lock.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use moco_engine::listener::{Connection, Establish, Established, ListenerKind, Peer, RemoteAddr};
use moco_engine::Listener;
use tokio::io::AsyncWrite;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tracing::debug;

/// A TCP listener for the engine.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
}

impl TcpListener {
    /// Binds `addr` (`"127.0.0.1:1883"`, a `SocketAddr`...).
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<Self> {
        Ok(Self::from_tokio(tokio::net::TcpListener::bind(addr).await?))
    }

    /// Wraps a bound tokio listener.
    pub fn from_tokio(inner: tokio::net::TcpListener) -> Self {
        Self { inner }
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one TCP connection with `TCP_NODELAY` set (MQTT packets are small and each
    /// write is a whole batch: Nagle's delay would only add latency).
    pub(crate) async fn accept_stream(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay failed");
        }
        Ok((stream, peer))
    }
}

impl Listener for TcpListener {
    type Conn = TcpConnection;

    fn kind(&self) -> ListenerKind {
        ListenerKind::Tcp
    }

    async fn accept(&mut self) -> std::io::Result<TcpConnection> {
        let (stream, peer) = self.accept_stream().await?;
        Ok(TcpConnection { stream, peer })
    }
}

/// An accepted TCP connection.
#[derive(Debug)]
pub struct TcpConnection {
    stream: TcpStream,
    peer: SocketAddr,
}

impl TcpConnection {
    /// A connection on `stream` from `peer`.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Self { stream, peer }
    }
}

impl Connection for TcpConnection {
    type Read = OwnedReadHalf;
    type Write = TcpWriter;

    fn establish(self) -> Establish<OwnedReadHalf, TcpWriter> {
        let (read, write) = self.stream.into_split();
        Establish::Ready(Established {
            read,
            write: TcpWriter(Some(write)),
            peer: Peer::new(RemoteAddr::Ip(self.peer)),
        })
    }
}

/// The write half of a TCP stream that, like the halves of `tokio::io::split`, leaves the
/// socket open when dropped: closing is `poll_shutdown`'s job, or the read half's (a passive
/// disconnect waits for the client to close first).
#[derive(Debug)]
pub struct TcpWriter(Option<OwnedWriteHalf>);

impl Drop for TcpWriter {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.forget();
        }
    }
}

impl TcpWriter {
    fn half(self: Pin<&mut Self>) -> Pin<&mut OwnedWriteHalf> {
        Pin::new(self.get_mut().0.as_mut().expect("taken only on drop"))
    }
}

impl AsyncWrite for TcpWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.half().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_shutdown(cx)
    }
}

//! Plain TCP: `TCP_NODELAY`, and a split into owned halves that share no lock.

use std::net::SocketAddr;

use moco_engine::listener::{Connection, Establish, Established, ListenerKind, Peer, RemoteAddr};
use moco_engine::Listener;
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
            write: TcpWriter::new(write),
            peer: Peer::new(RemoteAddr::Ip(self.peer)),
        })
    }
}

/// The write half of a TCP stream, kept open when dropped.
pub type TcpWriter = crate::half::OpenOnDrop<OwnedWriteHalf>;

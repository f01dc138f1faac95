//! The seam between the engine and the transports: a [`Listener`] yields [`Connection`]s; a
//! connection, once its own handshake (TLS, WebSocket upgrade) is done, is a pair of owned
//! read and write halves plus the structured [`Peer`] it came from.
//!
//! The engine never binds a socket: TCP, TLS, WebSocket and Unix sockets are in the
//! `moco-transport` crate, which depends on the engine for this module only. Anything else
//! that carries bytes can be served through [`Shared`] (split with `tokio::io::split`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

/// What kind of listener a client came through (on its [`ClientInfo`](crate::ClientInfo)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket over TCP.
    Ws,
    /// WebSocket over TLS.
    Wss,
    /// A Unix domain socket.
    Unix,
    /// Anything else: in-memory streams, injected and restored clients, embedders' transports.
    #[default]
    Other,
}

impl ListenerKind {
    /// The kind's name as the configuration file spells it (`other` for [`ListenerKind::Other`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Unix => "unix",
            Self::Other => "other",
        }
    }

    /// Whether the connection is encrypted by the transport.
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

impl std::fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteAddr {
    /// An IP peer (TCP, TLS, WebSocket).
    Ip(SocketAddr),
    /// A Unix socket peer; the path is the listener's (peers are usually unnamed).
    Unix(Arc<std::path::Path>),
    /// A description from a transport without addresses (`pipe`, `duplex`...).
    Named(Arc<str>),
}

impl RemoteAddr {
    /// The form hooks and logs see in [`ClientInfo::remote`](crate::ClientInfo::remote):
    /// `a.b.c.d:port`, `[v6]:port`, `unix:PATH` or the name.
    pub fn to_arc_str(&self) -> Arc<str> {
        match self {
            Self::Ip(a) => Arc::from(peer_string(*a)),
            Self::Unix(p) => Arc::from(format!("unix:{}", p.display())),
            Self::Named(n) => n.clone(),
        }
    }
}

/// `a.b.c.d:port` for an IPv4 peer without `Display`'s formatting machinery, a noticeable part
/// of the broker's work per connect.
pub(crate) fn peer_string(peer: SocketAddr) -> String {
    match peer {
        SocketAddr::V4(a) => {
            let mut digits = itoa::Buffer::new();
            let mut s = String::with_capacity(21);
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(digits.format(octet));
            }
            s.push(':');
            s.push_str(digits.format(a.port()));
            s
        }
        v6 => v6.to_string(),
    }
}

/// The verified certificate a client presented on a mutual-TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsIdentity {
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// The subject alternative names (DNS names, e-mail addresses, URIs, IP addresses), as text.
    pub sans: Vec<String>,
    /// The end-entity certificate as DER, for hooks that need more than the names.
    pub der: Vec<u8>,
    /// The listener's `use_identity_as_username`: the common name (or, without one, the first
    /// SAN) replaces the CONNECT's user name, so the auth ledger sees the certificate's name.
    pub use_as_username: bool,
}

impl TlsIdentity {
    /// An identity from a certificate's names and DER.
    pub fn new(common_name: Option<String>, sans: Vec<String>, der: Vec<u8>) -> Self {
        Self {
            common_name,
            sans,
            der,
            use_as_username: false,
        }
    }

    /// The name that stands for the client: the common name, else the first SAN.
    pub fn name(&self) -> Option<&str> {
        self.common_name
            .as_deref()
            .or_else(|| self.sans.first().map(String::as_str))
    }
}

/// Who is on the other end of a connection, as its transport established it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The remote address.
    pub remote: RemoteAddr,
    /// The verified client certificate, on a mutual-TLS listener. Boxed: most connections
    /// have none, and an idle connection should stay small.
    pub tls: Option<Box<TlsIdentity>>,
}

impl Peer {
    /// A peer without a TLS identity.
    pub fn new(remote: RemoteAddr) -> Self {
        Self { remote, tls: None }
    }

    /// A peer known only by a description.
    pub fn named(name: &str) -> Self {
        Self::new(RemoteAddr::Named(Arc::from(name)))
    }

    /// This peer with a TLS identity.
    pub fn with_tls(mut self, tls: Option<TlsIdentity>) -> Self {
        self.tls = tls.map(Box::new);
        self
    }
}

/// Where a client came from, as the broker keeps it: the compact form of a [`Peer`] plus its
/// listener (what [`ClientInfo`](crate::ClientInfo) carries).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Origin {
    /// The remote address as text (see [`RemoteAddr::to_arc_str`]).
    pub remote: Arc<str>,
    /// The listener's id.
    pub listener: Arc<str>,
    /// The listener's kind.
    pub kind: ListenerKind,
    /// The verified client certificate, if any.
    pub tls: Option<Arc<TlsIdentity>>,
}

impl Origin {
    /// A client from `remote` on `listener`, of kind [`ListenerKind::Other`], without TLS.
    pub fn new(remote: Arc<str>, listener: Arc<str>) -> Self {
        Self {
            remote,
            listener,
            kind: ListenerKind::Other,
            tls: None,
        }
    }

    /// What hooks see of a client from here.
    pub fn client_info(
        &self,
        id: bytestring::ByteString,
        username: Option<bytestring::ByteString>,
        protocol: moco_codec::ProtocolVersion,
    ) -> crate::ClientInfo {
        crate::ClientInfo {
            id,
            username,
            remote: self.remote.clone(),
            listener: self.listener.clone(),
            protocol,
            kind: self.kind,
            tls: self.tls.clone(),
        }
    }

    /// The origin of a connection from `peer` on listener `listener` of `kind`.
    pub fn of(peer: Peer, listener: Arc<str>, kind: ListenerKind) -> Self {
        Self {
            remote: peer.remote.to_arc_str(),
            listener,
            kind,
            tls: peer.tls.map(Arc::from),
        }
    }
}

/// A connection whose transport handshake is done: owned halves that the driver's reader and
/// writer tasks use without sharing a lock, and the peer.
#[derive(Debug)]
pub struct Established<R, W> {
    /// What the reader task reads from.
    pub read: R,
    /// What the writer task writes to. Dropping it must not close the connection (closing is
    /// `poll_shutdown`'s job): a passive disconnect waits for the client to close first.
    pub write: W,
    /// Who is on the other end.
    pub peer: Peer,
}

/// A boxed transport handshake.
pub type Handshaking<R, W> =
    Pin<Box<dyn Future<Output = std::io::Result<Established<R, W>>> + Send + 'static>>;

/// How a connection becomes [`Established`]: at once (TCP, Unix), or after a handshake that
/// runs in the connection's own task, bounded by the connect timeout, so that a stalled
/// handshake never holds up the listener's accept loop.
pub enum Establish<R, W> {
    /// Nothing to negotiate.
    Ready(Established<R, W>),
    /// A handshake to run first (TLS, WebSocket upgrade).
    Handshake(Handshaking<R, W>),
}

impl<R, W> std::fmt::Debug for Establish<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ready(_) => f.write_str("Establish::Ready"),
            Self::Handshake(_) => f.write_str("Establish::Handshake"),
        }
    }
}

/// One accepted connection, before its transport handshake.
pub trait Connection: Send + 'static {
    /// The read half.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The write half.
    type Write: AsyncWrite + Unpin + Send + 'static;

    /// Splits the connection into owned halves, after the transport's handshake if it has one.
    fn establish(self) -> Establish<Self::Read, Self::Write>;
}

/// Any byte stream as a [`Connection`], split with `tokio::io::split` (whose halves share a
/// lock: a transport that can split into independent halves should implement [`Connection`]
/// itself, as TCP does).
#[derive(Debug)]
pub struct Shared<S> {
    stream: S,
    peer: Peer,
}

impl<S> Shared<S> {
    /// `stream` from `peer`.
    pub fn new(stream: S, peer: Peer) -> Self {
        Self { stream, peer }
    }
}

impl<S> Connection for Shared<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    type Read = ReadHalf<S>;
    type Write = WriteHalf<S>;

    fn establish(self) -> Establish<Self::Read, Self::Write> {
        let (read, write) = tokio::io::split(self.stream);
        Establish::Ready(Established {
            read,
            write,
            peer: self.peer,
        })
    }
}

/// A source of client connections.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Conn: Connection;

    /// The kind clients of this listener are reported as.
    fn kind(&self) -> ListenerKind;

    /// Waits for the next connection. An error is logged and accepting goes on after a short
    /// pause (e.g. out of file descriptors), so only transient failures belong here: a
    /// connection whose handshake fails fails in [`Connection::establish`].
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

#[cfg(test)]
mod tests {
    use super::peer_string;

    #[test]
    fn peer_strings_match_display() {
        for a in [
            "127.0.0.1:1883",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.4:50000",
            "[::1]:1883",
            "[fe80::1%2]:8",
        ] {
            let addr: std::net::SocketAddr = a.parse().unwrap();
            assert_eq!(peer_string(addr), addr.to_string());
        }
    }
}

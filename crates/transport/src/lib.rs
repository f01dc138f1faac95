//! moco's listeners: the byte streams MQTT clients arrive on, for the engine's
//! [`Listener`](moco_engine::Listener) seam.
//!
//! * [`tcp`]: plain TCP, split into owned halves (the fast path).
//! * [`tls`]: TLS and mutual TLS with rustls; the verified client certificate's names reach the
//!   hooks on [`ClientInfo::tls`](moco_engine::ClientInfo::tls).
//! * [`ws`]: WebSocket and secure WebSocket (subprotocol `mqtt`).
//! * [`unix`]: Unix domain sockets.
//! * [`AnyListener`]: the factory the server builds listeners with, from a [`Spec`].
//!
//! Each listener's `accept` only accepts the socket; a transport handshake (TLS, WebSocket
//! upgrade) runs in the connection's own task through
//! [`Connection::establish`](moco_engine::Connection::establish), bounded by the engine's
//! connect timeout, so a client that stalls its handshake holds up nobody else.
//!
//! This crate depends on the engine for the seam only (`moco_engine::listener`): the
//! engine never learns which transport a client came on beyond its listener's kind, its remote
//! address and its TLS identity.

use std::net::SocketAddr;
use std::path::PathBuf;

use moco_engine::Server;

pub mod half;
pub mod tcp;
pub mod tls;
pub mod unix;
pub mod ws;

pub use tcp::TcpListener;
pub use tls::{Tls, TlsListener, TlsSettings};
pub use unix::UnixListener;
pub use ws::{WsListener, WsSettings};

/// Why a listener could not be set up. Each names the listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate, key or CA file is missing, unreadable or wrong.
    #[error("listener `{listener}`: {what} {}: {reason}", path.display())]
    File {
        /// The listener's id.
        listener: String,
        /// Which file (`certificate file`, `private key file`, `client CA file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("listener `{listener}`: TLS: {reason}")]
    Tls {
        /// The listener's id.
        listener: String,
        /// What rustls said.
        reason: String,
    },
    /// The address could not be bound.
    #[error("listener `{listener}`: cannot listen on {addr}: {source}")]
    Bind {
        /// The listener's id.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The Unix socket could not be set up.
    #[error("listener `{listener}`: Unix socket {}: {reason}", path.display())]
    Unix {
        /// The listener's id.
        listener: String,
        /// The socket file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// ALPN protocols offered on TLS: MQTT's registered id.
pub const ALPN_MQTT: &[&[u8]] = &[b"mqtt"];
/// ALPN protocols offered on secure WebSocket.
pub const ALPN_HTTP: &[&[u8]] = &[b"http/1.1"];

/// What to listen on and how: one per configured listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spec {
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TLS over TCP.
    Tls(SocketAddr, TlsSettings),
    /// WebSocket; over TLS (secure WebSocket) when the settings are given.
    Ws(SocketAddr, Option<TlsSettings>, WsSettings),
    /// A Unix socket at a path, with an optional file mode.
    Unix(PathBuf, Option<u32>),
}

impl Spec {
    /// Reads and checks what the listener needs besides its address (certificate and key
    /// files), without binding anything: `moco check-config`.
    pub fn check(&self, listener: &str) -> Result<(), Error> {
        match self {
            Spec::Tls(_, tls) => tls.load(listener, ALPN_MQTT).map(drop),
            Spec::Ws(_, Some(tls), _) => tls.load(listener, ALPN_HTTP).map(drop),
            _ => Ok(()),
        }
    }
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A Unix socket file.
    Unix(PathBuf),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Ip(a) => a.fmt(f),
            Bound::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listener of any kind; [`AnyListener::add_to`] hands it to a server, each kind with
/// its own connection type (no dispatch per read or write).
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyListener {
    /// Plain TCP.
    Tcp(TcpListener),
    /// TLS.
    Tls(TlsListener),
    /// WebSocket or secure WebSocket.
    Ws(WsListener),
    /// Unix socket.
    Unix(UnixListener),
}

async fn bind_tcp(listener: &str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        listener: listener.to_owned(),
        addr,
        source,
    })
}

impl AnyListener {
    /// Loads certificates and binds, for listener `listener` (its id, named in errors).
    pub async fn bind(listener: &str, spec: &Spec) -> Result<Self, Error> {
        Ok(match spec {
            Spec::Tcp(addr) => AnyListener::Tcp(bind_tcp(listener, *addr).await?),
            Spec::Tls(addr, tls) => {
                let tls = tls.load(listener, ALPN_MQTT)?;
                AnyListener::Tls(TlsListener::new(bind_tcp(listener, *addr).await?, tls))
            }
            Spec::Ws(addr, tls, ws) => {
                let tls = match tls {
                    Some(t) => Some(t.load(listener, ALPN_HTTP)?),
                    None => None,
                };
                AnyListener::Ws(WsListener::new(
                    bind_tcp(listener, *addr).await?,
                    tls,
                    ws.clone(),
                ))
            }
            Spec::Unix(path, mode) => {
                AnyListener::Unix(UnixListener::bind(listener, path, *mode).await?)
            }
        })
    }

    /// Where it listens.
    pub fn bound(&self) -> std::io::Result<Bound> {
        Ok(match self {
            AnyListener::Tcp(l) => Bound::Ip(l.local_addr()?),
            AnyListener::Tls(l) => Bound::Ip(l.local_addr()?),
            AnyListener::Ws(l) => Bound::Ip(l.local_addr()?),
            AnyListener::Unix(l) => Bound::Unix(l.path()),
        })
    }

    /// Adds it to `server` under `id`.
    pub fn add_to(self, server: &mut Server, id: &str) {
        match self {
            AnyListener::Tcp(l) => server.add_listener(id, l),
            AnyListener::Tls(l) => server.add_listener(id, l),
            AnyListener::Ws(l) => server.add_listener(id, l),
            AnyListener::Unix(l) => server.add_listener(id, l),
        }
    }
}

//! TLS and mutual TLS with rustls: certificates and keys from PEM files, the handshake in the
//! connection's task, the verified client certificate's names for the hooks.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moco_engine::listener::{
    Connection, Establish, Established, ListenerKind, Peer, RemoteAddr, TlsIdentity,
};
use moco_engine::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::{Error, TcpListener};

/// What a TLS (or WSS) listener is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs that sign client certificates; turns on mutual TLS.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse a client without a valid certificate (with `client_ca_file`); otherwise a
    /// certificate is optional but checked when given.
    pub require_client_cert: bool,
    /// The certificate's common name (or first SAN) becomes the client's user name.
    pub use_identity_as_username: bool,
}

/// A loaded TLS configuration: what every handshake of one listener uses.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    identity_as_username: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("identity_as_username", &self.identity_as_username)
            .finish_non_exhaustive()
    }
}

fn file_error(listener: &str, what: &'static str, path: &Path, reason: String) -> Error {
    Error::File {
        listener: listener.to_owned(),
        what,
        path: path.to_owned(),
        reason,
    }
}

fn read_pem(listener: &str, what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| file_error(listener, what, path, e.to_string()))
}

fn certs(
    listener: &str,
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_pem(listener, what, path)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(listener, what, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            listener,
            what,
            path,
            "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    Ok(certs)
}

fn key(listener: &str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    const WHAT: &str = "private key file";
    let pem = read_pem(listener, WHAT, path)?;
    match rustls_pemfile::private_key(&mut BufReader::new(&pem[..])) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(file_error(
            listener,
            WHAT,
            path,
            "holds no PEM private key (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 \
             `EC PRIVATE KEY`)"
                .into(),
        )),
        Err(e) => Err(file_error(
            listener,
            WHAT,
            path,
            format!("not valid PEM: {e}"),
        )),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsSettings {
    /// Reads and checks the files for listener `listener`, offering `alpn` (`mqtt` for TLS,
    /// `http/1.1` for WSS). Every failure names the listener, the file and what is wrong.
    pub fn load(&self, listener: &str, alpn: &[&[u8]]) -> Result<Tls, Error> {
        let chain = certs(listener, "certificate file", &self.cert_file)?;
        let key = key(listener, &self.key_file)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Tls {
                listener: listener.to_owned(),
                reason: e.to_string(),
            })?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certs(listener, "client CA file", ca)? {
                    roots.add(c).map_err(|e| {
                        file_error(
                            listener,
                            "client CA file",
                            ca,
                            format!("bad CA certificate: {e}"),
                        )
                    })?;
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let v = if self.require_client_cert {
                    v
                } else {
                    v.allow_unauthenticated()
                };
                let v = v
                    .build()
                    .map_err(|e| file_error(listener, "client CA file", ca, e.to_string()))?;
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            let reason = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "does not match the certificate in the certificate file".to_owned()
                }
                other => other.to_string(),
            };
            file_error(listener, "private key file", &self.key_file, reason)
        })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            identity_as_username: self.use_identity_as_username,
        })
    }
}

impl Tls {
    /// Runs the server side of the handshake on `stream`; returns the TLS stream and the
    /// verified client certificate's identity, if the client presented one.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<(TlsStream<S>, Option<TlsIdentity>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = self.acceptor.accept(stream).await?;
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|der| {
                let mut id = identity_of(der);
                id.use_as_username = self.identity_as_username;
                id
            });
        Ok((tls, identity))
    }
}

/// The names of a (verified) certificate.
pub fn identity_of(der: &CertificateDer<'_>) -> TlsIdentity {
    let (cn, sans) = match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned);
            let mut sans = Vec::new();
            if let Ok(Some(ext)) = cert.subject_alternative_name() {
                use x509_parser::extensions::GeneralName;
                for n in &ext.value.general_names {
                    match n {
                        GeneralName::DNSName(s)
                        | GeneralName::RFC822Name(s)
                        | GeneralName::URI(s) => sans.push((*s).to_owned()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                sans.push(std::net::Ipv4Addr::from(a).to_string());
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                sans.push(std::net::Ipv6Addr::from(a).to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            (cn, sans)
        }
        // rustls verified it, so it parses; a certificate that does not still has its DER.
        Err(_) => (None, Vec::new()),
    };
    TlsIdentity::new(cn, sans, der.to_vec())
}

/// A TLS listener: TCP, then the TLS handshake in each connection's task.
#[derive(Debug)]
pub struct TlsListener {
    tcp: TcpListener,
    tls: Tls,
}

impl TlsListener {
    /// TLS over the bound `tcp`.
    pub fn new(tcp: TcpListener, tls: Tls) -> Self {
        Self { tcp, tls }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl Listener for TlsListener {
    type Conn = TlsConnection;

    fn kind(&self) -> ListenerKind {
        ListenerKind::Tls
    }

    async fn accept(&mut self) -> std::io::Result<TlsConnection> {
        let (stream, peer) = self.tcp.accept_stream().await?;
        Ok(TlsConnection {
            stream,
            peer,
            tls: self.tls.clone(),
        })
    }
}

/// An accepted TLS connection, before its handshake.
#[derive(Debug)]
pub struct TlsConnection {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Tls,
}

impl Connection for TlsConnection {
    type Read = ReadHalf<TlsStream<TcpStream>>;
    type Write = WriteHalf<TlsStream<TcpStream>>;

    fn establish(self) -> Establish<Self::Read, Self::Write> {
        Establish::Handshake(Box::pin(async move {
            let (stream, identity) = self.tls.accept(self.stream).await?;
            let (read, write) = tokio::io::split(stream);
            Ok(Established {
                read,
                write,
                peer: Peer::new(RemoteAddr::Ip(self.peer)).with_tls(identity),
            })
        }))
    }
}

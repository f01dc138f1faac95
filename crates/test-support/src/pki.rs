//! A PKI made with rcgen for TLS tests: a CA, a server certificate for `localhost` /
//! 127.0.0.1 in PEM files, client certificates, and a TLS client trusting the CA.

use std::path::PathBuf;
use std::sync::Arc;

use crate::WAIT;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A CA and the files a TLS listener is configured with, in a temporary directory.
pub struct Pki {
    /// Where the files are.
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for `tls_client_ca_file`.
    pub ca_file: PathBuf,
    /// The server's certificate (PEM).
    pub cert_file: PathBuf,
    /// The server's key (PKCS#8 PEM).
    pub key_file: PathBuf,
}

/// A client certificate and key (DER).
pub struct ClientCert {
    /// The certificate.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A new CA with a server certificate for `localhost` and 127.0.0.1.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("moco test CA");
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca).unwrap();
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        Pki {
            ca_file: write("ca.pem", ca.pem()),
            cert_file: write("server.pem", cert.pem()),
            key_file: write("server.key", key.serialize_pem()),
            ca,
            dir,
        }
    }

    /// A client certificate with common name `cn` (none if empty) and DNS SANs `sans`,
    /// signed by this CA.
    pub fn client(&self, cn: &str, sans: &[&str]) -> ClientCert {
        sign_client(&self.ca, cn, sans, false)
    }

    /// A client certificate signed by this CA that expired in 2000.
    pub fn expired(&self, cn: &str) -> ClientCert {
        sign_client(&self.ca, cn, &[], true)
    }

    /// A client certificate signed by another CA, which this one does not trust.
    pub fn stranger(&self, cn: &str) -> ClientCert {
        sign_client(&ca("another CA"), cn, &[], false)
    }

    /// A root store holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }

    /// The listener settings for this PKI's server certificate.
    pub fn settings(&self) -> moco_transport::TlsSettings {
        moco_transport::TlsSettings {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ..Default::default()
        }
    }

    /// The settings with mutual TLS: this CA signs client certificates.
    pub fn mutual(
        &self,
        required: bool,
        identity_as_username: bool,
    ) -> moco_transport::TlsSettings {
        moco_transport::TlsSettings {
            client_ca_file: Some(self.ca_file.clone()),
            require_client_cert: required,
            use_identity_as_username: identity_as_username,
            ..self.settings()
        }
    }

    /// A TLS client configuration trusting this CA, offering `alpn`, with `cert` if given.
    pub fn client_config(&self, cert: Option<ClientCert>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots());
        let mut config = match cert {
            Some(c) => builder.with_client_auth_cert(c.chain, c.key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Connects to `addr` over TCP and runs a TLS handshake for `localhost`.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        cert: Option<ClientCert>,
        alpn: &[&[u8]],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        self.connect_with(addr, self.client_config(cert, alpn))
            .await
    }

    /// Connects to `addr` over TCP and runs a TLS handshake for `localhost` with `config`.
    pub async fn connect_with(
        &self,
        addr: std::net::SocketAddr,
        config: Arc<ClientConfig>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
    }
}

fn sign_client(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    expired: bool,
) -> ClientCert {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    // rcgen's default subject has a common name of its own.
    params.distinguished_name = rcgen::DistinguishedName::new();
    if !cn.is_empty() {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(1999, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 1);
    }
    let cert = params.signed_by(&key, ca).unwrap();
    ClientCert {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

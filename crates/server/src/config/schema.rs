//! The schema: the server's own sections (listeners, hooks, logging), the engine's options by
//! reference ([`Options`] with its `serde` feature), and their defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use moco_auth::LedgerRules;
use moco_engine::Options;
use moco_transport::{Spec, TlsSettings, WsSettings};
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where clients connect. Default: one TCP listener on `127.0.0.1:1883`.
    #[serde(deserialize_with = "null_is_default_listeners")]
    pub listeners: Vec<ListenerConfig>,
    /// Authentication, storage and debug hooks.
    #[serde(deserialize_with = "null_is_default")]
    pub hooks: HooksConfig,
    /// The engine's options, in the form of its `serde` feature.
    #[serde(deserialize_with = "null_is_default")]
    pub options: Options,
    /// Log level and format.
    #[serde(deserialize_with = "null_is_default")]
    pub logging: LoggingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::new(
                ListenerKind::Tcp,
                "tcp",
                DEFAULT_TCP_ADDRESS,
            )],
            hooks: HooksConfig::default(),
            options: Options::default(),
            logging: LoggingConfig::default(),
        }
    }
}

/// The TCP address used when nothing else is said: loopback only.
pub const DEFAULT_TCP_ADDRESS: &str = "127.0.0.1:1883";
/// The WebSocket address of `moco` run without a file: loopback only.
pub const DEFAULT_WS_ADDRESS: &str = "127.0.0.1:1882";

impl Config {
    /// The configuration of `moco` run without a file: loopback-only listeners (TCP on
    /// 127.0.0.1:1883, WebSocket on 127.0.0.1:1882, HTTP on 127.0.0.1:8080) and anonymous
    /// clients allowed.
    pub fn loopback_default() -> Self {
        let mut c = Self::default();
        c.listeners.push(ListenerConfig::new(
            ListenerKind::Ws,
            "ws",
            DEFAULT_WS_ADDRESS,
        ));
        c.listeners.push(ListenerConfig::new(
            ListenerKind::Http,
            "http",
            super::DEFAULT_HTTP_ADDRESS,
        ));
        c.hooks.auth.allow_all = true;
        c
    }

    /// The engine options this configuration asks for.
    pub fn engine_options(&self) -> Options {
        self.options.clone()
    }
}

/// The kind of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over TLS (needs `tls_cert_file` and `tls_key_file`).
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket with TLS.
    Wss,
    /// HTTP: the dashboard, `$SYS` as JSON, health, Prometheus metrics and the admin API.
    Http,
    /// HTTP: `$SYS` as JSON on `/` (mochi's `sysinfo`), plus health.
    Sysinfo,
    /// HTTP: `/healthcheck` (mochi's `healthcheck`), `/livez` and `/readyz`.
    Healthcheck,
    /// MQTT over a Unix socket; the address is a path.
    Unix,
}

impl ListenerKind {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Http => "http",
            Self::Sysinfo => "sysinfo",
            Self::Healthcheck => "healthcheck",
            Self::Unix => "unix",
        }
    }

    pub(super) fn takes_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The transport.
    #[serde(rename = "type")]
    pub kind: ListenerKind,
    /// A unique name, shown in logs and given to hooks. Default: the type's name.
    #[serde(default)]
    pub id: String,
    /// `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` or `:PORT` (every interface); a path for
    /// `unix`. Port 0 picks a free port (the log says which).
    pub address: String,
    /// PEM certificate chain, for `tls` and `wss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), for `tls` and `wss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// Credentials of an HTTP listener (`http`, `sysinfo`, `healthcheck`); required beyond
    /// loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::HttpAuthConfig>,
    /// Let anonymous readers use an HTTP listener's read-only endpoints (health, readiness,
    /// metrics, `$SYS` JSON) even with `auth` set, or beyond loopback without it for a
    /// `sysinfo` or `healthcheck` listener.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous_read: bool,
    /// PEM bundle of the CAs that sign client certificates: mutual TLS (`tls`, `wss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `tls_client_ca_file`); otherwise a
    /// certificate is optional, and checked when given.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_client_cert: bool,
    /// The client certificate's common name (or first SAN) is the client's user name, as the
    /// auth ledger sees it (needs `require_client_cert`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_identity_as_username: bool,
    /// The HTTP path upgraded to WebSocket (`ws`, `wss`), e.g. `/mqtt`. Default: any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Origins browsers may connect from (`ws`, `wss`), e.g. `https://example.com`.
    /// Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// The socket file's permissions (`unix`), octal as for chmod, e.g. `"0660"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ListenerConfig {
    /// A listener without TLS files.
    pub fn new(kind: ListenerKind, id: &str, address: &str) -> Self {
        Self {
            kind,
            id: id.to_owned(),
            address: address.to_owned(),
            tls_cert_file: None,
            tls_key_file: None,
            auth: None,
            anonymous_read: false,
            tls_client_ca_file: None,
            require_client_cert: false,
            use_identity_as_username: false,
            path: None,
            allowed_origins: Vec::new(),
            mode: None,
        }
    }

    /// The socket address to bind (for every type but `unix`).
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_address(&self.address)
    }

    /// The socket file's mode, parsed.
    pub fn file_mode(&self) -> Result<Option<u32>, String> {
        let Some(m) = &self.mode else { return Ok(None) };
        match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o7777 => Ok(Some(v)),
            _ => Err(format!(
                "invalid mode `{m}`: expected octal permissions such as \"0660\""
            )),
        }
    }

    /// What the transport crate builds this listener from; relative files are resolved
    /// against `dir` (the configuration file's directory). `None` for `http`, which is not an
    /// MQTT transport.
    pub fn spec(&self, dir: Option<&std::path::Path>) -> Result<Option<Spec>, String> {
        let file = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| super::resolve(dir, p))
                .unwrap_or_default()
        };
        let tls = || TlsSettings {
            cert_file: file(&self.tls_cert_file),
            key_file: file(&self.tls_key_file),
            client_ca_file: self
                .tls_client_ca_file
                .as_ref()
                .map(|p| super::resolve(dir, p)),
            require_client_cert: self.require_client_cert,
            use_identity_as_username: self.use_identity_as_username,
        };
        let ws = || WsSettings {
            path: self.path.clone(),
            allowed_origins: self.allowed_origins.clone(),
        };
        Ok(Some(match self.kind {
            ListenerKind::Tcp => Spec::Tcp(self.socket_addr()?),
            ListenerKind::Tls => Spec::Tls(self.socket_addr()?, tls()),
            ListenerKind::Ws => Spec::Ws(self.socket_addr()?, None, ws()),
            ListenerKind::Wss => Spec::Ws(self.socket_addr()?, Some(tls()), ws()),
            ListenerKind::Unix => Spec::Unix(PathBuf::from(&self.address), self.file_mode()?),
            ListenerKind::Http | ListenerKind::Sysinfo | ListenerKind::Healthcheck => {
                return Ok(None)
            }
        }))
    }
}

/// Parses `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` or `:PORT` (every interface).
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let bad = |why: &str| format!("invalid address `{text}`: {why}");
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad("the port must be 0-65535"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| bad("the port must be 0-65535"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse().map_err(|_| {
        bad("expected IP:PORT, [IPv6]:PORT, localhost:PORT or :PORT (e.g. 127.0.0.1:1883)")
    })
}

/// The hooks to install.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Who may connect, subscribe and publish.
    #[serde(deserialize_with = "null_is_default")]
    pub auth: AuthConfig,
    /// Persistence of sessions and retained messages.
    #[serde(deserialize_with = "null_is_default")]
    pub storage: StorageConfig,
    /// Logging of every packet.
    #[serde(deserialize_with = "null_is_default")]
    pub debug: DebugConfig,
}

/// Authentication and authorization. With a configuration file and none of these set, every
/// client is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Allow every client to connect, subscribe and publish. Development only.
    pub allow_all: bool,
    /// An auth ledger written inline (moco-auth's schema: `users`, `auth`, `acl`).
    #[serde(skip_serializing)]
    pub ledger: Option<LedgerRules>,
    /// A ledger file (YAML or JSON), re-read on SIGHUP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_file: Option<PathBuf>,
}

/// Storage backends (at most one): what survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// An embedded sled database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sled: Option<SledConfig>,
    /// A Redis server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
    /// When a publisher's acknowledgement may be sent.
    pub durability: DurabilityMode,
    /// With `durability: periodic`: the most time between writes, in milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            sled: None,
            redis: None,
            durability: DurabilityMode::Sync,
            flush_interval_ms: 1000,
        }
    }
}

/// `hooks.storage.durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// PUBACK / PUBREC only once what the message changed is stored.
    Sync,
    /// Acknowledge at once, write at most every `flush_interval_ms`.
    Periodic,
}

/// The sled storage backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SledConfig {
    /// The database directory.
    pub path: PathBuf,
}

/// The Redis storage backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `HOST:PORT` of the server.
    pub address: String,
    /// User name, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Database number.
    #[serde(default)]
    pub database: u32,
    /// Prefix of every key.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
}

fn default_redis_prefix() -> String {
    moco_storage::DEFAULT_PREFIX.to_owned()
}

/// The engine's debug hook ([`moco_engine::DebugHook`]): every packet and client event
/// logged under the target `moco::debug` (enabling the hook enables that target at `debug`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// Install the hook.
    pub enable: bool,
    /// Log whole packets (payloads included), not only their types.
    pub show_packet_data: bool,
    /// Log PINGREQ / PINGRESP too.
    pub show_pings: bool,
    /// Log the passwords of CONNECT packets (masked otherwise).
    pub show_passwords: bool,
}

/// Log level and format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a `tracing` filter such as
    /// `info,moco_engine=debug`. `RUST_LOG`, then `MOCO_LOG`, override it.
    pub level: String,
    /// `text` or `json` (one JSON object per line).
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// The log format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A section written with nothing under it (`hooks:` whose lines are all commented out) is
/// YAML's null: it means the defaults, as if the section were left out.
fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_is_default_listeners<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<ListenerConfig>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_else(|| Config::default().listeners))
}

/// The id a listener runs under: its `id`, or its type's name.
pub fn effective_id(l: &ListenerConfig) -> String {
    if l.id.is_empty() {
        l.kind.name().to_owned()
    } else {
        l.id.clone()
    }
}

//! The configuration file: its schema, defaults, parsing and validation.
//!
//! The file is YAML, or JSON when its extension is `.json` (or, with another extension, when
//! its first non-blank byte is `{`). Every level is a struct with `#[serde(default,
//! deny_unknown_fields)]`: a field left out keeps its default, an unknown field is an error.
//! `options:` deserializes straight into [`moco_engine::Options`] (the engine's `serde`
//! feature): its fields, defaults and value forms are the engine's, never restated here, so
//! `options:` in a file only says what differs.
//!
//! ```yaml
//! listeners:                  # default: one TCP listener on 127.0.0.1:1883
//!   - type: tcp               # tcp (tls, ws, wss, http, unix: not available yet)
//!     id: main                # default: the type; unique
//!     address: 0.0.0.0:1883   # also ":1883" (all interfaces) or "localhost:1883"
//! hooks:
//!   auth:
//!     allow_all: false        # true: anyone may connect, subscribe and publish
//!     ledger: { … }           # an inline auth ledger (moco-auth's schema) …
//!     ledger_file: auth.yaml  # … or a path to one (reloaded on SIGHUP); exclusive
//!   debug: { enable: true, show_packet_data: false, show_pings: false }
//!   storage: {}               # sled / redis: not available yet
//! options:                    # moco_engine::Options, field by field
//!   capabilities: { maximum_inflight: 8192, compatibilities: { … } }
//! logging: { level: info, format: text }
//! ```
//!
//! Errors ([`ConfigError`]) name the file, the line and column, the field path (e.g.
//! `listeners[1].address`) and what is wrong, in one line.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use moco_auth::LedgerRules;
use moco_engine::Options;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

impl Config {
    /// The configuration of `moco` run without a file: loopback-only listeners and anonymous
    /// clients allowed.
    pub fn loopback_default() -> Self {
        let mut c = Self::default();
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
    /// MQTT over TLS (needs `tls_cert_file` and `tls_key_file`). Not available yet.
    Tls,
    /// MQTT over WebSocket. Not available yet.
    Ws,
    /// MQTT over WebSocket with TLS. Not available yet.
    Wss,
    /// HTTP: `$SYS` as JSON, health check (mochi's `sysinfo`). Not available yet.
    #[serde(alias = "sysinfo")]
    Http,
    /// MQTT over a Unix socket; the address is a path. Not available yet.
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
            Self::Unix => "unix",
        }
    }

    fn takes_tls(self) -> bool {
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
    /// PEM private key, for `tls` and `wss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
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
        }
    }

    /// The socket address to bind (for every type but `unix`).
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_address(&self.address)
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

/// Storage backends (at most one). Not available yet: setting one is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// An embedded sled database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sled: Option<SledConfig>,
    /// A Redis server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
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
    "moco".to_owned()
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

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// A configuration that cannot be used: where and why. Displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or a description of the source (`command line`).
    pub origin: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// The field's path, e.g. `listeners[1].address`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration {}", self.origin)?;
        if let Some(l) = self.location {
            write!(f, " at line {}, column {}", l.line, l.column)?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error with no location (e.g. the file cannot be read).
    pub fn plain(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            location: None,
            field: None,
            message: message.into(),
        }
    }
}

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (the default).
    Yaml,
    /// JSON.
    Json,
}

/// JSON by extension (`.json`), YAML by extension (`.yaml`, `.yml`), else JSON when the first
/// non-blank byte is `{`, else YAML.
pub fn detect_format(path: &Path, bytes: &[u8]) -> Format {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::Yaml,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// A parsed and validated configuration file, with the text it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The file.
    pub path: PathBuf,
    /// Its syntax.
    pub format: Format,
    /// Its bytes (to locate fields in later messages).
    pub bytes: Vec<u8>,
}

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::plain(&origin, format!("cannot read the file: {e}")))?;
    let format = detect_format(path, &bytes);
    let config = parse(&bytes, format, &origin)?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&config, Some(base)).map_err(|e| e.locate(&bytes, format, &origin))?;
    Ok(LoadedConfig {
        config,
        path: path.to_owned(),
        format,
        bytes,
    })
}

/// Parses configuration text (no validation beyond the schema). An empty YAML document is
/// the defaults.
pub fn parse(bytes: &[u8], format: Format, origin: &str) -> Result<Config, ConfigError> {
    match format {
        Format::Yaml => {
            let de = yaml_serde::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, Option<Config>>(de) {
                Ok(c) => Ok(c.unwrap_or_default()),
                Err(e) => {
                    let field = field_name(e.path());
                    let inner = e.into_inner();
                    let location = inner.location().map(|l| Location {
                        line: l.line(),
                        column: l.column(),
                    });
                    let mut message = strip_location(inner.to_string(), location);
                    // yaml_serde starts some messages with the path of the field or of its
                    // parent; the error names the field itself.
                    if let Some((prefix, rest)) = message.split_once(": ") {
                        if field.as_deref().is_some_and(|f| f.starts_with(prefix)) {
                            message = rest.to_owned();
                        }
                    }
                    Err(ConfigError {
                        origin: origin.to_owned(),
                        location,
                        field,
                        message,
                    })
                }
            }
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let result = serde_path_to_error::deserialize::<_, Config>(&mut de)
                .map_err(|e| (field_name(e.path()), e.into_inner()))
                .and_then(|c| de.end().map(|()| c).map_err(|e| (None, e)));
            result.map_err(|(field, inner)| {
                let location = (inner.line() > 0).then(|| Location {
                    line: inner.line(),
                    column: inner.column().max(1),
                });
                ConfigError {
                    origin: origin.to_owned(),
                    location,
                    field,
                    message: strip_location(inner.to_string(), location),
                }
            })
        }
    }
}

fn field_name(path: &serde_path_to_error::Path) -> Option<String> {
    let mut s = path.to_string();
    // An unknown last segment (e.g. where a JSON map failed between entries) says nothing.
    while let Some(parent) = s.strip_suffix(".?") {
        s = parent.to_owned();
    }
    (s != "." && s != "?").then_some(s)
}

/// The parsers append " at line L column C"; the error names the location itself.
fn strip_location(message: String, location: Option<Location>) -> String {
    let Some(l) = location else { return message };
    let suffix = format!(" at line {} column {}", l.line, l.column);
    match message.find(&suffix) {
        Some(at) => format!("{}{}", &message[..at], &message[at + suffix.len()..]),
        None => message,
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// A semantic problem at a field path, before it is located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The path, as segments.
    pub path: Vec<Segment>,
    /// What is wrong.
    pub message: String,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A map key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl Invalid {
    fn at(path: &[&dyn AsSegment], message: impl Into<String>) -> Self {
        Self {
            path: path.iter().map(|s| s.segment()).collect(),
            message: message.into(),
        }
    }

    /// The dotted path (`listeners[1].address`).
    pub fn field(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                Segment::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Segment::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    /// Turns this into a [`ConfigError`] naming the line and column of the field in `bytes`.
    pub fn locate(self, bytes: &[u8], format: Format, origin: &str) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            // The field itself, or else the nearest enclosing one present in the file.
            location: (0..=self.path.len())
                .rev()
                .find_map(|n| locate(bytes, format, &self.path[..n])),
            field: Some(self.field()),
            message: self.message,
        }
    }

    /// Turns this into a [`ConfigError`] with no location (values from the command line).
    pub fn unlocated(self, origin: &str) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            location: None,
            field: Some(self.field()),
            message: self.message,
        }
    }
}

trait AsSegment {
    fn segment(&self) -> Segment;
}

impl AsSegment for &str {
    fn segment(&self) -> Segment {
        Segment::Key((*self).to_owned())
    }
}

impl AsSegment for usize {
    fn segment(&self) -> Segment {
        Segment::Index(*self)
    }
}

/// Checks what the schema cannot: addresses parse, listener ids are unique, the ledger file
/// loads, limits are in range, features not built yet are not asked for. `base` resolves a
/// relative ledger path (the configuration file's directory).
pub fn validate(config: &Config, base: Option<&Path>) -> Result<(), Invalid> {
    if config.listeners.is_empty() {
        return Err(Invalid::at(
            &[&"listeners"],
            "no listeners: clients could not connect (leave `listeners` out for the default)",
        ));
    }
    let mut ids = HashSet::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let id = effective_id(l);
        if !ids.insert(id.clone()) {
            return Err(Invalid::at(
                &[&"listeners", &i, &"id"],
                format!("duplicate listener id `{id}` (each listener needs its own id)"),
            ));
        }
        if l.kind != ListenerKind::Unix {
            if let Err(e) = l.socket_addr() {
                return Err(Invalid::at(&[&"listeners", &i, &"address"], e));
            }
        }
        if l.kind.takes_tls() {
            for (name, v) in [
                ("tls_cert_file", &l.tls_cert_file),
                ("tls_key_file", &l.tls_key_file),
            ] {
                if v.is_none() {
                    return Err(Invalid::at(
                        &[&"listeners", &i, &"type"],
                        format!("a `{}` listener needs `{name}`", l.kind.name()),
                    ));
                }
            }
        } else {
            for (name, v) in [
                ("tls_cert_file", &l.tls_cert_file),
                ("tls_key_file", &l.tls_key_file),
            ] {
                if v.is_some() {
                    return Err(Invalid::at(
                        &[&"listeners", &i, &name],
                        format!(
                            "a `{}` listener takes no TLS files (use type tls or wss)",
                            l.kind.name()
                        ),
                    ));
                }
            }
        }
        if l.kind != ListenerKind::Tcp {
            return Err(Invalid::at(
                &[&"listeners", &i, &"type"],
                format!(
                    "`{}` listeners are not available yet in this build: only `tcp`",
                    l.kind.name()
                ),
            ));
        }
    }

    let auth = &config.hooks.auth;
    if auth.ledger.is_some() && auth.ledger_file.is_some() {
        return Err(Invalid::at(
            &[&"hooks", &"auth", &"ledger_file"],
            "give the ledger inline (`ledger`) or as a file (`ledger_file`), not both",
        ));
    }
    if auth.allow_all && (auth.ledger.is_some() || auth.ledger_file.is_some()) {
        let which = if auth.ledger.is_some() {
            "ledger"
        } else {
            "ledger_file"
        };
        return Err(Invalid::at(
            &[&"hooks", &"auth", &"allow_all"],
            format!(
                "`allow_all: true` would allow everything the `{which}` refuses; \
                 choose one (a ledger can allow everyone with `auth: [{{allow: true}}]`)"
            ),
        ));
    }
    if let Some(path) = &auth.ledger_file {
        let full = resolve(base, path);
        if let Err(e) = moco_auth::Ledger::from_path(&full) {
            return Err(Invalid::at(
                &[&"hooks", &"auth", &"ledger_file"],
                e.to_string(),
            ));
        }
    }

    let storage = &config.hooks.storage;
    if storage.sled.is_some() && storage.redis.is_some() {
        return Err(Invalid::at(
            &[&"hooks", &"storage", &"redis"],
            "choose one storage backend (sled or redis)",
        ));
    }
    for (name, set) in [
        ("sled", storage.sled.is_some()),
        ("redis", storage.redis.is_some()),
    ] {
        if set {
            return Err(Invalid::at(
                &[&"hooks", &"storage", &name],
                format!("the `{name}` storage hook is not available yet in this build"),
            ));
        }
    }

    validate_options(&config.options)?;

    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.logging.level) {
        return Err(Invalid::at(
            &[&"logging", &"level"],
            format!(
                "`{}` is not a log level or filter (error, warn, info, debug, trace): {e}",
                config.logging.level
            ),
        ));
    }
    Ok(())
}

fn validate_options(o: &Options) -> Result<(), Invalid> {
    let c = &o.capabilities;
    let caps = |field: &'static str, message: String| {
        Err(Invalid::at(&[&"options", &"capabilities", &field], message))
    };
    let top =
        |field: &'static str, message: String| Err(Invalid::at(&[&"options", &field], message));
    if c.maximum_qos > 2 {
        return caps(
            "maximum_qos",
            format!("must be 0, 1 or 2, not {}", c.maximum_qos),
        );
    }
    if !(3..=5).contains(&c.minimum_protocol_version) {
        return caps(
            "minimum_protocol_version",
            format!(
                "must be 3 (v3.0), 4 (v3.1.1) or 5 (v5), not {}",
                c.minimum_protocol_version
            ),
        );
    }
    for (name, v) in [
        ("receive_maximum", u64::from(c.receive_maximum)),
        ("maximum_inflight", u64::from(c.maximum_inflight)),
        (
            "maximum_client_writes_pending",
            u64::from(c.maximum_client_writes_pending),
        ),
    ] {
        if v == 0 {
            return caps(name, "must be at least 1".to_owned());
        }
    }
    if c.maximum_packet_size != 0 && c.maximum_packet_size < 64 {
        return caps(
            "maximum_packet_size",
            format!(
                "{} bytes is too small for MQTT's own packets: 0 (no limit) or at least 64",
                c.maximum_packet_size
            ),
        );
    }
    for (name, v) in [
        (
            "client_net_write_buffer_size",
            o.client_net_write_buffer_size as u64,
        ),
        (
            "client_net_read_buffer_size",
            o.client_net_read_buffer_size as u64,
        ),
        (
            "sys_topic_resend_interval",
            o.sys_topic_resend_interval.as_secs(),
        ),
        ("connect_timeout", o.connect_timeout.as_secs()),
    ] {
        if v == 0 {
            return top(name, "must be at least 1".to_owned());
        }
    }
    Ok(())
}

/// The id a listener runs under: its `id`, or its type's name.
pub fn effective_id(l: &ListenerConfig) -> String {
    if l.id.is_empty() {
        l.kind.name().to_owned()
    } else {
        l.id.clone()
    }
}

/// `path` relative to `base` unless absolute.
pub fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_owned(),
    }
}

/// The rule about anonymous access: without a configuration file (`allow_all` coming from
/// the built-in default) every listener must be on loopback.
pub fn check_exposure(config: &Config) -> Result<(), Invalid> {
    for (i, l) in config.listeners.iter().enumerate() {
        if let Ok(addr) = l.socket_addr() {
            if !addr.ip().is_loopback() {
                return Err(Invalid::at(
                    &[&"listeners", &i, &"address"],
                    format!(
                        "refusing to listen on {addr} without a configuration file: anonymous \
                         access is only allowed on loopback. Write a configuration with \
                         `hooks.auth` (a ledger, or `allow_all: true` if you mean it) and \
                         pass it with --config"
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Locating a field in the text
// ---------------------------------------------------------------------------------------------

const MARK: &str = "\u{1}moco-locate\u{1}";

/// The line and column of the value at `path` in `bytes`: the text is parsed again with a
/// seed that walks down the path and raises an error at the value, so the parser itself
/// says where it was.
pub fn locate(bytes: &[u8], format: Format, path: &[Segment]) -> Option<Location> {
    match format {
        Format::Yaml => {
            let de = yaml_serde::Deserializer::from_slice(bytes);
            match Walk(path).deserialize(de) {
                Err(e) if e.to_string().contains(MARK) => e.location().map(|l| Location {
                    line: l.line(),
                    column: l.column(),
                }),
                _ => None,
            }
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match Walk(path).deserialize(&mut de) {
                Err(e) if e.to_string().contains(MARK) && e.line() > 0 => Some(Location {
                    line: e.line(),
                    column: e.column().max(1),
                }),
                _ => None,
            }
        }
    }
}

struct Walk<'a>(&'a [Segment]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => d.deserialize_any(Here),
            Some(Segment::Key(_)) => d.deserialize_map(self),
            Some(Segment::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(Segment::Key(want)) = self.0.first() else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<KeyText>()? {
            if key.0.as_deref() == Some(want.as_str()) {
                return map.next_value_seed(Walk(&self.0[1..]));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(Segment::Index(want)) = self.0.first() else {
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk(&self.0[1..]))?;
        Ok(())
    }

    // Anything else: the path does not go on here.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A map key as text, whatever scalar it is.
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Raises the marker error at the value being visited.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom(MARK))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }
}

// ---------------------------------------------------------------------------------------------
// Printing the effective configuration
// ---------------------------------------------------------------------------------------------

/// The effective configuration as YAML: every field with its value, defaults included. An
/// inline ledger is copied from the file with plain-text passwords redacted.
pub fn effective_yaml(loaded: Option<&LoadedConfig>, config: &Config) -> String {
    let mut value = yaml_serde::to_value(config).expect("the configuration serializes");
    if config.hooks.auth.ledger.is_some() {
        if let Some(mut ledger) = loaded.and_then(|l| inline_ledger_value(&l.bytes, l.format)) {
            redact(&mut ledger);
            if let Some(auth) = value
                .get_mut("hooks")
                .and_then(|h| h.get_mut("auth"))
                .and_then(|a| a.as_mapping_mut())
            {
                auth.insert("ledger".into(), ledger);
            }
        }
    }
    yaml_serde::to_string(&value).expect("YAML serializes")
}

fn inline_ledger_value(bytes: &[u8], format: Format) -> Option<yaml_serde::Value> {
    let doc: yaml_serde::Value = match format {
        Format::Yaml => yaml_serde::from_slice(bytes).ok()?,
        Format::Json => {
            let j: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            yaml_serde::to_value(j).ok()?
        }
    };
    doc.get("hooks")?.get("auth")?.get("ledger").cloned()
}

fn redact(v: &mut yaml_serde::Value) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let is_password = k.as_str() == Some("password");
                let hashed = v
                    .as_str()
                    .is_some_and(|s| s.starts_with("$argon2") || s.starts_with("$2"));
                if is_password && v.is_string() && !hashed {
                    *v = "<redacted>".into();
                } else {
                    redact(v);
                }
            }
        }
        yaml_serde::Value::Sequence(s) => s.iter_mut().for_each(redact),
        yaml_serde::Value::Tagged(t) => redact(&mut t.value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Config, ConfigError> {
        let c = parse(text.as_bytes(), Format::Yaml, "t.yaml")?;
        validate(&c, None).map_err(|e| e.locate(text.as_bytes(), Format::Yaml, "t.yaml"))?;
        Ok(c)
    }

    #[test]
    fn defaults_are_the_engines() {
        assert_eq!(Config::default().engine_options(), Options::default());
        let empty = yaml("").unwrap();
        assert_eq!(empty.engine_options(), Options::default());
        let comments = yaml("# nothing\n").unwrap();
        assert_eq!(comments.listeners, Config::default().listeners);
    }

    #[test]
    fn omitted_fields_keep_defaults() {
        let c = yaml("options:\n  capabilities:\n    maximum_inflight: 7\n    compatibilities:\n      obscure_not_authorized: 1\n").unwrap();
        let o = c.engine_options();
        assert_eq!(o.capabilities.maximum_inflight, 7);
        assert!(o.capabilities.compatibilities.obscure_not_authorized);
        let d = Options::default();
        assert_eq!(
            o.capabilities.receive_maximum,
            d.capabilities.receive_maximum
        );
        assert_eq!(
            o.capabilities.maximum_client_writes_pending,
            d.capabilities.maximum_client_writes_pending
        );
        assert_eq!(o.connect_timeout, d.connect_timeout);
    }

    #[test]
    fn unknown_field_is_located() {
        let e = yaml("options:\n  capabilities:\n    maximum_inflght: 7\n").unwrap_err();
        assert_eq!(e.location, Some(Location { line: 3, column: 5 }), "{e}");
        assert!(e.message.contains("unknown field `maximum_inflght`"), "{e}");
        assert_eq!(
            e.field.as_deref(),
            Some("options.capabilities.maximum_inflght")
        );
    }

    #[test]
    fn semantic_error_is_located() {
        let text = "listeners:\n  - type: tcp\n    address: 127.0.0.1:1\n  - type: tcp\n    id: b\n    address: nowhere\n";
        let e = yaml(text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listeners[1].address"), "{e}");
        assert_eq!(e.location.map(|l| l.line), Some(6), "{e}");
        let json = br#"{"listeners": [{"type": "tcp", "address": "127.0.0.1:1"},
            {"type": "tcp", "address": "127.0.0.1:2"}]}"#;
        let c = parse(json, Format::Json, "t.json").unwrap();
        let e = validate(&c, None)
            .unwrap_err()
            .locate(json, Format::Json, "t.json");
        assert_eq!(e.field.as_deref(), Some("listeners[1].id"), "{e}");
        // No `id` in the file: located at the listener, line 2.
        assert_eq!(e.location.map(|l| l.line), Some(2), "{e}");
    }

    #[test]
    fn empty_sections_are_defaults() {
        let c = yaml("listeners:\nhooks:\n  auth:\n  debug:\noptions:\n  capabilities:\n    compatibilities:\nlogging:\n").unwrap();
        assert_eq!(c.engine_options(), Options::default());
        assert_eq!(c.listeners, Config::default().listeners);
        let e = yaml("listeners: []\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listeners"), "{e}");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address(":1883").unwrap().to_string(), "0.0.0.0:1883");
        assert_eq!(
            parse_address("localhost:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert!(parse_address("[::1]:1").unwrap().ip().is_loopback());
        assert!(parse_address("1883").is_err());
        assert!(parse_address(":99999").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let text = "hooks:\n  auth:\n    ledger:\n      auth:\n        - username: a\n          password: hunter2\n          allow: true\n";
        let loaded = LoadedConfig {
            config: yaml(text).unwrap(),
            path: "t.yaml".into(),
            format: Format::Yaml,
            bytes: text.as_bytes().to_vec(),
        };
        let out = effective_yaml(Some(&loaded), &loaded.config);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("<redacted>"), "{out}");
        assert!(out.contains("maximum_inflight"), "{out}");
    }
}

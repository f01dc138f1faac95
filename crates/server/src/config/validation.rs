//! Validation: what the schema cannot say (addresses, unique ids, the loopback rule for
//! anonymous access, limits in range, features not built yet), as an [`Invalid`] at a field
//! path that the loader then locates in the file.

use std::collections::HashSet;
use std::path::Path;

use moco_engine::Options;

use super::{effective_id, locate, resolve, Config, ConfigError, Format, ListenerKind};

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
        match l.http_options() {
            Some(Err(e)) => return Err(Invalid::at(&[&"listeners", &i, &"auth"], e)),
            Some(Ok(http)) => {
                if let Ok(addr) = l.socket_addr() {
                    if let Err(e) = http.check_exposure(addr) {
                        return Err(Invalid::at(&[&"listeners", &i, &"address"], e.to_string()));
                    }
                }
            }
            None if l.auth.is_some() || l.anonymous_read => {
                let field = if l.auth.is_some() {
                    "auth"
                } else {
                    "anonymous_read"
                };
                return Err(Invalid::at(
                    &[&"listeners", &i, &field],
                    format!(
                        "only HTTP listeners (http, sysinfo, healthcheck) take `{field}`; \
                         MQTT clients are authenticated by `hooks.auth`"
                    ),
                ));
            }
            None => {}
        }
        let tls_kind = l.kind.takes_tls();
        let ws_kind = matches!(l.kind, ListenerKind::Ws | ListenerKind::Wss);
        for (name, set, fits, which) in [
            (
                "tls_client_ca_file",
                l.tls_client_ca_file.is_some(),
                tls_kind,
                "tls or wss",
            ),
            (
                "require_client_cert",
                l.require_client_cert,
                tls_kind,
                "tls or wss",
            ),
            (
                "use_identity_as_username",
                l.use_identity_as_username,
                tls_kind,
                "tls or wss",
            ),
            ("path", l.path.is_some(), ws_kind, "ws or wss"),
            (
                "allowed_origins",
                !l.allowed_origins.is_empty(),
                ws_kind,
                "ws or wss",
            ),
            (
                "mode",
                l.mode.is_some(),
                l.kind == ListenerKind::Unix,
                "unix",
            ),
        ] {
            if set && !fits {
                return Err(Invalid::at(
                    &[&"listeners", &i, &name],
                    format!(
                        "a `{}` listener takes no `{name}` (it is for type {which})",
                        l.kind.name()
                    ),
                ));
            }
        }
        if l.require_client_cert && l.tls_client_ca_file.is_none() {
            return Err(Invalid::at(
                &[&"listeners", &i, &"require_client_cert"],
                "`require_client_cert` needs `tls_client_ca_file` (the CAs client certificates \
                 must be signed by)",
            ));
        }
        if l.use_identity_as_username && !l.require_client_cert {
            return Err(Invalid::at(
                &[&"listeners", &i, &"use_identity_as_username"],
                "`use_identity_as_username` needs `require_client_cert: true` (a client without a \
                 certificate would choose its own user name)",
            ));
        }
        if let Some(p) = &l.path {
            if !p.starts_with('/') {
                return Err(Invalid::at(
                    &[&"listeners", &i, &"path"],
                    format!("invalid path `{p}`: it must start with `/` (e.g. /mqtt)"),
                ));
            }
        }
        if l.kind == ListenerKind::Unix && l.address.is_empty() {
            return Err(Invalid::at(
                &[&"listeners", &i, &"address"],
                "a `unix` listener needs the socket file's path as its address",
            ));
        }
        if let Err(e) = l.file_mode() {
            return Err(Invalid::at(&[&"listeners", &i, &"mode"], e));
        }
        // Certificates and keys are read and checked now, so that a bad file is a
        // configuration error (with its field) and `moco check-config` finds it.
        match l.spec(base) {
            Ok(Some(spec)) => {
                if let Err(e) = spec.check(&id) {
                    let field = match &e {
                        moco_transport::Error::File { what, .. } => match *what {
                            "private key file" => "tls_key_file",
                            "client CA file" => "tls_client_ca_file",
                            _ => "tls_cert_file",
                        },
                        _ => "type",
                    };
                    return Err(Invalid::at(&[&"listeners", &i, &field], e.to_string()));
                }
            }
            Ok(None) => {}
            Err(e) => return Err(Invalid::at(&[&"listeners", &i, &"address"], e)),
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
    if storage.durability == super::DurabilityMode::Periodic && storage.flush_interval_ms == 0 {
        return Err(Invalid::at(
            &[&"hooks", &"storage", &"flush_interval_ms"],
            "must be at least 1 with `durability: periodic`",
        ));
    }
    if let Some(redis) = &storage.redis {
        if redis.address.trim().is_empty() {
            return Err(Invalid::at(
                &[&"hooks", &"storage", &"redis", &"address"],
                "must be HOST:PORT",
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

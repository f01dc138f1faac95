//! The configuration file: its schema, defaults, parsing and validation.
//!
//! The code is split by concern: the schema ([`Config`] and its sections), loading
//! ([`load_file`], [`parse`], [`ConfigError`]), validation ([`validate`], [`Invalid`]),
//! locating a field path in the text ([`locate`]) and printing the effective configuration
//! ([`effective_yaml`]); everything is re-exported here.
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
//!   - type: tcp               # tcp, or http / sysinfo / healthcheck (tls, ws, wss, unix: not yet)
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

mod effective;
mod http;
mod load;
mod location;
mod schema;
mod validation;

pub use effective::effective_yaml;
pub use http::{HttpAuthConfig, DEFAULT_HTTP_ADDRESS};
pub use load::{detect_format, load_file, parse, resolve, ConfigError, Format, LoadedConfig};
pub use location::{locate, Location};
pub use schema::{
    effective_id, parse_address, AuthConfig, Config, DebugConfig, DurabilityMode, HooksConfig,
    ListenerConfig, ListenerKind, LogFormat, LoggingConfig, RedisConfig, SledConfig, StorageConfig,
    DEFAULT_TCP_ADDRESS,
};
pub use validation::{check_exposure, validate, Invalid, Segment};

#[cfg(test)]
mod tests {
    use super::*;
    use moco_engine::Options;

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
    fn engine_value_forms_and_effective_yaml_load_back() {
        let text = "hooks:\n  auth:\n    allow_all: true\noptions:\n  capabilities:\n    shared_sub_strategy: sticky_by_publisher\n    retain_available: 0\n  connect_timeout: 3\n";
        let c = yaml(text).unwrap();
        let o = c.engine_options();
        assert_eq!(
            o.capabilities.shared_sub_strategy,
            moco_engine::topic::ShareStrategy::StickyByPublisher
        );
        assert!(!o.capabilities.retain_available);
        assert_eq!(o.connect_timeout, std::time::Duration::from_secs(3));
        let again = yaml(&effective_yaml(None, &c)).unwrap();
        assert_eq!(again.engine_options(), o);
        assert_eq!(again.listeners, c.listeners);
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

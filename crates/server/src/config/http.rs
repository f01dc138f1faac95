//! The HTTP listeners' own fields (`http`, `sysinfo`, `healthcheck`): credentials and
//! anonymous reads, and their translation into [`moco_http::HttpOptions`].

use std::collections::BTreeMap;

use moco_http::{Endpoints, HttpAuth, HttpOptions};
use serde::{Deserialize, Serialize, Serializer};

use super::{ListenerConfig, ListenerKind};

/// The address of the HTTP listener of the no-config default: loopback only, mochi's port.
pub const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:8080";

/// Who may call an HTTP listener. Beyond loopback one of these is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuthConfig {
    /// A token: requests carry `Authorization: Bearer <token>`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact_token"
    )]
    pub bearer_token: Option<String>,
    /// Basic-auth users: name to password as the auth ledger stores it (an argon2 hash, as
    /// `moco passwd` prints; a bcrypt hash or plain text are accepted too).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "redact_plain"
    )]
    pub users: BTreeMap<String, String>,
}

fn redact_token<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Hashes are shown (as the ledger's are), plain passwords are not.
fn redact_plain<S: Serializer>(v: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    let shown: BTreeMap<&str, &str> = v
        .iter()
        .map(|(k, p)| {
            let hashed = p.starts_with("$argon2") || p.starts_with("$2");
            (k.as_str(), if hashed { p.as_str() } else { "<redacted>" })
        })
        .collect();
    shown.serialize(s)
}

impl ListenerKind {
    /// The endpoints an HTTP listener kind serves; `None` for the MQTT kinds.
    pub fn http_endpoints(self) -> Option<Endpoints> {
        match self {
            Self::Http => Some(Endpoints::All),
            Self::Sysinfo => Some(Endpoints::SysInfo),
            Self::Healthcheck => Some(Endpoints::HealthCheck),
            _ => None,
        }
    }
}

impl ListenerConfig {
    /// The options of an HTTP listener (`None` for the MQTT kinds), or why its credentials
    /// are unusable.
    pub fn http_options(&self) -> Option<Result<HttpOptions, String>> {
        let endpoints = self.kind.http_endpoints()?;
        let auth = || -> Result<HttpAuth, moco_http::Error> {
            let mut auth = HttpAuth::default();
            if let Some(c) = &self.auth {
                if let Some(t) = &c.bearer_token {
                    auth = auth.with_bearer(t.clone())?;
                }
                for (name, password) in &c.users {
                    auth = auth.with_user(name, password)?;
                }
            }
            Ok(auth)
        };
        Some(auth().map_err(|e| e.to_string()).map(|auth| {
            HttpOptions::new(endpoints)
                .with_auth(auth)
                .with_anonymous_read(self.anonymous_read)
        }))
    }
}

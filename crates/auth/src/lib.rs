//! Access control for moco: [`AllowAll`] and the rule [`Ledger`], and the engine hooks over
//! them.
//!
//! Both implement [`AccessControl`] (authenticate a CONNECT, check a subscribe or publish);
//! [`AuthHook`] adapts that trait to a [`moco_engine::Hook`]. [`SharedLedger`] holds the
//! ledger of a running server and swaps in a new one on reload. A server wires it as
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use moco_auth::{LedgerHook, SharedLedger};
//! let ledger = Arc::new(SharedLedger::from_path("ledger.yaml")?);
//! let server = moco_engine::Server::builder().hook(LedgerHook::ledger(ledger.clone())).build();
//! ledger.reload()?; // on SIGHUP ...
//! server.acl_changed(); // ... and existing subscriptions follow the new rules
//! # Ok::<(), moco_auth::Error>(())
//! ```
//!
//! (or `.hook(AllowAllHook::allow_all())`, development only). [`AuthHook`] says which CONNACK
//! codes a refused CONNECT gets and why stacking `AllowAll` with a ledger defeats the ledger.
//!
//! ```
//! use moco_auth::{AclRequest, AuthRequest, Ledger, SharedLedger};
//!
//! let ledger = Ledger::from_yaml_bytes(br##"
//! auth:
//!   - username: device
//!     password: device-password
//!     allow: true
//! acl:
//!   - filters:
//!       "devices/%c/#": readwrite
//!       "#": deny
//! "##)?;
//! let shared = SharedLedger::new(ledger);
//! let ledger = shared.load();
//! assert!(ledger.authenticate(&AuthRequest {
//!     client_id: "d1",
//!     username: Some("device"),
//!     password: Some(b"device-password"),
//!     remote: "127.0.0.1:50000",
//! }));
//! let publish = |topic| AclRequest {
//!     client_id: "d1",
//!     username: Some("device"),
//!     remote: "127.0.0.1:50000",
//!     topic,
//!     write: true,
//! };
//! assert!(ledger.acl(&publish("devices/d1/temp")));
//! assert!(!ledger.acl(&publish("devices/d2/temp")));
//! # Ok::<(), moco_auth::Error>(())
//! ```
//!
//! # The ledger file
//!
//! YAML or JSON with the field names of mochi-mqtt's `hooks/auth` ledger, so a mochi ledger
//! loads unchanged. `crates/auth/examples/ledger.yaml` (and its `ledger.json` twin) shows
//! every field with comments.
//!
//! ```yaml
//! users:                      # optional, by username; tried before the rules
//!   admin:
//!     password: "$argon2id$v=19$m=19456,t=2,p=1$…"   # plain, argon2 or bcrypt
//!     disallow: false         # true: refuse even with the right password
//!     acl:                    # optional filters for this user
//!       "#": readwrite
//! auth:                       # CONNECT rules, first match decides, none matched: deny
//!   - client: "sensor-*"      # each of client / username / remote / password is optional
//!     username: ""            #   empty or "*": anything; "text*": prefix (1+ more chars)
//!     remote: "127.0.0.1:*"   #   remote is "ip:port" as the listener reports it
//!     password: "secret"      #   no wildcards in passwords
//!     allow: true             # defaults to false
//! acl:                        # topic rules, first deciding rule wins, none decided: allow
//!   - username: "*"
//!     filters:                # topic filter -> access; none: allow everything
//!       "devices/%c/#": readwrite   # %c = client id, %u = username
//!       "public/#": 1               # 0 deny, 1 readonly, 2 writeonly, 3 readwrite
//! ```
//!
//! Field by field:
//! - `auth[]`: `client`, `username`, `remote`, `password`, `allow`.
//! - `acl[]`: `client`, `username`, `remote`, `filters` (map of topic filter to access).
//! - `users.NAME`: `username` (optional, must equal `NAME`), `password`, `acl`, `disallow`.
//! - Access: `0`/`deny`, `1`/`readonly`, `2`/`writeonly`, `3`/`readwrite` (`read-only`,
//!   `ReadOnly`, … also accepted).
//!
//! Unknown fields are refused (a misspelt `usernme` must not silently widen a rule), as are
//! a `*` anywhere but the end of a criterion, invalid topic filters, duplicate filters or
//! users, unknown access levels, and strings that look like an argon2 or bcrypt hash but do
//! not parse. [`Error`] then names the file, the line and column, and what is wrong; nothing
//! is half-loaded.
//!
//! # Matching
//!
//! See [`Ledger`] for the order of evaluation and the two defaults, [`Criterion`] for
//! client / username / remote matching, and [`AclFilter`] for topics. Differences from mochi:
//! - Passwords may be argon2 or bcrypt hashes (make one with `cargo run -p moco-auth
//!   --example hash -- PASSWORD [--bcrypt]` or [`hash_password`]); plain ones are compared in
//!   constant time. Passwords are never wildcards.
//! - `%c` and `%u` in ACL filters expand to the client id and username, so `devices/%c/#`
//!   needs one rule, not one per device. **A client id or username that is empty, contains
//!   `/`, `+` or `#`, or starts with `$` never matches a placeholder** (otherwise client id
//!   `+` would turn `devices/%c/#` into `devices/+/#`). Mind that this also means a
//!   placeholder `Deny` filter does not cover such a client: the engine should refuse such
//!   client ids, or put the `Deny` without a placeholder.
//! - A subscription filter is allowed only if a rule filter covers all of it (`a/+` does not
//!   grant `a/#`; mochi's matcher did). Wildcards in a filter's first level never cover `$`
//!   topics. Read access is checked again for each delivered topic, as mochi and Mosquitto
//!   do, so a `Deny` inside a wider granted subscription is enforced; the check is skipped
//!   for subscriptions no rule could deny (see [`AuthHook`]).
//! - Within one rule, a covering filter that grants the access wins over a covering `Deny`
//!   (mochi's outcome, made deterministic).
//!
//! # Performance
//!
//! Rules naming an exact client id (or else an exact username) are indexed, so a check
//! against 10,000 such rules looks at a handful of candidates, in rule order.
//!
//! # `AllowAll`
//!
//! [`AllowAll`] (as a hook, [`AllowAllHook`]) lets every client connect, subscribe and
//! publish. **It is for development only: never expose a broker that uses it to a network
//! you do not fully trust, and never stack it with a [`LedgerHook`]: it would allow every
//! subscribe and publish the ledger denies.**

#![forbid(unsafe_code)]

mod filter;
mod hook;
mod ledger;
mod load;
mod password;
mod rules;
mod shared;

use std::path::PathBuf;
use std::sync::Arc;

pub use filter::{AclFilter, FilterError};
pub use hook::{AllowAllHook, AuthHook, LedgerHook};
pub use ledger::{AclRequest, AuthRequest, DecidedBy, Decision, Ledger};
pub use load::{Format, Location};
pub use password::{hash_password, HashAlgorithm, Password, PasswordKind};
pub use rules::{Access, AclRule, AuthRule, Criterion, Filters, LedgerRules, UserRule};
pub use shared::SharedLedger;

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ledger file could not be read.
    #[error("cannot read ledger file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The ledger is not valid; nothing of it was loaded.
    #[error("invalid {format} ledger {origin}{}: {message}", at(location))]
    Invalid {
        /// The file's path, or `<YAML bytes>` / `<JSON bytes>`.
        origin: String,
        /// The syntax it was read as.
        format: Format,
        /// Where the problem is, when the parser knows.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
    /// [`SharedLedger::reload`] on a ledger that was not loaded from a file.
    #[error("cannot reload: the ledger was not loaded from a file")]
    NoPath,
    /// Hashing a password failed (e.g. a bcrypt cost out of range).
    #[error("cannot hash password: {0}")]
    Hash(String),
}

fn at(location: &Option<Location>) -> String {
    match location {
        Some(l) => format!(" at line {}, column {}", l.line, l.column),
        None => String::new(),
    }
}

/// Why a CONNECT is refused, which decides the CONNACK code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The credentials were not recognised: CONNACK 0x86 *bad user name or password*
    /// (v3: 0x04).
    BadCredentials,
    /// The client is known and barred: CONNACK 0x87 *not authorized* (v3: 0x05).
    NotAuthorized,
}

/// Decides who may connect and what they may subscribe and publish.
///
/// [`AuthHook`] adapts any implementation to an engine hook.
pub trait AccessControl: Send + Sync {
    /// Whether a client may connect.
    fn authenticate(&self, req: &AuthRequest<'_>) -> bool;

    /// Whether a client may connect, and if not, why. The default refuses with
    /// [`Refusal::BadCredentials`] whenever [`authenticate`](Self::authenticate) says no.
    fn connect(&self, req: &AuthRequest<'_>) -> Result<(), Refusal> {
        if self.authenticate(req) {
            Ok(())
        } else {
            Err(Refusal::BadCredentials)
        }
    }
    /// Whether a client may subscribe to (`write == false`) or publish to a topic.
    fn acl(&self, req: &AclRequest<'_>) -> bool;

    /// Whether [`acl`](Self::acl) could refuse this client reading some topic that the
    /// subscription filter `req.topic` matches. The engine checks each delivery on a
    /// subscription only where this says yes, so it must never say no when a refusal is
    /// possible. The default, yes, checks every delivery.
    fn may_deny_read(&self, req: &AclRequest<'_>) -> bool {
        let _ = req;
        true
    }
}

impl AccessControl for Ledger {
    fn authenticate(&self, req: &AuthRequest<'_>) -> bool {
        Ledger::authenticate(self, req)
    }

    fn connect(&self, req: &AuthRequest<'_>) -> Result<(), Refusal> {
        Ledger::check_connect(self, req)
    }

    fn acl(&self, req: &AclRequest<'_>) -> bool {
        Ledger::acl(self, req)
    }

    fn may_deny_read(&self, req: &AclRequest<'_>) -> bool {
        Ledger::may_deny_read_within(self, req)
    }
}

impl<T: AccessControl + ?Sized> AccessControl for Arc<T> {
    fn authenticate(&self, req: &AuthRequest<'_>) -> bool {
        (**self).authenticate(req)
    }

    fn connect(&self, req: &AuthRequest<'_>) -> Result<(), Refusal> {
        (**self).connect(req)
    }

    fn acl(&self, req: &AclRequest<'_>) -> bool {
        (**self).acl(req)
    }

    fn may_deny_read(&self, req: &AclRequest<'_>) -> bool {
        (**self).may_deny_read(req)
    }
}

/// Allows every connection, subscription and publish.
///
/// **Development only.** With `AllowAll` anyone who can reach the listener can connect,
/// read every topic and publish anything. Never use it on a broker reachable from a network
/// you do not fully trust; use a [`Ledger`] instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl AccessControl for AllowAll {
    fn authenticate(&self, _req: &AuthRequest<'_>) -> bool {
        true
    }

    fn acl(&self, _req: &AclRequest<'_>) -> bool {
        true
    }

    fn may_deny_read(&self, _req: &AclRequest<'_>) -> bool {
        false
    }
}

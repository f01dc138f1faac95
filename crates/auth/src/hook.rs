//! The engine hooks: [`AuthHook`] adapts any [`AccessControl`] to [`moco_engine::Hook`].

use std::sync::Arc;

use moco_engine::codec::{Connect, ReasonCode};
use moco_engine::hooks::{Access, ClientInfo, Event};
use moco_engine::Hook;

use crate::ledger::{AclRequest, AuthRequest};
use crate::{AccessControl, AllowAll, Refusal, SharedLedger};

/// The hook of a server whose access is decided by the live ledger: reload it (on SIGHUP)
/// with [`SharedLedger::reload`] on the `Arc` the hook was built from.
pub type LedgerHook = AuthHook<Arc<SharedLedger>>;

/// The allow-all hook. **Development only**: anyone who can reach the listener may connect,
/// read every topic and publish anything. See [`AllowAll`].
pub type AllowAllHook = AuthHook<AllowAll>;

/// An engine [`Hook`] that lets an [`AccessControl`] decide who may connect, subscribe and
/// publish.
///
/// ```
/// use std::sync::Arc;
/// use moco_auth::{LedgerHook, SharedLedger};
/// use moco_engine::Server;
///
/// # fn main() -> Result<(), moco_auth::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("ledger.yaml");
/// # std::fs::write(&path, "auth: [{username: admin, password: secret, allow: true}]").unwrap();
/// let ledger = Arc::new(SharedLedger::from_path(&path)?);
/// let server = Server::builder().hook(LedgerHook::ledger(ledger.clone())).build();
/// // On SIGHUP: new connections, subscriptions and publishes follow the re-read file,
/// // and existing subscriptions once the engine is told.
/// ledger.reload()?;
/// server.acl_changed();
/// # drop(server);
/// # Ok(())
/// # }
/// ```
///
/// # Events
///
/// The hook provides [`Event::OnConnectAuthenticate`], [`Event::OnConnect`] and
/// [`Event::OnAclCheck`]:
///
/// - **CONNECT** is decided once, in `OnConnect`, because that is the event in which a hook
///   chooses the refusal code (the engine answers every `OnConnectAuthenticate` refusal with
///   0x86). `OnConnectAuthenticate` therefore always says yes and defers to `OnConnect`
///   (which the engine runs for every CONNECT, before or after `OnConnectAuthenticate`).
///   Unrecognised credentials get CONNACK 0x86 *bad user name or password* (v3: 0x04); a
///   client the ledger knows and bars (a `users` entry with `disallow: true` whose password
///   verified, or an `auth` rule with `allow: false` and at least one criterion) gets 0x87
///   *not authorized* (v3: 0x05). See [`AccessControl::connect`].
///   A CONNECT that completed MQTT 5 enhanced authentication (it carries an authentication
///   method) is not judged: as in the engine, the enhanced-authentication hook decides.
/// - **Subscribe and publish** go to [`AccessControl::acl`]: the subscription filter with
///   `write: false`, the PUBLISH topic (or will topic) with `write: true`.
///
/// # Stacking
///
/// The engine grants a subscribe or publish when **any** hook providing `OnAclCheck` allows
/// it. **Stacking [`AllowAllHook`] (or the engine's `AllowAll`) with a [`LedgerHook`]
/// defeats the ledger's ACL**: every subscribe and publish is then allowed. Two ledger hooks
/// likewise grant what either grants.
///
/// A CONNECT, by contrast, is refused as soon as one hook refuses it in `OnConnect`, so each
/// stacked ledger hook vetoes on its own: stacking does not open CONNECT.
///
/// # Delivery
///
/// The engine checks read access when a client subscribes (against the filter) and again
/// for each message delivered (against its topic), as mochi and Mosquitto do: a `Deny`
/// carved inside a wider granted subscription (`#` granted, `secret/#` denied in an earlier
/// rule, client subscribes to `#`) keeps `secret/…` messages from that subscriber. The
/// per-message check runs only on subscriptions some rule could deny
/// ([`AccessControl::may_deny_read`], asked once per subscription), so an allow-all ledger
/// costs nothing per message. After [`SharedLedger::reload`], call
/// `Server::acl_changed` (the `moco` binary does on SIGHUP) so that existing subscriptions
/// are judged by the new rules.
#[derive(Debug, Clone)]
pub struct AuthHook<A> {
    access: A,
    id: &'static str,
}

impl<A: AccessControl + 'static> AuthHook<A> {
    /// A hook over `access`, with the id `"auth"`.
    pub fn new(access: A) -> Self {
        Self { access, id: "auth" }
    }

    /// The same hook with another id (for logs).
    #[must_use]
    pub fn with_id(mut self, id: &'static str) -> Self {
        self.id = id;
        self
    }

    /// The access control that decides.
    pub fn access(&self) -> &A {
        &self.access
    }
}

impl AuthHook<Arc<SharedLedger>> {
    /// The ledger hook (id `"ledger"`) over a shared ledger. Keep a clone of the `Arc` to
    /// [`reload`](SharedLedger::reload) it while the server runs.
    pub fn ledger(shared: Arc<SharedLedger>) -> Self {
        Self::new(shared).with_id("ledger")
    }
}

impl AuthHook<AllowAll> {
    /// The allow-all hook (id `"allow-all"`). **Development only**: never use it on a
    /// broker reachable from a network you do not fully trust.
    pub fn allow_all() -> Self {
        Self::new(AllowAll).with_id("allow-all")
    }
}

impl<A: AccessControl + 'static> Hook for AuthHook<A> {
    fn id(&self) -> &str {
        self.id
    }

    fn provides(&self, event: Event) -> bool {
        matches!(
            event,
            Event::OnConnectAuthenticate | Event::OnConnect | Event::OnAclCheck
        )
    }

    /// Always true: the decision is taken in [`on_connect`](Hook::on_connect), where the
    /// refusal code can be chosen.
    fn on_connect_authenticate(&self, _client: &ClientInfo, _connect: &Connect) -> bool {
        true
    }

    fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        if connect.properties.authentication_method.is_some() {
            // Only reached after a completed enhanced-authentication exchange.
            return Ok(());
        }
        let req = AuthRequest {
            client_id: &client.id,
            username: client.username.as_deref(),
            password: connect.password.as_deref(),
            remote: &client.remote,
        };
        self.access.connect(&req).map_err(|r| match r {
            Refusal::BadCredentials => ReasonCode::BadUserNameOrPassword,
            Refusal::NotAuthorized => ReasonCode::NotAuthorized,
        })
    }

    fn on_acl_check(&self, client: &ClientInfo, topic: &str, access: Access) -> bool {
        self.access.acl(&AclRequest {
            client_id: &client.id,
            username: client.username.as_deref(),
            remote: &client.remote,
            topic,
            write: access == Access::Write,
        })
    }

    fn acl_may_deny_within(&self, client: &ClientInfo, filter: &str) -> bool {
        self.access.may_deny_read(&AclRequest {
            client_id: &client.id,
            username: client.username.as_deref(),
            remote: &client.remote,
            topic: filter,
            write: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;
    use moco_engine::codec::ProtocolVersion;

    fn client(id: &str, username: Option<&str>) -> ClientInfo {
        ClientInfo {
            id: id.into(),
            username: username.map(Into::into),
            remote: Arc::from("127.0.0.1:1"),
            listener: Arc::from("tcp"),
            ..ClientInfo::inline()
        }
    }

    fn connect(username: Option<&str>, password: Option<&'static [u8]>) -> Connect {
        let mut c = Connect::new(ProtocolVersion::V5, "c");
        c.username = username.map(Into::into);
        c.password = password.map(moco_engine::codec::Bytes::from_static);
        c
    }

    #[test]
    fn provides_only_the_auth_events() {
        let hook = AllowAllHook::allow_all();
        assert_eq!(hook.id(), "allow-all");
        for e in [
            Event::OnConnectAuthenticate,
            Event::OnConnect,
            Event::OnAclCheck,
        ] {
            assert!(hook.provides(e), "{e:?}");
        }
        for e in [Event::OnPublish, Event::OnSubscribe, Event::OnAuthPacket] {
            assert!(!hook.provides(e), "{e:?}");
        }
    }

    #[test]
    fn ledger_hook_maps_refusals_and_acl() {
        let shared = Arc::new(SharedLedger::new(
            Ledger::from_yaml_bytes(
                b"users: {bad: {password: pw, disallow: true}}
auth: [{username: u, password: pw, allow: true}]
acl: [{filters: {'own/%c/#': readwrite, '#': deny}}]",
            )
            .unwrap(),
        ));
        let hook = LedgerHook::ledger(shared.clone());
        assert_eq!(hook.id(), "ledger");
        let c = client("c", Some("u"));
        assert!(hook.on_connect_authenticate(&c, &connect(None, None)));
        assert_eq!(
            hook.on_connect(&c, &connect(Some("u"), Some(b"pw"))),
            Ok(())
        );
        assert_eq!(
            hook.on_connect(&c, &connect(Some("u"), Some(b"no"))),
            Err(ReasonCode::BadUserNameOrPassword)
        );
        let bad = client("c", Some("bad"));
        assert_eq!(
            hook.on_connect(&bad, &connect(Some("bad"), Some(b"pw"))),
            Err(ReasonCode::NotAuthorized)
        );
        // After enhanced authentication the ledger does not judge the CONNECT.
        let mut enhanced = connect(None, None);
        enhanced.properties.authentication_method = Some("SCRAM-SHA-1".into());
        assert_eq!(hook.on_connect(&c, &enhanced), Ok(()));

        assert!(hook.on_acl_check(&c, "own/c/x", Access::Write));
        assert!(hook.on_acl_check(&c, "own/c/#", Access::Read));
        assert!(!hook.on_acl_check(&c, "own/d/x", Access::Write));
        assert!(!hook.on_acl_check(&c, "#", Access::Read));

        // A store (what reload does) takes effect at once.
        shared.store(Ledger::default());
        assert!(hook.on_acl_check(&c, "own/d/x", Access::Write));
        assert_eq!(
            hook.on_connect(&c, &connect(Some("u"), Some(b"pw"))),
            Err(ReasonCode::BadUserNameOrPassword)
        );
    }
}

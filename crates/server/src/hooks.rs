//! The server's own hook: one log line per connection and disconnection. (Access control
//! is `moco_auth`'s hooks; the debug hook is the engine's.)

use moco_engine::codec::{Connect, ReasonCode};
use moco_engine::hooks::DisconnectInfo;
use moco_engine::{ClientInfo, Event, Hook};
use tracing::info;

/// Logs every connection and disconnection at `info`, with client id, remote address,
/// protocol version and reason.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionLog;

impl Hook for ConnectionLog {
    fn id(&self) -> &str {
        "connection-log"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnConnect | Event::OnDisconnect)
    }

    fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        info!(
            client = %client.id,
            remote = %client.remote,
            listener = %client.listener,
            protocol = %client.protocol,
            username = client.username.as_deref().unwrap_or(""),
            clean_start = connect.clean_start,
            keep_alive = connect.keep_alive,
            "client connected"
        );
        Ok(())
    }

    fn on_disconnect(&self, client: &ClientInfo, d: DisconnectInfo) {
        info!(
            client = %client.id,
            remote = %client.remote,
            listener = %client.listener,
            protocol = %client.protocol,
            reason = %d.reason,
            session_ends = d.session_ends,
            "client disconnected"
        );
    }
}

/// Wraps an access-control hook (e.g. `moco_auth::LedgerHook`) so that a refused CONNECT is
/// logged at `info` with client id, remote address, protocol version and reason code.
///
/// Only the three access-control events are passed on (authenticate, connect, ACL check);
/// the wrapped hook must provide nothing else (`moco_auth`'s hooks do not; a test checks).
#[derive(Debug)]
pub struct LoggedAuth<H>(pub H);

/// The events [`LoggedAuth`] passes on.
pub const AUTH_EVENTS: [Event; 3] = [
    Event::OnConnectAuthenticate,
    Event::OnConnect,
    Event::OnAclCheck,
];

impl<H: Hook> Hook for LoggedAuth<H> {
    fn id(&self) -> &str {
        self.0.id()
    }

    fn provides(&self, event: Event) -> bool {
        AUTH_EVENTS.contains(&event) && self.0.provides(event)
    }

    fn on_connect_authenticate(&self, client: &ClientInfo, connect: &Connect) -> bool {
        let ok = self.0.on_connect_authenticate(client, connect);
        if !ok {
            refused(client, ReasonCode::BadUserNameOrPassword);
        }
        ok
    }

    fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        self.0
            .on_connect(client, connect)
            .inspect_err(|&code| refused(client, code))
    }

    fn on_acl_check(&self, client: &ClientInfo, topic: &str, access: moco_engine::Access) -> bool {
        self.0.on_acl_check(client, topic, access)
    }

    fn acl_may_deny_within(&self, client: &ClientInfo, filter: &str) -> bool {
        self.0.acl_may_deny_within(client, filter)
    }
}

fn refused(client: &ClientInfo, reason: ReasonCode) {
    info!(
        client = %client.id,
        remote = %client.remote,
        listener = %client.listener,
        protocol = %client.protocol,
        username = client.username.as_deref().unwrap_or(""),
        reason = %reason,
        "client refused"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn auth_hooks_provide_only_what_logged_auth_passes_on() {
        let ledger = Arc::new(moco_auth::SharedLedger::new(moco_auth::Ledger::default()));
        let hook = moco_auth::LedgerHook::ledger(ledger);
        for e in moco_engine::hooks::ALL_EVENTS {
            assert_eq!(
                hook.provides(e),
                AUTH_EVENTS.contains(&e),
                "{e:?}: LoggedAuth must pass on every event of the auth hook"
            );
        }
    }
}

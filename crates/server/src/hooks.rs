//! The server's own hooks: one log line per connect and disconnect, and the adapter that puts a `moco_auth` access control (allow-all or a ledger) in front of the
//! engine.

use std::sync::Arc;

use moco_auth::{AccessControl, AclRequest, AuthRequest};
use moco_engine::codec::{Connect, ReasonCode};
use moco_engine::hooks::DisconnectInfo;
use moco_engine::{Access, ClientInfo, Event, Hook};
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

/// Puts an [`AccessControl`] (e.g. `moco_auth::SharedLedger`) in front of the engine: it
/// decides every CONNECT, subscribe and publish.
#[derive(Debug)]
pub struct AccessHook<A> {
    access: Arc<A>,
}

impl<A> AccessHook<A> {
    /// An adapter over `access`.
    pub fn new(access: Arc<A>) -> Self {
        Self { access }
    }
}

impl<A: AccessControl + 'static> Hook for AccessHook<A> {
    fn id(&self) -> &str {
        "auth"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnConnectAuthenticate | Event::OnAclCheck)
    }

    fn on_connect_authenticate(&self, client: &ClientInfo, connect: &Connect) -> bool {
        self.access.authenticate(&AuthRequest {
            client_id: &client.id,
            username: connect.username.as_deref(),
            password: connect.password.as_deref(),
            remote: &client.remote,
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
}

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

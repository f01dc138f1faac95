//! Helpers shared by moco's integration tests (`crates/*/tests`): an engine [`Server`] on an
//! ephemeral loopback port, a hand-driven client over a raw socket (async [`Raw`] and blocking
//! [`blocking::Client`]), packet builders, and rumqttc clients whose event loops run in tasks.
//! Every wait is bounded by [`WAIT`].
//!
//! Not published: only the workspace's tests depend on it.

use std::net::SocketAddr;
use std::time::Duration;

use moco_codec::{Packet, ReasonCode};
use moco_engine::{AllowAll, Capabilities, Options, Server};

pub mod blocking;
mod clients;
pub mod pki;
mod raw;
pub mod stream;

pub use clients::{try_v4, v4, v4_opts, v5, v5_bare, v5_opts, V5Bare, V4, V5};
pub use raw::{connect_packet, publish, subscribe, Raw};

/// Bound on any wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Adds a TCP listener `tcp` on 127.0.0.1 port 0 to `server` (built with whatever options and
/// hooks the test wants), starts serving, and returns the server with the listener's address.
pub async fn serve(mut server: Server) -> (Server, SocketAddr) {
    let l = moco_transport::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    server.add_listener("tcp", l);
    server.serve();
    (server, addr)
}

/// Starts a server with [`AllowAll`] and `options` on an ephemeral loopback port.
pub async fn start(options: Options) -> (Server, SocketAddr) {
    serve(Server::builder().options(options).hook(AllowAll).build()).await
}

/// Starts a server with [`AllowAll`] and `capabilities` (every other option default) on an
/// ephemeral loopback port.
pub async fn start_with(capabilities: Capabilities) -> (Server, SocketAddr) {
    start(Options {
        capabilities,
        ..Default::default()
    })
    .await
}

/// Starts a server with `capabilities` ([`start_with`]), connects v5 client `id`
/// ([`Raw::v5`]), sends `packets`, and returns how the server ended the connection
/// ([`Raw::disconnect_reason`]) once the server is shut down.
pub async fn disconnect_reason_after(
    capabilities: Capabilities,
    id: &str,
    packets: impl IntoIterator<Item = Packet>,
) -> Option<ReasonCode> {
    let (server, addr) = start_with(capabilities).await;
    let mut r = Raw::v5(addr, id).await;
    for p in packets {
        r.send(p).await;
    }
    let reason = r.disconnect_reason().await;
    server.shutdown().await;
    reason
}

/// How many messages `server`'s broker has dropped so far (its `messages_dropped` counter).
pub fn messages_dropped(server: &Server) -> u64 {
    server
        .broker()
        .info
        .messages_dropped
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// How many clients `server`'s broker counts as connected (its `clients_connected` counter).
pub fn clients_connected(server: &Server) -> u64 {
    server
        .broker()
        .info
        .clients_connected
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until the broker has seen client `id`'s connection close: polls every 10 ms, at most
/// `tries` times, and returns either way (what the test does next tells). Panics if the broker
/// knows no client `id`.
pub async fn wait_disconnected(server: &Server, id: &str, tries: usize) {
    for _ in 0..tries {
        if !server
            .broker()
            .client(id)
            .unwrap()
            .state
            .lock()
            .is_connected()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

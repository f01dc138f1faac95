//! Helpers shared by moco's integration tests (`crates/*/tests`): an engine [`Server`] on an
//! ephemeral loopback port, a hand-driven client over a raw socket (async [`Raw`] and blocking
//! [`blocking::Client`]), packet builders, and rumqttc clients whose event loops run in tasks.
//! Every wait is bounded by [`WAIT`].
//!
//! Not published: only the workspace's tests depend on it.

use std::net::SocketAddr;
use std::time::Duration;

use moco_engine::{AllowAll, Options, Server};

pub mod blocking;
mod clients;
mod raw;

pub use clients::{try_v4, v4, v4_opts, v5, v5_bare, v5_opts, V5Bare, V4, V5};
pub use raw::{connect_packet, publish, subscribe, Raw};

/// Bound on any wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Adds a TCP listener `tcp` on 127.0.0.1 port 0 to `server` (built with whatever options and
/// hooks the test wants), starts serving, and returns the server with the listener's address.
pub async fn serve(mut server: Server) -> (Server, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.add_tcp_listener("tcp", l).unwrap();
    server.serve();
    (server, addr)
}

/// Starts a server with [`AllowAll`] and `options` on an ephemeral loopback port.
pub async fn start(options: Options) -> (Server, SocketAddr) {
    serve(Server::builder().options(options).hook(AllowAll).build()).await
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

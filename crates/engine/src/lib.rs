//! The moco broker engine: sessions, QoS flows, routing, retained messages, wills, hooks, and
//! a tokio driver that serves MQTT v3.0 / v3.1.1 / v5 over any `AsyncRead + AsyncWrite`.
//!
//! * [`state::ClientState`] is the sans-IO protocol state machine of one client.
//! * [`Broker`] is the synchronous core shared by all connections (registry, sessions,
//!   routing through the [`Router`] seam, retained messages, wills, `$SYS`).
//! * [`driver::run_connection`] drives one connection; [`Server`] adds listeners and the
//!   housekeeping task.
//! * [`Hook`] is how authentication, authorization and every other extension plug in. The
//!   engine denies every CONNECT, subscribe and publish unless a hook allows it
//!   ([`AllowAll`] allows everything). [`DebugHook`] logs the packet flow.
//! * [`sys`] holds the `$SYS` counters and topics; [`store`] restores what a storage hook
//!   kept.

pub mod broker;
mod debug_hook;
pub mod driver;
mod error;
pub mod handshake;
pub mod hooks;
pub mod listener;
pub mod message;
pub mod options;
pub mod records;
pub mod registry;
pub mod retained;
pub mod router;
mod server;
#[cfg(test)]
mod sim;
pub mod sink;
pub mod state;
pub mod store;
pub mod sys;

pub use broker::{
    flow, Broker, ClientDetail, ClientHandle, ClientSnapshot, ConnectOutcome, InlineHandler,
    RetainedPage, Seams, SubscriptionSnapshot,
};
pub use debug_hook::{DebugHook, DebugOptions};
pub use driver::{inject_packet, run_connection};
pub use error::{CloseReason, Error, PolicyRefusal, ProtocolViolation};
pub use hooks::{Access, AllowAll, ClientInfo, Event, EventSet, Hook, HookError, Hooks};
pub use listener::{
    Connection, Established, Listener, ListenerKind, Origin, Peer, RemoteAddr, Shared, TlsIdentity,
};
pub use options::{Capabilities, Compatibilities, Options};
pub use registry::{LocalRegistry, SessionRegistry};
pub use retained::{LocalRetained, RetainedStore};
pub use router::{LocalRouter, Router, Target};
pub use server::{Server, ServerBuilder};
pub use sink::{Durable, SessionEvent, SessionSink};

pub use store::Restored;
pub use sys::{SysInfo, SysSnapshot};

pub use moco_codec as codec;
pub use moco_topic as topic;

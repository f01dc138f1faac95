//! [`DebugHook`]: logs the packet flow and the client lifecycle through `tracing`
//! (mochi's debug hook). Events are logged at DEBUG level under the target `moco::debug`, so
//! `RUST_LOG=moco::debug=debug` shows them.

use moco_codec::{Connect, Packet, PacketType, Publish, ReasonCode, Subscribe, Unsubscribe};
use tracing::debug;

use crate::hooks::{ClientInfo, DisconnectInfo, Event, Hook, HookError};
use crate::message::Will;
use crate::options::Options;

/// What [`DebugHook`] shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugOptions {
    /// Log whole packets (payloads included), not only their types.
    pub show_packet_data: bool,
    /// Log PINGREQ / PINGRESP too.
    pub show_pings: bool,
    /// Log passwords of CONNECT packets (otherwise they are masked).
    pub show_passwords: bool,
}

/// Logs every packet read and written and the lifecycle events of clients.
#[derive(Debug, Clone, Default)]
pub struct DebugHook {
    options: DebugOptions,
}

impl DebugHook {
    /// A debug hook with these options.
    pub fn new(options: DebugOptions) -> Self {
        DebugHook { options }
    }

    fn packet(&self, dir: &'static str, client: &ClientInfo, packet: &Packet) {
        let t = packet.packet_type();
        if !self.options.show_pings && matches!(t, PacketType::PingReq | PacketType::PingResp) {
            return;
        }
        if self.options.show_packet_data {
            match packet {
                Packet::Connect(c) if !self.options.show_passwords && c.password.is_some() => {
                    let mut c = c.clone();
                    c.password = Some(bytes::Bytes::from_static(b"********"));
                    debug!(target: "moco::debug", client = %client.id, packet = ?c, "{dir}");
                }
                p => debug!(target: "moco::debug", client = %client.id, packet = ?p, "{dir}"),
            }
        } else {
            debug!(target: "moco::debug", client = %client.id, packet = %t, "{dir}");
        }
    }
}

impl Hook for DebugHook {
    fn id(&self) -> &str {
        "debug"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(
            event,
            Event::OnStarted
                | Event::OnStopped
                | Event::OnConnect
                | Event::OnSessionEstablished
                | Event::OnDisconnect
                | Event::OnPacketRead
                | Event::OnPacketEncode
                | Event::OnSubscribed
                | Event::OnUnsubscribed
                | Event::OnPublished
                | Event::OnWillSent
                | Event::OnClientExpired
                | Event::OnRetainedExpired
        )
    }

    fn init(&self, _options: &Options) -> Result<(), HookError> {
        debug!(target: "moco::debug", options = ?self.options, "debug hook ready");
        Ok(())
    }

    fn on_started(&self) {
        debug!(target: "moco::debug", "server started");
    }

    fn on_stopped(&self) {
        debug!(target: "moco::debug", "server stopped");
    }

    fn on_connect(&self, client: &ClientInfo, connect: &Connect) -> Result<(), ReasonCode> {
        debug!(target: "moco::debug", client = %client.id, remote = %client.remote,
            listener = %client.listener, version = %connect.protocol, "connect");
        Ok(())
    }

    fn on_session_established(&self, client: &ClientInfo, connect: &Connect) {
        debug!(target: "moco::debug", client = %client.id, clean_start = connect.clean_start,
            "session established");
    }

    fn on_disconnect(&self, client: &ClientInfo, info: DisconnectInfo) {
        debug!(target: "moco::debug", client = %client.id, reason = ?info.reason,
            session_ends = info.session_ends, "disconnected");
    }

    fn on_packet_read(&self, client: &ClientInfo, packet: &mut Packet) -> Result<(), ReasonCode> {
        self.packet("read", client, packet);
        Ok(())
    }

    fn on_packet_encode(&self, client: &ClientInfo, packet: &mut Packet) {
        self.packet("write", client, packet);
    }

    fn on_subscribed(&self, client: &ClientInfo, subscribe: &Subscribe, codes: &[ReasonCode]) {
        let filters: Vec<&str> = subscribe.filters.iter().map(|(f, _)| &**f).collect();
        debug!(target: "moco::debug", client = %client.id, ?filters, ?codes, "subscribed");
    }

    fn on_unsubscribed(&self, client: &ClientInfo, unsubscribe: &Unsubscribe) {
        debug!(target: "moco::debug", client = %client.id, filters = ?unsubscribe.filters,
            "unsubscribed");
    }

    fn on_published(&self, client: &ClientInfo, publish: &Publish, subscribers: usize) {
        debug!(target: "moco::debug", client = %client.id, topic = %publish.topic,
            qos = publish.qos as u8, bytes = publish.payload.len(), subscribers, "published");
    }

    fn on_will_sent(&self, client_id: &str, will: &Will) {
        debug!(target: "moco::debug", client = client_id, topic = %will.topic, "will sent");
    }

    fn on_client_expired(&self, client_id: &str) {
        debug!(target: "moco::debug", client = client_id, "session expired");
    }

    fn on_retained_expired(&self, topic: &str) {
        debug!(target: "moco::debug", topic, "retained message expired");
    }
}

//! Broker options: the same knobs and defaults as mochi-mqtt's `Options`, `Capabilities` and
//! `Compatibilities`, plus a maximum keep-alive and a CONNECT timeout.
//!
//! Every struct implements [`Default`], so a partial set of options is written as
//! `Options { capabilities: Capabilities { maximum_qos: 1, ..Default::default() }, ..Default::default() }`.
//! [`Options::normalized`] turns values that would make no sense (a zero receive maximum, a zero
//! maximum inflight, ...) back into their defaults: a zero never silently means "reject everyone".
//!
//! With the `serde` feature the three structs are `Serialize` and `Deserialize` in the form
//! of moco's configuration file (the `options:` section), so the server reads them directly
//! instead of mirroring them: every field is optional (its default comes from [`Default`]),
//! an unknown field is an error, a section written empty (YAML's null) is its default,
//! booleans of [`Capabilities`] and [`Compatibilities`] also take `0`/`1` (as mochi's files
//! write them), durations are whole seconds, and the share strategy is `round_robin`,
//! `random` or `sticky_by_publisher`.

use std::time::Duration;

/// What the broker offers to clients; advertised in CONNACK where MQTT 5 allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Capabilities {
    /// Maximum number of connected clients; CONNECT beyond it gets 0x97 (quota exceeded).
    /// `0` means no limit. Default: no limit.
    pub maximum_clients: u64,
    /// Cap, in seconds, on a message's expiry interval; also applied to messages without one.
    /// `0` means no cap. Default: 86 400 (one day).
    pub maximum_message_expiry_interval: u32,
    /// Maximum number of live messages queued for one client (its bounded outbound queue,
    /// also the offline queue of a persistent session), like Mosquitto's
    /// `max_queued_messages`. QoS 1/2 messages beyond the client's receive maximum wait here.
    /// When it is full, a message for a connected client is dropped (any QoS; the client is
    /// not disconnected) and, for a client that is away, the oldest queued message makes
    /// room; each drop calls `OnPublishDropped` and counts in `$SYS` messages dropped.
    /// Retained messages sent on SUBSCRIBE are not limited by it: they are fed to the client
    /// with flow control (see [`crate::state`]). Default: 8192.
    pub maximum_client_writes_pending: u32,
    /// Cap, in seconds, on the session expiry interval a client asks for; advertised in
    /// CONNACK when it lowers the client's value. Default: `u32::MAX` (no cap).
    pub maximum_session_expiry_interval: u32,
    /// Maximum packet size the broker accepts, in bytes; `0` means no limit (the protocol's
    /// 268 435 460). Advertised in CONNACK when set. Default: 0.
    pub maximum_packet_size: u32,
    /// Receive maximum: QoS 1/2 publishes a client may have unacknowledged towards the broker.
    /// Advertised in CONNACK. Default: 1024.
    pub receive_maximum: u16,
    /// Maximum number of QoS 1/2 messages in flight from the broker to one client (further
    /// capped by the client's receive maximum). Default: 8192.
    pub maximum_inflight: u16,
    /// Highest topic alias a client may use towards the broker; `0` disables inbound aliases.
    /// Default: 65 535.
    pub topic_alias_maximum: u16,
    /// Whether shared subscriptions (`$share/…`) are available. Default: true.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub shared_sub_available: bool,
    /// How a shared subscription group picks the member that gets a message: round robin
    /// (default), random, or sticky by publisher.
    pub shared_sub_strategy: moco_topic::ShareStrategy,
    /// Lowest protocol level accepted (3 = v3.0, 4 = v3.1.1, 5 = v5). Default: 3.
    pub minimum_protocol_version: u8,
    /// Highest QoS the broker accepts and grants (0, 1 or 2). Default: 2.
    pub maximum_qos: u8,
    /// Whether retained messages are available. Default: true.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub retain_available: bool,
    /// Whether wildcard subscriptions are available. Default: true.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub wildcard_sub_available: bool,
    /// Whether subscription identifiers are available. Default: true.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub sub_id_available: bool,
    /// Highest keep-alive, in seconds, a client may ask for. A client asking for more (or for
    /// none) is held to this value: closed after 1.5 times it without a packet. A v5 client is
    /// told it as the server keep-alive in CONNACK; a v3 client cannot be told and is held to
    /// it all the same, as Mosquitto's `max_keepalive` does (or refused, with
    /// [`Compatibilities::refuse_v3_keep_alive_above_maximum`]). `0` means no cap. Default: 0
    /// (as mochi).
    pub maximum_keep_alive: u16,
    /// Compatibility switches.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::null_is_default"))]
    pub compatibilities: Compatibilities,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            maximum_clients: 0,
            maximum_message_expiry_interval: 60 * 60 * 24,
            maximum_client_writes_pending: 1024 * 8,
            maximum_session_expiry_interval: u32::MAX,
            maximum_packet_size: 0,
            receive_maximum: 1024,
            maximum_inflight: 1024 * 8,
            topic_alias_maximum: u16::MAX,
            shared_sub_available: true,
            shared_sub_strategy: moco_topic::ShareStrategy::RoundRobin,
            minimum_protocol_version: 3,
            maximum_qos: 2,
            retain_available: true,
            wildcard_sub_available: true,
            sub_id_available: true,
            maximum_keep_alive: 0,
            compatibilities: Compatibilities::default(),
        }
    }
}

/// Compatibility switches, all off by default (as mochi).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Compatibilities {
    /// Answer "unspecified error" (0x80) instead of "not authorized" (0x87).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub obscure_not_authorized: bool,
    /// Refuse a v3 client whose keep-alive is above [`Capabilities::maximum_keep_alive`] (or
    /// 0, no keep-alive) with return code 2, identifier rejected, instead of holding it to the
    /// maximum. Off by default: v3 cannot be told a server keep-alive, and refusing made v3
    /// libraries that default to keep-alive 0 unable to connect at all.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub refuse_v3_keep_alive_above_maximum: bool,
    /// After sending a server DISCONNECT, leave closing the connection to the client.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub passive_client_disconnect: bool,
    /// Return response information in CONNACK even when the client did not ask for it.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub always_return_response_info: bool,
    /// Restore `$SYS` counters from storage on restart (used by the storage hook).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub restore_sys_info_on_restart: bool,
    /// Do not copy the user properties of a client's PUBLISH onto its PUBACK / PUBREC (nor
    /// those of its PUBREC onto the PUBREL, of its PUBREL onto the PUBCOMP). Off by default,
    /// as in mochi, whose acknowledgements inherit the packet's properties (only user
    /// properties are valid in an acknowledgement; none are copied where they would exceed
    /// the client's maximum packet size). Set it for clients that do not expect them (mochi
    /// sets it for the paho test suite).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::flag"))]
    pub no_inherited_properties_on_ack: bool,
}

/// All broker options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Options {
    /// Features and limits offered to clients.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "forms::null_is_default"))]
    pub capabilities: Capabilities,
    /// Size of each connection's write buffer, in bytes (a starting size, grown on demand).
    /// Default: 2048.
    pub client_net_write_buffer_size: usize,
    /// Size of each connection's read buffer, in bytes (a starting size, grown on demand).
    /// Default: 2048.
    pub client_net_read_buffer_size: usize,
    /// Interval between `$SYS` topic updates. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "forms::seconds"))]
    pub sys_topic_resend_interval: Duration,
    /// Whether the inline client (publish/subscribe from the embedding program) is enabled.
    /// Default: false.
    pub inline_client: bool,
    /// How long a new connection may take to send CONNECT before it is closed. Default: 10 s.
    #[cfg_attr(feature = "serde", serde(with = "forms::seconds"))]
    pub connect_timeout: Duration,
    /// Text sent as response information when a v5 client asks for it (or always, with
    /// [`Compatibilities::always_return_response_info`]). Default: `"response"`.
    pub response_information: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            capabilities: Capabilities::default(),
            client_net_write_buffer_size: 1024 * 2,
            client_net_read_buffer_size: 1024 * 2,
            sys_topic_resend_interval: Duration::from_secs(1),
            inline_client: false,
            connect_timeout: Duration::from_secs(10),
            response_information: "response".to_owned(),
        }
    }
}

impl Options {
    /// Returns these options with nonsensical zeros replaced by defaults: receive maximum,
    /// maximum inflight, pending writes, buffer sizes, `$SYS` interval and CONNECT timeout;
    /// maximum QoS is clamped to 2 and the minimum protocol version to 3..=5.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        let d = Options::default();
        let c = &mut self.capabilities;
        if c.receive_maximum == 0 {
            c.receive_maximum = d.capabilities.receive_maximum;
        }
        if c.maximum_inflight == 0 {
            c.maximum_inflight = d.capabilities.maximum_inflight;
        }
        if c.maximum_client_writes_pending == 0 {
            c.maximum_client_writes_pending = d.capabilities.maximum_client_writes_pending;
        }
        c.maximum_qos = c.maximum_qos.min(2);
        c.minimum_protocol_version = c.minimum_protocol_version.clamp(3, 5);
        if self.client_net_read_buffer_size == 0 {
            self.client_net_read_buffer_size = d.client_net_read_buffer_size;
        }
        if self.client_net_write_buffer_size == 0 {
            self.client_net_write_buffer_size = d.client_net_write_buffer_size;
        }
        if self.sys_topic_resend_interval.is_zero() {
            self.sys_topic_resend_interval = d.sys_topic_resend_interval;
        }
        if self.connect_timeout.is_zero() {
            self.connect_timeout = d.connect_timeout;
        }
        self
    }
}

/// The value forms of the configuration file that plain derives do not give.
#[cfg(feature = "serde")]
mod forms {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serializer};

    /// A section written with nothing under it (YAML's null, e.g. every line commented out)
    /// means the defaults, as if it were left out.
    pub(super) fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// A boolean written `true`/`false` or `1`/`0`.
    pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, 1 or 0")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
                match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
                match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }

    /// A duration as a whole number of seconds. Serializing one with a fraction of a second
    /// is an error rather than a silent rounding.
    pub(super) mod seconds {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(
            d: &Duration,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            if d.subsec_nanos() != 0 {
                return Err(serde::ser::Error::custom(format_args!(
                    "{d:?} is not a whole number of seconds"
                )));
            }
            s.serialize_u64(d.as_secs())
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Duration, D::Error> {
            u64::deserialize(d).map(Duration::from_secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_mochi() {
        let o = Options::default();
        let c = &o.capabilities;
        assert_eq!(c.maximum_message_expiry_interval, 86_400);
        assert_eq!(c.maximum_client_writes_pending, 8192);
        assert_eq!(c.maximum_session_expiry_interval, u32::MAX);
        assert_eq!(c.receive_maximum, 1024);
        assert_eq!(c.maximum_inflight, 8192);
        assert_eq!(c.topic_alias_maximum, u16::MAX);
        assert_eq!(c.maximum_qos, 2);
        assert_eq!(c.minimum_protocol_version, 3);
        assert!(c.shared_sub_available && c.retain_available);
        assert!(c.wildcard_sub_available && c.sub_id_available);
        assert_eq!(o.client_net_read_buffer_size, 2048);
        assert_eq!(o.sys_topic_resend_interval, Duration::from_secs(1));
    }

    #[test]
    fn partial_options_merge_and_zeros_normalize() {
        let o = Options {
            capabilities: Capabilities {
                receive_maximum: 0,
                maximum_qos: 7,
                maximum_inflight: 5,
                ..Default::default()
            },
            connect_timeout: Duration::ZERO,
            ..Default::default()
        }
        .normalized();
        assert_eq!(o.capabilities.receive_maximum, 1024);
        assert_eq!(o.capabilities.maximum_qos, 2);
        assert_eq!(o.capabilities.maximum_inflight, 5);
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.capabilities.maximum_message_expiry_interval, 86_400);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_forms_round_trip() {
        let o: Options = serde_json::from_str("{}").unwrap();
        assert_eq!(o, Options::default());
        let o: Options = serde_json::from_str(
            r#"{"capabilities": {"retain_available": 0, "shared_sub_strategy": "sticky_by_publisher",
                "compatibilities": null}, "connect_timeout": 3}"#,
        )
        .unwrap();
        assert!(!o.capabilities.retain_available);
        assert_eq!(
            o.capabilities.shared_sub_strategy,
            moco_topic::ShareStrategy::StickyByPublisher
        );
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.contains(r#""connect_timeout":3"#), "{text}");
        assert_eq!(serde_json::from_str::<Options>(&text).unwrap(), o);
        let e = serde_json::from_str::<Options>(r#"{"inline": true}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `inline`"), "{e}");
        let e = serde_json::from_str::<Compatibilities>(r#"{"obscure_not_authorized": 2}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("expected true, false, 1 or 0"),
            "{e}"
        );
        let half = Options {
            connect_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        assert!(serde_json::to_string(&half).is_err());
    }
}

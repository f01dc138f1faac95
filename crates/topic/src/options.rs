//! Subscription options kept with each entry of the trie (MQTT 5 §3.8.3.1).

use std::num::NonZeroU32;

/// When retained messages are sent for a new subscription (MQTT 5 §3.8.3.1, bits 4-5).
///
/// The trie only stores it; the engine acts on it when it handles SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send retained messages only if the subscription did not exist before.
    SendIfNew,
    /// 2: never send retained messages for this subscription.
    DoNotSend,
}

impl RetainHandling {
    /// The option's value on the wire (0, 1 or 2).
    pub fn as_u8(self) -> u8 {
        match self {
            RetainHandling::SendAtSubscribe => 0,
            RetainHandling::SendIfNew => 1,
            RetainHandling::DoNotSend => 2,
        }
    }

    /// From the value on the wire; `None` for the reserved value 3 and above.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(RetainHandling::SendAtSubscribe),
            1 => Some(RetainHandling::SendIfNew),
            2 => Some(RetainHandling::DoNotSend),
            _ => None,
        }
    }
}

/// The options of one subscription, as the trie stores them (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS granted, 0..=2.
    pub qos: u8,
    /// Do not deliver the client's own publishes to it (never set on shared subscriptions,
    /// MQTT-3.8.3-4; the trie ignores it there).
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded publishes as published instead of clearing it.
    pub retain_as_published: bool,
    /// When retained messages are sent for this subscription.
    pub retain_handling: RetainHandling,
    /// The subscription identifier carried by the SUBSCRIBE, if any (1..=268,435,455).
    pub identifier: Option<NonZeroU32>,
}

impl SubscriptionOptions {
    /// Options with this QoS and everything else at its default (an MQTT 3 subscription).
    pub fn with_qos(qos: u8) -> Self {
        SubscriptionOptions {
            qos,
            ..Self::default()
        }
    }
}

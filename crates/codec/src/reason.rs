//! MQTT v5 reason codes (spec §2.4) and the v3.x return-code mappings.

use crate::{DecodeError, PacketType};

macro_rules! reason_codes {
    ($( $(#[$m:meta])* $name:ident = $val:literal, $text:literal, )*) => {
        /// Every MQTT v5 reason code (spec §2.4, table 2-6).
        ///
        /// Codes that share the value `0x00` are available as associated constants:
        /// [`ReasonCode::NormalDisconnection`] and [`ReasonCode::GrantedQoS0`] are both
        /// [`ReasonCode::Success`]. Codes `>= 0x80` are errors ([`ReasonCode::is_error`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(u8)]
        pub enum ReasonCode {
            $( $(#[$m])* $name = $val, )*
        }

        impl TryFrom<u8> for ReasonCode {
            type Error = DecodeError;

            #[inline]
            fn try_from(v: u8) -> Result<Self, DecodeError> {
                match v {
                    $( $val => Ok(ReasonCode::$name), )*
                    _ => Err(DecodeError::Malformed("unknown reason code")),
                }
            }
        }

        impl ReasonCode {
            /// Every reason code, in ascending order of value.
            pub const ALL: &'static [ReasonCode] = &[ $( ReasonCode::$name, )* ];

            /// The spec's name for this code in lower case (table 2-6), short enough to send
            /// as a v5 Reason String so a peer's log says why without a code table.
            pub const fn description(self) -> &'static str {
                match self { $( ReasonCode::$name => $text, )* }
            }
        }
    };
}

reason_codes! {
    /// 0x00 Success (also Normal disconnection, Granted QoS 0).
    #[default]
    Success = 0x00, "success",
    /// 0x01 Granted QoS 1.
    GrantedQoS1 = 0x01, "granted QoS 1",
    /// 0x02 Granted QoS 2.
    GrantedQoS2 = 0x02, "granted QoS 2",
    /// 0x04 Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04, "disconnect with will message",
    /// 0x10 No matching subscribers.
    NoMatchingSubscribers = 0x10, "no matching subscribers",
    /// 0x11 No subscription existed.
    NoSubscriptionExisted = 0x11, "no subscription existed",
    /// 0x18 Continue authentication.
    ContinueAuthentication = 0x18, "continue authentication",
    /// 0x19 Re-authenticate.
    ReAuthenticate = 0x19, "re-authenticate",
    /// 0x80 Unspecified error.
    UnspecifiedError = 0x80, "unspecified error",
    /// 0x81 Malformed Packet.
    MalformedPacket = 0x81, "malformed packet",
    /// 0x82 Protocol Error.
    ProtocolError = 0x82, "protocol error",
    /// 0x83 Implementation specific error.
    ImplementationSpecificError = 0x83, "implementation specific error",
    /// 0x84 Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84, "unsupported protocol version",
    /// 0x85 Client Identifier not valid.
    ClientIdentifierNotValid = 0x85, "client identifier not valid",
    /// 0x86 Bad User Name or Password.
    BadUserNameOrPassword = 0x86, "bad user name or password",
    /// 0x87 Not authorized.
    NotAuthorized = 0x87, "not authorized",
    /// 0x88 Server unavailable.
    ServerUnavailable = 0x88, "server unavailable",
    /// 0x89 Server busy.
    ServerBusy = 0x89, "server busy",
    /// 0x8A Banned.
    Banned = 0x8A, "banned",
    /// 0x8B Server shutting down.
    ServerShuttingDown = 0x8B, "server shutting down",
    /// 0x8C Bad authentication method.
    BadAuthenticationMethod = 0x8C, "bad authentication method",
    /// 0x8D Keep Alive timeout.
    KeepAliveTimeout = 0x8D, "keep alive timeout",
    /// 0x8E Session taken over.
    SessionTakenOver = 0x8E, "session taken over",
    /// 0x8F Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "topic filter invalid",
    /// 0x90 Topic Name invalid.
    TopicNameInvalid = 0x90, "topic name invalid",
    /// 0x91 Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "packet identifier in use",
    /// 0x92 Packet Identifier not found.
    PacketIdentifierNotFound = 0x92, "packet identifier not found",
    /// 0x93 Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93, "receive maximum exceeded",
    /// 0x94 Topic Alias invalid.
    TopicAliasInvalid = 0x94, "topic alias invalid",
    /// 0x95 Packet too large.
    PacketTooLarge = 0x95, "packet too large",
    /// 0x96 Message rate too high.
    MessageRateTooHigh = 0x96, "message rate too high",
    /// 0x97 Quota exceeded.
    QuotaExceeded = 0x97, "quota exceeded",
    /// 0x98 Administrative action.
    AdministrativeAction = 0x98, "administrative action",
    /// 0x99 Payload format invalid.
    PayloadFormatInvalid = 0x99, "payload format invalid",
    /// 0x9A Retain not supported.
    RetainNotSupported = 0x9A, "retain not supported",
    /// 0x9B QoS not supported.
    QoSNotSupported = 0x9B, "QoS not supported",
    /// 0x9C Use another server.
    UseAnotherServer = 0x9C, "use another server",
    /// 0x9D Server moved.
    ServerMoved = 0x9D, "server moved",
    /// 0x9E Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported",
    /// 0x9F Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "connection rate exceeded",
    /// 0xA0 Maximum connect time.
    MaximumConnectTime = 0xA0, "maximum connect time",
    /// 0xA1 Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported",
    /// 0xA2 Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported",
}

#[allow(non_upper_case_globals)]
impl ReasonCode {
    /// 0x00 Normal disconnection (DISCONNECT); the same value as [`ReasonCode::Success`].
    pub const NormalDisconnection: ReasonCode = ReasonCode::Success;
    /// 0x00 Granted QoS 0 (SUBACK); the same value as [`ReasonCode::Success`].
    pub const GrantedQoS0: ReasonCode = ReasonCode::Success;

    /// The wire value.
    #[inline]
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// True for codes `>= 0x80`, which signal failure.
    #[inline]
    pub const fn is_error(self) -> bool {
        (self as u8) >= 0x80
    }

    /// True if this code may be sent in a packet of type `packet` (spec §2.4 table 2-6).
    pub fn allowed_in(self, packet: PacketType) -> bool {
        use ReasonCode::*;
        match packet {
            PacketType::ConnAck => matches!(
                self,
                Success
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | UnsupportedProtocolVersion
                    | ClientIdentifierNotValid
                    | BadUserNameOrPassword
                    | NotAuthorized
                    | ServerUnavailable
                    | ServerBusy
                    | Banned
                    | BadAuthenticationMethod
                    | TopicNameInvalid
                    | PacketTooLarge
                    | QuotaExceeded
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QoSNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | ConnectionRateExceeded
            ),
            PacketType::PubAck | PacketType::PubRec => matches!(
                self,
                Success
                    | NoMatchingSubscribers
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicNameInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | PayloadFormatInvalid
            ),
            PacketType::PubRel | PacketType::PubComp => {
                matches!(self, Success | PacketIdentifierNotFound)
            }
            PacketType::SubAck => matches!(
                self,
                Success
                    | GrantedQoS1
                    | GrantedQoS2
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | SharedSubscriptionsNotSupported
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            PacketType::UnsubAck => matches!(
                self,
                Success
                    | NoSubscriptionExisted
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
            ),
            PacketType::Disconnect => matches!(
                self,
                Success
                    | DisconnectWithWillMessage
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | ServerBusy
                    | ServerShuttingDown
                    | KeepAliveTimeout
                    | SessionTakenOver
                    | TopicFilterInvalid
                    | TopicNameInvalid
                    | ReceiveMaximumExceeded
                    | TopicAliasInvalid
                    | PacketTooLarge
                    | MessageRateTooHigh
                    | QuotaExceeded
                    | AdministrativeAction
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QoSNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | SharedSubscriptionsNotSupported
                    | ConnectionRateExceeded
                    | MaximumConnectTime
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            PacketType::Auth => matches!(self, Success | ContinueAuthentication | ReAuthenticate),
            _ => false,
        }
    }

    /// The v3.1 / v3.1.1 CONNACK return code (0x00..=0x05) that best conveys this code.
    ///
    /// Success maps to 0x00; refusals map to 0x01 unacceptable protocol version, 0x02
    /// identifier rejected, 0x04 bad user name or password, 0x05 not authorized, and every
    /// other error to 0x03 server unavailable.
    pub const fn to_v3_connack(self) -> u8 {
        use ReasonCode::*;
        match self {
            UnsupportedProtocolVersion => 0x01,
            ClientIdentifierNotValid => 0x02,
            BadUserNameOrPassword | BadAuthenticationMethod => 0x04,
            NotAuthorized | Banned => 0x05,
            c if !c.is_error() => 0x00,
            _ => 0x03,
        }
    }

    /// The reason code for a v3.1 / v3.1.1 CONNACK return code, or `None` if reserved.
    pub const fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0x00 => ReasonCode::Success,
            0x01 => ReasonCode::UnsupportedProtocolVersion,
            0x02 => ReasonCode::ClientIdentifierNotValid,
            0x03 => ReasonCode::ServerUnavailable,
            0x04 => ReasonCode::BadUserNameOrPassword,
            0x05 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The v3.1.1 SUBACK return code: 0x00..=0x02 for granted QoS, 0x80 for any failure.
    #[inline]
    pub const fn to_v3_suback(self) -> u8 {
        if self.is_error() {
            0x80
        } else {
            self as u8
        }
    }

    /// The reason code for a v3.1.1 SUBACK return code, or `None` if reserved.
    #[inline]
    pub const fn from_v3_suback(code: u8) -> Option<ReasonCode> {
        match code {
            0x00 => Some(ReasonCode::Success),
            0x01 => Some(ReasonCode::GrantedQoS1),
            0x02 => Some(ReasonCode::GrantedQoS2),
            0x80 => Some(ReasonCode::UnspecifiedError),
            _ => None,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (0x{:02X})", self, *self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::ReasonCode;

    #[test]
    fn every_code_has_a_distinct_lower_case_description() {
        let mut seen = std::collections::HashSet::new();
        for &rc in ReasonCode::ALL {
            let text = rc.description();
            assert!(!text.is_empty(), "{rc}");
            // Only the acronym QoS keeps its capitals.
            assert_eq!(text.replace("QoS", "qos"), text.to_lowercase(), "{rc}");
            assert!(seen.insert(text), "{rc}: {text} twice");
        }
        assert_eq!(
            ReasonCode::KeepAliveTimeout.description(),
            "keep alive timeout"
        );
        assert_eq!(
            ReasonCode::QoSNotSupported.description(),
            "QoS not supported"
        );
    }
}

//! v5 property identifiers and their wire types (spec §2.2.2.2, table 2-4). Which packet
//! may carry which property is said by the property sets in `properties`, which also
//! re-exports these types.

use crate::DecodeError;

/// The wire type of a property value (spec §2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyType {
    /// One byte.
    Byte,
    /// Big-endian u16.
    TwoByteInteger,
    /// Big-endian u32.
    FourByteInteger,
    /// Variable byte integer (1..=4 bytes, max 268,435,455).
    VariableByteInteger,
    /// Length-prefixed UTF-8 string.
    Utf8String,
    /// Length-prefixed binary data.
    BinaryData,
    /// Two length-prefixed UTF-8 strings (name, value).
    Utf8StringPair,
}

macro_rules! property_ids {
    ($( $(#[$m:meta])* $name:ident = $val:literal, $ty:ident; )*) => {
        /// A v5 property identifier (spec §2.2.2.2, table 2-4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum PropertyId {
            $( $(#[$m])* $name = $val, )*
        }

        impl PropertyId {
            /// Every property identifier.
            pub const ALL: &'static [PropertyId] = &[ $( PropertyId::$name, )* ];

            /// The wire type of this property's value.
            #[inline]
            pub const fn wire_type(self) -> PropertyType {
                match self { $( PropertyId::$name => PropertyType::$ty, )* }
            }
        }

        impl TryFrom<u32> for PropertyId {
            type Error = DecodeError;

            #[inline]
            fn try_from(v: u32) -> Result<Self, DecodeError> {
                match v {
                    $( $val => Ok(PropertyId::$name), )*
                    _ => Err(DecodeError::Malformed("unknown property identifier")),
                }
            }
        }
    };
}

property_ids! {
    /// 0x01 Payload Format Indicator (byte).
    PayloadFormatIndicator = 0x01, Byte;
    /// 0x02 Message Expiry Interval (u32 seconds).
    MessageExpiryInterval = 0x02, FourByteInteger;
    /// 0x03 Content Type (string).
    ContentType = 0x03, Utf8String;
    /// 0x08 Response Topic (string).
    ResponseTopic = 0x08, Utf8String;
    /// 0x09 Correlation Data (binary).
    CorrelationData = 0x09, BinaryData;
    /// 0x0B Subscription Identifier (varint).
    SubscriptionIdentifier = 0x0B, VariableByteInteger;
    /// 0x11 Session Expiry Interval (u32 seconds).
    SessionExpiryInterval = 0x11, FourByteInteger;
    /// 0x12 Assigned Client Identifier (string).
    AssignedClientIdentifier = 0x12, Utf8String;
    /// 0x13 Server Keep Alive (u16 seconds).
    ServerKeepAlive = 0x13, TwoByteInteger;
    /// 0x15 Authentication Method (string).
    AuthenticationMethod = 0x15, Utf8String;
    /// 0x16 Authentication Data (binary).
    AuthenticationData = 0x16, BinaryData;
    /// 0x17 Request Problem Information (byte 0/1).
    RequestProblemInformation = 0x17, Byte;
    /// 0x18 Will Delay Interval (u32 seconds).
    WillDelayInterval = 0x18, FourByteInteger;
    /// 0x19 Request Response Information (byte 0/1).
    RequestResponseInformation = 0x19, Byte;
    /// 0x1A Response Information (string).
    ResponseInformation = 0x1A, Utf8String;
    /// 0x1C Server Reference (string).
    ServerReference = 0x1C, Utf8String;
    /// 0x1F Reason String (string).
    ReasonString = 0x1F, Utf8String;
    /// 0x21 Receive Maximum (u16, not 0).
    ReceiveMaximum = 0x21, TwoByteInteger;
    /// 0x22 Topic Alias Maximum (u16).
    TopicAliasMaximum = 0x22, TwoByteInteger;
    /// 0x23 Topic Alias (u16, not 0).
    TopicAlias = 0x23, TwoByteInteger;
    /// 0x24 Maximum QoS (byte 0/1).
    MaximumQoS = 0x24, Byte;
    /// 0x25 Retain Available (byte 0/1).
    RetainAvailable = 0x25, Byte;
    /// 0x26 User Property (string pair, may repeat).
    UserProperty = 0x26, Utf8StringPair;
    /// 0x27 Maximum Packet Size (u32, not 0).
    MaximumPacketSize = 0x27, FourByteInteger;
    /// 0x28 Wildcard Subscription Available (byte 0/1).
    WildcardSubscriptionAvailable = 0x28, Byte;
    /// 0x29 Subscription Identifier Available (byte 0/1).
    SubscriptionIdentifierAvailable = 0x29, Byte;
    /// 0x2A Shared Subscription Available (byte 0/1).
    SharedSubscriptionAvailable = 0x2A, Byte;
}

//! MQTT v5 properties (spec §2.2.2): identifiers, wire types, which packet may carry which
//! property, and one typed struct per packet kind.
//!
//! Every struct is `Default` (all `None` / empty), and an empty struct encodes to a single
//! `0x00` property-length byte. Decoding rejects an unknown or misplaced property with
//! 0x81 Malformed Packet and a repeated one (other than User Property, and Subscription
//! Identifier in PUBLISH) with 0x82 Protocol Error.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::wire::{self as enc, varint_len};
use crate::wire::{self, Input, PResult};
use crate::{DecodeError, EncodeError, PacketType, QoS};

/// User properties: name/value string pairs, in wire order, repeats allowed.
pub type UserProperties = Vec<(ByteString, ByteString)>;

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

// Bit masks of the packets a property may appear in: bit n = packet type n, bit 0 = will.
const WILL: u16 = 1 << 0;
const CONNECT: u16 = 1 << 1;
const CONNACK: u16 = 1 << 2;
const PUBLISH: u16 = 1 << 3;
const PUBACK: u16 = 1 << 4;
const PUBREC: u16 = 1 << 5;
const PUBREL: u16 = 1 << 6;
const PUBCOMP: u16 = 1 << 7;
const SUBSCRIBE: u16 = 1 << 8;
const SUBACK: u16 = 1 << 9;
const UNSUBSCRIBE: u16 = 1 << 10;
const UNSUBACK: u16 = 1 << 11;
const DISCONNECT: u16 = 1 << 14;
const AUTH: u16 = 1 << 15;
const ACKS: u16 = PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK;

macro_rules! property_ids {
    ($( $(#[$m:meta])* $name:ident = $val:literal, $ty:ident, $mask:expr; )*) => {
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

            #[inline]
            const fn mask(self) -> u16 {
                match self { $( PropertyId::$name => $mask, )* }
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
    PayloadFormatIndicator = 0x01, Byte, PUBLISH | WILL;
    /// 0x02 Message Expiry Interval (u32 seconds).
    MessageExpiryInterval = 0x02, FourByteInteger, PUBLISH | WILL;
    /// 0x03 Content Type (string).
    ContentType = 0x03, Utf8String, PUBLISH | WILL;
    /// 0x08 Response Topic (string).
    ResponseTopic = 0x08, Utf8String, PUBLISH | WILL;
    /// 0x09 Correlation Data (binary).
    CorrelationData = 0x09, BinaryData, PUBLISH | WILL;
    /// 0x0B Subscription Identifier (varint).
    SubscriptionIdentifier = 0x0B, VariableByteInteger, PUBLISH | SUBSCRIBE;
    /// 0x11 Session Expiry Interval (u32 seconds).
    SessionExpiryInterval = 0x11, FourByteInteger, CONNECT | CONNACK | DISCONNECT;
    /// 0x12 Assigned Client Identifier (string).
    AssignedClientIdentifier = 0x12, Utf8String, CONNACK;
    /// 0x13 Server Keep Alive (u16 seconds).
    ServerKeepAlive = 0x13, TwoByteInteger, CONNACK;
    /// 0x15 Authentication Method (string).
    AuthenticationMethod = 0x15, Utf8String, CONNECT | CONNACK | AUTH;
    /// 0x16 Authentication Data (binary).
    AuthenticationData = 0x16, BinaryData, CONNECT | CONNACK | AUTH;
    /// 0x17 Request Problem Information (byte 0/1).
    RequestProblemInformation = 0x17, Byte, CONNECT;
    /// 0x18 Will Delay Interval (u32 seconds).
    WillDelayInterval = 0x18, FourByteInteger, WILL;
    /// 0x19 Request Response Information (byte 0/1).
    RequestResponseInformation = 0x19, Byte, CONNECT;
    /// 0x1A Response Information (string).
    ResponseInformation = 0x1A, Utf8String, CONNACK;
    /// 0x1C Server Reference (string).
    ServerReference = 0x1C, Utf8String, CONNACK | DISCONNECT;
    /// 0x1F Reason String (string).
    ReasonString = 0x1F, Utf8String, CONNACK | ACKS | DISCONNECT | AUTH;
    /// 0x21 Receive Maximum (u16, not 0).
    ReceiveMaximum = 0x21, TwoByteInteger, CONNECT | CONNACK;
    /// 0x22 Topic Alias Maximum (u16).
    TopicAliasMaximum = 0x22, TwoByteInteger, CONNECT | CONNACK;
    /// 0x23 Topic Alias (u16, not 0).
    TopicAlias = 0x23, TwoByteInteger, PUBLISH;
    /// 0x24 Maximum QoS (byte 0/1).
    MaximumQoS = 0x24, Byte, CONNACK;
    /// 0x25 Retain Available (byte 0/1).
    RetainAvailable = 0x25, Byte, CONNACK;
    /// 0x26 User Property (string pair, may repeat).
    UserProperty = 0x26, Utf8StringPair,
        WILL | CONNECT | CONNACK | PUBLISH | ACKS | SUBSCRIBE | UNSUBSCRIBE | DISCONNECT | AUTH;
    /// 0x27 Maximum Packet Size (u32, not 0).
    MaximumPacketSize = 0x27, FourByteInteger, CONNECT | CONNACK;
    /// 0x28 Wildcard Subscription Available (byte 0/1).
    WildcardSubscriptionAvailable = 0x28, Byte, CONNACK;
    /// 0x29 Subscription Identifier Available (byte 0/1).
    SubscriptionIdentifierAvailable = 0x29, Byte, CONNACK;
    /// 0x2A Shared Subscription Available (byte 0/1).
    SharedSubscriptionAvailable = 0x2A, Byte, CONNACK;
}

impl PropertyId {
    /// True if this property may appear in a packet of type `packet` (spec table 2-4).
    #[inline]
    pub const fn allowed_in(self, packet: PacketType) -> bool {
        self.mask() & (1 << packet as u16) != 0
    }

    /// True if this property may appear in the will properties of CONNECT.
    #[inline]
    pub const fn allowed_in_will(self) -> bool {
        self.mask() & WILL != 0
    }
}

/// A decoded property value (internal; the typed structs are the public face).
pub(crate) enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    Str(ByteString),
    Bin(Bytes),
    Pair(ByteString, ByteString),
}

impl Value {
    fn byte(self) -> Result<u8, DecodeError> {
        match self {
            Value::Byte(b) => Ok(b),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
    fn flag(self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Protocol("property value must be 0 or 1")),
        }
    }
    fn u16(self) -> Result<u16, DecodeError> {
        match self {
            Value::U16(v) => Ok(v),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
    fn nonzero_u16(self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::Protocol("property value must not be 0")),
            v => Ok(v),
        }
    }
    fn u32(self) -> Result<u32, DecodeError> {
        match self {
            Value::U32(v) => Ok(v),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
    fn nonzero_u32(self) -> Result<u32, DecodeError> {
        match self.u32()? {
            0 => Err(DecodeError::Protocol("property value must not be 0")),
            v => Ok(v),
        }
    }
    fn string(self) -> Result<ByteString, DecodeError> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
    fn binary(self) -> Result<Bytes, DecodeError> {
        match self {
            Value::Bin(b) => Ok(b),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
    fn pair(self) -> Result<(ByteString, ByteString), DecodeError> {
        match self {
            Value::Pair(k, v) => Ok((k, v)),
            _ => Err(DecodeError::Malformed("property type")),
        }
    }
}

/// Shared decode / encode behaviour of the per-packet property structs.
pub(crate) trait PropertySet: Default {
    /// Bit of the packet kind in the allowed-in masks.
    const MASK: u16;
    /// Name used in error messages.
    const NAME: &'static str;
    /// Whether Subscription Identifier may repeat (PUBLISH).
    const MULTI_SUB_ID: bool = false;

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError>;
    /// Checks run once all properties are read.
    fn finish(&self) -> Result<(), DecodeError> {
        Ok(())
    }
    /// Length of the property list, excluding its own varint length prefix; validates.
    fn inner_len(&self) -> Result<usize, EncodeError>;
    fn write(&self, buf: &mut BytesMut);

    /// Writes the section: the varint length `inner` (from [`PropertySet::section_len`]), then
    /// the list; an empty section is the single byte 0.
    #[inline]
    fn write_section(&self, inner: usize, buf: &mut BytesMut) {
        if inner == 0 {
            buf.put_u8(0);
        } else {
            enc::put_varint(buf, inner);
            self.write(buf);
        }
    }

    /// Whole property section length: varint prefix plus list.
    #[inline]
    fn section_len(&self) -> Result<(usize, usize), EncodeError> {
        let inner = self.inner_len()?;
        Ok((inner, varint_len(inner) + inner))
    }
}

/// Decodes a property section (length varint then list) into `P`.
#[inline(always)]
pub(crate) fn decode_section<'a, P: PropertySet>(
    frame: &Bytes,
    input: Input<'a>,
) -> PResult<'a, P> {
    // Fast path: an empty section is one zero byte (the common case on the hot path).
    if let [0, rest @ ..] = input {
        return Ok((rest, P::default()));
    }
    decode_section_list(frame, input)
}

/// Decodes a property section into an existing (default) `P`, avoiding a move of `P`.
#[inline(always)]
pub(crate) fn decode_section_into<'a, P: PropertySet>(
    frame: &Bytes,
    input: Input<'a>,
    props: &mut P,
) -> PResult<'a, ()> {
    if let [0, rest @ ..] = input {
        return Ok((rest, ()));
    }
    let (rest, p) = decode_section_list(frame, input)?;
    *props = p;
    Ok((rest, ()))
}

fn decode_section_list<'a, P: PropertySet>(frame: &Bytes, input: Input<'a>) -> PResult<'a, P> {
    let (input, len) = wire::varint(input)?;
    let len = len as usize;
    if len > input.len() {
        return Err(wire::fail(DecodeError::Malformed(
            "property length exceeds packet",
        )));
    }
    let (mut list, rest) = input.split_at(len);
    let mut props = P::default();
    if list.is_empty() {
        return Ok((rest, props));
    }
    let mut seen: u64 = 0;
    while !list.is_empty() {
        let (i, raw) = wire::varint(list)?;
        let id = PropertyId::try_from(raw).map_err(wire::fail)?;
        if id.mask() & P::MASK == 0 {
            return Err(wire::fail(DecodeError::PropertyNotAllowed(id, P::NAME)));
        }
        let repeatable = id == PropertyId::UserProperty
            || (P::MULTI_SUB_ID && id == PropertyId::SubscriptionIdentifier);
        let bit = 1u64 << (id as u8);
        if !repeatable && seen & bit != 0 {
            return Err(wire::fail(DecodeError::DuplicateProperty(id)));
        }
        seen |= bit;
        let (i, value) = match id.wire_type() {
            PropertyType::Byte => {
                let (i, b) = wire::u8(i)?;
                (i, Value::Byte(b))
            }
            PropertyType::TwoByteInteger => {
                let (i, v) = wire::u16(i)?;
                (i, Value::U16(v))
            }
            PropertyType::FourByteInteger => {
                let (i, v) = wire::u32(i)?;
                (i, Value::U32(v))
            }
            PropertyType::VariableByteInteger => {
                let (i, v) = wire::varint(i)?;
                (i, Value::U32(v))
            }
            PropertyType::Utf8String => {
                let (i, s) = wire::string(frame, i)?;
                (i, Value::Str(s))
            }
            PropertyType::BinaryData => {
                let (i, b) = wire::binary(frame, i)?;
                (i, Value::Bin(b))
            }
            PropertyType::Utf8StringPair => {
                let (i, k) = wire::string(frame, i)?;
                let (i, v) = wire::string(frame, i)?;
                (i, Value::Pair(k, v))
            }
        };
        props.set(id, value).map_err(wire::fail)?;
        list = i;
    }
    props.finish().map_err(wire::fail)?;
    Ok((rest, props))
}

// ---- encoding helpers: length of one property, writing one property ----

#[inline]
fn len_str(id: PropertyId, s: &Option<ByteString>) -> Result<usize, EncodeError> {
    match s {
        Some(s) => {
            let _ = id;
            Ok(1 + enc::str_len(s)?)
        }
        None => Ok(0),
    }
}
#[inline]
fn len_bin(b: &Option<Bytes>) -> Result<usize, EncodeError> {
    match b {
        Some(b) => Ok(1 + enc::bin_len(b)?),
        None => Ok(0),
    }
}
#[inline]
fn len_opt<T>(v: &Option<T>, n: usize) -> usize {
    if v.is_some() {
        1 + n
    } else {
        0
    }
}
#[inline]
fn len_user(u: &UserProperties) -> Result<usize, EncodeError> {
    let mut n = 0;
    for (k, v) in u {
        n += 1 + enc::str_len(k)? + enc::str_len(v)?;
    }
    Ok(n)
}
#[inline]
fn nonzero_u16(id: PropertyId, v: Option<u16>) -> Result<usize, EncodeError> {
    match v {
        Some(0) => Err(EncodeError::InvalidProperty(id)),
        v => Ok(len_opt(&v, 2)),
    }
}
#[inline]
fn nonzero_u32(id: PropertyId, v: Option<u32>) -> Result<usize, EncodeError> {
    match v {
        Some(0) => Err(EncodeError::InvalidProperty(id)),
        v => Ok(len_opt(&v, 4)),
    }
}
#[inline]
fn sub_id_len(v: u32) -> Result<usize, EncodeError> {
    if v == 0 || v > crate::MAX_REMAINING_LENGTH {
        return Err(EncodeError::InvalidProperty(
            PropertyId::SubscriptionIdentifier,
        ));
    }
    Ok(1 + varint_len(v as usize))
}

#[inline]
fn put_u8(buf: &mut BytesMut, id: PropertyId, v: Option<u8>) {
    if let Some(v) = v {
        buf.put_u8(id as u8);
        buf.put_u8(v);
    }
}
#[inline]
fn put_flag(buf: &mut BytesMut, id: PropertyId, v: Option<bool>) {
    put_u8(buf, id, v.map(u8::from));
}
#[inline]
fn put_u16(buf: &mut BytesMut, id: PropertyId, v: Option<u16>) {
    if let Some(v) = v {
        buf.put_u8(id as u8);
        buf.put_u16(v);
    }
}
#[inline]
fn put_u32(buf: &mut BytesMut, id: PropertyId, v: Option<u32>) {
    if let Some(v) = v {
        buf.put_u8(id as u8);
        buf.put_u32(v);
    }
}
#[inline]
fn put_str(buf: &mut BytesMut, id: PropertyId, v: &Option<ByteString>) {
    if let Some(v) = v {
        buf.put_u8(id as u8);
        enc::put_str(buf, v);
    }
}
#[inline]
fn put_bin(buf: &mut BytesMut, id: PropertyId, v: &Option<Bytes>) {
    if let Some(v) = v {
        buf.put_u8(id as u8);
        enc::put_bin(buf, v);
    }
}
#[inline]
fn put_user(buf: &mut BytesMut, u: &UserProperties) {
    for (k, v) in u {
        buf.put_u8(PropertyId::UserProperty as u8);
        enc::put_str(buf, k);
        enc::put_str(buf, v);
    }
}
#[inline]
fn put_sub_id(buf: &mut BytesMut, v: u32) {
    buf.put_u8(PropertyId::SubscriptionIdentifier as u8);
    enc::put_varint(buf, v as usize);
}

fn auth_data_needs_method(
    method: &Option<ByteString>,
    data: &Option<Bytes>,
) -> Result<(), DecodeError> {
    if data.is_some() && method.is_none() {
        return Err(DecodeError::Protocol(
            "Authentication Data without Authentication Method",
        ));
    }
    Ok(())
}

fn unexpected() -> DecodeError {
    DecodeError::Malformed("property not allowed")
}

// ---------------------------------------------------------------------------------------

/// CONNECT properties (spec §3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Session Expiry Interval in seconds (absent = 0).
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (not 0; absent = 65,535).
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size the client accepts (not 0).
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum the client accepts (absent = 0).
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information.
    pub request_response_information: Option<bool>,
    /// Request Problem Information (absent = true).
    pub request_problem_information: Option<bool>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Authentication Method (enhanced authentication).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (only with a method).
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnectProperties {
    const MASK: u16 = CONNECT;
    const NAME: &'static str = "CONNECT";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::SessionExpiryInterval => self.session_expiry_interval = Some(v.u32()?),
            P::ReceiveMaximum => self.receive_maximum = Some(v.nonzero_u16()?),
            P::MaximumPacketSize => self.maximum_packet_size = Some(v.nonzero_u32()?),
            P::TopicAliasMaximum => self.topic_alias_maximum = Some(v.u16()?),
            P::RequestResponseInformation => self.request_response_information = Some(v.flag()?),
            P::RequestProblemInformation => self.request_problem_information = Some(v.flag()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            P::AuthenticationMethod => self.authentication_method = Some(v.string()?),
            P::AuthenticationData => self.authentication_data = Some(v.binary()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        auth_data_needs_method(&self.authentication_method, &self.authentication_data)
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::InvalidProperty(PropertyId::AuthenticationData));
        }
        Ok(len_opt(&self.session_expiry_interval, 4)
            + nonzero_u16(PropertyId::ReceiveMaximum, self.receive_maximum)?
            + nonzero_u32(PropertyId::MaximumPacketSize, self.maximum_packet_size)?
            + len_opt(&self.topic_alias_maximum, 2)
            + len_opt(&self.request_response_information, 1)
            + len_opt(&self.request_problem_information, 1)
            + len_user(&self.user_properties)?
            + len_str(
                PropertyId::AuthenticationMethod,
                &self.authentication_method,
            )?
            + len_bin(&self.authentication_data)?)
    }

    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        put_u32(buf, P::SessionExpiryInterval, self.session_expiry_interval);
        put_u16(buf, P::ReceiveMaximum, self.receive_maximum);
        put_u32(buf, P::MaximumPacketSize, self.maximum_packet_size);
        put_u16(buf, P::TopicAliasMaximum, self.topic_alias_maximum);
        put_flag(
            buf,
            P::RequestResponseInformation,
            self.request_response_information,
        );
        put_flag(
            buf,
            P::RequestProblemInformation,
            self.request_problem_information,
        );
        put_user(buf, &self.user_properties);
        put_str(buf, P::AuthenticationMethod, &self.authentication_method);
        put_bin(buf, P::AuthenticationData, &self.authentication_data);
    }
}

/// Will properties, carried in the CONNECT payload (spec §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// Will Delay Interval in seconds.
    pub will_delay_interval: Option<u32>,
    /// Payload Format Indicator: `true` = UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<ByteString>,
    /// Response Topic.
    pub response_topic: Option<ByteString>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl PropertySet for WillProperties {
    const MASK: u16 = WILL;
    const NAME: &'static str = "will properties";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::WillDelayInterval => self.will_delay_interval = Some(v.u32()?),
            P::PayloadFormatIndicator => self.payload_format_indicator = Some(v.flag()?),
            P::MessageExpiryInterval => self.message_expiry_interval = Some(v.u32()?),
            P::ContentType => self.content_type = Some(v.string()?),
            P::ResponseTopic => self.response_topic = Some(v.string()?),
            P::CorrelationData => self.correlation_data = Some(v.binary()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        Ok(len_opt(&self.will_delay_interval, 4)
            + len_opt(&self.payload_format_indicator, 1)
            + len_opt(&self.message_expiry_interval, 4)
            + len_str(PropertyId::ContentType, &self.content_type)?
            + len_str(PropertyId::ResponseTopic, &self.response_topic)?
            + len_bin(&self.correlation_data)?
            + len_user(&self.user_properties)?)
    }

    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        put_u32(buf, P::WillDelayInterval, self.will_delay_interval);
        put_flag(
            buf,
            P::PayloadFormatIndicator,
            self.payload_format_indicator,
        );
        put_u32(buf, P::MessageExpiryInterval, self.message_expiry_interval);
        put_str(buf, P::ContentType, &self.content_type);
        put_str(buf, P::ResponseTopic, &self.response_topic);
        put_bin(buf, P::CorrelationData, &self.correlation_data);
        put_user(buf, &self.user_properties);
    }
}

/// CONNACK properties (spec §3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// Session Expiry Interval chosen by the server.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum of the server (not 0).
    pub receive_maximum: Option<u16>,
    /// Maximum QoS the server supports (only 0 or 1 may be sent; absent = 2).
    pub maximum_qos: Option<QoS>,
    /// Retain Available.
    pub retain_available: Option<bool>,
    /// Maximum Packet Size the server accepts (not 0).
    pub maximum_packet_size: Option<u32>,
    /// Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteString>,
    /// Topic Alias Maximum the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive (overrides the client's keep alive).
    pub server_keep_alive: Option<u16>,
    /// Response Information.
    pub response_information: Option<ByteString>,
    /// Server Reference.
    pub server_reference: Option<ByteString>,
    /// Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnAckProperties {
    const MASK: u16 = CONNACK;
    const NAME: &'static str = "CONNACK";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::SessionExpiryInterval => self.session_expiry_interval = Some(v.u32()?),
            P::ReceiveMaximum => self.receive_maximum = Some(v.nonzero_u16()?),
            P::MaximumQoS => {
                self.maximum_qos = Some(match v.byte()? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(DecodeError::Protocol("Maximum QoS must be 0 or 1")),
                })
            }
            P::RetainAvailable => self.retain_available = Some(v.flag()?),
            P::MaximumPacketSize => self.maximum_packet_size = Some(v.nonzero_u32()?),
            P::AssignedClientIdentifier => self.assigned_client_identifier = Some(v.string()?),
            P::TopicAliasMaximum => self.topic_alias_maximum = Some(v.u16()?),
            P::ReasonString => self.reason_string = Some(v.string()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            P::WildcardSubscriptionAvailable => {
                self.wildcard_subscription_available = Some(v.flag()?)
            }
            P::SubscriptionIdentifierAvailable => {
                self.subscription_identifiers_available = Some(v.flag()?)
            }
            P::SharedSubscriptionAvailable => self.shared_subscription_available = Some(v.flag()?),
            P::ServerKeepAlive => self.server_keep_alive = Some(v.u16()?),
            P::ResponseInformation => self.response_information = Some(v.string()?),
            P::ServerReference => self.server_reference = Some(v.string()?),
            P::AuthenticationMethod => self.authentication_method = Some(v.string()?),
            P::AuthenticationData => self.authentication_data = Some(v.binary()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        auth_data_needs_method(&self.authentication_method, &self.authentication_data)
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        use PropertyId as P;
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::InvalidProperty(P::AuthenticationData));
        }
        if self.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(EncodeError::InvalidProperty(P::MaximumQoS));
        }
        Ok(len_opt(&self.session_expiry_interval, 4)
            + nonzero_u16(P::ReceiveMaximum, self.receive_maximum)?
            + len_opt(&self.maximum_qos, 1)
            + len_opt(&self.retain_available, 1)
            + nonzero_u32(P::MaximumPacketSize, self.maximum_packet_size)?
            + len_str(
                P::AssignedClientIdentifier,
                &self.assigned_client_identifier,
            )?
            + len_opt(&self.topic_alias_maximum, 2)
            + len_str(P::ReasonString, &self.reason_string)?
            + len_user(&self.user_properties)?
            + len_opt(&self.wildcard_subscription_available, 1)
            + len_opt(&self.subscription_identifiers_available, 1)
            + len_opt(&self.shared_subscription_available, 1)
            + len_opt(&self.server_keep_alive, 2)
            + len_str(P::ResponseInformation, &self.response_information)?
            + len_str(P::ServerReference, &self.server_reference)?
            + len_str(P::AuthenticationMethod, &self.authentication_method)?
            + len_bin(&self.authentication_data)?)
    }

    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        put_u32(buf, P::SessionExpiryInterval, self.session_expiry_interval);
        put_u16(buf, P::ReceiveMaximum, self.receive_maximum);
        put_u8(buf, P::MaximumQoS, self.maximum_qos.map(|q| q as u8));
        put_flag(buf, P::RetainAvailable, self.retain_available);
        put_u32(buf, P::MaximumPacketSize, self.maximum_packet_size);
        put_str(
            buf,
            P::AssignedClientIdentifier,
            &self.assigned_client_identifier,
        );
        put_u16(buf, P::TopicAliasMaximum, self.topic_alias_maximum);
        put_str(buf, P::ReasonString, &self.reason_string);
        put_user(buf, &self.user_properties);
        put_flag(
            buf,
            P::WildcardSubscriptionAvailable,
            self.wildcard_subscription_available,
        );
        put_flag(
            buf,
            P::SubscriptionIdentifierAvailable,
            self.subscription_identifiers_available,
        );
        put_flag(
            buf,
            P::SharedSubscriptionAvailable,
            self.shared_subscription_available,
        );
        put_u16(buf, P::ServerKeepAlive, self.server_keep_alive);
        put_str(buf, P::ResponseInformation, &self.response_information);
        put_str(buf, P::ServerReference, &self.server_reference);
        put_str(buf, P::AuthenticationMethod, &self.authentication_method);
        put_bin(buf, P::AuthenticationData, &self.authentication_data);
    }
}

/// PUBLISH properties (spec §3.3.2.3). Empty by default; constructing and cloning an empty
/// value allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// Payload Format Indicator: `true` = UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias (not 0).
    pub topic_alias: Option<u16>,
    /// Response Topic.
    pub response_topic: Option<ByteString>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Subscription Identifiers (server → client; several when several subscriptions match).
    pub subscription_identifiers: Vec<u32>,
    /// Content Type.
    pub content_type: Option<ByteString>,
}

impl PublishProperties {
    /// True if no property is set (encodes to a single zero byte).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

impl PropertySet for PublishProperties {
    const MASK: u16 = PUBLISH;
    const NAME: &'static str = "PUBLISH";
    const MULTI_SUB_ID: bool = true;

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::PayloadFormatIndicator => self.payload_format_indicator = Some(v.flag()?),
            P::MessageExpiryInterval => self.message_expiry_interval = Some(v.u32()?),
            P::TopicAlias => match v.u16()? {
                0 => return Err(DecodeError::TopicAliasInvalid),
                a => self.topic_alias = Some(a),
            },
            P::ResponseTopic => self.response_topic = Some(v.string()?),
            P::CorrelationData => self.correlation_data = Some(v.binary()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            P::SubscriptionIdentifier => self.subscription_identifiers.push(v.nonzero_u32()?),
            P::ContentType => self.content_type = Some(v.string()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    #[inline]
    fn inner_len(&self) -> Result<usize, EncodeError> {
        if self.is_empty() {
            return Ok(0);
        }
        let mut n = len_opt(&self.payload_format_indicator, 1)
            + len_opt(&self.message_expiry_interval, 4)
            + nonzero_u16(PropertyId::TopicAlias, self.topic_alias)?
            + len_str(PropertyId::ResponseTopic, &self.response_topic)?
            + len_bin(&self.correlation_data)?
            + len_user(&self.user_properties)?
            + len_str(PropertyId::ContentType, &self.content_type)?;
        for &id in &self.subscription_identifiers {
            n += sub_id_len(id)?;
        }
        Ok(n)
    }

    #[inline]
    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        if self.is_empty() {
            return;
        }
        put_flag(
            buf,
            P::PayloadFormatIndicator,
            self.payload_format_indicator,
        );
        put_u32(buf, P::MessageExpiryInterval, self.message_expiry_interval);
        put_u16(buf, P::TopicAlias, self.topic_alias);
        put_str(buf, P::ResponseTopic, &self.response_topic);
        put_bin(buf, P::CorrelationData, &self.correlation_data);
        put_user(buf, &self.user_properties);
        for &id in &self.subscription_identifiers {
            put_sub_id(buf, id);
        }
        put_str(buf, P::ContentType, &self.content_type);
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (spec §3.4.2.2 etc.):
/// a Reason String and user properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP properties.
pub type PubAckProperties = AckProperties;
/// SUBACK properties.
pub type SubAckProperties = AckProperties;
/// UNSUBACK properties.
pub type UnsubAckProperties = AckProperties;

impl AckProperties {
    /// True if no property is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

impl PropertySet for AckProperties {
    const MASK: u16 = PUBACK;
    const NAME: &'static str = "acknowledgement";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        match id {
            PropertyId::ReasonString => self.reason_string = Some(v.string()?),
            PropertyId::UserProperty => self.user_properties.push(v.pair()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    #[inline]
    fn inner_len(&self) -> Result<usize, EncodeError> {
        Ok(len_str(PropertyId::ReasonString, &self.reason_string)?
            + len_user(&self.user_properties)?)
    }

    #[inline]
    fn write(&self, buf: &mut BytesMut) {
        put_str(buf, PropertyId::ReasonString, &self.reason_string);
        put_user(buf, &self.user_properties);
    }
}

/// SUBSCRIBE properties (spec §3.8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// Subscription Identifier (1..=268,435,455).
    pub subscription_identifier: Option<u32>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl PropertySet for SubscribeProperties {
    const MASK: u16 = SUBSCRIBE;
    const NAME: &'static str = "SUBSCRIBE";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        match id {
            PropertyId::SubscriptionIdentifier => {
                self.subscription_identifier = Some(v.nonzero_u32()?)
            }
            PropertyId::UserProperty => self.user_properties.push(v.pair()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        let sub = match self.subscription_identifier {
            Some(id) => sub_id_len(id)?,
            None => 0,
        };
        Ok(sub + len_user(&self.user_properties)?)
    }

    fn write(&self, buf: &mut BytesMut) {
        if let Some(id) = self.subscription_identifier {
            put_sub_id(buf, id);
        }
        put_user(buf, &self.user_properties);
    }
}

/// UNSUBSCRIBE properties (spec §3.10.2.1): user properties only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubscribeProperties {
    /// User properties.
    pub user_properties: UserProperties,
}

impl PropertySet for UnsubscribeProperties {
    const MASK: u16 = UNSUBSCRIBE;
    const NAME: &'static str = "UNSUBSCRIBE";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        match id {
            PropertyId::UserProperty => self.user_properties.push(v.pair()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        len_user(&self.user_properties)
    }

    fn write(&self, buf: &mut BytesMut) {
        put_user(buf, &self.user_properties);
    }
}

/// DISCONNECT properties (spec §3.14.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (client → server only).
    pub session_expiry_interval: Option<u32>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Server Reference (server → client).
    pub server_reference: Option<ByteString>,
}

impl DisconnectProperties {
    /// True if no property is set.
    pub fn is_empty(&self) -> bool {
        self.session_expiry_interval.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.server_reference.is_none()
    }
}

impl PropertySet for DisconnectProperties {
    const MASK: u16 = DISCONNECT;
    const NAME: &'static str = "DISCONNECT";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::SessionExpiryInterval => self.session_expiry_interval = Some(v.u32()?),
            P::ReasonString => self.reason_string = Some(v.string()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            P::ServerReference => self.server_reference = Some(v.string()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        Ok(len_opt(&self.session_expiry_interval, 4)
            + len_str(PropertyId::ReasonString, &self.reason_string)?
            + len_user(&self.user_properties)?
            + len_str(PropertyId::ServerReference, &self.server_reference)?)
    }

    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        put_u32(buf, P::SessionExpiryInterval, self.session_expiry_interval);
        put_str(buf, P::ReasonString, &self.reason_string);
        put_user(buf, &self.user_properties);
        put_str(buf, P::ServerReference, &self.server_reference);
    }
}

/// AUTH properties (spec §3.15.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl AuthProperties {
    /// True if no property is set.
    pub fn is_empty(&self) -> bool {
        self.authentication_method.is_none()
            && self.authentication_data.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
    }
}

impl PropertySet for AuthProperties {
    const MASK: u16 = AUTH;
    const NAME: &'static str = "AUTH";

    fn set(&mut self, id: PropertyId, v: Value) -> Result<(), DecodeError> {
        use PropertyId as P;
        match id {
            P::AuthenticationMethod => self.authentication_method = Some(v.string()?),
            P::AuthenticationData => self.authentication_data = Some(v.binary()?),
            P::ReasonString => self.reason_string = Some(v.string()?),
            P::UserProperty => self.user_properties.push(v.pair()?),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        auth_data_needs_method(&self.authentication_method, &self.authentication_data)
    }

    fn inner_len(&self) -> Result<usize, EncodeError> {
        use PropertyId as P;
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::InvalidProperty(P::AuthenticationData));
        }
        Ok(
            len_str(P::AuthenticationMethod, &self.authentication_method)?
                + len_bin(&self.authentication_data)?
                + len_str(P::ReasonString, &self.reason_string)?
                + len_user(&self.user_properties)?,
        )
    }

    fn write(&self, buf: &mut BytesMut) {
        use PropertyId as P;
        put_str(buf, P::AuthenticationMethod, &self.authentication_method);
        put_bin(buf, P::AuthenticationData, &self.authentication_data);
        put_str(buf, P::ReasonString, &self.reason_string);
        put_user(buf, &self.user_properties);
    }
}

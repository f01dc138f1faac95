//! MQTT v5 properties (spec §2.2.2): one typed struct per packet kind, each generated from a
//! single table that names, per field, the property identifier, the Rust type and how the
//! value is read and checked (its value kind); the struct, its decoder, its arithmetic length and
//! its writer all come from that table, and so does which packet may carry which property
//! ([`PropertyId::allowed_in`]).
//!
//! Every struct is `Default` (all `None` / empty), and an empty struct encodes to a single
//! `0x00` property-length byte. Decoding rejects an unknown or misplaced property with
//! 0x81 Malformed Packet and a repeated one (other than a list field: User Property, and
//! Subscription Identifier in PUBLISH) with 0x82 Protocol Error.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

pub use crate::property_id::{PropertyId, PropertyType};
use crate::wire::{self, fail, varint_len, Input, PResult};
use crate::{DecodeError, EncodeError, PacketType, QoS};

/// User properties: name/value string pairs, in wire order, repeats allowed.
pub type UserProperties = Vec<(ByteString, ByteString)>;

// Bit masks of the packets a property set serves: bit n = packet type n, bit 0 = will.
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

/// How one property value is read, checked, sized and written. The value kinds are unit
/// types named in the property tables; a kind's checks are the spec's rules for that field.
pub(crate) trait Value {
    /// The Rust type of one value.
    type T;
    /// The wire type it is read as; must match [`PropertyId::wire_type`] of its property.
    const WIRE: PropertyType;
    /// Reads one value (after its identifier) and applies the decode-side rules.
    fn read<'a>(frame: &Bytes, i: Input<'a>) -> PResult<'a, Self::T>;
    /// Encoded size of one value, identifier byte excluded; refuses a forbidden value.
    fn size(id: PropertyId, v: &Self::T) -> Result<usize, EncodeError>;
    /// Writes one value (size already checked).
    fn put(v: &Self::T, buf: &mut BytesMut);
}

/// The value kinds of the property tables.
pub(crate) mod value {
    use super::*;

    macro_rules! value {
        ($(#[$m:meta])* $name:ident: $t:ty, $wire:ident,
         read($frame:pat_param, $i:ident) $read:block,
         size($id:pat_param, $v:ident) $size:block,
         put($pv:ident, $buf:ident) $put:block) => {
            $(#[$m])*
            pub(crate) struct $name;

            impl Value for $name {
                type T = $t;
                const WIRE: PropertyType = PropertyType::$wire;

                #[inline]
                fn read<'a>($frame: &Bytes, $i: Input<'a>) -> PResult<'a, $t> $read

                #[inline]
                fn size($id: PropertyId, $v: &$t) -> Result<usize, EncodeError> $size

                #[inline]
                fn put($pv: &$t, $buf: &mut BytesMut) $put
            }
        };
    }

    fn nonzero<T: PartialEq + Default>(
        id: PropertyId,
        v: &T,
        n: usize,
    ) -> Result<usize, EncodeError> {
        if *v == T::default() {
            return Err(EncodeError::InvalidProperty(id));
        }
        Ok(n)
    }

    fn not_zero() -> nom::Err<DecodeError> {
        fail(DecodeError::Protocol("property value must not be 0"))
    }

    value!(
        /// Two-byte integer.
        U16: u16, TwoByteInteger,
        read(_, i) { wire::u16(i) },
        size(_, _v) { Ok(2) },
        put(v, buf) { buf.put_u16(*v) }
    );
    value!(
        /// Four-byte integer.
        U32: u32, FourByteInteger,
        read(_, i) { wire::u32(i) },
        size(_, _v) { Ok(4) },
        put(v, buf) { buf.put_u32(*v) }
    );
    value!(
        /// Two-byte integer that must not be 0 (0x82 when decoded).
        NonZeroU16: u16, TwoByteInteger,
        read(_, i) {
            match wire::u16(i)? {
                (_, 0) => Err(not_zero()),
                ok => Ok(ok),
            }
        },
        size(id, v) { nonzero(id, v, 2) },
        put(v, buf) { buf.put_u16(*v) }
    );
    value!(
        /// Four-byte integer that must not be 0 (0x82 when decoded).
        NonZeroU32: u32, FourByteInteger,
        read(_, i) {
            match wire::u32(i)? {
                (_, 0) => Err(not_zero()),
                ok => Ok(ok),
            }
        },
        size(id, v) { nonzero(id, v, 4) },
        put(v, buf) { buf.put_u32(*v) }
    );
    value!(
        /// Topic Alias: not 0, and 0 is its own reason code (0x94).
        Alias: u16, TwoByteInteger,
        read(_, i) {
            match wire::u16(i)? {
                (_, 0) => Err(fail(DecodeError::TopicAliasInvalid)),
                ok => Ok(ok),
            }
        },
        size(id, v) { nonzero(id, v, 2) },
        put(v, buf) { buf.put_u16(*v) }
    );
    value!(
        /// A byte that must be 0 or 1.
        Flag: bool, Byte,
        read(_, i) {
            match wire::u8(i)? {
                (i, 0) => Ok((i, false)),
                (i, 1) => Ok((i, true)),
                _ => Err(fail(DecodeError::Protocol("property value must be 0 or 1"))),
            }
        },
        size(_, _v) { Ok(1) },
        put(v, buf) { buf.put_u8(u8::from(*v)) }
    );
    value!(
        /// Maximum QoS: 0 or 1 (absent means 2). CONNACK's encode check refuses QoS 2.
        MaxQoS: QoS, Byte,
        read(_, i) {
            match wire::u8(i)? {
                (i, 0) => Ok((i, QoS::AtMostOnce)),
                (i, 1) => Ok((i, QoS::AtLeastOnce)),
                _ => Err(fail(DecodeError::Protocol("Maximum QoS must be 0 or 1"))),
            }
        },
        size(_, _v) { Ok(1) },
        put(v, buf) { buf.put_u8(*v as u8) }
    );
    value!(
        /// UTF-8 string, a slice of the frame.
        Str: ByteString, Utf8String,
        read(frame, i) { wire::string(frame, i) },
        size(_, v) { wire::str_len(v) },
        put(v, buf) { wire::put_str(buf, v) }
    );
    value!(
        /// Binary data, a slice of the frame.
        Bin: Bytes, BinaryData,
        read(frame, i) { wire::binary(frame, i) },
        size(_, v) { wire::bin_len(v) },
        put(v, buf) { wire::put_bin(buf, v) }
    );
    value!(
        /// A User Property: name and value strings.
        Pair: (ByteString, ByteString), Utf8StringPair,
        read(frame, i) {
            let (i, k) = wire::string(frame, i)?;
            let (i, v) = wire::string(frame, i)?;
            Ok((i, (k, v)))
        },
        size(_, v) { Ok(wire::str_len(&v.0)? + wire::str_len(&v.1)?) },
        put(v, buf) {
            wire::put_str(buf, &v.0);
            wire::put_str(buf, &v.1);
        }
    );
    value!(
        /// Subscription Identifier: a variable byte integer in 1..=268,435,455.
        SubId: u32, VariableByteInteger,
        read(_, i) {
            match wire::varint(i)? {
                (_, 0) => Err(not_zero()),
                ok => Ok(ok),
            }
        },
        size(id, v) {
            if *v == 0 || *v > wire::MAX_REMAINING_LENGTH {
                return Err(EncodeError::InvalidProperty(id));
            }
            Ok(varint_len(*v as usize))
        },
        put(v, buf) { wire::put_varint(buf, *v as usize) }
    );
}

/// A struct field holding a property: `Option` for one that may appear once, `Vec` for one
/// that may repeat.
pub(crate) trait Slot<V: Value> {
    /// Whether the property may appear more than once.
    const REPEATS: bool;
    fn is_empty(&self) -> bool;
    fn read<'a>(&mut self, frame: &Bytes, i: Input<'a>) -> PResult<'a, ()>;
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError>;
    fn write(&self, id: PropertyId, buf: &mut BytesMut);
}

impl<V: Value> Slot<V> for Option<V::T> {
    const REPEATS: bool = false;

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.is_none()
    }

    #[inline]
    fn read<'a>(&mut self, frame: &Bytes, i: Input<'a>) -> PResult<'a, ()> {
        let (i, v) = V::read(frame, i)?;
        *self = Some(v);
        Ok((i, ()))
    }

    #[inline]
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        match self {
            Some(v) => Ok(1 + V::size(id, v)?),
            None => Ok(0),
        }
    }

    #[inline]
    fn write(&self, id: PropertyId, buf: &mut BytesMut) {
        if let Some(v) = self {
            buf.put_u8(id as u8);
            V::put(v, buf);
        }
    }
}

impl<V: Value> Slot<V> for Vec<V::T> {
    const REPEATS: bool = true;

    #[inline(always)]
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }

    #[inline]
    fn read<'a>(&mut self, frame: &Bytes, i: Input<'a>) -> PResult<'a, ()> {
        let (i, v) = V::read(frame, i)?;
        self.push(v);
        Ok((i, ()))
    }

    #[inline]
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        let mut n = 0;
        for v in self {
            n += 1 + V::size(id, v)?;
        }
        Ok(n)
    }

    #[inline]
    fn write(&self, id: PropertyId, buf: &mut BytesMut) {
        for v in self {
            buf.put_u8(id as u8);
            V::put(v, buf);
        }
    }
}

/// Shared decode / encode behaviour of the per-packet property structs.
pub(crate) trait PropertySet: Default {
    /// Reads the value of property `id` (its identifier already read) into its field;
    /// `seen` holds a bit per property already read, for the duplicate rule.
    fn read_one<'a>(
        &mut self,
        id: PropertyId,
        seen: &mut u64,
        frame: &Bytes,
        i: Input<'a>,
    ) -> PResult<'a, ()>;
    /// Checks run once all properties are read.
    fn finish(&self) -> Result<(), DecodeError>;
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
            wire::put_varint(buf, inner);
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

/// Marks property `id` as read; a second one is 0x82 unless the field is a list.
#[inline(always)]
fn first_time(id: PropertyId, repeats: bool, seen: &mut u64) -> Result<(), nom::Err<DecodeError>> {
    let bit = 1u64 << (id as u8);
    if !repeats && *seen & bit != 0 {
        return Err(fail(DecodeError::DuplicateProperty(id)));
    }
    *seen |= bit;
    Ok(())
}

/// Generates the property structs from their tables, and where each property is allowed.
///
/// Per set: its doc, name, the packets it serves (mask) and the name used in errors,
/// an optional attribute for its generated functions (`#[inline]` for the sets on the hot
/// path: PUBLISH and the acknowledgements), optional set-wide rules (`check`: before sizing for encoding; `finish`: after decoding),
/// then per field its doc, name, type, property identifier and value kind. Fields are written
/// in table order. A field marked `late` is sized after the others, so that a packet with
/// several bad fields reports the error it always did.
macro_rules! property_sets {
    ($(
        $(#[$sm:meta])*
        pub struct $set:ident: $mask:expr, $label:literal $(#[$hint:meta])?
            $(, check = $check:path)? $(, finish = $finish:path)? {
            $(
                $(#[$fm:meta])*
                $field:ident: $ty:ty = $id:ident as $kind:ident $(, $late:ident)?;
            )*
        }
    )*) => {
        $(
            $(#[$sm])*
            #[derive(Debug, Clone, PartialEq, Eq, Default)]
            pub struct $set {
                $( $(#[$fm])* pub $field: $ty, )*
            }

            impl $set {
                /// True if no property is set: the section is then the single byte 0.
                #[inline(always)]
                pub fn is_empty(&self) -> bool {
                    true $( && <$ty as Slot<value::$kind>>::is_empty(&self.$field) )*
                }
            }

            impl PropertySet for $set {
                $(#[$hint])?
                fn read_one<'a>(
                    &mut self,
                    id: PropertyId,
                    seen: &mut u64,
                    frame: &Bytes,
                    i: Input<'a>,
                ) -> PResult<'a, ()> {
                    match id {
                        $(
                            PropertyId::$id => {
                                first_time(id, <$ty as Slot<value::$kind>>::REPEATS, seen)?;
                                <$ty as Slot<value::$kind>>::read(&mut self.$field, frame, i)
                            }
                        )*
                        _ => Err(fail(DecodeError::PropertyNotAllowed(id, $label))),
                    }
                }

                #[inline]
                fn finish(&self) -> Result<(), DecodeError> {
                    $( $finish(self)?; )?
                    Ok(())
                }

                $(#[$hint])?
                fn inner_len(&self) -> Result<usize, EncodeError> {
                    if self.is_empty() {
                        return Ok(0);
                    }
                    $( $check(self)?; )?
                    let mut n = 0;
                    $(
                        if !(false $( || stringify!($late).len() > 0 )?) {
                            n += <$ty as Slot<value::$kind>>::len(&self.$field, PropertyId::$id)?;
                        }
                    )*
                    $(
                        if false $( || stringify!($late).len() > 0 )? {
                            n += <$ty as Slot<value::$kind>>::len(&self.$field, PropertyId::$id)?;
                        }
                    )*
                    Ok(n)
                }

                $(#[$hint])?
                fn write(&self, buf: &mut BytesMut) {
                    $( <$ty as Slot<value::$kind>>::write(&self.$field, PropertyId::$id, buf); )*
                }
            }
        )*

        /// Per property identifier, the mask of the packets whose set lists it.
        const ALLOWED_IN: [u16; 64] = {
            let mut t = [0u16; 64];
            $( $( t[PropertyId::$id as usize] |= $mask; )* )*
            t
        };

        // Each value kind reads its property's wire type (checked when compiling).
        const _: () = {
            $( $(
                assert!(
                    <value::$kind as Value>::WIRE as u8 == PropertyId::$id.wire_type() as u8,
                    concat!(stringify!($set), ".", stringify!($field), ": wrong value kind"),
                );
            )* )*
        };
    };
}

impl PropertyId {
    /// True if this property may appear in a packet of type `packet` (spec table 2-4).
    #[inline]
    pub const fn allowed_in(self, packet: PacketType) -> bool {
        ALLOWED_IN[self as usize] & (1 << packet as u16) != 0
    }

    /// True if this property may appear in the will properties of CONNECT.
    #[inline]
    pub const fn allowed_in_will(self) -> bool {
        ALLOWED_IN[self as usize] & WILL != 0
    }
}

/// Authentication Data is only meaningful with an Authentication Method (§3.1.2.11.10).
macro_rules! auth_rule {
    ($decode:ident, $encode:ident, $set:ty) => {
        fn $decode(p: &$set) -> Result<(), DecodeError> {
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                return Err(DecodeError::Protocol(
                    "Authentication Data without Authentication Method",
                ));
            }
            Ok(())
        }

        fn $encode(p: &$set) -> Result<(), EncodeError> {
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                return Err(EncodeError::InvalidProperty(PropertyId::AuthenticationData));
            }
            Ok(())
        }
    };
}
auth_rule!(connect_finish, connect_check, ConnectProperties);
auth_rule!(connack_finish, connack_auth_check, ConnAckProperties);
auth_rule!(auth_finish, auth_check, AuthProperties);

/// A server may announce Maximum QoS 0 or 1 only (§3.2.2.3.4).
fn connack_check(p: &ConnAckProperties) -> Result<(), EncodeError> {
    connack_auth_check(p)?;
    if p.maximum_qos == Some(QoS::ExactlyOnce) {
        return Err(EncodeError::InvalidProperty(PropertyId::MaximumQoS));
    }
    Ok(())
}

property_sets! {
    /// CONNECT properties (spec §3.1.2.11).
    pub struct ConnectProperties: CONNECT, "CONNECT", check = connect_check,
        finish = connect_finish {
        /// Session Expiry Interval in seconds (absent = 0).
        session_expiry_interval: Option<u32> = SessionExpiryInterval as U32;
        /// Receive Maximum (not 0; absent = 65,535).
        receive_maximum: Option<u16> = ReceiveMaximum as NonZeroU16;
        /// Maximum Packet Size the client accepts (not 0).
        maximum_packet_size: Option<u32> = MaximumPacketSize as NonZeroU32;
        /// Topic Alias Maximum the client accepts (absent = 0).
        topic_alias_maximum: Option<u16> = TopicAliasMaximum as U16;
        /// Request Response Information.
        request_response_information: Option<bool> = RequestResponseInformation as Flag;
        /// Request Problem Information (absent = true).
        request_problem_information: Option<bool> = RequestProblemInformation as Flag;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
        /// Authentication Method (enhanced authentication).
        authentication_method: Option<ByteString> = AuthenticationMethod as Str;
        /// Authentication Data (only with a method).
        authentication_data: Option<Bytes> = AuthenticationData as Bin;
    }

    /// Will properties, carried in the CONNECT payload (spec §3.1.3.2).
    pub struct WillProperties: WILL, "will properties" {
        /// Will Delay Interval in seconds.
        will_delay_interval: Option<u32> = WillDelayInterval as U32;
        /// Payload Format Indicator: `true` = UTF-8 payload.
        payload_format_indicator: Option<bool> = PayloadFormatIndicator as Flag;
        /// Message Expiry Interval in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval as U32;
        /// Content Type.
        content_type: Option<ByteString> = ContentType as Str;
        /// Response Topic.
        response_topic: Option<ByteString> = ResponseTopic as Str;
        /// Correlation Data.
        correlation_data: Option<Bytes> = CorrelationData as Bin;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
    }

    /// CONNACK properties (spec §3.2.2.3).
    pub struct ConnAckProperties: CONNACK, "CONNACK", check = connack_check,
        finish = connack_finish {
        /// Session Expiry Interval chosen by the server.
        session_expiry_interval: Option<u32> = SessionExpiryInterval as U32;
        /// Receive Maximum of the server (not 0).
        receive_maximum: Option<u16> = ReceiveMaximum as NonZeroU16;
        /// Maximum QoS the server supports (only 0 or 1 may be sent; absent = 2).
        maximum_qos: Option<QoS> = MaximumQoS as MaxQoS;
        /// Retain Available.
        retain_available: Option<bool> = RetainAvailable as Flag;
        /// Maximum Packet Size the server accepts (not 0).
        maximum_packet_size: Option<u32> = MaximumPacketSize as NonZeroU32;
        /// Assigned Client Identifier.
        assigned_client_identifier: Option<ByteString> = AssignedClientIdentifier as Str;
        /// Topic Alias Maximum the server accepts.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum as U16;
        /// Reason String.
        reason_string: Option<ByteString> = ReasonString as Str;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
        /// Wildcard Subscription Available.
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable as Flag;
        /// Subscription Identifiers Available.
        subscription_identifiers_available: Option<bool> =
            SubscriptionIdentifierAvailable as Flag;
        /// Shared Subscription Available.
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable as Flag;
        /// Server Keep Alive (overrides the client's keep alive).
        server_keep_alive: Option<u16> = ServerKeepAlive as U16;
        /// Response Information.
        response_information: Option<ByteString> = ResponseInformation as Str;
        /// Server Reference.
        server_reference: Option<ByteString> = ServerReference as Str;
        /// Authentication Method.
        authentication_method: Option<ByteString> = AuthenticationMethod as Str;
        /// Authentication Data.
        authentication_data: Option<Bytes> = AuthenticationData as Bin;
    }

    /// PUBLISH properties (spec §3.3.2.3). Empty by default; constructing and cloning an empty
    /// value allocates nothing.
    pub struct PublishProperties: PUBLISH, "PUBLISH" #[inline] {
        /// Payload Format Indicator: `true` = UTF-8 payload.
        payload_format_indicator: Option<bool> = PayloadFormatIndicator as Flag;
        /// Message Expiry Interval in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval as U32;
        /// Topic Alias (not 0).
        topic_alias: Option<u16> = TopicAlias as Alias;
        /// Response Topic.
        response_topic: Option<ByteString> = ResponseTopic as Str;
        /// Correlation Data.
        correlation_data: Option<Bytes> = CorrelationData as Bin;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
        /// Subscription Identifiers (server → client; several when several subscriptions match).
        subscription_identifiers: Vec<u32> = SubscriptionIdentifier as SubId, late;
        /// Content Type.
        content_type: Option<ByteString> = ContentType as Str;
    }

    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (spec §3.4.2.2 etc.):
    /// a Reason String and user properties.
    pub struct AckProperties: ACKS, "acknowledgement" #[inline] {
        /// Reason String.
        reason_string: Option<ByteString> = ReasonString as Str;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
    }

    /// SUBSCRIBE properties (spec §3.8.2.1).
    pub struct SubscribeProperties: SUBSCRIBE, "SUBSCRIBE" {
        /// Subscription Identifier (1..=268,435,455).
        subscription_identifier: Option<u32> = SubscriptionIdentifier as SubId;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
    }

    /// UNSUBSCRIBE properties (spec §3.10.2.1): user properties only.
    pub struct UnsubscribeProperties: UNSUBSCRIBE, "UNSUBSCRIBE" {
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
    }

    /// DISCONNECT properties (spec §3.14.2.2).
    pub struct DisconnectProperties: DISCONNECT, "DISCONNECT" {
        /// Session Expiry Interval (client → server only).
        session_expiry_interval: Option<u32> = SessionExpiryInterval as U32;
        /// Reason String.
        reason_string: Option<ByteString> = ReasonString as Str;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
        /// Server Reference (server → client).
        server_reference: Option<ByteString> = ServerReference as Str;
    }

    /// AUTH properties (spec §3.15.2.2).
    pub struct AuthProperties: AUTH, "AUTH", check = auth_check, finish = auth_finish {
        /// Authentication Method.
        authentication_method: Option<ByteString> = AuthenticationMethod as Str;
        /// Authentication Data.
        authentication_data: Option<Bytes> = AuthenticationData as Bin;
        /// Reason String.
        reason_string: Option<ByteString> = ReasonString as Str;
        /// User properties.
        user_properties: UserProperties = UserProperty as Pair;
    }
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP properties.
pub type PubAckProperties = AckProperties;
/// SUBACK properties.
pub type SubAckProperties = AckProperties;
/// UNSUBACK properties.
pub type UnsubAckProperties = AckProperties;

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
        return Err(fail(DecodeError::Malformed(
            "property length exceeds packet",
        )));
    }
    let (mut list, rest) = input.split_at(len);
    let mut props = P::default();
    let mut seen: u64 = 0;
    while !list.is_empty() {
        let (i, raw) = wire::varint(list)?;
        let id = PropertyId::try_from(raw).map_err(fail)?;
        let (i, ()) = props.read_one(id, &mut seen, frame, i)?;
        list = i;
    }
    props.finish().map_err(fail)?;
    Ok((rest, props))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With several bad fields, sizing reports the first in a fixed order: set-wide checks,
    /// then fields in table order, then `late` fields.
    #[test]
    fn the_first_bad_field_decides_the_encode_error() {
        let p = PublishProperties {
            subscription_identifiers: vec![0],
            content_type: Some(ByteString::from_static("a\0")),
            ..Default::default()
        };
        assert_eq!(
            p.inner_len(),
            Err(EncodeError::StringInvalid("contains U+0000"))
        );
        let p = ConnAckProperties {
            receive_maximum: Some(0),
            maximum_qos: Some(QoS::ExactlyOnce),
            ..Default::default()
        };
        assert_eq!(
            p.inner_len(),
            Err(EncodeError::InvalidProperty(PropertyId::MaximumQoS))
        );
        let p = ConnectProperties {
            receive_maximum: Some(0),
            maximum_packet_size: Some(0),
            ..Default::default()
        };
        assert_eq!(
            p.inner_len(),
            Err(EncodeError::InvalidProperty(PropertyId::ReceiveMaximum))
        );
    }

    #[test]
    fn allowed_in_follows_spec_table_2_4() {
        use PacketType as T;
        use PropertyId as P;
        let acks = [
            T::PubAck,
            T::PubRec,
            T::PubRel,
            T::PubComp,
            T::SubAck,
            T::UnsubAck,
        ];
        for &id in PropertyId::ALL {
            let (will, packets): (bool, Vec<T>) = match id {
                P::PayloadFormatIndicator
                | P::MessageExpiryInterval
                | P::ContentType
                | P::ResponseTopic
                | P::CorrelationData => (true, vec![T::Publish]),
                P::SubscriptionIdentifier => (false, vec![T::Publish, T::Subscribe]),
                P::SessionExpiryInterval => (false, vec![T::Connect, T::ConnAck, T::Disconnect]),
                P::AuthenticationMethod | P::AuthenticationData => {
                    (false, vec![T::Connect, T::ConnAck, T::Auth])
                }
                P::RequestProblemInformation | P::RequestResponseInformation => {
                    (false, vec![T::Connect])
                }
                P::WillDelayInterval => (true, vec![]),
                P::ServerReference => (false, vec![T::ConnAck, T::Disconnect]),
                P::ReasonString => {
                    let mut v = vec![T::ConnAck, T::Disconnect, T::Auth];
                    v.extend(acks);
                    (false, v)
                }
                P::ReceiveMaximum | P::TopicAliasMaximum | P::MaximumPacketSize => {
                    (false, vec![T::Connect, T::ConnAck])
                }
                P::TopicAlias => (false, vec![T::Publish]),
                P::UserProperty => {
                    let mut v = vec![
                        T::Connect,
                        T::ConnAck,
                        T::Publish,
                        T::Subscribe,
                        T::Unsubscribe,
                        T::Disconnect,
                        T::Auth,
                    ];
                    v.extend(acks);
                    (true, v)
                }
                P::AssignedClientIdentifier
                | P::ServerKeepAlive
                | P::ResponseInformation
                | P::MaximumQoS
                | P::RetainAvailable
                | P::WildcardSubscriptionAvailable
                | P::SubscriptionIdentifierAvailable
                | P::SharedSubscriptionAvailable => (false, vec![T::ConnAck]),
            };
            assert_eq!(id.allowed_in_will(), will, "{id:?} in will");
            for t in 1..=15u8 {
                let t = T::try_from(t).unwrap();
                assert_eq!(id.allowed_in(t), packets.contains(&t), "{id:?} in {t}");
            }
        }
    }
}

//! SUBSCRIBE (spec §3.8).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::packet::common::{check_id_list, decode_id_list, id_props_lens, write_id_props};
use crate::properties::SubscribeProperties;
use crate::wire::{self, fail, put_str, str_len, Body, Lens};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, QoS};

/// SUBSCRIBE: one or more topic filters with their options.
///
/// Topic-filter syntax is not checked here (that is `moco-topic`'s job, and a bad filter
/// earns a per-filter 0x8F in SUBACK rather than a broken connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier (not 0).
    pub packet_id: u16,
    /// Topic filters and their options, in wire order (never empty on the wire).
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
    /// SUBSCRIBE properties (v5).
    pub properties: SubscribeProperties,
}

/// Subscription options byte (spec §3.8.3.1). In v3.x only `qos` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS granted to messages of this subscription.
    pub qos: QoS,
    /// No Local: do not receive one's own publications (v5).
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag on forwarded messages (v5).
    pub retain_as_published: bool,
    /// When to send retained messages (v5).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with the given QoS and v5 defaults for the rest.
    #[inline]
    pub fn new(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }

    /// The options byte for protocol `v` (v3.x carries only the QoS).
    #[inline]
    pub fn to_byte(self, v: ProtocolVersion) -> u8 {
        let mut b = self.qos as u8;
        if v.is_v5() {
            b |= u8::from(self.no_local) << 2;
            b |= u8::from(self.retain_as_published) << 3;
            b |= (self.retain_handling as u8) << 4;
        }
        b
    }

    /// Parses an options byte: reserved bits or QoS 3 are 0x81, retain handling 3 is 0x82.
    #[inline]
    pub fn from_byte(b: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if v.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::Malformed(
                "subscription options reserved bits set",
            ));
        }
        let qos = QoS::try_from(b & 0b11)?;
        let retain_handling = match (b >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::Protocol("retain handling 3")),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0b0100 != 0,
            retain_as_published: b & 0b1000 != 0,
            retain_handling,
        })
    }
}

/// Retain Handling subscription option (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send retained messages only if the subscription did not exist.
    SendAtSubscribeIfNew = 1,
    /// 2: never send retained messages for this subscription.
    DoNotSend = 2,
}

impl Subscribe {
    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties, filters) = decode_id_list(
            frame,
            body,
            v,
            |i| {
                let (i, filter) = wire::string(frame, i)?;
                let (i, opts) = wire::u8(i)?;
                let opts = SubscriptionOptions::from_byte(opts, v).map_err(fail)?;
                Ok((i, (filter, opts)))
            },
            "SUBSCRIBE without topic filters",
        )?;
        Ok(Subscribe {
            packet_id,
            filters,
            properties,
        })
    }
}

impl Body for Subscribe {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x82
    }

    #[inline]
    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        check_id_list(self.packet_id, self.filters.len(), PacketType::Subscribe)?;
        let mut lens = id_props_lens(&self.properties, v)?;
        for (f, _) in &self.filters {
            lens.remaining += str_len(f)? + 1;
        }
        Ok(lens)
    }

    #[inline]
    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        write_id_props(self.packet_id, &self.properties, v, lens, buf);
        for (f, o) in &self.filters {
            put_str(buf, f);
            buf.put_u8(o.to_byte(v));
        }
    }
}

super::common::impl_encode!(Subscribe);

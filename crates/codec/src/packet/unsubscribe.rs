//! UNSUBSCRIBE (spec §3.10).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::properties::{decode_section, PropertySet, UnsubscribeProperties};
use crate::wire::{self, complete, fail, put_str, str_len, Body, Lens};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion};

/// UNSUBSCRIBE: one or more topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier (not 0).
    pub packet_id: u16,
    /// Topic filters, in wire order (never empty on the wire).
    pub filters: Vec<ByteString>,
    /// UNSUBSCRIBE properties (v5).
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        complete(body, |i| {
            let (i, packet_id) = wire::packet_id(i)?;
            let (mut i, properties) = if v.is_v5() {
                decode_section::<UnsubscribeProperties>(frame, i)?
            } else {
                (i, UnsubscribeProperties::default())
            };
            let mut filters = Vec::new();
            while !i.is_empty() {
                let (rest, filter) = wire::string(frame, i)?;
                filters.push(filter);
                i = rest;
            }
            if filters.is_empty() {
                return Err(fail(DecodeError::Protocol(
                    "UNSUBSCRIBE without topic filters",
                )));
            }
            Ok((
                i,
                Unsubscribe {
                    packet_id,
                    filters,
                    properties,
                },
            ))
        })
    }
}

impl Body for Unsubscribe {
    #[inline]
    fn first_byte(&self) -> u8 {
        0xA2
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyList(PacketType::Unsubscribe));
        }
        let mut lens = Lens::default();
        let mut n = 2;
        if v.is_v5() {
            let (inner, section) = self.properties.section_len()?;
            lens.props = inner;
            n += section;
        }
        for f in &self.filters {
            n += str_len(f)?;
        }
        lens.remaining = n;
        Ok(lens)
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        if v.is_v5() {
            self.properties.write_section(lens.props, buf);
        }
        for f in &self.filters {
            put_str(buf, f);
        }
    }
}

super::common::impl_encode!(Unsubscribe);

//! UNSUBSCRIBE (spec §3.10).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::packet::common::{check_id_list, decode_id_list, id_props_lens, write_id_props};
use crate::properties::UnsubscribeProperties;
use crate::wire::{self, put_str, str_len, Body, Lens};
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
        let (packet_id, properties, filters) = decode_id_list(
            frame,
            body,
            v,
            |i| wire::string(frame, i),
            "UNSUBSCRIBE without topic filters",
        )?;
        Ok(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    }
}

impl Body for Unsubscribe {
    #[inline]
    fn first_byte(&self) -> u8 {
        0xA2
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        check_id_list(self.packet_id, self.filters.len(), PacketType::Unsubscribe)?;
        let mut lens = id_props_lens(&self.properties, v)?;
        for f in &self.filters {
            lens.remaining += str_len(f)?;
        }
        Ok(lens)
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        write_id_props(self.packet_id, &self.properties, v, lens, buf);
        for f in &self.filters {
            put_str(buf, f);
        }
    }
}

super::common::impl_encode!(Unsubscribe);

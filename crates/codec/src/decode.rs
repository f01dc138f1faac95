//! The streaming [`Decoder`] over a connection's `BytesMut` read buffer, and
//! [`decode_packet`] for one whole frame: the top of the codec's import graph (see
//! `wire`'s module documentation).

use bytes::{Bytes, BytesMut};

use crate::packet::{Packet, Publish};
use crate::wire::FixedHeader;
use crate::{DecodeError, PacketType, ProtocolVersion};

/// Decodes one whole packet (fixed header included) for protocol `version`.
///
/// A CONNECT is decoded by its own protocol level whatever `version` says. The frame must
/// hold exactly one packet.
pub fn decode_packet(frame: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let header =
        FixedHeader::parse(&frame)?.ok_or(DecodeError::Malformed("truncated fixed header"))?;
    if frame.len() != header.frame_len() {
        return Err(DecodeError::Malformed(
            "frame length differs from remaining length",
        ));
    }
    check_version(header.packet_type, Some(version))?;
    Packet::decode_frame(&header, frame, version)?.ok_or(DecodeError::Malformed("truncated packet"))
}

#[inline]
fn check_version(t: PacketType, v: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    match v {
        // Common case first: a version is known and the packet is not AUTH.
        Some(v) if t != PacketType::Auth || v.is_v5() => Ok(()),
        _ if t == PacketType::Connect => Ok(()),
        _ => Err(DecodeError::UnexpectedPacket(t, v)),
    }
}

/// Streaming decoder for one connection.
///
/// Feed it the connection's read buffer; it takes whole packets off the front and leaves a
/// partial packet untouched. Before a protocol version is known only CONNECT is accepted
/// (anything else is 0x82); decoding a CONNECT adopts its protocol level.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_packet_size: u32,
    version: Option<ProtocolVersion>,
}

impl Decoder {
    /// A decoder that refuses packets larger than `max_packet_size` bytes (fixed header
    /// included) with 0x95 Packet too large; `0` means no limit beyond the protocol's own.
    pub fn new(max_packet_size: u32) -> Self {
        Decoder {
            max_packet_size,
            version: None,
        }
    }

    /// A decoder already set to protocol `version` (e.g. on the client side).
    pub fn with_version(max_packet_size: u32, version: ProtocolVersion) -> Self {
        Decoder {
            max_packet_size,
            version: Some(version),
        }
    }

    /// The protocol version in use, once known.
    #[inline]
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version (a client sets it when it sends CONNECT).
    #[inline]
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The maximum packet size in force (`0` = no limit).
    #[inline]
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size (`0` = no limit).
    #[inline]
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes the next packet from the front of `buf`.
    ///
    /// * `Ok(None)`: `buf` holds only part of a packet; nothing was consumed.
    /// * `Ok(Some(p))`: the packet's bytes were split off `buf`; `p` shares them.
    /// * `Err(e)`: the stream is broken; `e.reason_code()` says why. The size check is made
    ///   from the fixed header alone, before the body is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf)? else {
            // Fail fast on a packet type that is not allowed yet, even with one byte.
            if let Some(&b) = buf.first() {
                if let Ok(t) = PacketType::try_from(b >> 4) {
                    check_version(t, self.version)?;
                }
            }
            return Ok(None);
        };
        check_version(header.packet_type, self.version)?;
        let total = header.frame_len();
        if self.max_packet_size != 0 && total as u64 > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size: total as u64,
                max: self.max_packet_size,
            });
        }
        if buf.len() < total {
            return Ok(None);
        }
        if let Some(v) = self.version {
            if keeps_nothing_of_frame(&header) {
                // Decoded where it lies: splitting a frame off costs a reference count per
                // packet, and an allocation when the buffer was not shared yet (a lone PINGREQ
                // or PUBACK usually arrives in a fresh one).
                let packet =
                    Packet::decode_short(header.packet_type, &buf[header.header_len..total], v);
                bytes::Buf::advance(buf, total);
                return packet;
            }
        }
        let frame = buf.split_to(total).freeze();
        if let (PacketType::Publish, Some(v)) = (header.packet_type, self.version) {
            // Hot path, inlined here: no dispatch over the other packet types.
            return Publish::decode(frame, header.flags, header.header_len, v, Packet::Publish);
        }
        match self.version {
            // Hot path: hand the result straight back (no extra move of the packet).
            Some(v) => Packet::decode_frame(&header, frame, v),
            None => {
                let packet = Packet::decode_frame(&header, frame, ProtocolVersion::V311);
                if let Ok(Some(Packet::Connect(c))) = &packet {
                    self.version = Some(c.protocol);
                }
                packet
            }
        }
    }
}

/// Packets whose decoded form holds no slice of their frame: pings, and acknowledgements and
/// DISCONNECTs too short to carry properties (packet id and reason code at most). Their body
/// decoders never look at the frame they are given.
fn keeps_nothing_of_frame(h: &FixedHeader) -> bool {
    match h.packet_type {
        PacketType::PingReq | PacketType::PingResp => true,
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            h.remaining_length <= 3
        }
        PacketType::Disconnect => h.remaining_length <= 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The in-place decoding of short packets gives what decoding their split-off frame
        /// gives, for any body of up to 3 bytes, valid or not, and consumes the same bytes.
        #[test]
        fn short_packets_decode_in_place_as_from_their_frame(
            first in prop::sample::select(vec![0x40u8, 0x50, 0x62, 0x70, 0xC0, 0xD0, 0xE0]),
            body in prop::collection::vec(any::<u8>(), 0..=3),
            v5 in any::<bool>(),
            trailing in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let v = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
            // A DISCONNECT with more than a reason code may carry properties: not short.
            let body = if first == 0xE0 { &body[..body.len().min(1)] } else { &body[..] };
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&[first, body.len() as u8]);
            buf.extend_from_slice(body);
            let frame = Bytes::copy_from_slice(&buf);
            buf.extend_from_slice(&trailing);
            let header = FixedHeader::parse(&buf).unwrap().unwrap();
            prop_assert!(keeps_nothing_of_frame(&header));
            let expected = Packet::decode_frame(&header, frame, v);
            let got = Decoder::with_version(0, v).decode(&mut buf);
            match (got, expected) {
                (Ok(g), Ok(e)) => prop_assert_eq!(g, e),
                (Err(g), Err(e)) => prop_assert_eq!(g.to_string(), e.to_string()),
                (g, e) => prop_assert!(false, "in place {g:?}, from the frame {e:?}"),
            }
            prop_assert_eq!(&buf[..], &trailing[..]);
        }
    }
}

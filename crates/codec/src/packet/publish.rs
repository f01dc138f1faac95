//! PUBLISH (spec §3.3) — the hot path of the broker.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::properties::{decode_section_into, PropertySet, PublishProperties};
use crate::wire::{self, has_wildcard_or_nul, put_str, topic_len, unwrap_err, Body, Lens};
use crate::{DecodeError, EncodeError, ProtocolVersion, QoS};

/// PUBLISH: an application message.
///
/// `packet_id` is `Some(id)` (id ≠ 0) exactly when `qos > 0`, and `None` for QoS 0; the
/// encoder refuses any other combination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// DUP: this may be a re-delivery (QoS > 0 only).
    pub dup: bool,
    /// QoS of this delivery.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name (no wildcards; empty only in v5 with a Topic Alias).
    pub topic: ByteString,
    /// Packet identifier, present iff `qos > 0`.
    pub packet_id: Option<u16>,
    /// Application payload, shared with the read buffer when decoded.
    pub payload: Bytes,
    /// PUBLISH properties (v5).
    pub properties: PublishProperties,
}

impl Publish {
    /// A QoS 0, non-retained message with no properties.
    #[inline]
    pub fn new(topic: impl Into<ByteString>, payload: impl Into<Bytes>) -> Self {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            ..Publish::default()
        }
    }

    /// Decodes a PUBLISH, consuming the frame: the payload is the frame itself advanced past
    /// the headers, so decoding costs one reference-count increment (the topic) beyond it.
    ///
    /// `wrap` (`Packet::Publish`) builds the finished packet here, in the caller's return slot,
    /// so the large value is not moved once more; this file need not name `Packet`, which
    /// sits above it.
    #[inline(always)]
    pub(crate) fn decode<P>(
        frame: Bytes,
        flags: u8,
        header_len: usize,
        v: ProtocolVersion,
        wrap: impl FnOnce(Publish) -> P,
    ) -> Result<Option<P>, DecodeError> {
        // Flags were validated with the fixed header (QoS 3 and DUP on QoS 0 rejected).
        let qos = QoS::try_from((flags >> 1) & 0b11)?;
        let body = &frame[header_len..];
        let (i, topic) = wire::len_prefixed(body).map_err(unwrap_err)?;
        if has_wildcard_or_nul(topic) {
            return Err(if topic.contains(&0) {
                DecodeError::Malformed("U+0000 in string")
            } else {
                DecodeError::TopicNameInvalid("wildcard in topic name")
            });
        }
        let empty_topic = topic.is_empty();
        // The topic starts right after its 2-byte length: slice by offset (cheaper than
        // `slice_ref`, which re-derives and re-checks the offsets from pointers).
        let start = header_len + 2;
        let topic = ByteString::try_from(frame.slice(start..start + topic.len()))
            .map_err(|_| DecodeError::Malformed("invalid UTF-8"))?;
        let (i, packet_id) = if qos == QoS::AtMostOnce {
            (i, None)
        } else {
            let (i, id) = wire::packet_id(i).map_err(unwrap_err)?;
            (i, Some(id))
        };
        let mut properties = PublishProperties::default();
        let i = if v.is_v5() {
            decode_section_into(&frame, i, &mut properties)
                .map_err(unwrap_err)?
                .0
        } else {
            i
        };
        if empty_topic && properties.topic_alias.is_none() {
            // v5 §3.3.2.1: a zero-length topic needs a Topic Alias; v3.x §4.7.3: never empty.
            return Err(DecodeError::Protocol(
                "empty topic name without topic alias",
            ));
        }
        let payload = if i.is_empty() {
            Bytes::new()
        } else {
            let offset = frame.len() - i.len();
            let mut payload = frame;
            payload.advance(offset);
            payload
        };
        Ok(Some(wrap(Publish {
            dup: flags & 0b1000 != 0,
            qos,
            retain: flags & 0b0001 != 0,
            topic,
            packet_id,
            payload,
            properties,
        })))
    }
}

impl Body for Publish {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x30 | (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    #[inline]
    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        let id_len = match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) => {
                if self.dup {
                    return Err(EncodeError::Invalid("DUP set on a QoS 0 PUBLISH"));
                }
                0
            }
            (QoS::AtMostOnce, Some(_)) | (_, None) => return Err(EncodeError::PacketIdMismatch),
            (_, Some(0)) => return Err(EncodeError::ZeroPacketId),
            (_, Some(_)) => 2,
        };
        let v5 = v.is_v5();
        let mut lens = Lens::default();
        let mut n = topic_len(&self.topic, v5 && self.properties.topic_alias.is_some())?;
        n += id_len;
        if v5 {
            let (inner, section) = self.properties.section_len()?;
            lens.props = inner;
            n += section;
        }
        lens.remaining = n + self.payload.len();
        Ok(lens)
    }

    #[inline]
    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        put_str(buf, &self.topic);
        if let Some(id) = self.packet_id {
            buf.put_u16(id);
        }
        if v.is_v5() {
            self.properties.write_section(lens.props, buf);
        }
        buf.put_slice(&self.payload);
    }
}

super::common::impl_encode!(Publish);

//! PUBACK (spec §3.4), plus the layout shared by PUBACK, PUBREC, PUBREL and PUBCOMP.

use bytes::{BufMut, Bytes, BytesMut};

use crate::decode::{self, complete};
use crate::encode::Lens;
use crate::properties::{decode_section, AckProperties, PropertySet};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

super::pub_ack!(
    /// PUBACK: acknowledges a QoS 1 PUBLISH.
    PubAck,
    PacketType::PubAck,
    0x40
);

/// Decodes packet id, reason code and properties of a PUBLISH acknowledgement. In v5 the
/// reason code and properties may be omitted (remaining length 2 → Success, 3 → no props).
pub(crate) fn decode_ack(
    frame: &Bytes,
    body: &[u8],
    v: ProtocolVersion,
    t: PacketType,
) -> Result<(u16, ReasonCode, AckProperties), DecodeError> {
    complete(body, |i| {
        let (i, id) = decode::packet_id(i)?;
        if !v.is_v5() || i.is_empty() {
            return Ok((i, (id, ReasonCode::Success, AckProperties::default())));
        }
        let (i, rc) = decode::u8(i)?;
        let rc = reason(rc, t).map_err(decode::fail)?;
        if i.is_empty() {
            return Ok((i, (id, rc, AckProperties::default())));
        }
        let (i, props) = decode_section::<AckProperties>(frame, i)?;
        Ok((i, (id, rc, props)))
    })
}

/// Parses a v5 reason code byte and checks it is allowed in packet `t`: an unknown value is
/// 0x81 Malformed, a known value not allowed in this packet is 0x82 Protocol Error.
pub(crate) fn reason(b: u8, t: PacketType) -> Result<ReasonCode, DecodeError> {
    let rc = ReasonCode::try_from(b)?;
    if !rc.allowed_in(t) {
        return Err(DecodeError::Protocol(
            "reason code not allowed in this packet",
        ));
    }
    Ok(rc)
}

pub(crate) fn ack_lens(
    id: u16,
    rc: ReasonCode,
    props: &AckProperties,
    v: ProtocolVersion,
    t: PacketType,
) -> Result<Lens, EncodeError> {
    if id == 0 {
        return Err(EncodeError::ZeroPacketId);
    }
    if !rc.allowed_in(t) {
        return Err(EncodeError::InvalidReasonCode(t, rc));
    }
    if !v.is_v5() {
        return Ok(Lens {
            remaining: 2,
            ..Lens::default()
        });
    }
    if props.is_empty() {
        let remaining = if rc == ReasonCode::Success { 2 } else { 3 };
        return Ok(Lens {
            remaining,
            ..Lens::default()
        });
    }
    let (inner, section) = props.section_len()?;
    Ok(Lens {
        remaining: 3 + section,
        props: inner,
        will_props: 0,
    })
}

pub(crate) fn ack_write(
    id: u16,
    rc: ReasonCode,
    props: &AckProperties,
    _v: ProtocolVersion,
    lens: &Lens,
    buf: &mut BytesMut,
) {
    buf.put_u16(id);
    if lens.remaining > 2 {
        buf.put_u8(rc as u8);
    }
    if lens.remaining > 3 {
        props.write_section(lens.props, buf);
    }
}

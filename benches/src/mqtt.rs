//! A minimal MQTT v3.1.1 client codec for the load generator.
//!
//! It encodes only what the load generator sends (CONNECT, SUBSCRIBE, PUBLISH, the QoS 1/2
//! acknowledgements, PINGREQ) and decodes only frame boundaries plus the few fields it reads back
//! (packet type, flags, packet id, payload). It is deliberately independent of `moco-codec`, so a
//! bug in moco's codec cannot hide behind the same bug in the tool that measures it.

use bytes::{BufMut, BytesMut};

/// CONNECT packet type.
pub const CONNECT: u8 = 1;
/// CONNACK packet type.
pub const CONNACK: u8 = 2;
/// PUBLISH packet type.
pub const PUBLISH: u8 = 3;
/// PUBACK packet type.
pub const PUBACK: u8 = 4;
/// PUBREC packet type.
pub const PUBREC: u8 = 5;
/// PUBREL packet type.
pub const PUBREL: u8 = 6;
/// PUBCOMP packet type.
pub const PUBCOMP: u8 = 7;
/// SUBSCRIBE packet type.
pub const SUBSCRIBE: u8 = 8;
/// SUBACK packet type.
pub const SUBACK: u8 = 9;
/// PINGREQ packet type.
pub const PINGREQ: u8 = 12;
/// PINGRESP packet type.
pub const PINGRESP: u8 = 13;

/// Appends the MQTT variable-length "remaining length" encoding of `len`.
pub fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    assert!(len < 268_435_456, "MQTT packets are at most 256 MiB");
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).expect("MQTT strings are at most 65535 bytes");
    buf.put_u16(len);
    buf.put_slice(s.as_bytes());
}

/// Appends a v3.1.1 CONNECT with a clean session, no credentials and no will.
pub fn connect(buf: &mut BytesMut, client_id: &str, keep_alive_secs: u16) {
    let body = 10 + 2 + client_id.len();
    buf.put_u8(CONNECT << 4);
    put_remaining_length(buf, body);
    put_str(buf, "MQTT");
    buf.put_u8(4); // protocol level 4 = v3.1.1
    buf.put_u8(0x02); // clean session
    buf.put_u16(keep_alive_secs);
    put_str(buf, client_id);
}

/// Appends a SUBSCRIBE for one filter at `qos`.
pub fn subscribe(buf: &mut BytesMut, packet_id: u16, filter: &str, qos: u8) {
    let body = 2 + 2 + filter.len() + 1;
    buf.put_u8((SUBSCRIBE << 4) | 0x02);
    put_remaining_length(buf, body);
    buf.put_u16(packet_id);
    put_str(buf, filter);
    buf.put_u8(qos);
}

/// Appends a PINGREQ.
pub fn pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[PINGREQ << 4, 0]);
}

/// Appends a two-byte-body acknowledgement (`PUBACK`, `PUBREC`, `PUBREL`, `PUBCOMP`).
pub fn ack(buf: &mut BytesMut, kind: u8, packet_id: u16) {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    buf.put_u8((kind << 4) | flags);
    buf.put_u8(2);
    buf.put_u16(packet_id);
}

/// A pre-encoded PUBLISH whose packet id and payload prefix can be patched in place, so the
/// load generator never re-encodes a message on the hot path.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Offset of the two packet-id bytes (QoS > 0 only).
    pid_at: Option<usize>,
    /// Offset of the first payload byte.
    payload_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH to `topic` with `payload_len` zero bytes of payload (a packet id of 1
    /// when `qos > 0`).
    pub fn new(topic: &str, payload_len: usize, qos: u8, retain: bool) -> Self {
        let mut buf = BytesMut::with_capacity(topic.len() + payload_len + 16);
        let body = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload_len;
        buf.put_u8((PUBLISH << 4) | (qos << 1) | u8::from(retain));
        put_remaining_length(&mut buf, body);
        put_str(&mut buf, topic);
        let pid_at = if qos > 0 {
            let at = buf.len();
            buf.put_u16(1);
            Some(at)
        } else {
            None
        };
        let payload_at = buf.len();
        buf.put_bytes(0, payload_len);
        Self {
            bytes: buf.to_vec(),
            pid_at,
            payload_at,
        }
    }

    /// The encoded packet.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded length of one packet.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoded packet is empty (never: kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends this packet to `buf` with `packet_id` (ignored at QoS 0) and, when given, a
    /// `stamp` written little-endian into the first 8 payload bytes.
    pub fn append(&self, buf: &mut BytesMut, packet_id: u16, stamp: Option<u64>) {
        let start = buf.len();
        buf.put_slice(&self.bytes);
        if let Some(at) = self.pid_at {
            buf[start + at..start + at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        if let Some(stamp) = stamp {
            let at = start + self.payload_at;
            let n = (self.bytes.len() - self.payload_at).min(8);
            buf[at..at + n].copy_from_slice(&stamp.to_le_bytes()[..n]);
        }
    }
}

/// One decoded frame, borrowing from the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Packet type (high nibble of the first byte).
    pub kind: u8,
    /// Flags (low nibble of the first byte).
    pub flags: u8,
    /// The variable header and payload.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// QoS of a PUBLISH.
    pub fn qos(&self) -> u8 {
        (self.flags >> 1) & 0x03
    }

    /// Whether a PUBLISH has its retain flag set.
    pub fn retain(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// Packet id of an acknowledgement (the first two body bytes).
    pub fn ack_id(&self) -> Option<u16> {
        Some(u16::from_be_bytes([
            *self.body.first()?,
            *self.body.get(1)?,
        ]))
    }

    /// For a PUBLISH: its packet id (0 at QoS 0) and its payload.
    pub fn publish(&self) -> Option<(u16, &[u8])> {
        let tlen = usize::from(u16::from_be_bytes([
            *self.body.first()?,
            *self.body.get(1)?,
        ]));
        let mut at = 2 + tlen;
        let pid = if self.qos() > 0 {
            let pid = u16::from_be_bytes([*self.body.get(at)?, *self.body.get(at + 1)?]);
            at += 2;
            pid
        } else {
            0
        };
        Some((pid, self.body.get(at..)?))
    }
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The remaining length used more than four bytes.
    BadLength,
}

/// Parses the first complete frame in `buf`: `Ok(Some((frame, consumed)))`, `Ok(None)` when more
/// bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(FrameError::BadLength);
        }
    }
    let end = at + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            kind: first >> 4,
            flags: first & 0x0f,
            body: &buf[at..end],
        },
        end,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_boundaries() {
        for (len, want) in [
            (0usize, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
        ] {
            let mut buf = BytesMut::new();
            put_remaining_length(&mut buf, len);
            assert_eq!(&buf[..], &want[..], "len {len}");
        }
    }

    #[test]
    fn connect_matches_the_spec_example_layout() {
        let mut buf = BytesMut::new();
        connect(&mut buf, "ab", 60);
        assert_eq!(
            &buf[..],
            &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn publish_template_patches_and_parses_back() {
        let t = PublishTemplate::new("a/b", 16, 1, false);
        let mut buf = BytesMut::new();
        t.append(&mut buf, 0x1234, Some(42));
        t.append(&mut buf, 7, None);
        let (f, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, t.len());
        assert_eq!((f.kind, f.qos(), f.retain()), (PUBLISH, 1, false));
        let (pid, payload) = f.publish().unwrap();
        assert_eq!(pid, 0x1234);
        assert_eq!(payload.len(), 16);
        assert_eq!(u64::from_le_bytes(payload[..8].try_into().unwrap()), 42);
        let (f2, _) = parse(&buf[used..]).unwrap().unwrap();
        assert_eq!(f2.publish().unwrap().0, 7);
    }

    #[test]
    fn parse_waits_for_a_whole_frame() {
        let t = PublishTemplate::new("t", 300, 0, true);
        let mut buf = BytesMut::new();
        t.append(&mut buf, 0, None);
        for cut in 0..buf.len() {
            assert!(parse(&buf[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let (f, _) = parse(&buf).unwrap().unwrap();
        assert!(f.retain());
        assert_eq!(f.publish().unwrap(), (0, &[0u8; 300][..]));
    }

    #[test]
    fn acks_round_trip() {
        let mut buf = BytesMut::new();
        ack(&mut buf, PUBREL, 9);
        assert_eq!(&buf[..], &[0x62, 2, 0, 9]);
        let (f, _) = parse(&buf).unwrap().unwrap();
        assert_eq!((f.kind, f.ack_id()), (PUBREL, Some(9)));
    }
}

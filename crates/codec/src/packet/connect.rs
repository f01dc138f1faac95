//! CONNECT (spec §3.1).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::properties::{decode_section, ConnectProperties, PropertySet, WillProperties};
use crate::wire::{
    self, bin_len, complete, fail, put_bin, put_str, put_varint, str_len, topic_len, Body, Lens,
};
use crate::{DecodeError, EncodeError, ProtocolVersion, QoS};

/// CONNECT: the first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level / name the client speaks.
    pub protocol: ProtocolVersion,
    /// Clean Start (v5) / Clean Session (v3.x).
    pub clean_start: bool,
    /// Keep alive in seconds (0 = off).
    pub keep_alive: u16,
    /// Client identifier (may be empty).
    pub client_id: ByteString,
    /// User name.
    pub username: Option<ByteString>,
    /// Password (binary). In v3.x it requires a user name.
    pub password: Option<Bytes>,
    /// Last will.
    pub will: Option<LastWill>,
    /// CONNECT properties (v5).
    pub properties: ConnectProperties,
}

impl Connect {
    /// A CONNECT for `protocol` with clean start, the given client id and nothing else.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<ByteString>) -> Self {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties::default(),
        }
    }
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic (a topic name: no wildcards).
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// Will properties (v5).
    pub properties: WillProperties,
}

const USERNAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_FLAG: u8 = 0x04;
const CLEAN: u8 = 0x02;

impl Connect {
    pub(crate) fn decode(frame: &Bytes, body: &[u8]) -> Result<Self, DecodeError> {
        complete(body, |i| {
            let (i, name) = wire::len_prefixed(i)?;
            let (i, level) = wire::u8(i)?;
            let protocol = match (name, level) {
                (b"MQTT", 4) => ProtocolVersion::V311,
                (b"MQTT", 5) => ProtocolVersion::V5,
                (b"MQIsdp", 3) => ProtocolVersion::V3,
                _ => return Err(fail(DecodeError::UnsupportedProtocolVersion(level))),
            };
            let v5 = protocol.is_v5();
            let (i, flags) = wire::u8(i)?;
            if flags & 0x01 != 0 {
                return Err(fail(DecodeError::Malformed("CONNECT reserved flag set")));
            }
            let will_qos = (flags >> 3) & 0b11;
            if will_qos == 3 {
                return Err(fail(DecodeError::Malformed("will QoS 3")));
            }
            let will_flag = flags & WILL_FLAG != 0;
            if !will_flag && (will_qos != 0 || flags & WILL_RETAIN != 0) {
                return Err(fail(DecodeError::Malformed(
                    "will QoS / retain without will flag",
                )));
            }
            if !v5 && flags & PASSWORD != 0 && flags & USERNAME == 0 {
                return Err(fail(DecodeError::Malformed(
                    "password flag without user name flag",
                )));
            }
            let (i, keep_alive) = wire::u16(i)?;
            let (i, properties) = if v5 {
                decode_section::<ConnectProperties>(frame, i)?
            } else {
                (i, ConnectProperties::default())
            };
            let (i, client_id) = wire::string(frame, i)?;
            let (i, will) = if will_flag {
                let (i, properties) = if v5 {
                    decode_section::<WillProperties>(frame, i)?
                } else {
                    (i, WillProperties::default())
                };
                let (i, topic) = wire::len_prefixed(i)?;
                check_topic(topic).map_err(fail)?;
                let topic = wire::to_string(frame, topic).map_err(fail)?;
                let (i, payload) = wire::binary(frame, i)?;
                let will = LastWill {
                    topic,
                    payload,
                    qos: QoS::try_from(will_qos).map_err(fail)?,
                    retain: flags & WILL_RETAIN != 0,
                    properties,
                };
                (i, Some(will))
            } else {
                (i, None)
            };
            let (i, username) = if flags & USERNAME != 0 {
                let (i, u) = wire::string(frame, i)?;
                (i, Some(u))
            } else {
                (i, None)
            };
            let (i, password) = if flags & PASSWORD != 0 {
                let (i, p) = wire::binary(frame, i)?;
                (i, Some(p))
            } else {
                (i, None)
            };
            Ok((
                i,
                Connect {
                    protocol,
                    clean_start: flags & CLEAN != 0,
                    keep_alive,
                    client_id,
                    username,
                    password,
                    will,
                    properties,
                },
            ))
        })
    }
}

/// A will / PUBLISH topic name must be non-empty and hold no wildcard (spec §3.3.2.1, §4.7).
#[inline]
pub(crate) fn check_topic(t: &[u8]) -> Result<(), DecodeError> {
    if t.is_empty() {
        return Err(DecodeError::Protocol("empty topic name"));
    }
    if t.iter().any(|&b| b == b'+' || b == b'#') {
        return Err(DecodeError::TopicNameInvalid("wildcard in topic name"));
    }
    Ok(())
}

impl Body for Connect {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x10
    }

    #[inline]
    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if v != self.protocol {
            return Err(EncodeError::VersionMismatch(self.protocol, v));
        }
        let mut lens = Lens::default();
        let mut n = 2 + v.protocol_name().len() + 1 + 1 + 2;
        if v.is_v5() {
            let (inner, section) = self.properties.section_len()?;
            lens.props = inner;
            n += section;
        }
        n += str_len(&self.client_id)?;
        if let Some(w) = &self.will {
            if v.is_v5() {
                let (inner, section) = w.properties.section_len()?;
                lens.will_props = inner;
                n += section;
            }
            n += topic_len(&w.topic, false)?;
            n += bin_len(&w.payload)?;
        }
        if let Some(u) = &self.username {
            n += str_len(u)?;
        } else if self.password.is_some() && !v.is_v5() {
            return Err(EncodeError::Invalid("v3.x password requires a user name"));
        }
        if let Some(p) = &self.password {
            n += bin_len(p)?;
        }
        lens.remaining = n;
        Ok(lens)
    }

    #[inline]
    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        let mut flags = 0u8;
        if self.clean_start {
            flags |= CLEAN;
        }
        if let Some(w) = &self.will {
            flags |= WILL_FLAG | ((w.qos as u8) << 3);
            if w.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        // Protocol name, level, flags and keep alive in one write.
        let [ka_hi, ka_lo] = self.keep_alive.to_be_bytes();
        if v == ProtocolVersion::V3 {
            buf.put_slice(&[
                0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, flags, ka_hi, ka_lo,
            ]);
        } else {
            buf.put_slice(&[0, 4, b'M', b'Q', b'T', b'T', v.level(), flags, ka_hi, ka_lo]);
        }
        if v.is_v5() {
            self.properties.write_section(lens.props, buf);
        }
        put_str(buf, &self.client_id);
        if let Some(w) = &self.will {
            if v.is_v5() {
                put_varint(buf, lens.will_props);
                w.properties.write(buf);
            }
            put_str(buf, &w.topic);
            put_bin(buf, &w.payload);
        }
        if let Some(u) = &self.username {
            put_str(buf, u);
        }
        if let Some(p) = &self.password {
            put_bin(buf, p);
        }
    }
}

super::common::impl_encode!(Connect);

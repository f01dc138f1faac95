//! The records [`Persistence`](crate::Persistence) keeps, and their keys.
//!
//! Keys start with one byte naming the record kind and a `/`; the client id (MQTT forbids
//! U+0000 in it) is followed by a 0 byte, so every record of a client is one prefix scan or
//! delete and no id is a prefix of another's records. Numbers in keys are big-endian, so key
//! order is numeric order (a session's queue scans back in the order it was queued).
//!
//! | key | value |
//! |---|---|
//! | `s/{client}` | [`SessionRecord`] |
//! | `u/{client}\0{filter}` | [`SubscriptionRecord`] |
//! | `q/{client}\0{seq: u64}` | [`DeliveryRecord`]: a message queued for the session |
//! | `i/{client}\0{packet id: u16}` | [`DeliveryRecord`]: a message in flight to the client |
//! | `p/{client}\0{packet id: u16}` | empty: an inbound QoS 2 id awaiting PUBREL |
//! | `m/{message id: u64}` | a message, stored once for every queue and flight that holds it |
//! | `t/{topic}` | a retained message |
//! | `w/{client}` | [`WillRecord`]: the will of a connected client (published after a crash) |
//! | `y/sys` | the `$SYS` counters (the engine's `SysSnapshot`) |
//!
//! Messages (`m/` and `t/`) are stored as the v5 PUBLISH that carries them (topic, payload,
//! properties, with the expiry interval left at the time of writing) behind the time it was
//! written, so a restart serves them with the expiry honestly counted down and the payload
//! comes back as a slice of the stored value, not a copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use moco_engine::codec::{Packet, ProtocolVersion, Publish, QoS};
use moco_engine::message::{DeliveryParams, Message};
use serde::{Deserialize, Serialize};

use crate::{decode_raw, encode_raw, StoreError};

pub(crate) const SESSION: &[u8] = b"s/";
pub(crate) const SUBSCRIPTION: &[u8] = b"u/";
pub(crate) const QUEUED: &[u8] = b"q/";
pub(crate) const INFLIGHT: &[u8] = b"i/";
pub(crate) const PENDING_REL: &[u8] = b"p/";
pub(crate) const MESSAGE: &[u8] = b"m/";
pub(crate) const RETAINED: &[u8] = b"t/";
pub(crate) const SYS: &[u8] = b"y/sys";
pub(crate) const WILL: &[u8] = b"w/";

pub(crate) fn will_key(client: &str) -> Vec<u8> {
    [WILL, client.as_bytes()].concat()
}

/// The will of a connected client: if the broker dies, the connection was lost without
/// DISCONNECT, and the will is published when it starts again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WillRecord {
    /// The client's session expiry interval (caps the will delay).
    pub(crate) expiry: u32,
    /// The will delay interval.
    pub(crate) delay: u32,
    /// The will as a message record ([`encode_publish`]).
    pub(crate) message: Vec<u8>,
}

/// `kind` + `client` (the session record's key).
pub(crate) fn session_key(client: &str) -> Vec<u8> {
    [SESSION, client.as_bytes()].concat()
}

/// `kind` + `client` + 0: the prefix of one client's records of that kind.
pub(crate) fn client_prefix(kind: &[u8], client: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(kind.len() + client.len() + 1);
    k.extend_from_slice(kind);
    k.extend_from_slice(client.as_bytes());
    k.push(0);
    k
}

/// A client's record of `kind` under `rest`.
pub(crate) fn client_key(kind: &[u8], client: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = client_prefix(kind, client);
    k.extend_from_slice(rest);
    k
}

/// Splits a client record's key into the client id and what follows its 0 byte.
pub(crate) fn split_client_key(kind: &[u8], key: &[u8]) -> Option<(String, Vec<u8>)> {
    let rest = key.strip_prefix(kind)?;
    let at = rest.iter().position(|b| *b == 0)?;
    let client = std::str::from_utf8(&rest[..at]).ok()?.to_owned();
    Some((client, rest[at + 1..].to_vec()))
}

pub(crate) fn message_key(id: u64) -> Vec<u8> {
    [MESSAGE, &id.to_be_bytes()].concat()
}

pub(crate) fn retained_key(topic: &str) -> Vec<u8> {
    [RETAINED, topic.as_bytes()].concat()
}

/// A session that outlives its connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) username: Option<String>,
    pub(crate) listener: String,
    /// The protocol level (3, 4 or 5).
    pub(crate) protocol: u8,
    /// Session expiry interval, seconds.
    pub(crate) expiry: u32,
    /// When its connection ended, Unix milliseconds; `None` while connected (a crash then
    /// counts the session's expiry from the restart).
    pub(crate) detached_at_ms: Option<u64>,
}

/// A subscription's options, as the topic crate keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubscriptionRecord {
    pub(crate) qos: u8,
    pub(crate) no_local: bool,
    pub(crate) retain_as_published: bool,
    /// 0, 1 or 2 (MQTT's retain handling values).
    pub(crate) retain_handling: u8,
    pub(crate) identifier: Option<u32>,
}

/// One session's delivery of a stored message: queued, or in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    /// The `m/` record of the message.
    pub(crate) message: u64,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) sub_ids: Vec<u32>,
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Encodes a message as written now: the time, then the v5 PUBLISH.
pub(crate) fn encode_message(msg: &Message) -> Result<Bytes, StoreError> {
    let now = std::time::Instant::now();
    encode_publish(msg.to_publish(
        &DeliveryParams {
            qos: msg.qos,
            retain: msg.retain,
            dup: false,
            packet_id: (msg.qos != QoS::AtMostOnce).then_some(1),
            sub_ids: &[],
            alias: None,
        },
        now,
    ))
}

/// Encodes `publish` (its expiry interval as left now) behind the time it is written.
pub(crate) fn encode_publish(mut publish: Publish) -> Result<Bytes, StoreError> {
    if publish.qos != QoS::AtMostOnce && publish.packet_id.is_none() {
        publish.packet_id = Some(1);
    }
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&unix_ms(SystemTime::now()).to_be_bytes());
    Packet::Publish(publish)
        .encode(ProtocolVersion::V5, &mut buf)
        .map_err(|e| StoreError::Format {
            what: "message".into(),
            found: format!("a message that does not encode ({e})"),
            expected: "an MQTT v5 PUBLISH".into(),
        })?;
    Ok(encode_raw(&buf))
}

/// Decodes a message record: the PUBLISH (packet id cleared) with its expiry interval
/// counted down to `now`; `None` if it expired meanwhile.
pub(crate) fn decode_message(
    value: &Bytes,
    now: SystemTime,
) -> Result<Option<Publish>, StoreError> {
    let body = decode_raw(value)?;
    let bad = |found: String| StoreError::Format {
        what: "message".into(),
        found,
        expected: "a write time and an MQTT v5 PUBLISH".into(),
    };
    if body.len() < 8 {
        return Err(bad(format!("{} bytes", body.len())));
    }
    let written = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
    let packet = moco_engine::codec::decode_packet(body.slice(8..), ProtocolVersion::V5)
        .map_err(|e| bad(format!("a packet that does not decode ({e})")))?;
    let Packet::Publish(mut p) = packet else {
        return Err(bad("another packet than PUBLISH".into()));
    };
    p.packet_id = None;
    if let Some(left) = p.properties.message_expiry_interval {
        let gone = now
            .duration_since(from_unix_ms(written))
            .map_or(0, |d| d.as_secs());
        let gone = u32::try_from(gone).unwrap_or(u32::MAX);
        if gone >= left {
            return Ok(None);
        }
        p.properties.message_expiry_interval = Some(left - gone);
    }
    Ok(Some(p))
}

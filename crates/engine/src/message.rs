//! Routed messages, wills, and encode-once-per-variant PUBLISH bytes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use moco_codec::{Packet, ProtocolVersion, Publish, PublishProperties, QoS, WillProperties};
use parking_lot::Mutex;

thread_local! {
    /// The size of the read buffer whose packets are being handled on this thread (0: none).
    static READ_BUFFER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Says that the packets handled on this thread from now on were read into a buffer of `size`
/// bytes (0: none): what a message made from one of them keeps alive (see `Pins` in
/// [`crate::state`]). Set by the reader's batch (`broker::WakeBatch`).
pub(crate) fn set_read_buffer_size(size: u32) {
    READ_BUFFER.set(size);
}

/// A message being routed: one allocation shared by every subscriber it goes to.
#[derive(Debug)]
pub struct Message {
    /// The topic name (never an alias).
    pub topic: ByteString,
    /// The payload, shared.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// Its properties as published, without topic alias and subscription identifiers.
    pub properties: PublishProperties,
    /// When it expires, if it has a (capped) expiry interval.
    pub expires_at: Option<Instant>,
    /// The publishing client's id, for no-local; `None` for the broker's own messages.
    pub publisher: Option<ByteString>,
    /// The encoding of the first plain variant (no subscription ids, no expiry sent): what
    /// nearly every subscriber of a fan-out gets, read without a lock.
    plain: OnceLock<(u8, Bytes)>,
    cache: Mutex<Vec<(VariantKey, Bytes)>>,
    /// Topic, payload and properties have allocations of their own (see [`Message::unpinned`]).
    owned: bool,
    /// The size of the read buffer they share otherwise, as far as known (0: unknown).
    origin: u32,
}

/// What makes two encodings of one message differ (besides packet id and DUP, patched in).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VariantKey {
    version: ProtocolVersion,
    qos: QoS,
    retain: bool,
    sub_ids: Vec<u32>,
    expiry: Option<u32>,
}

impl Message {
    /// Builds a message from an inbound PUBLISH (already de-aliased), capping its expiry at
    /// `max_expiry` seconds (0 = no cap) counted from `now`.
    pub fn from_publish(
        publish: &Publish,
        publisher: Option<ByteString>,
        now: Instant,
        max_expiry: u32,
    ) -> Message {
        let mut properties = publish.properties.clone();
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        // The broker's cap applies to every message, but only a message published with an
        // expiry interval carries one on the wire.
        let mut expiry = properties.message_expiry_interval;
        if max_expiry > 0 {
            expiry = Some(expiry.map_or(max_expiry, |e| e.min(max_expiry)));
        }
        if properties.message_expiry_interval.is_some() {
            properties.message_expiry_interval = expiry;
        }
        Message {
            topic: publish.topic.clone(),
            payload: publish.payload.clone(),
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at: expiry.map(|e| now + Duration::from_secs(u64::from(e))),
            publisher,
            plain: OnceLock::new(),
            cache: Mutex::new(Vec::new()),
            owned: false,
            origin: READ_BUFFER.get(),
        }
    }

    /// A copy that owns its topic, payload and properties (not slices of a larger read buffer).
    pub fn detached(&self) -> Message {
        let string = |s: &ByteString| ByteString::from(&**s);
        let p = &self.properties;
        Message {
            topic: string(&self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: PublishProperties {
                response_topic: p.response_topic.as_ref().map(string),
                correlation_data: p.correlation_data.as_deref().map(Bytes::copy_from_slice),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (string(k), string(v)))
                    .collect(),
                content_type: p.content_type.as_ref().map(string),
                ..p.clone()
            },
            expires_at: self.expires_at,
            publisher: self.publisher.clone(),
            plain: OnceLock::new(),
            cache: Mutex::new(Vec::new()),
            owned: true,
            origin: 0,
        }
    }

    /// This message, or a copy of it that owns its bytes if it does not yet.
    ///
    /// A routed message shares the publisher's read buffer (up to 64 KiB while that publisher is
    /// busy), and keeps all of it alive for as long as any subscriber holds it. That is free
    /// while subscribers take it promptly, or hold many messages out of each buffer; one that
    /// holds a few messages out of each of many buffers (a stuck subscriber to a rare topic),
    /// or is away with a kept session, gets its own copies instead (see `Pins` in
    /// [`crate::state`]).
    pub fn unpinned(self: &Arc<Self>) -> Arc<Message> {
        if self.owned {
            self.clone()
        } else {
            Arc::new(self.detached())
        }
    }

    /// Whether this message owns its bytes (see [`Message::unpinned`]).
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// The size of the read buffer this message's bytes are slices of, when known (0 for an
    /// owned message or an unknown buffer).
    pub(crate) fn origin(&self) -> usize {
        self.origin as usize
    }

    /// True if the message has expired at `now`.
    #[inline]
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// The expiry interval to send at `now`: the seconds left if the message was published
    /// with one, otherwise none (the broker's own cap stays internal).
    pub fn wire_expiry(&self, now: Instant) -> Option<u32> {
        self.properties
            .message_expiry_interval
            .and(self.remaining_expiry(now))
    }

    /// Seconds of expiry left at `now`, rounded up (so a live message never says 0).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX).max(1)
        })
    }

    /// The PUBLISH packet for one delivery (packet id and DUP as given).
    pub fn to_publish(&self, d: &DeliveryParams<'_>, now: Instant) -> Publish {
        let mut properties = self.properties.clone();
        properties.message_expiry_interval = self.wire_expiry(now);
        properties.subscription_identifiers = d.sub_ids.to_vec();
        let mut topic = self.topic.clone();
        if let Some((alias, send_topic)) = d.alias {
            properties.topic_alias = Some(alias);
            if !send_topic {
                topic = ByteString::new();
            }
        }
        Publish {
            dup: d.dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id: d.packet_id,
            payload: self.payload.clone(),
            properties,
        }
    }

    /// Appends the encoded PUBLISH for one delivery to `out`. The bytes of each
    /// (version, QoS, RETAIN, subscription ids, remaining expiry) variant are encoded once and
    /// shared; packet id and DUP are patched into the copy.
    pub fn write_to(
        &self,
        version: ProtocolVersion,
        d: &DeliveryParams<'_>,
        now: Instant,
        out: &mut BytesMut,
    ) -> Result<usize, moco_codec::EncodeError> {
        if d.alias.is_some() {
            // Aliased topics differ per connection: encode this one directly.
            return Packet::Publish(self.to_publish(d, now)).encode(version, out);
        }
        let sub_ids: &[u32] = if version.is_v5() { d.sub_ids } else { &[] };
        let expiry = if version.is_v5() {
            self.wire_expiry(now)
        } else {
            None
        };
        if sub_ids.is_empty() && expiry.is_none() {
            let code = plain_code(version, d.qos, d.retain);
            let (c, bytes) = match self.plain.get() {
                Some(v) => v,
                None => {
                    let b = self.encode_variant(version, d, now)?;
                    self.plain.get_or_init(|| (code, b))
                }
            };
            if *c == code {
                return Ok(self.patch_into(bytes, d, out));
            }
        }
        let bytes = {
            let mut cache = self.cache.lock();
            let found = cache.iter().find(|(k, _)| {
                k.version == version
                    && k.qos == d.qos
                    && k.retain == d.retain
                    && k.expiry == expiry
                    // (Empty first: glibc's memcmp of zero bytes at a dangling address
                    // costs a slow masked load.)
                    && ((k.sub_ids.is_empty() && sub_ids.is_empty()) || k.sub_ids == sub_ids)
            });
            if let Some((_, b)) = found {
                b.clone()
            } else {
                let b = self.encode_variant(version, d, now)?;
                // Keep a handful of variants; beyond that, encode without caching.
                if cache.len() < 8 {
                    let key = VariantKey {
                        version,
                        qos: d.qos,
                        retain: d.retain,
                        sub_ids: sub_ids.to_vec(),
                        expiry,
                    };
                    cache.push((key, b.clone()));
                }
                b
            }
        };
        Ok(self.patch_into(&bytes, d, out))
    }

    /// The PUBLISH of one variant, with packet id 1 for QoS 1/2 (patched per delivery).
    fn encode_variant(
        &self,
        version: ProtocolVersion,
        d: &DeliveryParams<'_>,
        now: Instant,
    ) -> Result<Bytes, moco_codec::EncodeError> {
        let p = DeliveryParams {
            qos: d.qos,
            retain: d.retain,
            dup: false,
            packet_id: if d.qos == QoS::AtMostOnce {
                None
            } else {
                Some(1)
            },
            sub_ids: d.sub_ids,
            alias: None,
        };
        let mut buf = BytesMut::new();
        Packet::Publish(self.to_publish(&p, now)).encode(version, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends a variant's bytes to `out` with this delivery's DUP flag and packet id.
    fn patch_into(&self, bytes: &[u8], d: &DeliveryParams<'_>, out: &mut BytesMut) -> usize {
        let start = out.len();
        out.extend_from_slice(bytes);
        if d.dup {
            out[start] |= 0x08;
        }
        if let Some(pid) = d.packet_id {
            let mut i = start + 1;
            while out[i] & 0x80 != 0 {
                i += 1;
            }
            let pid_at = i + 1 + 2 + self.topic.len();
            out[pid_at..pid_at + 2].copy_from_slice(&pid.to_be_bytes());
        }
        bytes.len()
    }
}

/// The key of a plain variant (no subscription ids, no expiry): version, QoS and RETAIN.
fn plain_code(version: ProtocolVersion, qos: QoS, retain: bool) -> u8 {
    (version.level() << 3) | ((qos as u8) << 1) | u8::from(retain)
}

/// The per-subscriber parameters of one PUBLISH sent to a client.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryParams<'a> {
    /// QoS of this delivery (the lower of message and subscription QoS).
    pub qos: QoS,
    /// RETAIN flag as sent.
    pub retain: bool,
    /// DUP flag (a resend).
    pub dup: bool,
    /// Packet identifier (QoS 1/2).
    pub packet_id: Option<u16>,
    /// Subscription identifiers of the matching subscriptions (v5).
    pub sub_ids: &'a [u32],
    /// Outbound topic alias, and whether the topic is sent along (first use of the alias).
    pub alias: Option<(u16, bool)>,
}

/// One message queued for one client.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub msg: Arc<Message>,
    /// Granted QoS of this delivery.
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers to send (v5).
    pub sub_ids: Vec<u32>,
}

impl Delivery {
    /// The parameters of sending this delivery with `dup`, `packet_id` and `alias`.
    pub fn params(
        &self,
        dup: bool,
        packet_id: Option<u16>,
        alias: Option<(u16, bool)>,
    ) -> DeliveryParams<'_> {
        DeliveryParams {
            qos: self.qos,
            retain: self.retain,
            dup,
            packet_id,
            sub_ids: &self.sub_ids,
            alias,
        }
    }
}

/// A client's will message.
#[derive(Debug, Clone)]
pub struct Will {
    /// Topic to publish to.
    pub topic: ByteString,
    /// Payload.
    pub payload: Bytes,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Will properties (v5), all forwarded.
    pub properties: WillProperties,
}

impl Will {
    /// Seconds the will waits after the connection is lost (v5 will delay interval).
    pub fn delay(&self) -> u32 {
        self.properties.will_delay_interval.unwrap_or(0)
    }

    /// The PUBLISH this will becomes, with every will property carried over.
    pub fn to_publish(&self) -> Publish {
        let p = &self.properties;
        let properties = PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
            ..Default::default()
        };
        Publish {
            dup: false,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic.clone(),
            packet_id: None,
            payload: self.payload.clone(),
            properties,
        }
    }
}

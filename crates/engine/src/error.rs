//! The engine's error type.

use moco_codec::{DecodeError, EncodeError, ReasonCode};

/// The error a hook's `init`, `stop` or stored-state loader returns.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The peer broke the protocol: what it did. [`ReasonCode::from`] gives the code the
/// specification names for it, the one place that decides what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// Bytes that do not decode.
    #[error("malformed packet: {0}")]
    Malformed(#[from] DecodeError),
    /// The first packet was not CONNECT.
    #[error("the first packet was not CONNECT")]
    NotConnectFirst,
    /// A packet the protocol does not allow here (a second CONNECT, a packet only a server
    /// sends, an AUTH out of place or with another method).
    #[error("a packet the protocol does not allow here")]
    Unexpected,
    /// DISCONNECT set a session expiry after CONNECT asked for none (MQTT-3.14.2-2).
    #[error("session expiry set on DISCONNECT after a CONNECT with none")]
    SessionExpiryFromZero,
    /// A topic alias of 0 or above the maximum the broker announced.
    #[error("topic alias out of range")]
    TopicAliasOutOfRange,
    /// An empty topic with a topic alias the client never set.
    #[error("unknown topic alias")]
    UnknownTopicAlias,
    /// A PUBLISH topic name with wildcards or otherwise invalid.
    #[error("invalid topic name")]
    TopicNameInvalid,
    /// More QoS 2 flows open than the broker's receive maximum.
    #[error("receive maximum exceeded")]
    ReceiveMaximumExceeded,
    /// No Local on a shared subscription (MQTT-3.8.3-4).
    #[error("no local on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl From<&ProtocolViolation> for ReasonCode {
    fn from(v: &ProtocolViolation) -> ReasonCode {
        match v {
            ProtocolViolation::Malformed(d) => d.reason_code(),
            ProtocolViolation::NotConnectFirst
            | ProtocolViolation::Unexpected
            | ProtocolViolation::SessionExpiryFromZero
            | ProtocolViolation::UnknownTopicAlias
            | ProtocolViolation::NoLocalOnSharedSubscription => ReasonCode::ProtocolError,
            ProtocolViolation::TopicAliasOutOfRange => ReasonCode::TopicAliasInvalid,
            ProtocolViolation::TopicNameInvalid => ReasonCode::TopicNameInvalid,
            ProtocolViolation::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
        }
    }
}

/// Local policy refused what the peer asked for: the peer did nothing wrong by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// A QoS above the broker's maximum.
    #[error("QoS not supported")]
    QoSNotSupported,
    /// RETAIN while retained messages are not available.
    #[error("retain not supported")]
    RetainNotSupported,
    /// A hook refused, with this reason code.
    #[error("refused by a hook ({0:?})")]
    Hook(ReasonCode),
}

impl From<&PolicyRefusal> for ReasonCode {
    fn from(r: &PolicyRefusal) -> ReasonCode {
        match r {
            PolicyRefusal::QoSNotSupported => ReasonCode::QoSNotSupported,
            PolicyRefusal::RetainNotSupported => ReasonCode::RetainNotSupported,
            PolicyRefusal::Hook(code) => *code,
        }
    }
}

/// Why the broker ends a connection. Everything that closes one says why in these terms, and
/// the reason code on the wire (v5 DISCONNECT) comes from here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(ProtocolViolation),
    /// Local policy refused.
    #[error("refused: {0}")]
    Policy(PolicyRefusal),
    /// No packet within 1.5 times the keep-alive.
    #[error("keep-alive timeout")]
    KeepAliveTimeout,
    /// Another connection took the client id over.
    #[error("session taken over")]
    SessionTakenOver,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShuttingDown,
    /// The transport ended without a DISCONNECT (or the reader stopped for another reason).
    #[error("transport ended")]
    TransportEnded,
    /// The embedding program (or an admin) closed it with this code.
    #[error("closed by the embedding program ({0:?})")]
    Administrative(ReasonCode),
    /// A v3 publisher's message could not be stored: v3 acknowledgements carry no code, so
    /// the connection ends rather than acknowledge what was not stored.
    #[error("message not stored")]
    NotStored,
}

impl From<&CloseReason> for ReasonCode {
    fn from(c: &CloseReason) -> ReasonCode {
        match c {
            CloseReason::Protocol(v) => v.into(),
            CloseReason::Policy(p) => p.into(),
            CloseReason::KeepAliveTimeout => ReasonCode::KeepAliveTimeout,
            CloseReason::SessionTakenOver => ReasonCode::SessionTakenOver,
            CloseReason::ServerShuttingDown => ReasonCode::ServerShuttingDown,
            CloseReason::TransportEnded => ReasonCode::UnspecifiedError,
            CloseReason::Administrative(code) => *code,
            CloseReason::NotStored => ReasonCode::UnspecifiedError,
        }
    }
}

impl From<ProtocolViolation> for CloseReason {
    fn from(v: ProtocolViolation) -> Self {
        CloseReason::Protocol(v)
    }
}

impl From<PolicyRefusal> for CloseReason {
    fn from(p: PolicyRefusal) -> Self {
        CloseReason::Policy(p)
    }
}

impl From<DecodeError> for CloseReason {
    fn from(d: DecodeError) -> Self {
        CloseReason::Protocol(ProtocolViolation::Malformed(d))
    }
}

/// Why a connection or an engine operation failed. Keeps apart the peer misbehaving
/// ([`Error::Decode`], [`Error::Protocol`]), local policy ([`Error::Refused`]) and I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that do not decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolViolation),
    /// The broker refused the connection (CONNACK with this code).
    #[error("connection refused ({0:?})")]
    Refused(ReasonCode),
    /// No CONNECT arrived within the connect timeout.
    #[error("no CONNECT within the connect timeout")]
    ConnectTimeout,
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// A hook could not be added because the server is already serving.
    #[error("hooks can only be added before the server serves")]
    AlreadyServing,
    /// The inline client is used but [`Options::inline_client`](crate::Options) is off.
    #[error("the inline client is disabled (Options::inline_client)")]
    InlineClientDisabled,
    /// A topic name or filter given to the inline client is invalid.
    #[error("topic: {0}")]
    Topic(moco_topic::TopicError),
    /// A hook rejected the inline client's packet with this reason code.
    #[error("rejected by a hook ({0:?})")]
    Rejected(ReasonCode),
    /// No client has this id.
    #[error("no such client")]
    NoSuchClient,
    /// The client has a connection: only an injected client's output may be taken.
    #[error("not an injected client")]
    NotInjected,
    /// A hook failed to initialize or to load stored state.
    #[error("hook {id}: {source}")]
    Hook {
        /// The hook's id.
        id: String,
        /// What went wrong.
        source: HookError,
    },
    /// Socket I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<&Error> for ReasonCode {
    fn from(e: &Error) -> ReasonCode {
        match e {
            Error::Decode(d) => d.reason_code(),
            Error::Encode(e) => e.reason_code(),
            Error::Protocol(v) => v.into(),
            Error::Refused(c) | Error::Rejected(c) => *c,
            Error::ConnectTimeout => ReasonCode::MaximumConnectTime,
            Error::Topic(t) => {
                ReasonCode::try_from(t.reason_code()).unwrap_or(ReasonCode::UnspecifiedError)
            }
            _ => ReasonCode::UnspecifiedError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_maps_to_the_code_the_specification_names() {
        use ProtocolViolation as V;
        let cases: [(CloseReason, ReasonCode); 15] = [
            (
                V::Malformed(DecodeError::Malformed("x")).into(),
                ReasonCode::MalformedPacket,
            ),
            (V::NotConnectFirst.into(), ReasonCode::ProtocolError),
            (V::Unexpected.into(), ReasonCode::ProtocolError),
            (V::SessionExpiryFromZero.into(), ReasonCode::ProtocolError),
            (V::UnknownTopicAlias.into(), ReasonCode::ProtocolError),
            (
                V::NoLocalOnSharedSubscription.into(),
                ReasonCode::ProtocolError,
            ),
            (
                V::TopicAliasOutOfRange.into(),
                ReasonCode::TopicAliasInvalid,
            ),
            (V::TopicNameInvalid.into(), ReasonCode::TopicNameInvalid),
            (
                V::ReceiveMaximumExceeded.into(),
                ReasonCode::ReceiveMaximumExceeded,
            ),
            (
                PolicyRefusal::QoSNotSupported.into(),
                ReasonCode::QoSNotSupported,
            ),
            (
                PolicyRefusal::RetainNotSupported.into(),
                ReasonCode::RetainNotSupported,
            ),
            (
                PolicyRefusal::Hook(ReasonCode::NotAuthorized).into(),
                ReasonCode::NotAuthorized,
            ),
            (CloseReason::KeepAliveTimeout, ReasonCode::KeepAliveTimeout),
            (CloseReason::TransportEnded, ReasonCode::UnspecifiedError),
            (
                CloseReason::Administrative(ReasonCode::AdministrativeAction),
                ReasonCode::AdministrativeAction,
            ),
        ];
        for (why, code) in cases {
            assert_eq!(ReasonCode::from(&why), code, "{why}");
        }
        assert_eq!(
            ReasonCode::from(&Error::Protocol(V::TopicNameInvalid)),
            ReasonCode::TopicNameInvalid
        );
    }
}

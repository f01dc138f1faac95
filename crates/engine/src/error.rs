//! The engine's error type.

use moco_codec::{DecodeError, EncodeError, ReasonCode};

/// The error a hook's `init`, `stop` or stored-state loader returns.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

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
    #[error("protocol error ({0:?})")]
    Protocol(ReasonCode),
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
            Error::Protocol(c) | Error::Refused(c) | Error::Rejected(c) => *c,
            Error::ConnectTimeout => ReasonCode::MaximumConnectTime,
            Error::Topic(t) => {
                ReasonCode::try_from(t.reason_code()).unwrap_or(ReasonCode::UnspecifiedError)
            }
            _ => ReasonCode::UnspecifiedError,
        }
    }
}

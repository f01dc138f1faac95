//! The crate's one error type.

use std::fmt;

/// Whether a string was checked as a topic name (PUBLISH) or a topic filter (SUBSCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// A topic name, as carried by PUBLISH and wills.
    Name,
    /// A topic filter, as carried by SUBSCRIBE and UNSUBSCRIBE.
    Filter,
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicKind::Name => "topic name",
            TopicKind::Filter => "topic filter",
        })
    }
}

/// Why a topic name or filter was refused (MQTT 5 §4.7, §4.8.2).
///
/// Every variant is "the peer misbehaved": [`TopicError::reason_code`] gives the MQTT 5 reason
/// code that goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The string is empty; names and filters hold at least one character (§4.7.3).
    #[error("{0} is empty")]
    Empty(TopicKind),
    /// The string is longer than 65535 bytes (§4.7.3, §1.5.4).
    #[error("{kind} is {len} bytes long, more than 65535")]
    TooLong {
        /// What was checked.
        kind: TopicKind,
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds U+0000 (§4.7.3, §1.5.4).
    #[error("{0} contains the null character U+0000")]
    NullChar(TopicKind),
    /// A topic name holds `+` or `#` (§4.7.1).
    #[error("topic name contains a wildcard character ('+' or '#')")]
    WildcardInName,
    /// `#` is not the last character of the filter, or does not fill its whole level (§4.7.1.2).
    #[error("'#' must be the last character of the filter and fill its whole level")]
    MisplacedMultiLevelWildcard,
    /// `+` does not fill its whole level (§4.7.1.3).
    #[error("'+' must fill its whole level of the filter")]
    MisplacedSingleLevelWildcard,
    /// The share name of a `$share/{ShareName}/{filter}` is empty (§4.8.2).
    #[error("share name of a shared subscription is empty")]
    EmptyShareName,
    /// The share name of a `$share/{ShareName}/{filter}` holds `+` or `#` (§4.8.2).
    #[error("share name of a shared subscription contains '+' or '#'")]
    InvalidShareName,
    /// `$share/{ShareName}` has no filter after the share name, or an empty one (§4.8.2).
    #[error("shared subscription has no topic filter after the share name")]
    MissingSharedFilter,
}

impl TopicError {
    /// The MQTT 5 reason code for this error: 0x90 (Topic Name invalid) for names and 0x8F
    /// (Topic Filter invalid) for filters and shared-subscription filters.
    pub fn reason_code(&self) -> u8 {
        match self.kind() {
            TopicKind::Name => 0x90,
            TopicKind::Filter => 0x8F,
        }
    }

    /// Whether the refused string was a topic name or a topic filter.
    pub fn kind(&self) -> TopicKind {
        match self {
            TopicError::Empty(k) | TopicError::NullChar(k) => *k,
            TopicError::TooLong { kind, .. } => *kind,
            TopicError::WildcardInName => TopicKind::Name,
            TopicError::MisplacedMultiLevelWildcard
            | TopicError::MisplacedSingleLevelWildcard
            | TopicError::EmptyShareName
            | TopicError::InvalidShareName
            | TopicError::MissingSharedFilter => TopicKind::Filter,
        }
    }
}

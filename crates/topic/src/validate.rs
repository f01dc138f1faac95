//! Topic-name and topic-filter validation (MQTT 5 §4.7) and `$share` parsing (§4.8.2).

use crate::error::{TopicError, TopicKind};

/// The longest topic name or filter, in bytes (a UTF-8 string on the wire has a u16 length).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The prefix that marks a shared subscription filter.
pub const SHARE_PREFIX: &str = "$share/";

fn check_common(s: &str, kind: TopicKind) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty(kind));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { kind, len: s.len() });
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::NullChar(kind));
    }
    Ok(())
}

/// Checks a topic name (PUBLISH, will topic): non-empty, at most 65535 bytes, no U+0000 and no
/// wildcard. Empty levels (`a//b`, `/a`, `a/`) are allowed, and so is a leading `$`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name, TopicKind::Name)?;
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a plain topic filter (without any `$share/` prefix): non-empty, at most 65535 bytes,
/// no U+0000; `+` fills a whole level; `#` fills a whole level and is the last one.
///
/// A filter that begins with `$share/` is checked here as a plain filter; use
/// [`parse_filter`] for what a SUBSCRIBE carries.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter, TopicKind::Filter)?;
    check_levels(filter)
}

fn check_levels(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.len() == 1 {
            if level == "#" && levels.peek().is_some() {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
            continue;
        }
        for b in level.bytes() {
            match b {
                b'#' => return Err(TopicError::MisplacedMultiLevelWildcard),
                b'+' => return Err(TopicError::MisplacedSingleLevelWildcard),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A topic filter as a SUBSCRIBE carries it: plain, or shared (`$share/{group}/{filter}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterRef<'a> {
    /// The share name of a shared subscription, `None` for a plain one.
    pub share: Option<&'a str>,
    /// The topic filter matched against topic names (after the share name, if any).
    pub filter: &'a str,
}

impl FilterRef<'_> {
    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share.is_some()
    }
}

/// Parses and checks a filter from SUBSCRIBE or UNSUBSCRIBE: a plain filter, or
/// `$share/{ShareName}/{filter}` where ShareName is non-empty with no `/`, `+` or `#`, and the
/// filter after it is non-empty and valid (§4.8.2).
pub fn parse_filter(filter: &str) -> Result<FilterRef<'_>, TopicError> {
    check_common(filter, TopicKind::Filter)?;
    match filter.strip_prefix(SHARE_PREFIX) {
        None => {
            check_levels(filter)?;
            Ok(FilterRef {
                share: None,
                filter,
            })
        }
        Some(rest) => {
            let (group, inner) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None if rest.is_empty() => return Err(TopicError::EmptyShareName),
                None => {
                    check_share_name(rest)?;
                    return Err(TopicError::MissingSharedFilter);
                }
            };
            check_share_name(group)?;
            if inner.is_empty() {
                return Err(TopicError::MissingSharedFilter);
            }
            check_levels(inner)?;
            Ok(FilterRef {
                share: Some(group),
                filter: inner,
            })
        }
    }
}

fn check_share_name(group: &str) -> Result<(), TopicError> {
    if group.is_empty() {
        return Err(TopicError::EmptyShareName);
    }
    if group.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::InvalidShareName);
    }
    Ok(())
}

/// Whether a (valid, plain) topic filter matches a (valid) topic name, level by level, with the
/// `$` rule: a filter starting with `+` or `#` does not match a name starting with `$` (§4.7.2).
///
/// A straightforward reference matcher for one pair (ACL rules and tests); routing uses the trie.
pub fn filter_matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_plain_dollar_and_empty_levels() {
        for ok in [
            "a",
            "a/b",
            "/",
            "//",
            "a//b",
            "/a",
            "a/",
            "$SYS/x",
            "a$b",
            "日本/語",
            " ",
        ] {
            assert_eq!(validate_topic_name(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn name_empty() {
        assert_eq!(
            validate_topic_name(""),
            Err(TopicError::Empty(TopicKind::Name))
        );
    }

    #[test]
    fn name_too_long() {
        let s = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic_name(&s), Ok(()));
        let s = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(
            validate_topic_name(&s),
            Err(TopicError::TooLong {
                kind: TopicKind::Name,
                len: MAX_TOPIC_LEN + 1
            })
        );
    }

    #[test]
    fn name_null_char() {
        assert_eq!(
            validate_topic_name("a/\0/b"),
            Err(TopicError::NullChar(TopicKind::Name))
        );
    }

    #[test]
    fn name_wildcards() {
        for bad in ["+", "#", "a/+", "a/#", "a+b", "a#", "sport/tennis/#"] {
            assert_eq!(
                validate_topic_name(bad),
                Err(TopicError::WildcardInName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn filters_accept_spec_examples() {
        for ok in [
            "#",
            "+",
            "+/+",
            "/+",
            "+/",
            "sport/tennis/#",
            "sport/#",
            "sport/tennis/+",
            "sport/+/player1",
            "+/tennis/#",
            "a//b",
            "/",
            "$SYS/#",
            "$SYS/+/x",
            "/#",
            "a/+/+/#",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn filter_empty_long_null() {
        assert_eq!(
            validate_topic_filter(""),
            Err(TopicError::Empty(TopicKind::Filter))
        );
        assert!(matches!(
            validate_topic_filter(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong {
                kind: TopicKind::Filter,
                ..
            })
        ));
        assert_eq!(
            validate_topic_filter("a/\0"),
            Err(TopicError::NullChar(TopicKind::Filter))
        );
    }

    #[test]
    fn filter_hash_placement() {
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "#/",
            "#/a",
            "a#",
            "##",
            "a/#b",
        ] {
            assert_eq!(
                validate_topic_filter(bad),
                Err(TopicError::MisplacedMultiLevelWildcard),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn filter_plus_placement() {
        for bad in ["sport+", "a/+b", "+a/b", "++", "a/b+/c"] {
            assert_eq!(
                validate_topic_filter(bad),
                Err(TopicError::MisplacedSingleLevelWildcard),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shared_filters_parse() {
        let f = parse_filter("$share/g1/sport/+/x").unwrap();
        assert_eq!(f.share, Some("g1"));
        assert_eq!(f.filter, "sport/+/x");
        assert!(f.is_shared());
        let f = parse_filter("$share/g/#").unwrap();
        assert_eq!((f.share, f.filter), (Some("g"), "#"));
        let f = parse_filter("$share/g//").unwrap();
        assert_eq!((f.share, f.filter), (Some("g"), "/"));
        let f = parse_filter("$share/g/$SYS/#").unwrap();
        assert_eq!((f.share, f.filter), (Some("g"), "$SYS/#"));
        let f = parse_filter("a/b").unwrap();
        assert_eq!((f.share, f.filter), (None, "a/b"));
        // `$share` without the slash is an ordinary filter, and so is `$shared/...`.
        assert_eq!(parse_filter("$share").unwrap().share, None);
        assert_eq!(parse_filter("$shared/a/b").unwrap().share, None);
    }

    #[test]
    fn shared_empty_group() {
        assert_eq!(parse_filter("$share/"), Err(TopicError::EmptyShareName));
        assert_eq!(parse_filter("$share//a"), Err(TopicError::EmptyShareName));
    }

    #[test]
    fn shared_group_with_wildcards() {
        for bad in [
            "$share/+/a",
            "$share/#/a",
            "$share/g+/a",
            "$share/g#",
            "$share/#",
        ] {
            assert_eq!(
                parse_filter(bad),
                Err(TopicError::InvalidShareName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shared_missing_filter() {
        assert_eq!(
            parse_filter("$share/g"),
            Err(TopicError::MissingSharedFilter)
        );
        assert_eq!(
            parse_filter("$share/g/"),
            Err(TopicError::MissingSharedFilter)
        );
    }

    #[test]
    fn shared_inner_filter_checked() {
        assert_eq!(
            parse_filter("$share/g/a/#/b"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            parse_filter("$share/g/a+"),
            Err(TopicError::MisplacedSingleLevelWildcard)
        );
        assert_eq!(
            parse_filter("$share/g/\0"),
            Err(TopicError::NullChar(TopicKind::Filter))
        );
    }

    #[test]
    fn reason_codes() {
        assert_eq!(TopicError::WildcardInName.reason_code(), 0x90);
        assert_eq!(TopicError::Empty(TopicKind::Name).reason_code(), 0x90);
        assert_eq!(TopicError::Empty(TopicKind::Filter).reason_code(), 0x8F);
        assert_eq!(TopicError::InvalidShareName.reason_code(), 0x8F);
    }

    #[test]
    fn reference_matcher() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/x", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("#", "a", true),
            ("a", "a/b", false),
        ];
        for (f, n, want) in cases {
            assert_eq!(filter_matches(f, n), want, "{f} vs {n}");
        }
    }
}

//! ACL topic filters with `%c` / `%u` placeholders, and the matcher behind them.
//!
//! This is a private matcher: `moco-topic` does not yet expose a public "filter matches
//! topic" function. It differs from a plain matcher in two ways the ledger needs anyway:
//! placeholders are expanded per check without allocating, and a requested *filter* (a
//! SUBSCRIBE) is matched by coverage, so `a/+` never grants `a/#`.

use std::fmt;
use std::str::FromStr;

/// An ACL topic filter such as `devices/%c/#`, parsed once when the ledger is loaded.
///
/// Levels are split on `/`. `+` and `#` are MQTT wildcards and must fill a whole level (`#`
/// only as the last one). `%c` and `%u` anywhere inside a level stand for the client id and
/// the username of the client being checked.
#[derive(Clone, PartialEq, Eq)]
pub struct AclFilter {
    text: Box<str>,
    levels: Box<[Level]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    Literal(Box<str>),
    Plus,
    Hash,
    Template(Box<[Piece]>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    Client,
    Username,
}

/// Why a string is not a valid ACL filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub(crate) String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

impl AclFilter {
    /// Parses a filter, refusing what MQTT refuses: an empty filter, a NUL character, `+` or
    /// `#` sharing a level with other characters, and `#` anywhere but the last level.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.is_empty() {
            return Err(FilterError("a topic filter must not be empty".into()));
        }
        if text.len() > usize::from(u16::MAX) {
            return Err(FilterError(
                "a topic filter must be at most 65535 bytes".into(),
            ));
        }
        if text.contains('\0') {
            return Err(FilterError(format!(
                "topic filter `{}` contains a NUL character",
                text.escape_debug()
            )));
        }
        let count = text.split('/').count();
        let mut levels = Vec::with_capacity(count);
        for (i, level) in text.split('/').enumerate() {
            let parsed = match level {
                "+" => Level::Plus,
                "#" if i + 1 == count => Level::Hash,
                "#" => {
                    return Err(FilterError(format!(
                        "topic filter `{text}`: `#` must be the last level"
                    )))
                }
                _ if level.contains(['+', '#']) => {
                    return Err(FilterError(format!(
                        "topic filter `{text}`: `+` and `#` must fill a whole level"
                    )))
                }
                _ => parse_level(level),
            };
            levels.push(parsed);
        }
        Ok(Self {
            text: text.into(),
            levels: levels.into(),
        })
    }

    /// The filter as written in the ledger.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the filter uses `%c` or `%u`.
    pub fn has_placeholders(&self) -> bool {
        self.levels.iter().any(|l| matches!(l, Level::Template(_)))
    }

    /// Whether this filter covers `topic` for a client with the given id and username.
    ///
    /// `topic` is a topic name, or a subscription filter: a requested `+` level is covered
    /// only by `+` or `#`, a requested `#` only by `#`. Wildcards in the first level never
    /// cover a topic starting with `$` (MQTT 4.7.2). A placeholder whose value is empty,
    /// contains `/`, `+` or `#`, or starts with `$` makes the filter cover nothing.
    pub fn covers(&self, topic: &str, client_id: &str, username: Option<&str>) -> bool {
        self.covers_with(topic, &Subst::new(client_id, username))
    }

    /// This filter with `%c` / `%u` replaced by their values, or `None` when a placeholder's
    /// value is unusable (the filter then covers nothing).
    pub(crate) fn expand(&self, subst: &Subst<'_>) -> Option<String> {
        if !self.has_placeholders() {
            return Some(self.text.to_string());
        }
        let mut out = String::with_capacity(self.text.len());
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match level {
                Level::Literal(l) => out.push_str(l),
                Level::Plus => out.push('+'),
                Level::Hash => out.push('#'),
                Level::Template(pieces) => {
                    for p in pieces.iter() {
                        match p {
                            Piece::Literal(l) => out.push_str(l),
                            Piece::Client => out.push_str(subst.client_id?),
                            Piece::Username => out.push_str(subst.username?),
                        }
                    }
                }
            }
        }
        Some(out)
    }

    pub(crate) fn covers_with(&self, topic: &str, subst: &Subst<'_>) -> bool {
        let dollar = topic.starts_with('$');
        let mut requested = topic.split('/');
        for (i, level) in self.levels.iter().enumerate() {
            if let Level::Hash = level {
                return !(i == 0 && dollar);
            }
            let Some(got) = requested.next() else {
                return false;
            };
            let ok = match level {
                Level::Literal(lit) => **lit == *got,
                Level::Plus => got != "#" && !(i == 0 && dollar),
                Level::Template(pieces) => template_eq(pieces, got, subst),
                Level::Hash => unreachable!("handled above"),
            };
            if !ok {
                return false;
            }
        }
        requested.next().is_none()
    }
}

/// Whether some topic name is matched by both MQTT filters `a` and `b` (valid filters, no
/// `$share/` prefix). A wildcard in the first level matches no topic starting with `$`
/// (MQTT 4.7.2).
pub(crate) fn filters_overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('/'), b.split('/'));
    let mut first = true;
    loop {
        let dollar = |l: Option<&str>| first && l.is_some_and(|l| l.starts_with('$'));
        match (a.next(), b.next()) {
            (None, None) => return true,
            // `x/#` matches `x` too: a `#` matches what is left of the other, even nothing.
            (Some("#"), other) | (other, Some("#")) => return !dollar(other),
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("+"), Some(l)) | (Some(l), Some("+")) => {
                if dollar(Some(l)) {
                    return false;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return false;
                }
            }
        }
        first = false;
    }
}

fn parse_level(level: &str) -> Level {
    if !level.contains("%c") && !level.contains("%u") {
        return Level::Literal(level.into());
    }
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = level;
    while let Some(pos) = rest.find('%') {
        let (before, after) = rest.split_at(pos);
        literal.push_str(before);
        let placeholder = match after.as_bytes().get(1) {
            Some(b'c') => Some(Piece::Client),
            Some(b'u') => Some(Piece::Username),
            _ => None,
        };
        match placeholder {
            Some(piece) => {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                }
                pieces.push(piece);
                rest = &after[2..];
            }
            None => {
                literal.push('%');
                rest = &after[1..];
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal.into()));
    }
    Level::Template(pieces.into())
}

fn template_eq(pieces: &[Piece], got: &str, subst: &Subst<'_>) -> bool {
    let mut rest = got;
    for piece in pieces {
        let want = match piece {
            Piece::Literal(lit) => &**lit,
            Piece::Client => match subst.client_id {
                Some(c) => c,
                None => return false,
            },
            Piece::Username => match subst.username {
                Some(u) => u,
                None => return false,
            },
        };
        match rest.strip_prefix(want) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// The values `%c` and `%u` expand to for one check.
///
/// A value that is empty, contains `/`, `+` or `#`, or starts with `$` is unusable: it could
/// otherwise change the shape of the filter (`devices/%c/#` with client id `+` would become
/// `devices/+/#`) or reach `$` topics, so a placeholder with such a value matches nothing.
pub(crate) struct Subst<'a> {
    client_id: Option<&'a str>,
    username: Option<&'a str>,
}

impl<'a> Subst<'a> {
    pub(crate) fn new(client_id: &'a str, username: Option<&'a str>) -> Self {
        Self {
            client_id: usable(client_id),
            username: username.and_then(usable),
        }
    }
}

fn usable(value: &str) -> Option<&str> {
    let bad = value.is_empty() || value.starts_with('$') || value.contains(['/', '+', '#']);
    (!bad).then_some(value)
}

impl fmt::Debug for AclFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AclFilter({:?})", self.text)
    }
}

impl fmt::Display for AclFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for AclFilter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(filter: &str, topic: &str) -> bool {
        AclFilter::parse(filter)
            .unwrap()
            .covers(topic, "client", Some("user"))
    }

    #[test]
    fn literal_and_wildcards() {
        assert!(covers("a/b", "a/b"));
        assert!(!covers("a/b", "a/b/c"));
        assert!(!covers("a/b/c", "a/b"));
        assert!(covers("a/+", "a/b"));
        assert!(!covers("a/+", "a/b/c"));
        assert!(covers("a/+/c", "a/b/c"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/c"));
        assert!(covers("#", "a/b"));
        assert!(covers("+", ""));
        assert!(covers("a//b", "a//b"));
        assert!(covers("+/+", "/x"));
        assert!(!covers("a/b", "A/b"));
    }

    #[test]
    fn dollar_topics_escape_leading_wildcards() {
        assert!(!covers("#", "$SYS/broker"));
        assert!(!covers("+/broker", "$SYS/broker"));
        assert!(covers("$SYS/#", "$SYS/broker"));
        assert!(covers("a/+", "a/$b"));
    }

    #[test]
    fn requested_filters_are_matched_by_coverage() {
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/#", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("#", "#"));
    }

    #[test]
    fn overlap_of_two_filters() {
        let yes = [
            ("#", "a/b"),
            ("a/#", "a"),
            ("a/+", "+/b"),
            ("a/+/c", "a/#"),
            ("+/+", "a/b"),
            ("$SYS/#", "$SYS/+"),
            ("a/+", "a/$x"),
            ("#", "#"),
        ];
        for (a, b) in yes {
            assert!(filters_overlap(a, b), "{a} {b}");
            assert!(filters_overlap(b, a), "{b} {a}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("#", "$SYS/#"),
            ("+/x", "$SYS/x"),
            ("a/b/#", "a/c/#"),
            ("a", "a/b"),
        ];
        for (a, b) in no {
            assert!(!filters_overlap(a, b), "{a} {b}");
            assert!(!filters_overlap(b, a), "{b} {a}");
        }
    }

    #[test]
    fn expand_fills_placeholders_or_gives_up() {
        let f = AclFilter::parse("dev/%c/%u-x/#").unwrap();
        assert_eq!(
            f.expand(&Subst::new("d1", Some("ann"))).as_deref(),
            Some("dev/d1/ann-x/#")
        );
        assert_eq!(f.expand(&Subst::new("d1", None)), None);
        assert_eq!(f.expand(&Subst::new("+", Some("ann"))), None);
        let plain = AclFilter::parse("a/+/#").unwrap();
        assert_eq!(
            plain.expand(&Subst::new("", None)).as_deref(),
            Some("a/+/#")
        );
    }

    #[test]
    fn invalid_filters_are_refused() {
        for bad in ["", "a/#/b", "a/b#", "a+/b", "#a", "a\0b"] {
            assert!(AclFilter::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn placeholders_expand_per_client() {
        let f = AclFilter::parse("devices/%c/#").unwrap();
        assert!(f.has_placeholders());
        assert!(f.covers("devices/d1/temp", "d1", None));
        assert!(!f.covers("devices/d2/temp", "d1", None));
        let f = AclFilter::parse("users/%u/dev-%c/x%").unwrap();
        assert!(f.covers("users/ann/dev-d1/x%", "d1", Some("ann")));
        assert!(!f.covers("users/ann/dev-d1/x%", "d1", None));
        assert!(!f.covers("users/bob/dev-d1/x%", "d1", Some("ann")));
        assert!(!f.covers("users/ann/d1/x%", "d1", Some("ann")));
        let f = AclFilter::parse("a/%x/%").unwrap();
        assert!(!f.has_placeholders());
        assert!(f.covers("a/%x/%", "c", None));
    }

    #[test]
    fn unusable_placeholder_values_never_widen() {
        let f = AclFilter::parse("devices/%c/#").unwrap();
        for client in ["+", "#", "a/b", "", "$SYS"] {
            assert!(!f.covers("devices/+/x", client, None), "{client:?}");
            assert!(!f.covers("devices/a/b/x", client, None), "{client:?}");
            assert!(!f.covers(&format!("devices/{client}/x"), client, None));
        }
        let f = AclFilter::parse("%u/#").unwrap();
        assert!(!f.covers("$SYS/x", "c", Some("$SYS")));
        assert!(!f.covers("x", "c", Some("")));
    }
}

//! The ledger's data model and how it is read from YAML or JSON.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::filter::AclFilter;
use crate::password::Password;

/// One criterion of a rule (`client`, `username` or `remote`).
///
/// Written as a string: empty or `*` (or the field left out) matches anything, even a
/// missing username; `text*` matches any value that starts with `text` and has at least one
/// more character (mochi's rule); anything else matches only itself. A `*` anywhere but at
/// the end is refused when the ledger is loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Criterion {
    /// Matches every value.
    #[default]
    Any,
    /// Matches exactly this value.
    Exact(String),
    /// Matches values that start with this prefix and are longer than it.
    Prefix(String),
}

impl Criterion {
    /// Parses the textual form (see the type's docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text == "*" {
            return Ok(Self::Any);
        }
        match text.find('*') {
            None => Ok(Self::Exact(text.to_owned())),
            Some(i) if i + 1 == text.len() => Ok(Self::Prefix(text[..i].to_owned())),
            Some(_) => Err(format!(
                "`{text}`: `*` is only allowed as the last character"
            )),
        }
    }

    /// Whether `value` (`None`: the client sent no username) meets this criterion.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Self::Any, _) => true,
            (Self::Exact(want), Some(v)) => want == v,
            (Self::Prefix(p), Some(v)) => v.len() > p.len() && v.starts_with(p.as_str()),
            (_, None) => false,
        }
    }

    /// The exact value, if this criterion names exactly one.
    pub fn exact(&self) -> Option<&str> {
        match self {
            Self::Exact(v) => Some(v),
            _ => None,
        }
    }
}

impl FromStr for Criterion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Criterion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |s: &str| Criterion::parse(s).map(Some);
        Ok(d.deserialize_option(OptStr(parse, "a string"))?
            .unwrap_or_default())
    }
}

/// Visits an optional string and parses it inside the visitor, so that the parser's error
/// carries the location of the string itself.
struct OptStr<T>(fn(&str) -> Result<Option<T>, String>, &'static str);

impl<'de, T> Visitor<'de> for OptStr<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_str(self)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<T>, E> {
        (self.0)(s).map_err(E::custom)
    }
}

/// What an ACL filter lets a client do with the topics it covers.
///
/// In a ledger file: `0`/`deny`, `1`/`readonly`, `2`/`writeonly`, `3`/`readwrite` (names are
/// case-insensitive and may contain `-` or `_`, e.g. `read-only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Neither subscribe nor publish.
    Deny = 0,
    /// Subscribe (read) only.
    ReadOnly = 1,
    /// Publish (write) only.
    WriteOnly = 2,
    /// Subscribe and publish.
    ReadWrite = 3,
}

impl Access {
    /// Whether this access level allows reading (`write == false`) or writing.
    pub fn allows(self, write: bool) -> bool {
        match self {
            Self::Deny => false,
            Self::ReadOnly => !write,
            Self::WriteOnly => write,
            Self::ReadWrite => true,
        }
    }

    fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Deny,
            1 => Self::ReadOnly,
            2 => Self::WriteOnly,
            3 => Self::ReadWrite,
            _ => return None,
        })
    }

    fn from_name(name: &str) -> Option<Self> {
        if let Ok(n) = name.trim().parse::<u64>() {
            return Self::from_number(n);
        }
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match key.as_str() {
            "deny" => Self::Deny,
            "readonly" => Self::ReadOnly,
            "writeonly" => Self::WriteOnly,
            "readwrite" => Self::ReadWrite,
            _ => return None,
        })
    }
}

const ACCESS_EXPECTED: &str = "0-3 or deny, readonly, writeonly, readwrite";

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Access;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ACCESS_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Access, E> {
                Access::from_number(n).ok_or_else(|| {
                    E::custom(format!(
                        "unknown access level {n}; expected {ACCESS_EXPECTED}"
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Access, E> {
                u64::try_from(n)
                    .map_err(|_| {
                        E::custom(format!(
                            "unknown access level {n}; expected {ACCESS_EXPECTED}"
                        ))
                    })
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Access, E> {
                Access::from_name(s).ok_or_else(|| {
                    E::custom(format!(
                        "unknown access level `{s}`; expected {ACCESS_EXPECTED}"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An ordered list of ACL filters and their access levels, written as a map
/// (`"devices/%c/#": readwrite`). A filter given twice is refused.
#[derive(Clone, Debug, Default)]
pub struct Filters(pub Vec<(AclFilter, Access)>);

impl Filters {
    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decides `topic` for one direction: `Some(true)` when a covering filter grants the
    /// access, `Some(false)` when filters cover the topic but none grants it, `None` when no
    /// filter covers it. A grant wins over a `Deny` in the same list (as in mochi).
    pub(crate) fn decide(
        &self,
        topic: &str,
        write: bool,
        subst: &crate::filter::Subst<'_>,
    ) -> Option<bool> {
        let mut covered = false;
        for (filter, access) in &self.0 {
            if filter.covers_with(topic, subst) {
                if access.allows(write) {
                    return Some(true);
                }
                covered = true;
            }
        }
        covered.then_some(false)
    }
}

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Filters;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from topic filter to access level")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Filters, E> {
                Ok(Filters::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Filters, A::Error> {
                let mut out: Vec<(AclFilter, Access)> = Vec::new();
                while let Some(filter) = map.next_key_seed(FilterKey(&out))? {
                    let access = map.next_value::<Access>()?;
                    out.push((filter, access));
                }
                Ok(Filters(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A filter key, parsed (and checked against the filters before it) inside its visitor.
struct FilterKey<'a>(&'a [(AclFilter, Access)]);

impl<'de> DeserializeSeed<'de> for FilterKey<'_> {
    type Value = AclFilter;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AclFilter, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FilterKey<'_> {
    type Value = AclFilter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topic filter")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<AclFilter, E> {
        if self.0.iter().any(|(f, _)| f.as_str() == key) {
            return Err(E::custom(format!("filter `{key}` is listed twice")));
        }
        AclFilter::parse(key).map_err(E::custom)
    }
}

/// A username key of `users`, checked against the users before it inside its visitor.
struct UserKey<'a>(&'a HashMap<String, UserRule>);

impl<'de> DeserializeSeed<'de> for UserKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for UserKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a username")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        if self.0.contains_key(name) {
            return Err(E::custom(format!("user `{name}` is listed twice")));
        }
        Ok(name.to_owned())
    }
}

fn password_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Password>, D::Error> {
    let parse = |s: &str| match s {
        "" => Ok(None),
        _ => Password::parse(s).map(Some),
    };
    d.deserialize_option(OptStr(parse, "a password string"))
}

/// An authentication rule. Every criterion that is set must match; the first rule that
/// matches a CONNECT decides with `allow`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRule {
    /// The client id.
    #[serde(default)]
    pub client: Criterion,
    /// The username.
    #[serde(default)]
    pub username: Criterion,
    /// The remote address as the listener reports it, e.g. `127.0.0.1:52345`.
    #[serde(default)]
    pub remote: Criterion,
    /// The password (plain, argon2 or bcrypt); `None` matches any password or none. Never a
    /// wildcard: `*` in a password is just a character.
    #[serde(default, deserialize_with = "password_field")]
    pub password: Option<Password>,
    /// Whether a matching client may connect. Defaults to `false`.
    #[serde(default)]
    pub allow: bool,
}

/// An ACL rule: criteria that pick clients, and the filters that decide their topics.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// The client id.
    #[serde(default)]
    pub client: Criterion,
    /// The username.
    #[serde(default)]
    pub username: Criterion,
    /// The remote address.
    #[serde(default)]
    pub remote: Criterion,
    /// Filters and their access. A rule with no filters allows everything to the clients it
    /// matches.
    #[serde(default)]
    pub filters: Filters,
}

/// A user of mochi's `users` map, keyed by username and checked before the rules.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    /// The username again (optional; if given it must equal the key).
    #[serde(default)]
    pub username: Option<String>,
    /// The password; a user without one never decides authentication.
    #[serde(default, deserialize_with = "password_field")]
    pub password: Option<Password>,
    /// Filters for this user, tried before the ACL rules.
    #[serde(default)]
    pub acl: Filters,
    /// Refuse this user even with the right password.
    #[serde(default)]
    pub disallow: bool,
}

/// Deserializes `T` only from a map: serde's derive also accepts a sequence for a struct,
/// which would turn a stray `[]` into a rule with no criteria.
pub(crate) struct MapOnly<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData)).map(MapOnly)
    }
}

fn rules_field<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let rules = Option::<Vec<MapOnly<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(rules.into_iter().map(|MapOnly(r)| r).collect())
}

/// The whole rule set: what a ledger file holds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerRules {
    /// Users by username, checked before `auth` and `acl`.
    #[serde(default, deserialize_with = "users_field")]
    pub users: HashMap<String, UserRule>,
    /// Authentication rules, in order.
    #[serde(default, deserialize_with = "rules_field")]
    pub auth: Vec<AuthRule>,
    /// ACL rules, in order.
    #[serde(default, deserialize_with = "rules_field")]
    pub acl: Vec<AclRule>,
}

fn users_field<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, UserRule>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = HashMap<String, UserRule>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from username to user")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(HashMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = HashMap::new();
            while let Some(name) = map.next_key_seed(UserKey(&out))? {
                let MapOnly(user) = map.next_value::<MapOnly<UserRule>>()?;
                if let Some(u) = &user.username {
                    if *u != name {
                        return Err(de::Error::custom(format!(
                            "user `{name}` has a different username `{u}`"
                        )));
                    }
                }
                out.insert(name, user);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_forms() {
        assert_eq!(Criterion::parse("").unwrap(), Criterion::Any);
        assert_eq!(Criterion::parse("*").unwrap(), Criterion::Any);
        assert_eq!(Criterion::parse("a").unwrap(), Criterion::Exact("a".into()));
        assert_eq!(
            Criterion::parse("a*").unwrap(),
            Criterion::Prefix("a".into())
        );
        assert!(Criterion::parse("a*b").is_err());
        assert!(Criterion::parse("**").is_err());
    }

    #[test]
    fn criterion_matching() {
        let any = Criterion::Any;
        assert!(any.matches(Some("x")) && any.matches(None) && any.matches(Some("")));
        let exact = Criterion::parse("alice").unwrap();
        assert!(exact.matches(Some("alice")));
        assert!(!exact.matches(Some("alice2")) && !exact.matches(Some("Alice")));
        assert!(!exact.matches(None));
        let prefix = Criterion::parse("127.0.0.1:*").unwrap();
        assert!(prefix.matches(Some("127.0.0.1:5555")));
        assert!(
            !prefix.matches(Some("127.0.0.1:")),
            "the star stands for 1+ chars"
        );
        assert!(!prefix.matches(Some("127.0.0.2:5555")));
        assert!(!prefix.matches(None));
    }

    #[test]
    fn access_levels_per_direction() {
        use Access::*;
        assert!(!Deny.allows(false) && !Deny.allows(true));
        assert!(ReadOnly.allows(false) && !ReadOnly.allows(true));
        assert!(!WriteOnly.allows(false) && WriteOnly.allows(true));
        assert!(ReadWrite.allows(false) && ReadWrite.allows(true));
    }

    #[test]
    fn access_names() {
        for (s, a) in [
            ("deny", Access::Deny),
            ("ReadOnly", Access::ReadOnly),
            ("write-only", Access::WriteOnly),
            ("read_write", Access::ReadWrite),
            ("2", Access::WriteOnly),
        ] {
            assert_eq!(Access::from_name(s), Some(a), "{s}");
        }
        assert_eq!(Access::from_name("rw"), None);
        assert_eq!(Access::from_name("4"), None);
    }
}

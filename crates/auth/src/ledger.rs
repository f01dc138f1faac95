//! The ledger: rules plus the indexes that make checks cheap.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::filter::Subst;
use crate::load::{self, Format};
use crate::rules::{Criterion, LedgerRules};
use crate::{Error, Refusal};

/// What the server knows about a client when it sends CONNECT.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client id (possibly assigned by the server).
    pub client_id: &'a str,
    /// The username, if the client sent one.
    pub username: Option<&'a str>,
    /// The password, if the client sent one.
    pub password: Option<&'a [u8]>,
    /// The remote address as the listener reports it, e.g. `127.0.0.1:52345`.
    pub remote: &'a str,
}

impl fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("remote", &self.remote)
            .finish()
    }
}

/// A subscribe (read) or publish (write) to check.
#[derive(Clone, Copy, Debug)]
pub struct AclRequest<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// The username, if the client sent one.
    pub username: Option<&'a str>,
    /// The remote address.
    pub remote: &'a str,
    /// The topic name of a PUBLISH, or the filter of a subscription (which is allowed only
    /// when a rule's filter covers all of it: `a/+` does not grant `a/#`).
    pub topic: &'a str,
    /// `true` for publish, `false` for subscribe or delivery.
    pub write: bool,
}

/// What decided a check, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecidedBy {
    /// The entry for this username in `users`.
    User(String),
    /// The `auth` or `acl` rule at this index (0-based, in file order).
    Rule(usize),
    /// No rule matched: authentication is denied, ACL allowed.
    Default,
}

/// The outcome of a check and what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allow: bool,
    /// What decided.
    pub by: DecidedBy,
}

/// A loaded, immutable rule set (mochi's "ledger") with indexes built for fast checks.
///
/// Semantics (as mochi's `hooks/auth` ledger, plus hashes and placeholders):
/// - Authentication: the `users` entry for the username decides first if it has a password
///   and the password verifies (allowed unless `disallow`). Otherwise `auth` rules are tried
///   in order; the first one whose set criteria all match (client, username, remote,
///   password) decides with its `allow`. Nothing matched: **denied**.
/// - ACL: a `users` entry with filters decides if one of its filters covers the topic.
///   Otherwise `acl` rules are tried in order. A rule whose criteria match decides when it
///   has no filters (allow) or when one of its filters covers the topic: allowed if any
///   covering filter grants the direction, denied otherwise. A rule whose filters do not
///   cover the topic does not decide and the next rule is tried. Nothing decided: **allowed**.
///   To carve a `Deny` out of a wider grant, put the `Deny` in an earlier rule.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    rules: LedgerRules,
    auth_index: RuleIndex,
    acl_index: RuleIndex,
}

impl Ledger {
    /// Builds a ledger (and its indexes) from rules.
    pub fn new(rules: LedgerRules) -> Self {
        let auth_index = RuleIndex::build(rules.auth.iter().map(|r| (&r.client, &r.username)));
        let acl_index = RuleIndex::build(rules.acl.iter().map(|r| (&r.client, &r.username)));
        Self {
            rules,
            auth_index,
            acl_index,
        }
    }

    /// The rules this ledger was built from.
    pub fn rules(&self) -> &LedgerRules {
        &self.rules
    }

    /// Parses a YAML ledger. Empty input (or only comments) is an empty ledger.
    pub fn from_yaml_bytes(bytes: &[u8]) -> Result<Self, Error> {
        load::parse(bytes, Format::Yaml, None).map(Self::new)
    }

    /// Parses a JSON ledger.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, Error> {
        load::parse(bytes, Format::Json, None).map(Self::new)
    }

    /// Reads and parses a ledger file: JSON if the extension is `.json`, YAML if it is
    /// `.yaml` or `.yml`, otherwise JSON when the first non-blank byte is `{` or `[`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        load::from_path(path.as_ref()).map(Self::new)
    }

    /// Whether the client may connect.
    pub fn authenticate(&self, req: &AuthRequest<'_>) -> bool {
        self.check_auth(req).allow
    }

    /// Whether the client may connect, and what decided.
    pub fn check_auth(&self, req: &AuthRequest<'_>) -> Decision {
        if let (Some(name), Some(given)) = (req.username, req.password) {
            if let Some(user) = self.rules.users.get(name) {
                if user.password.as_ref().is_some_and(|p| p.verify(given)) {
                    return Decision {
                        allow: !user.disallow,
                        by: DecidedBy::User(name.to_owned()),
                    };
                }
            }
        }
        for i in self.auth_index.candidates(req.client_id, req.username) {
            let rule = &self.rules.auth[i];
            let matched = rule.client.matches(Some(req.client_id))
                && rule.username.matches(req.username)
                && rule.remote.matches(Some(req.remote))
                && match (&rule.password, req.password) {
                    (None, _) => true,
                    (Some(stored), Some(given)) => stored.verify(given),
                    (Some(_), None) => false,
                };
            if matched {
                return Decision {
                    allow: rule.allow,
                    by: DecidedBy::Rule(i),
                };
            }
        }
        Decision {
            allow: false,
            by: DecidedBy::Default,
        }
    }

    /// Whether the client may connect, and if not, why (which picks the CONNACK code).
    ///
    /// Refused by a `users` entry whose password verified but that has `disallow: true`, or
    /// by an `auth` rule with `allow: false` that sets at least one criterion: the client is
    /// known and barred, [`Refusal::NotAuthorized`]. Refused because nothing matched, or by
    /// a catch-all `allow: false` rule (no criteria, the same as nothing matching):
    /// [`Refusal::BadCredentials`].
    ///
    /// A barred user whose password verified thus learns that it did; use `disallow` (or a
    /// deny rule with a password) only where that is acceptable, e.g. to suspend an account.
    pub fn check_connect(&self, req: &AuthRequest<'_>) -> Result<(), Refusal> {
        let decision = self.check_auth(req);
        if decision.allow {
            return Ok(());
        }
        Err(match decision.by {
            DecidedBy::User(_) => Refusal::NotAuthorized,
            DecidedBy::Rule(i) => {
                let r = &self.rules.auth[i];
                let catch_all = r.client == Criterion::Any
                    && r.username == Criterion::Any
                    && r.remote == Criterion::Any
                    && r.password.is_none();
                if catch_all {
                    Refusal::BadCredentials
                } else {
                    Refusal::NotAuthorized
                }
            }
            DecidedBy::Default => Refusal::BadCredentials,
        })
    }

    /// Whether the client may read (subscribe) or write (publish) the topic.
    pub fn acl(&self, req: &AclRequest<'_>) -> bool {
        self.check_acl(req).allow
    }

    /// Whether the client may read or write the topic, and what decided.
    pub fn check_acl(&self, req: &AclRequest<'_>) -> Decision {
        let subst = Subst::new(req.client_id, req.username);
        if let Some(name) = req.username {
            if let Some(user) = self.rules.users.get(name) {
                if let Some(allow) = user.acl.decide(req.topic, req.write, &subst) {
                    return Decision {
                        allow,
                        by: DecidedBy::User(name.to_owned()),
                    };
                }
            }
        }
        for i in self.acl_index.candidates(req.client_id, req.username) {
            let rule = &self.rules.acl[i];
            if !(rule.client.matches(Some(req.client_id))
                && rule.username.matches(req.username)
                && rule.remote.matches(Some(req.remote)))
            {
                continue;
            }
            let decided = if rule.filters.is_empty() {
                Some(true)
            } else {
                rule.filters.decide(req.topic, req.write, &subst)
            };
            if let Some(allow) = decided {
                return Decision {
                    allow,
                    by: DecidedBy::Rule(i),
                };
            }
        }
        Decision {
            allow: true,
            by: DecidedBy::Default,
        }
    }
}

/// Candidate rules for a client, in rule order, without scanning every rule.
///
/// A rule with an exact `client` can only match that client id, so it is filed under it; a
/// rule with an exact `username` (and any other client criterion) under that username;
/// everything else in `rest`. The candidates of a request are the union of its client's
/// list, its username's list and `rest`, merged by rule index, which keeps first-match order.
#[derive(Clone, Debug, Default)]
struct RuleIndex {
    by_client: HashMap<Box<str>, Vec<usize>>,
    by_username: HashMap<Box<str>, Vec<usize>>,
    rest: Vec<usize>,
}

impl RuleIndex {
    fn build<'a>(rules: impl Iterator<Item = (&'a Criterion, &'a Criterion)>) -> Self {
        let mut index = Self::default();
        for (i, (client, username)) in rules.enumerate() {
            if let Some(c) = client.exact() {
                index.by_client.entry(c.into()).or_default().push(i);
            } else if let Some(u) = username.exact() {
                index.by_username.entry(u.into()).or_default().push(i);
            } else {
                index.rest.push(i);
            }
        }
        index
    }

    fn candidates(&self, client_id: &str, username: Option<&str>) -> Merge3<'_> {
        let by_client = self.by_client.get(client_id).map_or(&[][..], Vec::as_slice);
        let by_username = username
            .and_then(|u| self.by_username.get(u))
            .map_or(&[][..], Vec::as_slice);
        Merge3([by_client, by_username, &self.rest])
    }
}

/// Merges three ascending, disjoint index lists into one ascending sequence.
struct Merge3<'a>([&'a [usize]; 3]);

impl Iterator for Merge3<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (slot, list) in self.0.iter().enumerate() {
            if let Some(&first) = list.first() {
                if best.is_none_or(|(_, b)| first < b) {
                    best = Some((slot, first));
                }
            }
        }
        let (slot, value) = best?;
        self.0[slot] = &self.0[slot][1..];
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_rule_order() {
        let merged: Vec<_> = Merge3([&[1, 5, 9], &[2, 3], &[0, 7, 10]]).collect();
        assert_eq!(merged, [0, 1, 2, 3, 5, 7, 9, 10]);
        assert_eq!(Merge3([&[], &[], &[]]).next(), None);
    }

    #[test]
    fn index_files_rules_by_their_most_selective_exact_criterion() {
        let c = |s: &str| Criterion::parse(s).unwrap();
        let rules = [
            (c("a"), c("")),
            (c(""), c("u")),
            (c("a"), c("u")),
            (c("b*"), c("")),
            (c("*"), c("v*")),
        ];
        let index = RuleIndex::build(rules.iter().map(|(a, b)| (a, b)));
        let got = |client, user| index.candidates(client, user).collect::<Vec<_>>();
        assert_eq!(got("a", Some("u")), [0, 1, 2, 3, 4]);
        assert_eq!(got("a", None), [0, 2, 3, 4]);
        assert_eq!(got("z", Some("u")), [1, 3, 4]);
        assert_eq!(got("z", None), [3, 4]);
    }
}

//! The ledger: rules plus the indexes that make checks cheap.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::filter::{filters_overlap, Subst};
use crate::load::{self, Format};
use crate::rules::{Criterion, Filters, LedgerRules};
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

    /// Whether [`check_acl`](Self::check_acl) could deny this client reading some topic that
    /// the subscription filter `req.topic` matches (a `$share/{group}/` prefix is looked
    /// through). The engine asks once per subscription and checks each delivery only where
    /// the answer is yes; so it is never no when a denial is possible, and may be yes when
    /// none is (it looks at each rule's filters, not at every topic).
    ///
    /// ```
    /// use moco_auth::{AclRequest, Ledger};
    ///
    /// let ledger = Ledger::from_yaml_bytes(br##"
    /// acl:
    ///   - username: melon
    ///     filters: {"melon/#": readwrite, "updates/#": writeonly}
    ///   - filters: {"#": readonly, "updates/#": deny}
    /// "##)?;
    /// let sub = |user, filter| AclRequest {
    ///     client_id: "c",
    ///     username: Some(user),
    ///     remote: "10.0.0.1:5000",
    ///     topic: filter,
    ///     write: false,
    /// };
    /// // melon may subscribe to `#` but not read `updates/…` through it: check deliveries.
    /// assert!(ledger.may_deny_read_within(&sub("melon", "#")));
    /// assert!(!ledger.may_deny_read_within(&sub("melon", "melon/#")));
    /// // For everyone else `#` grants reading everything (a grant wins within a rule).
    /// assert!(!ledger.may_deny_read_within(&sub("peach", "#")));
    /// # Ok::<(), moco_auth::Error>(())
    /// ```
    pub fn may_deny_read_within(&self, req: &AclRequest<'_>) -> bool {
        let filter = moco_engine::topic::parse_filter(req.topic).map_or(req.topic, |f| f.filter);
        let subst = Subst::new(req.client_id, req.username);
        let user = req.username.and_then(|name| self.rules.users.get(name));
        if let Some(u) = user.filter(|u| !u.acl.is_empty()) {
            match read_stage(&u.acl, filter, &subst) {
                Stage::MayDeny => return true,
                Stage::AllowsAll => return false,
                Stage::Passes => {}
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
            if rule.filters.is_empty() {
                return false; // allows everything, and nothing after it is reached
            }
            match read_stage(&rule.filters, filter, &subst) {
                Stage::MayDeny => return true,
                Stage::AllowsAll => return false,
                Stage::Passes => {}
            }
        }
        false
    }
}

/// What one stage of the ACL (a user's filters, or one rule) does to the topics of a
/// subscription filter.
enum Stage {
    /// It may deny reading one of them.
    MayDeny,
    /// It allows every one of them: later stages never see them.
    AllowsAll,
    /// It allows what it covers and leaves the rest to the next stage.
    Passes,
}

/// How the filters of one stage treat reads of the topics `filter` matches: a topic is
/// denied when the stage covers it and no covering filter grants reading (a grant wins
/// within a stage), so a non-reading filter that meets `filter` may deny, unless a reading
/// filter covers all of it or all of `filter`.
fn read_stage(filters: &Filters, filter: &str, subst: &Subst<'_>) -> Stage {
    for (deny, access) in &filters.0 {
        if access.allows(false) {
            continue;
        }
        let Some(deny) = deny.expand(subst) else {
            continue; // a placeholder with an unusable value covers nothing
        };
        if !filters_overlap(&deny, filter) {
            continue;
        }
        let shadowed = filters.0.iter().any(|(grant, a)| {
            a.allows(false) && (grant.covers_with(&deny, subst) || grant.covers_with(filter, subst))
        });
        if !shadowed {
            return Stage::MayDeny;
        }
    }
    if filters.0.iter().any(|(f, _)| f.covers_with(filter, subst)) {
        Stage::AllowsAll
    } else {
        Stage::Passes
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

    /// `may_deny_read_within` must say yes wherever `check_acl` denies some topic of the
    /// filter; compared here against `check_acl` on sample topics.
    #[test]
    fn may_deny_agrees_with_check_acl() {
        let ledger = Ledger::from_yaml_bytes(
            br##"
users:
  ann:
    acl: {"ann/private/#": deny, "ann/#": readwrite}
acl:
  - remote: "10.9.*"
  - client: dev-*
    filters: {"devices/%c/#": readwrite, "devices/#": deny}
  - filters: {"a/b": deny}
  - filters: {"#": readonly, "w/#": writeonly, "$SYS/#": deny}
"##,
        )
        .unwrap();
        let topics = [
            "ann/x",
            "ann/private/k",
            "devices/dev-1/t",
            "devices/dev-2/t",
            "a/b",
            "a/c",
            "w/1",
            "$SYS/up",
            "x",
        ];
        let filters = [
            "#",
            "ann/#",
            "ann/+",
            "devices/#",
            "devices/dev-1/#",
            "a/+",
            "a/c",
            "w/#",
            "$SYS/#",
            "$share/g/a/+",
            "$share/g/x",
            "x",
        ];
        let who = [
            ("ann-c", Some("ann"), "1.2.3.4:1"),
            ("dev-1", None, "1.2.3.4:1"),
            ("other", Some("bob"), "1.2.3.4:1"),
            ("root", None, "10.9.0.1:1"),
        ];
        for (client_id, username, remote) in who {
            for filter in filters {
                let req = |topic| AclRequest {
                    client_id,
                    username,
                    remote,
                    topic,
                    write: false,
                };
                let inner = moco_engine::topic::parse_filter(filter).unwrap().filter;
                let denied = topics
                    .iter()
                    .any(|t| moco_engine::topic::filter_matches(inner, t) && !ledger.acl(&req(t)));
                let may = ledger.may_deny_read_within(&req(filter));
                assert!(may || !denied, "{client_id} {filter}: a denial was missed");
            }
        }
        let may = |client_id, username, remote, topic| {
            ledger.may_deny_read_within(&AclRequest {
                client_id,
                username,
                remote,
                topic,
                write: false,
            })
        };
        // Precise where it can be: nothing to check for these.
        assert!(
            !may("root", None, "10.9.0.1:1", "#"),
            "a rule without filters allows all"
        );
        assert!(!may("dev-1", None, "1:1", "devices/dev-1/#"));
        assert!(!may("ann-c", Some("ann"), "1:1", "ann/public/#"));
        assert!(!may("o", None, "1:1", "a/c"));
        assert!(!may("o", None, "1:1", "$share/g/x/#"));
        // And yes where a deny is reachable.
        assert!(may("dev-1", None, "1:1", "devices/#"));
        assert!(
            !may("ann-c", Some("ann"), "1:1", "ann/#"),
            "within one stage a grant wins over a deny"
        );
        assert!(may("o", None, "1:1", "a/+"));
        assert!(may("o", None, "1:1", "$share/g/a/+"));
        assert!(
            may("o", None, "1:1", "#"),
            "w/# is write-only: reading it is denied"
        );
    }

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

//! Every rule path of the ledger: criteria, wildcards, order, defaults, access levels,
//! placeholders, users, and plain and hashed passwords.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use moco_auth::{AccessControl, AclRequest, AllowAll, AuthRequest, DecidedBy, Ledger};

/// Argon2id of "secret" with the cheapest parameters, so debug builds stay fast.
static ARGON2: LazyLock<String> = LazyLock::new(|| {
    let params = Params::new(8, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"secret")
        .unwrap()
        .to_string()
});

/// Bcrypt of "secret" at the lowest cost.
static BCRYPT: LazyLock<String> = LazyLock::new(|| bcrypt::hash("secret", 4).unwrap());

fn ledger(yaml: &str) -> Ledger {
    Ledger::from_yaml_bytes(yaml.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Clone, Copy)]
struct Conn<'a> {
    client: &'a str,
    user: Option<&'a str>,
    pass: Option<&'a [u8]>,
    remote: &'a str,
}

const BASE: Conn<'static> = Conn {
    client: "c1",
    user: Some("alice"),
    pass: Some(b"secret"),
    remote: "127.0.0.1:5000",
};

fn auth(l: &Ledger, c: Conn<'_>) -> bool {
    l.authenticate(&AuthRequest {
        client_id: c.client,
        username: c.user,
        password: c.pass,
        remote: c.remote,
    })
}

fn acl_as(l: &Ledger, client: &str, user: Option<&str>, topic: &str, write: bool) -> bool {
    l.acl(&AclRequest {
        client_id: client,
        username: user,
        remote: "127.0.0.1:5000",
        topic,
        write,
    })
}

fn read(l: &Ledger, topic: &str) -> bool {
    acl_as(l, "c1", Some("alice"), topic, false)
}

fn write(l: &Ledger, topic: &str) -> bool {
    acl_as(l, "c1", Some("alice"), topic, true)
}

// ---- authentication ----

#[test]
fn auth_denies_when_nothing_matches() {
    assert!(!auth(&Ledger::default(), BASE));
    let l = ledger("auth:\n  - username: bob\n    allow: true\n");
    assert!(!auth(&l, BASE));
    assert_eq!(
        l.check_auth(&AuthRequest {
            client_id: "c1",
            username: None,
            password: None,
            remote: "r"
        })
        .by,
        DecidedBy::Default
    );
}

#[test]
fn auth_rule_with_no_criteria_matches_everyone() {
    assert!(auth(&ledger("auth: [{allow: true}]"), BASE));
    assert!(auth(
        &ledger("auth: [{allow: true}]"),
        Conn {
            user: None,
            pass: None,
            ..BASE
        }
    ));
    assert!(!auth(&ledger("auth: [{allow: false}]"), BASE));
    assert!(
        !auth(&ledger("auth: [{}]"), BASE),
        "allow defaults to false"
    );
}

#[test]
fn auth_client_criterion() {
    let l = ledger("auth: [{client: c1, allow: true}]");
    assert!(auth(&l, BASE));
    assert!(!auth(
        &l,
        Conn {
            client: "c2",
            ..BASE
        }
    ));
    assert!(!auth(
        &l,
        Conn {
            client: "c1x",
            ..BASE
        }
    ));
}

#[test]
fn auth_username_criterion() {
    let l = ledger("auth: [{username: alice, allow: true}]");
    assert!(auth(&l, BASE));
    assert!(!auth(
        &l,
        Conn {
            user: Some("bob"),
            ..BASE
        }
    ));
    assert!(
        !auth(&l, Conn { user: None, ..BASE }),
        "no username is not alice"
    );
    let any = ledger("auth: [{username: '*', allow: true}]");
    assert!(auth(&any, Conn { user: None, ..BASE }));
}

#[test]
fn auth_remote_criterion_and_wildcard() {
    let l = ledger("auth: [{remote: '127.0.0.1:*', allow: true}]");
    assert!(auth(&l, BASE));
    assert!(!auth(
        &l,
        Conn {
            remote: "127.0.0.2:5000",
            ..BASE
        }
    ));
    assert!(!auth(
        &l,
        Conn {
            remote: "10.127.0.1:5000",
            ..BASE
        }
    ));
    let exact = ledger("auth: [{remote: '127.0.0.1:5000', allow: true}]");
    assert!(auth(&exact, BASE));
    assert!(!auth(
        &exact,
        Conn {
            remote: "127.0.0.1:5001",
            ..BASE
        }
    ));
}

#[test]
fn auth_client_and_username_wildcards() {
    let l = ledger("auth: [{client: 'sensor-*', username: 'dev*', allow: true}]");
    let ok = Conn {
        client: "sensor-7",
        user: Some("device"),
        ..BASE
    };
    assert!(auth(&l, ok));
    assert!(
        !auth(
            &l,
            Conn {
                client: "sensor-",
                ..ok
            }
        ),
        "* stands for 1+ chars"
    );
    assert!(!auth(
        &l,
        Conn {
            client: "actuator-7",
            ..ok
        }
    ));
    assert!(!auth(
        &l,
        Conn {
            user: Some("admin"),
            ..ok
        }
    ));
}

#[test]
fn auth_plain_password() {
    let l = ledger("auth: [{username: alice, password: secret, allow: true}]");
    assert!(auth(&l, BASE));
    assert!(!auth(
        &l,
        Conn {
            pass: Some(b"Secret"),
            ..BASE
        }
    ));
    assert!(!auth(
        &l,
        Conn {
            pass: Some(b"secret\0"),
            ..BASE
        }
    ));
    assert!(
        !auth(&l, Conn { pass: None, ..BASE }),
        "a missing password never matches"
    );
    let star = ledger("auth: [{password: '*', allow: true}]");
    assert!(!auth(&star, BASE), "passwords are not wildcards");
    assert!(auth(
        &star,
        Conn {
            pass: Some(b"*"),
            ..BASE
        }
    ));
}

#[test]
fn auth_argon2_and_bcrypt_passwords() {
    for hash in [&*ARGON2, &*BCRYPT] {
        let l = ledger(&format!(
            "auth: [{{username: alice, password: '{hash}', allow: true}}]"
        ));
        assert!(auth(&l, BASE), "{hash}");
        assert!(
            !auth(
                &l,
                Conn {
                    pass: Some(b"wrong"),
                    ..BASE
                }
            ),
            "{hash}"
        );
        assert!(
            !auth(
                &l,
                Conn {
                    pass: Some(hash.as_bytes()),
                    ..BASE
                }
            ),
            "the hash itself is not the password"
        );
        assert!(!auth(&l, Conn { pass: None, ..BASE }));
    }
}

#[test]
fn auth_first_matching_rule_decides() {
    let l = ledger(
        "auth:
  - {username: alice, remote: '10.*', allow: false}
  - {username: alice, allow: true}
  - {allow: false}
",
    );
    assert!(auth(&l, BASE));
    assert!(!auth(
        &l,
        Conn {
            remote: "10.0.0.1:1",
            ..BASE
        }
    ));
    let d = l.check_auth(&AuthRequest {
        client_id: "c1",
        username: Some("alice"),
        password: None,
        remote: "x",
    });
    assert_eq!(d.by, DecidedBy::Rule(1));
    let reversed = ledger("auth: [{allow: false}, {username: alice, allow: true}]");
    assert!(!auth(&reversed, BASE));
}

#[test]
fn auth_rule_order_holds_across_indexed_and_scanned_rules() {
    // Rule 0 is found through the username index, rule 1 through the client index and rule
    // 2 through the scan list: the lowest index must still win.
    let l = ledger(
        "auth:
  - {username: alice, allow: false}
  - {client: c1, allow: true}
  - {client: 'c*', allow: true}
",
    );
    assert!(!auth(&l, BASE));
    assert!(auth(
        &l,
        Conn {
            user: Some("bob"),
            ..BASE
        }
    ));
    assert!(auth(
        &l,
        Conn {
            user: Some("bob"),
            client: "c9",
            ..BASE
        }
    ));
    assert!(!auth(
        &l,
        Conn {
            user: Some("bob"),
            client: "d9",
            ..BASE
        }
    ));
}

#[test]
fn auth_users_map() {
    let l = ledger(&format!(
        "users:
  alice: {{password: '{}'}}
  mallory: {{password: pw, disallow: true}}
  nopass: {{}}
auth:
  - {{username: mallory, allow: true}}
  - {{username: nopass, allow: true}}
",
        &*BCRYPT
    ));
    assert!(auth(&l, BASE));
    assert_eq!(
        l.check_auth(&AuthRequest {
            client_id: "c",
            username: Some("alice"),
            password: Some(b"secret"),
            remote: "r"
        })
        .by,
        DecidedBy::User("alice".into())
    );
    assert!(
        !auth(
            &l,
            Conn {
                pass: Some(b"bad"),
                ..BASE
            }
        ),
        "falls to rules: none match"
    );
    let mallory = Conn {
        user: Some("mallory"),
        pass: Some(b"pw"),
        ..BASE
    };
    assert!(!auth(&l, mallory), "disallowed with the right password");
    assert!(
        auth(
            &l,
            Conn {
                pass: Some(b"other"),
                ..mallory
            }
        ),
        "a wrong password falls through to the rules (mochi)"
    );
    assert!(auth(
        &l,
        Conn {
            user: Some("nopass"),
            ..BASE
        }
    ));
}

#[test]
fn connect_refusals_say_whether_the_client_is_known() {
    use moco_auth::{AccessControl, Refusal, SharedLedger};
    let l = ledger(
        "users:
  mallory: {password: pw, disallow: true}
auth:
  - {client: banned, allow: false}
  - {username: alice, password: secret, allow: true}
  - {username: old, password: leaked, allow: false}
  - {allow: false}
",
    );
    let connect = |client, user, pass: &'static [u8]| {
        l.check_connect(&AuthRequest {
            client_id: client,
            username: Some(user),
            password: Some(pass),
            remote: "r",
        })
    };
    assert_eq!(connect("c", "alice", b"secret"), Ok(()));
    assert_eq!(
        connect("c", "alice", b"bad"),
        Err(Refusal::BadCredentials),
        "catch-all deny"
    );
    assert_eq!(connect("c", "mallory", b"pw"), Err(Refusal::NotAuthorized));
    assert_eq!(connect("c", "mallory", b"x"), Err(Refusal::BadCredentials));
    assert_eq!(
        connect("banned", "alice", b"secret"),
        Err(Refusal::NotAuthorized)
    );
    assert_eq!(connect("c", "old", b"leaked"), Err(Refusal::NotAuthorized));
    assert_eq!(
        ledger("").check_connect(&AuthRequest {
            client_id: "c",
            username: None,
            password: None,
            remote: "r"
        }),
        Err(Refusal::BadCredentials),
        "nothing matched"
    );
    // The trait method agrees, through a SharedLedger and an Arc; AllowAll never refuses.
    let shared = std::sync::Arc::new(SharedLedger::new(l.clone()));
    let req = AuthRequest {
        client_id: "c",
        username: Some("mallory"),
        password: Some(b"pw"),
        remote: "r",
    };
    assert_eq!(
        AccessControl::connect(&shared, &req),
        Err(Refusal::NotAuthorized)
    );
    assert_eq!(AccessControl::connect(&AllowAll, &req), Ok(()));
}

// ---- ACL ----

#[test]
fn acl_allows_when_nothing_decides() {
    assert!(read(&Ledger::default(), "a") && write(&Ledger::default(), "a"));
    let l = ledger("acl: [{username: bob, filters: {'#': deny}}]");
    assert!(read(&l, "a/b") && write(&l, "a/b"));
    let l = ledger("acl: [{filters: {'x/#': deny}}]");
    assert!(
        read(&l, "a/b"),
        "a rule whose filters do not cover the topic does not decide"
    );
    assert_eq!(
        l.check_acl(&AclRequest {
            client_id: "c1",
            username: None,
            remote: "r",
            topic: "a",
            write: false
        })
        .by,
        DecidedBy::Default
    );
}

#[test]
fn acl_rule_without_filters_allows_everything() {
    let l = ledger("acl: [{username: alice}, {filters: {'#': deny}}]");
    assert!(read(&l, "a") && write(&l, "a"));
    assert!(!acl_as(&l, "c1", Some("bob"), "a", false));
}

#[test]
fn acl_each_access_level_for_read_and_write() {
    let l = ledger(
        "acl:
  - filters:
      d: 0
      r: 1
      w: 2
      rw: 3
      dn: deny
      rn: readonly
      wn: writeonly
      rwn: readwrite
",
    );
    for (topic, can_read, can_write) in [
        ("d", false, false),
        ("r", true, false),
        ("w", false, true),
        ("rw", true, true),
        ("dn", false, false),
        ("rn", true, false),
        ("wn", false, true),
        ("rwn", true, true),
    ] {
        assert_eq!(read(&l, topic), can_read, "read {topic}");
        assert_eq!(write(&l, topic), can_write, "write {topic}");
    }
}

#[test]
fn acl_criteria() {
    let l = ledger(
        "acl:
  - {client: c1, filters: {by-client: 3}}
  - {username: alice, filters: {by-user: 3}}
  - {remote: '127.0.0.1:*', filters: {by-remote: 3}}
  - {filters: {'#': 0}}
",
    );
    assert!(read(&l, "by-client") && read(&l, "by-user") && read(&l, "by-remote"));
    assert!(!acl_as(&l, "c2", Some("alice"), "by-client", false));
    assert!(!acl_as(&l, "c1", Some("bob"), "by-user", false));
    assert!(!acl_as(&l, "c1", None, "by-user", false));
    let far = l.acl(&AclRequest {
        client_id: "c1",
        username: Some("alice"),
        remote: "10.0.0.1:1",
        topic: "by-remote",
        write: false,
    });
    assert!(!far);
}

#[test]
fn acl_filters_use_mqtt_wildcards() {
    let l = ledger("acl: [{filters: {'a/+/c': 3, 'b/#': 3, '#': 0}}]");
    assert!(read(&l, "a/x/c") && write(&l, "a/x/c"));
    assert!(!read(&l, "a/x/y/c"));
    assert!(read(&l, "b") && read(&l, "b/x/y"));
    assert!(!read(&l, "c"));
}

#[test]
fn acl_first_deciding_rule_wins() {
    let l = ledger(
        "acl:
  - filters: {'secret/#': deny}
  - filters: {'#': readwrite}
",
    );
    assert!(!read(&l, "secret/x") && !write(&l, "secret/x"));
    assert!(read(&l, "public/x") && write(&l, "public/x"));
    let swapped = ledger("acl: [{filters: {'#': 3}}, {filters: {'secret/#': 0}}]");
    assert!(read(&swapped, "secret/x"));
    let by = l
        .check_acl(&AclRequest {
            client_id: "c1",
            username: None,
            remote: "r",
            topic: "secret/x",
            write: true,
        })
        .by;
    assert_eq!(by, DecidedBy::Rule(0));
}

#[test]
fn acl_within_a_rule_a_grant_beats_a_deny() {
    let l = ledger("acl: [{filters: {'a/secret': deny, 'a/#': readonly}}]");
    assert!(read(&l, "a/secret"), "mochi: any covering grant wins");
    assert!(!write(&l, "a/secret"), "covered, and nothing grants write");
    assert!(read(&l, "b"), "not covered: no decision, default allow");
}

#[test]
fn acl_subscription_filters_need_full_coverage() {
    let l = ledger("acl: [{filters: {'a/+': readonly, '#': deny}}]");
    assert!(read(&l, "a/+") && read(&l, "a/b"));
    assert!(!read(&l, "a/#"), "a/+ must not grant a/#");
    assert!(!read(&l, "#"));
}

#[test]
fn acl_placeholders() {
    let l = ledger(
        "acl:
  - filters:
      'devices/%c/#': readwrite
      'users/%u/inbox': readonly
      '#': deny
",
    );
    assert!(acl_as(&l, "d1", None, "devices/d1/temp", true));
    assert!(!acl_as(&l, "d1", None, "devices/d2/temp", true));
    assert!(acl_as(&l, "d1", Some("ann"), "users/ann/inbox", false));
    assert!(!acl_as(&l, "d1", Some("ann"), "users/ann/inbox", true));
    assert!(!acl_as(&l, "d1", Some("ann"), "users/bob/inbox", false));
    assert!(!acl_as(&l, "d1", None, "users//inbox", false));
    // Wildcards or separators in the substituted value never widen the match.
    assert!(!acl_as(&l, "+", None, "devices/+/temp", false));
    assert!(!acl_as(&l, "+", None, "devices/d2/temp", false));
    assert!(!acl_as(&l, "#", None, "devices/#", false));
    assert!(!acl_as(&l, "a/b", None, "devices/a/b/x", true));
    assert!(!acl_as(&l, "d1", Some("+"), "users/+/inbox", false));
}

#[test]
fn acl_dollar_topics_need_explicit_filters() {
    let l = ledger("acl: [{filters: {'#': readwrite}}, {filters: {'$SYS/#': deny}}]");
    assert!(!read(&l, "$SYS/broker/uptime"));
    let open = ledger("acl: [{filters: {'#': deny}}]");
    assert!(
        read(&open, "$SYS/x"),
        "`#` does not cover $SYS, so the default applies"
    );
}

#[test]
fn acl_users_map_first_then_rules() {
    let l = ledger(
        "users:
  alice:
    acl: {'mine/#': readwrite, 'ro/#': readonly}
acl:
  - filters: {'mine/#': deny, 'ro/#': deny, 'other/#': deny}
",
    );
    assert!(read(&l, "mine/x") && write(&l, "mine/x"));
    assert!(read(&l, "ro/x") && !write(&l, "ro/x"));
    assert!(
        !read(&l, "other/x"),
        "the user's filters do not cover it: rules decide"
    );
    assert!(!acl_as(&l, "c1", Some("bob"), "mine/x", false));
}

#[test]
fn allow_all_allows_everything() {
    let a = AllowAll;
    assert!(a.authenticate(&AuthRequest {
        client_id: "",
        username: None,
        password: None,
        remote: ""
    }));
    assert!(a.acl(&AclRequest {
        client_id: "",
        username: None,
        remote: "",
        topic: "$SYS/#",
        write: true
    }));
}

#[test]
fn large_ledgers_keep_first_match_order() {
    let mut yaml = String::from("acl:\n  - filters: {'global/deny': deny}\n");
    for i in 0..2000 {
        yaml.push_str(&format!(
            "  - {{client: dev{i}, filters: {{'devices/dev{i}/#': readwrite, '#': deny}}}}\n"
        ));
    }
    yaml.push_str("  - {username: 'u*', filters: {'#': readonly}}\n");
    let l = ledger(&yaml);
    assert!(acl_as(&l, "dev1999", None, "devices/dev1999/x", true));
    assert!(!acl_as(&l, "dev1999", None, "devices/dev1/x", true));
    assert!(!acl_as(&l, "dev7", None, "global/deny", false));
    assert!(acl_as(&l, "other", Some("user"), "x", false));
    assert!(!acl_as(&l, "other", Some("user"), "x", true));
    assert!(acl_as(&l, "other", Some("v"), "x", true));
}

//! Loading ledgers: YAML and JSON, files and bytes, the example files, and bad input with the
//! line and column of the problem.

use std::path::{Path, PathBuf};

use moco_auth::{AclRequest, AuthRequest, Error, Format, Ledger, Location, PasswordKind};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn auth(l: &Ledger, client: &str, user: Option<&str>, pass: Option<&[u8]>, remote: &str) -> bool {
    l.authenticate(&AuthRequest {
        client_id: client,
        username: user,
        password: pass,
        remote,
    })
}

fn acl(l: &Ledger, client: &str, user: Option<&str>, topic: &str, write: bool) -> bool {
    l.acl(&AclRequest {
        client_id: client,
        username: user,
        remote: "192.0.2.1:1",
        topic,
        write,
    })
}

fn check_example(l: &Ledger) {
    let r = l.rules();
    assert_eq!((r.users.len(), r.auth.len(), r.acl.len()), (2, 4, 4));
    let admin = r.users["admin"].password.as_ref().unwrap();
    assert_eq!(admin.kind(), PasswordKind::Argon2);
    let bridge = r.auth[1].password.as_ref().unwrap();
    assert_eq!(bridge.kind(), PasswordKind::Bcrypt);

    let far = "192.0.2.1:1";
    assert!(!auth(l, "s", Some("device"), Some(b"device-password"), far));
    assert!(auth(
        l,
        "sensor-1",
        Some("device"),
        Some(b"device-password"),
        far
    ));
    assert!(!auth(l, "sensor-1", Some("device"), Some(b"nope"), far));
    assert!(auth(l, "x", None, None, "127.0.0.1:4000"));
    assert!(!auth(l, "x", None, None, "10.0.0.66:4000"));
    assert!(!auth(
        l,
        "x",
        Some("retired"),
        Some(b"old-password"),
        "127.0.0.1:1"
    ));
    assert!(!auth(l, "x", None, None, far));

    assert!(acl(
        l,
        "sensor-1",
        Some("device"),
        "devices/sensor-1/t",
        true
    ));
    assert!(!acl(
        l,
        "sensor-1",
        Some("device"),
        "devices/sensor-2/t",
        true
    ));
    assert!(acl(
        l,
        "sensor-1",
        Some("device"),
        "devices/sensor-2/config",
        false
    ));
    assert!(acl(l, "sensor-1", None, "commands/sensor-1", false));
    assert!(!acl(l, "sensor-1", None, "commands/sensor-1", true));
    assert!(!acl(l, "sensor-1", Some("device"), "secret/x", false));
    assert!(acl(l, "c", Some("ann"), "users/ann/x", true));
    assert!(acl(l, "c", Some("ann"), "alerts", true));
    assert!(!acl(l, "c", Some("ann"), "alerts", false));
    assert!(!acl(l, "c", Some("ann"), "elsewhere", false));
    assert!(
        !acl(l, "c", None, "elsewhere", false),
        "`*` matches a missing username too"
    );
    assert!(acl(l, "c", Some("bridge"), "secret/x", true));
    assert!(acl(l, "c", Some("admin"), "$SYS/uptime", false));
    assert!(!acl(l, "c", Some("admin"), "$SYS/uptime", true));
}

#[test]
fn example_yaml_and_json_load_and_agree() {
    let yaml = Ledger::from_path(examples().join("ledger.yaml")).unwrap();
    let json = Ledger::from_path(examples().join("ledger.json")).unwrap();
    check_example(&yaml);
    check_example(&json);
}

#[test]
fn example_hashes_are_of_the_documented_password() {
    let l = Ledger::from_path(examples().join("ledger.yaml")).unwrap();
    let admin = l.rules().users["admin"].password.as_ref().unwrap();
    assert!(admin.verify(b"s3cret") && !admin.verify(b"secret"));
}

#[test]
fn format_is_chosen_by_extension_then_content() {
    let dir = tempfile::tempdir().unwrap();
    let json = "{\"auth\": [{\"allow\": true}]}";
    for (name, text) in [
        ("a.json", json),
        ("a.conf", json),
        ("b.yml", "auth: [{allow: true}]"),
        ("b", "auth:\n  - allow: true\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let l = Ledger::from_path(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(auth(&l, "c", None, None, "r"), "{name}");
    }
    // A .json file is parsed as JSON even when it is valid YAML.
    let p = dir.path().join("c.json");
    std::fs::write(&p, "auth: []").unwrap();
    let err = Ledger::from_path(&p).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                format: Format::Json,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_yaml_is_an_empty_ledger() {
    for text in ["", "  \n", "# nothing here\n", "auth: ~\nacl:\nusers:\n"] {
        let l = Ledger::from_yaml_bytes(text.as_bytes()).unwrap();
        assert!(!auth(&l, "c", None, None, "r"), "empty ledger denies auth");
        assert!(acl(&l, "c", None, "t", true), "empty ledger allows ACL");
    }
}

#[test]
fn yaml_scalars_are_read_as_text() {
    let l = Ledger::from_yaml_bytes(
        b"auth: [{client: 12345, username: true, password: 0123, allow: true}]",
    )
    .unwrap();
    assert!(auth(&l, "12345", Some("true"), Some(b"0123"), "r"));
}

#[test]
fn unreadable_file_names_the_path() {
    let err = Ledger::from_path("/nonexistent/ledger.yaml").unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/ledger.yaml"),
        "{err}"
    );
}

/// Loads `text` from a file and checks the error names the file, line, column and problem.
fn bad_file(ext: &str, text: &str, line: usize, column: usize, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("ledger.{ext}"));
    std::fs::write(&path, text).unwrap();
    let err = Ledger::from_path(&path).unwrap_err();
    let shown = err.to_string();
    match &err {
        Error::Invalid {
            origin,
            location,
            message,
            ..
        } => {
            assert_eq!(*origin, path.display().to_string());
            assert_eq!(*location, Some(Location { line, column }), "{shown}");
            assert!(message.contains(what), "{shown}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(
        shown.contains(&format!("line {line}, column {column}")),
        "{shown}"
    );
    assert!(shown.contains(what), "{shown}");
}

#[test]
fn bad_yaml_files_name_line_and_column() {
    bad_file(
        "yaml",
        "auth:\n  - username: a\n    alow: true\n",
        3,
        5,
        "unknown field `alow`",
    );
    bad_file(
        "yaml",
        "acl:\n  - filters:\n      a/b: rw\n",
        3,
        12,
        "unknown access level `rw`",
    );
    bad_file(
        "yaml",
        "acl:\n  - filters:\n      a/b: 4\n",
        3,
        12,
        "unknown access level 4",
    );
    bad_file(
        "yaml",
        "acl:\n  - filters:\n      a/#/b: 3\n",
        3,
        7,
        "`#` must be the last level",
    );
    bad_file(
        "yaml",
        "acl:\n  - filters:\n      a+: 3\n",
        3,
        7,
        "must fill a whole level",
    );
    bad_file(
        "yaml",
        "acl:\n  - filters:\n      a: 3\n      a: 1\n",
        4,
        7,
        "`a` is listed twice",
    );
    bad_file(
        "yaml",
        "auth:\n  - client: a*b\n",
        2,
        13,
        "only allowed as the last character",
    );
    bad_file(
        "yaml",
        "auth:\n  - password: \"$2b$04$short\"\n",
        2,
        15,
        "bad bcrypt hash",
    );
    bad_file(
        "yaml",
        "auth:\n  - password: \"$argon2id$v=19$x\"\n",
        2,
        15,
        "bad argon2",
    );
    bad_file(
        "yaml",
        "auth:\n  - allow: maybe\n",
        2,
        12,
        "expected a boolean",
    );
    bad_file(
        "yaml",
        "users:\n  a: {password: x}\n  a: {password: y}\n",
        3,
        3,
        "`a` is listed twice",
    );
    bad_file(
        "yaml",
        "auth: [\n",
        2,
        1,
        "did not find expected node content",
    );
    bad_file(
        "yaml",
        "auth:\n  - allow: true\n   client: x\n",
        3,
        4,
        "did not find expected '-' indicator",
    );
    bad_file("yaml", "acl: {}\n", 1, 6, "expected a sequence");
    bad_file("yaml", "rules: []\n", 1, 1, "unknown field `rules`");
}

#[test]
fn bad_json_files_name_line_and_column() {
    bad_file(
        "json",
        "{\n  \"auth\": [\n    {\"alow\": true}\n  ]\n}",
        3,
        11,
        "unknown field `alow`",
    );
    bad_file(
        "json",
        "{\"acl\": [{\"filters\": {\"a/b\": \"rw\"}}]}",
        1,
        33,
        "unknown access level `rw`",
    );
    bad_file(
        "json",
        "{\"acl\": [{\"filters\": {\"a\": 3, \"a\": 1}}]}",
        1,
        33,
        "`a` is listed twice",
    );
    bad_file("json", "{\"auth\": [}", 1, 11, "expected value");
    bad_file(
        "json",
        "{\"auth\": [{\"client\": 7}]}",
        1,
        22,
        "expected a string",
    );
    bad_file("json", "", 1, 1, "EOF while parsing");
}

#[test]
fn bytes_name_their_format_as_origin() {
    let err = Ledger::from_json_bytes(b"[]").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid JSON ledger <JSON bytes> at line 1, column"),
        "{err}"
    );
    let err = Ledger::from_yaml_bytes(b"acl: 3").unwrap_err();
    assert!(err.to_string().contains("expected a sequence"), "{err}");
    let err = Ledger::from_yaml_bytes(b"acl: [[]]").unwrap_err();
    assert!(err.to_string().contains("expected a map"), "{err}");
    let err = Ledger::from_yaml_bytes(b"acl: 3").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid YAML ledger <YAML bytes> at line 1, column 6"),
        "{err}"
    );
}

//! Configuration files through the real binary: the examples load, bad files are refused
//! with one message naming file, line, column, field and problem, and exit code 2.

mod common;

use common::*;

#[test]
fn example_configs_load() {
    let root = repo_root();
    let out = run(&["check-config", root.join("moco.yaml").to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("maximum_client_writes_pending: 8192"),
        "{stdout}"
    );
    assert!(stdout.contains("<redacted>"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let interop = std::fs::read_to_string(root.join("interop/moco.yaml"))
        .unwrap()
        .replace("@PORT@", "0");
    let path = write(dir.path(), "interop.yaml", &interop);
    let out = run(&["check-config", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "maximum_keep_alive: 60",
        "obscure_not_authorized: true",
        "test/nosubscribe: writeonly",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing:\n{stdout}");
    }
}

/// Every field of the schema is written (and so commented) in the example `moco.yaml`.
#[test]
fn example_names_every_field() {
    let text = std::fs::read_to_string(repo_root().join("moco.yaml")).unwrap();
    let mut keys = Vec::new();
    collect_keys(
        &yaml_serde::to_value(moco::config::Config::default()).unwrap(),
        &mut keys,
    );
    // Optional fields, absent from the defaults.
    keys.extend(
        [
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "require_client_cert",
            "use_identity_as_username",
            "allowed_origins",
            "mode",
            "ledger",
            "ledger_file",
            "sled",
            "redis",
            "path",
            "username",
            "password",
            "database",
            "prefix",
            "bearer_token",
            "users",
            "anonymous_read",
        ]
        .map(String::from),
    );
    for k in keys {
        assert!(
            text.contains(&format!("{k}:")),
            "moco.yaml does not show `{k}`"
        );
    }
}

fn collect_keys(v: &yaml_serde::Value, out: &mut Vec<String>) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            for (k, v) in m {
                out.push(k.as_str().unwrap().to_owned());
                collect_keys(v, out);
            }
        }
        yaml_serde::Value::Sequence(s) => s.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

/// (name, text, line, field, words the message must contain)
const BAD: &[(&str, &str, usize, &str, &str)] = &[
    (
        "unknown-top.yaml",
        "listners:\n  - type: tcp\n",
        1,
        "listners",
        "unknown field `listners`",
    ),
    (
        "unknown-nested.yaml",
        "options:\n  capabilities:\n    maximum_inflght: 10\n",
        3,
        "options.capabilities.maximum_inflght",
        "unknown field `maximum_inflght`, expected one of",
    ),
    (
        "wrong-type.yaml",
        "options:\n  capabilities:\n    maximum_inflight: lots\n",
        3,
        "options.capabilities.maximum_inflight",
        "invalid type",
    ),
    (
        "out-of-range.yaml",
        "options:\n  capabilities:\n    receive_maximum: 70000\n",
        3,
        "options.capabilities.receive_maximum",
        "70000",
    ),
    (
        "qos.yaml",
        "options:\n  capabilities:\n    maximum_qos: 3\n",
        3,
        "options.capabilities.maximum_qos",
        "must be 0, 1 or 2",
    ),
    (
        "zero.yaml",
        "options:\n  capabilities:\n    maximum_client_writes_pending: 0\n",
        3,
        "options.capabilities.maximum_client_writes_pending",
        "at least 1",
    ),
    (
        "protocol.yaml",
        "options:\n  capabilities:\n    minimum_protocol_version: 6\n",
        3,
        "options.capabilities.minimum_protocol_version",
        "must be 3",
    ),
    (
        "address.yaml",
        "listeners:\n  - type: tcp\n    address: 127.0.0.1:1\n  - type: tcp\n    id: two\n    address: nowhere\n",
        6,
        "listeners[1].address",
        "invalid address `nowhere`",
    ),
    (
        "duplicate-id.yaml",
        "listeners:\n  - type: tcp\n    id: a\n    address: 127.0.0.1:1\n  - type: tcp\n    id: a\n    address: 127.0.0.1:2\n",
        6,
        "listeners[1].id",
        "duplicate listener id `a`",
    ),
    (
        "missing-address.yaml",
        "listeners:\n  - type: tcp\n    id: a\n",
        2,
        "listeners[0]",
        "missing field `address`",
    ),
    (
        "tls-without-cert.yaml",
        "listeners:\n  - type: tls\n    address: 127.0.0.1:8883\n",
        2,
        "listeners[0].type",
        "needs `tls_cert_file`",
    ),
    (
        "ws-path.yaml",
        "listeners:\n  - type: ws\n    address: 127.0.0.1:1882\n    path: mqtt\n",
        4,
        "listeners[0].path",
        "must start with `/`",
    ),
    (
        "tls-missing-cert.yaml",
        "listeners:\n  - type: tls\n    id: secure\n    address: 127.0.0.1:8883\n    \
         tls_cert_file: /nonexistent/cert.pem\n    tls_key_file: /nonexistent/key.pem\n",
        5,
        "listeners[0].tls_cert_file",
        "listener `secure`: certificate file /nonexistent/cert.pem: No such file",
    ),
    (
        "mode-on-tcp.yaml",
        "listeners:\n  - type: tcp\n    address: 127.0.0.1:1\n    mode: \"0660\"\n",
        4,
        "listeners[0].mode",
        "takes no `mode`",
    ),
    (
        "identity-without-required-cert.yaml",
        "listeners:\n  - type: tls\n    address: 127.0.0.1:8883\n    tls_cert_file: c.pem\n    \
         tls_key_file: k.pem\n    use_identity_as_username: true\n",
        6,
        "listeners[0].use_identity_as_username",
        "needs `require_client_cert: true`",
    ),
    (
        "unknown-type.yaml",
        "listeners:\n  - type: quic\n    address: 127.0.0.1:1\n",
        2,
        "listeners[0].type",
        "unknown variant `quic`",
    ),
    (
        "allow-all-and-ledger.yaml",
        "hooks:\n  auth:\n    allow_all: true\n    ledger:\n      auth: [{allow: true}]\n",
        3,
        "hooks.auth.allow_all",
        "choose one",
    ),
    (
        "missing-ledger.yaml",
        "hooks:\n  auth:\n    ledger_file: no-such-ledger.yaml\n",
        3,
        "hooks.auth.ledger_file",
        "cannot read ledger file",
    ),
    (
        "inline-ledger.yaml",
        "hooks:\n  auth:\n    ledger:\n      acl:\n        - filters:\n            \"a/#\": sometimes\n",
        6,
        "hooks.auth.ledger.acl",
        "sometimes",
    ),
    (
        "storage.yaml",
        "hooks:\n  storage:\n    sled:\n      path: /tmp/x\n    durability: periodic\n    flush_interval_ms: 0\n",
        6,
        "hooks.storage.flush_interval_ms",
        "at least 1",
    ),
    (
        "log-format.yaml",
        "logging:\n  format: xml\n",
        2,
        "logging.format",
        "unknown variant `xml`",
    ),
    (
        "log-level.yaml",
        "logging:\n  level: \"info,=[\"\n",
        2,
        "logging.level",
        "not a log level",
    ),
    (
        "syntax.yaml",
        "logging:\n\tlevel: info\n",
        2,
        "",
        "cannot start any token",
    ),
    (
        "trailing-comma.json",
        "{\n  \"logging\": {\"level\": \"info\",}\n}\n",
        2,
        "logging",
        "trailing comma",
    ),
    (
        "json-unknown.json",
        "{\n  \"options\": {\n    \"inline\": true\n  }\n}\n",
        3,
        "options.inline",
        "unknown field `inline`",
    ),
];

#[test]
fn bad_configs_name_file_line_field_and_problem_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for &(name, text, line, field, words) in BAD {
        let path = write(dir.path(), name, text);
        let out = run(&["check-config", &path]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: printed a configuration");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains(&path), "{name}: no file name: {err}");
        assert!(
            err.contains(&format!(" line {line}, column ")),
            "{name}: expected line {line}: {err}"
        );
        if !field.is_empty() {
            assert!(
                err.contains(&format!("field `{field}")),
                "{name}: expected field `{field}`: {err}"
            );
        }
        assert!(err.contains(words), "{name}: expected `{words}`: {err}");
    }
}

/// The same messages at start-up.
#[test]
fn bad_config_at_start_up_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        "options:\n  capabilities:\n    maximum_qos: 9\n",
    );
    let out = run(&["--config", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml at line 3, column 18, field `options.capabilities.maximum_qos`"),
        "{err}"
    );
    let out = run(&[
        "--config",
        &dir.path().join("absent.yaml").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.yaml"));
    // A flag's bad value is named as coming from the command line.
    let good = write(
        dir.path(),
        "good.yaml",
        "hooks:\n  auth:\n    allow_all: true\n",
    );
    let out = run(&["--config", &good, "--tcp", "somewhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("command line") && err.contains("listeners[0].address"),
        "{err}"
    );
}

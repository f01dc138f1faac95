//! Every example in `examples/` runs in demo mode (`--demo`: a self-check on a free loopback
//! port) and exits successfully within a bound.
//!
//! `cargo test` builds the examples before it runs the tests; when this test runs alone
//! (`cargo test --test examples`) it builds them first with the same cargo.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 5] = [
    "minimal",
    "auth_hook",
    "inline_client",
    "inject_packet",
    "rewrite_payload",
];

/// `target/<profile>/examples`, next to the `deps` directory this test binary is in.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

fn binary(name: &str) -> PathBuf {
    let path = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "moco", "--examples"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the examples failed");
    }
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn run_demo(name: &str) {
    let mut child = Command::new(binary(name))
        .arg("--demo")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("example {name} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success() && stdout.contains("demo ok"),
        "example {name}: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn minimal() {
    run_demo("minimal");
}

#[test]
fn auth_hook() {
    run_demo("auth_hook");
}

#[test]
fn inline_client() {
    run_demo("inline_client");
}

#[test]
fn inject_packet() {
    run_demo("inject_packet");
}

#[test]
fn rewrite_payload() {
    run_demo("rewrite_payload");
}

#[test]
fn every_example_file_is_listed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rs").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

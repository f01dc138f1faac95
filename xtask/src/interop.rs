//! `cargo xtask interop [--broker moco|mosquitto] [--transport tcp|tls|ws|wss|unix] [-k FILTER]`:
//! the interoperability suite.
//!
//! Picks a free loopback port, builds and starts the broker under test with the configuration
//! the suite needs (`interop/moco.yaml` or `interop/mosquitto.conf`), waits until it accepts
//! connections, makes sure the Python venv `interop/.venv` has the pinned paho-mqtt, runs
//! `interop/suite.py` for MQTT v3.1.1 and v5, and stops the broker whatever happened. The
//! suite's summary, `N passed, N failed`, is the last line printed; any failure exits 1.
//!
//! `--transport` runs the whole suite over another of moco's transports: the xtask adds that
//! listener to the configuration (TLS with a CA and server certificate it makes with rcgen,
//! WebSocket on `/mqtt`, a Unix socket in the work directory) beside the TCP one it waits on,
//! and the suite's clients (paho-mqtt and the raw socket client) connect through it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{display, root, run, succeeds};

/// Which broker the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Broker {
    /// The release build of this workspace's `moco` binary.
    Moco,
    /// Mosquitto from Debian's package (installed with apt-get when missing), to check the suite.
    Mosquitto,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Moco => "moco",
            Broker::Mosquitto => "mosquitto",
        }
    }
}

/// Which transport the suite's clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TLS (the CA is made for the run).
    Tls,
    /// WebSocket on `/mqtt`.
    Ws,
    /// Secure WebSocket on `/mqtt`.
    Wss,
    /// A Unix socket.
    Unix,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            Transport::Unix => "unix",
        }
    }
}

/// How long a broker gets to accept connections after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// `cargo xtask interop`: runs the suite and exits 1 when a scenario failed, with the summary
/// `N passed, N failed` as the last line (no anyhow `Error:` line after it).
pub fn interop(broker: Broker, transport: Transport, filter: Option<String>) -> Result<()> {
    if run_interop(broker, transport, filter)? {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// Runs the suite against `broker`; `filter` selects scenarios by name (`-k`). Returns whether
/// every scenario passed; errors are failures to set up or run the suite at all.
pub fn run_interop(broker: Broker, transport: Transport, filter: Option<String>) -> Result<bool> {
    if broker != Broker::Moco && transport != Transport::Tcp {
        bail!("--transport {} is run against moco only", transport.name());
    }
    let started = Instant::now();
    let interop_dir = root().join("interop");
    let work = std::env::temp_dir().join(format!("moco-interop-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let port = free_port()?;
    let mut launch = broker_command(broker, port, &interop_dir, &work)?;
    let client = Clients::prepare(transport, &work, &mut launch)?;
    let python = ensure_venv(&interop_dir)?;

    let log = work.join(format!("{}.log", broker.name()));
    let mut guard = BrokerProcess::start(launch.cmd, &log)?;
    guard.wait_ready(launch.port)?;

    let mut suite = Command::new(&python);
    suite
        .current_dir(&interop_dir)
        .env("PYTHONUNBUFFERED", "1")
        .arg("suite.py")
        .args(["--host", "127.0.0.1", "--port", &client.port.to_string()])
        .args(["--broker-name", broker.name()])
        .args(["--transport", transport.name()])
        .args(client.args);
    if let Some(f) = &filter {
        suite.args(["-k", f]);
    }
    let outcome = run_suite(suite);
    let exited_early = guard.stop();

    let (passed, summary) = match outcome {
        Ok((true, summary)) => {
            let _ = fs::remove_dir_all(&work);
            println!(
                "interop against {} over {} finished in {:.0}s",
                broker.name(),
                transport.name(),
                started.elapsed().as_secs_f64()
            );
            (true, summary)
        }
        Ok((false, summary)) => {
            report_failure(broker, &log, exited_early);
            (false, summary)
        }
        Err(e) => {
            report_failure(broker, &log, exited_early);
            return Err(e);
        }
    };
    // The summary is the last line, also on failure: print it again after the notes above and
    // exit without anyhow's trailing `Error:` line.
    println!("{summary}");
    Ok(passed)
}

fn report_failure(broker: Broker, log: &Path, exited_early: Option<String>) {
    if let Some(status) = exited_early {
        println!("the broker had exited before it was stopped: {status}");
    }
    println!(
        "interop against {} FAILED; broker log: {}",
        broker.name(),
        log.display()
    );
}

/// A broker command line and the port the suite must use.
struct Launch {
    cmd: Command,
    port: u16,
    /// moco's configuration file, which `--transport` adds a listener to.
    config: Option<PathBuf>,
}

/// How the suite's clients reach the broker over the chosen transport.
struct Clients {
    port: u16,
    args: Vec<String>,
}

impl Clients {
    /// Adds the transport's listener to moco's configuration (the TCP listener stays: the
    /// xtask waits on it) and says how the clients connect.
    fn prepare(transport: Transport, work: &Path, launch: &mut Launch) -> Result<Clients> {
        if transport == Transport::Tcp {
            return Ok(Clients {
                port: launch.port,
                args: Vec::new(),
            });
        }
        let config = launch
            .config
            .as_ref()
            .context("--transport needs moco's configuration file")?;
        let port = free_port()?;
        let mut args = Vec::new();
        let mut listener = format!(
            "  - type: {}\n    id: interop-{}\n",
            transport.name(),
            transport.name()
        );
        if matches!(transport, Transport::Tls | Transport::Wss) {
            let (ca, cert, key) = make_pki(work)?;
            listener.push_str(&format!(
                "    tls_cert_file: {}\n    tls_key_file: {}\n",
                cert.display(),
                key.display()
            ));
            args.extend(["--cafile".to_owned(), ca.display().to_string()]);
        }
        if matches!(transport, Transport::Ws | Transport::Wss) {
            listener.push_str("    path: /mqtt\n");
            args.extend(["--ws-path".to_owned(), "/mqtt".to_owned()]);
        }
        if transport == Transport::Unix {
            let sock = work.join("moco.sock");
            listener.push_str(&format!("    address: {}\n", sock.display()));
            args.extend(["--unix-path".to_owned(), sock.display().to_string()]);
        } else {
            listener.push_str(&format!("    address: {}\n", local(port)));
        }
        let text = fs::read_to_string(config)?;
        let Some(at) = text.find("\nhooks:") else {
            bail!(
                "{}: no `hooks:` section to put the listener before",
                config.display()
            );
        };
        let text = format!("{}\n{}{}", &text[..at], listener, &text[at..]);
        fs::write(config, text)?;
        Ok(Clients { port, args })
    }
}

/// A CA, and a server certificate for localhost / 127.0.0.1 that it signs, as PEM files in
/// `work`: (CA, certificate, key).
fn make_pki(work: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "moco interop CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&key, &ca)?;
    let paths = (
        work.join("ca.pem"),
        work.join("server.pem"),
        work.join("server.key"),
    );
    fs::write(&paths.0, ca.pem())?;
    fs::write(&paths.1, server.pem())?;
    fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

/// THE place that says how each broker is started for the suite. Change the command lines here.
fn broker_command(broker: Broker, port: u16, interop: &Path, work: &Path) -> Result<Launch> {
    match broker {
        Broker::Moco => {
            let mut build = super::cargo();
            build.args(["build", "--release", "-p", "moco"]);
            run("interop: build", build)?;
            let bin = target_dir().join("release").join("moco");
            // The configuration file comes with the server-config issue: until `moco --help`
            // offers `--config`, start moco with its built-in defaults, which serve 127.0.0.1:1883.
            if moco_accepts_config(&bin) {
                let config = work.join("moco.yaml");
                fill_template(&interop.join("moco.yaml"), &config, &[("@PORT@", port)])?;
                let mut cmd = Command::new(&bin);
                cmd.arg("--config").arg(&config);
                Ok(Launch {
                    cmd,
                    port,
                    config: Some(config),
                })
            } else {
                // Until then, `--tcp ADDR` (the default-config listener) still takes the free port.
                println!(
                    "note: {} has no --config option yet; starting it with its defaults on \
                     127.0.0.1:{port}, so scenarios that need interop/moco.yaml \
                     (subscribe failure, server keep-alive) may fail",
                    bin.display()
                );
                let mut cmd = Command::new(&bin);
                cmd.arg("--tcp").arg(local(port).to_string());
                Ok(Launch {
                    cmd,
                    port,
                    config: None,
                })
            }
        }
        Broker::Mosquitto => {
            let bin = ensure_mosquitto()?;
            let plugin = dynsec_plugin()?;
            let dynsec = work.join("dynsec.json");
            fs::copy(interop.join("mosquitto-dynsec.json"), &dynsec)
                .context("copying interop/mosquitto-dynsec.json")?;
            let config = work.join("mosquitto.conf");
            fill_template(
                &interop.join("mosquitto.conf"),
                &config,
                &[
                    ("@PORT@", port.to_string()),
                    ("@DYNSEC_PLUGIN@", plugin.display().to_string()),
                    ("@DYNSEC_CONFIG@", dynsec.display().to_string()),
                ],
            )?;
            let mut cmd = Command::new(bin);
            cmd.arg("-c").arg(&config);
            Ok(Launch {
                cmd,
                port,
                config: None,
            })
        }
    }
}

fn moco_accepts_config(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--config"))
        .unwrap_or(false)
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR` when set, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

fn fill_template<V: ToString>(from: &Path, to: &Path, vars: &[(&str, V)]) -> Result<()> {
    let mut text =
        fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    for (key, value) in vars {
        text = text.replace(key, &value.to_string());
    }
    fs::write(to, text).with_context(|| format!("writing {}", to.display()))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port that was free a moment ago: bind port 0 on loopback, read it, let it go.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(local(0)).context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The broker process; dropping it (or `stop`) kills it, so it never outlives the xtask.
struct BrokerProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl BrokerProcess {
    fn start(mut cmd: Command, log: &Path) -> Result<Self> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        println!(
            "==> [interop: broker] {} (log: {})",
            display(&cmd),
            log.display()
        );
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", display(&cmd)))?;
        Ok(Self {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Waits (bounded) until the broker accepts TCP connections on `port`.
    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the broker exited at startup ({status}); log: {}",
                        self.log.display()
                    );
                }
            }
            if TcpStream::connect_timeout(&local(port), Duration::from_millis(200)).is_ok() {
                println!("<== [interop: broker] listening on 127.0.0.1:{port}");
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the broker did not accept connections on 127.0.0.1:{port} within {}s; log: {}",
                    STARTUP_TIMEOUT.as_secs(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the broker; returns its exit status if it had already exited on its own.
    fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let early = match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        };
        let _ = child.kill();
        let _ = child.wait();
        early
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the suite, echoing its output; returns whether it passed and its last line.
fn run_suite(mut cmd: Command) -> Result<(bool, String)> {
    println!("==> [interop: suite] {}", display(&cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", display(&cmd)))?;
    let mut last = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait()?;
    if last.is_empty() {
        last = format!("the suite printed nothing ({status})");
    }
    Ok((status.success(), last))
}

/// Debian's `apt-get install -y PACKAGE`, after one `apt-get update` per xtask run.
fn apt_install(package: &str) -> Result<()> {
    static UPDATED: AtomicBool = AtomicBool::new(false);
    if !UPDATED.swap(true, Ordering::SeqCst) {
        let mut update = Command::new("apt-get");
        update.arg("update");
        run("interop: setup", update)?;
    }
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", package])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run("interop: setup", install)
}

fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The mosquitto binary (Debian installs it in /usr/sbin), installed when missing.
fn ensure_mosquitto() -> Result<PathBuf> {
    let dirs = ["/usr/sbin", "/usr/local/sbin"];
    if let Some(bin) = find_program("mosquitto", &dirs) {
        return Ok(bin);
    }
    apt_install("mosquitto")?;
    find_program("mosquitto", &dirs).context("mosquitto not found after installing it")
}

/// Mosquitto's dynamic-security plugin, shipped in Debian's mosquitto package.
fn dynsec_plugin() -> Result<PathBuf> {
    const NAME: &str = "mosquitto_dynamic_security.so";
    let mut candidates = vec![
        PathBuf::from("/usr/lib").join(NAME),
        PathBuf::from("/usr/local/lib").join(NAME),
    ];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        candidates.extend(entries.flatten().map(|e| e.path().join(NAME)));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{NAME} not found under /usr/lib (Debian package mosquitto)"))
}

/// Creates or reuses `interop/.venv` and installs `requirements.txt` into it when it changed
/// since the last install (the stamp file holds the installed requirements). Returns its python.
fn ensure_venv(interop: &Path) -> Result<PathBuf> {
    let venv = interop.join(".venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        if !succeeds("python3", &["-c", "import venv, ensurepip"]) {
            apt_install("python3-venv")?;
        }
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        run("interop: venv", create)?;
    }
    let requirements = interop.join("requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".requirements-installed");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(&requirements);
        run("interop: venv", pip)?;
        fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    }
    Ok(python)
}

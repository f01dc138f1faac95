//! `moco`, the server: configuration, command line, logging, signals, and the wiring of
//! listeners and hooks to the engine ([`moco_engine`]).
//!
//! The binary is [`main`]; the pieces are public so that tests and embedders can reuse them:
//! [`config`] (the file's schema, defaults, parsing, validation and error locations),
//! [`cli`] (flags), [`hooks`] (connection log, debug, access control adapter) and [`Broker`]
//! (a running server with its reloadable state).

pub mod cli;
pub mod config;
pub mod hooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use moco_auth::{Ledger, LedgerHook, SharedLedger};
use moco_engine::{AllowAll, Server};
use moco_storage::{Durability, Persistence};
use moco_transport::{AnyListener, Bound};
use tracing::{error, info, warn};

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, LoadedConfig, LogFormat};
use crate::hooks::{ConnectionLog, LoggedAuth};

/// Exit code of a bad configuration or command line.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of a failure at run time (e.g. an address already in use).
pub const EXIT_RUNTIME: u8 = 1;
/// How long shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the configuration came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// No file: the loopback-only default.
    Defaults,
    /// A file.
    File(Box<LoadedConfig>),
}

/// A configuration ready to run: the file (if any) with the command line applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The effective configuration.
    pub config: Config,
    /// Where it came from.
    pub source: Source,
}

impl Settings {
    /// Resolves the configuration: the file (`--config` or `MOCO_CONFIG`) or the loopback
    /// default, then the listener flags over it. Everything is validated.
    pub fn resolve(cli: &Cli) -> Result<Self, ConfigError> {
        let (mut config, source) = match &cli.config {
            Some(path) => {
                let loaded = config::load_file(path)?;
                (loaded.config.clone(), Source::File(Box::new(loaded)))
            }
            None => {
                let mut c = Config::loopback_default();
                // Without a file, MQTT listener flags name the listeners wanted: `moco --tcp
                // ADDR` serves TCP only (and does not also take the default WebSocket port).
                let tls = cli.tls_cert_file.is_some();
                if cli.tcp.is_some() || cli.ws.is_some() || tls {
                    c.listeners.retain(|l| match l.kind {
                        config::ListenerKind::Tcp => cli.tcp.is_some() || tls,
                        config::ListenerKind::Ws => cli.ws.is_some(),
                        _ => true,
                    });
                }
                (c, Source::Defaults)
            }
        };
        if cli.has_listener_flags() {
            cli.apply(&mut config);
            let base = match &source {
                Source::File(l) => l.path.parent().map(Path::to_owned),
                Source::Defaults => None,
            };
            config::validate(&config, base.as_deref())
                .map_err(|e| e.unlocated("given on the command line"))?;
        }
        if matches!(source, Source::Defaults) {
            config::check_exposure(&config)
                .map_err(|e| e.unlocated("given on the command line"))?;
        }
        Ok(Self { config, source })
    }

    fn config_dir(&self) -> Option<PathBuf> {
        match &self.source {
            Source::File(l) => l.path.parent().map(Path::to_owned),
            Source::Defaults => None,
        }
    }
}

/// The entry point of the `moco` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => return check_config(file),
        Some(Command::Passwd) => return passwd(),
        None => {}
    }
    let settings = match Settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("moco: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = init_logging(&settings.config) {
        eprintln!("moco: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moco: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = runtime.block_on(async move {
        // Before anything listens, so that a signal never meets the default action.
        let signals = Signals::install()?;
        let broker = Broker::start(settings, cli).await?;
        broker.run_until_signalled(signals).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("moco: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `moco passwd`: one line of standard input to its argon2id hash on standard output.
fn passwd() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("Password (shown as typed; pipe it in to hide it): ");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("moco: cannot read the password: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("moco: the password is empty");
        return ExitCode::from(EXIT_CONFIG);
    }
    match moco_auth::hash_password(password.as_bytes(), moco_auth::HashAlgorithm::Argon2id) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moco: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match config::load_file(file) {
        Ok(loaded) => {
            println!(
                "# {}: valid. The effective configuration, defaults included:",
                file.display()
            );
            print!("{}", config::effective_yaml(Some(&loaded), &loaded.config));
            let auth = &loaded.config.hooks.auth;
            if !auth.allow_all && auth.ledger.is_none() && auth.ledger_file.is_none() {
                eprintln!(
                    "moco: note: {} sets no `hooks.auth`: every client will be refused",
                    file.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moco: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Installs the global `tracing` subscriber: the filter is `RUST_LOG`, else `MOCO_LOG`, else
/// the configured level (plus `moco::debug=debug` when the debug hook is on); text or JSON
/// lines on standard error.
pub fn init_logging(config: &Config) -> Result<(), String> {
    let logging = &config.logging;
    use tracing_subscriber::EnvFilter;
    let from_env = |var: &str| -> Result<Option<EnvFilter>, String> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v)
                .map(Some)
                .map_err(|e| format!("invalid {var} `{v}`: {e}")),
            _ => Ok(None),
        }
    };
    let filter = match from_env("RUST_LOG")? {
        Some(f) => f,
        None => match from_env("MOCO_LOG")? {
            Some(f) => f,
            None if config.hooks.debug.enable => {
                EnvFilter::try_new(format!("{},moco::debug=debug", logging.level))
                    .map_err(|e| e.to_string())?
            }
            None => EnvFilter::try_new(&logging.level).map_err(|e| e.to_string())?,
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match logging.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

/// The signals the broker handles, installed (from then on they no longer end the process).
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP; within a tokio runtime.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT")?,
            hup: signal(SignalKind::hangup()).context("installing SIGHUP")?,
        })
    }
}

/// How clients are authenticated, as installed (what a reload may change).
#[derive(Debug, Clone)]
enum AuthState {
    /// Nobody is allowed (a file without `hooks.auth`).
    DenyAll,
    /// Everybody is allowed.
    AllowAll,
    /// A ledger, swapped on reload.
    Ledger(Arc<SharedLedger>),
}

impl AuthState {
    fn name(&self) -> &'static str {
        match self {
            Self::DenyAll => "nothing (every client is refused)",
            Self::AllowAll => "allow_all",
            Self::Ledger(_) => "a ledger",
        }
    }
}

/// A running broker: the engine server, its listeners' addresses and the state a reload may
/// change.
pub struct Broker {
    server: Server,
    /// The persistence the server records into, closed (flushed) after it stops.
    storage: Option<Persistence>,
    addrs: Vec<(String, SocketAddr)>,
    bound: Vec<(String, Bound)>,
    settings: Settings,
    auth: AuthState,
    cli: Cli,
    /// The HTTP listeners: they outlive the engine's shutdown, so `/readyz` says 503 during it.
    http: Vec<moco_http::HttpServer>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addrs", &self.addrs)
            .field("auth", &self.auth.name())
            .finish_non_exhaustive()
    }
}

/// Opens the configured storage: `hooks.storage` from the file, or without a file the sled
/// database in `--data-dir` unless `--in-memory`. A backend that cannot be opened (a locked
/// or unreadable directory, an unreachable Redis) fails the start with the reason.
async fn open_storage(
    settings: &Settings,
    cli: &Cli,
    dir: Option<&Path>,
) -> anyhow::Result<Option<Persistence>> {
    let s = &settings.config.hooks.storage;
    let sled =
        |path: PathBuf, what: &str| -> anyhow::Result<(Arc<dyn moco_storage::Backend>, String)> {
            let b = moco_storage::SledBackend::open(&path)
                .with_context(|| format!("{what}: cannot open {}", path.display()))?;
            Ok((Arc::new(b), path.display().to_string()))
        };
    let (backend, location) = if let Some(c) = &s.sled {
        sled(config::resolve(dir, &c.path), "hooks.storage.sled.path")?
    } else if let Some(r) = &s.redis {
        let backend = moco_storage::RedisBackend::connect(moco_storage::RedisConfig {
            address: r.address.clone(),
            username: r.username.clone(),
            password: r.password.clone(),
            database: i64::from(r.database),
            prefix: r.prefix.clone(),
        })
        .await
        .with_context(|| format!("hooks.storage.redis.address: cannot use {}", r.address))?;
        let b: Arc<dyn moco_storage::Backend> = Arc::new(backend);
        (b, r.address.clone())
    } else if matches!(settings.source, Source::Defaults) && !cli.in_memory {
        sled(
            cli.data_dir.clone(),
            "--data-dir (--in-memory keeps nothing across restarts)",
        )?
    } else {
        return Ok(None);
    };
    let durability = match s.durability {
        config::DurabilityMode::Sync => Durability::Sync,
        config::DurabilityMode::Periodic => {
            Durability::Periodic(std::time::Duration::from_millis(s.flush_interval_ms))
        }
    };
    let name = backend.name();
    let store = Persistence::open(backend, durability)
        .await
        .with_context(|| format!("cannot read the stored state ({name})"))?;
    info!(
        backend = name,
        at = %location,
        durability = ?s.durability,
        "sessions, queued, in-flight and retained messages are kept across restarts"
    );
    Ok(Some(store))
}

fn ledger_of(config: &Config, dir: Option<&Path>) -> Result<Option<Ledger>, moco_auth::Error> {
    let auth = &config.hooks.auth;
    if let Some(rules) = &auth.ledger {
        return Ok(Some(Ledger::new(rules.clone())));
    }
    if let Some(path) = &auth.ledger_file {
        return Ledger::from_path(config::resolve(dir, path)).map(Some);
    }
    Ok(None)
}

impl Broker {
    /// Builds the server from `settings`, binds every listener and starts serving.
    pub async fn start(settings: Settings, cli: Cli) -> anyhow::Result<Self> {
        let config = &settings.config;
        let mut options = config.engine_options();
        let serves_http = config
            .listeners
            .iter()
            .any(|l| l.kind == config::ListenerKind::Http);
        // The admin API publishes through the inline client.
        options.inline_client |= serves_http;
        let mut builder = Server::builder().options(options);
        // Connections by listener and drops by reason, for /metrics.
        let metrics = moco_http::MetricsHook::default();
        if serves_http {
            builder = builder.hook(metrics.clone());
        }
        let dir = settings.config_dir();
        let auth = if config.hooks.auth.allow_all {
            builder = builder.hook(AllowAll);
            AuthState::AllowAll
        } else if let Some(ledger) = ledger_of(config, dir.as_deref())? {
            let shared = Arc::new(SharedLedger::new(ledger));
            builder = builder.hook(LoggedAuth(LedgerHook::ledger(shared.clone())));
            AuthState::Ledger(shared)
        } else {
            AuthState::DenyAll
        };
        let storage = open_storage(&settings, &cli, dir.as_deref()).await?;
        if let Some(p) = &storage {
            builder = p.install(builder);
        }
        let debug = &config.hooks.debug;
        if debug.enable {
            builder = builder.hook(moco_engine::DebugHook::new(moco_engine::DebugOptions {
                show_packet_data: debug.show_packet_data,
                show_pings: debug.show_pings,
                show_passwords: debug.show_passwords,
            }));
        }
        // Last: the ledger decides a CONNECT in OnConnect, and only an accepted client is
        // logged as connected.
        let mut server = builder.hook(ConnectionLog).try_build()?;
        let mut addrs = Vec::new();
        let health = moco_http::Health::new();
        let mut http = Vec::new();
        let mut bound = Vec::new();
        for l in &config.listeners {
            let id = config::effective_id(l);
            if let Some(options) = l.http_options() {
                let addr = l.socket_addr().map_err(anyhow::Error::msg)?;
                let options = options
                    .map_err(anyhow::Error::msg)?
                    .with_metrics(metrics.clone());
                let broker = server.broker().clone();
                match moco_http::HttpServer::bind(addr, broker, health.clone(), &options, &id).await
                {
                    Ok(h) => {
                        addrs.push((id.clone(), h.local_addr()));
                        bound.push((id, Bound::Ip(h.local_addr())));
                        http.push(h);
                    }
                    // The default's HTTP listener is a convenience: a busy port 8080 must not
                    // stop the broker that nobody asked to serve HTTP.
                    Err(e) if matches!(settings.source, Source::Defaults) && cli.info.is_none() => {
                        warn!(listener = %id, "HTTP listener not started: {e}")
                    }
                    Err(e) => return Err(e).with_context(|| format!("listener `{id}`")),
                }
                continue;
            }
            // The factory: the listener's `type` picks the transport.
            let Some(spec) = l.spec(dir.as_deref()).map_err(anyhow::Error::msg)? else {
                continue;
            };
            let listener = AnyListener::bind(&id, &spec).await?;
            let at = listener.bound()?;
            listener.add_to(&mut server, &id);
            if let Bound::Ip(a) = &at {
                addrs.push((id.clone(), *a));
            }
            bound.push((id, at));
        }
        server.serve();
        health.set_ready(true);
        let listening = bound
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(" ");
        match &settings.source {
            Source::Defaults => info!(
                version = env!("CARGO_PKG_VERSION"),
                listeners = %listening,
                "moco serving MQTT on loopback only; anonymous clients allowed (no config given)"
            ),
            Source::File(l) => {
                info!(
                    version = env!("CARGO_PKG_VERSION"),
                    config = %l.path.display(),
                    listeners = %listening,
                    auth = auth.name(),
                    "moco serving MQTT"
                );
                match auth {
                    AuthState::DenyAll => warn!(
                        "the configuration sets no `hooks.auth`: every client is refused \
                         (add a ledger, or `allow_all: true` for development)"
                    ),
                    AuthState::AllowAll if addrs.iter().any(|(_, a)| !a.ip().is_loopback()) => {
                        warn!(
                            "allow_all on a listener beyond loopback: anyone who can reach it \
                             may connect, read every topic and publish anything"
                        )
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            server,
            storage,
            addrs,
            bound,
            settings,
            auth,
            cli,
            http,
        })
    }

    /// The bound address of each IP listener (TCP, TLS, WebSocket), by id.
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Where each listener listens (Unix sockets included), by id.
    pub fn bound(&self) -> &[(String, Bound)] {
        &self.bound
    }

    /// The engine server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Serves until SIGINT or SIGTERM (then shuts down, bounded by [`SHUTDOWN_GRACE`]);
    /// reloads on SIGHUP.
    pub async fn run_until_signalled(mut self, mut signals: Signals) -> anyhow::Result<()> {
        let why = loop {
            tokio::select! {
                _ = signals.term.recv() => break "SIGTERM",
                _ = signals.int.recv() => break "SIGINT",
                _ = signals.hup.recv() => self.reload(),
            }
        };
        info!(
            signal = why,
            "shutting down: no new connections; v5 clients get DISCONNECT 0x8B"
        );
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting, disconnects every client (v5: 0x8B), runs the stop hooks; gives up
    /// waiting after [`SHUTDOWN_GRACE`].
    pub async fn shutdown(self) {
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server.shutdown())
            .await
            .is_err()
        {
            warn!(
                "shutdown did not finish within {}s; exiting anyway",
                SHUTDOWN_GRACE.as_secs()
            );
        } else {
            info!("moco stopped");
        }
        for h in self.http {
            h.shutdown().await;
        }
        if let Some(store) = self.storage {
            match tokio::time::timeout(SHUTDOWN_GRACE, store.close()).await {
                Ok(true) => {}
                Ok(false) => warn!("the last changes could not be stored"),
                Err(_) => warn!("storage did not finish writing within the grace period"),
            }
        }
    }

    /// Reloads what can change live: the configuration file is read and validated again and
    /// the auth ledger (inline or its file) swapped in; clients stay connected. A reload that
    /// fails keeps the old state and logs why; other changed sections are reported as needing
    /// a restart.
    pub fn reload(&mut self) {
        let Source::File(old) = &self.settings.source else {
            info!("SIGHUP: no configuration file, nothing to reload");
            return;
        };
        let path = old.path.clone();
        let fresh = match Settings::resolve(&Cli {
            config: Some(path.clone()),
            ..self.cli_overrides()
        }) {
            Ok(s) => s,
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                return;
            }
        };
        let dir = fresh.config_dir();
        match (&self.auth, ledger_of(&fresh.config, dir.as_deref())) {
            (AuthState::Ledger(shared), Ok(Some(ledger))) => {
                shared.store(ledger);
                // Existing subscriptions: which of them a deny may now reach.
                self.server.acl_changed();
                info!(config = %path.display(), "auth ledger reloaded");
            }
            (_, Err(e)) => {
                error!("reload failed, keeping the running ledger: {e}");
                return;
            }
            (current, Ok(new)) => {
                let new_name = if fresh.config.hooks.auth.allow_all {
                    "allow_all"
                } else if new.is_some() {
                    "a ledger"
                } else {
                    "nothing (every client is refused)"
                };
                if new_name != current.name() {
                    warn!(
                        running = current.name(),
                        file = new_name,
                        "hooks.auth changed kind: that needs a restart; the running one stays"
                    );
                } else {
                    info!(config = %path.display(), "configuration re-read; auth unchanged");
                }
            }
        }
        for section in changed_sections(&self.settings.config, &fresh.config) {
            warn!(
                section,
                "changed in the file but only applied at restart (a reload changes the auth ledger)"
            );
        }
        self.settings = fresh;
    }

    fn cli_overrides(&self) -> Cli {
        Cli {
            config: None,
            tcp: self.cli.tcp.clone(),
            ws: self.cli.ws.clone(),
            info: self.cli.info.clone(),
            tls_cert_file: self.cli.tls_cert_file.clone(),
            tls_key_file: self.cli.tls_key_file.clone(),
            in_memory: self.cli.in_memory,
            data_dir: self.cli.data_dir.clone(),
            command: None,
        }
    }
}

/// The top-level sections (and hooks other than auth) that differ between two configurations.
fn changed_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listeners != new.listeners {
        out.push("listeners");
    }
    if old.options != new.options {
        out.push("options");
    }
    if old.logging != new.logging {
        out.push("logging");
    }
    if old.hooks.storage != new.hooks.storage {
        out.push("hooks.storage");
    }
    if old.hooks.debug != new.hooks.debug {
        out.push("hooks.debug");
    }
    out
}

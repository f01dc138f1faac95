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
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
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
    addrs: Vec<(String, SocketAddr)>,
    bound: Vec<(String, Bound)>,
    settings: Settings,
    auth: AuthState,
    cli: Cli,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addrs", &self.addrs)
            .field("auth", &self.auth.name())
            .finish_non_exhaustive()
    }
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
        let mut builder = Server::builder().options(config.engine_options());
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
        let mut bound = Vec::new();
        for l in &config.listeners {
            let id = config::effective_id(l);
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
            addrs,
            bound,
            settings,
            auth,
            cli,
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

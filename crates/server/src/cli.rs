//! The command line: `moco [--config FILE] [--tcp ADDR] …` and `moco check-config FILE`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ListenerConfig, ListenerKind};

const EXAMPLES: &str = "\
Examples:
  moco                                  # TCP 127.0.0.1:1883, WebSocket 127.0.0.1:1882, HTTP 127.0.0.1:8080, anonymous clients (loopback only)
  moco --tcp 127.0.0.1:11883            # TCP only, on another port
  moco --in-memory                      # keep nothing across restarts (default: ./moco-data)
  moco --config moco.yaml               # listeners, auth, limits and logging from a file
  moco --config moco.yaml --tcp :1883   # the file, with its TCP listener moved to every interface
  moco --info 127.0.0.1:9090            # the dashboard, metrics and admin API on another port
  moco check-config moco.yaml           # validate a file and print the effective configuration
  moco passwd < password.txt            # print an argon2 hash for a ledger or HTTP user
  MOCO_CONFIG=/etc/moco.yaml MOCO_LOG=debug moco

Signals: SIGINT/SIGTERM stop the broker (v5 clients get DISCONNECT 0x8B); SIGHUP reloads the
auth ledger without dropping clients. Log filter: RUST_LOG, else MOCO_LOG, else logging.level.
Exit codes: 0 stopped cleanly, 1 failed at run time (e.g. address in use), 2 bad configuration
or usage.";

/// moco, an MQTT v5 / v3.1.1 / v3.0 broker.
///
/// With no configuration, moco listens on loopback only (TCP 127.0.0.1:1883, WebSocket
/// 127.0.0.1:1882) and allows
/// anonymous clients. Listening beyond loopback takes a configuration file, and then clients
/// are refused unless the file's `hooks.auth` allows them.
#[derive(Debug, Parser)]
#[command(name = "moco", version, about, long_about, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file, YAML or JSON (see moco.yaml for every field).
    #[arg(short, long, value_name = "FILE", env = "MOCO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address of the MQTT TCP listener (IP:PORT, localhost:PORT or :PORT for every
    /// interface); overrides the file's first TCP listener. Default: 127.0.0.1:1883.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,

    /// Address of the MQTT WebSocket listener; overrides the file's first WebSocket listener.
    /// Default without a file: 127.0.0.1:1882. Without a file, giving --tcp, --ws or the TLS
    /// files serves only the listeners they name.
    #[arg(long, value_name = "ADDR")]
    pub ws: Option<String>,

    /// Address of the HTTP listener (dashboard, $SYS as JSON, health, metrics, admin API);
    /// overrides the file's first `http` listener. Default: 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub info: Option<String>,

    /// PEM certificate chain: turns the first TCP listener into TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// Without a configuration file: keep nothing across restarts (by default sessions,
    /// queued, in-flight and retained messages are kept in --data-dir).
    #[arg(long, env = "MOCO_IN_MEMORY")]
    pub in_memory: bool,

    /// Without a configuration file: where sessions and messages are kept (a sled database).
    #[arg(
        long,
        value_name = "DIR",
        env = "MOCO_DATA_DIR",
        default_value = "moco-data"
    )]
    pub data_dir: PathBuf,

    /// A subcommand instead of running the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and print the effective configuration (defaults
    /// included). Exit code 0 if valid, 2 if not.
    CheckConfig {
        /// The file (YAML or JSON).
        file: PathBuf,
    },
    /// Print the argon2id hash of a password read from standard input (one line), for the
    /// auth ledger's `password` fields and the HTTP listeners' `users` (mosquitto_passwd's
    /// habit). A terminal shows the password as it is typed: pipe it in (`moco passwd <
    /// file`) to keep it off the screen.
    Passwd,
}

impl Cli {
    /// True if any listener flag is given.
    pub fn has_listener_flags(&self) -> bool {
        self.tcp.is_some()
            || self.ws.is_some()
            || self.info.is_some()
            || self.tls_cert_file.is_some()
    }

    /// Applies the listener flags to `config`: each flag replaces the address of the first
    /// listener of its type, or adds one. TLS files turn the first TCP listener into TLS.
    pub fn apply(&self, config: &mut Config) {
        let mut set = |kind: ListenerKind, addr: &Option<String>| {
            let Some(addr) = addr else { return };
            match config.listeners.iter_mut().find(|l| l.kind == kind) {
                Some(l) => l.address = addr.clone(),
                None => config
                    .listeners
                    .push(ListenerConfig::new(kind, kind.name(), addr)),
            }
        };
        set(ListenerKind::Tcp, &self.tcp);
        set(ListenerKind::Ws, &self.ws);
        set(ListenerKind::Http, &self.info);
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            if let Some(l) = config
                .listeners
                .iter_mut()
                .find(|l| matches!(l.kind, ListenerKind::Tcp | ListenerKind::Tls))
            {
                l.kind = ListenerKind::Tls;
                l.tls_cert_file = Some(cert.clone());
                l.tls_key_file = Some(key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_the_first_listener_of_their_type() {
        let cli = Cli::parse_from(["moco", "--tcp", ":1", "--info", "127.0.0.1:2"]);
        let mut c = Config::default();
        c.listeners.push(ListenerConfig::new(
            ListenerKind::Tcp,
            "second",
            "127.0.0.1:3",
        ));
        cli.apply(&mut c);
        assert_eq!(c.listeners[0].address, ":1");
        assert_eq!(c.listeners[1].address, "127.0.0.1:3");
        assert_eq!(c.listeners[2].kind, ListenerKind::Http);
        assert_eq!(c.listeners[2].address, "127.0.0.1:2");
    }
}

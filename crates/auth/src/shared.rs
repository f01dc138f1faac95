//! A ledger that can be swapped at run time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::ledger::{AclRequest, AuthRequest, Decision, Ledger};
use crate::{AccessControl, Error, Refusal};

/// The live ledger of a server: checks read the current [`Ledger`] without locking, and a
/// reload (e.g. on SIGHUP) replaces it in one atomic step.
///
/// A reload parses the whole file first; if that fails the old ledger stays in force and the
/// error is returned. Checks already running finish against the ledger they started with;
/// every check after the swap sees the new rules. Connected clients are not disconnected.
#[derive(Debug)]
pub struct SharedLedger {
    current: ArcSwap<Ledger>,
    path: Option<PathBuf>,
}

impl SharedLedger {
    /// Wraps a ledger that was not read from a file ([`reload`](Self::reload) then fails).
    pub fn new(ledger: Ledger) -> Self {
        Self {
            current: ArcSwap::from_pointee(ledger),
            path: None,
        }
    }

    /// Loads the ledger file at `path` and remembers the path for [`reload`](Self::reload).
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let ledger = Ledger::from_path(&path)?;
        Ok(Self {
            current: ArcSwap::from_pointee(ledger),
            path: Some(path),
        })
    }

    /// The file this ledger reloads from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The ledger in force now. Holding it does not block reloads.
    pub fn load(&self) -> Arc<Ledger> {
        self.current.load_full()
    }

    /// Replaces the ledger.
    pub fn store(&self, ledger: Ledger) {
        self.current.store(Arc::new(ledger));
    }

    /// Re-reads the remembered file and swaps it in; on error nothing changes.
    pub fn reload(&self) -> Result<(), Error> {
        let path = self.path.as_deref().ok_or(Error::NoPath)?;
        self.reload_from_path(path)
    }

    /// Reads `path` and swaps it in; on error nothing changes. The remembered path (used by
    /// [`reload`](Self::reload)) is not changed.
    pub fn reload_from_path(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let ledger = Ledger::from_path(path)?;
        self.store(ledger);
        Ok(())
    }

    /// [`Ledger::check_auth`] on the ledger in force.
    pub fn check_auth(&self, req: &AuthRequest<'_>) -> Decision {
        self.current.load().check_auth(req)
    }

    /// [`Ledger::check_acl`] on the ledger in force.
    pub fn check_acl(&self, req: &AclRequest<'_>) -> Decision {
        self.current.load().check_acl(req)
    }
}

impl AccessControl for SharedLedger {
    fn authenticate(&self, req: &AuthRequest<'_>) -> bool {
        self.current.load().authenticate(req)
    }

    fn connect(&self, req: &AuthRequest<'_>) -> Result<(), Refusal> {
        self.current.load().check_connect(req)
    }

    fn acl(&self, req: &AclRequest<'_>) -> bool {
        self.current.load().acl(req)
    }

    /// Answers for the ledger in force: after a reload, tell the engine
    /// (`Server::acl_changed`) so that existing subscriptions are asked again.
    fn may_deny_read(&self, req: &AclRequest<'_>) -> bool {
        self.current.load().may_deny_read_within(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(file: &mut tempfile::NamedTempFile, text: &str) {
        let f = file.as_file_mut();
        f.set_len(0).unwrap();
        std::io::Seek::rewind(f).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }

    fn auth(shared: &SharedLedger, user: &str) -> bool {
        shared.authenticate(&AuthRequest {
            client_id: "c",
            username: Some(user),
            password: None,
            remote: "127.0.0.1:1",
        })
    }

    #[test]
    fn reload_swaps_and_a_bad_reload_keeps_the_old_ledger() {
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        write(&mut file, "auth:\n  - username: alice\n    allow: true\n");
        let shared = SharedLedger::from_path(file.path()).unwrap();
        assert!(auth(&shared, "alice") && !auth(&shared, "bob"));

        let before = shared.load();
        write(&mut file, "auth:\n  - username: bob\n    allow: true\n");
        shared.reload().unwrap();
        assert!(!auth(&shared, "alice") && auth(&shared, "bob"));
        assert!(before.authenticate(&AuthRequest {
            client_id: "c",
            username: Some("alice"),
            password: None,
            remote: "r",
        }));

        write(&mut file, "auth:\n  - username: carol\n    allow: maybe\n");
        let err = shared.reload().unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(auth(&shared, "bob") && !auth(&shared, "carol"));

        let missing = file.path().with_extension("missing.yaml");
        assert!(matches!(
            shared.reload_from_path(&missing),
            Err(Error::Read { .. })
        ));
        assert!(auth(&shared, "bob"));
    }

    #[test]
    fn reload_without_a_path_is_an_error() {
        let shared = SharedLedger::new(Ledger::default());
        assert!(matches!(shared.reload(), Err(Error::NoPath)));
        shared.store(Ledger::from_yaml_bytes(b"auth: [{allow: true}]").unwrap());
        assert!(auth(&shared, "anyone"));
    }

    #[test]
    fn checks_run_while_reloading() {
        let shared = Arc::new(SharedLedger::new(Ledger::default()));
        let reader = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    auth(&shared, "x");
                }
            })
        };
        for i in 0..200 {
            let allow = i % 2 == 0;
            shared.store(
                Ledger::from_yaml_bytes(format!("auth: [{{allow: {allow}}}]").as_bytes()).unwrap(),
            );
        }
        reader.join().unwrap();
    }
}

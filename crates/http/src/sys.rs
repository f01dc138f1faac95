//! `$SYS` as JSON: mochi's `system.Info` object, key for key.

use std::sync::Arc;
use std::time::Instant;

use moco_engine::{Broker, SysSnapshot};

/// mochi's `system.Info` with its JSON keys (`bytes_received`, `clients_maximum`,
/// `memory_alloc`…), so a script written against mochi's `sysinfo` listener reads moco's
/// unchanged: the engine's [`SysSnapshot`], whose field names are those keys.
pub type SysJson = SysSnapshot;

/// The broker's `$SYS` numbers now (taken at each request, not at the `$SYS` tick).
pub fn sys_now(broker: &Arc<Broker>) -> SysJson {
    broker.sys_snapshot(Instant::now())
}

//! [`AllowAll`]: a hook that allows every client and every topic (development).

use super::*;

/// Allows every CONNECT, subscribe and publish. For tests and for the `moco` binary's
/// loopback-only default; the real auth hooks live in `moco-auth`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Hook for AllowAll {
    fn id(&self) -> &str {
        "allow-all"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnConnectAuthenticate | Event::OnAclCheck)
    }

    fn on_connect_authenticate(&self, _: &ClientInfo, _: &Connect) -> bool {
        true
    }

    fn on_acl_check(&self, _: &ClientInfo, _: &str, _: Access) -> bool {
        true
    }

    fn acl_may_deny_within(&self, _: &ClientInfo, _: &str) -> bool {
        false
    }
}

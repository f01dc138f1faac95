//! Read access per delivery: which subscriptions the ACL hooks could deny, decided at subscribe
//! time and when the rules change, so that only those are checked per message.

use super::*;

impl Broker {
    /// The per-delivery ACL check (as mochi's `publishToClient`): may `h` read `msg`'s topic?
    /// A refused delivery is skipped, not counted as dropped.
    #[cold]
    pub(super) fn may_read(&self, h: &ClientHandle, msg: &Message) -> bool {
        self.hooks.on_acl_check(&h.info, &msg.topic, Access::Read)
    }

    /// Asks the hooks again which of `h`'s subscriptions may be denied a delivery, for the
    /// client `h` is now (its session's filters against its info).
    pub(super) fn refresh_acl(&self, h: &ClientHandle) {
        let filters: Vec<ByteString> = h
            .state
            .lock()
            .session
            .subscriptions
            .keys()
            .cloned()
            .collect();
        let answers: Vec<(ByteString, bool)> = filters
            .into_iter()
            .map(|f| {
                let may_deny = self.hooks.acl_may_deny_within(&h.info, &f);
                (f, may_deny)
            })
            .collect();
        let mut st = h.state.lock();
        let session = &mut st.session;
        for (f, may_deny) in answers {
            // Unsubscribed meanwhile: nothing to keep.
            if may_deny && session.subscriptions.contains_key(&f) {
                session.acl_checked.insert(f);
            } else {
                session.acl_checked.remove(&f);
            }
        }
        h.acl_read
            .store(!session.acl_checked.is_empty(), Ordering::Relaxed);
    }

    /// Asks the hooks again, for every subscription of every client, whether an ACL hook may
    /// deny one of its deliveries: call it once what an ACL hook answers has changed (the
    /// `moco` binary does after reloading its ledger on SIGHUP), so that a new deny covers
    /// existing subscriptions too. Until it returns, a subscription judged undeniable before
    /// the change is delivered unchecked. Messages already queued are not checked again.
    ///
    /// ```
    /// use moco_engine::{AllowAll, Broker, Hooks, Options};
    /// use std::sync::Arc;
    ///
    /// let mut hooks = Hooks::new();
    /// hooks.add(Arc::new(AllowAll));
    /// let broker = Broker::new(Options::default(), hooks);
    /// // ... the ACL hook's rules change (e.g. `SharedLedger::reload`), then:
    /// broker.acl_changed();
    /// ```
    pub fn acl_changed(&self) {
        let handles: Vec<_> = self.clients.read().values().cloned().collect();
        for h in handles {
            self.refresh_acl(&h);
        }
    }
}

//! The [`SessionRegistry`] seam: which broker owns a client id.
//!
//! A broker keeps the clients it serves in its own table, and takes a client over itself when
//! the same id connects to it again. The registry is asked on every accepted CONNECT before
//! that table is touched, and told when a session ends here, so that brokers sharing one
//! registry (a cluster) can make take-over work across them: the registry takes the id from
//! the broker that owned it ([`Broker::hand_over`](crate::Broker::hand_over) on that broker)
//! and hands its session to the one the client came to. [`LocalRegistry`], the default, owns
//! every id in this process and does nothing.

use bytestring::ByteString;
use moco_codec::ReasonCode;

use crate::state::Session;

/// Who owns a client id. Implementations must answer quickly (a CONNECT waits for
/// [`claim`](SessionRegistry::claim) on the connection's task): a clustered registry answers
/// from its local copy of the ownership table and does its messaging without blocking on it
/// where it can.
pub trait SessionRegistry: Send + Sync + 'static {
    /// This broker is about to own `client_id`: a CONNECT for it was authenticated.
    ///
    /// If another broker owns it, the registry takes it from that broker (which ends the
    /// client's connection there as a take-over) and returns the session when the new
    /// connection resumes it (`clean_start` false): its subscriptions, queued and in-flight
    /// messages then continue here. `Ok(None)`: no session comes from elsewhere (the id was
    /// free, this broker owns it already, or the session was discarded). `Err` refuses the
    /// CONNECT with that code (for example 0x88 server unavailable when the registry cannot
    /// be reached).
    fn claim(
        &self,
        client_id: &ByteString,
        clean_start: bool,
    ) -> Result<Option<Session>, ReasonCode>;

    /// The session of `client_id` ended on this broker (a clean disconnect or its expiry):
    /// the id is free again.
    fn release(&self, client_id: &ByteString);
}

/// The single-broker registry: every id belongs to this broker, whose client table does
/// take-over on its own.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalRegistry;

impl SessionRegistry for LocalRegistry {
    fn claim(&self, _: &ByteString, _: bool) -> Result<Option<Session>, ReasonCode> {
        Ok(None)
    }

    fn release(&self, _: &ByteString) {}
}

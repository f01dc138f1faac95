//! [`Server`]: the broker plus its listeners and housekeeping task.
//!
//! The engine never binds a socket: the caller hands it a [`Listener`] (TCP, TLS, WebSocket and
//! Unix sockets are in `moco-transport`) through [`Server::add_listener`], and the accept loop
//! here runs one driver per connection; single streams go through [`Server::serve_stream`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moco_codec::{Packet, Publish, QoS, ReasonCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::broker::{Broker, ClientSnapshot, Seams};
use crate::driver::{inject_packet, run_connection};
use crate::error::Error;
use crate::hooks::{Hook, Hooks};
use crate::listener::{Listener, ListenerKind, Peer, Shared};
use crate::options::Options;
use crate::registry::SessionRegistry;
use crate::retained::RetainedStore;
use crate::router::Router;
use crate::sink::SessionSink;

async fn accept_loop<L: Listener>(
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    id: Arc<str>,
    mut listener: L,
) {
    let kind = listener.kind();
    // A tracker, not a `JoinSet`: the set would keep an entry per task and wake this loop at
    // every connection's end to reap it, and nothing needs a connection's result.
    let conns = TaskTracker::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => {
                    // The driver's future is the task, wrapped only in the tracker's token (8
                    // bytes): a wrapper's captures add to every connection's task
                    // (run_connection logs how the connection ended).
                    conns.spawn(run_connection(broker.clone(), conn, id.clone(), kind));
                }
                Err(e) => {
                    warn!(listener = %id, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    // Let connections flush their DISCONNECT (0x8B) and end, within a bound. Each one is
    // bounded on its own (connect timeout, keep-alive, the writer's 5 s for a client that does
    // not read), and the broker refuses new clients now, so none outlives that for long.
    conns.close();
    if tokio::time::timeout(Duration::from_secs(3), conns.wait())
        .await
        .is_err()
    {
        debug!(listener = %id, left = conns.len(), "connections still ending after shutdown");
    }
}

type PendingListener = Box<dyn FnOnce(&mut Server) + Send>;

/// Builds a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    options: Options,
    hooks: Hooks,
    seams: Seams,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("options", &self.options)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Sets the options (defaults otherwise).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Adds a hook (hooks run in the order added).
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks.add(Arc::new(hook));
        self
    }

    /// Replaces the local router (e.g. with a cluster router).
    pub fn router(mut self, router: Arc<dyn Router>) -> Self {
        self.seams.router = Some(router);
        self
    }

    /// Replaces the in-memory retained store (e.g. with a persistent or shared one).
    pub fn retained_store(mut self, store: Arc<dyn RetainedStore>) -> Self {
        self.seams.retained = Some(store);
        self
    }

    /// Installs a session sink: the changes of session state a persistence layer records.
    pub fn session_sink(mut self, sink: Arc<dyn SessionSink>) -> Self {
        self.seams.sink = Some(sink);
        self
    }

    /// Replaces the single-broker session registry (e.g. with a cluster's, so that take-over
    /// works across brokers).
    pub fn session_registry(mut self, registry: Arc<dyn SessionRegistry>) -> Self {
        self.seams.registry = Some(registry);
        self
    }

    /// Builds the server, running every hook's [`Hook::init`] in the order added.
    pub fn try_build(self) -> Result<Server, Error> {
        let broker = Broker::with_seams(self.options, self.hooks, self.seams);
        broker.hooks().init(broker.options())?;
        let (stop_tx, _) = watch::channel(false);
        Ok(Server {
            broker: Arc::new(broker),
            stop: stop_tx,
            tasks: JoinSet::new(),
            pending_listeners: Vec::new(),
            serving: false,
        })
    }

    /// Builds the server.
    ///
    /// # Panics
    ///
    /// If a hook's [`Hook::init`] fails; [`ServerBuilder::try_build`] returns the error.
    pub fn build(self) -> Server {
        match self.try_build() {
            Ok(s) => s,
            Err(e) => panic!("cannot build the server: {e}"),
        }
    }
}

/// An MQTT broker server.
pub struct Server {
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pending_listeners: Vec<PendingListener>,
    serving: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The broker (for inline publishing, counters, tests).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Adds a hook (after running its [`Hook::init`]); only before [`Server::serve`] and
    /// before any connection was served.
    pub fn add_hook(&mut self, hook: impl Hook) -> Result<(), Error> {
        if self.serving {
            return Err(Error::AlreadyServing);
        }
        let broker = Arc::get_mut(&mut self.broker).ok_or(Error::AlreadyServing)?;
        hook.init(broker.options()).map_err(|source| Error::Hook {
            id: hook.id().to_owned(),
            source,
        })?;
        broker.add_hook(Arc::new(hook));
        Ok(())
    }

    /// Inline client: publishes `payload` on `topic` from the embedding program, as mochi's
    /// `Server.Publish`: no ACL check, `OnPublish` hooks run; `qos` caps the QoS subscribers
    /// get. Returns how many subscribers got it. Needs [`Options::inline_client`].
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
        qos: QoS,
    ) -> Result<usize, Error> {
        self.broker.inline_publish(topic, payload, qos, retain)
    }

    /// Inline client: calls `callback` for every message matching `filter` (retained ones
    /// first), on the publisher's task; `id` tells apart several callbacks on one filter and
    /// is the subscription identifier they see. Subscribing again with the same filter and id
    /// replaces the callback. Needs [`Options::inline_client`].
    pub fn subscribe(
        &self,
        filter: &str,
        id: u32,
        callback: impl Fn(&Publish) + Send + Sync + 'static,
    ) -> Result<(), Error> {
        self.broker.inline_subscribe(filter, id, Arc::new(callback))
    }

    /// Inline client: removes the callback `id` on `filter`; returns whether it existed.
    pub fn unsubscribe(&self, filter: &str, id: u32) -> Result<bool, Error> {
        self.broker.inline_unsubscribe(filter, id)
    }

    /// Processes `packet` as though the connected client `client_id` had sent it (mochi's
    /// `InjectPacket`): the same hooks, ACL checks and acknowledgements (which go to the
    /// client). Returns whether its connection is still open; an injected client
    /// ([`Server::add_injected_client`]) whose packet closed it (a DISCONNECT, a protocol
    /// error) is disconnected as a connection would be.
    pub fn inject_packet(&self, client_id: &str, packet: Packet) -> Result<bool, Error> {
        let open = inject_packet(&self.broker, client_id, packet)?;
        if !open {
            if let Some(h) = self.broker.client(client_id) {
                self.broker.end_injected(&h);
            }
        }
        Ok(open)
    }

    /// Asks the hooks again which existing subscriptions need each delivery checked: call
    /// it after the rules of an ACL hook changed (e.g. `moco_auth::SharedLedger::reload`),
    /// so that a new deny reaches existing subscriptions. See [`Broker::acl_changed`].
    ///
    /// ```
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.acl_changed();
    /// ```
    pub fn acl_changed(&self) {
        self.broker.acl_changed();
    }

    /// Every client known, connected or away with a live session (mochi's
    /// `Clients.GetAll`).
    ///
    /// ```
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// assert_eq!(server.clients().len(), 1);
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn clients(&self) -> Vec<ClientSnapshot> {
        self.broker.clients()
    }

    /// The clients that came through the listener named `listener` (mochi's
    /// `Clients.GetByListener`).
    ///
    /// ```
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// assert_eq!(server.clients_on_listener("local").len(), 1);
    /// assert!(server.clients_on_listener("tcp").is_empty());
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn clients_on_listener(&self, listener: &str) -> Vec<ClientSnapshot> {
        self.broker.clients_on_listener(listener)
    }

    /// Client `id`, if the broker knows it: who it is, where it came from, whether it is
    /// connected.
    ///
    /// ```
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// let c = server.client("probe").unwrap();
    /// assert!(c.connected && c.injected);
    /// assert_eq!(&*c.listener, "local");
    /// assert!(server.client("nobody").is_none());
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn client(&self, id: &str) -> Option<ClientSnapshot> {
        self.broker.client(id).map(|h| h.snapshot())
    }

    /// Disconnects client `id` from the server's side (mochi's `DisconnectClient`): v5
    /// clients get DISCONNECT with `reason`, v3 clients a close. Returns false if it was not
    /// connected. See [`Broker::disconnect_client`].
    ///
    /// ```
    /// use moco_engine::codec::ReasonCode;
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// assert!(server.disconnect_client("probe", ReasonCode::AdministrativeAction)?);
    /// assert!(server.client("probe").is_none()); // its clean session ended
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn disconnect_client(&self, id: &str, reason: ReasonCode) -> Result<bool, Error> {
        self.broker.disconnect_client(id, reason)
    }

    /// Removes client `id`'s subscription to `filter`, as if it had unsubscribed (mochi's
    /// `UnsubscribeClient`, for one filter). Returns whether it existed.
    ///
    /// ```
    /// use moco_engine::codec::{Packet, QoS, Subscribe, SubscriptionOptions};
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// let opts = SubscriptionOptions { qos: QoS::AtMostOnce, ..Default::default() };
    /// let sub = Subscribe { packet_id: 1, filters: vec![("a/#".into(), opts)], properties: Default::default() };
    /// server.inject_packet("probe", Packet::Subscribe(sub))?;
    /// assert!(server.unsubscribe_client("probe", "a/#")?);
    /// assert!(!server.unsubscribe_client("probe", "a/#")?);
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn unsubscribe_client(&self, id: &str, filter: &str) -> Result<bool, Error> {
        self.broker.unsubscribe_client(id, filter)
    }

    /// Registers client `id` without a connection (mochi's `NewClient` + `InjectPacket`):
    /// the embedding program then speaks for it with [`Server::inject_packet`] and reads
    /// what it is sent with [`Server::take_injected_output`]. It connects through the hooks
    /// like any v5 client with a clean session. See [`Broker::add_injected_client`].
    ///
    /// ```
    /// use moco_engine::codec::{Bytes, Packet, Publish, QoS, Subscribe, SubscriptionOptions};
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// let opts = SubscriptionOptions { qos: QoS::AtMostOnce, ..Default::default() };
    /// let sub = Subscribe { packet_id: 1, filters: vec![("a/#".into(), opts)], properties: Default::default() };
    /// server.inject_packet("probe", Packet::Subscribe(sub))?;
    /// let publish = Publish {
    ///     dup: false, qos: QoS::AtMostOnce, retain: false, topic: "a/1".into(),
    ///     packet_id: None, payload: Bytes::from_static(b"hi"), properties: Default::default(),
    /// };
    /// server.inject_packet("probe", Packet::Publish(publish))?;
    /// let out = server.take_injected_output("probe")?; // CONNACK, SUBACK, then the message
    /// assert!(matches!(&out[..], [Packet::ConnAck(_), Packet::SubAck(_), Packet::Publish(p)] if &p.payload[..] == b"hi"));
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn add_injected_client(&self, id: &str, listener: &str) -> Result<ClientSnapshot, Error> {
        self.broker
            .add_injected_client(id, listener)
            .map(|h| h.snapshot())
    }

    /// Takes what the broker has sent injected client `id` since the last call, as packets
    /// (see [`Server::add_injected_client`]); [`Error::NotInjected`] for a client with a
    /// connection.
    ///
    /// ```
    /// use moco_engine::codec::Packet;
    /// let server = moco_engine::Server::builder().hook(moco_engine::AllowAll).build();
    /// server.add_injected_client("probe", "local")?;
    /// assert!(matches!(&server.take_injected_output("probe")?[..], [Packet::ConnAck(_)]));
    /// assert!(server.take_injected_output("probe")?.is_empty());
    /// # Ok::<(), moco_engine::Error>(())
    /// ```
    pub fn take_injected_output(&self, id: &str) -> Result<Vec<Packet>, Error> {
        self.broker.take_injected_output(id)
    }

    /// Adds any [`Listener`] under the name `id`; it accepts once [`Server::serve`] runs (or
    /// at once if already serving).
    pub fn add_listener<L: Listener>(&mut self, id: &str, listener: L) {
        info!(listener = %id, kind = %listener.kind(), "listener added");
        let id: Arc<str> = Arc::from(id);
        if self.serving {
            self.spawn_accept(id, listener);
        } else {
            self.pending_listeners
                .push(Box::new(move |s: &mut Server| s.spawn_accept(id, listener)));
        }
    }

    /// Starts serving as [`Server::try_serve`] does; a failure to load stored state is
    /// logged and the server serves without it.
    pub fn serve(&mut self) {
        if let Err(e) = self.try_serve() {
            error!(error = %e, "stored state not loaded");
        }
    }

    /// Loads what storage hooks kept ([`Broker::load_stored`]), starts accepting on every
    /// listener and the housekeeping task (wills, session and retained expiry, `$SYS`),
    /// publishes the first `$SYS` values and calls `OnStarted` (mochi's order). Must be
    /// called within a tokio runtime. On a load error the server serves nevertheless and the
    /// error is returned.
    pub fn try_serve(&mut self) -> Result<(), Error> {
        if self.serving {
            return Ok(());
        }
        self.serving = true;
        let loaded = self.broker.load_stored(Instant::now());
        for start in std::mem::take(&mut self.pending_listeners) {
            start(self);
        }
        let broker = self.broker.clone();
        let mut stop = self.stop.subscribe();
        let sys_every = broker.options().sys_topic_resend_interval;
        broker.publish_sys_info(Instant::now());
        self.broker.hooks().on_started();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut last_sys = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = Instant::now();
                        broker.handle_timeout(now);
                        if now.duration_since(last_sys) >= sys_every {
                            broker.publish_sys_info(now);
                            last_sys = now;
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
        match loaded {
            Ok(r) => {
                if r != crate::store::Restored::default() {
                    info!(?r, "stored state restored");
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn spawn_accept<L: Listener>(&mut self, id: Arc<str>, listener: L) {
        let broker = self.broker.clone();
        let stop = self.stop.subscribe();
        self.tasks.spawn(accept_loop(broker, stop, id, listener));
    }

    /// Serves one connection on any byte stream (for transports other than TCP).
    pub async fn serve_stream<S>(
        &self,
        stream: S,
        remote: &str,
        listener: &str,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        run_connection(
            self.broker.clone(),
            Shared::new(stream, Peer::named(remote)),
            Arc::from(listener),
            ListenerKind::Other,
        )
        .await
    }

    /// Shuts down: v5 clients get DISCONNECT 0x8B (server shutting down), v3 clients a close;
    /// listeners stop; returns when connections have ended (or after a few seconds).
    pub async fn shutdown(mut self) {
        self.broker.shutdown();
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.broker.hooks().on_stopped();
        self.broker.hooks().stop();
    }
}

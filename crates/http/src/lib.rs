//! moco's HTTP endpoints on axum: `$SYS` as JSON (mochi's `system.Info` keys), health and
//! readiness, Prometheus metrics, an admin API modeled on EMQX's `/api/v5`, and a live
//! dashboard page built into the binary.
//!
//! It needs only a [`moco_engine::Broker`]: an embedding program serves it with
//! [`HttpServer::bind`] (or mounts [`router`] in an axum app of its own), and the `moco` binary
//! wires it from its configuration.
//!
//! | path | what | listener kinds |
//! |---|---|---|
//! | `GET /api/v1/sys` | the `$SYS` numbers, mochi's JSON keys | `http`, `sysinfo` (also `/`) |
//! | `GET /healthcheck`, `/livez` | 200 while serving | every kind |
//! | `GET /readyz` | 200 once ready ([`Health::set_ready`]), 503 while shutting down | every kind |
//! | `GET /metrics` | Prometheus text format (OpenMetrics if asked), `moco_` names | `http` |
//! | `/api/v5/…` | clients, kick, subscriptions, retained, publish, stats | `http` |
//! | `GET /dashboard` (and `/`) | the dashboard page | `http` |
//!
//! Security: a listener bound beyond loopback refuses to start without credentials (a bearer
//! token or basic users with the ledger's password hashes), except a read-only kind opened to
//! anonymous readers on purpose ([`HttpOptions::anonymous_read`]). Request bodies and the time
//! a request may take are bounded.

#![forbid(unsafe_code)]

mod admin;
mod auth;
mod error;
mod hook;
mod metrics;
mod sys;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use moco_engine::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use auth::HttpAuth;
pub use error::Error;
pub use hook::MetricsHook;
pub use metrics::render as render_metrics;
pub use sys::{sys_now, SysJson};

/// The dashboard page: one self-contained file (script and styles inline, no CDN).
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Which endpoints a listener serves: mochi's two single-purpose kinds, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Endpoints {
    /// Everything: `$SYS` JSON, health, metrics, the admin API and the dashboard.
    #[default]
    All,
    /// mochi's `sysinfo` listener: `$SYS` JSON on `/` (and `/api/v1/sys`), plus health.
    SysInfo,
    /// mochi's `healthcheck` listener: `/healthcheck`, `/livez`, `/readyz`.
    HealthCheck,
}

impl Endpoints {
    /// Whether every endpoint of this kind only reads.
    pub fn read_only(self) -> bool {
        !matches!(self, Self::All)
    }
}

/// How one HTTP listener behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// The endpoints served.
    pub endpoints: Endpoints,
    /// Who may call it; empty means anyone (allowed on loopback only).
    pub auth: HttpAuth,
    /// Let anonymous readers use the read-only endpoints (health, readiness, metrics and
    /// `$SYS` JSON) even when credentials are set, e.g. for probes and scrapers.
    pub anonymous_read: bool,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How long a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers (also while a kept-alive
    /// connection idles), so that a slow or silent client cannot hold a connection.
    pub header_read_timeout: Duration,
    /// The counters of a [`MetricsHook`] installed in the broker, added to `/metrics`
    /// (connections by listener and protocol, drops by reason).
    pub metrics: Option<MetricsHook>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            endpoints: Endpoints::All,
            auth: HttpAuth::default(),
            anonymous_read: false,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            metrics: None,
        }
    }
}

impl HttpOptions {
    /// Options serving `endpoints` with everything else at its default.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            ..Self::default()
        }
    }

    /// Sets the credentials.
    pub fn with_auth(mut self, auth: HttpAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the time a client has to send a request's headers.
    pub fn with_header_read_timeout(mut self, limit: Duration) -> Self {
        self.header_read_timeout = limit;
        self
    }

    /// Adds the counters of `hook` (installed in the broker) to `/metrics`.
    pub fn with_metrics(mut self, hook: MetricsHook) -> Self {
        self.metrics = Some(hook);
        self
    }

    /// Opens (or closes) the read-only endpoints to anonymous readers.
    pub fn with_anonymous_read(mut self, open: bool) -> Self {
        self.anonymous_read = open;
        self
    }

    /// The rule for exposure: beyond loopback, a listener needs credentials, unless all it
    /// serves is read-only and that was opened to anonymous readers on purpose.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), Error> {
        let open_on_purpose = self.endpoints.read_only() && self.anonymous_read;
        if addr.ip().is_loopback() || !self.auth.is_empty() || open_on_purpose {
            Ok(())
        } else {
            Err(Error::Unprotected { addr })
        }
    }
}

/// Liveness and readiness as the HTTP endpoints report them; shared with whoever starts the
/// broker, which says when it is ready.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Not ready yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Ready (stored state loaded, every listener bound) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200 now: ready and the broker not shutting down.
    pub fn is_ready(&self, broker: &Broker) -> bool {
        self.ready.load(Ordering::Relaxed) && !broker.is_shutting_down()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub broker: Arc<Broker>,
    pub health: Arc<Health>,
    pub auth: Arc<HttpAuth>,
    pub anonymous_read: bool,
    pub endpoints: Endpoints,
    pub metrics: Option<MetricsHook>,
}

/// The axum router of one listener with `options`, for an embedder who serves it in an app of
/// its own; [`HttpServer::bind`] serves it alone.
pub fn router(broker: Arc<Broker>, health: Arc<Health>, options: &HttpOptions) -> Router {
    let state = AppState {
        broker,
        health,
        auth: Arc::new(options.auth.clone()),
        anonymous_read: options.anonymous_read,
        endpoints: options.endpoints,
        metrics: options.metrics.clone(),
    };
    let health_routes = Router::new()
        .route("/healthcheck", get(healthcheck))
        .route("/livez", get(healthcheck))
        .route("/readyz", get(readyz));
    let app = match options.endpoints {
        Endpoints::HealthCheck => health_routes,
        Endpoints::SysInfo => health_routes
            .route("/", get(sys_json))
            .route("/api/v1/sys", get(sys_json)),
        Endpoints::All => health_routes
            .route("/", get(dashboard))
            .route("/dashboard", get(dashboard))
            .route("/api/v1/sys", get(sys_json))
            .route("/metrics", get(metrics))
            .nest("/api/v5", admin::routes()),
    };
    let timeout = options.request_timeout;
    app.fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            bounded(timeout, req, next)
        }))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}

async fn bounded(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error::json(
            StatusCode::SERVICE_UNAVAILABLE,
            "TIMEOUT",
            "the request took too long",
        ),
    }
}

async fn not_found() -> Response {
    error::json(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

async fn healthcheck() -> &'static str {
    "OK"
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.health.is_ready(&s.broker) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn sys_json(State(s): State<AppState>) -> Json<SysJson> {
    Json(sys_now(&s.broker))
}

/// Prometheus text, or OpenMetrics when the scraper's `Accept` names it.
async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let text = metrics::render(&s.broker, s.metrics.as_ref());
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(header::CONTENT_TYPE, metrics::OPENMETRICS_CONTENT_TYPE)],
            metrics::to_openmetrics(&text),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

/// Connections one listener serves at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Request headers at most (hyper's default buffer bounds their size, ~400 KiB).
const MAX_HEADERS: usize = 64;

/// One HTTP listener serving in the background.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Checks the exposure rule ([`HttpOptions::check_exposure`]), binds `addr` and serves
    /// `options`' endpoints for `broker` until [`HttpServer::shutdown`]. Within a tokio
    /// runtime.
    pub async fn bind(
        addr: SocketAddr,
        broker: Arc<Broker>,
        health: Arc<Health>,
        options: &HttpOptions,
        id: &str,
    ) -> Result<Self, Error> {
        options.check_exposure(addr)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Self::serve(listener, broker, health, options, id)
    }

    /// Serves on a listener already bound (no exposure check: the caller chose the socket).
    /// HTTP/1.1 only; at most 256 connections at once, headers within
    /// [`HttpOptions::header_read_timeout`].
    pub fn serve(
        listener: TcpListener,
        broker: Arc<Broker>,
        health: Arc<Health>,
        options: &HttpOptions,
        id: &str,
    ) -> Result<Self, Error> {
        let addr = listener.local_addr().map_err(Error::Io)?;
        let app = router(broker, health, options);
        let (stop, stopped) = watch::channel(false);
        info!(listener = %id, %addr, endpoints = ?options.endpoints, "HTTP listener added");
        let limits = (options.header_read_timeout, id.to_owned());
        let task = tokio::spawn(accept_loop(listener, app, stopped, limits));
        Ok(Self { addr, stop, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish (at most a second) and closes.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Resolves once the stop flag is set (without holding the channel's read guard, which is
/// not `Send`).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    mut stopped: watch::Receiver<bool>,
    (header_timeout, id): (Duration, String),
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("never closed"),
            _ = stopping(&mut stopped) => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(listener = %id, error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stopped.clone();
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_headers(MAX_HEADERS)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

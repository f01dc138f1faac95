//! The crate's error (starting a listener) and the JSON errors its endpoints answer with.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Why an HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Beyond loopback without credentials: the admin API would be open to the network.
    #[error(
        "refusing to serve HTTP on {addr} without credentials: beyond loopback the listener \
         needs `auth` (a `bearer_token` or `users` with password hashes); a `sysinfo` or \
         `healthcheck` listener may instead set `anonymous_read: true`"
    )]
    Unprotected {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Any other I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A credential in the configuration is unusable (e.g. a password hash that does not
    /// parse).
    #[error("invalid HTTP credentials: {0}")]
    Credentials(String),
}

/// The body of every error answer: a stable code for programs, a message for people (EMQX's
/// shape).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// An error answer with `status`.
pub(crate) fn json(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody { code, message })).into_response()
}

/// An error a handler returns: its status, code and message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", what)
    }

    pub fn bad_request(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", why)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.status, self.code, &self.message)
    }
}

//! Who may call an HTTP listener: a bearer token, or basic users whose passwords are stored
//! as the auth ledger stores them (argon2 or bcrypt hashes).

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use moco_auth::Password;
use subtle::ConstantTimeEq;

use crate::{error, AppState, Endpoints, Error};

/// The credentials a listener accepts; any one of them lets a request through. Empty means
/// anyone (which [`HttpOptions::check_exposure`](crate::HttpOptions::check_exposure) allows on
/// loopback only). Every credential holder is an administrator: the admin API has no finer
/// roles yet.
#[derive(Clone, Default)]
pub struct HttpAuth {
    bearer_token: Option<String>,
    users: Vec<(String, Password)>,
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<_> = self.users.iter().map(|(u, _)| u).collect();
        f.debug_struct("HttpAuth")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("users", &users)
            .finish()
    }
}

impl HttpAuth {
    /// Accepts `Authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<String>) -> Result<Self, Error> {
        Self::default().with_bearer(token)
    }

    /// Adds a bearer token (replacing any); an empty token is refused, since it would let
    /// anyone in.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Result<Self, Error> {
        let token = token.into();
        if token.is_empty() {
            return Err(Error::Credentials("the bearer token is empty".into()));
        }
        self.bearer_token = Some(token);
        Ok(self)
    }

    /// Adds a basic-auth user; `stored` is a password as the ledger stores it (an argon2 or
    /// bcrypt hash, as `moco passwd` prints, or plain text).
    pub fn with_user(mut self, name: &str, stored: &str) -> Result<Self, Error> {
        let password = Password::parse(stored)
            .map_err(|e| Error::Credentials(format!("user `{name}`: {e}")))?;
        self.users.push((name.to_owned(), password));
        Ok(self)
    }

    /// Whether no credential is set (anyone may call).
    pub fn is_empty(&self) -> bool {
        self.bearer_token.is_none() && self.users.is_empty()
    }

    /// Whether the `Authorization` header value lets the request in.
    async fn admits(&self, value: Option<&HeaderValue>) -> bool {
        let Some(value) = value.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if let (Some(token), Some(given)) = (&self.bearer_token, value.strip_prefix("Bearer ")) {
            return bool::from(token.as_bytes().ct_eq(given.trim().as_bytes()));
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        let Some(stored) = self
            .users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
        else {
            return false;
        };
        // A password hash takes milliseconds on purpose: not on a runtime worker.
        let pass = pass.to_owned();
        tokio::task::spawn_blocking(move || stored.verify(pass.as_bytes()))
            .await
            .unwrap_or(false)
    }
}

/// Paths anyone may read when the listener opens read-only endpoints to anonymous readers.
fn read_only(path: &str, endpoints: Endpoints) -> bool {
    matches!(
        path,
        "/healthcheck" | "/livez" | "/readyz" | "/metrics" | "/api/v1/sys"
    ) || (endpoints == Endpoints::SysInfo && path == "/")
}

/// The dashboard page holds no data (it asks the API, with credentials): always served.
fn public(path: &str, endpoints: Endpoints) -> bool {
    endpoints == Endpoints::All && matches!(path, "/" | "/dashboard")
}

/// The middleware: 401 with a `WWW-Authenticate` challenge unless the request is admitted.
pub(crate) async fn require(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if s.auth.is_empty()
        || public(path, s.endpoints)
        || (s.anonymous_read && read_only(path, s.endpoints))
        || s.auth
            .admits(req.headers().get(header::AUTHORIZATION))
            .await
    {
        return next.run(req).await;
    }
    let challenge = if s.auth.users.is_empty() {
        "Bearer realm=\"moco\""
    } else {
        "Basic realm=\"moco\", charset=\"UTF-8\""
    };
    let mut r = error::json(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "credentials required (Authorization: Bearer <token> or Basic)",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_and_users_are_checked() {
        let hash =
            moco_auth::hash_password(b"s3cret", moco_auth::HashAlgorithm::Argon2id).expect("hash");
        let auth = HttpAuth::bearer("tok")
            .unwrap()
            .with_user("ops", &hash)
            .unwrap();
        let h = |s: &str| Some(HeaderValue::from_str(s).unwrap());
        assert!(auth.admits(h("Bearer tok").as_ref()).await);
        assert!(!auth.admits(h("Bearer tok2").as_ref()).await);
        assert!(!auth.admits(None).await);
        let basic = |u: &str, p: &str| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            h(&format!("Basic {b}"))
        };
        assert!(auth.admits(basic("ops", "s3cret").as_ref()).await);
        assert!(!auth.admits(basic("ops", "wrong").as_ref()).await);
        assert!(!auth.admits(basic("nobody", "s3cret").as_ref()).await);
        assert!(HttpAuth::bearer("").is_err());
        assert!(HttpAuth::default()
            .with_user("x", "$argon2id$broken")
            .is_err());
        assert!(!format!("{auth:?}").contains("tok\""));
    }
}

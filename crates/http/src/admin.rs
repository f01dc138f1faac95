//! The admin API under `/api/v5`, modeled on EMQX's (paths, `data` + `meta` pages, field
//! names where EMQX has one): clients, one client, kick, subscriptions, retained messages,
//! publish, stats. JSON in and out; errors are `{code, message}` with a fitting status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use moco_engine::codec::{QoS, ReasonCode};
use moco_engine::message::Message;
use moco_engine::{ClientDetail, ClientSnapshot, Error as EngineError, SubscriptionSnapshot};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::{sys_now, AppState, SysJson};

/// The largest page a listing returns.
pub(crate) const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/clients", get(list_clients))
        .route("/clients/{id}", get(get_client).delete(kick_client))
        .route("/clients/{id}/subscriptions", get(client_subscriptions))
        .route("/subscriptions", get(list_subscriptions))
        .route("/mqtt/retainer/messages", get(list_retained))
        .route(
            "/mqtt/retainer/message/{*topic}",
            get(get_retained).delete(delete_retained),
        )
        .route("/publish", post(publish))
        .route("/stats", get(stats))
}

/// Paging, as EMQX: `page` from 1, `limit` per page. (Each query struct names both fields:
/// serde's `flatten` would make the query parser hand numbers over as strings.)
struct Paging;

impl Paging {
    fn of(page: Option<usize>, limit: Option<usize>) -> Result<(usize, usize), ApiError> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if page == 0 {
            return Err(ApiError::bad_request("`page` counts from 1"));
        }
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "`limit` must be 1 to {MAX_LIMIT}"
            )));
        }
        Ok((page, limit))
    }
}

#[derive(Debug, Serialize)]
struct Meta {
    page: usize,
    limit: usize,
    count: usize,
    hasnext: bool,
}

#[derive(Debug, Serialize)]
struct Page<T> {
    data: Vec<T>,
    meta: Meta,
}

impl<T> Page<T> {
    /// The page of `all` (already filtered and sorted).
    fn of(all: Vec<T>, page: usize, limit: usize) -> Self {
        let count = all.len();
        let start = (page - 1).saturating_mul(limit).min(count);
        let data: Vec<T> = all.into_iter().skip(start).take(limit).collect();
        let hasnext = start + data.len() < count;
        Page {
            data,
            meta: Meta {
                page,
                limit,
                count,
                hasnext,
            },
        }
    }
}

/// One client in a listing (EMQX's names where it has them).
#[derive(Debug, Serialize)]
struct ClientJson {
    clientid: String,
    username: Option<String>,
    remote: String,
    listener: String,
    proto_ver: u8,
    proto_name: &'static str,
    connected: bool,
    injected: bool,
}

impl From<&ClientSnapshot> for ClientJson {
    fn from(c: &ClientSnapshot) -> Self {
        let proto_ver = c.protocol.level();
        Self {
            clientid: c.id.to_string(),
            username: c.username.as_ref().map(|u| u.to_string()),
            remote: c.remote.to_string(),
            listener: c.listener.to_string(),
            proto_ver,
            proto_name: if proto_ver == 3 { "MQIsdp" } else { "MQTT" },
            connected: c.connected,
            injected: c.injected,
        }
    }
}

/// One client in detail.
#[derive(Debug, Serialize)]
struct ClientDetailJson {
    #[serde(flatten)]
    client: ClientJson,
    keepalive: u16,
    expiry_interval: u32,
    inflight_cnt: usize,
    inflight_max: u16,
    mqueue_len: usize,
    subscriptions_cnt: usize,
    subscriptions: Vec<SubscriptionJson>,
}

impl From<&ClientDetail> for ClientDetailJson {
    fn from(d: &ClientDetail) -> Self {
        Self {
            client: ClientJson::from(&d.client),
            keepalive: d.keep_alive,
            expiry_interval: d.session_expiry_interval,
            inflight_cnt: d.inflight,
            inflight_max: d.receive_maximum,
            mqueue_len: d.queued,
            subscriptions_cnt: d.subscriptions.len(),
            subscriptions: d.subscriptions.iter().map(SubscriptionJson::from).collect(),
        }
    }
}

/// One subscription (EMQX's `nl`, `rap`, `rh`).
#[derive(Debug, Serialize)]
struct SubscriptionJson {
    clientid: String,
    topic: String,
    qos: u8,
    nl: u8,
    rap: u8,
    rh: u8,
}

impl From<&SubscriptionSnapshot> for SubscriptionJson {
    fn from(s: &SubscriptionSnapshot) -> Self {
        Self {
            clientid: s.client_id.to_string(),
            topic: s.filter.to_string(),
            qos: s.qos,
            nl: u8::from(s.no_local),
            rap: u8::from(s.retain_as_published),
            rh: s.retain_handling,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ClientFilter {
    page: Option<usize>,
    limit: Option<usize>,
    /// Client ids starting with this.
    clientid_prefix: Option<String>,
    username: Option<String>,
    listener: Option<String>,
    /// `connected` or `disconnected` (EMQX's name).
    conn_state: Option<String>,
}

async fn list_clients(
    State(s): State<AppState>,
    q: Result<Query<ClientFilter>, QueryRejection>,
) -> Result<Json<Page<ClientJson>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (page, limit) = Paging::of(q.page, q.limit)?;
    let want_connected = match q.conn_state.as_deref() {
        None => None,
        Some("connected") => Some(true),
        Some("disconnected") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`conn_state` is `connected` or `disconnected`, not `{other}`"
            )))
        }
    };
    let clients = match &q.listener {
        Some(l) => s.broker.clients_on_listener(l),
        None => s.broker.clients(),
    };
    let mut all: Vec<_> = clients
        .iter()
        .filter(|c| {
            q.clientid_prefix
                .as_deref()
                .is_none_or(|p| c.id.starts_with(p))
                && q.username
                    .as_deref()
                    .is_none_or(|u| c.username.as_deref() == Some(u))
                && want_connected.is_none_or(|w| c.connected == w)
        })
        .collect();
    // Sorted, so that pages are stable while clients come and go elsewhere in the list.
    all.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let all = all.into_iter().map(ClientJson::from).collect();
    Ok(Json(Page::of(all, page, limit)))
}

fn detail(s: &AppState, id: &str) -> Result<ClientDetail, ApiError> {
    s.broker
        .client_detail(id)
        .ok_or_else(|| ApiError::not_found(format!("no client `{id}`")))
}

async fn get_client(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientDetailJson>, ApiError> {
    Ok(Json(ClientDetailJson::from(&detail(&s, &id)?)))
}

async fn client_subscriptions(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<SubscriptionJson>>, ApiError> {
    let d = detail(&s, &id)?;
    Ok(Json(
        d.subscriptions.iter().map(SubscriptionJson::from).collect(),
    ))
}

/// Kicks client `id`: a v5 client gets DISCONNECT 0x98 (administrative action), a v3 client
/// a close; then its will and session go as for any disconnection.
async fn kick_client(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match s
        .broker
        .disconnect_client(&id, ReasonCode::AdministrativeAction)
    {
        Ok(true) => {
            tracing::info!(client = %id, "kicked through the HTTP admin API");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "NOT_CONNECTED",
            format!("client `{id}` is not connected (its session waits for it)"),
        )),
        Err(EngineError::NoSuchClient) => Err(ApiError::not_found(format!("no client `{id}`"))),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            e.to_string(),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct SubscriptionFilter {
    page: Option<usize>,
    limit: Option<usize>,
    clientid: Option<String>,
    /// The exact filter subscribed.
    topic: Option<String>,
}

async fn list_subscriptions(
    State(s): State<AppState>,
    q: Result<Query<SubscriptionFilter>, QueryRejection>,
) -> Result<Json<Page<SubscriptionJson>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (page, limit) = Paging::of(q.page, q.limit)?;
    let all = s
        .broker
        .subscriptions()
        .iter()
        .filter(|x| {
            q.clientid.as_deref().is_none_or(|c| &*x.client_id == c)
                && q.topic.as_deref().is_none_or(|t| &*x.filter == t)
        })
        .map(SubscriptionJson::from)
        .collect();
    Ok(Json(Page::of(all, page, limit)))
}

/// A retained message; `payload` (base64) only when one message is read.
#[derive(Debug, Serialize)]
struct RetainedJson {
    topic: String,
    qos: u8,
    payload_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
}

impl RetainedJson {
    fn of(m: &Message, with_payload: bool) -> Self {
        Self {
            topic: m.topic.to_string(),
            qos: m.qos as u8,
            payload_size: m.payload.len(),
            payload: with_payload
                .then(|| base64::engine::general_purpose::STANDARD.encode(&m.payload)),
            content_type: m.properties.content_type.as_ref().map(|c| c.to_string()),
            message_expiry_interval: m.properties.message_expiry_interval,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RetainedFilter {
    page: Option<usize>,
    limit: Option<usize>,
    /// A topic filter (default `#`, which leaves out `$`-topics as any `#` does).
    topic: Option<String>,
}

async fn list_retained(
    State(s): State<AppState>,
    q: Result<Query<RetainedFilter>, QueryRejection>,
) -> Result<Json<Page<RetainedJson>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (page, limit) = Paging::of(q.page, q.limit)?;
    let filter = q.topic.as_deref().unwrap_or("#");
    let offset = (page - 1).saturating_mul(limit);
    let got = s
        .broker
        .retained_messages(filter, offset, limit)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let data: Vec<_> = got
        .messages
        .iter()
        .map(|m| RetainedJson::of(m, false))
        .collect();
    let hasnext = offset + data.len() < got.total;
    Ok(Json(Page {
        data,
        meta: Meta {
            page,
            limit,
            count: got.total,
            hasnext,
        },
    }))
}

async fn get_retained(
    State(s): State<AppState>,
    Path(topic): Path<String>,
) -> Result<Json<RetainedJson>, ApiError> {
    let m = s
        .broker
        .retained_message(&topic)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("no retained message on `{topic}`")))?;
    Ok(Json(RetainedJson::of(&m, true)))
}

async fn delete_retained(
    State(s): State<AppState>,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    match s.broker.delete_retained(&topic) {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(format!(
            "no retained message on `{topic}`"
        ))),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// A message to publish (EMQX's `/publish` body).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    topic: String,
    #[serde(default)]
    payload: String,
    /// `plain` (default) or `base64`.
    #[serde(default)]
    payload_encoding: Option<String>,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
}

#[derive(Debug, Serialize)]
struct PublishResponse {
    /// How many subscribers it was delivered to.
    delivered: usize,
}

/// Publishes as the broker's inline client (the `OnPublish` hooks run). Never to a
/// `$`-topic: `$SYS` belongs to the broker.
async fn publish(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: PublishRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid publish request: {e}")))?;
    if req.topic.starts_with('$') {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "publishing to `$` topics over HTTP is not allowed",
        ));
    }
    let qos = QoS::try_from(req.qos)
        .map_err(|_| ApiError::bad_request(format!("`qos` is 0, 1 or 2, not {}", req.qos)))?;
    let payload: Vec<u8> = match req.payload_encoding.as_deref() {
        None | Some("plain") => req.payload.into_bytes(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(req.payload.as_bytes())
            .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}")))?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`payload_encoding` is `plain` or `base64`, not `{other}`"
            )))
        }
    };
    let broker = Arc::clone(&s.broker);
    match broker.inline_publish(&req.topic, payload, qos, req.retain) {
        Ok(delivered) => Ok(Json(PublishResponse { delivered }).into_response()),
        Err(EngineError::InlineClientDisabled) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "INLINE_CLIENT_DISABLED",
            "publishing needs the broker's inline client (options.inline_client)",
        )),
        Err(EngineError::Rejected(code)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "REJECTED",
            format!("a hook refused the message: {}", code.description()),
        )),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

async fn stats(State(s): State<AppState>) -> Json<SysJson> {
    Json(sys_now(&s.broker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_split_a_list() {
        let p = Page::of((0..5).collect(), 2, 2);
        assert_eq!(p.data, vec![2, 3]);
        assert!(p.meta.hasnext);
        assert_eq!(p.meta.count, 5);
        let last = Page::of((0..5).collect(), 3, 2);
        assert_eq!(last.data, vec![4]);
        assert!(!last.meta.hasnext);
        let beyond = Page::of((0..5).collect::<Vec<i32>>(), 9, 2);
        assert!(beyond.data.is_empty() && !beyond.meta.hasnext);
    }
}

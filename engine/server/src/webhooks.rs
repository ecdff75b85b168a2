//! Webhooks: tenants subscribe URLs to event patterns (through the Metadata API); the
//! `webhooks` consumer turns each matching event into a delivery row in the event's
//! transaction (once, thanks to the inbox), and the sender POSTs due deliveries signed
//! with HMAC-SHA256, retrying with exponential backoff and logging every attempt.
//!
//! Signature: `X-Platform-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret,
//! "<t>.<body>")>`; receivers recompute it over the raw body and reject old timestamps.

use crate::app::App;
use crate::auth::Principal;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::events::{topic_matches, BoxFuture, Envelope, Handler};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use platform_metadata::Issue;
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgConnection;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Whether an address is not on the public internet: loopback, private, link-local
/// (cloud metadata services), unspecified, multicast, unique-local, documentation.
pub fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) // 100.64/10
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (s[0] & 0xfe00) == 0xfc00 // unique local
                    || (s[0] & 0xffc0) == 0xfe80 // link local
            }
        },
    }
}

/// Why `url` may not receive webhooks when internal addresses are not allowed: a literal
/// internal address or `localhost`. Names are checked again when resolved.
pub fn internal_host(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => is_internal(ip).then(|| format!("{ip} is not a public address")),
        Err(_) => {
            let h = bare.to_ascii_lowercase();
            (h == "localhost" || h.ends_with(".localhost")).then(|| format!("{h} is this machine"))
        }
    }
}

/// A resolver that drops internal addresses, so a public name that resolves to one
/// (or is re-pointed at one later) cannot reach internal services.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Tries before a delivery is given up (`failed`).
pub const MAX_ATTEMPTS: i32 = 8;

/// The signature header value for `body` at unix time `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds to wait after the `attempts`-th failure.
pub fn backoff(attempts: i32) -> i64 {
    1i64 << attempts.clamp(0, 12)
}

/// The consumer that queues deliveries for the tenant's matching subscriptions.
pub struct Fanout;

impl Handler for Fanout {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let hooks: Vec<(Uuid, Vec<String>)> =
                sqlx::query_as("SELECT id, events FROM engine.webhooks WHERE active")
                    .fetch_all(&mut *conn)
                    .await?;
            let matching: Vec<Uuid> = hooks
                .into_iter()
                .filter(|(_, pats)| pats.iter().any(|p| topic_matches(p, &event.kind)))
                .map(|(id, _)| id)
                .collect();
            if matching.is_empty() {
                return Ok(());
            }
            let body = serde_json::to_string(event)?;
            for hook in matching {
                sqlx::query(
                    "INSERT INTO engine.webhook_deliveries (id, webhook_id, tenant_id, event_id, event_type, body)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (webhook_id, event_id) DO NOTHING",
                )
                .bind(Uuid::now_v7())
                .bind(hook)
                .bind(event.tenant)
                .bind(event.id)
                .bind(&event.kind)
                .bind(&body)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }
}

type Due = (Uuid, Uuid, String, String, i32, String, String);

/// Sends what is due, at most 20 at a time, each locked while it is sent.
pub async fn send_due(app: &App) -> anyhow::Result<usize> {
    let mut tx = app.db.admin.begin().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT d.id, d.event_id, d.event_type, d.body, d.attempts, w.url, w.secret
         FROM engine.webhook_deliveries d JOIN engine.webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now()
         ORDER BY d.next_attempt_at LIMIT 20 FOR UPDATE OF d SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let n = due.len();
    let allow_private = app.events.settings.allow_private_webhooks;
    let sends = due
        .iter()
        .map(|d| send_one(&app.events.http, d, allow_private));
    let results = futures_util::future::join_all(sends).await;
    for ((id, _, _, _, attempts, _, _), (code, error, ms)) in due.iter().zip(results) {
        let attempt = attempts + 1;
        let ok = code.is_some_and(|c| (200..300).contains(&c));
        sqlx::query(
            "INSERT INTO engine.webhook_attempts (delivery_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(attempt)
        .bind(code)
        .bind(&error)
        .bind(ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE engine.webhook_deliveries SET attempts = $2,
                status = CASE WHEN $3 THEN 'delivered' WHEN $2 >= $4 THEN 'failed' ELSE 'pending' END,
                delivered_at = CASE WHEN $3 THEN now() END,
                next_attempt_at = now() + make_interval(secs => $5)
             WHERE id = $1",
        )
        .bind(id)
        .bind(attempt)
        .bind(ok)
        .bind(MAX_ATTEMPTS)
        .bind(backoff(*attempts) as f64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

async fn send_one(
    client: &reqwest::Client,
    d: &Due,
    allow_private: bool,
) -> (Option<i32>, Option<String>, i32) {
    let (id, event_id, kind, body, _, url, secret) = d;
    // A subscription made while internal addresses were allowed is not sent there now.
    if !allow_private {
        if let Some(why) = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| internal_host(&u))
        {
            return (None, Some(format!("not sent: {why}")), 0);
        }
    }
    let t = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-platform-event", kind)
        .header("x-platform-event-id", event_id.to_string())
        .header("x-platform-delivery", id.to_string())
        .header("x-platform-signature", signature(secret, t, body))
        .body(body.clone())
        .send()
        .await;
    let ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    match result {
        Ok(r) => {
            let code = r.status().as_u16() as i32;
            let error = (!r.status().is_success()).then(|| format!("HTTP {code}"));
            (Some(code), error, ms)
        }
        Err(e) => (None, Some(e.to_string()), ms),
    }
}

/// The sender loop of a serving process.
pub async fn sender(app: Weak<App>) {
    loop {
        let Some(a) = app.upgrade().filter(|a| !a.db.admin.is_closed()) else {
            return;
        };
        let result = send_due(&a).await;
        drop(a);
        match result {
            Ok(20..) => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot send webhooks"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---- The Metadata API for subscriptions ----

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/metadata/webhooks", get(list).post(create))
        .route(
            "/metadata/webhooks/{id}",
            get(read).patch(update).delete(remove),
        )
        .route("/metadata/webhooks/{id}/deliveries", get(deliveries))
}

fn authorise(p: &Principal) -> ApiResult<()> {
    p.require_any(
        &["admin", "metadata_admin", "tenant_admin"],
        "managing webhooks",
    )
}

type Row = (
    Uuid,
    String,
    String,
    Vec<String>,
    bool,
    chrono::DateTime<chrono::Utc>,
);

fn show(r: Row) -> Value {
    json!({"id": r.0, "name": r.1, "url": r.2, "events": r.3, "active": r.4, "created_at": r.5})
}

const COLUMNS: &str = "id, name, url, events, active, created_at";

fn check_body(body: &Value, partial: bool, allow_private: bool) -> ApiResult<()> {
    let mut issues = Vec::new();
    let obj = body.as_object();
    let known = ["name", "url", "events", "active", "secret"];
    if let Some(o) = obj {
        for k in o.keys().filter(|k| !known.contains(&k.as_str())) {
            issues.push(Issue::new(
                k,
                "unknown",
                "is not a webhook property",
                Value::Null,
            ));
        }
    } else {
        issues.push(Issue::new("", "type", "must be an object", body.clone()));
    }
    let get = |k: &str| obj.and_then(|o| o.get(k));
    match get("name") {
        None if !partial => issues.push(Issue::new("name", "required", "is required", Value::Null)),
        Some(v) if !v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 100) => {
            issues.push(Issue::new(
                "name",
                "format",
                "must be text of 1 to 100 characters",
                v.clone(),
            ))
        }
        _ => {}
    }
    match get("url") {
        None if !partial => issues.push(Issue::new("url", "required", "is required", Value::Null)),
        Some(v) => {
            let url = v
                .as_str()
                .and_then(|s| reqwest::Url::parse(s).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            match url {
                None => issues.push(Issue::new(
                    "url",
                    "format",
                    "must be an absolute http or https URL",
                    v.clone(),
                )),
                Some(u) if !allow_private => {
                    if let Some(why) = internal_host(&u) {
                        issues.push(Issue::new(
                            "url",
                            "public_address",
                            format!("must reach a public address: {why}"),
                            v.clone(),
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        _ => {}
    }
    match get("events") {
        None if !partial => issues.push(Issue::new(
            "events",
            "required",
            "is required (patterns such as offers.offer.* or #)",
            Value::Null,
        )),
        Some(v) => {
            let ok = v.as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.iter().all(|p| {
                        p.as_str().is_some_and(|s| {
                            !s.is_empty()
                                && s.split('.').all(|w| {
                                    w == "*"
                                        || w == "#"
                                        || (!w.is_empty()
                                            && w.chars()
                                                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
                                })
                        })
                    })
            });
            if !ok {
                issues.push(Issue::new("events", "format", "must be a non-empty list of routing patterns (words of letters, digits and _, or * and #, separated by dots)", v.clone()));
            }
        }
        _ => {}
    }
    if let Some(v) = get("active") {
        if !v.is_boolean() {
            issues.push(Issue::new(
                "active",
                "type",
                "must be true or false",
                v.clone(),
            ));
        }
    }
    if let Some(v) = get("secret") {
        if v.as_str().is_none_or(|s| s.len() < 16) {
            issues.push(Issue::new(
                "secret",
                "format",
                "must be text of at least 16 characters",
                Value::Null,
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(issues))
    }
}

async fn list(State(app): State<Arc<App>>, p: Principal) -> ApiResult<Json<Value>> {
    authorise(&p)?;
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM engine.webhooks ORDER BY name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({"data": rows.into_iter().map(show).collect::<Vec<_>>()}),
    ))
}

async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    crate::http::JsonBody(body): crate::http::JsonBody,
) -> ApiResult<Response> {
    authorise(&p)?;
    check_body(&body, false, app.events.settings.allow_private_webhooks)?;
    let secret = body
        .get("secret")
        .and_then(|s| s.as_str())
        .map(String::from)
        .unwrap_or_else(|| {
            format!(
                "whsec_{}{}",
                Uuid::new_v4().simple(),
                Uuid::new_v4().simple()
            )
        });
    let events: Vec<String> = serde_json::from_value(body["events"].clone()).unwrap_or_default();
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let row: Result<Row, sqlx::Error> = sqlx::query_as(&format!(
        "INSERT INTO engine.webhooks (id, tenant_id, name, url, events, secret, active) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(p.tenant)
    .bind(body["name"].as_str())
    .bind(body["url"].as_str())
    .bind(&events)
    .bind(&secret)
    .bind(body.get("active").and_then(|v| v.as_bool()).unwrap_or(true))
    .fetch_one(&mut *tx)
    .await;
    let row = row.map_err(|e| write_error(e, &body))?;
    tx.commit().await?;
    let mut out = show(row);
    // The secret is shown once, when the subscription is made.
    out["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A taken name is the caller's mistake (422 on `name`); anything else is internal.
fn write_error(e: sqlx::Error, body: &Value) -> ApiError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
            ApiError::validation(vec![Issue::new(
                "name",
                "unique",
                "another webhook of this tenant has this name",
                body["name"].clone(),
            )])
        }
        _ => e.into(),
    }
}

/// The answer for one subscription, or 404.
fn found(row: Option<Row>, id: Uuid) -> ApiResult<Json<Value>> {
    row.map(|r| Json(show(r)))
        .ok_or_else(|| ApiError::not_found(format!("no webhook with id {id}")))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("no webhook with id {id}")))
}

async fn read(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorise(&p)?;
    let id = parse_id(&id)?;
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM engine.webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    found(row, id)
}

async fn update(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(id): Path<String>,
    crate::http::JsonBody(body): crate::http::JsonBody,
) -> ApiResult<Json<Value>> {
    authorise(&p)?;
    let id = parse_id(&id)?;
    check_body(&body, true, app.events.settings.allow_private_webhooks)?;
    let events: Option<Vec<String>> = body
        .get("events")
        .and_then(|e| serde_json::from_value(e.clone()).ok());
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE engine.webhooks SET name = coalesce($2, name), url = coalesce($3, url), events = coalesce($4, events),
            active = coalesce($5, active), secret = coalesce($6, secret)
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(body.get("name").and_then(|v| v.as_str()))
    .bind(body.get("url").and_then(|v| v.as_str()))
    .bind(events)
    .bind(body.get("active").and_then(|v| v.as_bool()))
    .bind(body.get("secret").and_then(|v| v.as_str()))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| write_error(e, &body))?;
    tx.commit().await?;
    found(row, id)
}

async fn remove(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorise(&p)?;
    let id = parse_id(&id)?;
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let n = sqlx::query("DELETE FROM engine.webhooks WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no webhook with id {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

type Time = chrono::DateTime<chrono::Utc>;
type DeliveryRow = (Uuid, Uuid, String, String, i32, Time, Option<Time>, Time);
type AttemptRow = (Uuid, i32, Time, Option<i32>, Option<String>, i32);

/// The delivery log of one subscription, newest first, with each attempt.
async fn deliveries(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorise(&p)?;
    let id = parse_id(&id)?;
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM engine.webhooks WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        return Err(ApiError::not_found(format!("no webhook with id {id}")));
    }
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, event_id, event_type, status, attempts, next_attempt_at, delivered_at, created_at
         FROM engine.webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT delivery_id, attempt, at, status_code, error, duration_ms FROM engine.webhook_attempts WHERE delivery_id = ANY($1) ORDER BY attempt",
    )
    .bind(&ids)
    .fetch_all(&app.db.admin)
    .await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let tries: Vec<Value> = attempts
                .iter()
                .filter(|a| a.0 == r.0)
                .map(|a| json!({"attempt": a.1, "at": a.2, "status_code": a.3, "error": a.4, "duration_ms": a.5}))
                .collect();
            json!({"id": r.0, "event_id": r.1, "event_type": r.2, "status": r.3, "attempts": r.4,
                   "next_attempt_at": if r.3 == "pending" { json!(r.5) } else { Value::Null },
                   "delivered_at": r.6, "created_at": r.7, "log": tries})
        })
        .collect();
    Ok(Json(json!({"data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(internal_host(&u("http://LOCALHOST:8080/x")).is_some());
        assert!(internal_host(&u("http://[::1]/x")).is_some());
        assert!(internal_host(&u("https://hooks.example.com/x")).is_none());
    }

    #[test]
    fn signatures_depend_on_secret_time_and_body() {
        let s = signature("secret-secret-secret", 1_700_000_000, "{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_ne!(s, signature("secret-secret-secret", 1_700_000_001, "{}"));
        assert_ne!(s, signature("secret-secret-secret", 1_700_000_000, "{ }"));
        assert_ne!(s, signature("another-secret-value", 1_700_000_000, "{}"));
    }
}
